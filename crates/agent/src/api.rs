//! The agent's HTTP API (`/v1/…`), as documented in `docs/agent.md`.
//!
//! Who may call: the agent listens on loopback only, and
//! - answers a browser only when the page's `Origin` is in the allow-list
//!   (CORS, including Private Network Access preflights); another origin,
//!   or a browser request without `Origin`, gets 403;
//! - accepts only `Host: 127.0.0.1|localhost|[::1]|<listen address>:<port>`,
//!   so a DNS rebinding site cannot reach it under its own name;
//! - takes JSON bodies of at most [`BODY_LIMIT`] bytes;
//! - needs the PIN in the same request for every private-key operation.
//!
//! Handlers parse, run one [`TokenBackend`] method on a blocking thread and
//! answer JSON; [`ApiError`] is the only place that knows status codes.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use certhall_ca::KeyAlgorithm;
use certhall_domain::cert_login::{
    challenge_well_formed, origin_well_formed, SignedMessage, PURPOSES,
};
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use certhall_ca::sealed::Recipient;
use certhall_domain::renewal::SoPinRelease;

use crate::csr;
use crate::token::{check_token_label, KeyEntry, Pin, TokenBackend, TokenError, TokenInfo};

/// Largest request body accepted (a certificate chain fits many times).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The API version in paths and in `/v1/status`.
pub const API_VERSION: u32 = 1;

/// The agent: its token backends and whom it answers.
#[derive(Debug, Clone)]
pub struct Agent(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    backends: Vec<Arc<dyn TokenBackend>>,
    allowed_origins: Vec<String>,
    ip: std::net::IpAddr,
    port: u16,
    /// One-time keys for online PIN unlock, per token id, with when they
    /// were made: in memory only, each used once.
    unlock_keys:
        std::sync::Mutex<std::collections::HashMap<String, (Recipient, std::time::Instant)>>,
}

/// How long a one-time unlock key waits for its sealed SO PIN.
const UNLOCK_KEY_TTL: std::time::Duration = std::time::Duration::from_secs(600);

impl Agent {
    /// An agent serving `backends` on `port` to pages of `allowed_origins`
    /// (`scheme://host[:port]`, compared exactly, case-insensitively).
    pub fn new(
        backends: Vec<Arc<dyn TokenBackend>>,
        allowed_origins: Vec<String>,
        listen: std::net::SocketAddr,
    ) -> Self {
        Self(Arc::new(Inner {
            backends,
            allowed_origins: allowed_origins
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            ip: listen.ip(),
            port: listen.port(),
            unlock_keys: std::sync::Mutex::default(),
        }))
    }

    /// The router, with origin checks and body limit.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/status", get(status))
            .route("/v1/tokens", get(tokens))
            .route("/v1/tokens/{token}/init", post(init_token))
            .route("/v1/tokens/{token}/pin/verify", post(verify_pin))
            .route("/v1/tokens/{token}/pin/change", post(change_pin))
            .route("/v1/tokens/{token}/pin/unblock", post(unblock_pin))
            .route("/v1/tokens/{token}/unlock/key", post(unlock_key))
            .route("/v1/tokens/{token}/unlock", post(unlock_sealed))
            .route("/v1/tokens/{token}/keys", post(generate_key))
            .route(
                "/v1/tokens/{token}/keys/{key_id}/certificate",
                post(store_certificate),
            )
            .route("/v1/tokens/{token}/keys/{key_id}/delete", post(delete_key))
            .route("/v1/tokens/{token}/keys/{key_id}/sign", post(sign))
            .fallback(|| async { ApiError::NotFound })
            .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
            .layer(axum::middleware::from_fn_with_state(self.clone(), gate))
            .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(self.clone())
    }

    fn backend(&self, token_id: &str) -> Result<(Arc<dyn TokenBackend>, String), ApiError> {
        let (kind, serial) = token_id.split_once('-').ok_or(TokenError::TokenAbsent)?;
        let backend = self
            .0
            .backends
            .iter()
            .find(|b| b.kind() == kind)
            .ok_or(TokenError::TokenAbsent)?;
        Ok((backend.clone(), serial.to_owned()))
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.0.allowed_origins.contains(&origin)
    }

    fn host_allowed(&self, host: &str) -> bool {
        let port = self.0.port;
        let listen = match self.0.ip {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        ["127.0.0.1", "localhost", "[::1]", listen.as_str()]
            .iter()
            .any(|h| host.eq_ignore_ascii_case(&format!("{h}:{port}")))
    }

    /// The kinds of the backends in use (`pkcs11`, `soft`).
    pub fn backend_kinds(&self) -> Vec<&'static str> {
        self.0.backends.iter().map(|b| b.kind()).collect()
    }
}

