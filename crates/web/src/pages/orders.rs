//! 证书新办 wizard (steps 1–5) and 我的订单. Steps 3 and 5 carry images
//! and post multipart forms to [`super::materials`].

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use certhall_domain::materials::MaterialKind;
use certhall_domain::order::{OrderKind, OrderState, Step};
use certhall_domain::steps::{OrderSteps, StepData};
use certhall_domain::wizard::{
    CounterInfo, EnterpriseInput, Handling, DEFAULT_COUNTER, ENTERPRISE_NATURES,
};
use certhall_domain::OrderId;
use certhall_service::materials::{shown_reading, MaterialsSubmission};
use certhall_service::views::{OrderFilter, OrderRow};
use serde::Deserialize;

use super::{render, render_with_status, Chrome, Empty};
use crate::error::{status_of, PageError, WebError};
use crate::extract::{Applicant, BrowserId, ClientMeta, CsrfForm};
use crate::AppState;

/// One order in a list.
#[derive(Debug)]
pub struct OrderLine {
    pub(crate) id: OrderId,
    pub(crate) kind: &'static str,
    pub(crate) state: String,
    pub(crate) updated: String,
    pub(crate) enterprise: String,
    pub(crate) application: String,
    pub(crate) amount: String,
    pub(crate) cancellable: bool,
    /// The next action's label and link (继续办理, 去支付 …).
    pub(crate) action: (&'static str, String),
}

impl OrderLine {
    /// The line of `o`.
    pub fn of(o: &OrderRow) -> Self {
        let action = match o.state {
            s if s.editable() => ("继续办理", format!("/orders/{}", o.id)),
            OrderState::Approved => ("选择介质", format!("/orders/{}/checkout", o.id)),
            OrderState::AwaitingPayment => ("去支付", format!("/orders/{}/pay", o.id)),
            OrderState::AwaitingKeyWrite => ("写入新证书", format!("/orders/{}/write", o.id)),
            _ => ("查看", format!("/orders/{}", o.id)),
        };
        Self {
            id: o.id,
            kind: o.kind.label_zh(),
            state: o.state.label_zh(),
            updated: o.updated_at.display_cst(),
            enterprise: o.enterprise_name.clone().unwrap_or_default(),
            application: o.application_name.clone().unwrap_or_default(),
            amount: o
                .amount_fen
                .map(|f| format!("{} 元", certhall_domain::money::yuan_decimal(f)))
                .unwrap_or_default(),
            cancellable: o.state.cancellable(),
            action,
        }
    }
}

#[derive(Template)]
#[template(path = "orders.html")]
struct OrdersPage {
    chrome: Chrome,
    orders: Vec<OrderLine>,
    filters: Vec<(&'static str, &'static str, bool)>,
    filter: &'static str,
    q: String,
}

/// 我的订单's query string (and `GET /api/v1/orders`'s): `state` (all,
/// in_progress, to_pay, paid, cancelled) and `q` (number, enterprise or
/// application).
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) q: String,
}

/// `GET /orders`: 我的订单, filtered by state and searched by number,
/// enterprise or application.
pub async fn list(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    axum::extract::Query(query): axum::extract::Query<ListQuery>,
) -> Result<Response, PageError> {
    let filter = OrderFilter::parse(&query.state);
    let q: String = query.q.trim().chars().take(40).collect();
    let orders = state
        .services
        .orders_of(who.account_id, filter, Some(&q))
        .await?;
    Ok(render(&OrdersPage {
        chrome: Chrome::new(&state, &bid, Some(&who), "orders"),
        orders: orders.iter().map(OrderLine::of).collect(),
        filters: OrderFilter::ALL
            .into_iter()
            .map(|f| (f.as_str(), f.label_zh(), f == filter))
            .collect(),
        filter: filter.as_str(),
        q,
    }))
}

#[derive(Template)]
#[template(path = "apply_new.html")]
struct ApplyNewPage {
    chrome: Chrome,
    drafts: Vec<OrderLine>,
}

