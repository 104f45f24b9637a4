//! Payment attempts, the callbacks received, and refunds.
//!
//! Attempts settle by compare-and-swap from `paying`
//! ([`settle_attempt`]): a duplicate callback, or a callback racing the
//! query job, finds zero rows and changes nothing.

use certhall_domain::payment::{AttemptState, Channel, RefundState};
use certhall_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store, StoreError, WriteTx};

/// A payment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// Its id.
    pub id: i64,
    /// The order.
    pub order_id: i64,
    /// Its number on the order (1, 2, …).
    pub seq: i64,
    /// WeChat Pay or Alipay.
    pub channel: Channel,
    /// Our unique number for it.
    pub out_trade_no: String,
    /// Fen.
    pub amount_fen: i64,
    /// What the payer sees.
    pub description: String,
    /// Where it is.
    pub state: AttemptState,
    /// The QR code's content.
    pub code_url: Option<String>,
    /// When created.
    pub created_at: Timestamp,
    /// When the QR code stops working.
    pub expires_at: Timestamp,
    /// When the provider was last asked about it.
    pub last_queried_at: Option<Timestamp>,
    /// The provider's transaction number, once paid.
    pub transaction_id: Option<String>,
    /// When paid (the provider's time when it says).
    pub paid_at: Option<Timestamp>,
    /// When it left `paying`.
    pub settled_at: Option<Timestamp>,
    /// What settled it: `callback`, `query`, `applicant`, `job`.
    pub settled_by: Option<String>,
    /// The provider's words on a failure.
    pub failure: Option<String>,
}

const ATTEMPT_COLUMNS: &str = "id, order_id, seq, channel, out_trade_no, amount_fen, description, \
     state, code_url, created_at, expires_at, last_queried_at, transaction_id, paid_at, settled_at, \
     settled_by, failure";

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_millis)
}

fn attempt_from_row(r: &AnyRow) -> Result<AttemptRow> {
    let channel: String = r.try_get("channel")?;
    let state: String = r.try_get("state")?;
    Ok(AttemptRow {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        seq: r.try_get("seq")?,
        channel: Channel::parse(&channel)
            .ok_or_else(|| StoreError::Corrupt(format!("payment channel {channel:?}")))?,
        out_trade_no: r.try_get("out_trade_no")?,
        amount_fen: r.try_get("amount_fen")?,
        description: r.try_get("description")?,
        state: AttemptState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("attempt state {state:?}")))?,
        code_url: r.try_get("code_url")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        expires_at: Timestamp::from_millis(r.try_get("expires_at")?),
        last_queried_at: ts(r.try_get("last_queried_at")?),
        transaction_id: r.try_get("transaction_id")?,
        paid_at: ts(r.try_get("paid_at")?),
        settled_at: ts(r.try_get("settled_at")?),
        settled_by: r.try_get("settled_by")?,
        failure: r.try_get("failure")?,
    })
}

/// A new attempt to record (state `paying`).
#[derive(Debug, Clone)]
pub struct NewAttempt<'a> {
    /// The order.
    pub order_id: i64,
    /// Its number on the order.
    pub seq: i64,
    /// The channel.
    pub channel: Channel,
    /// Our number.
    pub out_trade_no: &'a str,
    /// Fen.
    pub amount_fen: i64,
    /// What the payer sees.
    pub description: &'a str,
    /// The QR code's content.
    pub code_url: &'a str,
    /// Now.
    pub created_at: Timestamp,
    /// When the QR code stops working.
    pub expires_at: Timestamp,
}

/// Records an attempt; returns it.
pub async fn insert_attempt(tx: &mut WriteTx, a: &NewAttempt<'_>) -> Result<AttemptRow> {
    let row = sqlx::query(&format!(
        "INSERT INTO payment_attempts (order_id, seq, channel, out_trade_no, amount_fen, description, \
                state, code_url, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'paying', $7, $8, $9) RETURNING {ATTEMPT_COLUMNS}"
    ))
    .bind(a.order_id)
    .bind(a.seq)
    .bind(a.channel.as_str())
    .bind(a.out_trade_no)
    .bind(a.amount_fen)
    .bind(a.description)
    .bind((!a.code_url.is_empty()).then_some(a.code_url))
    .bind(a.created_at.millis())
    .bind(a.expires_at.millis())
    .fetch_one(tx.conn())
    .await?;
    attempt_from_row(&row)
}

