//! Steps 6–7 as JSON: the checkout (key model, address, invoice), payment
//! attempts, cancellation, the order summary, the address book, the
//! division table, the legal representative's SMS again — and the payment
//! providers' callback routes (`/payment/notify/wechat`,
//! `/payment/notify/alipay`), which take the raw body and headers and
//! answer in the provider's own format.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use certhall_domain::checkout::{AddressInput, CheckoutInput, InvoiceInput};
use certhall_domain::payment::Channel;
use certhall_domain::{OrderId, Refusal};
use certhall_service::orders::OrderActor;
use certhall_service::payments::PaymentView;
use certhall_service::views::{AttemptRow, CheckoutRow, RefundRow};
use serde::Deserialize;
use serde_json::{json, Value};

use super::json::Body;
use super::orders::order_json;
use crate::error::ApiError;
use crate::extract::{ApiCaller, ClientMeta};
use crate::AppState;

fn checkout_json(c: &CheckoutRow) -> Value {
    json!({
        "key_model": c.key_model,
        "key_model_name": c.key_model_name,
        "application_fen": c.application_fen,
        "key_fen": c.key_fen,
        "total_fen": c.total_fen,
        "address": {
            "recipient": c.recipient, "phone": c.phone,
            "division": format!("{:06}", c.division_code), "division_text": c.division_text,
            "street": c.street,
        },
        "invoice": c.invoice,
    })
}

fn attempt_json(a: &AttemptRow) -> Value {
    json!({
        "seq": a.seq,
        "channel": a.channel.as_str(),
        "out_trade_no": a.out_trade_no,
        "amount_fen": a.amount_fen,
        "state": a.state.as_str(),
        "state_label": a.state.label_zh(),
        "code_url": a.code_url,
        "created_at": a.created_at.rfc3339(),
        "expires_at": a.expires_at.rfc3339(),
        "paid_at": a.paid_at.map(|t| t.rfc3339()),
        "transaction_id": a.transaction_id,
    })
}

fn refund_json(r: &RefundRow) -> Value {
    json!({
        "out_refund_no": r.out_refund_no,
        "amount_fen": r.amount_fen,
        "reason": r.reason,
        "state": r.state.as_str(),
        "state_label": r.state.label_zh(),
        "created_at": r.created_at.rfc3339(),
        "succeeded_at": r.succeeded_at.map(|t| t.rfc3339()),
    })
}

