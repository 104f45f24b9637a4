//! Orders: starting one, saving wizard steps, and every transition of the
//! order state machine ([`certhall_domain::order`]).
//!
//! A transition reads the order, asks the domain whether the event is
//! allowed, and persists the new state with a compare-and-swap on the
//! version it read — in one transaction with its audit entry and the
//! applicant's message. A stale page or a concurrent decision (two
//! operators approving at once) finds the version moved and is refused
//! with the order's current state; nothing is overwritten.

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::message::{MessageKind, NewMessage};
use certhall_domain::order::{transition_of, OrderEvent, OrderKind, OrderState, Step};
use certhall_domain::steps::StepData;
use certhall_domain::{AccountId, OperatorId, OrderId, Refusal};
use certhall_store::orders::{self, OrderRow, Transition};
use certhall_store::{messages, WriteTx};
use serde_json::json;

use crate::{append_audit, AccessRefusal, RequestMeta, Result, Services};

/// Who asks for a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderActor {
    /// The applicant (only their own orders).
    Applicant(AccountId),
    /// CertHall itself (an inbound SMS reply, a timeout).
    System,
    /// A counter operator (柜台人员), by operator id: reviews only.
    Operator(OperatorId),
}

impl OrderActor {
    pub(crate) fn audit_actor(self) -> Actor {
        match self {
            Self::Applicant(a) => Actor::Account(a),
            Self::System => Actor::System,
            Self::Operator(id) => Actor::Operator(id),
        }
    }

    /// Decisions belong to the counter: an operator may approve, return
    /// or cancel (with a reason) and runs step 8, an applicant never
    /// decides; only CertHall itself records a verified payment or what
    /// the courier reports.
    fn may(self, event: OrderEvent) -> bool {
        use OrderEvent as E;
        let decision = matches!(event, E::Approve | E::Reject(_));
        let step_eight = matches!(
            event,
            E::StartProduction | E::Produced | E::Ship | E::CancelShipment
        );
        let courier = event == E::SignedFor;
        match self {
            Self::Operator(_) => decision || step_eight || event == E::Cancel,
            Self::Applicant(_) => {
                // A key write is recorded by the service that checked it.
                !decision
                    && !step_eight
                    && !courier
                    && event != E::PaymentSucceeded
                    && event != E::KeyWritten
            }
            Self::System => true,
        }
    }
}

