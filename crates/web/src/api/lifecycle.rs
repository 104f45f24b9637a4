//! The applicant's own work on a key they hold, as JSON (issue 12): 证书更新
//! (renewal onto the same UKey) and PIN 解锁. The pages' scripts
//! (`static/renew.js`, `static/unlock.js`) call these with the session
//! cookie and `X-CSRF-Token`; API clients with their bearer token. Each
//! handler parses, calls one service and answers.

use axum::extract::{Path, State};
use axum::Json;
use base64::Engine as _;
use certhall_domain::OrderId;
use certhall_domain::Refusal;
use certhall_service::auth::CodeSent;
use certhall_service::renewal::{KeyProof, RenewalRow, RenewalStarted};
use serde::Deserialize;
use serde_json::{json, Value};

use super::json::Body;
use crate::error::ApiError;
use crate::extract::{ApiCaller, ClientMeta};
use crate::AppState;

fn code_sent(sent: &CodeSent) -> Json<Value> {
    Json(json!({
        "phone": sent.phone.masked(),
        "resend_after_secs": sent.resend_after_secs,
        "valid_minutes": sent.valid_minutes,
    }))
}

/// A challenge for the old key to sign (purpose `renew`).
fn challenge_json(issued: &certhall_service::cert_login::IssuedChallenge) -> Json<Value> {
    Json(json!({
        "challenge": issued.challenge,
        "expires_at": issued.expires_at.rfc3339(),
        "purpose": "renew",
    }))
}

fn renewal_json(r: &RenewalRow) -> Value {
    json!({
        "id": r.id,
        "state": r.state.as_str(),
        "state_label": r.state.label_zh(),
        "old_serial": r.old_serial,
        "order_id": r.order_id,
        "new_serial": r.new_serial,
        "token_serial": r.token_serial,
        "failure": r.failure,
    })
}

/// `POST /api/v1/certificates/{serial}/renewal/code`: the SMS code that
/// confirms a renewal (only within the renewal window).
pub async fn renewal_code(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(serial): Path<String>,
    ClientMeta(meta): ClientMeta,
) -> Result<Json<Value>, ApiError> {
    let sent = s
        .services
        .send_renewal_code(who.account_id, &serial, &meta)
        .await?;
    Ok(code_sent(&sent))
}

/// `POST /api/v1/certificates/{serial}/renewal/challenge`: what the old
/// key signs (purpose `renew`) to start the renewal.
pub async fn renewal_challenge(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(serial): Path<String>,
    ClientMeta(meta): ClientMeta,
) -> Result<Json<Value>, ApiError> {
    let issued = s
        .services
        .issue_renewal_challenge(who.account_id, &serial, &meta)
        .await?;
    Ok(challenge_json(&issued))
}

/// `{"token_serial","code","challenge","signed_data","signature"}`: the
/// last three are the agent's answer to the renewal challenge (base64).
#[derive(Debug, Deserialize)]
pub struct StartBody {
    #[serde(default)]
    token_serial: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    signed_data: String,
    #[serde(default)]
    signature: String,
}

impl StartBody {
    /// The agent's answer as bytes (bad base64 reads as empty, which the
    /// signature check refuses).
    fn signed(&self) -> (Vec<u8>, Vec<u8>) {
        let decode = |v: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .unwrap_or_default()
        };
        (decode(&self.signed_data), decode(&self.signature))
    }
}

impl StartBody {
    /// The proof the service checks, over the bytes of [`Self::signed`].
    fn proof<'a>(&'a self, signed: &'a (Vec<u8>, Vec<u8>), s: &'a AppState) -> KeyProof<'a> {
        KeyProof {
            challenge: &self.challenge,
            signed_data: &signed.0,
            signature: &signed.1,
            accepted_origins: crate::cert_login::accepted_origins(s),
        }
    }
}

fn started_json(started: &RenewalStarted) -> Json<Value> {
    Json(json!({
        "renewal": renewal_json(&started.renewal),
        "algorithm": started.algorithm,
        "key_label": started.key_label,
    }))
}

/// `POST /api/v1/certificates/{serial}/renewals`: opens the renewal.
pub async fn start_renewal(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(serial): Path<String>,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<StartBody>,
) -> Result<Json<Value>, ApiError> {
    let signed = b.signed();
    let proof = b.proof(&signed, &s);
    let started = s
        .services
        .start_renewal(
            who.account_id,
            &serial,
            &b.token_serial,
            &b.code,
            &proof,
            &meta,
        )
        .await?;
    Ok(started_json(&started))
}

/// `POST /api/v1/certificates/{serial}/renewal/order`: when renewal
/// carries a price, the 证书更新 order that pays for it (the one under
/// way, or a new one); answers the order and its payment page.
pub async fn renewal_order(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(serial): Path<String>,
    ClientMeta(meta): ClientMeta,
) -> Result<Json<Value>, ApiError> {
    let order = s
        .services
        .start_renewal_order(who.account_id, &serial, &meta)
        .await?;
    let next = if order.state == certhall_domain::order::OrderState::AwaitingPayment {
        crate::paths::pay(order.id)
    } else {
        crate::paths::order(order.id)
    };
    Ok(Json(json!({
        "order": {
            "id": order.id, "state": order.state.to_string(),
            "state_label": order.state.label_zh(), "amount_fen": order.amount_fen,
        },
        "next": next,
    })))
}

/// `POST /api/v1/certificates/{serial}/changes`: opens a 证书变更 order
/// for the certificate; answers the order and the page to continue on.
pub async fn start_change(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(serial): Path<String>,
    ClientMeta(meta): ClientMeta,
) -> Result<Json<Value>, ApiError> {
    let order = s
        .services
        .start_change(who.account_id, &serial, &meta)
        .await?;
    Ok(Json(json!({
        "order": { "id": order.id, "state": order.state.to_string(), "state_label": order.state.label_zh() },
        "next": crate::paths::order(order.id),
    })))
}