/// `GET /apply/new`: start, or continue an unfinished application.
pub async fn apply_new(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
) -> Result<Response, PageError> {
    let orders = state
        .services
        .orders_of(who.account_id, OrderFilter::All, None)
        .await?;
    Ok(render(&ApplyNewPage {
        chrome: Chrome::new(&state, &bid, Some(&who), "home"),
        drafts: orders
            .iter()
            .filter(|o| o.kind == OrderKind::New && o.state.editable())
            .map(OrderLine::of)
            .collect(),
    }))
}

/// `POST /orders/new`: a new order at step 1.
pub async fn start(
    State(state): State<AppState>,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, PageError> {
    let order = state
        .services
        .start_order(who.account_id, OrderKind::New, &meta)
        .await?;
    Ok(Redirect::to(&step_url(order.id, Step::Identity)).into_response())
}

fn step_url(id: OrderId, step: Step) -> String {
    format!("/orders/{id}/step/{}", step.number())
}

/// The step an order opens at.
fn current_step(state: OrderState) -> Option<Step> {
    match state {
        OrderState::Draft { reached } => Some(reached),
        OrderState::Returned { step } => Some(step),
        OrderState::AuthorizationRefused => Some(Step::Materials),
        _ => None,
    }
}

/// A field of the summary.
#[derive(Debug)]
pub struct SummaryField {
    label: String,
    value: String,
}

/// A step of the summary.
#[derive(Debug)]
pub struct SummaryStep {
    number: u8,
    label: &'static str,
    fields: Vec<SummaryField>,
}

/// A line of the history.
#[derive(Debug)]
pub struct TimelineLine {
    at: String,
    to: String,
    reason: Option<String>,
}

/// One of the manual's eight steps in the progress bar.
#[derive(Debug)]
pub struct StageTab {
    pub(crate) number: u8,
    pub(crate) label: &'static str,
    pub(crate) class: &'static str,
}

/// The eight steps (manual 2.3.1) with `current` highlighted.
pub fn stages(current: u8) -> Vec<StageTab> {
    tabs_of(&NEW_STAGES, current)
}

/// The manual's eight stages of a new certificate (and of 补办).
const NEW_STAGES: [&str; 8] = [
    "个人实名认证",
    "选择应用",
    "企业实名认证",
    "办理方式",
    "材料与授权",
    "介质与收货",
    "支付",
    "制证与发货",
];

/// The stages of an order of `kind` in `state` (0 when cancelled): a
/// 证书变更 goes through the wizard and then writes onto the key it has;
/// a priced 证书更新 is paid, then written. Neither is produced or shipped.
pub fn stages_for(kind: OrderKind, state: OrderState) -> Vec<StageTab> {
    const CHANGE: [&str; 6] = [
        "个人实名认证",
        "选择应用",
        "企业实名认证",
        "办理方式",
        "材料与授权",
        "写入新证书",
    ];
    const RENEWAL: [&str; 2] = ["支付", "写入新证书"];
    let stage = match state {
        OrderState::Cancelled => 0,
        s => s.stage(),
    };
    match (kind, state) {
        (OrderKind::Change, OrderState::Completed) => tabs_of(&CHANGE, 7),
        (OrderKind::Change, _) => tabs_of(&CHANGE, stage.min(6)),
        (OrderKind::Renewal, OrderState::AwaitingPayment) => tabs_of(&RENEWAL, 1),
        (OrderKind::Renewal, OrderState::AwaitingKeyWrite) => tabs_of(&RENEWAL, 2),
        (OrderKind::Renewal, OrderState::Completed) => tabs_of(&RENEWAL, 3),
        (OrderKind::Renewal, _) => tabs_of(&RENEWAL, 0),
        _ => tabs_of(&NEW_STAGES, stage),
    }
}

fn tabs_of(labels: &[&'static str], current: u8) -> Vec<StageTab> {
    (1u8..)
        .zip(labels.iter().copied())
        .map(|(n, label)| StageTab {
            number: n,
            label,
            class: if n < current {
                "done"
            } else if n == current {
                "current"
            } else {
                "locked"
            },
        })
        .collect()
}

#[derive(Template)]
#[template(path = "order_status.html")]
struct StatusPage {
    chrome: Chrome,
    /// 证书变更: the certificate changed and what changes.
    change: Option<certhall_service::change::ChangeView>,
    /// 证书变更 approved: the new certificate may be written.
    key_write: bool,
    order: OrderLine,
    stage_tabs: Vec<StageTab>,
    counter: Option<CounterInfo>,
    reason: Option<String>,
    notice: Option<String>,
    error: Option<String>,
    /// While waiting for the legal representative: phone (masked), name,
    /// until when.
    waiting_for: Option<(String, String, String)>,
    next: String,
    expected: Option<&'static str>,
    queue_position: Option<usize>,
    approved: bool,
    awaiting_payment: bool,
    awaiting_authorization: bool,
    cancellable: bool,
    amount: Option<String>,
    steps: Vec<SummaryStep>,
    materials: Vec<MaterialView>,
    checkout: Option<CheckoutSummary>,
    attempts: Vec<super::pay::AttemptLine>,
    refunds: Vec<super::pay::RefundLine>,
    timeline: Vec<TimelineLine>,
    /// Step 8: (介质序列号, 介质, 证书序列号) once the key is made.
    ukey: Option<(String, String, String)>,
    shipments: Vec<crate::production::ShipmentLine>,
    delivered: bool,
}

/// Step 6 as the summary shows it.
#[derive(Debug)]
pub struct CheckoutSummary {
    key_model: String,
    application_price: String,
    key_price: String,
    total: String,
    recipient: String,
    address: String,
    invoice: String,
}

/// What the order page's query string may say.
#[derive(Debug, Default, Deserialize)]
pub struct StatusQuery {
    #[serde(default)]
    paid: Option<String>,
    #[serde(default)]
    resent: Option<String>,
}

/// `GET /orders/{id}`: the step to fill while the wizard is open; else the
/// order's summary, history and next step.
pub async fn show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path(id): Path<OrderId>,
    axum::extract::Query(q): axum::extract::Query<StatusQuery>,
) -> Result<Response, PageError> {
    // One summary serves both the redirect and the page: every query
    // costs a thread hand-off on SQLite (docs/benchmarks.md).
    let summary = state.services.order_summary(who.account_id, id).await?;
    if let Some(step) = current_step(summary.order.state) {
        return Ok(Redirect::to(&step_url(id, step)).into_response());
    }
    let notice = if q.paid.is_some() && summary.order.state == OrderState::Paid {
        Some("支付成功！柜台将为您制作 UKey 并以顺丰到付方式寄出。".to_owned())
    } else if q.paid.is_some() && summary.order.state == OrderState::AwaitingKeyWrite {
        Some("支付成功！请插入存放该证书的 UKey，点击“写入新证书”完成更新。".to_owned())
    } else if q.resent.is_some() {
        Some("授权短信已重新发送，请提醒法定代表人回复“同意”。".to_owned())
    } else {
        None
    };
    render_status(&state, &bid, &who, summary, notice, None)
}

/// Renders the order page with an optional notice or error.
pub async fn status_page(
    state: &AppState,
    bid: &BrowserId,
    who: &certhall_service::auth::SessionInfo,
    id: OrderId,
    notice: Option<String>,
    error: Option<WebError>,
) -> Result<Response, PageError> {
    let summary = state.services.order_summary(who.account_id, id).await?;
    render_status(state, bid, who, summary, notice, error)
}

/// Renders the order page from its summary.
fn render_status(
    state: &AppState,
    bid: &BrowserId,
    who: &certhall_service::auth::SessionInfo,
    summary: certhall_service::orders::OrderSummary,
    notice: Option<String>,
    error: Option<WebError>,
) -> Result<Response, PageError> {
    let id = summary.order.id;
    let order = &summary.order;
    let waiting_for = match (order.state, &summary.authorization) {
        (OrderState::AwaitingAuthorization, Some(a)) if a.outcome.is_pending() => {
            Some((a.phone_masked(), a.name.clone(), a.expires_at.display_cst()))
        }
        _ => None,
    };
    let view = certhall_service::payments::PaymentView {
        order: order.clone(),
        checkout: summary.checkout.clone(),
        attempts: summary.attempts.clone(),
        refunds: summary.refunds.clone(),
        channels: Vec::new(),
        demo: false,
    };
    let (attempts, refunds) = super::pay::payment_lines(&view);
    let status = error
        .as_ref()
        .map_or(axum::http::StatusCode::OK, WebError::status);
    Ok(render_with_status(
        status,
        &StatusPage {
            chrome: Chrome::new(state, bid, Some(who), "orders"),
            stage_tabs: stages_for(order.kind, order.state),
            counter: (order.state == OrderState::CounterVisit).then_some(DEFAULT_COUNTER),
            reason: order.return_reason.clone().filter(|_| {
                matches!(
                    order.state,
                    OrderState::Cancelled | OrderState::AuthorizationRefused
                )
            }),
            notice,
            error: error.map(|e| e.message_zh()),
            waiting_for,
            next: summary.next.clone(),
            expected: summary.expected,
            queue_position: summary.queue_position,
            approved: order.state == OrderState::Approved,
            awaiting_payment: order.state == OrderState::AwaitingPayment,
            key_write: order.state == OrderState::AwaitingKeyWrite,
            change: summary.change.clone(),
            awaiting_authorization: order.state == OrderState::AwaitingAuthorization,
            cancellable: order.state.cancellable(),
            amount: order.amount_fen.map(certhall_domain::money::yuan_decimal),
            steps: summary
                .steps
                .iter()
                .filter(|s| !s.fields.is_empty())
                .map(|s| SummaryStep {
                    number: s.step.number(),
                    label: s.step.label_zh(),
                    fields: s
                        .fields
                        .iter()
                        .map(|f| SummaryField {
                            label: f.label.clone(),
                            value: f.value.clone(),
                        })
                        .collect(),
                })
                .collect(),
            materials: summary
                .materials
                .iter()
                .map(|m| MaterialView::of("/orders", id, m))
                .collect(),
            checkout: summary.checkout.as_ref().map(|c| CheckoutSummary {
                key_model: c.key_model_name.clone(),
                application_price: certhall_domain::money::yuan_decimal(c.application_fen),
                key_price: certhall_domain::money::yuan_decimal(c.key_fen),
                total: certhall_domain::money::yuan_decimal(c.total_fen),
                recipient: super::pay::recipient_line(c),
                address: c.address_line(),
                invoice: super::pay::invoice_line(c),
            }),
            attempts,
            refunds,
            ukey: summary.ukey.as_ref().map(|k| {
                (
                    k.token_serial.clone(),
                    format!(
                        "{}（{}）",
                        k.key_model_name,
                        certhall_domain::checkout::KeyColour::parse(&k.colour)
                            .map_or("", |c| c.label_zh())
                    ),
                    k.certificate_serial.clone(),
                )
            }),
            shipments: crate::production::shipment_lines(
                summary
                    .shipments
                    .iter()
                    .filter(|s| matches!(s.shipment.state.as_str(), "shipped" | "delivered"))
                    .cloned()
                    .collect(),
            ),
            delivered: order.state == OrderState::Delivered,
            timeline: summary
                .events
                .iter()
                .map(|e| TimelineLine {
                    at: e.at.display_cst(),
                    to: e.to_label(),
                    reason: e.reason.clone(),
                })
                .collect(),
            order: OrderLine::of(order),
        },
    ))
}

/// A step in the progress bar.
#[derive(Debug)]
pub struct StepTab {
    number: u8,
    label: &'static str,
    /// `done`, `current`, `open` or `locked`.
    class: &'static str,
    link: Option<String>,
}

/// An application to choose at step 2.
#[derive(Debug)]
pub struct AppOption {
    code: String,
    name: String,
    description: String,
    price: String,
    validity_days: u32,
}

#[derive(Template)]
#[template(path = "order_step.html")]
struct StepPage {
    chrome: Chrome,
    order_id: OrderId,
    /// 证书新办, 证书变更 …
    kind: &'static str,
    /// 证书变更: step 3 asks for the changed license.
    change: bool,
    step: u8,
    step_label: &'static str,
    tabs: Vec<StepTab>,
    error: Option<String>,
    return_reason: Option<String>,
    // Step 1.
    name: String,
    id_number: String,
    phone: String,
    // Step 2.
    apps: Vec<AppOption>,
    application: String,
    // Step 3.
    ent: EnterpriseInput,
    /// Fields filled from a reading the reader was not sure of (请核对).
    unsure: Vec<String>,
    natures: &'static [&'static str],
    // Step 4.
    handling: String,
    /// Ask before ending the online flow at a counter.
    confirm_counter: bool,
    // Steps 3 and 5.
    notice: Option<String>,
    ocr_available: bool,
    license: Option<MaterialView>,
    /// Step 3 without a license yet: licenses on the account's other
    /// orders (order, enterprise, uploaded), to reuse.
    earlier_licenses: Vec<(OrderId, String, String)>,
    slots: Vec<MaterialSlot>,
    authorization: String,
    authorization_refused: Option<String>,
    legal_rep_name: String,
    legal_rep_id_number: String,
    legal_rep_phone: String,
}

