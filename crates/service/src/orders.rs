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
use certhall_domain::order::{transition, OrderEvent, OrderKind, OrderState, Step};
use certhall_domain::{AccountId, Refusal};
use certhall_store::orders::{self, OrderRow, Transition};
use certhall_store::{messages, WriteTx};
use serde_json::json;

use crate::{append_audit, RequestMeta, Result, Services};

/// Who asks for a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderActor {
    /// The applicant (only their own orders).
    Applicant(AccountId),
    /// CertHall itself (an inbound SMS reply, a timeout).
    System,
    /// A counter operator (柜台人员), by operator id: reviews only.
    Operator(i64),
}

impl OrderActor {
    fn audit_actor(self) -> Actor {
        match self {
            Self::Applicant(a) => Actor::Account(a),
            Self::System => Actor::System,
            Self::Operator(id) => Actor::Operator(id),
        }
    }

    /// Decisions belong to the counter: an operator may only approve or
    /// return, an applicant never may.
    fn may(self, event: OrderEvent) -> bool {
        let decision = matches!(event, OrderEvent::Approve | OrderEvent::Reject(_));
        match self {
            Self::Operator(_) => decision,
            Self::Applicant(_) => !decision,
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
    pub async fn order_of(&self, account: AccountId, id: i64) -> Result<OrderRow> {
        match orders::get(&self.store, id).await? {
            Some(o) if o.account_id == account => Ok(o),
            _ => Err(Refusal::NotFound.into()),
        }
    }

    /// Saves what the applicant typed at `step` and opens the next step.
    /// Refused (and nothing saved) when the step is not open yet or the
    /// order can no longer be edited.
    pub async fn save_order_step(
        &self,
        account: AccountId,
        id: i64,
        step: Step,
        data: &serde_json::Value,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        let order = self.owned_order(&mut tx, account, id).await?;
        let to = transition(order.state, OrderEvent::SaveStep(step))?;
        orders::save_step(&mut tx, id, step, data, now).await?;
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
        id: i64,
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
        id: i64,
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
        let to = transition(order.state, event)?;
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
        id: i64,
    ) -> Result<OrderRow> {
        match orders::get_tx(tx, id).await? {
            Some(o) if o.account_id == account => Ok(o),
            _ => Err(Refusal::NotFound.into()),
        }
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
        // Wizard progress is not news; decisions and hand-offs are.
        if !matches!(to, OrderState::Draft { .. })
            || !matches!(order.state, OrderState::Draft { .. })
        {
            let body = match (order.state, to, reason) {
                (OrderState::AwaitingAuthorization, OrderState::InReview, _) => {
                    "法定代表人已同意授权，订单已进入柜台审核，审核结果将另行通知。".to_owned()
                }
                (_, _, Some(r)) => format!("{}（原因：{r}）", to.label_zh()),
                (_, _, None) => to.label_zh(),
            };
            messages::insert(
                tx,
                order.account_id,
                &NewMessage {
                    kind: MessageKind::Review,
                    title: format!("{} 订单 {} 进度更新", order.kind.label_zh(), order.id),
                    body,
                },
                now,
            )
            .await?;
        }
        Ok(())
    }
}
