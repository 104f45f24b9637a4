//! 第七步 支付: payment attempts, callbacks, the reconciliation job and
//! refunds ([`certhall_domain::payment`] holds the state machines).
//!
//! Rules this module keeps:
//!
//! - **Never a provider call inside a write transaction.** A number is
//!   allocated and the attempt recorded (`paying`) in one transaction; the
//!   provider is called after it commits; the outcome is written in
//!   another. (In demo mode the simulator writes to the same database: a
//!   held write lock would deadlock it.)
//! - **One attempt at a time per order**, under the order's payment lock.
//!   A new try first settles the old one: query, then close (a payment
//!   that arrived meanwhile is applied instead).
//! - **Callbacks are stored raw, then verified, then applied** — and only
//!   by compare-and-swap from `paying`, so a duplicate changes nothing.
//!   The amount must be the attempt's. Money that arrives for an attempt
//!   we closed, or for an order already paid or cancelled, is refunded.
//! - **The job** (one run per tick across processes, by lease) asks the
//!   provider about attempts still `paying` after a while, closes expired
//!   ones, and drives refunds until they are final.

use std::sync::Arc;
use std::time::Duration;

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::message::{MessageKind, NewMessage};
use certhall_domain::order::{OrderEvent, OrderState};
use certhall_domain::payment::{
    decide_success, new_out_refund_no, new_out_trade_no, AttemptState, Channel, PaymentPolicy,
    RefundState, SuccessDecision,
};
use certhall_domain::{AccountId, Refusal, Timestamp};
use certhall_payment::simulator::WechatSimulator;
use certhall_payment::{
    Callback, CallbackAnswer, NewPayment, NewRefund, Notice, PaymentError, PaymentProvider,
    RefundStatus, TradeState,
};
use certhall_store::orders::{self, OrderRow};
use certhall_store::payments::{
    self, AttemptRow, NewAttempt, NewCallback, NewRefundRow, RefundRow, Settlement,
};
use certhall_store::{checkouts, jobs, messages, notices, LockKey, WriteTx};
use serde_json::json;

use crate::orders::OrderActor;
use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

/// The payment providers of this deployment.
#[derive(Debug, Default)]
pub struct PaymentGateways {
    providers: Vec<Arc<dyn PaymentProvider>>,
    simulator: Option<Arc<WechatSimulator>>,
    /// Expiry and query timing.
    pub policy: PaymentPolicy,
    http: Option<reqwest::Client>,
}

impl PaymentGateways {
    /// Real providers (none: online payment is not offered).
    pub fn new(providers: Vec<Arc<dyn PaymentProvider>>, policy: PaymentPolicy) -> Self {
        Self {
            providers,
            simulator: None,
            policy,
            http: None,
        }
    }

    /// Demo mode: the WeChat adapter talking to the simulator, which also
    /// delivers the demo cashier's callbacks over HTTP.
    pub fn demo(
        wechat: Arc<dyn PaymentProvider>,
        simulator: Arc<WechatSimulator>,
        policy: PaymentPolicy,
    ) -> Self {
        Self {
            providers: vec![wechat],
            simulator: Some(simulator),
            policy,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .ok(),
        }
    }

    /// The provider of `channel`, if configured.
    pub fn provider(&self, channel: Channel) -> Option<&Arc<dyn PaymentProvider>> {
        self.providers.iter().find(|p| p.channel() == channel)
    }

    /// The channels offered, in the page's order.
    pub fn channels(&self) -> Vec<Channel> {
        Channel::ALL
            .into_iter()
            .filter(|c| self.provider(*c).is_some())
            .collect()
    }

    /// The demo simulator, in demo mode.
    pub fn simulator(&self) -> Option<&Arc<WechatSimulator>> {
        self.simulator.as_ref()
    }

    /// The HTTP client the demo cashier posts callbacks with.
    pub fn http_client(&self) -> Option<&reqwest::Client> {
        self.http.as_ref()
    }
}

/// Everything step 7's page shows.
#[derive(Debug, Clone)]
pub struct PaymentView {
    /// The order (after any check with the provider).
    pub order: OrderRow,
    /// Step 6 as confirmed.
    pub checkout: Option<checkouts::CheckoutRow>,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptRow>,
    /// Every refund, oldest first.
    pub refunds: Vec<RefundRow>,
    /// The channels offered.
    pub channels: Vec<Channel>,
    /// True in demo mode (the cashier is the demo one).
    pub demo: bool,
}

