//! 第七步 支付: the QR code of the attempt under way, the channels
//! offered, the attempts so far, and the status the page polls. The
//! attempt and refund lines are shared with the order and counter pages.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use certhall_domain::money::yuan_decimal;
use certhall_domain::order::OrderState;
use certhall_domain::payment::{AttemptState, Channel};
use certhall_domain::{OrderId, Refusal};
use certhall_service::auth::SessionInfo;
use certhall_service::payments::PaymentView;
use certhall_service::views::CheckoutRow;
use serde::Deserialize;

use super::{render_with_status, Chrome};
use crate::error::{status_of, ApiError, PageError, WebError};
use crate::extract::{Applicant, BrowserId, ClientMeta, CsrfForm};
use crate::{paths, AppState};

/// A payment attempt as the page shows it.
#[derive(Debug)]
pub struct AttemptLine {
    pub(crate) seq: i64,
    pub(crate) channel: &'static str,
    pub(crate) amount: String,
    pub(crate) state: &'static str,
    pub(crate) created: String,
    pub(crate) out_trade_no: String,
}

/// A refund as the page shows it.
#[derive(Debug)]
pub struct RefundLine {
    pub(crate) amount: String,
    pub(crate) state: &'static str,
    pub(crate) reason: String,
    pub(crate) created: String,
    pub(crate) out_refund_no: String,
}

/// The QR code of the attempt under way.
#[derive(Debug)]
pub struct ActiveQr {
    channel: &'static str,
    svg: String,
    code_url: String,
    expires: String,
    out_trade_no: String,
}

#[derive(Template)]
#[template(path = "order_pay.html")]
struct PayPage {
    chrome: Chrome,
    order_id: OrderId,
    /// 证书新办, 证书更新 …
    kind: &'static str,
    /// A priced renewal: the certificate renewed (no step 6).
    renews: Option<String>,
    stage_tabs: Vec<super::orders::StageTab>,
    error: Option<String>,
    notice: Option<String>,
    total: String,
    application: String,
    key_model: String,
    key_price: String,
    address: String,
    recipient: String,
    invoice: String,
    channels: Vec<(&'static str, &'static str)>,
    no_channels: bool,
    creating: bool,
    active: Option<ActiveQr>,
    demo: bool,
    attempts: Vec<AttemptLine>,
}

/// The QR code of `text` as inline SVG.
pub fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(220, 220)
            .quiet_zone(true)
            .build()
            .replacen("<?xml version=\"1.0\" standalone=\"yes\"?>", "", 1),
        Err(_) => String::new(),
    }
}

/// Attempts and refunds as lines.
pub fn payment_lines(view: &PaymentView) -> (Vec<AttemptLine>, Vec<RefundLine>) {
    (
        view.attempts
            .iter()
            .map(|a| AttemptLine {
                seq: a.seq,
                channel: a.channel.label_zh(),
                amount: yuan_decimal(a.amount_fen),
                state: a.state.label_zh(),
                created: a.created_at.display_cst(),
                out_trade_no: a.out_trade_no.clone(),
            })
            .collect(),
        view.refunds
            .iter()
            .map(|r| RefundLine {
                amount: yuan_decimal(r.amount_fen),
                state: r.state.label_zh(),
                reason: r.reason.clone(),
                created: r.created_at.display_cst(),
                out_refund_no: r.out_refund_no.clone(),
            })
            .collect(),
    )
}