impl StepPage {
    /// Whether step 3's `field` (as named in [`EnterpriseInput`]) is to be
    /// marked 请核对.
    fn is_unsure(&self, field: &str) -> bool {
        self.unsure.iter().any(|f| f == field)
    }
}

/// A stored image, as the pages show it.
#[derive(Debug, Clone)]
pub struct MaterialView {
    /// `company_seal`, …
    pub kind: &'static str,
    /// 公章, …
    pub label: &'static str,
    /// Where the image is served (with its hash, so a new upload shows).
    pub url: String,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// `1.2 MB`, `310 KB`.
    pub size: String,
    /// First 12 hex digits of the SHA-256.
    pub sha_short: String,
}

impl MaterialView {
    /// The view of `m` on order `order` under `base` (`/orders` or
    /// `/counter/orders`).
    pub fn of(base: &str, order: OrderId, m: &certhall_service::views::MaterialInfo) -> Self {
        let sha_short: String = m.sha256.chars().take(12).collect();
        Self {
            kind: m.kind.as_str(),
            label: m.kind.label_zh(),
            url: format!("{base}/{order}/materials/{}?v={sha_short}", m.kind.as_str()),
            width: m.width,
            height: m.height,
            size: if m.size >= 1024 * 1024 {
                format!("{:.1} MB", m.size as f64 / (1024.0 * 1024.0))
            } else {
                format!("{} KB", m.size.div_ceil(1024))
            },
            sha_short,
        }
    }
}