impl PaymentView {
    /// The attempt under way, if any.
    pub fn active(&self) -> Option<&AttemptRow> {
        self.attempts
            .iter()
            .rev()
            .find(|a| a.state == AttemptState::Paying)
    }
}

/// What a success (or another provider state) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The attempt and the order are paid.
    Paid,
    /// Settled before: nothing changed.
    Duplicate,
    /// The amount was wrong: nothing changed.
    AmountMismatch,
    /// Paid, and refunded (the order did not wait for it).
    Refunding,
    /// The attempt is closed.
    Closed,
    /// The attempt failed.
    Failed,
    /// Still unpaid: nothing changed.
    Unchanged,
}

impl Applied {
    fn outcome(self) -> &'static str {
        match self {
            Self::Paid => "applied",
            Self::Duplicate => "duplicate",
            Self::AmountMismatch => "refused_amount_mismatch",
            Self::Refunding => "applied_refunding",
            Self::Closed => "closed",
            Self::Failed => "failed",
            Self::Unchanged => "unchanged",
        }
    }
}

/// What one run of the reconciliation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileSummary {
    /// Attempts asked about.
    pub queried: u32,
    /// Found paid.
    pub paid: u32,
    /// Closed (expired or closed by the provider).
    pub closed: u32,
    /// Found failed.
    pub failed: u32,
    /// Refunds submitted or asked about.
    pub refunds_checked: u32,
    /// Refunds now final.
    pub refunds_final: u32,
    /// Provider errors (retried next time).
    pub errors: u32,
}

impl ReconcileSummary {
    fn text(&self) -> String {
        format!(
            "queried={} paid={} closed={} failed={} refunds_checked={} refunds_final={} errors={}",
            self.queried,
            self.paid,
            self.closed,
            self.failed,
            self.refunds_checked,
            self.refunds_final,
            self.errors
        )
    }
}

/// How long an attempt without a QR code yet counts as being created
/// (the provider call takes at most its 10-second timeout).
const CREATING: Duration = Duration::from_secs(30);

/// The name of the payment job's lease.
pub const PAYMENT_JOB: &str = "payments";

fn system_meta() -> RequestMeta {
    RequestMeta::default()
}

fn provider_fault(e: PaymentError) -> ServiceError {
    ServiceError::Payment(e)
}

impl Services {
    /// The channels offered.
    pub fn payment_channels(&self) -> Vec<Channel> {
        self.payments.channels()
    }

    fn provider_of(&self, channel: Channel) -> Result<&Arc<dyn PaymentProvider>> {
        self.payments
            .provider(channel)
            .ok_or_else(|| Refusal::PaymentChannelUnavailable(channel.label_zh().into()).into())
    }

    /// Step 7's page: the order, its checkout, attempts and refunds. With
    /// `check`, an attempt under way is first asked about (at most every
    /// 10 seconds per attempt): the applicant's 我已支付.
    pub async fn payment_view(
        &self,
        account: AccountId,
        order_id: i64,
        check: bool,
    ) -> Result<PaymentView> {
        let order = self.order_of(account, order_id).await?;
        if check && order.state == OrderState::AwaitingPayment {
            for a in payments::attempts_of_order(&self.store, order_id).await? {
                if a.state == AttemptState::Paying {
                    let now = self.clock.now();
                    if payments::claim_query(
                        &self.store,
                        a.id,
                        now.minus(Duration::from_secs(10)),
                        now,
                    )
                    .await?
                    {
                        // A provider that cannot be reached now is asked
                        // again later; the page shows what is known.
                        if let Err(e) = self.check_attempt(&a, "applicant").await {
                            tracing::warn!(error = %e, attempt = a.id, "payment check failed");
                        }
                    }
                }
            }
        }
        self.payment_view_of(self.order_of(account, order_id).await?)
            .await
    }

    async fn payment_view_of(&self, order: OrderRow) -> Result<PaymentView> {
        Ok(PaymentView {
            checkout: checkouts::get(&self.store, order.id).await?,
            attempts: payments::attempts_of_order(&self.store, order.id).await?,
            refunds: payments::refunds_of_order(&self.store, order.id).await?,
            channels: self.payment_channels(),
            demo: self.payments.simulator().is_some(),
            order,
        })
    }

