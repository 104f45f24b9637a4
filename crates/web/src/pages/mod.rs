//! The pages people see, in Simplified Chinese. One template struct per
//! page; templates share `base.html` and partials named `_*.html`.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use certhall_service::auth::SessionInfo;
use serde::Deserialize;

use crate::error::ErrorPage;
use crate::extract::BrowserId;
use crate::{assets, paths, AppState};

pub mod addresses;
pub mod business;
pub mod certificates;
pub mod checkout;
pub mod dev;
pub mod home;
pub mod lifecycle;
pub mod login;
pub mod materials;
pub mod messages;
pub mod order_actions;
pub mod orders;
pub mod pay;
pub mod pki;
pub mod revocation;

/// A form with only the CSRF token (a button that posts).
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// The page routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::LOGIN, get(login::show).post(login::submit))
        .route(paths::LOGIN_CODE, post(login::send_code))
        .route(paths::LOGIN_CERT, post(login::cert_submit))
        .route(paths::LOGIN_CERT_CHALLENGE, post(login::cert_challenge))
        .route(paths::LOGIN_CERT_FAILURE, post(login::cert_failure))
        .route(paths::LOGOUT, post(login::logout))
        .route(paths::HOME, get(home::show))
        .route(paths::MESSAGES, get(messages::list))
        .route("/messages/{id}/read", post(messages::mark_read))
        .route(paths::MESSAGES_READ_ALL, post(messages::mark_all_read))
        .route(paths::APPLY_NEW, get(orders::apply_new))
        .route("/orders/new", post(orders::start))
        .route("/orders/{id}", get(orders::show))
        .route(
            "/orders/{id}/step/{n}",
            get(orders::step_show).post(orders::step_submit),
        )
        .route(
            "/orders/{id}/checkout",
            get(checkout::show).post(checkout::submit),
        )
        .route("/orders/{id}/checkout/revise", post(checkout::revise))
        .route("/orders/{id}/pay", get(pay::pay_show).post(pay::pay_submit))
        .route("/orders/{id}/pay/status", get(pay::pay_status))
        .route(
            "/orders/{id}/cancel",
            get(order_actions::cancel_show).post(order_actions::cancel_submit),
        )
        .route(
            "/orders/{id}/authorization/resend",
            post(order_actions::resend_authorization),
        )
        .route(
            "/orders/{id}/authorization/revise",
            post(order_actions::revise_authorization),
        )
        .route(paths::ADDRESSES, get(addresses::list).post(addresses::add))
        .route("/addresses/{id}", post(addresses::update))
        .route("/addresses/{id}/default", post(addresses::make_default))
        .route("/addresses/{id}/delete", post(addresses::delete))
        .route(paths::RENEW, get(lifecycle::renew))
        .route(paths::UNLOCK, get(lifecycle::unlock))
        .route(paths::CHANGE, get(lifecycle::change))
        .route("/orders/{id}/write", get(lifecycle::write_change))
        .route(paths::ACTIVATE, get(business::activate))
        .route(paths::ORDERS, get(orders::list))
        .route(paths::CERTIFICATES, get(certificates::list))
        .route("/certificates/{serial}", get(certificates::show))
        .route(
            "/certificates/{serial}/reminders",
            post(certificates::set_reminders),
        )
        .route(
            "/certificates/{serial}/revoke",
            get(revocation::revoke_show).post(revocation::revoke_submit),
        )
        .route(
            "/certificates/{serial}/replace",
            get(revocation::replace_show).post(revocation::replace_submit),
        )
        .route(
            "/certificates/{serial}/download/{format}",
            get(certificates::download),
        )
        .route(paths::CA, get(pki::show))
}

/// The logged-in user as the header shows them.
#[derive(Debug, Clone)]
pub struct HeaderUser {
    /// `138****8000`.
    pub phone_masked: String,
    /// Unread messages.
    pub unread: u32,
}

/// What every page's frame needs: the demo banner, the CSRF token for its
/// forms, the logged-in user and the active nav item.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// Show the 演示模式 banner and the outbox link.
    pub demo: bool,
    /// The CSRF token for forms on this page.
    pub csrf: String,
    /// Who is logged in.
    pub user: Option<HeaderUser>,
    /// Which nav item is active.
    pub nav: &'static str,
    /// Asset version for cache busting.
    pub asset_version: &'static str,
}

impl Chrome {
    /// The frame for `bid`'s browser and `user`.
    pub fn new(
        state: &AppState,
        bid: &BrowserId,
        user: Option<&SessionInfo>,
        nav: &'static str,
    ) -> Self {
        Self {
            demo: state.services.demo_mode(),
            csrf: bid.csrf(state),
            user: user.map(|u| HeaderUser {
                phone_masked: u.phone.masked(),
                unread: u.unread,
            }),
            nav,
            asset_version: assets::VERSION,
        }
    }
}

/// Renders a template as an HTML response.
pub fn render<T: Template>(t: &T) -> Response {
    render_with_status(StatusCode::OK, t)
}

/// Renders a template with a status code.
pub fn render_with_status<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(html) => (
            status,
            [(axum::http::header::CACHE_CONTROL, "no-store")],
            Html(html),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "页面渲染失败，请稍后重试。",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate {
    chrome: Chrome,
    title: &'static str,
    message: String,
}

/// The error page (rendered by the chrome layer from an [`ErrorPage`]).
pub fn error_page(state: &AppState, page: &ErrorPage) -> Response {
    let title = match page.status {
        StatusCode::NOT_FOUND => "页面不存在",
        StatusCode::FORBIDDEN => "无法完成操作",
        StatusCode::TOO_MANY_REQUESTS => "操作过于频繁",
        s if s.is_server_error() => "系统繁忙",
        _ => "无法完成操作",
    };
    let chrome = Chrome {
        demo: state.services.demo_mode(),
        csrf: String::new(),
        user: None,
        nav: "",
        asset_version: assets::VERSION,
    };
    render_with_status(
        page.status,
        &ErrorTemplate {
            chrome,
            title,
            message: page.message.clone(),
        },
    )
}

/// Fallback: 404 page (or JSON under `/api/`).
pub async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return crate::error::ApiError(certhall_domain::Refusal::NotFound.into()).into_response();
    }
    crate::error::PageError(certhall_domain::Refusal::NotFound.into()).into_response()
}
