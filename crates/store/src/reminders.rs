//! Expiry reminders sent (到期提醒) and the per-certificate SMS opt-out.
//!
//! A reminder is recorded with [`record`] in the transaction that delivers
//! its in-app message; the row's key (certificate, stage) is what keeps it
//! to once. Its SMS then moves `pending → sending → sent | failed` through
//! compare-and-set updates, so two processes never send the same one.

use certhall_domain::{AccountId, Timestamp};
use sqlx::Row;

use crate::{Result, Store, WriteTx};

/// A reminder as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderRow {
    /// The certificate's serial.
    pub serial: String,
    /// The stage's code (`d-90`, `d-30`, `d-7`, `d+1`).
    pub stage: String,
    /// Whose certificate.
    pub account_id: AccountId,
    /// When the in-app message went out.
    pub sent_at: Timestamp,
    /// The in-app message.
    pub message_id: i64,
    /// Where its SMS stands (`pending`, `sending`, `sent`, `failed`,
    /// `off`, `unknown`).
    pub sms_state: String,
    /// SMS sends tried.
    pub sms_tries: i64,
    /// When the SMS state last changed.
    pub sms_at: Option<Timestamp>,
    /// The provider's last error.
    pub sms_error: Option<String>,
}

const SELECT: &str = "SELECT serial, stage, account_id, sent_at, message_id, sms_state, \
                      sms_tries, sms_at, sms_error FROM expiry_reminders";

fn from_row(r: &sqlx::any::AnyRow) -> Result<ReminderRow> {
    Ok(ReminderRow {
        serial: r.try_get("serial")?,
        stage: r.try_get("stage")?,
        account_id: AccountId(r.try_get("account_id")?),
        sent_at: Timestamp::from_millis(r.try_get("sent_at")?),
        message_id: r.try_get("message_id")?,
        sms_state: r.try_get("sms_state")?,
        sms_tries: i64::from(r.try_get::<i32, _>("sms_tries")?),
        sms_at: r
            .try_get::<Option<i64>, _>("sms_at")?
            .map(Timestamp::from_millis),
        sms_error: r.try_get("sms_error")?,
    })
}

/// A reminder about to be recorded.
#[derive(Debug, Clone)]
pub struct NewReminder<'a> {
    /// The certificate's serial.
    pub serial: &'a str,
    /// The stage's code.
    pub stage: &'a str,
    /// Whose certificate.
    pub account_id: AccountId,
    /// The in-app message delivered with it.
    pub message_id: i64,
    /// `pending` (an SMS follows) or `off`.
    pub sms_state: &'a str,
}

/// Claims a reminder: true when this transaction is the first to record
/// (certificate, stage); false when it was sent before (the caller rolls
/// back its message).
pub async fn record(tx: &mut WriteTx, r: &NewReminder<'_>, now: Timestamp) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO expiry_reminders \
         (serial, stage, account_id, sent_at, message_id, sms_state, sms_tries) \
         VALUES ($1, $2, $3, $4, $5, $6, 0) ON CONFLICT (serial, stage) DO NOTHING",
    )
    .bind(r.serial)
    .bind(r.stage)
    .bind(r.account_id.0)
    .bind(now.millis())
    .bind(r.message_id)
    .bind(r.sms_state)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The stage codes already recorded for a certificate.
pub async fn stages_sent(store: &Store, serial: &str) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT stage FROM expiry_reminders WHERE serial = $1")
        .bind(serial)
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String, _>("stage")?))
        .collect()
}

/// A certificate's reminders, earliest first.
pub async fn of_certificate(store: &Store, serial: &str) -> Result<Vec<ReminderRow>> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE serial = $1 ORDER BY sent_at, stage"
    ))
    .bind(serial)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Every reminder, earliest first (tests and the operators' view).
pub async fn all(store: &Store) -> Result<Vec<ReminderRow>> {
    let rows = sqlx::query(&format!("{SELECT} ORDER BY sent_at, serial, stage"))
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

/// Reminders whose SMS is still to be sent, oldest first.
pub async fn sms_pending(store: &Store, limit: u32) -> Result<Vec<ReminderRow>> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE sms_state = 'pending' ORDER BY sent_at, serial, stage LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// A move of a reminder's SMS state.
#[derive(Debug, Clone, Copy)]
pub struct SmsMove<'a> {
    /// The state it must be in.
    pub from: &'a str,
    /// The state it goes to.
    pub to: &'a str,
    /// The provider's error, if any.
    pub error: Option<&'a str>,
    /// Whether this move counts a try.
    pub tried: bool,
}

/// Applies `m` to the reminder (certificate `serial`, `stage`); false when
/// it was not in `m.from` (another process moved it first).
pub async fn move_sms(
    store: &Store,
    serial: &str,
    stage: &str,
    m: SmsMove<'_>,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE expiry_reminders SET sms_state = $1, sms_error = $2, sms_at = $3, \
         sms_tries = sms_tries + $4 WHERE serial = $5 AND stage = $6 AND sms_state = $7",
    )
    .bind(m.to)
    .bind(m.error)
    .bind(now.millis())
    .bind(i32::from(m.tried))
    .bind(serial)
    .bind(stage)
    .bind(m.from)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sends left half-way by a process that died (`sending` since before
/// `before`) become `unknown`: they are not tried again. Returns how many.
pub async fn abandon_stale_sends(store: &Store, before: Timestamp, now: Timestamp) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE expiry_reminders SET sms_state = 'unknown', sms_at = $1 \
         WHERE sms_state = 'sending' AND sms_at < $2",
    )
    .bind(now.millis())
    .bind(before.millis())
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected())
}

/// True unless the owner turned SMS reminders off for the certificate.
pub async fn sms_enabled(store: &Store, serial: &str) -> Result<bool> {
    let row = sqlx::query("SELECT 1 AS off FROM reminder_sms_off WHERE serial = $1")
        .bind(serial)
        .fetch_optional(store.pool())
        .await?;
    Ok(row.is_none())
}

/// The same inside a write transaction.
pub async fn sms_enabled_tx(tx: &mut WriteTx, serial: &str) -> Result<bool> {
    let row = sqlx::query("SELECT 1 AS off FROM reminder_sms_off WHERE serial = $1")
        .bind(serial)
        .fetch_optional(tx.conn())
        .await?;
    Ok(row.is_none())
}

/// Turns SMS reminders on or off for a certificate; true when that
/// changed anything.
pub async fn set_sms_enabled(
    tx: &mut WriteTx,
    serial: &str,
    account: AccountId,
    enabled: bool,
    now: Timestamp,
) -> Result<bool> {
    let done = if enabled {
        sqlx::query("DELETE FROM reminder_sms_off WHERE serial = $1")
            .bind(serial)
            .execute(tx.conn())
            .await?
    } else {
        sqlx::query(
            "INSERT INTO reminder_sms_off (serial, account_id, since) VALUES ($1, $2, $3) \
             ON CONFLICT (serial) DO NOTHING",
        )
        .bind(serial)
        .bind(account.0)
        .bind(now.millis())
        .execute(tx.conn())
        .await?
    };
    Ok(done.rows_affected() == 1)
}