/// Checks an `--allow-origin` value: `http(s)://host[:port]` only — never
/// `null` (sandboxed and `file:` pages send it), `*` or a URL with a path.
pub fn check_origin(origin: &str) -> Result<String, String> {
    let trimmed = origin.trim().trim_end_matches('/');
    let bare = trimmed
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.contains(['/', '?', '#', '@']));
    match certhall_domain::cert_login::origin_of(trimmed) {
        Some(o) if bare => Ok(o),
        _ => Err(format!(
            "{origin:?} is not an origin like https://hall.example.cn or http://127.0.0.1:8080"
        )),
    }
}

/// Runs a token call on a blocking thread (module calls block).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TokenError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Token(TokenError::Module(format!("agent task failed: {e}"))))?
        .map_err(ApiError::Token)
}

/// The origin checks, CORS and the preflight answer (see the module doc).
/// Every answer, refusals included, is logged and marked `no-store` and
/// `nosniff`.
async fn gate(State(agent): State<Agent>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let origin_text = request
        .headers()
        .get(header::ORIGIN)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
    let (mut response, allowed_origin) = match admit(&agent, request.headers()) {
        Err(refusal) => (refusal.into_response(), None),
        Ok(origin) if method == Method::OPTIONS => match origin {
            Some(o) => (preflight(request.headers()), Some(o)),
            // A preflight without an origin is no preflight.
            None => (ApiError::OriginForbidden.into_response(), None),
        },
        Ok(origin) => (next.run(request).await, origin),
    };
    let h = response.headers_mut();
    if let Some(value) = allowed_origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        h.insert("access-control-allow-origin", value);
    }
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    tracing::info!(
        %method,
        %path,
        origin = origin_text.as_deref().unwrap_or("-"),
        status = response.status().as_u16(),
        "request"
    );
    response
}

/// Who may call: `Ok(Some(origin))` for an allowed page, `Ok(None)` for a
/// program that is not a browser, or the refusal.
fn admit(agent: &Agent, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !agent.host_allowed(host) {
        return Err(ApiError::HostForbidden);
    }
    match headers.get(header::ORIGIN).map(|h| h.to_str()) {
        Some(Ok(o)) if agent.origin_allowed(o) => Ok(Some(o.to_owned())),
        // Not allowed, or present but not even text.
        Some(_) => Err(ApiError::OriginForbidden),
        None if browser_style(headers) => Err(ApiError::OriginForbidden),
        None => Ok(None),
    }
}

