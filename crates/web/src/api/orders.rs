//! `/api/v1/applications` and `/api/v1/orders`: the 证书新办 wizard as
//! JSON — start an order, save steps 1–4, upload images (the license is
//! read by OCR), submit step 5 — with the same rules and refusals as the
//! pages.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use certhall_domain::application::Application;
use certhall_domain::materials::MaterialKind;
use certhall_domain::order::{OrderKind, Step};
use certhall_domain::wizard::{EnterpriseInput, Handling};
use certhall_domain::{OrderId, Refusal};
use certhall_service::materials::MaterialsSubmission;
use certhall_service::views::{MaterialInfo, OrderRow};
use serde::Deserialize;
use serde_json::{json, Value};

use super::json::Body;
use crate::error::ApiError;
use crate::extract::{ApiCaller, ClientMeta};
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

/// An order as the API shows it.
pub fn order_json(o: &OrderRow) -> Value {
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
        "application_name": o.application_name,
        "enterprise_name": o.enterprise_name,
        "amount_fen": o.amount_fen,
        "cancellable": o.state.cancellable(),
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
    axum::extract::Query(q): axum::extract::Query<crate::pages::orders::ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let orders = state
        .services
        .orders_of(
            who.account_id,
            certhall_service::views::OrderFilter::parse(&q.state),
            Some(q.q.trim()),
        )
        .await?;
    Ok(Json(
        json!({ "items": orders.iter().map(order_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/v1/orders/{id}`: one of the caller's orders.
pub async fn show(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<OrderId>,
) -> Result<Json<Value>, ApiError> {
    let order = state.services.order_of(who.account_id, id).await?;
    Ok(Json(order_json(&order)))
}

/// `POST /api/v1/orders` body.
#[derive(Debug, Deserialize)]
pub struct StartOrder {
    /// `new` (the only kind applicants start here for now).
    #[serde(default)]
    kind: String,
}

/// `POST /api/v1/orders`: starts a 证书新办 order at step 1.
pub async fn start(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Body(req): Body<StartOrder>,
) -> Result<Response, ApiError> {
    match req.kind.as_str() {
        "" | "new" => {}
        other => {
            return Err(Refusal::InvalidField(format!("暂不支持在线办理此类业务：{other}")).into())
        }
    }
    let order = state
        .services
        .start_order(who.account_id, OrderKind::New, &meta)
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(order_json(&order))).into_response())
}

/// `PUT /api/v1/orders/{id}/steps/{n}` body of steps 1, 2, 4 and 5 (step 3
/// is an [`EnterpriseInput`]).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StepBody {
    name: String,
    id_number: String,
    application: String,
    handling: String,
    authorization: String,
    legal_rep_name: String,
    legal_rep_id_number: String,
    legal_rep_phone: String,
}

/// `PUT /api/v1/orders/{id}/steps/{n}`: saves step 1–4, or submits step 5
/// (`authorization` = `letter` | `legal_rep_sms` with the legal
/// representative). Returns the order.
pub async fn save_step(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Path((id, n)): Path<(OrderId, i64)>,
    Body(body): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    let s = &state.services;
    let a = who.account_id;
    let step = Step::from_number(n).ok_or(Refusal::NotFound)?;
    let invalid = |_| Refusal::InvalidField("请求内容的字段类型不正确".into());
    if step == Step::Enterprise {
        let input: EnterpriseInput = serde_json::from_value(body).map_err(invalid)?;
        let order = s.wizard_enterprise(a, id, &input, &meta).await?;
        return Ok(Json(order_json(&order)));
    }
    let b: StepBody = serde_json::from_value(body).map_err(invalid)?;
    let order = match step {
        Step::Identity => {
            s.wizard_identity(a, &who.phone, id, &b.name, &b.id_number, &meta)
                .await?
        }
        Step::Application => s.wizard_application(a, id, &b.application, &meta).await?,
        Step::Handling => {
            s.wizard_handling(a, id, Handling::parse(&b.handling)?, &meta)
                .await?
        }
        Step::Enterprise | Step::Materials => {
            let submission = MaterialsSubmission {
                authorization: b.authorization,
                legal_rep_name: b.legal_rep_name,
                legal_rep_id_number: b.legal_rep_id_number,
                legal_rep_phone: b.legal_rep_phone,
            };
            s.submit_materials(a, id, &submission, &meta).await?
        }
    };
    Ok(Json(order_json(&order)))
}

/// An image's record as the API shows it.
pub fn material_json(order: OrderId, m: &MaterialInfo) -> Value {
    json!({
        "kind": m.kind.as_str(),
        "label": m.kind.label_zh(),
        "format": m.format,
        "width": m.width,
        "height": m.height,
        "size": m.size,
        "sha256": m.sha256,
        "uploaded_at": m.uploaded_at.rfc3339(),
        "url": format!("/api/v1/orders/{order}/materials/{}", m.kind.as_str()),
        "ocr": m.ocr,
    })
}

fn material_kind(kind: &str) -> Result<MaterialKind, ApiError> {
    kind.parse().map_err(|()| Refusal::NotFound.into())
}

fn file_name(headers: &HeaderMap, kind: MaterialKind) -> String {
    headers
        .get("x-file-name")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| kind.as_str().to_owned())
}

/// `GET /api/v1/orders/{id}/materials`: the order's images (no bytes).
pub async fn materials(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<OrderId>,
) -> Result<Json<Value>, ApiError> {
    let items = state.services.materials_of(who.account_id, id).await?;
    Ok(Json(json!({
        "items": items.iter().map(|m| material_json(id, m)).collect::<Vec<_>>(),
    })))
}

/// `GET /api/v1/orders/{id}/materials/{kind}`: one image.
pub async fn material(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path((id, kind)): Path<(OrderId, String)>,
) -> Result<Response, ApiError> {
    let kind = material_kind(&kind)?;
    let (info, bytes) = state
        .services
        .material_image(who.account_id, id, kind)
        .await?;
    Ok(crate::pages::materials::image_response(&info, bytes))
}

/// `PUT /api/v1/orders/{id}/materials/{kind}`: the image as the body
/// (PNG or JPEG by content, whatever `Content-Type` says). A license is
/// read by OCR; the reading comes back in `ocr`.
pub async fn put_material(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Path((id, kind)): Path<(OrderId, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let kind = material_kind(&kind)?;
    let s = &state.services;
    let name = file_name(&headers, kind);
    let info = if kind == MaterialKind::License {
        let read = s
            .read_license(who.account_id, id, &name, body.to_vec(), &meta)
            .await?;
        let mut v = material_json(id, &read.material);
        v["ocr"] = json!(read.fields);
        v["ocr_available"] = json!(read.ocr_available);
        v["ocr_warnings"] = json!(read.warnings);
        v["ocr_unsure"] = json!(read.unsure);
        return Ok(Json(v));
    } else {
        s.upload_material(who.account_id, id, kind, &name, body.to_vec(), &meta)
            .await?
            .0
    };
    Ok(Json(material_json(id, &info)))
}
