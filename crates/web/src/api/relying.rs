//! The relying-platform API (`/api/v1/relying/…`, docs/relying-platform.md):
//! a trading platform, with the bearer token `certhall platform add` gave
//! it, gets activation challenges, activates its users' certificates and
//! asks whether a certificate is valid and activated for it.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::Json;
use certhall_domain::Refusal;
use certhall_service::relying::{Activation, PlatformCertificateStatus, PlatformInfo};
use serde_json::{json, Value};

use super::json::Body;
use crate::cert_login::SignedAnswer;
use crate::error::{ApiError, WebError};
use crate::extract::ClientMeta;
use crate::AppState;

/// A platform that presented a valid `Authorization: Bearer` token.
#[derive(Debug, Clone)]
pub struct Platform(pub PlatformInfo);

impl FromRequestParts<AppState> for Platform {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError(WebError::Refused(Refusal::PlatformUnauthorized)))?;
        let meta = crate::extract::request_meta(parts, state);
        Ok(Self(
            state.services.authenticate_platform(token, &meta).await?,
        ))
    }
}

fn status_json(s: &PlatformCertificateStatus) -> Value {
    json!({
        "serial": s.serial,
        "status": s.status,
        "valid": matches!(s.status, "valid" | "expiring"),
        "not_after": s.not_after.rfc3339(),
        "revoked_at": s.revoked_at.map(|t| t.rfc3339()),
        "revocation_reason": s.revocation_reason,
        "for_this_platform": s.for_this_platform,
        "activated": s.activated_at.is_some(),
        "activated_at": s.activated_at.map(|t| t.rfc3339()),
    })
}

/// `POST /api/v1/relying/challenges`: a challenge for the platform's page
/// to have the user's key sign (purpose `activate`), valid two minutes.
pub async fn challenge(
    State(state): State<AppState>,
    Platform(platform): Platform,
    ClientMeta(meta): ClientMeta,
) -> Result<Json<Value>, ApiError> {
    let c = state
        .services
        .issue_activation_challenge(&platform, &meta)
        .await?;
    Ok(Json(json!({
        "challenge": c.challenge,
        "expires_at": c.expires_at.rfc3339(),
        "purpose": "activate",
    })))
}

/// `POST /api/v1/relying/activations`: `{"challenge", "certificate",
/// "signed_data", "signature"}` (base64), as the key agent answered.
pub async fn activate(
    State(state): State<AppState>,
    Platform(platform): Platform,
    ClientMeta(meta): ClientMeta,
    Body(req): Body<SignedAnswer>,
) -> Result<Json<Value>, ApiError> {
    let presented = req.presented();
    let input = presented.input(&req.challenge, "", &[]);
    let done = state
        .services
        .activate_certificate(
            &platform,
            Activation {
                challenge: input.challenge,
                certificate: input.certificate,
                signed_data: input.signed_data,
                signature: input.signature,
            },
            &meta,
        )
        .await?;
    Ok(Json(status_json(&done)))
}

/// `GET /api/v1/relying/certificates/{serial}`: valid? activated for me?
pub async fn certificate(
    State(state): State<AppState>,
    Platform(platform): Platform,
    Path(serial): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = state
        .services
        .platform_certificate_status(&platform, &serial)
        .await?;
    Ok(Json(status_json(&s)))
}
