//! Errors at the edge: one conversion to a page, one to JSON (STYLE.md §5).
//!
//! A refusal carries its own Chinese message and machine code. A fault
//! (database down, SMS provider failing) is logged in full with an incident
//! id; the user sees only a plain Chinese apology and that id to quote.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use certhall_domain::{Refusal, RefusalKind};
use certhall_service::ServiceError;
use rand::Rng;

/// The HTTP status of a refusal.
pub fn status_of(r: &Refusal) -> StatusCode {
    match r.kind() {
        RefusalKind::Invalid => StatusCode::BAD_REQUEST,
        RefusalKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        RefusalKind::Forbidden => StatusCode::FORBIDDEN,
        RefusalKind::NotFound => StatusCode::NOT_FOUND,
        RefusalKind::Conflict => StatusCode::CONFLICT,
        RefusalKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
    }
}

/// A failure as the web layer sees it.
#[derive(Debug)]
pub enum WebError {
    /// Expected: show the refusal.
    Refused(Refusal),
    /// A fault, logged under this incident id.
    Fault {
        /// Id for the user to quote.
        incident: String,
        /// The SMS gateway failed (the message says so).
        sms: bool,
    },
    /// A payment provider failed or could not be reached.
    PaymentFault {
        /// Id for the user to quote.
        incident: String,
    },
}

impl WebError {
    /// The user-facing Chinese message.
    pub fn message_zh(&self) -> String {
        match self {
            Self::Refused(r) => r.message_zh(),
            Self::Fault {
                incident,
                sms: true,
            } => {
                format!(
                    "短信发送失败，请稍后重试。如问题持续，请联系客服并提供事件编号 {incident}。"
                )
            }
            Self::Fault {
                incident,
                sms: false,
            } => {
                format!("系统繁忙，请稍后重试。如问题持续，请联系客服并提供事件编号 {incident}。")
            }
            Self::PaymentFault { incident } => format!(
                "支付渠道暂时无法连接，请稍后重试。订单和已填写的信息均已保留。如问题持续，请联系客服并提供事件编号 {incident}。"
            ),
        }
    }

    /// The machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused(r) => r.code(),
            Self::Fault { sms: true, .. } => "sms_unavailable",
            Self::Fault { sms: false, .. } => "internal_error",
            Self::PaymentFault { .. } => "payment_unavailable",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Refused(r) => status_of(r),
            Self::Fault { sms: true, .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Fault { sms: false, .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::PaymentFault { .. } => StatusCode::BAD_GATEWAY,
        }
    }
}

fn incident_id() -> String {
    format!("{:08X}", rand::thread_rng().gen::<u32>())
}

impl From<ServiceError> for WebError {
    fn from(e: ServiceError) -> Self {
        let (what, sms) = match &e {
            ServiceError::Refused(r) => return Self::Refused(r.clone()),
            ServiceError::Payment(_) => {
                let incident = incident_id();
                tracing::error!(%incident, error = %e, "payment provider failed");
                return Self::PaymentFault { incident };
            }
            ServiceError::Sms(_) => ("sms gateway failed", true),
            ServiceError::Store(_) => ("storage failed", false),
            ServiceError::Ca(_) => ("CA engine failed", false),
            ServiceError::Courier(_) => ("courier failed", false),
            ServiceError::Internal(_) => ("internal failure", false),
        };
        let incident = incident_id();
        tracing::error!(%incident, error = %e, "{what}");
        Self::Fault { incident, sms }
    }
}

impl From<Refusal> for WebError {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}

/// An error answered with a page (the chrome layer renders it).
#[derive(Debug)]
pub struct PageError(pub WebError);

/// Asks the page layer to render an error page with this content.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    /// The message.
    pub message: String,
    /// The status.
    pub status: StatusCode,
}

impl<E: Into<WebError>> From<E> for PageError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if let WebError::Refused(Refusal::NotLoggedIn | Refusal::SessionExpired) = self.0 {
            return Redirect::to(crate::paths::LOGIN).into_response();
        }
        let page = ErrorPage {
            message: self.0.message_zh(),
            status: self.0.status(),
        };
        let mut res = page.status.into_response();
        res.extensions_mut().insert(page);
        res
    }
}

/// An error answered with JSON `{"code","message"}`.
#[derive(Debug)]
pub struct ApiError(pub WebError);

impl<E: Into<WebError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.0.code(), "message": self.0.message_zh() });
        let mut res = (self.0.status(), Json(body)).into_response();
        if let WebError::Refused(Refusal::ResendTooSoon { wait_secs }) = self.0 {
            if let Ok(v) = axum::http::HeaderValue::from_str(&wait_secs.to_string()) {
                res.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        res
    }
}
