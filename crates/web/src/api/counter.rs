//! `/api/v1/counter/…`: the counter console (柜台端) as JSON, for staff
//! tools. Operators log in in two steps like on the pages (password, then
//! the SMS code to their phone, under the same lockout and code limits) and
//! get a bearer token; applicants' tokens are not accepted here, nor
//! operators' there (separate session tables).

use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use certhall_domain::order::Step;
use certhall_domain::session::SessionToken;
use certhall_domain::{OrderId, Refusal};
use certhall_service::counter::{OperatorInfo, QueueFilter, ReviewDecision};
use serde::Deserialize;
use serde_json::{json, Value};

use super::json::Body;
use super::orders::order_json;
use crate::error::ApiError;
use crate::extract::{bearer_token, full_path, request_meta, ClientMeta};
use crate::AppState;

/// A counter operator, by bearer token.
#[derive(Debug)]
pub struct CounterCaller(pub OperatorInfo);

impl<S> FromRequestParts<S> for CounterCaller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let token = bearer_token(&parts.headers).ok_or(Refusal::NotLoggedIn)?;
        let meta = request_meta(parts, &state);
        let who = state
            .services
            .authenticate_counter_caller(&token, &full_path(parts), &meta)
            .await?;
        Ok(Self(who))
    }
}