/// Stores the QR code the provider gave an attempt, if it is still
/// `paying`; false if it was settled meanwhile.
pub async fn set_code_url(tx: &mut WriteTx, id: i64, code_url: &str) -> Result<bool> {
    let done =
        sqlx::query("UPDATE payment_attempts SET code_url = $1 WHERE id = $2 AND state = 'paying'")
            .bind(code_url)
            .bind(id)
            .execute(tx.conn())
            .await?;
    Ok(done.rows_affected() == 1)
}

/// An attempt by id.
pub async fn attempt_by_id(store: &Store, id: i64) -> Result<Option<AttemptRow>> {
    let row = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(attempt_from_row).transpose()
}

/// The next attempt number of an order.
pub async fn next_seq(tx: &mut WriteTx, order: i64) -> Result<i64> {
    let max: Option<i64> =
        sqlx::query_scalar("SELECT MAX(seq) FROM payment_attempts WHERE order_id = $1")
            .bind(order)
            .fetch_one(tx.conn())
            .await?;
    Ok(max.unwrap_or(0) + 1)
}

/// An attempt by our number.
pub async fn attempt_by_no(store: &Store, out_trade_no: &str) -> Result<Option<AttemptRow>> {
    let row = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts WHERE out_trade_no = $1"
    ))
    .bind(out_trade_no)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(attempt_from_row).transpose()
}

/// The same, inside a write transaction.
pub async fn attempt_by_no_tx(tx: &mut WriteTx, out_trade_no: &str) -> Result<Option<AttemptRow>> {
    let row = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts WHERE out_trade_no = $1"
    ))
    .bind(out_trade_no)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(attempt_from_row).transpose()
}

/// An order's attempts, oldest first.
pub async fn attempts_of_order(store: &Store, order: i64) -> Result<Vec<AttemptRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts WHERE order_id = $1 ORDER BY seq"
    ))
    .bind(order)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(attempt_from_row).collect()
}

/// An order's attempts still `paying`, inside a write transaction.
pub async fn paying_of_order_tx(tx: &mut WriteTx, order: i64) -> Result<Vec<AttemptRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts WHERE order_id = $1 AND state = 'paying' ORDER BY seq"
    ))
    .bind(order)
    .fetch_all(tx.conn())
    .await?;
    rows.iter().map(attempt_from_row).collect()
}

/// Attempts still `paying` created before `before`, oldest first.
pub async fn paying_before(
    store: &Store,
    before: Timestamp,
    limit: u32,
) -> Result<Vec<AttemptRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts WHERE state = 'paying' AND created_at <= $1 \
         ORDER BY COALESCE(last_queried_at, 0), created_at, id LIMIT $2"
    ))
    .bind(before.millis())
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(attempt_from_row).collect()
}

/// Closed or failed attempts whose QR code expired before `before` and
/// that were never asked about since: money may still have reached them.
pub async fn late_unchecked(
    store: &Store,
    before: Timestamp,
    limit: u32,
) -> Result<Vec<AttemptRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts WHERE state IN ('closed', 'failed') \
         AND expires_at <= $1 AND late_checked_at IS NULL ORDER BY expires_at, id LIMIT $2"
    ))
    .bind(before.millis())
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(attempt_from_row).collect()
}

/// Claims the late check of an attempt; false if another process did.
pub async fn claim_late_check(store: &Store, id: i64, now: Timestamp) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE payment_attempts SET late_checked_at = $1 WHERE id = $2 AND late_checked_at IS NULL",
    )
    .bind(now.millis())
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An order's attempts that are paid, inside a write transaction.
pub async fn paid_of_order_tx(tx: &mut WriteTx, order: i64) -> Result<Vec<AttemptRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts WHERE order_id = $1 AND state = 'paid' ORDER BY seq"
    ))
    .bind(order)
    .fetch_all(tx.conn())
    .await?;
    rows.iter().map(attempt_from_row).collect()
}