/// An upload field of step 5.
#[derive(Debug, Clone)]
pub struct MaterialSlot {
    kind: &'static str,
    label: &'static str,
    hint: &'static str,
    letter_only: bool,
    stored: Option<MaterialView>,
    error: Option<String>,
}

/// What a multipart post adds to the re-rendered step.
#[derive(Debug, Default)]
pub struct Extras {
    /// A success note (图片已保存, 已识别营业执照).
    pub notice: Option<String>,
    /// Per-image refusals, by kind.
    pub file_errors: Vec<(MaterialKind, String)>,
    /// Step 3 filled from a license reading: the fields to mark 请核对.
    pub unsure: Option<Vec<String>>,
}

/// The wizard form: every step's fields (each step reads its own).
#[derive(Debug, Default, Deserialize)]
pub struct StepForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    id_number: String,
    #[serde(default)]
    application: String,
    #[serde(default, flatten)]
    ent: EntFields,
    #[serde(default)]
    handling: String,
    /// `1` once 柜台办理 was confirmed.
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    authorization: String,
    #[serde(default)]
    legal_rep_name: String,
    #[serde(default)]
    legal_rep_id_number: String,
    #[serde(default)]
    legal_rep_phone: String,
}

impl StepForm {
    /// The typed values of a multipart form.
    pub fn of_fields(fields: &std::collections::HashMap<String, String>) -> Self {
        serde_json::to_value(fields)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }

