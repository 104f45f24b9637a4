//! Login codes sent by SMS. Send limits are counted from these rows.

use certhall_domain::otp::{IssuedCode, SendHistory};
use certhall_domain::{Phone, Timestamp};
use sqlx::Row;

use crate::{u32_from, Result, Store, WriteTx};

/// What has been sent to `phone` and from `ip` since `window_start`, and
/// when the last code for `purpose` went to `phone` (the resend cooldown
/// is per purpose; the hourly limits count every code).
pub async fn send_history(
    tx: &mut WriteTx,
    phone: &Phone,
    purpose: &str,
    ip: Option<&str>,
    window_start: Timestamp,
) -> Result<SendHistory> {
    let row = sqlx::query(
        "SELECT MAX(CASE WHEN purpose = $3 THEN sent_at END) AS last_sent, \
                COALESCE(SUM(CASE WHEN sent_at >= $2 THEN 1 ELSE 0 END), 0) AS in_window \
         FROM login_codes WHERE phone = $1",
    )
    .bind(phone.as_str())
    .bind(window_start.millis())
    .bind(purpose)
    .fetch_one(tx.conn())
    .await?;
    let last_sent: Option<i64> = row.try_get("last_sent")?;
    let phone_count: i64 = row.try_get("in_window")?;
    let ip_count: i64 = match ip {
        Some(ip) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM login_codes WHERE ip = $1 AND sent_at >= $2")
                .bind(ip)
                .bind(window_start.millis())
                .fetch_one(tx.conn())
                .await?
        }
        None => 0,
    };
    Ok(SendHistory {
        last_sent_to_phone: last_sent.map(Timestamp::from_millis),
        sent_to_phone_in_window: u32_from(phone_count),
        sent_from_ip_in_window: u32_from(ip_count),
    })
}

/// The purpose of login codes.
pub const LOGIN: &str = "login";

/// Records a login code about to be sent; returns its id.
pub async fn insert(
    tx: &mut WriteTx,
    phone: &Phone,
    code_hash: &[u8],
    ip: Option<&str>,
    now: Timestamp,
) -> Result<i64> {
    insert_for(tx, phone, LOGIN, code_hash, ip, now).await
}

/// Records a code for `purpose` (`login`, or an operation such as
/// `revoke:0A1B…`) about to be sent; returns its id.
pub async fn insert_for(
    tx: &mut WriteTx,
    phone: &Phone,
    purpose: &str,
    code_hash: &[u8],
    ip: Option<&str>,
    now: Timestamp,
) -> Result<i64> {
    let id = sqlx::query_scalar(
        "INSERT INTO login_codes (phone, code_hash, ip, sent_at, attempts, purpose) \
         VALUES ($1, $2, $3, $4, 0, $5) RETURNING id",
    )
    .bind(phone.as_str())
    .bind(code_hash.to_vec())
    .bind(ip.map(str::to_owned))
    .bind(now.millis())
    .bind(purpose)
    .fetch_one(tx.conn())
    .await?;
    Ok(id)
}

/// Removes a code that could not be delivered, so it neither counts nor works.
pub async fn delete(tx: &mut WriteTx, id: i64) -> Result<()> {
    sqlx::query("DELETE FROM login_codes WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The latest login code sent to `phone`, with its id.
pub async fn latest(tx: &mut WriteTx, phone: &Phone) -> Result<Option<(i64, IssuedCode)>> {
    latest_for(tx, phone, LOGIN).await
}

/// The latest code for `purpose` sent to `phone`, with its id.
pub async fn latest_for(
    tx: &mut WriteTx,
    phone: &Phone,
    purpose: &str,
) -> Result<Option<(i64, IssuedCode)>> {
    let row = sqlx::query(
        "SELECT id, code_hash, sent_at, attempts, consumed_at FROM login_codes \
         WHERE phone = $1 AND purpose = $2 ORDER BY sent_at DESC, id DESC LIMIT 1",
    )
    .bind(phone.as_str())
    .bind(purpose)
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let consumed_at: Option<i64> = row.try_get("consumed_at")?;
    Ok(Some((
        row.try_get("id")?,
        IssuedCode {
            code_hash: row.try_get("code_hash")?,
            sent_at: Timestamp::from_millis(row.try_get("sent_at")?),
            attempts: u32_from(row.try_get("attempts")?),
            consumed_at: consumed_at.map(Timestamp::from_millis),
        },
    )))
}

/// Counts one wrong try, if the code is still as seen (compare-and-swap).
/// Returns false when another request changed it first.
pub async fn count_wrong_try(tx: &mut WriteTx, id: i64, attempts_seen: u32) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE login_codes SET attempts = attempts + 1 \
         WHERE id = $1 AND attempts = $2 AND consumed_at IS NULL",
    )
    .bind(id)
    .bind(i64::from(attempts_seen))
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the code used, if it still is unused with the attempts seen
/// (compare-and-swap). Returns false when it was used or changed meanwhile.
pub async fn consume(
    tx: &mut WriteTx,
    id: i64,
    attempts_seen: u32,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE login_codes SET consumed_at = $3 \
         WHERE id = $1 AND attempts = $2 AND consumed_at IS NULL",
    )
    .bind(id)
    .bind(i64::from(attempts_seen))
    .bind(now.millis())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// When the latest code went to `phone`, read outside any transaction.
pub async fn last_sent(store: &Store, phone: &Phone) -> Result<Option<Timestamp>> {
    let last: Option<i64> =
        sqlx::query_scalar("SELECT MAX(sent_at) FROM login_codes WHERE phone = $1")
            .bind(phone.as_str())
            .fetch_one(store.pool())
            .await?;
    Ok(last.map(Timestamp::from_millis))
}
