//! 第六步 选择介质与收货信息 ([`certhall_domain::checkout`]): the key
//! model, the delivery address (with the account's address book) and the
//! invoice of an approved order; confirming it fixes the amount, holds a
//! unit of stock and moves the order to payment. Also the key models and
//! their stock (`certhall key-model …`).
//!
//! Stock is checked and reserved under the model's lock in the same
//! transaction as the confirmation, so two applicants never get the last
//! unit; an out-of-stock model is refused before payment, with the form
//! kept as typed.

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::checkout::{
    demo_key_models, Amount, CheckoutInput, InvoiceInput, KeyColour, KeyModel, Stock,
};
use certhall_domain::divisions::delivery_leaf;
use certhall_domain::order::{OrderEvent, OrderState};
use certhall_domain::{AccountId, OrderId, Refusal};
use certhall_store::addresses::{self, AddressRow};
use certhall_store::checkouts::{self, CheckoutRow};
use certhall_store::key_models::{self, StockMove};
use certhall_store::orders::{self, OrderRow};
use certhall_store::{payments, LockKey};
use serde_json::json;

use crate::orders::OrderActor;
use crate::{append_audit, RequestMeta, Result, Services};

/// At most this many addresses per account.
pub const ADDRESS_BOOK_LIMIT: i64 = 20;

/// A key model as step 6 offers it.
#[derive(Debug, Clone)]
pub struct KeyModelOption {
    /// The model.
    pub model: KeyModel,
    /// Its stock.
    pub stock: Stock,
}

impl KeyModelOption {
    /// May an order take it now?
    pub fn available(&self) -> bool {
        self.stock.available() > 0
    }
}

/// An address of the book, as shown.
#[derive(Debug, Clone)]
pub struct AddressView {
    /// The stored row.
    pub row: AddressRow,
    /// `山东省 枣庄市 市中区`, empty if the code is no longer in the table.
    pub division: String,
    /// Province, city, district codes for the page's selects.
    pub codes: (u32, u32, u32),
}

impl AddressView {
    fn of(row: AddressRow) -> Self {
        let path = delivery_leaf(&format!("{:06}", row.division_code));
        Self {
            division: path.as_ref().map(|p| p.display()).unwrap_or_default(),
            codes: path.map_or((0, 0, 0), |p| {
                (
                    p.province.code,
                    p.city.code,
                    p.district.map_or(0, |d| d.code),
                )
            }),
            row,
        }
    }

    /// The whole address on one line.
    pub fn line(&self) -> String {
        format!("{} {}", self.division, self.row.street)
    }
}

/// Everything step 6's page needs.
#[derive(Debug, Clone)]
pub struct CheckoutView {
    /// The order.
    pub order: OrderRow,
    /// The application chosen at step 2.
    pub application_name: String,
    /// Its price as agreed at step 2 (fen).
    pub application_fen: i64,
    /// The models the application offers, with stock.
    pub models: Vec<KeyModelOption>,
    /// The account's address book.
    pub addresses: Vec<AddressView>,
    /// What was confirmed before (revising), if anything.
    pub saved: Option<CheckoutRow>,
    /// The invoice proposed when none was given: the enterprise and its
    /// USCC from step 3.
    pub invoice_prefill: InvoiceInput,
}

impl CheckoutView {
    /// What the order costs with `key_model` (the page's summary before
    /// confirming); the application alone while no offered model is chosen.
    pub fn amount_with(&self, key_model: &str) -> Amount {
        Amount {
            application_fen: self.application_fen,
            key_fen: self
                .models
                .iter()
                .find(|m| m.model.code == key_model)
                .map_or(0, |m| m.model.price_fen),
        }
    }
}

/// What [`Services::change_address`] does to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddressChange {
    MakeDefault,
    Delete,
}

impl Services {
    /// Step 6's page. Open once the counter approved (and while waiting
    /// for payment, to show what was chosen).
    pub async fn checkout_view(
        &self,
        account: AccountId,
        order_id: OrderId,
    ) -> Result<CheckoutView> {
        let order = self.order_of(account, order_id).await?;
        checkout_open(order.state)?;
        let steps = self.steps_of(order_id).await?;
        let app = steps.application.unwrap_or_default();
        let mut models = Vec::new();
        for model in key_models::offered(&self.store, &app.code).await? {
            let stock = key_models::stock(&self.store, &model.code).await?;
            models.push(KeyModelOption { model, stock });
        }
        let enterprise = steps.enterprise.unwrap_or_default();
        Ok(CheckoutView {
            application_name: app.name,
            application_fen: app.price_fen.unwrap_or(0),
            models,
            addresses: self.addresses(account).await?,
            saved: checkouts::get(&self.store, order_id.0).await?,
            invoice_prefill: InvoiceInput {
                kind: "none".into(),
                buyer_name: enterprise.name,
                tax_id: enterprise.uscc,
                ..InvoiceInput::default()
            },
            order,
        })
    }

