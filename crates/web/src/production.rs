//! 制证与发货 at the counter (step 8): the production desk's pages under
//! `/counter/production`, the JSON calls its script makes while it drives
//! the producer's key agent, and the same calls under
//! `/api/v1/counter/production` for staff tools (bearer token).
//!
//! The page's script (`static/production.js`) talks to the agent on the
//! producer's PC and to these routes; every decision (which token is
//! acceptable, the PINs, the certificate, whether the read-back matches)
//! is the service's.

use askama::Template;
use axum::extract::{FromRef, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::CookieJar;
use base64::Engine as _;
use certhall_domain::order::OrderState;
use certhall_domain::production::FailedStage;
use certhall_domain::session::SessionToken;
use certhall_domain::{OrderId, Refusal};
use certhall_service::counter::OperatorInfo;
use certhall_service::production::{AttemptRow, ProductionDetail, ProductionItem, TokenPresented};
use certhall_service::shipping::{stage_label, ShipmentView};
use certhall_service::ServiceError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::counter::CounterCaller;
use crate::api::json::Body;
use crate::counter::{CounterChrome, Operator, COUNTER_COOKIE};
use crate::error::{ApiError, PageError};
use crate::extract::{BrowserId, ClientMeta, CsrfForm};
use crate::pages::render;
use crate::AppState;

/// The production desk.
pub const PRODUCTION: &str = "/counter/production";

/// The counter's production routes (pages and the page script's JSON).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(PRODUCTION, get(queue_page))
        .route("/counter/production/{id}", get(detail_page))
        .route("/counter/production/{id}/ship", post(ship))
        .route(
            "/counter/production/{id}/ship/cancel",
            post(cancel_shipment),
        )
        .merge(json_routes().into_router())
}

/// The stage calls, the same under `/counter` (the page's script) and
/// `/api/v1` (staff tools).
fn json_routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/counter/production/{id}/attempts", post(start))
        .route("/counter/production/attempts/{a}/token", post(token))
        .route("/counter/production/attempts/{a}/csr", post(csr))
        .route("/counter/production/attempts/{a}/written", post(written))
        .route("/counter/production/attempts/{a}/failed", post(failed))
}

/// The same under `/api/v1`, plus the desk and shipping as JSON.
pub fn api_routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/counter/production", get(api_queue))
        .route("/counter/production/{id}", get(api_detail))
        .route("/counter/production/{id}/ship", post(api_ship))
        .merge(json_routes())
}

/// An operator calling the stage routes: a staff tool with its bearer
/// token ([`CounterCaller`]), or the production page's script with the
/// counter cookie and, on every POST, the page's CSRF token in
/// `X-CSRF-Token`.
#[derive(Debug)]
pub struct ProducerCaller(pub OperatorInfo);

impl<S> FromRequestParts<S> for ProducerCaller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            let CounterCaller(who) = CounterCaller::from_request_parts(parts, state).await?;
            return Ok(Self(who));
        }
        let state = AppState::from_ref(state);
        let token = CookieJar::from_headers(&parts.headers)
            .get(COUNTER_COOKIE)
            .and_then(|c| SessionToken::from_client(c.value()))
            .ok_or(Refusal::NotLoggedIn)?;
        let who = state.services.authenticate_operator(&token).await?;
        if parts.method != Method::GET && !crate::extract::csrf_header_valid(parts, &state) {
            let _ = state
                .services
                .record_csrf_rejection(
                    certhall_domain::audit::Actor::Operator(who.id),
                    &crate::extract::full_path(parts),
                    &crate::extract::request_meta(parts, &state),
                )
                .await;
            return Err(Refusal::CsrfMismatch.into());
        }
        Ok(Self(who))
    }
}

// ---- pages ----

/// One row of the desk.
#[derive(Debug)]
pub struct QueueRow {
    item: ProductionItem,
    status: String,
    model: String,
    address: String,
}