    /// 第七步: pays with `channel` — the QR code of the attempt under way
    /// when it is the same channel and valid for another minute, else a
    /// new attempt (the old one settled first: queried, then closed).
    pub async fn start_payment(
        &self,
        account: AccountId,
        order_id: i64,
        channel: Channel,
        meta: &RequestMeta,
    ) -> Result<AttemptRow> {
        let provider = self.provider_of(channel)?.clone();
        let order = self.order_of(account, order_id).await?;
        payable(order.state)?;
        // Settle what is under way (outside any transaction).
        for a in payments::attempts_of_order(&self.store, order_id).await? {
            if a.state != AttemptState::Paying {
                continue;
            }
            let now = self.clock.now();
            if a.channel == channel
                && a.code_url.is_some()
                && a.expires_at.since(now) >= Duration::from_secs(60)
                && now < a.expires_at
            {
                return Ok(a);
            }
            // Another request is asking the provider for its QR code right
            // now: that attempt it is (never close one being created).
            if a.code_url.is_none() && now.since(a.created_at) < CREATING {
                if a.channel == channel {
                    return Ok(a);
                }
                return Err(Refusal::PaymentInProgress(a.expires_at.display_cst()).into());
            }
            if self.close_attempt(&a, "applicant").await? == Applied::Paid {
                return Err(Refusal::OrderAlreadyPaid.into());
            }
        }
        // Record the new attempt under the order's payment lock.
        let now = self.clock.now();
        let expires_at = now.plus(self.payments.policy.attempt_ttl);
        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::OrderPayment(order_id)).await?;
        let order = self.owned_order(&mut tx, account, order_id).await?;
        payable(order.state)?;
        if let Some(busy) = payments::paying_of_order_tx(&mut tx, order_id)
            .await?
            .into_iter()
            .next()
        {
            // Another tab started one a moment ago: that one it is.
            if busy.channel == channel {
                return Ok(busy);
            }
            return Err(Refusal::PaymentInProgress(busy.expires_at.display_cst()).into());
        }
        let checkout = checkouts::get_tx(&mut tx, order_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        let seq = payments::next_seq(&mut tx, order_id).await?;
        let no = new_out_trade_no(
            order_id,
            u32::try_from(seq).unwrap_or(0),
            &mut rand::rngs::OsRng,
        );
        let description = format!("CertHall {}-订单{}", order.kind.label_zh(), order.id);
        let attempt = payments::insert_attempt(
            &mut tx,
            &NewAttempt {
                order_id,
                seq,
                channel,
                out_trade_no: &no,
                amount_fen: checkout.total_fen,
                description: &description,
                code_url: "",
                created_at: now,
                expires_at,
            },
        )
        .await?;
        tx.commit().await?;
        // Ask the provider for the QR code.
        let created = provider
            .create(&NewPayment {
                out_trade_no: &no,
                amount_fen: checkout.total_fen,
                description: &description,
                expires_at,
                payer_ip: meta.ip.as_deref(),
            })
            .await;
        let mut tx = self.store.begin_write().await?;
        match created {
            Ok(qr) => {
                payments::set_code_url(&mut tx, attempt.id, &qr.code_url).await?;
                append_audit(
                    &mut tx,
                    self.clock.as_ref(),
                    Actor::Account(account),
                    meta,
                    AuditEvent::PaymentCreated,
                    json!({
                        "order": order_id, "attempt": attempt.id, "out_trade_no": no,
                        "channel": channel.as_str(), "amount_fen": checkout.total_fen,
                        "expires_at": expires_at.rfc3339(),
                    }),
                )
                .await?;
                tx.commit().await?;
                Ok(payments::attempt_by_no(&self.store, &no)
                    .await?
                    .ok_or(Refusal::NotFound)?)
            }
            Err(e) => {
                // The number is burnt; the provider may or may not have
                // the trade, so it is closed there by the job if so.
                payments::settle_attempt(
                    &mut tx,
                    &Settlement {
                        id: attempt.id,
                        to: AttemptState::Failed,
                        by: "create_failed",
                        transaction_id: None,
                        paid_at: None,
                        failure: Some("下单失败"),
                    },
                    self.clock.now(),
                )
                .await?;
                append_audit(
                    &mut tx,
                    self.clock.as_ref(),
                    Actor::Account(account),
                    meta,
                    AuditEvent::PaymentSettled,
                    json!({
                        "order": order_id, "attempt": attempt.id, "out_trade_no": no,
                        "to": "failed", "by": "create_failed", "error": e.to_string(),
                    }),
                )
                .await?;
                tx.commit().await?;
                Err(provider_fault(e))
            }
        }
    }