/// `{"username","password"}`.
#[derive(Debug, Deserialize)]
pub struct PasswordBody {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `POST /api/v1/counter/login`: the password step; the code goes to the
/// operator's phone. Returns the half-done login's token.
pub async fn login(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<PasswordBody>,
) -> Result<Json<Value>, ApiError> {
    let sent = state
        .services
        .counter_password(&b.username, &b.password, &meta)
        .await?;
    Ok(Json(json!({
        "login_token": sent.pending.as_str(),
        "phone_masked": sent.phone_masked,
        "valid_minutes": sent.valid_minutes,
    })))
}

/// `{"login_token","code"}`.
#[derive(Debug, Deserialize)]
pub struct CodeBody {
    #[serde(default)]
    login_token: String,
    #[serde(default)]
    code: String,
}

/// `POST /api/v1/counter/login/code`: the SMS code; returns the bearer
/// token.
pub async fn login_code(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<CodeBody>,
) -> Result<Json<Value>, ApiError> {
    let pending =
        SessionToken::from_client(b.login_token.trim()).ok_or(Refusal::CounterLoginRestart)?;
    let token = state
        .services
        .counter_code(&pending, &b.code, &meta)
        .await?;
    Ok(Json(json!({ "token": token.as_str() })))
}

/// `POST /api/v1/counter/logout`.
pub async fn logout(
    State(state): State<AppState>,
    CounterCaller(who): CounterCaller,
    ClientMeta(meta): ClientMeta,
) -> Result<Response, ApiError> {
    state.services.counter_logout(&who, &meta).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Queue filters, as on the page.
#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    state: Option<String>,
    application: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/counter/orders`: the review queue, oldest first.
pub async fn queue(
    State(state): State<AppState>,
    CounterCaller(_): CounterCaller,
    Query(q): Query<QueueQuery>,
) -> Result<Json<Value>, ApiError> {
    let queue = state
        .services
        .review_queue(&QueueFilter {
            state: q.state,
            application: q.application,
            from: q.from,
            to: q.to,
        })
        .await?;
    let items: Vec<Value> = queue
        .items
        .iter()
        .map(|i| {
            json!({
                "order": order_json(&i.order),
                "applicant": i.applicant,
                "enterprise": i.enterprise,
                "application": i.application,
            })
        })
        .collect();
    Ok(Json(json!({ "waiting": queue.waiting, "items": items })))
}

/// `GET /api/v1/counter/orders/{id}`: everything the reviewer sees.
pub async fn detail(
    State(state): State<AppState>,
    CounterCaller(who): CounterCaller,
    Path(id): Path<OrderId>,
) -> Result<Json<Value>, ApiError> {
    let d = state.services.review_detail(&who, id).await?;
    Ok(Json(json!({
        "order": order_json(&d.order),
        "account_phone_masked": d.account_phone_masked,
        "own_order": d.own,
        "steps": d.steps.iter().map(|s| json!({
            "step": s.step.number(),
            "label": s.step.label_zh(),
            "fields": s.fields.iter().map(|f| json!({ "label": f.label, "value": f.value })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "materials": d.materials.iter().map(|m| {
            let mut v = super::orders::material_json(id, m);
            v["url"] = json!(format!("/api/v1/counter/orders/{id}/materials/{}", m.kind.as_str()));
            v
        }).collect::<Vec<_>>(),
        "license_check": d.license_check.iter().map(|c| json!({
            "label": c.label, "typed": c.typed, "read": c.read, "agrees": c.agrees(),
        })).collect::<Vec<_>>(),
        "authorization": d.authorization.as_ref().map(|a| json!({
            "name": a.name,
            "phone_masked": a.phone_masked(),
            "requested_at": a.requested_at.rfc3339(),
            "expires_at": a.expires_at.rfc3339(),
            "outcome": a.outcome.as_str(),
        })),
        "checkout": d.checkout.as_ref().map(|c| json!({
            "key_model": c.key_model, "key_model_name": c.key_model_name,
            "total_fen": c.total_fen, "recipient": c.recipient, "phone": c.phone,
            "address": c.address_line(), "invoice": c.invoice,
        })),
        "payments": d.attempts.iter().map(|a| json!({
            "out_trade_no": a.out_trade_no, "channel": a.channel.as_str(),
            "amount_fen": a.amount_fen, "state": a.state.as_str(),
            "transaction_id": a.transaction_id, "paid_at": a.paid_at.map(|t| t.rfc3339()),
        })).collect::<Vec<_>>(),
        "refunds": d.refunds.iter().map(|r| json!({
            "out_refund_no": r.out_refund_no, "amount_fen": r.amount_fen,
            "state": r.state.as_str(), "reason": r.reason,
        })).collect::<Vec<_>>(),
        "history": d.events.iter().map(|e| json!({
            "from": e.from_state, "to": e.to_state, "actor": e.actor,
            "reason": e.reason, "at": e.at.rfc3339(),
        })).collect::<Vec<_>>(),
    })))
}

/// `GET /api/v1/counter/orders/{id}/materials/{kind}`: one image.
pub async fn material(
    State(state): State<AppState>,
    CounterCaller(who): CounterCaller,
    Path((id, kind)): Path<(OrderId, String)>,
) -> Result<Response, ApiError> {
    let kind = kind.parse().map_err(|()| Refusal::NotFound)?;
    let (info, bytes) = state
        .services
        .counter_material_image(&who, id, kind)
        .await?;
    Ok(crate::pages::materials::image_response(&info, bytes))
}

/// `{"version"}` and, to return, `{"step","reason"}`.
#[derive(Debug, Deserialize)]
pub struct DecisionBody {
    version: i64,
    #[serde(default)]
    step: i64,
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/counter/orders/{id}/approve`.
pub async fn approve(
    State(state): State<AppState>,
    CounterCaller(who): CounterCaller,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
    Body(b): Body<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    let order = state
        .services
        .review_decide(&who, id, b.version, &ReviewDecision::Approve, &meta)
        .await?;
    Ok(Json(order_json(&order)))
}

/// `POST /api/v1/counter/orders/{id}/reject`: back to `step` with `reason`.
pub async fn reject(
    State(state): State<AppState>,
    CounterCaller(who): CounterCaller,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
    Body(b): Body<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    let step = Step::from_number(b.step)
        .ok_or_else(|| Refusal::InvalidField("退回到的步骤应为 1–5".into()))?;
    let decision = ReviewDecision::Reject {
        step,
        reason: b.reason,
    };
    let order = state
        .services
        .review_decide(&who, id, b.version, &decision, &meta)
        .await?;
    Ok(Json(order_json(&order)))
}

/// `POST /api/v1/counter/orders/{id}/cancel` body.
#[derive(Debug, Deserialize)]
pub struct CancelBody {
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/counter/orders/{id}/cancel`: cancels an approved, unpaid
/// or paid order with a reason (a paid one is refunded in full).
pub async fn cancel(
    State(state): State<AppState>,
    CounterCaller(who): CounterCaller,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
    Body(b): Body<CancelBody>,
) -> Result<Json<Value>, ApiError> {
    let order = state
        .services
        .counter_cancel(&who, id, &b.reason, &meta)
        .await?;
    Ok(Json(order_json(&order)))
}

/// `GET /api/v1/counter/notices`: the counter's notice board, newest first.
pub async fn notices(
    State(state): State<AppState>,
    CounterCaller(_): CounterCaller,
) -> Result<Json<Value>, ApiError> {
    let items = state.services.counter_notices(50).await?;
    Ok(Json(serde_json::json!({
        "items": items.iter().map(|n| serde_json::json!({
            "kind": n.kind, "title": n.title, "body": n.body,
            "order_id": n.order_id, "created_at": n.created_at.rfc3339(),
        })).collect::<Vec<_>>(),
    })))
}