/// `POST /api/v1/orders/{id}/change/code`: the SMS code that confirms
/// writing an approved change order's certificate.
pub async fn change_code(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<OrderId>,
    ClientMeta(meta): ClientMeta,
) -> Result<Json<Value>, ApiError> {
    let sent = s
        .services
        .send_change_code(who.account_id, id, &meta)
        .await?;
    Ok(code_sent(&sent))
}

/// `POST /api/v1/orders/{id}/change/challenge`: what the old key signs
/// (purpose `renew`) to start the key write.
pub async fn change_challenge(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<OrderId>,
    ClientMeta(meta): ClientMeta,
) -> Result<Json<Value>, ApiError> {
    let issued = s
        .services
        .issue_change_challenge(who.account_id, id, &meta)
        .await?;
    Ok(challenge_json(&issued))
}

/// `POST /api/v1/orders/{id}/change/writes`: opens the key write of an
/// approved change order (then `/api/v1/renewals/{id}/…`).
pub async fn start_change_write(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<OrderId>,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<StartBody>,
) -> Result<Json<Value>, ApiError> {
    let signed = b.signed();
    let proof = b.proof(&signed, &s);
    let started = s
        .services
        .start_change_write(who.account_id, id, &b.token_serial, &b.code, &proof, &meta)
        .await?;
    Ok(started_json(&started))
}

/// `GET /api/v1/renewals/{id}`.
pub async fn renewal(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let r = s.services.own_renewal(who.account_id, id).await?;
    Ok(Json(json!({ "renewal": renewal_json(&r) })))
}

/// `{"csr","key_id"}`.
#[derive(Debug, Deserialize)]
pub struct CsrBody {
    #[serde(default)]
    csr: String,
    #[serde(default)]
    key_id: String,
}

/// `POST /api/v1/renewals/{id}/csr`: the new key's request; answers the
/// new certificate and its chain (PEM).
pub async fn renewal_csr(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<i64>,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<CsrBody>,
) -> Result<Json<Value>, ApiError> {
    let issued = s
        .services
        .renewal_csr(who.account_id, id, b.csr.as_bytes(), &b.key_id, &meta)
        .await?;
    Ok(Json(json!({
        "serial": issued.serial,
        "certificate": issued.certificate_pem,
        "chain": issued.chain_pem,
    })))
}

/// `{"certificate"}` (base64 DER, as the agent lists it).
#[derive(Debug, Deserialize)]
pub struct WrittenBody {
    #[serde(default)]
    certificate: String,
}

/// `POST /api/v1/renewals/{id}/written`: the certificate read back from
/// the token; equal bytes complete the renewal.
pub async fn renewal_written(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<i64>,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<WrittenBody>,
) -> Result<Json<Value>, ApiError> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(b.certificate.trim())
        .map_err(|_| Refusal::MissingField("读回的证书（base64 DER）"))?;
    let new = s
        .services
        .renewal_written(who.account_id, id, &der, &meta)
        .await?;
    Ok(Json(json!({
        "certificate": {
            "serial": new.serial,
            "not_after": new.not_after.rfc3339(),
            "predecessor_serial": new.predecessor_serial,
        }
    })))
}

/// `{"message"}`.
#[derive(Debug, Deserialize)]
pub struct FailedBody {
    #[serde(default)]
    message: String,
}

/// `POST /api/v1/renewals/{id}/failed`: the page reports a failure.
pub async fn renewal_failed(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<i64>,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<FailedBody>,
) -> Result<Json<Value>, ApiError> {
    let r = s
        .services
        .renewal_failed(who.account_id, id, &b.message, &meta)
        .await?;
    Ok(Json(json!({ "renewal": renewal_json(&r) })))
}

/// `POST /api/v1/ukeys/{token}/unlock/code`: the SMS code that confirms a
/// PIN unlock.
pub async fn unlock_code(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(token): Path<String>,
    ClientMeta(meta): ClientMeta,
) -> Result<Json<Value>, ApiError> {
    let sent = s
        .services
        .send_unlock_code(who.account_id, &token, &meta)
        .await?;
    Ok(code_sent(&sent))
}

/// `{"agent_key","code"}`.
#[derive(Debug, Deserialize)]
pub struct UnlockBody {
    #[serde(default)]
    agent_key: String,
    #[serde(default)]
    code: String,
}

/// `POST /api/v1/ukeys/{token}/unlocks`: the SO PINs sealed to the agent's
/// one-time key.
pub async fn release_so_pin(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(token): Path<String>,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<UnlockBody>,
) -> Result<Json<Value>, ApiError> {
    let released = s
        .services
        .release_so_pin(who.account_id, &token, &b.agent_key, &b.code, &meta)
        .await?;
    Ok(Json(json!({
        "unlock_id": released.unlock_id,
        "sealed": released.sealed,
    })))
}

/// `{"ok","message"}`.
#[derive(Debug, Deserialize)]
pub struct ResultBody {
    ok: bool,
    #[serde(default)]
    message: String,
}

/// `POST /api/v1/unlocks/{id}/result`: what the agent did.
pub async fn unlock_result(
    State(s): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<i64>,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<ResultBody>,
) -> Result<Json<Value>, ApiError> {
    let u = s
        .services
        .finish_pin_unlock(who.account_id, id, b.ok, &b.message, &meta)
        .await?;
    Ok(Json(json!({
        "unlock": {
            "id": u.id,
            "state": u.state.as_str(),
            "state_label": u.state.label_zh(),
            "token_serial": u.token_serial,
        }
    })))
}