    /// Step 3's fields, with those OCR read put in.
    pub fn merge_license(&mut self, read: &EnterpriseInput) {
        let pairs = [
            (&mut self.ent.ent_name, &read.name),
            (&mut self.ent.ent_uscc, &read.uscc),
            (&mut self.ent.ent_kind, &read.kind),
            (
                &mut self.ent.ent_legal_representative,
                &read.legal_representative,
            ),
            (&mut self.ent.ent_address, &read.address),
            (
                &mut self.ent.ent_registered_capital,
                &read.registered_capital,
            ),
            (&mut self.ent.ent_established, &read.established),
        ];
        for (field, value) in pairs {
            if !value.trim().is_empty() {
                value.trim().clone_into(field);
            }
        }
    }

    /// Step 3's input.
    pub fn enterprise(&self) -> EnterpriseInput {
        self.ent.input()
    }

    /// Step 5's input.
    pub fn submission(&self) -> MaterialsSubmission {
        MaterialsSubmission {
            authorization: self.authorization.clone(),
            legal_rep_name: self.legal_rep_name.clone(),
            legal_rep_id_number: self.legal_rep_id_number.clone(),
            legal_rep_phone: self.legal_rep_phone.clone(),
        }
    }
}

/// Step 3's fields (prefixed `ent_` in the form).
#[derive(Debug, Default, Deserialize)]
pub struct EntFields {
    #[serde(default)]
    ent_name: String,
    #[serde(default)]
    ent_uscc: String,
    #[serde(default)]
    ent_kind: String,
    #[serde(default)]
    ent_legal_representative: String,
    #[serde(default)]
    ent_address: String,
    #[serde(default)]
    ent_registered_capital: String,
    #[serde(default)]
    ent_established: String,
    #[serde(default)]
    ent_registered_place: String,
    #[serde(default)]
    ent_nature: String,
}

