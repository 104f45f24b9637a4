//! 第六步 选择介质与收货信息 and 第七步 支付, cancelling an order, and
//! the applicant's actions while the legal representative has not
//! answered (resend, correct, switch to the letter).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use certhall_domain::checkout::{AddressInput, CheckoutInput, InvoiceInput};
use certhall_domain::divisions;
use certhall_domain::money::yuan_decimal;
use certhall_domain::order::OrderState;
use certhall_domain::payment::{AttemptState, Channel};
use certhall_domain::Refusal;
use certhall_service::auth::SessionInfo;
use certhall_service::checkout::CheckoutView;
use certhall_service::orders::OrderActor;
use certhall_service::payments::PaymentView;
use serde::Deserialize;

use super::{render, render_with_status, Chrome};
use crate::error::{status_of, ApiError, PageError, WebError};
use crate::extract::{Applicant, BrowserId, ClientMeta, CsrfForm};
use crate::{paths, AppState};

/// One option of a `<select>`.
#[derive(Debug, Clone)]
pub struct SelectOption {
    pub(crate) code: u32,
    pub(crate) name: &'static str,
    pub(crate) selected: bool,
}

fn options(list: Vec<divisions::Division>, selected: u32) -> Vec<SelectOption> {
    list.into_iter()
        .map(|d| SelectOption {
            code: d.code,
            name: d.name,
            selected: d.code == selected,
        })
        .collect()
}

/// The three cascading selects of an address, with `leaf` selected.
#[derive(Debug, Clone)]
pub struct DivisionSelects {
    pub(crate) provinces: Vec<SelectOption>,
    pub(crate) cities: Vec<SelectOption>,
    pub(crate) districts: Vec<SelectOption>,
}

impl DivisionSelects {
    /// The selects showing `leaf` (a six-digit code, possibly empty).
    pub fn of(leaf: &str) -> Self {
        let path = divisions::delivery_leaf(leaf.trim());
        let (p, c, d) = path.as_ref().map_or((0, 0, 0), |p| {
            (
                p.province.code,
                p.city.code,
                p.district.map_or(p.city.code, |d| d.code),
            )
        });
        // A city without districts is its own leaf (东莞市): the district
        // select offers the city itself.
        let districts = if p == 0 {
            Vec::new()
        } else {
            let list = divisions::districts(c);
            if list.is_empty() {
                vec![SelectOption {
                    code: c,
                    name: path.as_ref().map_or("", |p| p.city.name),
                    selected: true,
                }]
            } else {
                options(list, d)
            }
        };
        Self {
            provinces: options(divisions::provinces(), p),
            cities: if p == 0 {
                Vec::new()
            } else {
                options(divisions::cities(p), c)
            },
            districts,
        }
    }
}

/// A key model as the page offers it.
#[derive(Debug)]
pub struct ModelOption {
    code: String,
    name: String,
    description: String,
    price: String,
    price_fen: i64,
    picture: String,
    available: bool,
    checked: bool,
}

/// An address of the book as the page offers it.
#[derive(Debug)]
pub struct BookEntry {
    id: i64,
    recipient: String,
    phone: String,
    division: String,
    division_code: String,
    street: String,
    is_default: bool,
    checked: bool,
}

/// Step 6's form.
#[derive(Debug, Default, Deserialize)]
pub struct CheckoutForm {
    #[serde(default)]
    key_model: String,
    /// An address book id, or `new`.
    #[serde(default)]
    address_choice: String,
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    division: String,
    #[serde(default)]
    street: String,
    /// `1` to keep a new address in the book.
    #[serde(default)]
    remember: String,
    #[serde(default)]
    invoice_kind: String,
    #[serde(default)]
    buyer_name: String,
    #[serde(default)]
    tax_id: String,
    #[serde(default)]
    buyer_address: String,
    #[serde(default)]
    buyer_phone: String,
    #[serde(default)]
    bank: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    email: String,
}

