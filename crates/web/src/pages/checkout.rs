//! 第六步 选择介质与收货信息: the key model, the delivery address (from the
//! address book or new) and the invoice, confirmed before payment; and
//! going back to it from step 7.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use certhall_domain::checkout::{AddressInput, CheckoutInput, InvoiceInput};
use certhall_domain::divisions;
use certhall_domain::money::yuan_decimal;
use certhall_domain::order::OrderState;
use certhall_domain::OrderId;
use certhall_service::auth::SessionInfo;
use certhall_service::checkout::CheckoutView;
use serde::Deserialize;

use super::pay::pay_page;
use super::{render_with_status, Chrome, Empty};
use crate::error::{status_of, PageError, WebError};
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
    order_id: OrderId,
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
    order_id: OrderId,
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
    let amount = view.amount_with(&form.key_model);
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
        total: yuan_decimal(amount.total_fen()),
        form,
    };
    Ok(render_with_status(status, &page))
}

/// `GET /orders/{id}/checkout`: 第六步.
pub async fn show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path(id): Path<OrderId>,
) -> Result<Response, PageError> {
    let order = state.services.order_of(who.account_id, id).await?;
    match order.state {
        OrderState::AwaitingPayment => return Ok(Redirect::to(&paths::pay(id)).into_response()),
        s if s.is_paid() => return Ok(Redirect::to(&paths::order(id)).into_response()),
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
    Path(id): Path<OrderId>,
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

/// `POST /orders/{id}/checkout/revise`: back to step 6 from payment.
pub async fn revise(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
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