/// Notes that the provider was asked about an attempt at `now`, if it was
/// not asked since `not_since` (so two askers do not both ask); false when
/// someone else asked first.
pub async fn claim_query(
    store: &Store,
    id: i64,
    not_since: Timestamp,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE payment_attempts SET last_queried_at = $1 WHERE id = $2 AND state = 'paying' \
         AND (last_queried_at IS NULL OR last_queried_at <= $3)",
    )
    .bind(now.millis())
    .bind(id)
    .bind(not_since.millis())
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How an attempt leaves `paying`.
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    /// The attempt.
    pub id: i64,
    /// Paid, closed or failed.
    pub to: AttemptState,
    /// `callback`, `query`, `applicant`, `job`.
    pub by: &'a str,
    /// The provider's transaction number (paid).
    pub transaction_id: Option<&'a str>,
    /// When paid (paid).
    pub paid_at: Option<Timestamp>,
    /// The provider's words (failed).
    pub failure: Option<&'a str>,
}

/// Moves an attempt out of `paying`; false (nothing changed) if it had
/// left `paying` already.
pub async fn settle_attempt(tx: &mut WriteTx, s: &Settlement<'_>, now: Timestamp) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE payment_attempts SET state = $1, settled_by = $2, transaction_id = $3, paid_at = $4, \
                failure = $5, settled_at = $6 WHERE id = $7 AND state = 'paying'",
    )
    .bind(s.to.as_str())
    .bind(s.by)
    .bind(s.transaction_id.map(str::to_owned))
    .bind(s.paid_at.map(Timestamp::millis))
    .bind(s.failure.map(str::to_owned))
    .bind(now.millis())
    .bind(s.id)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a `closed` or `failed` attempt paid after all (money arrived for
/// it; it is refunded at once). False if it was not in such a state.
pub async fn settle_late_payment(
    tx: &mut WriteTx,
    id: i64,
    transaction_id: &str,
    paid_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE payment_attempts SET state = 'paid', settled_by = 'late', transaction_id = $1, \
                paid_at = $2, settled_at = $3 WHERE id = $4 AND state IN ('closed', 'failed')",
    )
    .bind(transaction_id)
    .bind(paid_at.map(Timestamp::millis))
    .bind(now.millis())
    .bind(id)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A callback as received.
#[derive(Debug, Clone)]
pub struct NewCallback<'a> {
    /// Which provider's route it reached.
    pub channel: Channel,
    /// Headers as JSON text (`Wechatpay-*`, `Content-Type`).
    pub headers: &'a str,
    /// The raw body.
    pub body: &'a [u8],
    /// The sender's IP address, when known.
    pub ip: Option<&'a str>,
}

/// Stores a callback before anything is believed (outcome `received`);
/// returns its id.
pub async fn insert_callback(store: &Store, c: &NewCallback<'_>, now: Timestamp) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO payment_callbacks (channel, received_at, headers, body, outcome, ip) \
         VALUES ($1, $2, $3, $4, 'received', $5) RETURNING id",
    )
    .bind(c.channel.as_str())
    .bind(now.millis())
    .bind(c.headers)
    .bind(c.body.to_vec())
    .bind(c.ip.map(str::to_owned))
    .fetch_one(store.pool())
    .await?)
}

/// How many callbacks from `ip` since `since` were refused (or are still
/// `received`, i.e. being looked at).
pub async fn refused_from_ip_since(store: &Store, ip: &str, since: Timestamp) -> Result<i64> {
    Ok(sqlx::query_scalar(
        // The last term is the partial index's predicate, spelled the same
        // (migration 0010) so both databases use it.
        "SELECT COUNT(*) FROM payment_callbacks WHERE ip = $1 AND received_at >= $2 \
         AND (outcome = 'received' OR outcome LIKE 'refused%')",
    )
    .bind(ip)
    .bind(since.millis())
    .fetch_one(store.pool())
    .await?)
}