impl CheckoutForm {
    fn address(&self) -> AddressInput {
        AddressInput {
            recipient: self.recipient.clone(),
            phone: self.phone.clone(),
            division: self.division.clone(),
            street: self.street.clone(),
        }
    }

    fn invoice(&self) -> InvoiceInput {
        InvoiceInput {
            kind: self.invoice_kind.clone(),
            buyer_name: self.buyer_name.clone(),
            tax_id: self.tax_id.clone(),
            address: self.buyer_address.clone(),
            phone: self.buyer_phone.clone(),
            bank: self.bank.clone(),
            account: self.account.clone(),
            email: self.email.clone(),
        }
    }

    /// The form as it first shows: the confirmed checkout when revising,
    /// else the default address and the enterprise as invoice buyer.
    fn initial(view: &CheckoutView) -> Self {
        let mut f = Self::default();
        if let Some(c) = &view.saved {
            f.key_model = c.key_model.clone();
            f.recipient = c.recipient.clone();
            f.phone = c.phone.clone();
            f.division = format!("{:06}", c.division_code);
            f.street = c.street.clone();
            f.address_choice = "new".into();
            if let Some(i) = &c.invoice {
                f.invoice_kind = i.kind.as_str().into();
                f.buyer_name = i.buyer_name.clone();
                f.tax_id = i.tax_id.clone();
                f.email = i.email.clone();
                if let Some(s) = &i.special {
                    f.buyer_address = s.address.clone();
                    f.buyer_phone = s.phone.clone();
                    f.bank = s.bank.clone();
                    f.account = s.account.clone();
                }
            }
        } else {
            if let Some(m) = view.models.iter().find(|m| m.available()) {
                f.key_model = m.model.code.clone();
            }
            match view.addresses.first() {
                Some(a) => {
                    f.address_choice = a.row.id.to_string();
                    f.recipient = a.row.recipient.clone();
                    f.phone = a.row.phone.clone();
                    f.division = format!("{:06}", a.row.division_code);
                    f.street = a.row.street.clone();
                }
                None => f.address_choice = "new".into(),
            }
            f.remember = "1".into();
        }
        if f.invoice_kind.is_empty() {
            f.invoice_kind = "none".into();
            f.buyer_name = view.invoice_prefill.buyer_name.clone();
            f.tax_id = view.invoice_prefill.tax_id.clone();
        }
        f
    }
}

#[derive(Template)]
#[template(path = "order_checkout.html")]
struct CheckoutPage {
    chrome: Chrome,
    order_id: i64,
    stage_tabs: Vec<super::orders::StageTab>,
    error: Option<String>,
    application_name: String,
    application_price: String,
    application_fen: i64,
    models: Vec<ModelOption>,
    book: Vec<BookEntry>,
    selects: DivisionSelects,
    form: CheckoutForm,
    total: String,
}

async fn checkout_page(
    state: &AppState,
    bid: &BrowserId,
    who: &SessionInfo,
    order_id: i64,
    form: Option<CheckoutForm>,
    error: Option<WebError>,
) -> Result<Response, PageError> {
    let view = state
        .services
        .checkout_view(who.account_id, order_id)
        .await?;
    let status = match &error {
        Some(WebError::Refused(r)) => status_of(r),
        Some(e) => e.status(),
        None => axum::http::StatusCode::OK,
    };
    let form = form.unwrap_or_else(|| CheckoutForm::initial(&view));
    let key_fen = view
        .models
        .iter()
        .find(|m| m.model.code == form.key_model)
        .map_or(0, |m| m.model.price_fen);
    let page = CheckoutPage {
        chrome: Chrome::new(state, bid, Some(who), "orders"),
        order_id,
        stage_tabs: super::orders::stages(6),
        error: error.map(|e| e.message_zh()),
        application_name: view.application_name.clone(),
        application_price: yuan_decimal(view.application_fen),
        application_fen: view.application_fen,
        models: view
            .models
            .iter()
            .map(|m| ModelOption {
                code: m.model.code.clone(),
                name: m.model.name.clone(),
                description: m.model.description.clone(),
                price: yuan_decimal(m.model.price_fen),
                price_fen: m.model.price_fen,
                picture: m.model.picture.clone(),
                available: m.available(),
                checked: m.model.code == form.key_model,
            })
            .collect(),
        book: view
            .addresses
            .iter()
            .map(|a| BookEntry {
                id: a.row.id,
                recipient: a.row.recipient.clone(),
                phone: a.row.phone.clone(),
                division: a.division.clone(),
                division_code: format!("{:06}", a.row.division_code),
                street: a.row.street.clone(),
                is_default: a.row.is_default,
                checked: form.address_choice == a.row.id.to_string(),
            })
            .collect(),
        selects: DivisionSelects::of(&form.division),
        total: yuan_decimal(view.application_fen + key_fen),
        form,
    };
    Ok(render_with_status(status, &page))
}

