//! Demo-mode routes (only mounted while the demo SMS outbox is in use):
//! the outbox page and JSON, and the simulation of a reply from a phone.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use certhall_store::sms::{inbound_recent, outbox_recent, InboundEntry, OutboxEntry};
use serde::Deserialize;

use super::{render, Chrome};
use crate::error::{ApiError, PageError};
use crate::extract::{BrowserId, ClientMeta, CsrfForm, MaybeApplicant};
use crate::{paths, AppState};

/// Entries shown.
const SHOWN: u32 = 50;

/// The `/dev` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::DEV_OUTBOX, get(outbox))
        .route(paths::DEV_OUTBOX_JSON, get(outbox_json))
        .route(paths::DEV_OUTBOX_REPLY, post(reply_form))
        .route(paths::DEV_SMS_INBOUND, post(inbound_json))
        .route("/dev/samples/license.jpg", get(sample_license))
        .route("/dev/samples/seal.png", get(sample_seal))
}

/// A business license rendered by the OCR crate's test renderer (a made-up
/// enterprise), for trying step 3 without a real license at hand.
async fn sample_license() -> Response {
    sample(
        "image/jpeg",
        include_bytes!("../../demo/sample-license.jpg"),
    )
}

/// A seal-like image for trying step 5.
async fn sample_seal() -> Response {
    sample("image/png", include_bytes!("../../demo/sample-seal.png"))
}

fn sample(mime: &'static str, bytes: &'static [u8]) -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, mime),
            (axum::http::header::CONTENT_DISPOSITION, "attachment"),
        ],
        bytes,
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxPage {
    chrome: Chrome,
    outbox: Vec<OutboxEntry>,
    inbound: Vec<InboundEntry>,
    error: Option<String>,
    from: String,
}

async fn outbox_page(
    state: &AppState,
    bid: &BrowserId,
    user: Option<&certhall_service::auth::SessionInfo>,
    error: Option<String>,
    from: String,
) -> Result<Response, PageError> {
    let store = &state.services.store;
    Ok(render(&OutboxPage {
        chrome: Chrome::new(state, bid, user, "outbox"),
        outbox: outbox_recent(store, None, SHOWN)
            .await
            .map_err(certhall_service::ServiceError::from)?,
        inbound: inbound_recent(store, SHOWN)
            .await
            .map_err(certhall_service::ServiceError::from)?,
        error,
        from,
    }))
}

/// `GET /dev/outbox`.
async fn outbox(
    State(state): State<AppState>,
    bid: BrowserId,
    MaybeApplicant(user): MaybeApplicant,
) -> Result<Response, PageError> {
    outbox_page(&state, &bid, user.as_ref(), None, String::new()).await
}

/// `GET /dev/outbox.json`: `[{"to","body","sent_at"}]`, newest first.
async fn outbox_json(State(state): State<AppState>) -> Result<Response, ApiError> {
    let items = outbox_recent(&state.services.store, None, SHOWN)
        .await
        .map_err(certhall_service::ServiceError::from)?;
    let json: Vec<_> = items
        .iter()
        .map(|e| serde_json::json!({ "to": e.to, "body": e.body, "sent_at": e.sent_at.rfc3339() }))
        .collect();
    Ok(Json(json).into_response())
}

/// A simulated reply.
#[derive(Debug, Deserialize)]
pub struct Reply {
    #[serde(default)]
    from: String,
    #[serde(default)]
    body: String,
}

/// `POST /dev/outbox/reply` (the page's form).
async fn reply_form(
    State(state): State<AppState>,
    bid: BrowserId,
    MaybeApplicant(user): MaybeApplicant,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<Reply>,
) -> Result<Response, PageError> {
    match state
        .services
        .receive_sms(&form.from, &form.body, &meta)
        .await
    {
        Ok(_) => Ok(Redirect::to(paths::DEV_OUTBOX).into_response()),
        Err(e) => {
            let err = crate::error::WebError::from(e);
            outbox_page(
                &state,
                &bid,
                user.as_ref(),
                Some(err.message_zh()),
                form.from,
            )
            .await
        }
    }
}

/// `POST /dev/sms/inbound` with `{"from","body"}`: what a provider's
/// inbound webhook would deliver.
async fn inbound_json(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(reply): Json<Reply>,
) -> Result<Response, ApiError> {
    let outcome = state
        .services
        .receive_sms(&reply.from, &reply.body, &meta)
        .await?;
    Ok(
        Json(serde_json::json!({ "outcome": outcome.outcome, "order": outcome.order }))
            .into_response(),
    )
}
