//! Sessions, keyed by the SHA-256 of the client's token.
//!
//! The lookup that every logged-in request makes also returns the account's
//! phone and unread message count, so a page needs one query for the
//! header.

use certhall_domain::{AccountId, Phone, Timestamp};
use sqlx::Row;

use crate::{u32_from, Result, Store, StoreError, WriteTx};

pub use certhall_domain::session::SessionKind;

/// A new session to store.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// SHA-256 of the token.
    pub key: &'a str,
    /// Whose.
    pub account_id: AccountId,
    /// Cookie or bearer.
    pub kind: SessionKind,
    /// Client IP at login.
    pub ip: Option<&'a str>,
    /// Client user agent at login (truncated).
    pub user_agent: Option<&'a str>,
}

/// A stored session, joined with what every page header needs.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// Whose.
    pub account_id: AccountId,
    /// The account's phone.
    pub phone: Phone,
    /// When the session began.
    pub created_at: Timestamp,
    /// Last recorded activity.
    pub last_seen_at: Timestamp,
    /// Unread messages of the account.
    pub unread: u32,
}

/// Stores a new session.
pub async fn create(tx: &mut WriteTx, s: &NewSession<'_>, now: Timestamp) -> Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id, account_id, kind, created_at, last_seen_at, ip, user_agent) \
         VALUES ($1, $2, $3, $4, $4, $5, $6)",
    )
    .bind(s.key)
    .bind(s.account_id.0)
    .bind(s.kind.as_str())
    .bind(now.millis())
    .bind(s.ip.map(str::to_owned))
    .bind(
        s.user_agent
            .map(|ua| ua.chars().take(200).collect::<String>()),
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The session stored under `key`, with its account's header data.
pub async fn view(store: &Store, key: &str) -> Result<Option<SessionView>> {
    let row = sqlx::query(
        "SELECT s.account_id, a.phone, s.created_at, s.last_seen_at, \
                (SELECT COUNT(*) FROM messages m \
                  WHERE m.account_id = s.account_id AND m.read_at IS NULL) AS unread \
         FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE s.id = $1",
    )
    .bind(key)
    .fetch_optional(store.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let phone: String = row.try_get("phone")?;
    Ok(Some(SessionView {
        account_id: AccountId(row.try_get("account_id")?),
        phone: Phone::parse(&phone).map_err(|_| StoreError::Corrupt("session phone".into()))?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        last_seen_at: Timestamp::from_millis(row.try_get("last_seen_at")?),
        unread: u32_from(row.try_get("unread")?),
    }))
}

/// Records activity on a session.
pub async fn touch(store: &Store, key: &str, now: Timestamp) -> Result<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2")
        .bind(key)
        .bind(now.millis())
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Deletes a session; returns whether it existed.
pub async fn delete(tx: &mut WriteTx, key: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(key)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes an expired session outside any other transaction.
pub async fn delete_expired(store: &Store, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(key)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Deletes sessions idle since before `idle_before` or created before
/// `created_before`; returns how many.
pub async fn purge(
    store: &Store,
    idle_before: Timestamp,
    created_before: Timestamp,
) -> Result<u64> {
    let done = sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1 OR created_at < $2")
        .bind(idle_before.millis())
        .bind(created_before.millis())
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected())
}

/// Number of sessions stored under `key` (0 or 1), for tests and checks.
pub async fn exists(store: &Store, key: &str) -> Result<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE id = $1")
        .bind(key)
        .fetch_one(store.pool())
        .await?;
    Ok(n > 0)
}