/// The answer to an allowed CORS preflight, with Private Network Access.
fn preflight(headers: &HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("content-type"),
    );
    h.insert("access-control-max-age", HeaderValue::from_static("600"));
    if headers
        .get("access-control-request-private-network")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
    {
        h.insert(
            "access-control-allow-private-network",
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// A request a browser made (it sends `Sec-Fetch-*` metadata, or cookies
/// or a referrer): such a request without `Origin` is refused, because a
/// page can make one (a plain link or image) without the CORS checks.
fn browser_style(headers: &HeaderMap) -> bool {
    [
        "sec-fetch-site",
        "sec-fetch-mode",
        "sec-fetch-dest",
        "cookie",
        "referer",
    ]
    .iter()
    .any(|h| headers.contains_key(*h))
}

/// Why a request failed: the stable `code` of the JSON error body.
#[derive(Debug)]
pub enum ApiError {
    /// From the token.
    Token(TokenError),
    /// The page's origin is not allowed (or a browser sent none).
    OriginForbidden,
    /// The Host header is not the loopback address.
    HostForbidden,
    /// A private-key operation without the PIN.
    PinRequired,
    /// The body is not the JSON the operation takes.
    InvalidRequest(String),
    /// The body is too large.
    PayloadTooLarge,
    /// No such route.
    NotFound,
    /// The route exists, not with this method.
    MethodNotAllowed,
    /// An SO operation without the SO PIN.
    SoPinRequired,
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        Self::Token(e)
    }
}

impl ApiError {
    /// Status, stable code and Chinese message.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::Token(e) => match e {
                TokenError::WrongPin { retries_left } => (
                    StatusCode::UNAUTHORIZED,
                    "wrong_pin",
                    match retries_left {
                        Some(n) => format!("PIN 码错误，还可尝试 {n} 次。"),
                        None => "PIN 码错误。".into(),
                    },
                ),
                TokenError::PinLocked => (
                    StatusCode::LOCKED,
                    "pin_locked",
                    "PIN 码错误次数过多，UKey 已锁定。请登录网上营业厅办理“PIN 解锁”。".into(),
                ),
                TokenError::WrongSoPin { retries_left } => (
                    StatusCode::UNAUTHORIZED,
                    "wrong_so_pin",
                    match retries_left {
                        Some(n) => format!("管理员 PIN 码错误，还可尝试 {n} 次。"),
                        None => "管理员 PIN 码错误。".into(),
                    },
                ),
                TokenError::SoPinLocked => (
                    StatusCode::LOCKED,
                    "so_pin_locked",
                    "管理员 PIN 码已锁定，这个 UKey 无法再解锁，请办理补办。".into(),
                ),
                TokenError::PinPolicy(m) => (StatusCode::BAD_REQUEST, "pin_policy", m.clone()),
                TokenError::TokenAbsent => (
                    StatusCode::NOT_FOUND,
                    "token_absent",
                    "未检测到这个 UKey，请确认已插好后刷新重试。".into(),
                ),
                TokenError::NotInitialized => (
                    StatusCode::CONFLICT,
                    "token_not_initialized",
                    "这把 UKey 尚未初始化。".into(),
                ),
                TokenError::AlreadyInitialized => (
                    StatusCode::CONFLICT,
                    "token_initialized",
                    "这把 UKey 已初始化，不能再次初始化；请换一把空白 UKey。".into(),
                ),
                TokenError::NoSuchKey => (
                    StatusCode::NOT_FOUND,
                    "no_such_key",
                    "UKey 中没有找到这个密钥。".into(),
                ),
                TokenError::NoSuchCertificate => (
                    StatusCode::NOT_FOUND,
                    "no_such_certificate",
                    "UKey 中没有找到这张证书。".into(),
                ),
                TokenError::Unsupported(m) => (StatusCode::BAD_REQUEST, "unsupported", m.clone()),
                TokenError::BadRequest(m) => {
                    (StatusCode::BAD_REQUEST, "invalid_request", m.clone())
                }
                TokenError::TokenFull => (
                    StatusCode::INSUFFICIENT_STORAGE,
                    "token_full",
                    "UKey 存储空间已满，请先删除不用的证书。".into(),
                ),
                TokenError::Module(_) => (
                    StatusCode::BAD_GATEWAY,
                    "module_failure",
                    "UKey 驱动出错，请重新插拔 UKey 后重试；如仍不行，请重启证书助手。".into(),
                ),
            },
            Self::OriginForbidden => (
                StatusCode::FORBIDDEN,
                "origin_forbidden",
                "证书助手不接受来自该网站的请求。".into(),
            ),
            Self::HostForbidden => (
                StatusCode::FORBIDDEN,
                "host_forbidden",
                "证书助手只接受发往本机地址的请求。".into(),
            ),
            Self::PinRequired => (
                StatusCode::BAD_REQUEST,
                "pin_required",
                "请输入 UKey 的 PIN 码。".into(),
            ),
            Self::InvalidRequest(m) => (StatusCode::BAD_REQUEST, "invalid_request", m.clone()),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("请求内容过大（上限 {} KB）。", BODY_LIMIT / 1024),
            ),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found", "没有这个接口。".into()),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "该接口不支持这种请求方法。".into(),
            ),
            Self::SoPinRequired => (
                StatusCode::BAD_REQUEST,
                "pin_required",
                "请输入管理员 PIN 码（SO PIN）。".into(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let mut body = json!({ "code": code, "message": message });
        if let Self::Token(TokenError::Module(detail)) = &self {
            // The detail (paths, module internals) goes to the agent's log
            // and, for key vendors, into `detail`; pages show `message`.
            tracing::warn!(%detail, "token module failure");
            body["detail"] = json!(detail);
        }
        if let Self::Token(
            TokenError::WrongPin { retries_left } | TokenError::WrongSoPin { retries_left },
        ) = &self
        {
            body["retries_left"] = json!(retries_left);
        }
        (status, Json(body)).into_response()
    }
}

