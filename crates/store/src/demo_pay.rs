//! The demo WeChat Pay simulator's ledger (demo mode only): trades and
//! refunds as the simulated provider keeps them, in the database so every
//! process sees the same.

use certhall_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store};

/// A simulated trade, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoTrade {
    /// The merchant's number.
    pub out_trade_no: String,
    /// What is paid for.
    pub description: String,
    /// Fen.
    pub amount_fen: i64,
    /// WeChat Pay's `trade_state`.
    pub state: String,
    /// WeChat's number, once paid.
    pub transaction_id: Option<String>,
    /// Callback URL.
    pub notify_url: String,
    /// When created.
    pub created_at: Timestamp,
    /// When the QR code stops working.
    pub expires_at: Timestamp,
    /// When paid.
    pub paid_at: Option<Timestamp>,
}

const TRADE_COLUMNS: &str =
    "out_trade_no, description, amount_fen, state, transaction_id, notify_url, \
                             created_at, expires_at, paid_at";

fn trade_from_row(r: &AnyRow) -> Result<DemoTrade> {
    let paid: Option<i64> = r.try_get("paid_at")?;
    Ok(DemoTrade {
        out_trade_no: r.try_get("out_trade_no")?,
        description: r.try_get("description")?,
        amount_fen: r.try_get("amount_fen")?,
        state: r.try_get("state")?,
        transaction_id: r.try_get("transaction_id")?,
        notify_url: r.try_get("notify_url")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        expires_at: Timestamp::from_millis(r.try_get("expires_at")?),
        paid_at: paid.map(Timestamp::from_millis),
    })
}

/// A trade by number.
pub async fn trade(store: &Store, no: &str) -> Result<Option<DemoTrade>> {
    let row = sqlx::query(&format!(
        "SELECT {TRADE_COLUMNS} FROM demo_wechat_trades WHERE out_trade_no = $1"
    ))
    .bind(no)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(trade_from_row).transpose()
}

/// Adds a trade; false if the number exists.
pub async fn insert_trade(store: &Store, t: &DemoTrade) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO demo_wechat_trades (out_trade_no, description, amount_fen, state, transaction_id, \
                notify_url, created_at, expires_at, paid_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (out_trade_no) DO NOTHING",
    )
    .bind(t.out_trade_no.as_str())
    .bind(t.description.as_str())
    .bind(t.amount_fen)
    .bind(t.state.as_str())
    .bind(t.transaction_id.clone())
    .bind(t.notify_url.as_str())
    .bind(t.created_at.millis())
    .bind(t.expires_at.millis())
    .bind(t.paid_at.map(Timestamp::millis))
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces a trade still in state `from`; false otherwise.
pub async fn update_trade(store: &Store, t: &DemoTrade, from: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE demo_wechat_trades SET state = $1, transaction_id = $2, paid_at = $3 \
         WHERE out_trade_no = $4 AND state = $5",
    )
    .bind(t.state.as_str())
    .bind(t.transaction_id.clone())
    .bind(t.paid_at.map(Timestamp::millis))
    .bind(t.out_trade_no.as_str())
    .bind(from)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A simulated refund, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoRefund {
    /// The merchant's refund number.
    pub out_refund_no: String,
    /// The payment's number.
    pub out_trade_no: String,
    /// Fen.
    pub amount_fen: i64,
    /// WeChat's refund number.
    pub refund_id: String,
    /// Paid back.
    pub succeeded: bool,
    /// When requested.
    pub created_at: Timestamp,
    /// When paid back.
    pub succeeded_at: Option<Timestamp>,
}

/// A refund by number.
pub async fn refund(store: &Store, no: &str) -> Result<Option<DemoRefund>> {
    let row = sqlx::query(
        "SELECT out_refund_no, out_trade_no, amount_fen, refund_id, succeeded, created_at, succeeded_at \
         FROM demo_wechat_refunds WHERE out_refund_no = $1",
    )
    .bind(no)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        let succeeded: i64 = r.try_get("succeeded")?;
        let at: Option<i64> = r.try_get("succeeded_at")?;
        Ok(DemoRefund {
            out_refund_no: r.try_get("out_refund_no")?,
            out_trade_no: r.try_get("out_trade_no")?,
            amount_fen: r.try_get("amount_fen")?,
            refund_id: r.try_get("refund_id")?,
            succeeded: succeeded != 0,
            created_at: Timestamp::from_millis(r.try_get("created_at")?),
            succeeded_at: at.map(Timestamp::from_millis),
        })
    })
    .transpose()
}

/// Adds a refund; false if the number exists.
pub async fn insert_refund(store: &Store, r: &DemoRefund) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO demo_wechat_refunds (out_refund_no, out_trade_no, amount_fen, refund_id, succeeded, \
                created_at, succeeded_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (out_refund_no) DO NOTHING",
    )
    .bind(r.out_refund_no.as_str())
    .bind(r.out_trade_no.as_str())
    .bind(r.amount_fen)
    .bind(r.refund_id.as_str())
    .bind(i64::from(r.succeeded))
    .bind(r.created_at.millis())
    .bind(r.succeeded_at.map(Timestamp::millis))
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces a refund's state.
pub async fn update_refund(store: &Store, r: &DemoRefund) -> Result<()> {
    sqlx::query(
        "UPDATE demo_wechat_refunds SET succeeded = $1, succeeded_at = $2 WHERE out_refund_no = $3",
    )
    .bind(i64::from(r.succeeded))
    .bind(r.succeeded_at.map(Timestamp::millis))
    .bind(r.out_refund_no.as_str())
    .execute(store.pool())
    .await?;
    Ok(())
}
