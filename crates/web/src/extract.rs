//! Who is calling, and with what: the extractors every handler uses.
//!
//! - [`ClientMeta`]: the client's IP and user agent, for limits and audit.
//! - [`BrowserId`]: an opaque per-browser id kept in the `ch_bid` cookie; CSRF
//!   tokens are a keyed hash of it (double-submit, unforgeable without the
//!   server secret). It changes at login and logout.
//! - [`Applicant`]: a logged-in person on a page; otherwise a redirect to the
//!   login page.
//! - [`ApiCaller`]: a logged-in API client, by bearer token, or by the browser
//!   session cookie plus an `X-CSRF-Token` header on state-changing calls.
//! - [`CsrfForm`]: a urlencoded form whose `_csrf` field must match.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use certhall_domain::audit::Actor;
use certhall_domain::session::{csrf_token, csrf_valid, new_browser_id, SessionToken};
use certhall_domain::Refusal;
use certhall_service::auth::SessionInfo;
use certhall_service::{RequestMeta, ServiceError};
use rand::rngs::OsRng;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorPage, PageError, WebError};
use crate::{paths, AppState};

/// Cookie carrying the session token.
pub const SESSION_COOKIE: &str = "ch_session";
/// Cookie carrying the browser id.
pub const BROWSER_COOKIE: &str = "ch_bid";
/// Header carrying the CSRF token on cookie-authenticated API calls.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The client's IP address and user agent.
#[derive(Debug, Clone)]
pub struct ClientMeta(pub RequestMeta);

impl<S> FromRequestParts<S> for ClientMeta
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        Ok(Self(request_meta(parts, &state)))
    }
}

/// The request's path as the client sent it (inside a nested router
/// `parts.uri` has lost the prefix).
pub(crate) fn full_path(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| parts.uri.path().to_owned(), |u| u.path().to_owned())
}

/// The audit facts of a request (client IP per [`crate::WebConfig::trust_forwarded_for`], user agent).
pub(crate) fn request_meta(parts: &Parts, state: &AppState) -> RequestMeta {
    let forwarded = state
        .config
        .trust_forwarded_for
        .then(|| parts.headers.get("x-forwarded-for"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let ip = forwarded.or_else(|| {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string())
    });
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect());
    RequestMeta { ip, user_agent }
}

/// The browser's opaque id (see the module docs).
#[derive(Debug, Clone)]
pub struct BrowserId(pub String);

impl BrowserId {
    /// The CSRF token forms rendered for this browser must carry.
    pub fn csrf(&self, state: &AppState) -> String {
        csrf_token(&state.services.secret, &self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BrowserId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<BrowserId>()
            .cloned()
            .unwrap_or_else(|| BrowserId(String::new())))
    }
}

fn valid_browser_id(s: &str) -> bool {
    s.len() == 22
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A cookie with CertHall's attributes: `HttpOnly`, `SameSite=Lax`, path `/`,
/// `Secure` when configured.
pub fn cookie(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(state.config.secure_cookies)
        .build()
}

/// A cookie that deletes `name`.
pub fn removal(state: &AppState, name: &'static str) -> Cookie<'static> {
    let mut c = cookie(state, name, String::new());
    c.make_removal();
    c
}

/// A fresh browser id and its cookie.
pub fn fresh_browser_id(state: &AppState) -> (BrowserId, Cookie<'static>) {
    let id = new_browser_id(&mut OsRng);
    let c = cookie(state, BROWSER_COOKIE, id.clone());
    (BrowserId(id), c)
}

/// Middleware for every request: gives the browser an id when it has none,
/// and renders [`ErrorPage`]s with the site chrome.
pub async fn browser_id_layer(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let jar = CookieJar::from_headers(req.headers());
    let existing = jar
        .get(BROWSER_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| valid_browser_id(v));
    let (id, new_cookie) = match existing {
        Some(v) => (BrowserId(v), None),
        None => {
            let (id, c) = fresh_browser_id(&state);
            (id, Some(c))
        }
    };
    req.extensions_mut().insert(id);
    let mut res = next.run(req).await;
    if let Some(page) = res.extensions_mut().remove::<ErrorPage>() {
        res = crate::pages::error_page(&state, &page);
    }
    if let Some(c) = new_cookie {
        let api_or_asset = res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| !v.to_str().unwrap_or_default().starts_with("text/html"));
        if !api_or_asset {
            if let Ok(v) = c.encoded().to_string().parse() {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
        }
    }
    res
}

fn session_token_from_cookie(headers: &HeaderMap) -> Option<SessionToken> {
    CookieJar::from_headers(headers)
        .get(SESSION_COOKIE)
        .and_then(|c| SessionToken::from_client(c.value()))
}

/// The session token a browser presents, if any (for rotation at login).
pub fn presented_session(headers: &HeaderMap) -> Option<SessionToken> {
    session_token_from_cookie(headers)
}

/// A logged-in applicant (经办人) on a page.
#[derive(Debug, Clone)]
pub struct Applicant(pub SessionInfo);

/// What a page shows when the visitor is not logged in.
#[derive(Debug)]
pub struct LoginRedirect(Response);

impl IntoResponse for LoginRedirect {
    fn into_response(self) -> Response {
        self.0
    }
}

impl<S> FromRequestParts<S> for Applicant
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = LoginRedirect;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(paths::HOME);
        let to_login = |expired: bool| {
            let mut url = format!("{}?next={}", paths::LOGIN, urlencode(next));
            if expired {
                url.push_str("&expired=1");
            }
            LoginRedirect(Redirect::to(&url).into_response())
        };
        let Some(token) = session_token_from_cookie(&parts.headers) else {
            return Err(to_login(false));
        };
        match state.services.authenticate(&token).await {
            Ok(info) => Ok(Self(info)),
            Err(ServiceError::Refused(Refusal::SessionExpired)) => Err(to_login(true)),
            Err(ServiceError::Refused(_)) => Err(to_login(false)),
            Err(e) => Err(LoginRedirect(PageError::from(e).into_response())),
        }
    }
}

