//! 第七步 支付: payment attempts (one per try, each with its own
//! `out_trade_no`) and refunds, with their state machines.
//!
//! ```text
//!   create (QR code shown, expires after 30 min)
//!      │
//!      ▼
//!   Paying ── verified success (callback or query) ──► Paid
//!      │  ── provider says closed / we closed it ────► Closed
//!      │  ── provider says the payment failed ───────► Failed
//! ```
//!
//! A state changes only from `Paying`, persisted as a compare-and-swap
//! (`UPDATE … WHERE state = 'paying'`): a second callback for the same
//! payment, or a callback racing the query job, finds the attempt settled
//! and changes nothing. An attempt is never reused: a new try gets a new
//! `out_trade_no` (an expired QR code burns its number, as providers
//! require).
//!
//! ```text
//!   Requested ──(provider accepts)──► Processing ──► Succeeded
//!       │                                 │
//!       └──────────────┬──────────────────┘
//!                      ▼
//!               Closed | Abnormal  (the finance office acts by hand)
//! ```
//!
//! A refund has its own `out_refund_no`; a submission that failed to reach
//! the provider stays `Requested` and is submitted again with the same
//! number (providers deduplicate by it).

use std::time::Duration;

use rand::Rng;
use serde::Serialize;

use crate::{OrderId, Refusal, Timestamp};

/// A payment channel (支付方式).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// 微信支付 (API v3, Native: the payer scans a QR code).
    Wechat,
    /// 支付宝 (OpenAPI, 当面付 precreate: the payer scans a QR code).
    Alipay,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 2] = [Channel::Wechat, Channel::Alipay];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wechat => "wechat",
            Self::Alipay => "alipay",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Wechat => "微信支付",
            Self::Alipay => "支付宝",
        }
    }
}

/// Where a payment attempt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptState {
    /// The QR code is out; waiting for the payer.
    Paying,
    /// The provider confirmed the payment (verified).
    Paid,
    /// Closed without payment (expired, replaced or closed by the provider).
    Closed,
    /// The provider reported the payment failed.
    Failed,
}

impl AttemptState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paying => "paying",
            Self::Paid => "paid",
            Self::Closed => "closed",
            Self::Failed => "failed",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Paying, Self::Paid, Self::Closed, Self::Failed]
            .into_iter()
            .find(|a| a.as_str() == s)
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Paying => "待支付",
            Self::Paid => "支付成功",
            Self::Closed => "已关闭",
            Self::Failed => "支付失败",
        }
    }
}

/// What happens to an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEvent {
    /// A verified success (callback or query) for the attempt's amount.
    Succeeded,
    /// Closed without payment.
    Closed,
    /// The provider reported failure.
    Failed,
}

/// The attempt's state after `event`; only `Paying` moves.
pub fn attempt_transition(
    state: AttemptState,
    event: AttemptEvent,
) -> Result<AttemptState, Refusal> {
    match (state, event) {
        (AttemptState::Paying, AttemptEvent::Succeeded) => Ok(AttemptState::Paid),
        (AttemptState::Paying, AttemptEvent::Closed) => Ok(AttemptState::Closed),
        (AttemptState::Paying, AttemptEvent::Failed) => Ok(AttemptState::Failed),
        (s, _) => Err(Refusal::OrderStateConflict(s.label_zh().to_owned())),
    }
}

/// Where a refund is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    /// Recorded; not yet accepted by the provider (submitted again until it
    /// is, with the same number).
    Requested,
    /// Accepted; the money is on its way back.
    Processing,
    /// The money is back with the payer.
    Succeeded,
    /// The provider closed the refund without paying it.
    Closed,
    /// The provider could not pay it back (e.g. the payer's card is gone);
    /// the finance office handles it by hand.
    Abnormal,
}

impl RefundState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Closed => "closed",
            Self::Abnormal => "abnormal",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Requested,
            Self::Processing,
            Self::Succeeded,
            Self::Closed,
            Self::Abnormal,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Requested => "退款申请中",
            Self::Processing => "退款处理中",
            Self::Succeeded => "已退款",
            Self::Closed => "退款已关闭",
            Self::Abnormal => "退款异常（财务人工处理）",
        }
    }

    /// True once the provider will not change it any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Closed | Self::Abnormal)
    }

    /// May a refund in this state move to `to`? Final states never move;
    /// nothing moves back to `Requested`.
    pub fn may_become(self, to: RefundState) -> bool {
        !self.is_final() && to != Self::Requested && to != self
    }
}