impl Services {
    /// Starts an order at step 1.
    pub async fn start_order(
        &self,
        account: AccountId,
        kind: OrderKind,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        let order = orders::create(
            &mut tx,
            account,
            kind,
            OrderState::Draft {
                reached: Step::Identity,
            },
            now,
        )
        .await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(account),
            meta,
            AuditEvent::OrderCreated,
            json!({ "order": order.id, "kind": kind.as_str() }),
        )
        .await?;
        tx.commit().await?;
        Ok(order)
    }

    /// An order of `account` (another account's order does not exist for
    /// it).
    pub async fn order_of(&self, account: AccountId, id: OrderId) -> Result<OrderRow> {
        let order = orders::get(&self.store, id).await?;
        self.own_order_only(account, id, order)
    }

    /// `order` if it is `account`'s; another account's order is refused
    /// as not found, and the attempt audited (throttled; after any
    /// transaction of the caller's has ended).
    fn own_order_only(
        &self,
        account: AccountId,
        id: OrderId,
        order: Option<OrderRow>,
    ) -> Result<OrderRow> {
        match order {
            Some(o) if o.account_id == account => Ok(o),
            Some(_) => {
                self.audit_access_refused_later(
                    AccessRefusal {
                        actor: Actor::Account(account),
                        reason: "foreign_order",
                        target: json!({ "order": id }),
                    },
                    &RequestMeta::default(),
                );
                Err(Refusal::NotFound.into())
            }
            None => Err(Refusal::NotFound.into()),
        }
    }

    /// Saves what the applicant typed at `step` and opens the next step.
    /// Refused (and nothing saved) when the step is not open yet or the
    /// order can no longer be edited.
    pub async fn save_order_step(
        &self,
        account: AccountId,
        id: OrderId,
        data: &StepData,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let step = data.step();
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        let order = self.owned_order(&mut tx, account, id).await?;
        let to = transition_of(order.kind, order.state, OrderEvent::SaveStep(step))?;
        orders::save_step(&mut tx, id, step, &data.to_json(), now).await?;
        // The list columns follow the application and enterprise names.
        let name = data.list_name();
        match step {
            Step::Application => orders::set_names(&mut tx, id, name, None).await?,
            Step::Enterprise => orders::set_names(&mut tx, id, None, name).await?,
            _ => {}
        }
        if to != order.state {
            self.persist(&mut tx, &order, to, OrderActor::Applicant(account), None)
                .await?;
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(account),
            meta,
            AuditEvent::OrderStepSaved,
            json!({ "order": id, "step": step.number() }),
        )
        .await?;
        let order = orders::get_tx(&mut tx, id)
            .await?
            .ok_or(Refusal::NotFound)?;
        tx.commit().await?;
        Ok(order)
    }

    /// Applies `event` to the order if it is still at `version`.
    pub async fn order_event(
        &self,
        actor: OrderActor,
        id: OrderId,
        version: i64,
        event: OrderEvent,
        reason: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let mut tx = self.store.begin_write().await?;
        let order = self
            .order_event_tx(&mut tx, actor, id, Some(version), event, reason, meta)
            .await?;
        tx.commit().await?;
        Ok(order)
    }

    /// [`Services::order_event`] inside the caller's transaction, so the
    /// transition commits (or not) with the caller's other writes.
    /// `version: None` takes the order as it is read here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn order_event_tx(
        &self,
        tx: &mut WriteTx,
        actor: OrderActor,
        id: OrderId,
        version: Option<i64>,
        event: OrderEvent,
        reason: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let order = match actor {
            OrderActor::Applicant(a) => self.owned_order(tx, a, id).await?,
            OrderActor::System | OrderActor::Operator(_) => {
                orders::get_tx(tx, id).await?.ok_or(Refusal::NotFound)?
            }
        };
        if !actor.may(event) {
            return Err(Refusal::OrderStateConflict(order.state.label_zh()).into());
        }
        if version.is_some_and(|v| v != order.version) {
            return Err(Refusal::OrderStateConflict(order.state.label_zh()).into());
        }
        let to = transition_of(order.kind, order.state, event)?;
        self.persist(tx, &order, to, actor, reason).await?;
        append_audit(
            tx,
            self.clock.as_ref(),
            actor.audit_actor(),
            meta,
            AuditEvent::OrderTransitioned,
            json!({
                "order": id,
                "from": order.state.to_string(),
                "to": to.to_string(),
                "event": format!("{event:?}"),
                "reason": reason,
            }),
        )
        .await?;
        Ok(orders::get_tx(tx, id).await?.ok_or(Refusal::NotFound)?)
    }

    pub(crate) async fn owned_order(
        &self,
        tx: &mut WriteTx,
        account: AccountId,
        id: OrderId,
    ) -> Result<OrderRow> {
        let order = orders::get_tx(tx, id).await?;
        self.own_order_only(account, id, order)
    }

    /// Compare-and-swap the state and tell the applicant.
    async fn persist(
        &self,
        tx: &mut WriteTx,
        order: &OrderRow,
        to: OrderState,
        actor: OrderActor,
        reason: Option<&str>,
    ) -> Result<()> {
        let now = self.clock.now();
        let actor_text = actor.audit_actor().to_string();
        let moved = orders::transition(
            tx,
            &Transition {
                id: order.id,
                version: order.version,
                from: order.state,
                to,
                actor: &actor_text,
                reason,
            },
            now,
        )
        .await?;
        if !moved {
            // Someone else moved it between our read and our write.
            let current = orders::get_tx(tx, order.id)
                .await?
                .map(|o| o.state.label_zh())
                .unwrap_or_default();
            return Err(Refusal::OrderStateConflict(current).into());
        }
        // Wizard progress is not news, nor is a producer starting work;
        // decisions and hand-offs are.
        if (!matches!(to, OrderState::Draft { .. })
            || !matches!(order.state, OrderState::Draft { .. }))
            && to != OrderState::InProduction
        {
            let body = match (order.state, to, reason) {
                (OrderState::AwaitingAuthorization, OrderState::InReview, _) => {
                    "法定代表人已同意授权，订单已进入柜台审核，审核结果将另行通知。".to_owned()
                }
                (_, OrderState::Approved, _) => {
                    "审核通过。请打开订单，选择 UKey 介质、收货地址和发票信息（第六步），然后在线支付。"
                        .to_owned()
                }
                (OrderState::AwaitingPayment, OrderState::AwaitingKeyWrite, _) => {
                    "支付成功。请插入存放该证书的 UKey，打开订单点击“写入新证书”完成更新（PIN 码不变，无需寄送）。"
                        .to_owned()
                }
                (_, OrderState::AwaitingKeyWrite, _) => {
                    "审核通过。请插入存放原证书的 UKey，打开订单点击“写入新证书”，新证书将写入原 UKey（无需支付，无需寄送）。"
                        .to_owned()
                }
                (_, OrderState::Completed, _) => format!(
                    "{}已完成：新证书已写入您的 UKey，PIN 码不变，原证书已停止使用；原证书在交易平台的激活（如有）已转到新证书。",
                    order.kind.label_zh()
                ),
                (_, OrderState::AwaitingPayment, _) => {
                    "介质与收货信息已确认，请在订单页面选择支付方式完成支付（第七步）。".to_owned()
                }
                (_, OrderState::Paid, _) => {
                    "支付成功。柜台将为您制作 UKey，并以顺丰到付方式寄出，发货后将通知您运单号。"
                        .to_owned()
                }
                (OrderState::InProduction, OrderState::Produced, _) => {
                    "您的 UKey 已制作完成，PIN 码已通过短信发送到您的手机，请妥善保管。UKey 将以顺丰到付方式寄出。"
                        .to_owned()
                }
                (_, OrderState::Shipped, Some(detail)) => format!(
                    "UKey 已通过顺丰速运寄出（到付），{detail}。签收时请核对包裹并支付运费。"
                ),
                (_, OrderState::Delivered, _) => {
                    "UKey 已签收。请按照《CA数字证书自助激活流程》激活证书后使用。".to_owned()
                }
                (_, _, Some(r)) => format!("{}（原因：{r}）", to.label_zh()),
                (_, _, None) => to.label_zh(),
            };
            let kind = match to {
                OrderState::InReview
                | OrderState::Approved
                | OrderState::AwaitingKeyWrite
                | OrderState::Returned { .. }
                | OrderState::AuthorizationRefused => MessageKind::Review,
                _ => MessageKind::System,
            };
            messages::insert(
                tx,
                order.account_id,
                &NewMessage {
                    kind,
                    title: format!(
                        "{}（{} 订单 {}）",
                        to.message_title(order.state),
                        order.kind.label_zh(),
                        order.id
                    ),
                    body,
                    order_id: Some(order.id),
                },
                now,
            )
            .await?;
        }
        Ok(())
    }
}