impl EntFields {
    fn input(&self) -> EnterpriseInput {
        EnterpriseInput {
            name: self.ent_name.clone(),
            uscc: self.ent_uscc.clone(),
            kind: self.ent_kind.clone(),
            legal_representative: self.ent_legal_representative.clone(),
            address: self.ent_address.clone(),
            registered_capital: self.ent_registered_capital.clone(),
            established: self.ent_established.clone(),
            registered_place: self.ent_registered_place.clone(),
            nature: self.ent_nature.clone(),
        }
    }
}

fn parse_step(n: u8) -> Result<Step, PageError> {
    Step::from_number(i64::from(n))
        .ok_or_else(|| WebError::Refused(certhall_domain::Refusal::NotFound).into())
}

fn tabs(id: OrderId, state: OrderState, current: Step) -> Vec<StepTab> {
    let reached = match state {
        OrderState::Draft { reached } => reached,
        _ => Step::Materials,
    };
    Step::ALL
        .into_iter()
        .map(|s| StepTab {
            number: s.number(),
            label: s.label_zh(),
            class: if s == current {
                "current"
            } else if s < reached {
                "done"
            } else if s == reached {
                "open"
            } else {
                "locked"
            },
            link: (s <= reached).then(|| step_url(id, s)),
        })
        .collect()
}

/// Renders `step` of the order with what was typed and the outcome of a
/// refused or partial post (`error`, `extras`).
#[allow(clippy::too_many_arguments)]
pub async fn render_step(
    state: &AppState,
    bid: &BrowserId,
    who: &certhall_service::auth::SessionInfo,
    order_id: OrderId,
    step: Step,
    typed: Option<&StepForm>,
    error: Option<WebError>,
    extras: Extras,
) -> Result<Response, PageError> {
    let order = state.services.order_of(who.account_id, order_id).await?;
    let status = match &error {
        Some(WebError::Refused(r)) => status_of(r),
        Some(other) => other.status(),
        None if !extras.file_errors.is_empty() => axum::http::StatusCode::BAD_REQUEST,
        None => axum::http::StatusCode::OK,
    };
    let message = error.map(|e| e.message_zh());
    let page = step_page(state, bid, who, &order, step, typed, message, extras).await?;
    Ok(render_with_status(status, &page))
}

