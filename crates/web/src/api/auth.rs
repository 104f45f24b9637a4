//! `/api/v1/auth/…` and `/api/v1/me`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use certhall_domain::session::SessionKind;
use serde::Deserialize;
use serde_json::json;

use super::json::Body;
use crate::error::ApiError;
use crate::extract::{ApiCaller, ClientMeta};
use crate::AppState;

/// `{"phone"}`.
#[derive(Debug, Deserialize)]
pub struct SendCode {
    #[serde(default)]
    phone: String,
}

/// `POST /api/v1/auth/sms/send`.
pub async fn send_code(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Body(req): Body<SendCode>,
) -> Result<Response, ApiError> {
    let sent = state.services.send_login_code(&req.phone, &meta).await?;
    Ok(Json(json!({
        "phone": sent.phone.masked(),
        "resend_after_secs": sent.resend_after_secs,
        "valid_minutes": sent.valid_minutes,
    }))
    .into_response())
}

/// `{"phone","code"}`.
#[derive(Debug, Deserialize)]
pub struct VerifyCode {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    code: String,
}

/// `POST /api/v1/auth/sms/verify` → `{"token"}` (a bearer token).
pub async fn verify_code(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Body(req): Body<VerifyCode>,
) -> Result<Response, ApiError> {
    let done = state
        .services
        .verify_login_code(&req.phone, &req.code, SessionKind::Api, None, &meta)
        .await?;
    Ok(Json(json!({
        "token": done.token.as_str(),
        "token_type": "Bearer",
        "account_id": done.account_id.0,
        "new_account": done.new_account,
        "idle_timeout_secs": state.services.sessions.idle_timeout.as_secs(),
    }))
    .into_response())
}

/// `POST /api/v1/auth/logout`.
pub async fn logout(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    ApiCaller(who): ApiCaller,
) -> Result<Response, ApiError> {
    state.services.logout(&who, &meta).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/me`.
pub async fn me(ApiCaller(who): ApiCaller) -> Response {
    Json(json!({
        "account_id": who.account_id.0,
        "phone": who.phone.as_str(),
        "phone_masked": who.phone.masked(),
        "unread_messages": who.unread,
    }))
    .into_response()
}

/// `POST /api/v1/auth/cert/challenge` (body `{}`) → `{"challenge","expires_at"}`.
/// The JSON body is required so that another site cannot make browsers ask
/// for challenges (and use up their IP's quota) with a plain form post: a
/// JSON request from another origin needs a CORS preflight CertHall denies.
pub async fn cert_challenge(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Body(_): Body<serde_json::Map<String, serde_json::Value>>,
) -> Result<Response, ApiError> {
    let issued = state
        .services
        .issue_login_challenge(certhall_domain::cert_login::API_BINDING, &meta)
        .await?;
    Ok(Json(json!({
        "challenge": issued.challenge,
        "expires_at": issued.expires_at.rfc3339(),
        "purpose": "login",
    }))
    .into_response())
}

/// `POST /api/v1/auth/cert/login` → `{"token"}` (a bearer token).
pub async fn cert_login(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Body(req): Body<crate::cert_login::SignedAnswer>,
) -> Result<Response, ApiError> {
    let presented = req.presented();
    let origins = crate::cert_login::accepted_origins(&state);
    let done = state
        .services
        .login_with_certificate(
            presented.input(
                &req.challenge,
                certhall_domain::cert_login::API_BINDING,
                origins,
            ),
            SessionKind::Api,
            None,
            &meta,
        )
        .await?;
    Ok(Json(json!({
        "token": done.token.as_str(),
        "token_type": "Bearer",
        "account_id": done.account_id.0,
        "new_account": false,
        "idle_timeout_secs": state.services.sessions.idle_timeout.as_secs(),
    }))
    .into_response())
}

/// `{"challenge","code","retries_left"}`: what the agent answered.
#[derive(Debug, Deserialize)]
pub struct KeyFailureReport {
    #[serde(default)]
    pub(crate) challenge: String,
    #[serde(default)]
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) retries_left: Option<u32>,
}

/// `POST /api/v1/auth/cert/failure`: the key refused (wrong PIN, locked);
/// the challenge is used up and the refusal audited. 200 with the message
/// to show; an unusable challenge is an error as in login.
pub async fn cert_failure(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Body(req): Body<KeyFailureReport>,
) -> Result<Response, ApiError> {
    let refusal = state
        .services
        .report_key_failure(
            &req.challenge,
            certhall_domain::cert_login::API_BINDING,
            crate::cert_login::key_refusal(&req.code, req.retries_left),
            &meta,
        )
        .await?;
    crate::cert_login::key_failure_recorded(refusal)
}