/// A JSON body whose rejections are [`ApiError`]s.
#[derive(Debug)]
pub struct Body<T>(pub T);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_origins_are_checked() {
        assert_eq!(
            check_origin("https://Hall.example.cn/").as_deref(),
            Ok("https://hall.example.cn")
        );
        assert_eq!(
            check_origin("https://hall.example.cn:443").as_deref(),
            Ok("https://hall.example.cn")
        );
        assert_eq!(
            check_origin("http://127.0.0.1:8080").as_deref(),
            Ok("http://127.0.0.1:8080")
        );
        for bad in [
            "null",
            "*",
            "local",
            "https://a/b",
            "file://",
            "hall.example.cn",
            "https://u@a",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }
}

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::PayloadTooLarge)
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::InvalidRequest(
                "请求须为 JSON（Content-Type: application/json）。".into(),
            )),
            Err(e) => Err(ApiError::InvalidRequest(format!(
                "请求内容不正确：{}",
                e.body_text()
            ))),
        }
    }
}

/// A PIN field: required and non-empty for every private-key operation.
fn pin(value: Option<String>) -> Result<Pin, ApiError> {
    match value {
        Some(p) if !p.is_empty() => Ok(Pin::new(p)),
        _ => Err(ApiError::PinRequired),
    }
}

fn key_id(hex_id: &str) -> Result<Vec<u8>, ApiError> {
    hex::decode(hex_id).map_err(|_| ApiError::Token(TokenError::NoSuchKey))
}

async fn status(State(agent): State<Agent>) -> Json<serde_json::Value> {
    Json(json!({
        "agent": "certhall-agent",
        "version": env!("CARGO_PKG_VERSION"),
        "api": API_VERSION,
        "backends": agent.0.backends.iter().map(|b| b.kind()).collect::<Vec<_>>(),
    }))
}

/// A token as the API shows it.
#[derive(Debug, Serialize)]
struct TokenView {
    id: String,
    backend: &'static str,
    label: String,
    manufacturer: String,
    model: String,
    serial: String,
    initialized: bool,
    pin: PinView,
    certificates: Vec<CertificateView>,
    keys: Vec<KeyView>,
}

#[derive(Debug, Serialize)]
struct PinView {
    retries_left: Option<u32>,
    locked: bool,
}

/// A key pair as the API shows it.
#[derive(Debug, Serialize)]
pub struct KeyView {
    key_id: String,
    label: String,
    algorithm: &'static str,
    public_key: String,
    has_certificate: bool,
}

/// A certificate as the API shows it.
#[derive(Debug, Serialize)]
pub struct CertificateView {
    key_id: String,
    label: String,
    subject: String,
    common_name: Option<String>,
    issuer: String,
    serial: String,
    not_before: String,
    not_after: String,
    key_algorithm: &'static str,
    fingerprint_sha256: String,
    certificate: String,
    chain: Vec<String>,
}

/// The API's name of a key algorithm.
pub fn algorithm_name(alg: KeyAlgorithm) -> &'static str {
    match alg {
        KeyAlgorithm::Sm2 => "sm2",
        KeyAlgorithm::EcP256 => "p256",
        KeyAlgorithm::Rsa(2048) => "rsa2048",
        KeyAlgorithm::Rsa(3072) => "rsa3072",
        KeyAlgorithm::Rsa(4096) => "rsa4096",
        KeyAlgorithm::Rsa(_) => "rsa",
    }
}

fn parse_algorithm(name: &str) -> Result<KeyAlgorithm, ApiError> {
    match name {
        "sm2" => Ok(KeyAlgorithm::Sm2),
        "p256" => Ok(KeyAlgorithm::EcP256),
        "rsa2048" => Ok(KeyAlgorithm::Rsa(2048)),
        other => Err(ApiError::InvalidRequest(format!(
            "不支持的密钥算法 {other:?}，可选 p256、rsa2048、sm2。"
        ))),
    }
}

