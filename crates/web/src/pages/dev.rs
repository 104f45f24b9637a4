//! Demo-mode routes (only mounted while the demo SMS outbox is in use):
//! the outbox page and JSON, and the simulation of a reply from a phone.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use certhall_service::views::{InboundEntry, OutboxEntry};
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
        .route("/dev/cashier/{no}", get(cashier).post(cashier_pay))
        .route("/dev/wechatpay/{*rest}", axum::routing::any(wechatpay))
        .route(paths::DEV_COURIER, get(courier))
        .route("/dev/courier/{id}/advance", post(courier_advance))
        .route(paths::DEV_PLATFORM, get(platform))
        .route("/dev/platform/{app}/challenge", post(platform_challenge))
        .route("/dev/platform/{app}/activate", post(platform_activate))
        .route(
            "/dev/platform/{app}/certificates/{serial}",
            get(platform_status),
        )
        .route("/dev/platform/webhook/{app}", post(platform_webhook))
}

#[derive(Template)]
#[template(path = "dev_platform.html")]
struct PlatformPage {
    chrome: Chrome,
    agent_url: String,
    platform: certhall_service::demo_platform::DemoPlatform,
    applications: Vec<(String, String)>,
}

/// `?app=` of the demo platform.
#[derive(Debug, Deserialize)]
struct AppQuery {
    #[serde(default)]
    app: Option<String>,
}

/// `GET /dev/platform`: the demo relying platform's page, for one
/// application (`?app=`, the first active one by default).
async fn platform(
    State(state): State<AppState>,
    bid: BrowserId,
    MaybeApplicant(user): MaybeApplicant,
    axum::extract::Query(q): axum::extract::Query<AppQuery>,
) -> Result<Response, PageError> {
    let applications: Vec<(String, String)> = state
        .services
        .applications(true)
        .await?
        .into_iter()
        .map(|a| (a.code, a.name))
        .collect();
    let app = q
        .app
        .or_else(|| applications.first().map(|(c, _)| c.clone()))
        .unwrap_or_default();
    let platform = state.services.demo_platform(&app, "").await?;
    Ok(render(&PlatformPage {
        chrome: Chrome::new(&state, &bid, user.as_ref(), ""),
        agent_url: state.config.agent_url.clone(),
        platform,
        applications,
    }))
}

/// The demo platform's page posts with its CSRF token; its origin (checked
/// by the origin middleware) is where the page is served from.
/// A POST from the demo platform's own page: its CSRF header checked; the
/// `Origin` the browser sent (the page's origin the platform registers).
struct FromPlatformPage(String);

impl axum::extract::FromRequestParts<AppState> for FromPlatformPage {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        if !crate::extract::csrf_header_valid(parts, state) {
            return Err(certhall_domain::Refusal::CsrfMismatch.into());
        }
        Ok(Self(
            parts
                .headers
                .get(axum::http::header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .map(str::to_ascii_lowercase)
                .unwrap_or_default(),
        ))
    }
}

fn forwarded(answer: certhall_service::demo_platform::ApiAnswer) -> Response {
    (
        axum::http::StatusCode::from_u16(answer.status)
            .unwrap_or(axum::http::StatusCode::BAD_GATEWAY),
        Json(answer.body),
    )
        .into_response()
}

/// `POST /dev/platform/{app}/challenge`: the platform's server asks
/// CertHall for a challenge (bearer token, over HTTP).
async fn platform_challenge(
    State(state): State<AppState>,
    FromPlatformPage(origin): FromPlatformPage,
    Path(app): Path<String>,
) -> Result<Response, ApiError> {
    state.services.demo_platform(&app, &origin).await?;
    Ok(forwarded(
        state.services.demo_platform_challenge(&app).await?,
    ))
}

/// `POST /dev/platform/{app}/activate`: the agent's signed answer, handed
/// to CertHall's activation API.
async fn platform_activate(
    State(state): State<AppState>,
    _page: FromPlatformPage,
    Path(app): Path<String>,
    crate::api::json::Body(answer): crate::api::json::Body<serde_json::Value>,
) -> Result<Response, ApiError> {
    Ok(forwarded(
        state.services.demo_platform_activate(&app, &answer).await?,
    ))
}