fn queue_row(item: ProductionItem) -> QueueRow {
    let status = match (&item.order.state, &item.open_attempt) {
        (OrderState::InProduction, Some(a)) => format!("制证中（{}）", a.operator_name),
        (OrderState::InProduction, None) => "制证中断，待重新制证".to_owned(),
        (OrderState::Produced, _) => "已制证，待发货".to_owned(),
        _ => "待制证".to_owned(),
    };
    QueueRow {
        model: item
            .checkout
            .as_ref()
            .map(|c| c.key_model_name.clone())
            .unwrap_or_default(),
        address: item
            .checkout
            .as_ref()
            .map(|c| format!("{} {}", c.recipient, c.address_line()))
            .unwrap_or_default(),
        status,
        item,
    }
}

#[derive(Template)]
#[template(path = "counter_production_queue.html")]
struct QueuePage {
    chrome: CounterChrome,
    rows: Vec<QueueRow>,
}

/// `GET /counter/production`.
pub async fn queue_page(
    State(state): State<AppState>,
    bid: BrowserId,
    Operator(who): Operator,
) -> Result<Response, PageError> {
    let rows = state
        .services
        .production_queue(&who)
        .await?
        .into_iter()
        .map(queue_row)
        .collect();
    Ok(render(&QueuePage {
        chrome: CounterChrome::new(&state, &bid, Some(&who)),
        rows,
    }))
}

/// A route line as shown.
#[derive(Debug)]
pub struct RouteLine {
    /// When (China time).
    pub at: String,
    /// 已揽收 …
    pub stage: &'static str,
    /// Where and what.
    pub text: String,
}

/// A shipment as shown.
#[derive(Debug)]
pub struct ShipmentLine {
    /// The shipment.
    pub view: ShipmentView,
    /// Its status.
    pub status: &'static str,
    /// Its route.
    pub routes: Vec<RouteLine>,
}

/// Shipments as the pages show them.
pub fn shipment_lines(views: Vec<ShipmentView>) -> Vec<ShipmentLine> {
    views
        .into_iter()
        .map(|view| ShipmentLine {
            status: view.status_zh(),
            routes: view
                .routes
                .iter()
                .map(|r| RouteLine {
                    at: r.accept_time.display_cst(),
                    stage: stage_label(&r.stage),
                    text: format!("{} {}", r.address, r.remark).trim().to_owned(),
                })
                .collect(),
            view,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "counter_production.html")]
struct DetailPage {
    chrome: CounterChrome,
    d: ProductionDetail,
    agent_url: String,
    producible: bool,
    shippable: bool,
    stock: String,
    shipments: Vec<ShipmentLine>,
    cancellable_shipment: bool,
    error: Option<String>,
}

async fn detail(
    state: &AppState,
    bid: &BrowserId,
    who: &OperatorInfo,
    id: OrderId,
    error: Option<String>,
) -> Result<Response, PageError> {
    let d = state.services.production_detail(who, id).await?;
    let stock = d
        .on_hand
        .iter()
        .map(|(c, n)| format!("{} {n} 个", c.label_zh()))
        .collect::<Vec<_>>()
        .join("，");
    let shipments = shipment_lines(d.shipments.clone());
    let cancellable_shipment = d.item.order.state == OrderState::Shipped
        && shipments
            .iter()
            .any(|s| s.view.shipment.state == "shipped" && s.view.routes.is_empty());
    Ok(render(&DetailPage {
        chrome: CounterChrome::new(state, bid, Some(who)),
        agent_url: state.config.agent_url.clone(),
        producible: matches!(
            d.item.order.state,
            OrderState::Paid | OrderState::InProduction
        ),
        shippable: d.item.order.state == OrderState::Produced,
        stock,
        shipments,
        cancellable_shipment,
        d,
        error,
    }))
}

/// `GET /counter/production/{id}`.
pub async fn detail_page(
    State(state): State<AppState>,
    bid: BrowserId,
    Operator(who): Operator,
    Path(id): Path<OrderId>,
) -> Result<Response, PageError> {
    detail(&state, &bid, &who, id, None).await
}

/// An empty form (the CSRF field only).
#[derive(Debug, Deserialize)]
pub struct EmptyForm {}

/// `POST /counter/production/{id}/ship`: 发货.
pub async fn ship(
    State(state): State<AppState>,
    bid: BrowserId,
    Operator(who): Operator,
    Path(id): Path<OrderId>,
    ClientMeta(meta): ClientMeta,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, PageError> {
    match state.services.ship_order(&who, id, &meta).await {
        Ok(_) => Ok(Redirect::to(&format!("{PRODUCTION}/{id}")).into_response()),
        Err(ServiceError::Refused(r)) => detail(&state, &bid, &who, id, Some(r.message_zh())).await,
        Err(e) => Err(e.into()),
    }
}

/// `POST /counter/production/{id}/ship/cancel`: cancel a shipment not yet
/// picked up.
pub async fn cancel_shipment(
    State(state): State<AppState>,
    bid: BrowserId,
    Operator(who): Operator,
    Path(id): Path<OrderId>,
    ClientMeta(meta): ClientMeta,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, PageError> {
    match state.services.cancel_shipment(&who, id, &meta).await {
        Ok(_) => Ok(Redirect::to(&format!("{PRODUCTION}/{id}")).into_response()),
        Err(ServiceError::Refused(r)) => detail(&state, &bid, &who, id, Some(r.message_zh())).await,
        Err(e) => Err(e.into()),
    }
}

// ---- JSON (the page's script and the API) ----

/// `{"token_serial", "initialized"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    token_serial: String,
    #[serde(default)]
    initialized: bool,
}

/// `{"serial"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    serial: String,
}

/// `{"csr", "key_id"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrBody {
    csr: String,
    key_id: String,
}