    /// Asks the provider about an attempt and applies the answer.
    async fn check_attempt(&self, a: &AttemptRow, by: &str) -> Result<Applied> {
        let provider = self.provider_of(a.channel)?.clone();
        let state = provider
            .query(&a.out_trade_no)
            .await
            .map_err(provider_fault)?;
        self.apply_trade(a, &state, by, &system_meta()).await
    }

    /// Settles an attempt under way: query first (it may be paid), then
    /// close it at the provider, then here.
    pub(crate) async fn close_attempt(&self, a: &AttemptRow, by: &str) -> Result<Applied> {
        let provider = self.provider_of(a.channel)?.clone();
        let state = provider
            .query(&a.out_trade_no)
            .await
            .map_err(provider_fault)?;
        match state {
            TradeState::Paid(_) | TradeState::Closed | TradeState::Failed(_) => {
                return self.apply_trade(a, &state, by, &system_meta()).await;
            }
            TradeState::NotPaid | TradeState::UserPaying | TradeState::NotFound => {}
        }
        match provider.close(&a.out_trade_no).await {
            Ok(()) => {}
            Err(PaymentError::AlreadyPaid) => {
                // Paid between the query and the close.
                let state = provider
                    .query(&a.out_trade_no)
                    .await
                    .map_err(provider_fault)?;
                return self.apply_trade(a, &state, by, &system_meta()).await;
            }
            Err(e) => return Err(provider_fault(e)),
        }
        self.apply_trade(a, &TradeState::Closed, by, &system_meta())
            .await
    }