/// The rules of payment attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentPolicy {
    /// How long a QR code is valid (the provider is told the same expiry).
    pub attempt_ttl: Duration,
    /// How old a `paying` attempt is before the job asks the provider
    /// (callbacks normally arrive within seconds).
    pub query_after: Duration,
    /// How often the same attempt is asked about at most (the job and the
    /// applicant's 我已支付 button share it).
    pub query_every: Duration,
}

impl Default for PaymentPolicy {
    fn default() -> Self {
        Self {
            attempt_ttl: Duration::from_secs(30 * 60),
            query_after: Duration::from_secs(2 * 60),
            query_every: Duration::from_secs(60),
        }
    }
}

/// A new `out_trade_no`: `CH`, the order number (8 digits), `T`, the
/// attempt's number on the order (3 digits), then 6 random upper-case
/// letters and digits — 20 characters of `[0-9A-Z]`, valid for WeChat Pay
/// (6–32 characters) and Alipay (up to 64), unique per attempt (the store
/// enforces it) and not guessable from the order number alone.
pub fn new_out_trade_no<R: Rng>(order: OrderId, attempt: u32, rng: &mut R) -> String {
    format!(
        "CH{:08}T{:03}{}",
        order.0.rem_euclid(100_000_000),
        attempt % 1000,
        random_suffix(rng, 6)
    )
}

/// The order number an `out_trade_no` of [`new_out_trade_no`] carries
/// (modulo 10^8, as written there); `None` for any other text.
pub fn order_of_out_trade_no(out_trade_no: &str) -> Option<OrderId> {
    out_trade_no
        .strip_prefix("CH")
        .and_then(|rest| rest.get(..8))
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .map(OrderId)
}

/// A new `out_refund_no` (`RF…`, same alphabet).
pub fn new_out_refund_no<R: Rng>(order: OrderId, refund: u32, rng: &mut R) -> String {
    format!(
        "RF{:08}R{:03}{}",
        order.0.rem_euclid(100_000_000),
        refund % 1000,
        random_suffix(rng, 6)
    )
}

fn random_suffix<R: Rng>(rng: &mut R, n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    (0..n)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// What to do with a verified success for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuccessDecision {
    /// Mark the attempt paid and the order paid.
    Apply,
    /// The attempt was settled before (a duplicate callback, or the query
    /// job got there first): nothing changes.
    Duplicate,
    /// The provider's amount is not the attempt's: refuse, change nothing.
    AmountMismatch {
        /// The attempt's amount.
        expected: i64,
        /// What the provider says was paid.
        got: i64,
    },
    /// Money arrived for an order that no longer waits for it (paid by
    /// another attempt, cancelled, or revised to another amount): mark the
    /// attempt paid and refund it in full.
    ApplyAndRefund,
}

/// Decides what a verified success means. `order_owes` is what the order
/// waits to be paid, `None` when it waits for nothing (paid, cancelled,
/// back at step 6).
///
/// A payment for exactly what the order still owes is applied even when it
/// arrives for an attempt we had closed or marked failed (a QR code paid at
/// the last moment, an Alipay code closed before it was scanned): the
/// applicant paid what they owe and should not pay twice. Anything else
/// that arrives is refunded.
pub fn decide_success(
    attempt: AttemptState,
    attempt_fen: i64,
    paid_fen: i64,
    order_owes: Option<i64>,
) -> SuccessDecision {
    if attempt == AttemptState::Paid {
        return SuccessDecision::Duplicate;
    }
    if paid_fen != attempt_fen {
        return SuccessDecision::AmountMismatch {
            expected: attempt_fen,
            got: paid_fen,
        };
    }
    if order_owes == Some(paid_fen) {
        SuccessDecision::Apply
    } else {
        SuccessDecision::ApplyAndRefund
    }
}

