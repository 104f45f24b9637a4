//! 证书新办 wizard (steps 1–4 so far) and 我的订单.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use certhall_domain::order::{OrderKind, OrderState, Step};
use certhall_domain::wizard::{
    CounterInfo, EnterpriseInput, Handling, DEFAULT_COUNTER, ENTERPRISE_NATURES,
};
use certhall_store::orders::OrderRow;
use serde::Deserialize;

use super::{render, render_with_status, Chrome};
use crate::error::{status_of, PageError, WebError};
use crate::extract::{Applicant, BrowserId, ClientMeta, CsrfForm};
use crate::AppState;

/// One order in a list.
#[derive(Debug)]
pub struct OrderLine {
    id: i64,
    kind: &'static str,
    state: String,
    updated: String,
    editable: bool,
}

impl OrderLine {
    fn of(o: &OrderRow) -> Self {
        Self {
            id: o.id,
            kind: o.kind.label_zh(),
            state: o.state.label_zh(),
            updated: o.updated_at.display_cst(),
            editable: o.state.editable(),
        }
    }
}

#[derive(Template)]
#[template(path = "orders.html")]
struct OrdersPage {
    chrome: Chrome,
    orders: Vec<OrderLine>,
}

/// `GET /orders`: 我的订单.
pub async fn list(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
) -> Result<Response, PageError> {
    let orders = certhall_store::orders::of_account(&state.services.store, who.account_id, 100)
        .await
        .map_err(|e| WebError::from(certhall_service::ServiceError::from(e)))?;
    Ok(render(&OrdersPage {
        chrome: Chrome::new(&state, &bid, Some(&who), "orders"),
        orders: orders.iter().map(OrderLine::of).collect(),
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
    let orders = certhall_store::orders::of_account(&state.services.store, who.account_id, 100)
        .await
        .map_err(|e| WebError::from(certhall_service::ServiceError::from(e)))?;
    Ok(render(&ApplyNewPage {
        chrome: Chrome::new(&state, &bid, Some(&who), "home"),
        drafts: orders
            .iter()
            .filter(|o| o.kind == OrderKind::New && o.state.editable())
            .map(OrderLine::of)
            .collect(),
    }))
}

/// Only the CSRF token.
#[derive(Debug, Deserialize)]
pub struct Empty {}

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

fn step_url(id: i64, step: Step) -> String {
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

#[derive(Template)]
#[template(path = "order_status.html")]
struct StatusPage {
    chrome: Chrome,
    order: OrderLine,
    counter: Option<CounterInfo>,
    reason: Option<String>,
}

/// `GET /orders/{id}`: where the order is — the step to fill, or its status.
pub async fn show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let order = state.services.order_of(who.account_id, id).await?;
    if let Some(step) = current_step(order.state) {
        return Ok(Redirect::to(&step_url(id, step)).into_response());
    }
    Ok(render(&StatusPage {
        chrome: Chrome::new(&state, &bid, Some(&who), "orders"),
        counter: (order.state == OrderState::CounterVisit).then_some(DEFAULT_COUNTER),
        reason: order.return_reason.clone(),
        order: OrderLine::of(&order),
    }))
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
    order_id: i64,
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
    natures: &'static [&'static str],
    // Step 4.
    handling: String,
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

fn tabs(id: i64, state: OrderState, current: Step) -> Vec<StepTab> {
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

async fn step_page(
    state: &AppState,
    bid: &BrowserId,
    who: &certhall_service::auth::SessionInfo,
    order: &OrderRow,
    step: Step,
    typed: Option<&StepForm>,
    error: Option<String>,
) -> Result<StepPage, PageError> {
    let saved = state
        .services
        .wizard_data(who.account_id, order, step)
        .await?;
    let field = |key: &str| -> String {
        saved
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
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
    let ent = match typed {
        Some(f) => f.ent.input(),
        None => saved
            .as_ref()
            .filter(|_| step == Step::Enterprise)
            .and_then(|d| serde_json::from_value(d.clone()).ok())
            .unwrap_or_default(),
    };
    Ok(StepPage {
        chrome: Chrome::new(state, bid, Some(who), "orders"),
        order_id: order.id,
        step: step.number(),
        step_label: step.label_zh(),
        tabs: tabs(order.id, order.state, step),
        error,
        return_reason: match order.state {
            OrderState::Returned { .. } => order.return_reason.clone(),
            _ => None,
        },
        name: typed
            .map(|f| f.name.clone())
            .unwrap_or_else(|| field("name")),
        id_number: typed
            .map(|f| f.id_number.clone())
            .unwrap_or_else(|| field("id_number")),
        phone: who.phone.as_str().to_owned(),
        apps,
        application: typed
            .map(|f| f.application.clone())
            .unwrap_or_else(|| field("code")),
        ent,
        natures: &ENTERPRISE_NATURES,
        handling: typed
            .map(|f| f.handling.clone())
            .unwrap_or_else(|| field("handling")),
    })
}

/// `GET /orders/{id}/step/{n}`.
pub async fn step_show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path((id, n)): Path<(i64, u8)>,
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
        &step_page(&state, &bid, &who, &order, step, None, None).await?,
    ))
}

/// `POST /orders/{id}/step/{n}`: validate and save the step, go to the
/// next; on refusal the same step with the message and what was typed.
pub async fn step_submit(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path((id, n)): Path<(i64, u8)>,
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
            Ok(h) => s.wizard_handling(who.account_id, id, h, &meta).await,
            Err(r) => Err(r.into()),
        },
        Step::Materials => Err(certhall_domain::Refusal::NotFound.into()),
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
            let err = WebError::from(e);
            let status = match &err {
                WebError::Refused(r) => status_of(r),
                other => other.status(),
            };
            let order = s.order_of(who.account_id, id).await?;
            let page = step_page(
                &state,
                &bid,
                &who,
                &order,
                step,
                Some(&form),
                Some(err.message_zh()),
            )
            .await?;
            Ok(render_with_status(status, &page))
        }
    }
}