    /// 第六步: confirms the key model, address and invoice. The amount is
    /// fixed, a unit of stock held, and the order waits for payment. When
    /// `remember` is set the address joins the account's book (unless it
    /// is there already or the book is full). Refused, with nothing
    /// written, on any invalid field, an unoffered or out-of-stock model,
    /// or an order not approved.
    pub async fn save_checkout(
        &self,
        account: AccountId,
        order_id: OrderId,
        input: &CheckoutInput,
        remember: bool,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let order = self.order_of(account, order_id).await?;
        confirmable(order.state)?;
        let checkout = input.validate()?;
        let app = self.steps_of(order_id).await?.application;
        let (Some(app), Some(application_fen)) = (&app, app.as_ref().and_then(|a| a.price_fen))
        else {
            return Err(Refusal::OrderStepOutOfOrder(2).into());
        };
        let offered = key_models::offered(&self.store, &app.code).await?;
        if !offered.iter().any(|m| m.code == checkout.key_model) {
            return Err(Refusal::KeyModelNotOffered(checkout.key_model.clone()).into());
        }
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::KeyModel(&checkout.key_model)).await?;
        let order = self.owned_order(&mut tx, account, order_id).await?;
        confirmable(order.state)?;
        let model = key_models::get_tx(&mut tx, &checkout.key_model)
            .await?
            .filter(|m| m.active)
            .ok_or_else(|| Refusal::KeyModelNotOffered(checkout.key_model.clone()))?;
        if key_models::stock_tx(&mut tx, &model.code)
            .await?
            .available()
            == 0
        {
            return Err(Refusal::KeyModelOutOfStock(model.name).into());
        }
        let amount = Amount {
            application_fen,
            key_fen: model.price_fen,
        };
        checkouts::upsert(
            &mut tx,
            &CheckoutRow {
                order_id: order_id.0,
                key_model: model.code.clone(),
                key_model_name: model.name.clone(),
                application_fen,
                key_fen: model.price_fen,
                total_fen: amount.total_fen(),
                recipient: checkout.address.recipient.clone(),
                phone: checkout.address.phone.as_str().to_owned(),
                division_code: i64::from(checkout.address.division.code()),
                division_text: checkout.address.division.display(),
                street: checkout.address.street.clone(),
                invoice: checkout.invoice.clone(),
                reserved: true,
                updated_at: now,
            },
        )
        .await?;
        orders::set_amount(&mut tx, order_id, Some(amount.total_fen())).await?;
        let mut remembered = None;
        if remember
            && addresses::find_same(&mut tx, account, &checkout.address)
                .await?
                .is_none()
        {
            let n = addresses::count(&mut tx, account).await?;
            if n < ADDRESS_BOOK_LIMIT {
                remembered = Some(
                    addresses::insert(&mut tx, account, &checkout.address, n == 0, now).await?,
                );
            }
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(account),
            meta,
            AuditEvent::CheckoutSaved,
            json!({
                "order": order_id, "key_model": model.code,
                "application_fen": application_fen, "key_fen": model.price_fen,
                "total_fen": amount.total_fen(),
                "division": checkout.address.division.code(),
                "invoice": checkout.invoice.as_ref().map(|i| i.kind.as_str()),
                "address_saved": remembered,
            }),
        )
        .await?;
        let order = self
            .order_event_tx(
                &mut tx,
                OrderActor::Applicant(account),
                order_id,
                Some(order.version),
                OrderEvent::ConfirmCheckout,
                None,
                meta,
            )
            .await?;
        tx.commit().await?;
        Ok(order)
    }

    /// Back from payment to step 6 (修改介质或收货信息): the payment under
    /// way is closed first (queried, then closed; if it was paid meanwhile
    /// the order is paid and this is refused).
    pub async fn revise_checkout(
        &self,
        account: AccountId,
        order_id: OrderId,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let order = self.order_of(account, order_id).await?;
        certhall_domain::order::transition_of(order.kind, order.state, OrderEvent::ReviseCheckout)?;
        if self.settle_attempts_of(order_id, "applicant").await?
            && self.order_of(account, order_id).await?.state.is_paid()
        {
            return Err(Refusal::OrderAlreadyPaid.into());
        }
        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::OrderPayment(order_id.0)).await?;
        if !payments::paying_of_order_tx(&mut tx, order_id.0)
            .await?
            .is_empty()
        {
            return Err(Refusal::PaymentBusy.into());
        }
        checkouts::set_reserved(&mut tx, order_id.0, false).await?;
        orders::set_amount(&mut tx, order_id, None).await?;
        let order = self
            .order_event_tx(
                &mut tx,
                OrderActor::Applicant(account),
                order_id,
                None,
                OrderEvent::ReviseCheckout,
                None,
                meta,
            )
            .await?;
        tx.commit().await?;
        Ok(order)
    }

    /// The account's address book, the default first.
    pub async fn addresses(&self, account: AccountId) -> Result<Vec<AddressView>> {
        Ok(addresses::list(&self.store, account)
            .await?
            .into_iter()
            .map(AddressView::of)
            .collect())
    }

    /// One address of the account's book.
    pub async fn address(&self, account: AccountId, id: i64) -> Result<AddressView> {
        addresses::get(&self.store, account, id)
            .await?
            .map(AddressView::of)
            .ok_or_else(|| Refusal::AddressNotFound.into())
    }

    /// Adds (`id` none) or changes an address; returns its id. The first
    /// address, or one saved with `make_default`, is the default.
    pub async fn save_address(
        &self,
        account: AccountId,
        id: Option<i64>,
        input: &certhall_domain::checkout::AddressInput,
        make_default: bool,
        meta: &RequestMeta,
    ) -> Result<i64> {
        let address = input.validate()?;
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        let id = match id {
            Some(id) => {
                if !addresses::update(&mut tx, account, id, &address, now).await? {
                    return Err(Refusal::AddressNotFound.into());
                }
                id
            }
            None => {
                let n = addresses::count(&mut tx, account).await?;
                if n >= ADDRESS_BOOK_LIMIT {
                    return Err(Refusal::AddressBookFull.into());
                }
                addresses::insert(&mut tx, account, &address, n == 0, now).await?
            }
        };
        if make_default {
            addresses::set_default(&mut tx, account, id).await?;
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(account),
            meta,
            AuditEvent::AddressSaved,
            json!({ "address": id, "division": address.division.code(), "default": make_default }),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Makes an address the default.
    pub async fn set_default_address(
        &self,
        account: AccountId,
        id: i64,
        meta: &RequestMeta,
    ) -> Result<()> {
        self.change_address(account, id, AddressChange::MakeDefault, meta)
            .await
    }

    /// Deletes an address (orders keep their own copy).
    pub async fn delete_address(
        &self,
        account: AccountId,
        id: i64,
        meta: &RequestMeta,
    ) -> Result<()> {
        self.change_address(account, id, AddressChange::Delete, meta)
            .await
    }

    /// Makes the account's address `id` the default, or deletes it;
    /// refused when the account has no such address.
    async fn change_address(
        &self,
        account: AccountId,
        id: i64,
        change: AddressChange,
        meta: &RequestMeta,
    ) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        let (found, detail) = if change == AddressChange::Delete {
            (
                addresses::delete(&mut tx, account, id).await?,
                json!({ "address": id, "deleted": true }),
            )
        } else {
            (
                addresses::set_default(&mut tx, account, id).await?,
                json!({ "address": id, "default": true }),
            )
        };
        if !found {
            return Err(Refusal::AddressNotFound.into());
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(account),
            meta,
            AuditEvent::AddressSaved,
            detail,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every key model with its stock.
    pub async fn key_models(&self) -> Result<Vec<KeyModelOption>> {
        let mut out = Vec::new();
        for model in key_models::list(&self.store).await? {
            let stock = key_models::stock(&self.store, &model.code).await?;
            out.push(KeyModelOption { model, stock });
        }
        Ok(out)
    }

    /// Adds a key model (no stock yet).
    pub async fn add_key_model(&self, m: &KeyModel, actor: Actor) -> Result<()> {
        m.validate()?;
        let mut tx = self.store.begin_write().await?;
        if !key_models::insert(&mut tx, m, self.clock.now()).await? {
            return Err(Refusal::KeyModelExists(m.code.clone()).into());
        }
        self.audit_key_model(&mut tx, m, actor).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes a key model's name, description, price, picture or
    /// availability (orders keep what they confirmed).
    pub async fn edit_key_model(&self, m: &KeyModel, actor: Actor) -> Result<()> {
        m.validate()?;
        let mut tx = self.store.begin_write().await?;
        if !key_models::update(&mut tx, m, self.clock.now()).await? {
            return Err(Refusal::KeyModelNotFound(m.code.clone()).into());
        }
        self.audit_key_model(&mut tx, m, actor).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_key_model(
        &self,
        tx: &mut certhall_store::WriteTx,
        m: &KeyModel,
        actor: Actor,
    ) -> Result<()> {
        append_audit(
            tx,
            self.clock.as_ref(),
            actor,
            &RequestMeta::default(),
            AuditEvent::KeyModelSaved,
            json!({
                "code": m.code, "name": m.name, "price_fen": m.price_fen,
                "picture": m.picture, "active": m.active,
            }),
        )
        .await
    }

    /// One key model.
    pub async fn key_model(&self, code: &str) -> Result<KeyModel> {
        key_models::get(&self.store, code)
            .await?
            .ok_or_else(|| Refusal::KeyModelNotFound(code.to_owned()).into())
    }

    /// Counts stock in (`delta` > 0) or out; refused below zero. Returns
    /// the stock after.
    pub async fn adjust_stock(
        &self,
        code: &str,
        colour: KeyColour,
        delta: i64,
        reason: &str,
        actor: Actor,
    ) -> Result<Stock> {
        if delta == 0 || reason.trim().is_empty() {
            return Err(Refusal::InvalidKeyModel("请给出数量（不为 0）和原因".into()).into());
        }
        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::KeyModel(code)).await?;
        if key_models::get_tx(&mut tx, code).await?.is_none() {
            return Err(Refusal::KeyModelNotFound(code.to_owned()).into());
        }
        // Units promised to orders may not be counted out.
        let before = key_models::stock_tx(&mut tx, code).await?;
        if delta < 0 && before.total() + delta < before.reserved {
            return Err(Refusal::InvalidKeyModel(format!(
                "有 {} 个已被订单占用，最多只能出库 {} 个",
                before.reserved,
                before.available()
            ))
            .into());
        }
        let actor_text = actor.to_string();
        if !key_models::apply_move(
            &mut tx,
            &StockMove {
                model: code,
                colour,
                delta,
                reason: reason.trim(),
                actor: &actor_text,
            },
            self.clock.now(),
        )
        .await?
        {
            return Err(Refusal::InvalidKeyModel(format!(
                "{}库存不足，不能出库 {} 个",
                colour.label_zh(),
                -delta
            ))
            .into());
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor,
            &RequestMeta::default(),
            AuditEvent::KeyStockChanged,
            json!({ "code": code, "colour": colour.as_str(), "delta": delta, "reason": reason.trim() }),
        )
        .await?;
        let stock = key_models::stock_tx(&mut tx, code).await?;
        tx.commit().await?;
        Ok(stock)
    }

    /// The models `application` offers (empty list: every active model).
    pub async fn set_application_key_models(
        &self,
        application: &str,
        models: &[String],
        actor: Actor,
    ) -> Result<()> {
        self.application(application).await?;
        for m in models {
            self.key_model(m).await?;
        }
        let mut tx = self.store.begin_write().await?;
        key_models::set_offered(&mut tx, application, models).await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor,
            &RequestMeta::default(),
            AuditEvent::KeyModelSaved,
            json!({ "application": application, "offered": models }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Demo mode: the demo key models and their stock, on first start.
    pub async fn ensure_demo_key_models(&self) -> Result<()> {
        for (model, stock) in demo_key_models() {
            if key_models::get(&self.store, &model.code).await?.is_some() {
                continue;
            }
            self.add_key_model(&model, Actor::System).await?;
            for (colour, n) in stock {
                if n > 0 {
                    self.adjust_stock(&model.code, colour, n, "演示初始库存", Actor::System)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// May step 6's page be shown?
fn checkout_open(state: OrderState) -> Result<()> {
    match state {
        OrderState::Approved | OrderState::AwaitingPayment => Ok(()),
        s if s.is_paid() => Ok(()),
        OrderState::Cancelled => Err(Refusal::OrderStateConflict(state.label_zh()).into()),
        other => Err(Refusal::CheckoutNotOpen(other.label_zh()).into()),
    }
}

/// May step 6 be confirmed?
fn confirmable(state: OrderState) -> Result<()> {
    match state {
        OrderState::Approved => Ok(()),
        s if s.is_paid() => Err(Refusal::OrderAlreadyPaid.into()),
        OrderState::AwaitingPayment | OrderState::Cancelled => {
            Err(Refusal::OrderStateConflict(state.label_zh()).into())
        }
        other => Err(Refusal::CheckoutNotOpen(other.label_zh()).into()),
    }
}