#[allow(clippy::too_many_arguments)]
async fn step_page(
    state: &AppState,
    bid: &BrowserId,
    who: &certhall_service::auth::SessionInfo,
    order: &OrderRow,
    step: Step,
    typed: Option<&StepForm>,
    error: Option<String>,
    extras: Extras,
) -> Result<StepPage, PageError> {
    let mut saved = OrderSteps::default();
    if let Some(data) = state
        .services
        .wizard_data(who.account_id, order, step)
        .await?
    {
        saved.put(data);
    }
    let apps = if step == Step::Application {
        state
            .services
            .applications(true)
            .await?
            .into_iter()
            .map(|a| AppOption {
                price: a.price_text(),
                code: a.code,
                name: a.name,
                description: a.description,
                validity_days: a.validity_days,
            })
            .collect()
    } else {
        Vec::new()
    };
    let materials = if matches!(step, Step::Enterprise | Step::Materials) {
        state
            .services
            .materials_of(who.account_id, order.id)
            .await?
    } else {
        Vec::new()
    };
    let license_info = materials.iter().find(|m| m.kind == MaterialKind::License);
    let earlier_licenses = if step == Step::Enterprise && license_info.is_none() {
        state
            .services
            .earlier_licenses(who.account_id, order.id)
            .await?
            .into_iter()
            .map(|l| (l.order, l.enterprise, l.uploaded_at.display_cst()))
            .collect()
    } else {
        Vec::new()
    };
    // This order's own step-3 data, read once where it is used: step 3
    // prefers it to the OCR reading, step 5 proposes its legal
    // representative.
    let own_enterprise = if matches!(step, Step::Enterprise | Step::Materials) {
        match state.services.order_step(order, Step::Enterprise).await? {
            Some(StepData::Enterprise(e)) => Some(e),
            _ => None,
        }
    } else {
        None
    };
    let mut unsure = Vec::new();
    let ent = match typed {
        Some(f) => f.ent.input(),
        None => {
            // Saved at this order's step 3; else what OCR read from this
            // order's license; else the account's last order.
            let read = license_info
                .and_then(shown_reading)
                .filter(|_| own_enterprise.is_none());
            if let Some((_, marks)) = &read {
                unsure = marks.clone();
            }
            own_enterprise
                .clone()
                .map(EnterpriseInput::from)
                .or(read.map(|(fields, _)| fields))
                .or(saved.enterprise.clone().map(EnterpriseInput::from))
                .filter(|_| step == Step::Enterprise)
                .unwrap_or_default()
        }
    };
    if let Some(marks) = extras.unsure {
        unsure = marks;
    }
    let slots = if step == Step::Materials {
        MaterialKind::ALL
            .into_iter()
            .filter(|k| k.step() == Step::Materials)
            .map(|k| MaterialSlot {
                kind: k.as_str(),
                label: k.label_zh(),
                hint: k.hint_zh(),
                letter_only: k == MaterialKind::AuthorizationLetter,
                stored: materials
                    .iter()
                    .find(|m| m.kind == k)
                    .map(|m| MaterialView::of("/orders", order.id, m)),
                error: extras
                    .file_errors
                    .iter()
                    .find(|(kind, _)| *kind == k)
                    .map(|(_, e)| e.clone()),
            })
            .collect()
    } else {
        Vec::new()
    };
    // Step 5's legal representative: as typed, as saved, else the
    // license's legal representative's name.
    let saved_rep = saved
        .materials
        .as_ref()
        .and_then(|m| m.legal_rep.clone())
        .filter(|_| step == Step::Materials);
    let license_rep = match &saved_rep {
        Some(rep) => rep.name.clone(),
        None if step == Step::Materials => own_enterprise
            .map(|e| e.legal_representative)
            .unwrap_or_default(),
        None => String::new(),
    };
    let identity = saved.identity.unwrap_or_default();
    Ok(StepPage {
        chrome: Chrome::new(state, bid, Some(who), "orders"),
        order_id: order.id,
        kind: order.kind.label_zh(),
        change: order.kind == certhall_domain::order::OrderKind::Change,
        step: step.number(),
        step_label: step.label_zh(),
        tabs: tabs(order.id, order.state, step),
        error,
        return_reason: match order.state {
            OrderState::Returned { .. } => order.return_reason.clone(),
            _ => None,
        },
        name: typed.map(|f| f.name.clone()).unwrap_or(identity.name),
        id_number: typed
            .map(|f| f.id_number.clone())
            .unwrap_or(identity.id_number),
        phone: who.phone.as_str().to_owned(),
        apps,
        application: typed
            .map(|f| f.application.clone())
            .or_else(|| saved.application.map(|a| a.code))
            .unwrap_or_default(),
        ent,
        unsure,
        natures: &ENTERPRISE_NATURES,
        handling: typed
            .map(|f| f.handling.clone())
            .or_else(|| saved.handling.map(|h| h.handling.as_str().to_owned()))
            .unwrap_or_default(),
        confirm_counter: typed.is_some_and(|f| f.handling == "counter" && f.confirm != "1"),
        notice: extras.notice,
        ocr_available: state.services.ocr_available(),
        license: license_info.map(|m| MaterialView::of("/orders", order.id, m)),
        earlier_licenses,
        slots,
        authorization: typed
            .map(|f| f.authorization.clone())
            .or_else(|| {
                saved
                    .materials
                    .as_ref()
                    .map(|m| m.authorization.as_str().to_owned())
            })
            .unwrap_or_default(),
        authorization_refused: match order.state {
            OrderState::AuthorizationRefused => order.return_reason.clone(),
            _ => None,
        },
        legal_rep_name: typed
            .map(|f| f.legal_rep_name.clone())
            .unwrap_or(license_rep),
        legal_rep_id_number: typed
            .map(|f| f.legal_rep_id_number.clone())
            .or_else(|| saved_rep.as_ref().map(|r| r.id_number.clone()))
            .unwrap_or_default(),
        legal_rep_phone: typed
            .map(|f| f.legal_rep_phone.clone())
            .or_else(|| saved_rep.as_ref().map(|r| r.phone.clone()))
            .unwrap_or_default(),
    })
}

