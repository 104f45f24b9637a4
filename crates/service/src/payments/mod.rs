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
use certhall_domain::order::OrderState;
use certhall_domain::payment::{new_out_trade_no, AttemptState, Channel, PaymentPolicy};
use certhall_domain::{AccountId, OrderId, Refusal, Timestamp};
use certhall_payment::simulator::WechatSimulator;
use certhall_payment::{NewPayment, PaymentError, PaymentProvider, TradeState};
use certhall_store::orders::OrderRow;
use certhall_store::payments::{self, AttemptRow, NewAttempt, RefundRow, Settlement};
use certhall_store::{checkouts, LockKey};
use serde_json::json;

use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

mod callbacks;
mod job;
mod refunds;
mod settle;

pub use job::{ReconcileSummary, PAYMENT_JOB};

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
            // Callbacks go to CertHall's own route only: no redirects.
            http: reqwest::Client::builder()
                .timeout(certhall_payment::HTTP_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
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

/// How long an attempt without a QR code yet counts as being created
/// (the provider call takes at most its 10-second timeout).
pub(crate) const CREATING: Duration = Duration::from_secs(30);

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
        order_id: OrderId,
        check: bool,
    ) -> Result<PaymentView> {
        let mut order = self.order_of(account, order_id).await?;
        if check && order.state == OrderState::AwaitingPayment {
            let mut asked = false;
            for a in payments::attempts_of_order(&self.store, order_id.0).await? {
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
                        asked = true;
                        // A provider that cannot be reached now is asked
                        // again later; the page shows what is known.
                        if let Err(e) = self.check_attempt(&a, "applicant").await {
                            tracing::warn!(error = %e, attempt = a.id, "payment check failed");
                        }
                    }
                }
            }
            // The answer may have moved the order on.
            if asked {
                order = self.order_of(account, order_id).await?;
            }
        }
        self.payment_view_of(order).await
    }

    async fn payment_view_of(&self, order: OrderRow) -> Result<PaymentView> {
        Ok(PaymentView {
            checkout: checkouts::get(&self.store, order.id.0).await?,
            attempts: payments::attempts_of_order(&self.store, order.id.0).await?,
            refunds: payments::refunds_of_order(&self.store, order.id.0).await?,
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
        order_id: OrderId,
        channel: Channel,
        meta: &RequestMeta,
    ) -> Result<AttemptRow> {
        let provider = self.provider_of(channel)?.clone();
        let order = self.order_of(account, order_id).await?;
        payable(order.state)?;
        // Settle what is under way (outside any transaction).
        for a in payments::attempts_of_order(&self.store, order_id.0).await? {
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
                return Err(Refusal::PaymentBusy.into());
            }
            if self.close_attempt(&a, "applicant").await? == Applied::Paid {
                return Err(Refusal::OrderAlreadyPaid.into());
            }
        }
        // Record the new attempt under the order's payment lock.
        let now = self.clock.now();
        let expires_at = now.plus(self.payments.policy.attempt_ttl);
        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::OrderPayment(order_id.0)).await?;
        let order = self.owned_order(&mut tx, account, order_id).await?;
        payable(order.state)?;
        if let Some(busy) = payments::paying_of_order_tx(&mut tx, order_id.0)
            .await?
            .into_iter()
            .next()
        {
            // Another tab started one a moment ago: that one it is.
            if busy.channel == channel {
                return Ok(busy);
            }
            return Err(Refusal::PaymentBusy.into());
        }
        // Fixed when payment became due (step 6's total; a renewal's price).
        let amount_fen = order.amount_fen.ok_or(Refusal::NotFound)?;
        let seq = payments::next_seq(&mut tx, order_id.0).await?;
        let no = new_out_trade_no(
            order_id,
            u32::try_from(seq).unwrap_or(0),
            &mut rand::rngs::OsRng,
        );
        let description = format!("CertHall {}-订单{}", order.kind.label_zh(), order.id);
        let attempt = payments::insert_attempt(
            &mut tx,
            &NewAttempt {
                order_id: order_id.0,
                seq,
                channel,
                out_trade_no: &no,
                amount_fen,
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
                amount_fen,
                description: &description,
                expires_at,
                payer_ip: meta.ip.as_deref(),
            })
            .await;
        let mut tx = self.store.begin_write().await?;
        match created {
            Ok(qr) => {
                if !payments::set_code_url(&mut tx, attempt.id, &qr.code_url).await? {
                    // Settled while the provider made the code (revised,
                    // cancelled): the code must not stay payable there.
                    drop(tx);
                    if let Err(e) = provider.close(&no).await {
                        tracing::info!(error = %e, attempt = attempt.id, "superseded payment not closed at the provider");
                    }
                    let now_order = self.order_of(account, order_id).await?;
                    return Err(Refusal::PaymentNotDue(now_order.state.label_zh()).into());
                }
                append_audit(
                    &mut tx,
                    self.clock.as_ref(),
                    Actor::Account(account),
                    meta,
                    AuditEvent::PaymentCreated,
                    json!({
                        "order": order_id, "attempt": attempt.id, "out_trade_no": no,
                        "channel": channel.as_str(), "amount_fen": amount_fen,
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
                // The number is burnt. The provider may or may not have the
                // trade: it is closed there (best effort, below), and the
                // job's late check asks about it once it has expired.
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
                if let Err(close) = provider.close(&no).await {
                    tracing::info!(error = %close, attempt = attempt.id, "failed payment not closed at the provider");
                }
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

    /// Settles the order's attempts under way before the order changes
    /// (revise, cancel): each is queried, then closed. Refused while one is
    /// having its QR code made this very moment. Returns true when one
    /// turned out paid.
    pub(crate) async fn settle_attempts_of(&self, order_id: OrderId, by: &str) -> Result<bool> {
        let now = self.clock.now();
        let mut paid = false;
        for a in payments::attempts_of_order(&self.store, order_id.0).await? {
            if a.state != AttemptState::Paying {
                continue;
            }
            if a.code_url.is_none() && now.since(a.created_at) < CREATING {
                return Err(Refusal::PaymentBusy.into());
            }
            paid |= matches!(
                self.close_attempt(&a, by).await?,
                Applied::Paid | Applied::Refunding
            );
        }
        Ok(paid)
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