fn key_view(k: &KeyEntry) -> KeyView {
    KeyView {
        key_id: hex::encode(&k.key_id),
        label: k.label.clone(),
        algorithm: algorithm_name(k.algorithm),
        public_key: B64.encode(&k.public_key),
        has_certificate: k.certificate.is_some(),
    }
}

fn certificate_view(k: &KeyEntry) -> Option<CertificateView> {
    let der = k.certificate.as_ref()?;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = &cert.tbs_certificate;
    let common_name = tbs
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find_map(|atv| {
            (atv.oid == COMMON_NAME).then(|| {
                atv.value
                    .decode_as::<der::asn1::Utf8StringRef<'_>>()
                    .map(|s| s.as_str().to_owned())
                    .or_else(|_| {
                        atv.value
                            .decode_as::<der::asn1::PrintableStringRef<'_>>()
                            .map(|s| s.as_str().to_owned())
                    })
                    .ok()
            })?
        });
    Some(CertificateView {
        key_id: hex::encode(&k.key_id),
        label: k.label.clone(),
        subject: certhall_ca::name::name_to_text(&tbs.subject),
        common_name,
        issuer: certhall_ca::name::name_to_text(&tbs.issuer),
        serial: hex::encode(tbs.serial_number.as_bytes()),
        not_before: rfc3339(tbs.validity.not_before.to_unix_duration()),
        not_after: rfc3339(tbs.validity.not_after.to_unix_duration()),
        key_algorithm: algorithm_name(k.algorithm),
        fingerprint_sha256: certhall_ca::issue::fingerprint_sha256(der),
        certificate: B64.encode(der),
        chain: k.chain.iter().map(|c| B64.encode(c)).collect(),
    })
}

const COMMON_NAME: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3");