    /// Applies what the provider says about an attempt (a callback's or a
    /// query's answer). Only `paying` moves (compare-and-swap).
    pub(crate) async fn apply_trade(
        &self,
        a: &AttemptRow,
        state: &TradeState,
        by: &str,
        meta: &RequestMeta,
    ) -> Result<Applied> {
        match state {
            TradeState::Paid(paid) => self.apply_success(a, paid, by, meta).await,
            TradeState::Closed | TradeState::Failed(_) => {
                let (to, failure) = match state {
                    TradeState::Failed(why) => (AttemptState::Failed, Some(why.as_str())),
                    _ => (AttemptState::Closed, None),
                };
                let now = self.clock.now();
                let mut tx = self.store.begin_write().await?;
                let moved = payments::settle_attempt(
                    &mut tx,
                    &Settlement {
                        id: a.id,
                        to,
                        by,
                        transaction_id: None,
                        paid_at: None,
                        failure,
                    },
                    now,
                )
                .await?;
                if !moved {
                    return Ok(Applied::Duplicate);
                }
                append_audit(
                    &mut tx,
                    self.clock.as_ref(),
                    Actor::System,
                    meta,
                    AuditEvent::PaymentSettled,
                    json!({
                        "order": a.order_id, "attempt": a.id, "out_trade_no": a.out_trade_no,
                        "to": to.as_str(), "by": by, "failure": failure,
                    }),
                )
                .await?;
                if to == AttemptState::Failed {
                    if let Some(order) = orders::get_tx(&mut tx, a.order_id).await? {
                        messages::insert(
                            &mut tx,
                            order.account_id,
                            &NewMessage {
                                kind: MessageKind::System,
                                title: format!("支付未成功（订单 {}）", a.order_id),
                                body: format!(
                                    "订单 {} 的{}未成功：{}。请回到订单页面重新支付。",
                                    a.order_id,
                                    a.channel.label_zh(),
                                    failure.unwrap_or("支付失败")
                                ),
                                order_id: Some(a.order_id),
                            },
                            now,
                        )
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(if to == AttemptState::Failed {
                    Applied::Failed
                } else {
                    Applied::Closed
                })
            }
            TradeState::NotPaid | TradeState::UserPaying | TradeState::NotFound => {
                Ok(Applied::Unchanged)
            }
        }
    }

    async fn apply_success(
        &self,
        a: &AttemptRow,
        paid: &certhall_payment::PaidTrade,
        by: &str,
        meta: &RequestMeta,
    ) -> Result<Applied> {
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::OrderPayment(a.order_id)).await?;
        // Read again inside the lock: the row may have moved.
        let current = payments::attempt_by_no_tx(&mut tx, &a.out_trade_no)
            .await?
            .ok_or(Refusal::NotFound)?;
        let order = orders::get_tx(&mut tx, a.order_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        let decision = decide_success(
            current.state,
            current.amount_fen,
            paid.amount_fen,
            order.state == OrderState::AwaitingPayment,
        );
        let applied = match decision {
            SuccessDecision::Duplicate => return Ok(Applied::Duplicate),
            SuccessDecision::AmountMismatch { expected, got } => {
                append_audit(
                    &mut tx,
                    self.clock.as_ref(),
                    Actor::System,
                    meta,
                    AuditEvent::PaymentSettled,
                    json!({
                        "order": a.order_id, "attempt": a.id, "out_trade_no": a.out_trade_no,
                        "refused": "amount_mismatch", "expected_fen": expected, "got_fen": got,
                        "by": by,
                    }),
                )
                .await?;
                tx.commit().await?;
                tracing::error!(
                    attempt = a.id,
                    expected,
                    got,
                    "payment amount does not match the attempt; nothing applied"
                );
                return Ok(Applied::AmountMismatch);
            }
            SuccessDecision::Apply => {
                let moved = payments::settle_attempt(
                    &mut tx,
                    &Settlement {
                        id: a.id,
                        to: AttemptState::Paid,
                        by,
                        transaction_id: Some(&paid.transaction_id),
                        paid_at: Some(paid.paid_at.unwrap_or(now)),
                        failure: None,
                    },
                    now,
                )
                .await?;
                if !moved {
                    return Ok(Applied::Duplicate);
                }
                self.order_event_tx(
                    &mut tx,
                    OrderActor::System,
                    a.order_id,
                    None,
                    OrderEvent::PaymentSucceeded,
                    None,
                    meta,
                )
                .await?;
                notices::insert(
                    &mut tx,
                    "paid",
                    &format!("订单 {} 已支付，待制证", a.order_id),
                    &format!(
                        "{}，{}，{} 元。",
                        order.enterprise_name.clone().unwrap_or_default(),
                        a.channel.label_zh(),
                        certhall_domain::money::yuan_decimal(a.amount_fen)
                    ),
                    Some(a.order_id),
                    now,
                )
                .await?;
                Applied::Paid
            }
            SuccessDecision::ApplyAndRefund => {
                let moved = match current.state {
                    AttemptState::Paying => {
                        payments::settle_attempt(
                            &mut tx,
                            &Settlement {
                                id: a.id,
                                to: AttemptState::Paid,
                                by,
                                transaction_id: Some(&paid.transaction_id),
                                paid_at: Some(paid.paid_at.unwrap_or(now)),
                                failure: None,
                            },
                            now,
                        )
                        .await?
                    }
                    _ => {
                        payments::settle_late_payment(
                            &mut tx,
                            a.id,
                            &paid.transaction_id,
                            paid.paid_at,
                            now,
                        )
                        .await?
                    }
                };
                if !moved {
                    return Ok(Applied::Duplicate);
                }
                let reason = match order.state {
                    OrderState::Cancelled => "订单已取消，款项原路退回",
                    OrderState::AwaitingPayment => "支付单已关闭后到账，款项原路退回",
                    _ => "重复支付，款项原路退回",
                };
                self.request_refund_tx(&mut tx, &order, &current, reason, &Actor::System)
                    .await?;
                Applied::Refunding
            }
        };
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::System,
            meta,
            AuditEvent::PaymentSettled,
            json!({
                "order": a.order_id, "attempt": a.id, "out_trade_no": a.out_trade_no,
                "to": "paid", "by": by, "transaction_id": paid.transaction_id,
                "amount_fen": paid.amount_fen, "refund": applied == Applied::Refunding,
            }),
        )
        .await?;
        tx.commit().await?;
        if applied == Applied::Refunding {
            self.submit_open_refunds_of(a.order_id).await;
        }
        Ok(applied)
    }

    /// Records a full refund of a paid attempt (state `requested`) with
    /// its own number, and tells the applicant. Submitted after commit.
    pub(crate) async fn request_refund_tx(
        &self,
        tx: &mut WriteTx,
        order: &OrderRow,
        attempt: &AttemptRow,
        reason: &str,
        actor: &Actor,
    ) -> Result<Option<RefundRow>> {
        if payments::live_refund_of_attempt(tx, attempt.id)
            .await?
            .is_some()
        {
            return Ok(None); // refunded (or being refunded) already
        }
        let now = self.clock.now();
        let n = payments::refund_count(tx, order.id).await? + 1;
        let no = new_out_refund_no(
            order.id,
            u32::try_from(n).unwrap_or(0),
            &mut rand::rngs::OsRng,
        );
        let refund = payments::insert_refund(
            tx,
            &NewRefundRow {
                order_id: order.id,
                attempt_id: attempt.id,
                out_refund_no: &no,
                amount_fen: attempt.amount_fen,
                reason,
                requested_by: &actor.to_string(),
            },
            now,
        )
        .await?;
        append_audit(
            tx,
            self.clock.as_ref(),
            actor.clone(),
            &system_meta(),
            AuditEvent::RefundChanged,
            json!({
                "order": order.id, "refund": refund.id, "out_refund_no": no,
                "attempt": attempt.id, "amount_fen": attempt.amount_fen,
                "to": "requested", "reason": reason,
            }),
        )
        .await?;
        messages::insert(
            tx,
            order.account_id,
            &NewMessage {
                kind: MessageKind::System,
                title: format!("退款处理中（订单 {}）", order.id),
                body: format!(
                    "订单 {} 的 {} 元将按原支付方式退回（{}），一般 1–3 个工作日到账。",
                    order.id,
                    certhall_domain::money::yuan_decimal(attempt.amount_fen),
                    reason
                ),
                order_id: Some(order.id),
            },
            now,
        )
        .await?;
        Ok(Some(refund))
    }

    /// Submits (or asks about) the order's open refunds; errors are logged
    /// and left to the job.
    pub(crate) async fn submit_open_refunds_of(&self, order_id: i64) {
        let Ok(refunds) = payments::refunds_of_order(&self.store, order_id).await else {
            return;
        };
        for r in refunds.into_iter().filter(|r| !r.state.is_final()) {
            if let Err(e) = self.drive_refund(&r).await {
                tracing::warn!(error = %e, refund = r.id, "refund not submitted yet; the job retries");
            }
        }
    }

    /// One step of a refund: submit it (`requested`) or ask about it
    /// (`processing`), then apply the answer.
    async fn drive_refund(&self, r: &RefundRow) -> Result<bool> {
        let attempt = payments::attempt_by_id(&self.store, r.attempt_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        let provider = self.provider_of(attempt.channel)?.clone();
        payments::refund_queried(&self.store, r.id, self.clock.now()).await?;
        let status = match r.state {
            RefundState::Requested => provider
                .refund(&NewRefund {
                    out_trade_no: &attempt.out_trade_no,
                    out_refund_no: &r.out_refund_no,
                    refund_fen: r.amount_fen,
                    total_fen: attempt.amount_fen,
                    reason: &r.reason,
                })
                .await
                .map_err(provider_fault)?,
            _ => provider
                .query_refund(&attempt.out_trade_no, &r.out_refund_no)
                .await
                .map_err(provider_fault)?,
        };
        self.apply_refund_status(r, &status, &system_meta()).await
    }

    /// Applies what the provider says about a refund; true when it is now
    /// final.
    async fn apply_refund_status(
        &self,
        r: &RefundRow,
        status: &RefundStatus,
        meta: &RequestMeta,
    ) -> Result<bool> {
        let (to, provider_id, at, detail) = match status {
            RefundStatus::Processing => (RefundState::Processing, None, None, None),
            RefundStatus::Succeeded { refund_id, at } => (
                RefundState::Succeeded,
                refund_id.as_deref(),
                Some(at.unwrap_or(self.clock.now())),
                None,
            ),
            RefundStatus::Closed => (RefundState::Closed, None, None, Some("退款已关闭")),
            RefundStatus::Abnormal(why) => (RefundState::Abnormal, None, None, Some(why.as_str())),
            // The provider never got it: submit again next time.
            RefundStatus::NotFound if r.state == RefundState::Processing => {
                (RefundState::Requested, None, None, None)
            }
            RefundStatus::NotFound => return Ok(false),
        };
        if !(r.state.may_become(to)
            || (r.state == RefundState::Processing && to == RefundState::Requested))
        {
            return Ok(r.state.is_final());
        }
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        if !payments::update_refund(&mut tx, r.id, r.state, to, provider_id, at, detail, now)
            .await?
        {
            return Ok(false); // someone else moved it
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::System,
            meta,
            AuditEvent::RefundChanged,
            json!({
                "order": r.order_id, "refund": r.id, "out_refund_no": r.out_refund_no,
                "from": r.state.as_str(), "to": to.as_str(), "detail": detail,
            }),
        )
        .await?;
        if to.is_final() {
            if let Some(order) = orders::get_tx(&mut tx, r.order_id).await? {
                let (title, body) = match to {
                    RefundState::Succeeded => (
                        format!("退款成功（订单 {}）", r.order_id),
                        format!(
                            "订单 {} 的 {} 元已按原支付方式退回，请留意到账。",
                            r.order_id,
                            certhall_domain::money::yuan_decimal(r.amount_fen)
                        ),
                    ),
                    _ => (
                        format!("退款需人工处理（订单 {}）", r.order_id),
                        format!(
                            "订单 {} 的退款未能自动完成，财务人员将与您联系，请保持电话畅通。",
                            r.order_id
                        ),
                    ),
                };
                messages::insert(
                    &mut tx,
                    order.account_id,
                    &NewMessage {
                        kind: MessageKind::System,
                        title,
                        body,
                        order_id: Some(r.order_id),
                    },
                    now,
                )
                .await?;
                if to != RefundState::Succeeded {
                    notices::insert(
                        &mut tx,
                        "refund_problem",
                        &format!("订单 {} 退款异常，需财务处理", r.order_id),
                        &format!("退款单号 {}：{}", r.out_refund_no, detail.unwrap_or("")),
                        Some(r.order_id),
                        now,
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(to.is_final())
    }

    /// A callback from `channel`: stored raw, verified, then applied. The
    /// answer is what the provider expects (accepted also for a duplicate;
    /// refused for anything unverified or wrong, which is audited).
    pub async fn payment_callback(
        &self,
        channel: Channel,
        headers: &[(String, String)],
        body: &[u8],
        meta: &RequestMeta,
    ) -> Result<CallbackAnswer> {
        let Some(provider) = self.payments.provider(channel).cloned() else {
            return Err(Refusal::NotFound.into());
        };
        let now = self.clock.now();
        let kept: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(k, _)| k.starts_with("wechatpay-") || k == "content-type")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let id = payments::insert_callback(
            &self.store,
            &NewCallback {
                channel,
                headers: &json!(kept
                    .into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>())
                .to_string(),
                body,
            },
            now,
        )
        .await?;
        let notice = match provider.verify_callback(&Callback { headers, body }, now) {
            Ok(n) => n,
            Err(e) => {
                let outcome = format!("refused_{}", e.code());
                self.record_callback(
                    id,
                    channel,
                    &outcome,
                    None,
                    None,
                    Some(&e.to_string()),
                    meta,
                )
                .await?;
                if e == certhall_payment::CallbackError::Probe {
                    tracing::info!("payment signature probe refused, as expected");
                } else {
                    tracing::warn!(error = %e, channel = channel.as_str(), "payment callback refused");
                }
                return Ok(provider.answer(false));
            }
        };
        match notice {
            Notice::Payment(p) => {
                let attempt = payments::attempt_by_no(&self.store, &p.out_trade_no).await?;
                let Some(attempt) = attempt.filter(|a| a.channel == channel) else {
                    self.record_callback(
                        id,
                        channel,
                        "refused_unknown_trade",
                        Some(&p.out_trade_no),
                        Some(&p.notification_id),
                        None,
                        meta,
                    )
                    .await?;
                    return Ok(provider.answer(false));
                };
                let applied = self
                    .apply_trade(&attempt, &p.state, "callback", meta)
                    .await?;
                self.record_callback(
                    id,
                    channel,
                    applied.outcome(),
                    Some(&p.out_trade_no),
                    Some(&p.notification_id),
                    None,
                    meta,
                )
                .await?;
                Ok(provider.answer(applied != Applied::AmountMismatch))
            }
            Notice::Refund(r) => {
                let Some(refund) = payments::refund_by_no(&self.store, &r.out_refund_no).await?
                else {
                    self.record_callback(
                        id,
                        channel,
                        "refused_unknown_refund",
                        Some(&r.out_trade_no),
                        Some(&r.notification_id),
                        None,
                        meta,
                    )
                    .await?;
                    return Ok(provider.answer(false));
                };
                self.apply_refund_status(&refund, &r.status, meta).await?;
                self.record_callback(
                    id,
                    channel,
                    "refund_applied",
                    Some(&r.out_trade_no),
                    Some(&r.notification_id),
                    None,
                    meta,
                )
                .await?;
                Ok(provider.answer(true))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_callback(
        &self,
        id: i64,
        channel: Channel,
        outcome: &str,
        out_trade_no: Option<&str>,
        notification_id: Option<&str>,
        detail: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        payments::set_callback_outcome(&mut tx, id, outcome, out_trade_no, notification_id, detail)
            .await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::System,
            meta,
            AuditEvent::PaymentCallback,
            json!({
                "callback": id, "channel": channel.as_str(), "outcome": outcome,
                "out_trade_no": out_trade_no, "notification_id": notification_id,
                "detail": detail,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The reconciliation: attempts still `paying` after a while are asked
    /// about (and closed once expired); open refunds are submitted or
    /// asked about. Safe to run from several processes (each attempt is
    /// claimed before it is asked about); [`Services::run_payment_job`]
    /// runs it once per tick.
    pub async fn reconcile_payments(&self) -> Result<ReconcileSummary> {
        let policy = self.payments.policy;
        let now = self.clock.now();
        let mut s = ReconcileSummary::default();
        for a in payments::paying_before(&self.store, now.minus(policy.query_after), 200).await? {
            if !payments::claim_query(&self.store, a.id, now.minus(policy.query_every), now).await?
            {
                continue;
            }
            s.queried += 1;
            let result = if now >= a.expires_at {
                self.close_attempt(&a, "job").await
            } else {
                self.check_attempt(&a, "job").await
            };
            match result {
                Ok(Applied::Paid | Applied::Refunding) => s.paid += 1,
                Ok(Applied::Closed) => s.closed += 1,
                Ok(Applied::Failed) => s.failed += 1,
                Ok(_) => {}
                Err(e) => {
                    s.errors += 1;
                    tracing::warn!(error = %e, attempt = a.id, "payment reconciliation failed");
                }
            }
        }
        for r in payments::open_refunds(&self.store, 200).await? {
            s.refunds_checked += 1;
            match self.drive_refund(&r).await {
                Ok(true) => s.refunds_final += 1,
                Ok(false) => {}
                Err(e) => {
                    s.errors += 1;
                    tracing::warn!(error = %e, refund = r.id, "refund step failed");
                }
            }
        }
        Ok(s)
    }

    /// Runs the reconciliation for the current tick of `interval` if no
    /// other process has (a database lease); `holder` names this process.
    /// `None` when another process had the tick.
    pub async fn run_payment_job(
        &self,
        holder: &str,
        interval: Duration,
    ) -> Result<Option<ReconcileSummary>> {
        let now = self.clock.now();
        let slot = now.millis() / i64::try_from(interval.as_millis().max(1)).unwrap_or(i64::MAX);
        let lease_until = now.plus(Duration::from_secs(300));
        if !jobs::claim(&self.store, PAYMENT_JOB, slot, holder, lease_until, now).await? {
            return Ok(None);
        }
        let result = self.reconcile_payments().await;
        let summary = match &result {
            Ok(s) => s.text(),
            Err(e) => format!("error: {e}"),
        };
        jobs::finish(
            &self.store,
            PAYMENT_JOB,
            slot,
            holder,
            &summary,
            self.clock.now(),
        )
        .await?;
        result.map(Some)
    }
}

fn payable(state: OrderState) -> Result<()> {
    match state {
        OrderState::AwaitingPayment => Ok(()),
        OrderState::Paid => Err(Refusal::OrderAlreadyPaid.into()),
        other => Err(Refusal::PaymentNotDue(other.label_zh()).into()),
    }
}

/// For tests and the counter: is `t` within the attempt's validity?
pub fn still_valid(a: &AttemptRow, now: Timestamp) -> bool {
    a.state == AttemptState::Paying && now < a.expires_at
}
