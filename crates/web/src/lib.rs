//! CertHall's web server: the pages (Simplified Chinese, server-rendered
//! with compile-checked askama templates), the JSON API under `/api/v1`,
//! the demo-only `/dev` routes and the operations endpoints.
//!
//! Handlers are thin (STYLE.md §4): an extractor says who may call
//! ([`extract::Applicant`] for pages, [`extract::ApiCaller`] for the API),
//! the input is parsed into a typed request, one method of
//! [`certhall_service::Services`] runs, and a template or JSON is rendered.
//! Errors become a Chinese page or a `{"code","message"}` body in
//! [`error`], the only place that knows HTTP status codes.

use std::sync::Arc;

use axum::Router;
use certhall_service::Services;

pub mod api;
pub mod assets;
pub mod cert_login;
pub mod counter;
pub mod counter_certificates;
pub mod error;
pub mod extract;
pub mod hooks;
pub mod metrics;
pub mod ops;
pub mod origin;
pub mod pages;
pub mod paths;
pub mod pki;
pub mod production;

/// Settings of the web layer.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark cookies `Secure` (set when CertHall is served over HTTPS).
    pub secure_cookies: bool,
    /// Take the client IP from `X-Forwarded-For` (only behind a trusted
    /// reverse proxy that sets it).
    pub trust_forwarded_for: bool,
    /// Where pages find the local key agent (证书助手), e.g.
    /// `http://127.0.0.1:17845`; the only other origin the pages may
    /// connect to (CSP `connect-src`).
    pub agent_url: String,
    /// Origins, besides the public URL's, that CertHall's pages are served
    /// from (a site reached under several names; demo mode adds
    /// `http://127.0.0.1:<port>` and `http://localhost:<port>`). A
    /// certificate-login signature must name one of them.
    pub extra_origins: Vec<String>,
    /// Shared secret of the SMS provider's inbound push
    /// (`POST /hooks/sms/inbound`); `None` leaves the route closed.
    pub sms_inbound_token: Option<String>,
}

/// The inbound-SMS token of [`WebConfig::for_tests`].
pub const TEST_INBOUND_TOKEN: &str = "test-inbound-token-0123456789abcdef";

/// The agent's default address (certhall-agent's default port).
pub const DEFAULT_AGENT_URL: &str = "http://127.0.0.1:17845";

impl WebConfig {
    /// Settings for tests: plain HTTP, client IP from `X-Forwarded-For` so
    /// tests can act as several clients.
    pub fn for_tests() -> Self {
        Self {
            secure_cookies: false,
            trust_forwarded_for: true,
            agent_url: DEFAULT_AGENT_URL.to_owned(),
            extra_origins: Vec::new(),
            sms_inbound_token: Some(TEST_INBOUND_TOKEN.to_owned()),
        }
    }
}

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    /// The application services.
    pub services: Services,
    /// Web settings.
    pub config: WebConfig,
    /// Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// CertHall's own origins ([`cert_login::accepted_origins`]).
    accepted_origins: Vec<String>,
}

impl AppState {
    /// Builds the state.
    pub fn new(services: Services, config: WebConfig) -> Self {
        let accepted_origins =
            cert_login::origins_of(&services.ca.settings.public_url, &config.extra_origins);
        Self(Arc::new(Inner {
            services,
            config,
            metrics: metrics::Metrics::new(),
            accepted_origins,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The whole application (STYLE.md: `fn app(state) -> Router`).
pub fn app(state: AppState) -> Router {
    let csp = content_security_policy(&state.config.agent_url);

    let mut small = Router::new()
        .merge(pages::router())
        .merge(pages::materials::router())
        .merge(counter::router())
        .merge(production::router())
        .nest(
            "/api/v1",
            api::routes().merge(production::api_routes()).into_router(),
        )
        .merge(ops::router())
        .merge(assets::router())
        .route(
            "/hooks/sms/inbound",
            axum::routing::post(hooks::sms_inbound),
        )
        .route(
            paths::COURIER_PUSH,
            axum::routing::post(hooks::courier_push),
        );
    if state.services.demo_mode() {
        small = small.merge(pages::dev::router());
    }
    // Every route takes at most 256 KiB, except the image uploads, which
    // have their own limit (extract::UPLOAD_FORM_LIMIT) and answer an
    // oversized body with a message instead of a bare 413.
    let uploads = Router::new()
        .merge(pages::materials::upload_router())
        .nest("/api/v1", api::upload_routes().into_router());
    small
        .layer(tower_http::limit::RequestBodyLimitLayer::new(256 * 1024))
        .merge(uploads)
        .merge(pki::router())
        .fallback(pages::not_found)
        // Inside the browser-id layer, which renders its error pages.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            origin::check_origin,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            extract::browser_id_layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                // The path only: query strings carry phone numbers and the
                // inbound-SMS webhook's secret, which logs must not keep.
                .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                    )
                })
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::DEBUG),
                ),
        )
        .layer(nosniff())
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                axum::http::header::X_FRAME_OPTIONS,
                axum::http::HeaderValue::from_static("DENY"),
            ),
        )
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                axum::http::header::REFERRER_POLICY,
                axum::http::HeaderValue::from_static("same-origin"),
            ),
        )
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                axum::http::header::CONTENT_SECURITY_POLICY,
                csp,
            ),
        )
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            origin::strict_transport,
        ))
        // OCSP reads its body with its own, smaller limit and answers an
        // oversized one in OCSP (malformedRequest), not with a bare 413.
        // Merged after the layers above: counted in the metrics, nothing
        // else (see `pki::ocsp_router`).
        .merge(
            pki::ocsp_router()
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    metrics::track,
                ))
                .layer(nosniff()),
        )
        .with_state(state)
}

/// `X-Content-Type-Options: nosniff` on every answer that has none: for
/// the pages' stack and for the OCSP routes mounted beside it.
fn nosniff() -> tower_http::set_header::SetResponseHeaderLayer<axum::http::HeaderValue> {
    tower_http::set_header::SetResponseHeaderLayer::if_not_present(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    )
}

/// Own scripts and styles only; pages may connect to CertHall and to the
/// local key agent, nothing else.
fn content_security_policy(agent_url: &str) -> axum::http::HeaderValue {
    let agent = certhall_domain::cert_login::origin_of(agent_url).unwrap_or_default();
    axum::http::HeaderValue::from_str(&format!(
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         connect-src 'self' {agent}; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ))
    .unwrap_or_else(|_| {
        axum::http::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        )
    })
}