pub(super) async fn pay_page(
    state: &AppState,
    bid: &BrowserId,
    who: &SessionInfo,
    order_id: OrderId,
    check: bool,
    error: Option<WebError>,
) -> Result<Response, PageError> {
    let view = state
        .services
        .payment_view(who.account_id, order_id, check)
        .await?;
    if view.order.state.payment_settled(view.order.kind) {
        return Ok(Redirect::to(&format!("{}?paid=1", paths::order(order_id))).into_response());
    }
    if view.order.state != OrderState::AwaitingPayment {
        return Ok(Redirect::to(&paths::order(order_id)).into_response());
    }
    let status = match &error {
        Some(WebError::Refused(r)) => status_of(r),
        Some(e) => e.status(),
        None => axum::http::StatusCode::OK,
    };
    let renews = if view.checkout.is_none() {
        state
            .services
            .order_certificate(who.account_id, order_id)
            .await?
    } else {
        None
    };
    let now = state.services.clock.now();
    let active = view.active().filter(|a| now < a.expires_at).and_then(|a| {
        a.code_url.as_ref().map(|url| ActiveQr {
            channel: a.channel.label_zh(),
            svg: qr_svg(url),
            code_url: url.clone(),
            expires: a.expires_at.display_cst(),
            out_trade_no: a.out_trade_no.clone(),
        })
    });
    let active_channel = view
        .active()
        .filter(|a| now < a.expires_at && a.code_url.is_some())
        .map(|a| a.channel);
    // Another tab asked for a QR code a moment ago and the provider is
    // still making it: the page waits and reloads (pay.js).
    let creating = view
        .active()
        .is_some_and(|a| a.code_url.is_none() && now < a.expires_at);
    let (attempts, _) = payment_lines(&view);
    let c = view.checkout.as_ref();
    let notice = view
        .attempts
        .last()
        .filter(|a| matches!(a.state, AttemptState::Failed | AttemptState::Closed))
        .map(|a| match a.state {
            AttemptState::Failed => format!(
                "上一笔支付未成功（{}），请重新支付。",
                a.failure.clone().unwrap_or_else(|| "支付失败".into())
            ),
            _ => "上一个支付二维码已过期关闭，请重新选择支付方式。".into(),
        });
    Ok(render_with_status(
        status,
        &PayPage {
            chrome: Chrome::new(state, bid, Some(who), "orders"),
            order_id,
            kind: view.order.kind.label_zh(),
            renews,
            stage_tabs: super::orders::stages_for(view.order.kind, OrderState::AwaitingPayment),
            error: error.map(|e| e.message_zh()),
            notice: if active.is_some() { None } else { notice },
            total: yuan_decimal(
                view.order
                    .amount_fen
                    .or(c.map(|c| c.total_fen))
                    .unwrap_or(0),
            ),
            application: format!(
                "{}（{} 元）",
                view.order.application_name.clone().unwrap_or_default(),
                yuan_decimal(c.map_or(0, |c| c.application_fen))
            ),
            key_model: c.map(|c| c.key_model_name.clone()).unwrap_or_default(),
            key_price: yuan_decimal(c.map_or(0, |c| c.key_fen)),
            address: c.map(|c| c.address_line()).unwrap_or_default(),
            recipient: c.map(recipient_line).unwrap_or_default(),
            invoice: c.map_or_else(|| "不开发票".into(), invoice_line),
            // While a QR code is shown, only the other channels are offered.
            channels: view
                .channels
                .iter()
                .filter(|c| active_channel != Some(**c))
                .map(|c| (c.as_str(), c.label_zh()))
                .collect(),
            no_channels: view.channels.is_empty(),
            creating,
            active,
            demo: view.demo,
            attempts,
        },
    ))
}

/// `李四 138****8000`: step 6's recipient, the mobile masked (here and on
/// the order page).
pub(super) fn recipient_line(c: &CheckoutRow) -> String {
    let phone =
        certhall_domain::Phone::parse(&c.phone).map_or_else(|_| c.phone.clone(), |p| p.masked());
    format!("{} {phone}", c.recipient)
}

/// Step 6's invoice in one line, or 不开发票 (here and on the order page).
pub(super) fn invoice_line(c: &CheckoutRow) -> String {
    c.invoice.as_ref().map_or_else(
        || "不开发票".to_owned(),
        |i| {
            format!(
                "{}：{}（{}），发送至 {}",
                i.kind.label_zh(),
                i.buyer_name,
                i.tax_id,
                i.email
            )
        },
    )
}

/// `?check=1`: ask the provider now (我已完成支付).
#[derive(Debug, Default, Deserialize)]
pub struct CheckQuery {
    #[serde(default)]
    check: Option<String>,
}

/// `GET /orders/{id}/pay`: 第七步.
pub async fn pay_show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path(id): Path<OrderId>,
    Query(q): Query<CheckQuery>,
) -> Result<Response, PageError> {
    pay_page(&state, &bid, &who, id, q.check.is_some(), None).await
}

/// The channel chosen.
#[derive(Debug, Deserialize)]
pub struct PayForm {
    #[serde(default)]
    channel: String,
}

/// `POST /orders/{id}/pay`: a QR code for the chosen channel.
pub async fn pay_submit(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
    CsrfForm(form): CsrfForm<PayForm>,
) -> Result<Response, PageError> {
    let Some(channel) = Channel::parse(&form.channel) else {
        return pay_page(
            &state,
            &bid,
            &who,
            id,
            false,
            Some(Refusal::MissingField("支付方式").into()),
        )
        .await;
    };
    match state
        .services
        .start_payment(who.account_id, id, channel, &meta)
        .await
    {
        Ok(_) => Ok(Redirect::to(&paths::pay(id)).into_response()),
        Err(e) => pay_page(&state, &bid, &who, id, false, Some(e.into())).await,
    }
}

/// `GET /orders/{id}/pay/status`: what the page polls (JSON); asks the
/// provider at most every 10 seconds per attempt.
pub async fn pay_status(
    State(state): State<AppState>,
    Applicant(who): Applicant,
    Path(id): Path<OrderId>,
) -> Result<Response, ApiError> {
    let view = state
        .services
        .payment_view(who.account_id, id, true)
        .await?;
    let active = view.active().cloned();
    Ok(Json(serde_json::json!({
        "order_state": view.order.state.to_db().0,
        "order_state_label": view.order.state.label_zh(),
        "paid": view.order.state.payment_settled(view.order.kind),
        "attempt": active.map(|a| serde_json::json!({
            "state": a.state.as_str(), "expires_at": a.expires_at.rfc3339(),
            "qr_ready": a.code_url.is_some(),
        })),
    }))
    .into_response())
}
