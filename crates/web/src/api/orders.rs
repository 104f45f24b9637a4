//! `/api/v1/applications` and `/api/v1/orders` (read-only for now; the
//! wizard's write API comes with step 5).

use axum::extract::{Path, State};
use axum::Json;
use certhall_domain::application::Application;
use certhall_store::orders::OrderRow;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::ApiCaller;
use crate::AppState;

fn application_json(a: &Application) -> Value {
    json!({
        "code": a.code,
        "name": a.name,
        "description": a.description,
        "profile": a.profile,
        "validity_days": a.validity_days,
        "price_fen": a.price_fen,
        "price": a.price_text(),
    })
}

fn order_json(o: &OrderRow) -> Value {
    let (state, step) = o.state.to_db();
    json!({
        "id": o.id,
        "kind": o.kind.as_str(),
        "kind_label": o.kind.label_zh(),
        "state": state,
        "step": (step != 0).then_some(step),
        "state_label": o.state.label_zh(),
        "editable": o.state.editable(),
        "version": o.version,
        "return_reason": o.return_reason,
        "created_at": o.created_at.rfc3339(),
        "updated_at": o.updated_at.rfc3339(),
    })
}

/// `GET /api/v1/applications`: what applicants may choose at step 2.
pub async fn applications(
    State(state): State<AppState>,
    ApiCaller(_): ApiCaller,
) -> Result<Json<Value>, ApiError> {
    let apps = state.services.applications(true).await?;
    Ok(Json(
        json!({ "items": apps.iter().map(application_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/v1/orders`: the caller's orders, newest first.
pub async fn list(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
) -> Result<Json<Value>, ApiError> {
    let orders = certhall_store::orders::of_account(&state.services.store, who.account_id, 100)
        .await
        .map_err(certhall_service::ServiceError::from)?;
    Ok(Json(
        json!({ "items": orders.iter().map(order_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/v1/orders/{id}`: one of the caller's orders.
pub async fn show(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let order = state.services.order_of(who.account_id, id).await?;
    Ok(Json(order_json(&order)))
}