/// Same as [`Applicant`], but absent instead of redirecting.
#[derive(Debug, Clone)]
pub struct MaybeApplicant(pub Option<SessionInfo>);

impl<S> FromRequestParts<S> for MaybeApplicant
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let Some(token) = session_token_from_cookie(&parts.headers) else {
            return Ok(Self(None));
        };
        Ok(Self(state.services.authenticate(&token).await.ok()))
    }
}

/// A logged-in API client.
#[derive(Debug, Clone)]
pub struct ApiCaller(pub SessionInfo);

impl<S> FromRequestParts<S> for ApiCaller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let token = bearer_token(&parts.headers).ok_or(Refusal::BadToken)?;
            return match state.services.authenticate(&token).await {
                Ok(info) => Ok(Self(info)),
                Err(ServiceError::Refused(Refusal::NotLoggedIn)) => Err(Refusal::BadToken.into()),
                Err(e) => Err(e.into()),
            };
        }
        let token = session_token_from_cookie(&parts.headers).ok_or(Refusal::NotLoggedIn)?;
        let info = state.services.authenticate(&token).await?;
        let safe_method = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe_method && !csrf_header_valid(parts, &state) {
            let meta = request_meta(parts, &state);
            let _ = state
                .services
                .record_csrf_rejection(Actor::Account(info.account_id), &full_path(parts), &meta)
                .await;
            return Err(Refusal::CsrfMismatch.into());
        }
        Ok(Self(info))
    }
}

/// True when the request carries, in `X-CSRF-Token`, the CSRF token of
/// its browser id (the JSON routes' check; forms use [`CsrfForm`]).
pub(crate) fn csrf_header_valid(parts: &Parts, state: &AppState) -> bool {
    let bid = parts
        .extensions
        .get::<BrowserId>()
        .map(|b| b.0.clone())
        .unwrap_or_default();
    let presented = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    csrf_valid(&state.services.secret, &bid, presented)
}

/// A urlencoded form that passed the CSRF check.
#[derive(Debug)]
pub struct CsrfForm<T>(pub T);

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

impl<S, T> FromRequest<S> for CsrfForm<T>
where
    AppState: FromRef<S>,
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = PageError;

    async fn from_request(req: Request<Body>, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, 256 * 1024)
            .await
            .map_err(|_| PageError(WebError::Refused(Refusal::MissingField("表单内容"))))?;
        let field: CsrfField = serde_urlencoded::from_bytes(&bytes).unwrap_or(CsrfField {
            csrf: String::new(),
        });
        check_csrf(&state, &parts, &field.csrf).await?;
        let value = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| PageError(WebError::Refused(Refusal::MissingField("必填项"))))?;
        Ok(Self(value))
    }
}