/// `GET /orders/{id}/checkout`: 第六步.
pub async fn show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let order = state.services.order_of(who.account_id, id).await?;
    match order.state {
        OrderState::AwaitingPayment => return Ok(Redirect::to(&paths::pay(id)).into_response()),
        OrderState::Paid => return Ok(Redirect::to(&paths::order(id)).into_response()),
        _ => {}
    }
    checkout_page(&state, &bid, &who, id, None, None).await
}

/// `POST /orders/{id}/checkout`: confirm step 6, then pay.
pub async fn submit(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<CheckoutForm>,
) -> Result<Response, PageError> {
    let s = &state.services;
    // A book address is used as stored (and checked again).
    let (address, remember) = match form.address_choice.parse::<i64>() {
        Ok(book_id) => match s.address(who.account_id, book_id).await {
            Ok(a) => (
                AddressInput {
                    recipient: a.row.recipient,
                    phone: a.row.phone,
                    division: format!("{:06}", a.row.division_code),
                    street: a.row.street,
                },
                false,
            ),
            Err(e) => {
                return checkout_page(&state, &bid, &who, id, Some(form), Some(e.into())).await
            }
        },
        Err(_) => (form.address(), form.remember == "1"),
    };
    let input = CheckoutInput {
        key_model: form.key_model.clone(),
        address,
        invoice: form.invoice(),
    };
    match s
        .save_checkout(who.account_id, id, &input, remember, &meta)
        .await
    {
        Ok(_) => Ok(Redirect::to(&paths::pay(id)).into_response()),
        Err(e) => checkout_page(&state, &bid, &who, id, Some(form), Some(e.into())).await,
    }
}

/// Only the CSRF token.
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// `POST /orders/{id}/checkout/revise`: back to step 6 from payment.
pub async fn revise(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, PageError> {
    match state
        .services
        .revise_checkout(who.account_id, id, &meta)
        .await
    {
        Ok(_) => Ok(Redirect::to(&paths::checkout(id)).into_response()),
        Err(e) => pay_page(&state, &bid, &who, id, false, Some(e.into())).await,
    }
}

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
    order_id: i64,
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

async fn pay_page(
    state: &AppState,
    bid: &BrowserId,
    who: &SessionInfo,
    order_id: i64,
    check: bool,
    error: Option<WebError>,
) -> Result<Response, PageError> {
    let view = state
        .services
        .payment_view(who.account_id, order_id, check)
        .await?;
    if view.order.state == OrderState::Paid {
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
            stage_tabs: super::orders::stages(7),
            error: error.map(|e| e.message_zh()),
            notice: if active.is_some() { None } else { notice },
            total: yuan_decimal(c.map_or(0, |c| c.total_fen)),
            application: format!(
                "{}（{} 元）",
                view.order.application_name.clone().unwrap_or_default(),
                yuan_decimal(c.map_or(0, |c| c.application_fen))
            ),
            key_model: c.map(|c| c.key_model_name.clone()).unwrap_or_default(),
            key_price: yuan_decimal(c.map_or(0, |c| c.key_fen)),
            address: c.map(|c| c.address_line()).unwrap_or_default(),
            recipient: c
                .map(|c| format!("{} {}", c.recipient, mask_phone(&c.phone)))
                .unwrap_or_default(),
            invoice: c
                .and_then(|c| c.invoice.as_ref())
                .map(|i| {
                    format!(
                        "{}：{}（{}），发送至 {}",
                        i.kind.label_zh(),
                        i.buyer_name,
                        i.tax_id,
                        i.email
                    )
                })
                .unwrap_or_else(|| "不开发票".into()),
            // While a QR code is shown, only the other channels are offered.
            channels: view
                .channels
                .iter()
                .filter(|c| active_channel != Some(**c))
                .map(|c| (c.as_str(), c.label_zh()))
                .collect(),
            no_channels: view.channels.is_empty(),
            active,
            demo: view.demo,
            attempts,
        },
    ))
}

