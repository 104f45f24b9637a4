//! `/api/v1/messages`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use certhall_domain::message::{Message, MessageId};
use certhall_service::inbox::PAGE_SIZE;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{ApiCaller, ClientMeta};
use crate::AppState;

/// `?page=&per_page=`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    page: Option<u32>,
    per_page: Option<u32>,
}

/// A message as JSON.
pub fn message_json(m: &Message) -> Value {
    json!({
        "id": m.id.0,
        "kind": m.kind.as_str(),
        "kind_label": m.kind.label_zh(),
        "title": m.title,
        "body": m.body,
        "created_at": m.created_at.rfc3339(),
        "read": m.read_at.is_some(),
        "read_at": m.read_at.map(|t| t.rfc3339()),
    })
}

/// `GET /api/v1/messages`.
pub async fn list(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let page = state
        .services
        .messages(
            who.account_id,
            q.page.unwrap_or(1),
            q.per_page.unwrap_or(PAGE_SIZE),
        )
        .await?;
    Ok(Json(json!({
        "items": page.items.iter().map(message_json).collect::<Vec<_>>(),
        "page": page.page,
        "pages": page.pages,
        "total": page.total,
        "unread": page.unread,
    }))
    .into_response())
}

/// `POST /api/v1/messages/{id}/read`.
pub async fn mark_read(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    state
        .services
        .mark_message_read(who.account_id, MessageId(id), &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/messages/read-all`.
pub async fn mark_all_read(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
) -> Result<Response, ApiError> {
    let n = state
        .services
        .mark_all_messages_read(who.account_id, &meta)
        .await?;
    Ok(Json(json!({ "marked": n })).into_response())
}
