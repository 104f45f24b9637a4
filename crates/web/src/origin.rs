//! The `Origin` check: a second line next to the CSRF token. A browser
//! names the page a state-changing request comes from; when it does, that
//! must be one of CertHall's own origins (the public URL, the configured
//! extra origins) or the origin the request was addressed to (its `Host`).
//! `Origin: null` (sandboxed frames, `file:` pages, some redirects) is
//! refused. A request without `Origin` (API clients, old browsers) is left
//! to the CSRF token or the bearer token.
//!
//! Server-to-server routes are exempt: providers' callbacks (they are
//! verified by signature). OCSP is mounted outside this layer.

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use certhall_domain::audit::Actor;
use certhall_domain::cert_login::origin_of;
use certhall_domain::Refusal;
use certhall_service::AccessRefusal;
use serde_json::json;

use crate::error::{ApiError, PageError};
use crate::{cert_login, paths, AppState};

/// Paths that providers and relying parties call from their servers.
const EXEMPT_PREFIXES: &[&str] = &[
    "/hooks/",
    "/api/v1/payment/notify/",
    paths::DEV_WECHATPAY,
    paths::DEV_SMS_INBOUND,
];

/// The middleware: refuses (and audits, throttled) a state-changing
/// request whose `Origin` is not CertHall's.
pub async fn check_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return next.run(req).await;
    }
    let path = req.uri().path();
    if EXEMPT_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return next.run(req).await;
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return next.run(req).await;
    };
    let origin = origin.to_str().unwrap_or("null").to_owned();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if origin_acceptable(&origin, host, cert_login::accepted_origins(&state)) {
        return next.run(req).await;
    }
    let (parts, _) = req.into_parts();
    let meta = crate::extract::request_meta(&parts, &state);
    let shown: String = origin.chars().take(200).collect();
    if let Err(e) = state
        .services
        .audit_access_refused(
            AccessRefusal {
                actor: Actor::Anonymous,
                reason: "foreign_origin",
                target: json!({ "path": parts.uri.path(), "origin": shown }),
            },
            &meta,
        )
        .await
    {
        tracing::warn!(error = %e, "could not record a foreign-origin refusal");
    }
    if parts.uri.path().starts_with("/api/") {
        ApiError::from(Refusal::ForeignOrigin).into_response()
    } else {
        PageError::from(Refusal::ForeignOrigin).into_response()
    }
}

/// Is `origin` (an `Origin` header) one of `accepted`, or the origin of
/// the request's own `host`?
pub fn origin_acceptable(origin: &str, host: Option<&str>, accepted: &[String]) -> bool {
    // An origin has no path: "https://a.example/x" is not an origin.
    let has_path = origin
        .split_once("://")
        .is_none_or(|(_, rest)| rest.trim_end_matches('/').contains(['/', '?', '#']));
    if has_path {
        return false;
    }
    let Some(normalized) = origin_of(origin) else {
        return false;
    };
    if accepted.contains(&normalized) {
        return true;
    }
    let scheme = normalized.split("://").next().unwrap_or_default();
    host.and_then(|h| origin_of(&format!("{scheme}://{h}")))
        .is_some_and(|own| own == normalized)
}

/// Adds `Strict-Transport-Security` when CertHall is served over HTTPS
/// ([`crate::WebConfig::secure_cookies`]): browsers must not come back
/// over plain HTTP for a year. Not `includeSubDomains`: CertHall does not
/// know the other hosts of its domain.
pub async fn strict_transport(State(state): State<AppState>, mut res: Response) -> Response {
    if state.config.secure_cookies {
        res.headers_mut()
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert(axum::http::HeaderValue::from_static("max-age=31536000"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_origins_pass_others_do_not() {
        let accepted = vec!["https://ca.example.cn".to_owned()];
        for ok in [
            ("https://ca.example.cn", None),
            ("https://CA.example.cn:443", None),
            ("http://127.0.0.1:8080", Some("127.0.0.1:8080")),
            ("https://hall.example.cn", Some("hall.example.cn:443")),
        ] {
            assert!(origin_acceptable(ok.0, ok.1, &accepted), "{ok:?}");
        }
        for bad in [
            ("null", Some("ca.example.cn")),
            ("https://evil.example", Some("ca.example.cn")),
            ("https://ca.example.cn.evil.example", None),
            ("http://127.0.0.1:8081", Some("127.0.0.1:8080")),
            ("https://ca.example.cn/path", None),
            ("", Some("ca.example.cn")),
            ("ca.example.cn", Some("ca.example.cn")),
        ] {
            assert!(!origin_acceptable(bad.0, bad.1, &accepted), "{bad:?}");
        }
    }
}