/// `{"certificate"}`: base64 DER as read back from the token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrittenBody {
    certificate: String,
}

/// `{"stage", "message"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedBody {
    stage: String,
    #[serde(default)]
    message: String,
}

fn item_json(item: &ProductionItem) -> Value {
    json!({
        "order": item.order.id,
        "state": item.order.state.to_db().0,
        "state_label": item.order.state.label_zh(),
        "enterprise": item.facts.enterprise,
        "uscc": item.facts.uscc,
        "applicant": item.facts.applicant,
        "application": item.facts.application,
        "key_kind": item.facts.key_kind.as_str(),
        "key_model": item.checkout.as_ref().map(|c| c.key_model_name.clone()),
        "recipient": item.checkout.as_ref().map(|c| c.recipient.clone()),
        "address": item.checkout.as_ref().map(|c| c.address_line()),
        "attempt_open": item.open_attempt.as_ref().map(|a| json!({
            "id": a.id, "operator": a.operator_name, "state": a.state.as_str(),
        })),
    })
}

fn attempt_json(a: &AttemptRow) -> Value {
    json!({
        "id": a.id, "state": a.state.as_str(), "state_label": a.state.label_zh(),
        "operator": a.operator_name, "token_serial": a.token_serial,
        "certificate_serial": a.certificate_serial, "failure": a.failure,
        "started_at": a.started_at.rfc3339(),
    })
}

/// `POST …/counter/production/{id}/attempts`: stage 1, the token presented.
pub async fn start(
    State(state): State<AppState>,
    ProducerCaller(who): ProducerCaller,
    Path(id): Path<OrderId>,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<StartBody>,
) -> Result<Json<Value>, ApiError> {
    let (state, who, meta) = (&state, &who, &meta);
    let started = state
        .services
        .production_start(
            who,
            id,
            &TokenPresented {
                serial: b.token_serial,
                initialized: b.initialized,
            },
            meta,
        )
        .await?;
    Ok(Json(json!({
        "attempt": attempt_json(&started.attempt),
        "label": started.attempt.token_label,
        "key_kind": started.attempt.key_kind.as_str(),
        "needs_init": started.needs_init,
        "pin": started.pin,
        "so_pin": started.so_pin,
    })))
}

/// `POST …/counter/production/attempts/{a}/token`: the token initialised.
pub async fn token(
    State(state): State<AppState>,
    ProducerCaller(who): ProducerCaller,
    Path(a): Path<i64>,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<TokenBody>,
) -> Result<Json<Value>, ApiError> {
    let (state, who, meta) = (&state, &who, &meta);
    let row = state
        .services
        .production_token_initialized(who, a, &b.serial, meta)
        .await?;
    Ok(Json(json!({ "attempt": attempt_json(&row) })))
}