/// Records what became of a callback.
pub async fn set_callback_outcome(
    tx: &mut WriteTx,
    id: i64,
    outcome: &str,
    out_trade_no: Option<&str>,
    notification_id: Option<&str>,
    detail: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE payment_callbacks SET outcome = $1, out_trade_no = $2, notification_id = $3, \
                detail = $4 WHERE id = $5",
    )
    .bind(outcome)
    .bind(out_trade_no.map(str::to_owned))
    .bind(notification_id.map(str::to_owned))
    .bind(detail.map(str::to_owned))
    .bind(id)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// A stored callback (for operators and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRow {
    /// Its id.
    pub id: i64,
    /// Which route.
    pub channel: String,
    /// When.
    pub received_at: Timestamp,
    /// The headers kept (`Wechatpay-*`, `Content-Type`) as JSON text.
    pub headers: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// `received`, `applied`, `duplicate`, `refused_<code>` …
    pub outcome: String,
    /// Our number, once known.
    pub out_trade_no: Option<String>,
}

/// The latest callbacks, newest first.
pub async fn recent_callbacks(store: &Store, limit: u32) -> Result<Vec<CallbackRow>> {
    let rows = sqlx::query(
        "SELECT id, channel, received_at, headers, body, outcome, out_trade_no FROM payment_callbacks \
         ORDER BY id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CallbackRow {
                id: r.try_get("id")?,
                channel: r.try_get("channel")?,
                received_at: Timestamp::from_millis(r.try_get("received_at")?),
                headers: r.try_get("headers")?,
                body: r.try_get("body")?,
                outcome: r.try_get("outcome")?,
                out_trade_no: r.try_get("out_trade_no")?,
            })
        })
        .collect()
}

/// A refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRow {
    /// Its id.
    pub id: i64,
    /// The order.
    pub order_id: i64,
    /// The attempt it gives back.
    pub attempt_id: i64,
    /// Our unique number.
    pub out_refund_no: String,
    /// Fen.
    pub amount_fen: i64,
    /// Why (shown to the payer).
    pub reason: String,
    /// Where it is.
    pub state: RefundState,
    /// The provider's refund number.
    pub provider_refund_id: Option<String>,
    /// Who asked (`Actor` text).
    pub requested_by: String,
    /// When asked.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When the provider was last asked.
    pub last_queried_at: Option<Timestamp>,
    /// When the money was back.
    pub succeeded_at: Option<Timestamp>,
    /// The provider's words on a problem.
    pub detail: Option<String>,
}

const REFUND_COLUMNS: &str = "id, order_id, attempt_id, out_refund_no, amount_fen, reason, state, \
     provider_refund_id, requested_by, created_at, updated_at, last_queried_at, succeeded_at, detail";

fn refund_from_row(r: &AnyRow) -> Result<RefundRow> {
    let state: String = r.try_get("state")?;
    Ok(RefundRow {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        attempt_id: r.try_get("attempt_id")?,
        out_refund_no: r.try_get("out_refund_no")?,
        amount_fen: r.try_get("amount_fen")?,
        reason: r.try_get("reason")?,
        state: RefundState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("refund state {state:?}")))?,
        provider_refund_id: r.try_get("provider_refund_id")?,
        requested_by: r.try_get("requested_by")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
        last_queried_at: ts(r.try_get("last_queried_at")?),
        succeeded_at: ts(r.try_get("succeeded_at")?),
        detail: r.try_get("detail")?,
    })
}

/// A refund to record (state `requested`).
#[derive(Debug, Clone)]
pub struct NewRefundRow<'a> {
    /// The order.
    pub order_id: i64,
    /// The attempt it gives back.
    pub attempt_id: i64,
    /// Our number.
    pub out_refund_no: &'a str,
    /// Fen.
    pub amount_fen: i64,
    /// Why.
    pub reason: &'a str,
    /// Who asked.
    pub requested_by: &'a str,
}

/// Records a refund; returns it.
pub async fn insert_refund(
    tx: &mut WriteTx,
    r: &NewRefundRow<'_>,
    now: Timestamp,
) -> Result<RefundRow> {
    let row = sqlx::query(&format!(
        "INSERT INTO refunds (order_id, attempt_id, out_refund_no, amount_fen, reason, state, \
                requested_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'requested', $6, $7, $7) RETURNING {REFUND_COLUMNS}"
    ))
    .bind(r.order_id)
    .bind(r.attempt_id)
    .bind(r.out_refund_no)
    .bind(r.amount_fen)
    .bind(r.reason)
    .bind(r.requested_by)
    .bind(now.millis())
    .fetch_one(tx.conn())
    .await?;
    refund_from_row(&row)
}

