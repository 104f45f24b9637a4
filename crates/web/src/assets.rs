//! CSS, JavaScript and images, compiled into the binary: no CDN, works on
//! networks that reach nothing but CertHall.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::AppState;

/// Cache-busting version in asset URLs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const APP_CSS: &str = include_str!("../static/app.css");
const APP_JS: &str = include_str!("../static/app.js");
const LOGO_SVG: &str = include_str!("../static/logo.svg");
const AGENT_JS: &str = include_str!("../static/agent.js");
const CERT_LOGIN_JS: &str = include_str!("../static/cert-login.js");
const CHECKOUT_JS: &str = include_str!("../static/checkout.js");
const PAY_JS: &str = include_str!("../static/pay.js");
const PRODUCTION_JS: &str = include_str!("../static/production.js");
const RENEW_JS: &str = include_str!("../static/renew.js");
const UNLOCK_JS: &str = include_str!("../static/unlock.js");
const PLATFORM_JS: &str = include_str!("../static/platform.js");
const KEY_STANDARD_SVG: &str = include_str!("../static/keys/ukey-standard.svg");
const KEY_COMPACT_SVG: &str = include_str!("../static/keys/ukey-compact.svg");

/// `/static/…`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/static/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/static/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/static/agent.js",
            get(|| async { asset("text/javascript; charset=utf-8", AGENT_JS) }),
        )
        .route(
            "/static/cert-login.js",
            get(|| async { asset("text/javascript; charset=utf-8", CERT_LOGIN_JS) }),
        )
        .route(
            "/static/checkout.js",
            get(|| async { asset("text/javascript; charset=utf-8", CHECKOUT_JS) }),
        )
        .route(
            "/static/production.js",
            get(|| async { asset("text/javascript; charset=utf-8", PRODUCTION_JS) }),
        )
        .route(
            "/static/renew.js",
            get(|| async { asset("text/javascript; charset=utf-8", RENEW_JS) }),
        )
        .route(
            "/static/unlock.js",
            get(|| async { asset("text/javascript; charset=utf-8", UNLOCK_JS) }),
        )
        .route(
            "/static/platform.js",
            get(|| async { asset("text/javascript; charset=utf-8", PLATFORM_JS) }),
        )
        .route(
            "/static/pay.js",
            get(|| async { asset("text/javascript; charset=utf-8", PAY_JS) }),
        )
        .route(
            "/static/keys/ukey-standard.svg",
            get(|| async { asset("image/svg+xml", KEY_STANDARD_SVG) }),
        )
        .route(
            "/static/keys/ukey-compact.svg",
            get(|| async { asset("image/svg+xml", KEY_COMPACT_SVG) }),
        )
        .route(
            crate::paths::DIVISIONS_JSON,
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    certhall_domain::divisions::tree_json(),
                )
            }),
        )
        .route(
            "/static/logo.svg",
            get(|| async { asset("image/svg+xml", LOGO_SVG) }),
        )
        .route(
            "/favicon.ico",
            get(|| async { asset("image/svg+xml", LOGO_SVG) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
}