/// What cancelling an order would do (the confirmation page).
#[derive(Debug, Clone)]
pub struct CancelPreview {
    /// The order.
    pub order: OrderRow,
    /// May it be cancelled in its state?
    pub cancellable: bool,
    /// What a paid order gets back, in fen.
    pub refund_fen: Option<i64>,
}

/// Everything the order page shows: what was submitted at each step, the
/// checkout, payments and refunds, the history, and what comes next.
#[derive(Debug, Clone)]
pub struct OrderSummary {
    /// The order.
    pub order: OrderRow,
    /// Steps 1–5 as typed (ID numbers masked).
    pub steps: Vec<crate::counter::StepView>,
    /// The images, without bytes.
    pub materials: Vec<certhall_store::materials::MaterialInfo>,
    /// The newest legal-rep authorization request.
    pub authorization: Option<certhall_store::materials::AuthorizationRow>,
    /// Step 6 as confirmed.
    pub checkout: Option<certhall_store::checkouts::CheckoutRow>,
    /// Payment attempts, oldest first.
    pub attempts: Vec<certhall_store::payments::AttemptRow>,
    /// Refunds, oldest first.
    pub refunds: Vec<certhall_store::payments::RefundRow>,
    /// The history, oldest first.
    pub events: Vec<orders::OrderEventRow>,
    /// What happens next.
    pub next: String,
    /// How long it usually takes.
    pub expected: Option<&'static str>,
    /// In review: the position in the counter's queue (1 = next).
    pub queue_position: Option<usize>,
    /// Step 8: the key made for the order.
    pub ukey: Option<certhall_store::production::UkeyRow>,
    /// Step 8: shipments with their routes.
    pub shipments: Vec<crate::shipping::ShipmentView>,
    /// 证书变更: the certificate changed and what changes.
    pub change: Option<crate::change::ChangeView>,
}

/// `110105********002X`: the first six and last four characters.
pub fn mask_id_number(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() < 11 {
        return id.to_owned();
    }
    let hidden = chars.len() - 10;
    format!(
        "{}{}{}",
        chars[..6].iter().collect::<String>(),
        "*".repeat(hidden),
        chars[chars.len() - 4..].iter().collect::<String>()
    )
}