/// How many refunds an order has (for the next number).
pub async fn refund_count(tx: &mut WriteTx, order: i64) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM refunds WHERE order_id = $1")
            .bind(order)
            .fetch_one(tx.conn())
            .await?,
    )
}

/// The refunds of an attempt that are not closed (at most one may be
/// open or succeeded: a payment is refunded once, in full).
pub async fn live_refund_of_attempt(tx: &mut WriteTx, attempt: i64) -> Result<Option<RefundRow>> {
    let row = sqlx::query(&format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE attempt_id = $1 AND state <> 'closed' \
         ORDER BY id LIMIT 1"
    ))
    .bind(attempt)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(refund_from_row).transpose()
}

/// A refund by our number.
pub async fn refund_by_no(store: &Store, out_refund_no: &str) -> Result<Option<RefundRow>> {
    let row = sqlx::query(&format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE out_refund_no = $1"
    ))
    .bind(out_refund_no)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(refund_from_row).transpose()
}

/// An order's refunds, oldest first.
pub async fn refunds_of_order(store: &Store, order: i64) -> Result<Vec<RefundRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE order_id = $1 ORDER BY id"
    ))
    .bind(order)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(refund_from_row).collect()
}

/// Refunds not final yet, oldest first.
pub async fn open_refunds(store: &Store, limit: u32) -> Result<Vec<RefundRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE state IN ('requested', 'processing') \
         ORDER BY id LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(refund_from_row).collect()
}

/// Moves a refund from `from` to `to`; false if it was not in `from`.
#[allow(clippy::too_many_arguments)]
pub async fn update_refund(
    tx: &mut WriteTx,
    id: i64,
    from: RefundState,
    to: RefundState,
    provider_refund_id: Option<&str>,
    succeeded_at: Option<Timestamp>,
    detail: Option<&str>,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE refunds SET state = $1, provider_refund_id = COALESCE($2, provider_refund_id), \
                succeeded_at = COALESCE($3, succeeded_at), detail = COALESCE($4, detail), updated_at = $5 \
         WHERE id = $6 AND state = $7",
    )
    .bind(to.as_str())
    .bind(provider_refund_id.map(str::to_owned))
    .bind(succeeded_at.map(Timestamp::millis))
    .bind(detail.map(str::to_owned))
    .bind(now.millis())
    .bind(id)
    .bind(from.as_str())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Notes that the provider was asked about a refund.
pub async fn refund_queried(store: &Store, id: i64, now: Timestamp) -> Result<()> {
    sqlx::query("UPDATE refunds SET last_queried_at = $1 WHERE id = $2")
        .bind(now.millis())
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// The finance export's attempts for `[from, to)`: those paid in it (by
/// the provider's payment time, as its bill counts them), and those
/// created in it that were never paid; oldest first.
pub async fn attempts_between(
    store: &Store,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<AttemptRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts \
         WHERE (paid_at IS NOT NULL AND paid_at >= $1 AND paid_at < $2) \
            OR (paid_at IS NULL AND created_at >= $1 AND created_at < $2) \
         ORDER BY COALESCE(paid_at, created_at), id"
    ))
    .bind(from.millis())
    .bind(to.millis())
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(attempt_from_row).collect()
}

/// The finance export's refunds for `[from, to)`: those that succeeded
/// in it, and those requested in it that have not succeeded; oldest first.
pub async fn refunds_between(
    store: &Store,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<RefundRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {REFUND_COLUMNS} FROM refunds \
         WHERE (succeeded_at IS NOT NULL AND succeeded_at >= $1 AND succeeded_at < $2) \
            OR (succeeded_at IS NULL AND created_at >= $1 AND created_at < $2) \
         ORDER BY COALESCE(succeeded_at, created_at), id"
    ))
    .bind(from.millis())
    .bind(to.millis())
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(refund_from_row).collect()
}