fn mask_phone(p: &str) -> String {
    certhall_domain::Phone::parse(p).map_or_else(|_| p.to_owned(), |p| p.masked())
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
    Path(id): Path<i64>,
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
    Path(id): Path<i64>,
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
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let view = state
        .services
        .payment_view(who.account_id, id, true)
        .await?;
    let active = view.active().cloned();
    Ok(Json(serde_json::json!({
        "order_state": view.order.state.to_db().0,
        "order_state_label": view.order.state.label_zh(),
        "paid": view.order.state == OrderState::Paid,
        "attempt": active.map(|a| serde_json::json!({
            "state": a.state.as_str(), "expires_at": a.expires_at.rfc3339(),
        })),
    }))
    .into_response())
}

#[derive(Template)]
#[template(path = "order_cancel.html")]
struct CancelPage {
    chrome: Chrome,
    order_id: i64,
    kind: &'static str,
    state: String,
    refund: Option<String>,
    error: Option<String>,
}

/// `GET /orders/{id}/cancel`: asks for confirmation, saying what happens
/// to a payment.
pub async fn cancel_show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let order = state.services.order_of(who.account_id, id).await?;
    if !order.state.cancellable() {
        return Err(Refusal::OrderStateConflict(order.state.label_zh()).into());
    }
    Ok(render(&CancelPage {
        chrome: Chrome::new(&state, &bid, Some(&who), "orders"),
        order_id: id,
        kind: order.kind.label_zh(),
        state: order.state.label_zh(),
        refund: (order.state == OrderState::Paid)
            .then(|| yuan_decimal(order.amount_fen.unwrap_or(0))),
        error: None,
    }))
}

/// `POST /orders/{id}/cancel`.
pub async fn cancel_submit(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, PageError> {
    match state
        .services
        .cancel_order(OrderActor::Applicant(who.account_id), id, None, &meta)
        .await
    {
        Ok(_) => Ok(Redirect::to(&paths::order(id)).into_response()),
        Err(e) => {
            let order = state.services.order_of(who.account_id, id).await?;
            let e = WebError::from(e);
            Ok(render_with_status(
                e.status(),
                &CancelPage {
                    chrome: Chrome::new(&state, &bid, Some(&who), "orders"),
                    order_id: id,
                    kind: order.kind.label_zh(),
                    state: order.state.label_zh(),
                    refund: None,
                    error: Some(e.message_zh()),
                },
            ))
        }
    }
}

/// `POST /orders/{id}/authorization/resend`: the SMS to the legal
/// representative again (counted by the same limits).
pub async fn resend_authorization(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, PageError> {
    match state
        .services
        .resend_authorization(who.account_id, id, &meta)
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("{}?resent=1", paths::order(id))).into_response()),
        Err(e) => super::orders::status_page(&state, &bid, &who, id, None, Some(e.into())).await,
    }
}

/// `POST /orders/{id}/authorization/revise`: back to step 5 (correct the
/// legal representative, or use the letter); uploads stay.
pub async fn revise_authorization(
    State(state): State<AppState>,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, PageError> {
    state
        .services
        .revise_authorization(who.account_id, id, &meta)
        .await?;
    Ok(Redirect::to(&format!("/orders/{id}/step/5")).into_response())
}