impl Services {
    /// The order page's summary of an applicant's order.
    pub async fn order_summary(&self, account: AccountId, id: OrderId) -> Result<OrderSummary> {
        let order = self.order_of(account, id).await?;
        let saved = self.steps_of(id).await?;
        let steps = Step::ALL
            .into_iter()
            .map(|step| crate::counter::StepView {
                step,
                fields: saved
                    .get(step)
                    .map(|d| crate::counter::fields(&d, crate::counter::Reader::Applicant))
                    .unwrap_or_default(),
            })
            .collect();
        let queue_position = if order.state == OrderState::InReview {
            let queue = orders::in_state(&self.store, "in_review", 1000).await?;
            queue.iter().position(|o| o.id == id).map(|p| p + 1)
        } else {
            None
        };
        let (next, expected) = order.state.next_step_zh();
        let (ukey, shipments) = if order.state.stage() == 8 {
            (
                certhall_store::production::ukey_of_order(&self.store, id.0).await?,
                self.shipment_views(id).await?,
            )
        } else {
            (None, Vec::new())
        };
        Ok(OrderSummary {
            change: self.change_of(&order).await?,
            ukey,
            shipments,
            steps,
            materials: certhall_store::materials::of_order(&self.store, id.0).await?,
            authorization: certhall_store::materials::latest_of_order(&self.store, id.0).await?,
            checkout: certhall_store::checkouts::get(&self.store, id.0).await?,
            attempts: certhall_store::payments::attempts_of_order(&self.store, id.0).await?,
            refunds: certhall_store::payments::refunds_of_order(&self.store, id.0).await?,
            events: orders::events(&self.store, id).await?,
            next,
            expected,
            queue_position,
            order,
        })
    }

    /// An account's orders for 我的订单, filtered and searched.
    pub async fn orders_of(
        &self,
        account: AccountId,
        filter: orders::OrderFilter,
        search: Option<&str>,
    ) -> Result<Vec<OrderRow>> {
        Ok(orders::search_of_account(&self.store, account, filter, search, 200).await?)
    }

    /// What cancelling the applicant's order would do, for the page that
    /// asks for confirmation: whether it may be cancelled now, and the
    /// refund a paid order gets (its paid attempts, in full, as
    /// [`Services::cancel_order`] refunds them).
    pub async fn cancel_preview(&self, account: AccountId, id: OrderId) -> Result<CancelPreview> {
        let order = self.order_of(account, id).await?;
        let refund_fen = if order.state.refunded_on_cancel() {
            let attempts = certhall_store::payments::attempts_of_order(&self.store, id.0).await?;
            let paid: i64 = attempts
                .iter()
                .filter(|a| a.state == certhall_domain::payment::AttemptState::Paid)
                .map(|a| a.amount_fen)
                .sum();
            // A change order waiting for its write paid nothing.
            (paid > 0).then_some(paid)
        } else {
            None
        };
        Ok(CancelPreview {
            cancellable: order.state.cancellable(),
            refund_fen,
            order,
        })
    }

    /// Cancels an order (the applicant's own, or any as an operator with a
    /// reason). A payment under way is closed first (queried, then
    /// closed); a paid order is refunded in full; the stock it held is
    /// released; a pending authorization request is withdrawn.
    pub async fn cancel_order(
        &self,
        actor: OrderActor,
        id: OrderId,
        reason: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let order = match actor {
            OrderActor::Applicant(a) => self.order_of(a, id).await?,
            _ => orders::get(&self.store, id)
                .await?
                .ok_or(Refusal::NotFound)?,
        };
        if matches!(actor, OrderActor::Operator(_)) && reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(Refusal::MissingField("取消原因").into());
        }
        transition_of(order.kind, order.state, OrderEvent::Cancel)?;
        // A payment under way is settled first: queried (it may have been
        // paid: then it is refunded below with the rest), then closed.
        self.settle_attempts_of(id, "cancel").await?;
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        tx.lock(certhall_store::LockKey::OrderPayment(id.0)).await?;
        if !certhall_store::payments::paying_of_order_tx(&mut tx, id.0)
            .await?
            .is_empty()
        {
            return Err(Refusal::PaymentBusy.into());
        }
        // A new certificate being written for the order right now: the
        // write ends first (finished, or failed and its certificate
        // revoked), then the order may be cancelled.
        if certhall_store::renewals::open_of_order(&mut tx, id.0)
            .await?
            .is_some()
        {
            return Err(Refusal::RenewalBusy.into());
        }
        let before = orders::get_tx(&mut tx, id)
            .await?
            .ok_or(Refusal::NotFound)?;
        let after = self
            .order_event_tx(&mut tx, actor, id, None, OrderEvent::Cancel, reason, meta)
            .await?;
        certhall_store::checkouts::set_reserved(&mut tx, id.0, false).await?;
        certhall_store::materials::withdraw_pending(&mut tx, id.0, now).await?;
        let mut refunding = false;
        if before.state.refunded_on_cancel() {
            for a in &certhall_store::payments::paid_of_order_tx(&mut tx, id.0).await? {
                let reason = match actor {
                    OrderActor::Operator(_) => "柜台取消订单，全额退款",
                    _ => "申请人取消订单，全额退款",
                };
                refunding |= self
                    .request_refund_tx(&mut tx, &before, a, reason, &actor.audit_actor())
                    .await?
                    .is_some();
            }
        }
        tx.commit().await?;
        if refunding {
            self.submit_open_refunds_of(id).await;
        }
        Ok(after)
    }
}