fn payment_view_json(v: &PaymentView) -> Value {
    json!({
        "order": order_json(&v.order),
        "checkout": v.checkout.as_ref().map(checkout_json),
        "channels": v.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "attempts": v.attempts.iter().map(attempt_json).collect::<Vec<_>>(),
        "refunds": v.refunds.iter().map(refund_json).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/orders/{id}/checkout`: what step 6 offers.
pub async fn checkout(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<OrderId>,
) -> Result<Json<Value>, ApiError> {
    let v = state.services.checkout_view(who.account_id, id).await?;
    Ok(Json(json!({
        "order": order_json(&v.order),
        "application": { "name": v.application_name, "price_fen": v.application_fen },
        "key_models": v.models.iter().map(|m| json!({
            "code": m.model.code, "name": m.model.name, "description": m.model.description,
            "price_fen": m.model.price_fen, "picture": format!("/static/keys/{}.svg", m.model.picture),
            "available": m.available(),
        })).collect::<Vec<_>>(),
        "addresses": v.addresses.iter().map(address_json).collect::<Vec<_>>(),
        "saved": v.saved.as_ref().map(checkout_json),
        "invoice_prefill": { "buyer_name": v.invoice_prefill.buyer_name, "tax_id": v.invoice_prefill.tax_id },
    })))
}

/// `PUT /api/v1/orders/{id}/checkout` body.
#[derive(Debug, Deserialize)]
pub struct CheckoutBody {
    #[serde(default)]
    key_model: String,
    /// An address of the book instead of `address`.
    #[serde(default)]
    address_id: Option<i64>,
    #[serde(default)]
    address: AddressInput,
    /// Keep a new address in the book.
    #[serde(default)]
    remember: bool,
    #[serde(default)]
    invoice: Option<InvoiceInput>,
}

/// `PUT /api/v1/orders/{id}/checkout`: confirms step 6.
pub async fn save_checkout(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
    Body(b): Body<CheckoutBody>,
) -> Result<Json<Value>, ApiError> {
    let address = match b.address_id {
        Some(a) => {
            let a = state.services.address(who.account_id, a).await?;
            AddressInput {
                recipient: a.row.recipient,
                phone: a.row.phone,
                division: format!("{:06}", a.row.division_code),
                street: a.row.street,
            }
        }
        None => b.address,
    };
    let input = CheckoutInput {
        key_model: b.key_model,
        address,
        invoice: b.invoice.unwrap_or_default(),
    };
    let order = state
        .services
        .save_checkout(
            who.account_id,
            id,
            &input,
            b.remember && b.address_id.is_none(),
            &meta,
        )
        .await?;
    Ok(Json(order_json(&order)))
}

/// `POST /api/v1/orders/{id}/checkout/revise`: back to step 6.
pub async fn revise_checkout(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
) -> Result<Json<Value>, ApiError> {
    let order = state
        .services
        .revise_checkout(who.account_id, id, &meta)
        .await?;
    Ok(Json(order_json(&order)))
}

/// `?check=true`.
#[derive(Debug, Default, Deserialize)]
pub struct CheckQuery {
    #[serde(default)]
    check: bool,
}

/// `GET /api/v1/orders/{id}/payments`: attempts and refunds (with
/// `check=true`, the attempt under way is first asked about).
pub async fn payments(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<OrderId>,
    Query(q): Query<CheckQuery>,
) -> Result<Json<Value>, ApiError> {
    let v = state
        .services
        .payment_view(who.account_id, id, q.check)
        .await?;
    Ok(Json(payment_view_json(&v)))
}

/// `POST /api/v1/orders/{id}/payments` body.
#[derive(Debug, Deserialize)]
pub struct PayBody {
    #[serde(default)]
    channel: String,
}

/// `POST /api/v1/orders/{id}/payments`: a QR code to pay with.
pub async fn pay(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
    Body(b): Body<PayBody>,
) -> Result<Response, ApiError> {
    let channel = Channel::parse(&b.channel).ok_or(Refusal::MissingField(
        "支付方式（channel：wechat 或 alipay）",
    ))?;
    let attempt = state
        .services
        .start_payment(who.account_id, id, channel, &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(attempt_json(&attempt))).into_response())
}

/// `POST /api/v1/orders/{id}/cancel`: cancels (a paid order is refunded).
pub async fn cancel(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
) -> Result<Json<Value>, ApiError> {
    let order = state
        .services
        .cancel_order(OrderActor::Applicant(who.account_id), id, None, &meta)
        .await?;
    Ok(Json(order_json(&order)))
}

/// `GET /api/v1/orders/{id}/summary`: what was submitted, the history,
/// payments and what comes next.
pub async fn summary(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<OrderId>,
) -> Result<Json<Value>, ApiError> {
    let s = state.services.order_summary(who.account_id, id).await?;
    Ok(Json(json!({
        "order": order_json(&s.order),
        "next": s.next,
        "expected": s.expected,
        "queue_position": s.queue_position,
        "steps": s.steps.iter().map(|st| json!({
            "step": st.step.number(), "label": st.step.label_zh(),
            "fields": st.fields.iter().map(|f| json!({ "label": f.label, "value": f.value })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "checkout": s.checkout.as_ref().map(checkout_json),
        "attempts": s.attempts.iter().map(attempt_json).collect::<Vec<_>>(),
        "refunds": s.refunds.iter().map(refund_json).collect::<Vec<_>>(),
        "timeline": s.events.iter().map(|e| json!({
            "at": e.at.rfc3339(), "from": e.from_state, "to": e.to_state,
            "to_label": e.to_label(), "reason": e.reason,
        })).collect::<Vec<_>>(),
    })))
}

/// `POST /api/v1/orders/{id}/authorization/resend`.
pub async fn resend_authorization(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
) -> Result<Json<Value>, ApiError> {
    let r = state
        .services
        .resend_authorization(who.account_id, id, &meta)
        .await?;
    Ok(Json(json!({
        "phone_masked": r.phone_masked(),
        "expires_at": r.expires_at.rfc3339(),
    })))
}

/// `POST /api/v1/orders/{id}/authorization/revise`.
pub async fn revise_authorization(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
) -> Result<Json<Value>, ApiError> {
    let order = state
        .services
        .revise_authorization(who.account_id, id, &meta)
        .await?;
    Ok(Json(order_json(&order)))
}

fn address_json(a: &certhall_service::checkout::AddressView) -> Value {
    json!({
        "id": a.row.id, "recipient": a.row.recipient, "phone": a.row.phone,
        "division": format!("{:06}", a.row.division_code), "division_text": a.division,
        "street": a.row.street, "is_default": a.row.is_default,
    })
}

/// `GET /api/v1/addresses`.
pub async fn addresses(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
) -> Result<Json<Value>, ApiError> {
    let book = state.services.addresses(who.account_id).await?;
    Ok(Json(
        json!({ "items": book.iter().map(address_json).collect::<Vec<_>>() }),
    ))
}

/// An address body.
#[derive(Debug, Deserialize)]
pub struct AddressBody {
    #[serde(flatten)]
    address: AddressInput,
    #[serde(default)]
    is_default: bool,
}

/// `POST /api/v1/addresses`.
pub async fn add_address(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<AddressBody>,
) -> Result<Response, ApiError> {
    let id = state
        .services
        .save_address(who.account_id, None, &b.address, b.is_default, &meta)
        .await?;
    let a = state.services.address(who.account_id, id).await?;
    Ok((StatusCode::CREATED, Json(address_json(&a))).into_response())
}

/// `PUT /api/v1/addresses/{id}`.
pub async fn update_address(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<i64>,
    Body(b): Body<AddressBody>,
) -> Result<Json<Value>, ApiError> {
    state
        .services
        .save_address(who.account_id, Some(id), &b.address, b.is_default, &meta)
        .await?;
    let a = state.services.address(who.account_id, id).await?;
    Ok(Json(address_json(&a)))
}

/// `DELETE /api/v1/addresses/{id}`.
pub async fn delete_address(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .delete_address(who.account_id, id, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/addresses/{id}/default`.
pub async fn default_address(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .set_default_address(who.account_id, id, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/divisions`: the GB/T 2260 table
/// (`[[code, name, [[code, name, [[code, name], …]], …]], …]`).
pub async fn divisions() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "application/json"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        certhall_domain::divisions::tree_json(),
    )
        .into_response()
}

async fn notify(
    state: &AppState,
    channel: Channel,
    headers: &HeaderMap,
    body: &Bytes,
    meta: &certhall_service::RequestMeta,
) -> Result<Response, ApiError> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_ascii_lowercase(), v.to_owned()))
        })
        .collect();
    let answer = state
        .services
        .payment_callback(channel, &headers, body, meta)
        .await?;
    Ok((
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_REQUEST),
        [(axum::http::header::CONTENT_TYPE, answer.content_type)],
        answer.body,
    )
        .into_response())
}

/// `POST /api/v1/payment/notify/wechat`: WeChat Pay's callback (raw body
/// verified before anything is read).
pub async fn notify_wechat(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    notify(&state, Channel::Wechat, &headers, &body, &meta).await
}

/// `POST /api/v1/payment/notify/alipay`: Alipay's asynchronous
/// notification.
pub async fn notify_alipay(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    notify(&state, Channel::Alipay, &headers, &body, &meta).await
}