/// `POST …/counter/production/attempts/{a}/csr`: the key's request.
pub async fn csr(
    State(state): State<AppState>,
    ProducerCaller(who): ProducerCaller,
    Path(a): Path<i64>,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<CsrBody>,
) -> Result<Json<Value>, ApiError> {
    let (state, who, meta) = (&state, &who, &meta);
    let issued = state
        .services
        .production_csr(who, a, b.csr.as_bytes(), &b.key_id, meta)
        .await?;
    Ok(Json(json!({
        "serial": issued.serial,
        "certificate": issued.certificate_pem,
        "chain": issued.chain_pem,
    })))
}

/// `POST …/counter/production/attempts/{a}/written`: the read-back.
pub async fn written(
    State(state): State<AppState>,
    ProducerCaller(who): ProducerCaller,
    Path(a): Path<i64>,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<WrittenBody>,
) -> Result<Json<Value>, ApiError> {
    let (state, who, meta) = (&state, &who, &meta);
    let der = base64::engine::general_purpose::STANDARD
        .decode(b.certificate.trim())
        .map_err(|_| Refusal::MissingField("读回的证书（base64 DER）"))?;
    let order = state
        .services
        .production_written(who, a, &der, meta)
        .await?;
    Ok(Json(json!({
        "order": order.id,
        "state": order.state.to_db().0,
        "state_label": order.state.label_zh(),
    })))
}

/// `POST …/counter/production/attempts/{a}/failed`: a failure reported.
pub async fn failed(
    State(state): State<AppState>,
    ProducerCaller(who): ProducerCaller,
    Path(a): Path<i64>,
    ClientMeta(meta): ClientMeta,
    Body(b): Body<FailedBody>,
) -> Result<Json<Value>, ApiError> {
    let (state, who, meta) = (&state, &who, &meta);
    let stage = FailedStage::parse(&b.stage).ok_or(Refusal::MissingField("失败环节 stage"))?;
    let row = state
        .services
        .production_failed(who, a, stage, &b.message, meta)
        .await?;
    Ok(Json(json!({ "attempt": attempt_json(&row) })))
}

/// `GET /api/v1/counter/production`.
pub async fn api_queue(
    State(state): State<AppState>,
    CounterCaller(who): CounterCaller,
) -> Result<Json<Value>, ApiError> {
    let items = state.services.production_queue(&who).await?;
    Ok(Json(
        json!({ "items": items.iter().map(item_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/v1/counter/production/{id}`.
pub async fn api_detail(
    State(state): State<AppState>,
    CounterCaller(who): CounterCaller,
    Path(id): Path<OrderId>,
) -> Result<Json<Value>, ApiError> {
    let d = state.services.production_detail(&who, id).await?;
    Ok(Json(json!({
        "item": item_json(&d.item),
        "attempts": d.attempts.iter().map(attempt_json).collect::<Vec<_>>(),
        "ukey": d.ukey.as_ref().map(|k| json!({
            "token_serial": k.token_serial, "model": k.key_model_name, "colour": k.colour,
            "certificate_serial": k.certificate_serial, "produced_at": k.produced_at.rfc3339(),
        })),
        "shipments": d.shipments.iter().map(shipment_json).collect::<Vec<_>>(),
    })))
}

/// A shipment as JSON.
pub fn shipment_json(v: &ShipmentView) -> Value {
    json!({
        "courier": v.shipment.courier,
        "courier_order_id": v.shipment.courier_order_id,
        "waybill_no": v.shipment.waybill_no,
        "state": v.shipment.state,
        "status": v.status_zh(),
        "routes": v.routes.iter().map(|r| json!({
            "at": r.accept_time.rfc3339(), "op_code": r.op_code, "stage": r.stage,
            "stage_label": stage_label(&r.stage), "address": r.address, "remark": r.remark,
        })).collect::<Vec<_>>(),
    })
}

/// `POST /api/v1/counter/production/{id}/ship`.
pub async fn api_ship(
    State(state): State<AppState>,
    CounterCaller(who): CounterCaller,
    Path(id): Path<OrderId>,
    ClientMeta(meta): ClientMeta,
) -> Result<Json<Value>, ApiError> {
    let order = state.services.ship_order(&who, id, &meta).await?;
    let shipments = state.services.shipment_views(id).await?;
    Ok(Json(json!({
        "order": order.id, "state": order.state.to_db().0,
        "shipment": shipments.last().map(shipment_json),
    })))
}