/// `GET /dev/platform/{app}/certificates/{serial}`: CertHall's status
/// answer for the platform.
async fn platform_status(
    State(state): State<AppState>,
    Path((app, serial)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(forwarded(
        state.services.demo_platform_status(&app, &serial).await?,
    ))
}

/// `POST /dev/platform/webhook/{app}`: CertHall's webhook, verified like a
/// real platform must before it believes an event.
async fn platform_webhook(
    State(state): State<AppState>,
    Path(app): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let signature = headers
        .get(certhall_service::demo_platform::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    state
        .services
        .demo_platform_receive(&app, signature, &body)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

#[derive(Template)]
#[template(path = "dev_courier.html")]
struct CourierPage {
    chrome: Chrome,
    shipments: Vec<crate::production::ShipmentLine>,
    notice: Option<String>,
    error: Option<String>,
}

async fn courier_page(
    state: &AppState,
    bid: &BrowserId,
    user: Option<&certhall_service::auth::SessionInfo>,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let shipments = state.services.demo_courier_shipments().await?;
    Ok(render(&CourierPage {
        chrome: Chrome::new(state, bid, user, "dev"),
        shipments: crate::production::shipment_lines(shipments),
        notice,
        error,
    }))
}

/// `GET /dev/courier`: the demo courier's parcels.
async fn courier(
    State(state): State<AppState>,
    bid: BrowserId,
    MaybeApplicant(user): MaybeApplicant,
) -> Result<Response, PageError> {
    courier_page(&state, &bid, user.as_ref(), None, None).await
}

/// `POST /dev/courier/{id}/advance`: the parcel's next route node, pushed
/// to CertHall's real push route in SF's signed format.
async fn courier_advance(
    State(state): State<AppState>,
    bid: BrowserId,
    MaybeApplicant(user): MaybeApplicant,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<crate::production::EmptyForm>,
) -> Result<Response, PageError> {
    match state.services.demo_courier_advance(id).await {
        Ok(s) if (200..300).contains(&s) => {
            courier_page(
                &state,
                &bid,
                user.as_ref(),
                Some("已推送路由（已验签并处理）。".into()),
                None,
            )
            .await
        }
        Ok(s) => {
            courier_page(
                &state,
                &bid,
                user.as_ref(),
                None,
                Some(format!("路由推送被拒绝（HTTP {s}）。")),
            )
            .await
        }
        Err(certhall_service::ServiceError::Refused(r)) => {
            courier_page(&state, &bid, user.as_ref(), None, Some(r.message_zh())).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "cashier.html")]
struct CashierPage {
    chrome: Chrome,
    out_trade_no: String,
    description: String,
    amount: String,
    state: &'static str,
    expires: String,
    payable: bool,
    qr: String,
    order_url: Option<String>,
    error: Option<String>,
    notice: Option<String>,
}

async fn cashier_page(
    state: &AppState,
    bid: &BrowserId,
    user: Option<&certhall_service::auth::SessionInfo>,
    no: &str,
    error: Option<String>,
    notice: Option<String>,
) -> Result<Response, PageError> {
    let trade = state.services.demo_cashier_trade(no).await?;
    let qr = super::pay::qr_svg(&state.services.demo_cashier_code_url(no)?);
    let now = state.services.clock.now();
    let order_url = certhall_domain::payment::order_of_out_trade_no(no).map(paths::order);
    let page = CashierPage {
        chrome: Chrome::new(state, bid, user, "cashier"),
        out_trade_no: trade.out_trade_no.clone(),
        description: trade.description.clone(),
        amount: certhall_domain::money::yuan_decimal(trade.amount_fen),
        state: if trade.state.as_str() == "NOTPAY" && now >= trade.expires_at {
            "已过期"
        } else {
            trade.state.label_zh()
        },
        expires: trade.expires_at.display_cst(),
        payable: trade.state.as_str() == "NOTPAY" && now < trade.expires_at,
        order_url,
        qr,
        error,
        notice,
    };
    Ok(render(&page))
}

/// `GET /dev/cashier/{out_trade_no}`: the demo cashier (what the QR code
/// opens).
async fn cashier(
    State(state): State<AppState>,
    bid: BrowserId,
    MaybeApplicant(user): MaybeApplicant,
    Path(no): Path<String>,
) -> Result<Response, PageError> {
    cashier_page(&state, &bid, user.as_ref(), &no, None, None).await
}

/// The cashier's button.
#[derive(Debug, Deserialize)]
pub struct CashierForm {
    #[serde(default)]
    result: String,
}

/// `POST /dev/cashier/{out_trade_no}`: 支付成功 posts a signed WeChat v3
/// callback to CertHall's real callback route; 支付失败 marks the trade
/// failed (found by the next query, as with WeChat Pay).
async fn cashier_pay(
    State(state): State<AppState>,
    bid: BrowserId,
    MaybeApplicant(user): MaybeApplicant,
    Path(no): Path<String>,
    CsrfForm(form): CsrfForm<CashierForm>,
) -> Result<Response, PageError> {
    let success = form.result == "success";
    match state.services.demo_cashier_pay(&no, success).await {
        Ok(certhall_service::demo_pay::CashierOutcome::Paid { callback_status }) => {
            let notice = match callback_status {
                Some(s) if (200..300).contains(&s) => {
                    "支付成功，已向网上营业厅发送支付通知（已验签并处理）。".to_owned()
                }
                Some(s) => format!("支付成功，但支付通知被拒绝（HTTP {s}），系统稍后会主动查询。"),
                None => "支付成功，但支付通知未送达，系统稍后会主动查询支付结果。".to_owned(),
            };
            cashier_page(&state, &bid, user.as_ref(), &no, None, Some(notice)).await
        }
        Ok(certhall_service::demo_pay::CashierOutcome::Failed) => {
            cashier_page(
                &state,
                &bid,
                user.as_ref(),
                &no,
                None,
                Some("已模拟支付失败。请回到订单页面重新支付。".to_owned()),
            )
            .await
        }
        Err(e) => {
            let e = crate::error::WebError::from(e);
            cashier_page(&state, &bid, user.as_ref(), &no, Some(e.message_zh()), None).await
        }
    }
}

/// `/dev/wechatpay/…`: the simulated WeChat Pay API that demo mode's
/// WeChat Pay adapter talks to (it checks the adapter's signatures and
/// signs its answers).
async fn wechatpay(
    State(state): State<AppState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let path = uri
        .path_and_query()
        .map_or("", |p| p.as_str())
        .strip_prefix(paths::DEV_WECHATPAY)
        .unwrap_or("");
    let answer = state
        .services
        .demo_wechat_api(
            method.as_str(),
            path,
            headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
            &body,
        )
        .await?;
    let mut res = (
        axum::http::StatusCode::from_u16(answer.status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
        answer.body,
    )
        .into_response();
    for (k, v) in answer.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(&v),
        ) {
            res.headers_mut().insert(k, v);
        }
    }
    Ok(res)
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
    Ok(render(&OutboxPage {
        chrome: Chrome::new(state, bid, user, "outbox"),
        outbox: state.services.demo_outbox(SHOWN).await?,
        inbound: state.services.demo_inbound(SHOWN).await?,
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
    let items = state.services.demo_outbox(SHOWN).await?;
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