/// When the job should look at a `paying` attempt: it is old enough and
/// was not asked about too recently.
pub fn due_for_query(
    policy: &PaymentPolicy,
    created_at: Timestamp,
    last_queried: Option<Timestamp>,
    now: Timestamp,
) -> bool {
    now.since(created_at) >= policy.query_after
        && last_queried.is_none_or(|q| now.since(q) >= policy.query_every)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn only_paying_moves() {
        use AttemptEvent as E;
        use AttemptState as S;
        assert_eq!(attempt_transition(S::Paying, E::Succeeded), Ok(S::Paid));
        assert_eq!(attempt_transition(S::Paying, E::Closed), Ok(S::Closed));
        assert_eq!(attempt_transition(S::Paying, E::Failed), Ok(S::Failed));
        for s in [S::Paid, S::Closed, S::Failed] {
            for e in [E::Succeeded, E::Closed, E::Failed] {
                assert!(attempt_transition(s, e).is_err(), "{s:?} {e:?}");
            }
        }
    }

    #[test]
    fn success_decisions() {
        use AttemptState as S;
        use SuccessDecision as D;
        let cases = [
            // (attempt, attempt fen, paid fen, order owes) → decision
            (S::Paying, 38_000, 38_000, Some(38_000), D::Apply),
            (S::Paid, 38_000, 38_000, None, D::Duplicate),
            (S::Paid, 38_000, 38_000, Some(38_000), D::Duplicate),
            (
                S::Paying,
                38_000,
                1,
                Some(38_000),
                D::AmountMismatch {
                    expected: 38_000,
                    got: 1,
                },
            ),
            // Paid or cancelled meanwhile: refunded.
            (S::Paying, 38_000, 38_000, None, D::ApplyAndRefund),
            // Closed or failed here, paid there, for what is still owed:
            // applied, not refunded.
            (S::Closed, 38_000, 38_000, Some(38_000), D::Apply),
            (S::Failed, 38_000, 38_000, Some(38_000), D::Apply),
            // Step 6 revised to another amount since: refunded.
            (S::Closed, 38_000, 38_000, Some(42_000), D::ApplyAndRefund),
            (S::Closed, 38_000, 38_000, None, D::ApplyAndRefund),
        ];
        for (attempt, fen, paid, owes, want) in cases {
            assert_eq!(
                decide_success(attempt, fen, paid, owes),
                want,
                "{attempt:?} {fen} {paid} {owes:?}"
            );
        }
    }

    #[test]
    fn refund_states_move_forward_only() {
        use RefundState as R;
        assert!(R::Requested.may_become(R::Processing));
        assert!(R::Requested.may_become(R::Succeeded));
        assert!(R::Processing.may_become(R::Succeeded));
        assert!(!R::Processing.may_become(R::Requested));
        assert!(!R::Succeeded.may_become(R::Processing));
        assert!(!R::Abnormal.may_become(R::Succeeded));
        for r in [
            R::Requested,
            R::Processing,
            R::Succeeded,
            R::Closed,
            R::Abnormal,
        ] {
            assert_eq!(R::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn trade_numbers() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = new_out_trade_no(OrderId(12), 1, &mut rng);
        let b = new_out_trade_no(OrderId(12), 1, &mut rng);
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
        assert!(a.starts_with("CH00000012T001"), "{a}");
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        let r = new_out_refund_no(OrderId(12), 2, &mut rng);
        assert!(r.starts_with("RF00000012R002") && r.len() == 20, "{r}");
        assert_eq!(order_of_out_trade_no(&a), Some(OrderId(12)));
        assert_eq!(order_of_out_trade_no(&r), None);
        assert_eq!(order_of_out_trade_no("CH0000+012T001ABCDEF"), None);
        assert_eq!(order_of_out_trade_no("CH12"), None);
    }

    #[test]
    fn query_timing() {
        let p = PaymentPolicy::default();
        let t0 = Timestamp::from_millis(1_000_000_000);
        assert!(!due_for_query(
            &p,
            t0,
            None,
            t0.plus(Duration::from_secs(60))
        ));
        assert!(due_for_query(
            &p,
            t0,
            None,
            t0.plus(Duration::from_secs(120))
        ));
        let q = t0.plus(Duration::from_secs(150));
        assert!(!due_for_query(
            &p,
            t0,
            Some(q),
            t0.plus(Duration::from_secs(180))
        ));
        assert!(due_for_query(
            &p,
            t0,
            Some(q),
            t0.plus(Duration::from_secs(210))
        ));
    }
}