/// Refuses (and audits) a form whose CSRF token does not match the
/// browser id.
async fn check_csrf(state: &AppState, parts: &Parts, token: &str) -> Result<(), PageError> {
    let bid = parts
        .extensions
        .get::<BrowserId>()
        .map(|b| b.0.clone())
        .unwrap_or_default();
    if csrf_valid(&state.services.secret, &bid, token) {
        return Ok(());
    }
    let meta = request_meta(parts, state);
    let actor = match session_token_from_cookie(&parts.headers) {
        Some(t) => match state.services.authenticate(&t).await {
            Ok(info) => Actor::Account(info.account_id),
            Err(_) => Actor::Anonymous,
        },
        None => Actor::Anonymous,
    };
    state
        .services
        .record_csrf_rejection(actor, &full_path(parts), &meta)
        .await?;
    Err(Refusal::CsrfMismatch.into())
}

/// Largest multipart form accepted on the upload pages: four images at the
/// 5 MB limit plus the typed fields, with room for a file somewhat over
/// the limit to reach the image check (and its clear message).
pub const UPLOAD_FORM_LIMIT: usize = 22 * 1024 * 1024;

/// Largest body of the routes that take one image (step 3's form, the
/// API's image upload): one image at the 5 MB limit, the fields, and room
/// for a file somewhat over the limit to get the image check's message.
pub const SINGLE_IMAGE_LIMIT: usize = 6 * 1024 * 1024;

/// A file of a multipart form.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    /// The form field's name.
    pub field: String,
    /// The file name the browser sent (shown only).
    pub file_name: String,
    /// The content, as sent.
    pub bytes: Vec<u8>,
}

/// A multipart form: text fields and chosen files (empty file inputs are
/// left out).
#[derive(Debug, Default)]
pub struct UploadForm {
    /// Text fields (the last value of each name).
    pub fields: std::collections::HashMap<String, String>,
    /// Files chosen.
    pub files: Vec<UploadedFile>,
    /// Set when the body could not be read to its end (over
    /// [`UPLOAD_FORM_LIMIT`], or cut off); nothing of it is kept.
    pub broken: Option<Refusal>,
}

impl UploadForm {
    /// A text field, or "".
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

/// A `multipart/form-data` form whose `_csrf` field must match. A body over
/// the route's limit is answered with a message instead of a bare error:
/// the form then comes with [`UploadForm::broken`] set and nothing in it.
#[derive(Debug)]
pub struct CsrfMultipart(pub UploadForm);

fn too_large() -> Refusal {
    Refusal::UploadRefused {
        material: "上传的文件",
        code: "upload_too_large",
        message:
            "本次上传的内容过大或不完整，请压缩图片（每张不超过 5 MB）后重新上传，必要时分次上传。"
                .into(),
    }
}

impl<S> FromRequest<S> for CsrfMultipart
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request(req: Request<Body>, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppState::from_ref(state);
        let (parts, body) = req.into_parts();
        // The route's DefaultBodyLimit (UPLOAD_FORM_LIMIT) bounds the read.
        let mut multipart =
            axum::extract::Multipart::from_request(Request::from_parts(parts.clone(), body), state)
                .await
                .map_err(|_| PageError(WebError::Refused(Refusal::MissingField("表单内容"))))?;
        let mut form = UploadForm::default();
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => {
                    form.broken = Some(too_large());
                    break;
                }
            };
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let bytes = match field.bytes().await {
                Ok(b) => b,
                Err(_) => {
                    form.broken = Some(too_large());
                    break;
                }
            };
            match file_name {
                Some(file_name) => {
                    if !(file_name.is_empty() && bytes.is_empty()) {
                        form.files.push(UploadedFile {
                            field: name,
                            file_name,
                            bytes: bytes.to_vec(),
                        });
                    }
                }
                None => {
                    let text = String::from_utf8_lossy(&bytes).chars().take(4000).collect();
                    form.fields.insert(name, text);
                }
            }
        }
        if form.broken.is_some() {
            // Nothing of a body that could not be read is used (so it
            // needs no CSRF check): the handler only shows the message.
            form.files.clear();
            form.fields.clear();
            return Ok(Self(form));
        }
        check_csrf(&app, &parts, form.field("_csrf")).await?;
        Ok(Self(form))
    }
}

/// The session token of an `Authorization: Bearer …` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<SessionToken> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| SessionToken::from_client(t.trim()))
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|q| q.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}