fn rfc3339(since_epoch: std::time::Duration) -> String {
    time::OffsetDateTime::from_unix_timestamp(since_epoch.as_secs() as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn token_view(backend: &dyn TokenBackend, info: TokenInfo, keys: &[KeyEntry]) -> TokenView {
    TokenView {
        id: format!("{}-{}", backend.kind(), info.serial),
        backend: backend.kind(),
        label: info.label,
        manufacturer: info.manufacturer,
        model: info.model,
        serial: info.serial,
        initialized: info.initialized,
        pin: PinView {
            retries_left: info.pin_retries_left,
            locked: info.pin_locked,
        },
        certificates: keys.iter().filter_map(certificate_view).collect(),
        keys: keys.iter().map(key_view).collect(),
    }
}

/// `GET /v1/tokens`: media query (介质查询).
async fn tokens(State(agent): State<Agent>) -> Result<Json<serde_json::Value>, ApiError> {
    let backends = agent.0.backends.clone();
    let views = blocking(move || {
        let mut views = Vec::new();
        for backend in backends {
            let tokens = match backend.tokens() {
                Ok(t) => t,
                Err(e) => {
                    // One broken module must not hide the other tokens.
                    tracing::warn!("backend {} cannot list its tokens: {e}", backend.kind());
                    continue;
                }
            };
            for info in tokens {
                let keys = match backend.keys(&info.serial) {
                    Ok(k) => k,
                    Err(TokenError::TokenAbsent) => continue,
                    Err(e) => {
                        // Listed without its certificates: one unreadable
                        // token must not hide the others.
                        tracing::warn!("cannot read the objects of token {}: {e}", info.serial);
                        Vec::new()
                    }
                };
                views.push(token_view(backend.as_ref(), info, &keys));
            }
        }
        Ok(views)
    })
    .await?;
    Ok(Json(json!({ "tokens": views })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InitBody {
    label: Option<String>,
    so_pin: Option<String>,
    pin: Option<String>,
}

/// `POST /v1/tokens/{token}/init`: initialises a blank token (制证 at the
/// counter) with the label and both PINs CertHall chose, and answers the
/// token as it is now — under its new id when the module gave it a serial.
async fn init_token(
    State(agent): State<Agent>,
    Path(token): Path<String>,
    Body(body): Body<InitBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let label = body.label.unwrap_or_default().trim().to_owned();
    check_token_label(&label)?;
    // Both are new PINs: missing or empty breaks the rules like any other.
    let so_pin = Pin::new(body.so_pin.unwrap_or_default());
    let user_pin = Pin::new(body.pin.unwrap_or_default());
    so_pin.check_new()?;
    user_pin.check_new()?;
    let (backend, serial) = agent.backend(&token)?;
    let view = blocking(move || {
        let info = backend.init_token(&serial, &label, &so_pin, &user_pin)?;
        let keys = backend.keys(&info.serial)?;
        Ok(token_view(backend.as_ref(), info, &keys))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "token": view }))))
}

/// The key `key_id` on a token, or `missing` — except that on a blank token
/// (which has no keys) the answer is [`TokenError::NotInitialized`].
fn key_entry(
    backend: &dyn TokenBackend,
    serial: &str,
    key_id: &[u8],
    missing: TokenError,
) -> Result<KeyEntry, TokenError> {
    match backend
        .keys(serial)?
        .into_iter()
        .find(|k| k.key_id == key_id)
    {
        Some(entry) => Ok(entry),
        None if !backend.token(serial)?.initialized => Err(TokenError::NotInitialized),
        None => Err(missing),
    }
}

/// Body with a PIN only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    pin: Option<String>,
}

async fn verify_pin(
    State(agent): State<Agent>,
    Path(token): Path<String>,
    Body(body): Body<PinBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let pin = pin(body.pin)?;
    let (backend, serial) = agent.backend(&token)?;
    blocking(move || backend.verify_pin(&serial, &pin)).await?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePinBody {
    pin: Option<String>,
    new_pin: Option<String>,
}

async fn change_pin(
    State(agent): State<Agent>,
    Path(token): Path<String>,
    Body(body): Body<ChangePinBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let old = pin(body.pin)?;
    let new = Pin::new(body.new_pin.unwrap_or_default());
    new.check_new()?;
    let (backend, serial) = agent.backend(&token)?;
    blocking(move || backend.change_pin(&serial, &old, &new)).await?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnblockBody {
    so_pin: Option<String>,
    new_pin: Option<String>,
}

async fn unblock_pin(
    State(agent): State<Agent>,
    Path(token): Path<String>,
    Body(body): Body<UnblockBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let so = pin(body.so_pin).map_err(|_| ApiError::SoPinRequired)?;
    let new = Pin::new(body.new_pin.unwrap_or_default());
    new.check_new()?;
    let (backend, serial) = agent.backend(&token)?;
    blocking(move || backend.unblock_pin(&serial, &so, &new)).await?;
    Ok(Json(json!({ "ok": true })))
}

/// `POST /v1/tokens/{token}/unlock/key`: a one-time key for an online PIN
/// unlock. The page hands its public half to CertHall, which seals the
/// token's SO PIN to it; the private half never leaves the agent's memory
/// and opens one box (a new call replaces it).
async fn unlock_key(
    State(agent): State<Agent>,
    Path(token): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (backend, serial) = agent.backend(&token)?;
    let info = blocking(move || backend.token(&serial)).await?;
    if !info.initialized {
        return Err(TokenError::NotInitialized.into());
    }
    let recipient = Recipient::new();
    let public_key = recipient.public_key();
    let mut keys = agent
        .0
        .unlock_keys
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    keys.retain(|_, (_, made)| made.elapsed() < UNLOCK_KEY_TTL);
    keys.insert(token, (recipient, std::time::Instant::now()));
    Ok(Json(json!({ "public_key": public_key })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnlockBody {
    sealed: String,
    new_pin: Option<String>,
}

/// `POST /v1/tokens/{token}/unlock`: opens CertHall's sealed SO PIN with
/// the one-time key, sets the new user PIN with it (unlocking the token)
/// and rotates the SO PIN to the one CertHall chose. The SO PINs exist in
/// clear only inside this call.
async fn unlock_sealed(
    State(agent): State<Agent>,
    Path(token): Path<String>,
    Body(body): Body<UnlockBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let new_pin = Pin::new(body.new_pin.unwrap_or_default());
    new_pin.check_new()?;
    let recipient = agent
        .0
        .unlock_keys
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&token)
        .filter(|(_, made)| made.elapsed() < UNLOCK_KEY_TTL)
        .map(|(r, _)| r)
        .ok_or_else(|| ApiError::InvalidRequest("解锁密钥已失效，请重新开始解锁。".into()))?;
    let (backend, serial) = agent.backend(&token)?;
    let opened = recipient
        .open(&body.sealed, serial.as_bytes())
        .map(zeroize::Zeroizing::new)
        .map_err(|_| {
            ApiError::InvalidRequest(
                "解锁数据无法打开（不是发给这把 UKey 的），请重新开始解锁。".into(),
            )
        })?;
    let release: SoPinRelease = serde_json::from_slice(&opened)
        .map_err(|_| ApiError::InvalidRequest("解锁数据格式不正确。".into()))?;
    drop(opened);
    if release.token != serial {
        return Err(ApiError::InvalidRequest(
            "解锁数据不是发给这把 UKey 的，请重新开始解锁。".into(),
        ));
    }
    let rotated = blocking(move || {
        let new_so = Pin::new(release.new_so_pin.clone());
        let mut last = TokenError::WrongSoPin { retries_left: None };
        for so in &release.so_pins {
            let so = Pin::new(so.clone());
            match backend.unblock_pin(&serial, &so, &new_pin) {
                Ok(()) => {
                    // The user PIN is set; the SO PIN CertHall released is
                    // replaced at once. A failure here leaves the token
                    // unlocked: CertHall keeps both SO PINs until told.
                    return Ok(backend.change_so_pin(&serial, &so, &new_so).is_ok());
                }
                Err(e @ TokenError::WrongSoPin { .. }) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    })
    .await?;
    Ok(Json(json!({ "ok": true, "so_pin_rotated": rotated })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateBody {
    pin: Option<String>,
    algorithm: String,
    label: Option<String>,
    subject: Option<String>,
}

/// `POST /v1/tokens/{token}/keys`: a key pair inside the token and a CSR
/// signed by it.
async fn generate_key(
    State(agent): State<Agent>,
    Path(token): Path<String>,
    Body(body): Body<GenerateBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let pin = pin(body.pin)?;
    let algorithm = parse_algorithm(&body.algorithm)?;
    let label = body
        .label
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "CertHall".to_owned());
    if label.chars().count() > 64 || label.chars().any(char::is_control) {
        return Err(ApiError::InvalidRequest(
            "密钥名称不能超过 64 个字符，且不能含控制字符。".into(),
        ));
    }
    let subject = csr::subject_or_label(body.subject.as_deref(), &label)?;
    let (backend, serial) = agent.backend(&token)?;
    let (key, csr_der) = blocking(move || {
        let key = backend.generate_key(&serial, &pin, algorithm, &label)?;
        let built = csr::build(&subject, key.algorithm, &key.public_key, |tbs| {
            backend.sign(&serial, &pin, &key.key_id, tbs)
        });
        match built {
            Ok(csr) => Ok((key, csr)),
            Err(e) => {
                // No half-made keys: a key without its request is removed.
                let _ = backend.delete_key(&serial, &pin, &key.key_id);
                Err(e)
            }
        }
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "key": key_view(&key), "csr": csr::to_pem(&csr_der)? })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateBody {
    pin: Option<String>,
    certificate: String,
    #[serde(default)]
    chain: Vec<String>,
}

/// Reads one certificate given as PEM or base64 DER.
fn certificate_der(text: &str) -> Result<Vec<u8>, ApiError> {
    let text = text.trim();
    let der = if text.starts_with("-----BEGIN") {
        let (label, der) = der::pem::decode_vec(text.as_bytes())
            .map_err(|e| ApiError::InvalidRequest(format!("证书 PEM 格式不正确：{e}")))?;
        if label != "CERTIFICATE" {
            return Err(ApiError::InvalidRequest(format!(
                "需要证书（CERTIFICATE），收到的是 {label}。"
            )));
        }
        der
    } else {
        B64.decode(text)
            .map_err(|_| ApiError::InvalidRequest("证书须为 PEM 或 Base64 编码的 DER。".into()))?
    };
    x509_cert::Certificate::from_der(&der)
        .map_err(|e| ApiError::InvalidRequest(format!("证书格式不正确：{e}")))?;
    Ok(der)
}

/// `POST /v1/tokens/{token}/keys/{key_id}/certificate`: writes the
/// certificate (and chain) next to its key.
async fn store_certificate(
    State(agent): State<Agent>,
    Path((token, key)): Path<(String, String)>,
    Body(body): Body<CertificateBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let pin = pin(body.pin)?;
    let key_id = key_id(&key)?;
    let certificate = certificate_der(&body.certificate)?;
    let chain = body
        .chain
        .iter()
        .map(|c| certificate_der(c))
        .collect::<Result<Vec<_>, _>>()?;
    let cert_spki = x509_cert::Certificate::from_der(&certificate)
        .and_then(|c| c.tbs_certificate.subject_public_key_info.to_der())
        .map_err(|e| ApiError::InvalidRequest(format!("证书格式不正确：{e}")))?;
    let (backend, serial) = agent.backend(&token)?;
    blocking(move || {
        let entry = key_entry(backend.as_ref(), &serial, &key_id, TokenError::NoSuchKey)?;
        if entry.public_key != cert_spki {
            return Err(TokenError::BadRequest(
                "这张证书不属于该密钥（公钥不一致），未写入。".into(),
            ));
        }
        backend.store_certificate(&serial, &pin, &key_id, &certificate, &chain)
    })
    .await?;
    Ok(Json(json!({ "ok": true })))
}

async fn delete_key(
    State(agent): State<Agent>,
    Path((token, key)): Path<(String, String)>,
    Body(body): Body<PinBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let pin = pin(body.pin)?;
    let key_id = key_id(&key)?;
    let (backend, serial) = agent.backend(&token)?;
    blocking(move || backend.delete_key(&serial, &pin, &key_id)).await?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignBody {
    pin: Option<String>,
    challenge: String,
    #[serde(default = "login")]
    purpose: String,
    /// Only for programs that are not web pages (no `Origin` header).
    origin: Option<String>,
}

fn login() -> String {
    "login".into()
}

/// `POST /v1/tokens/{token}/keys/{key_id}/sign`: signs a server challenge
/// (inside a [`SignedMessage`] naming the purpose and the page's origin)
/// with the key of a certificate.
async fn sign(
    State(agent): State<Agent>,
    Path((token, key)): Path<(String, String)>,
    headers: HeaderMap,
    Body(body): Body<SignBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let pin = pin(body.pin)?;
    let key_id = key_id(&key)?;
    if !challenge_well_formed(&body.challenge) {
        return Err(ApiError::InvalidRequest(
            "挑战值格式不正确（16–128 个 Base64url 字符）。".into(),
        ));
    }
    if !PURPOSES.contains(&body.purpose.as_str()) {
        return Err(ApiError::InvalidRequest(format!(
            "不支持的签名用途 {:?}。",
            body.purpose
        )));
    }
    let origin = match headers.get(header::ORIGIN).and_then(|h| h.to_str().ok()) {
        // A page: its origin, whatever the body says.
        Some(o) => o.to_ascii_lowercase(),
        None => body.origin.unwrap_or_else(|| "local".into()),
    };
    if !origin_well_formed(&origin) {
        return Err(ApiError::InvalidRequest("来源地址格式不正确。".into()));
    }
    let message = SignedMessage {
        purpose: body.purpose,
        origin,
        challenge: body.challenge,
    }
    .to_bytes();
    let (backend, serial) = agent.backend(&token)?;
    let to_sign = message.clone();
    let (signature, entry) = blocking(move || {
        let entry = key_entry(
            backend.as_ref(),
            &serial,
            &key_id,
            TokenError::NoSuchCertificate,
        )?;
        if entry.certificate.is_none() {
            return Err(TokenError::NoSuchCertificate);
        }
        let signature = backend.sign(&serial, &pin, &key_id, &to_sign)?;
        Ok((signature, entry))
    })
    .await?;
    Ok(Json(json!({
        "signature": B64.encode(signature),
        "signed_data": B64.encode(&message),
        "algorithm": algorithm_name(entry.algorithm),
        "certificate": entry.certificate.map(|c| B64.encode(c)),
    })))
}