/// `GET /orders/{id}/step/{n}`.
pub async fn step_show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path((id, n)): Path<(OrderId, u8)>,
) -> Result<Response, PageError> {
    let step = parse_step(n)?;
    let order = state.services.order_of(who.account_id, id).await?;
    if !order.state.editable() {
        return Ok(Redirect::to(&format!("/orders/{id}")).into_response());
    }
    if let OrderState::Draft { reached } = order.state {
        if step > reached {
            return Ok(Redirect::to(&step_url(id, reached)).into_response());
        }
    }
    Ok(render(
        &step_page(
            &state,
            &bid,
            &who,
            &order,
            step,
            None,
            None,
            Extras::default(),
        )
        .await?,
    ))
}

/// `POST /orders/{id}/step/{n}`: validate and save the step, go to the
/// next; on refusal the same step with the message and what was typed.
pub async fn step_submit(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path((id, n)): Path<(OrderId, u8)>,
    CsrfForm(form): CsrfForm<StepForm>,
) -> Result<Response, PageError> {
    let step = parse_step(n)?;
    let s = &state.services;
    let result = match step {
        Step::Identity => {
            s.wizard_identity(
                who.account_id,
                &who.phone,
                id,
                &form.name,
                &form.id_number,
                &meta,
            )
            .await
        }
        Step::Application => {
            s.wizard_application(who.account_id, id, &form.application, &meta)
                .await
        }
        Step::Enterprise => {
            s.wizard_enterprise(who.account_id, id, &form.ent.input(), &meta)
                .await
        }
        Step::Handling => match Handling::parse(&form.handling) {
            // 柜台办理 ends the online flow: asked once more first.
            Ok(Handling::Counter) if form.confirm != "1" => {
                return render_step(
                    &state,
                    &bid,
                    &who,
                    id,
                    step,
                    Some(&form),
                    None,
                    Extras::default(),
                )
                .await;
            }
            Ok(h) => s.wizard_handling(who.account_id, id, h, &meta).await,
            Err(r) => Err(r.into()),
        },
        Step::Materials => {
            s.submit_materials(who.account_id, id, &form.submission(), &meta)
                .await
        }
    };
    match result {
        Ok(order) => {
            let next = match (order.state, step.next()) {
                (OrderState::CounterVisit, _) => format!("/orders/{id}"),
                (_, Some(next)) => step_url(id, next),
                (_, None) => format!("/orders/{id}"),
            };
            Ok(Redirect::to(&next).into_response())
        }
        Err(e) => {
            render_step(
                &state,
                &bid,
                &who,
                id,
                step,
                Some(&form),
                Some(WebError::from(e)),
                Extras::default(),
            )
            .await
        }
    }
}
