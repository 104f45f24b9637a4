//! One-time challenges of 数字证书登录.

use certhall_domain::cert_login::ChallengeState;
use certhall_domain::Timestamp;
use sqlx::Row;

use crate::{u32_from, Result, Store, WriteTx};

/// A challenge about to be handed out.
#[derive(Debug, Clone)]
pub struct NewChallenge<'a> {
    /// The challenge text.
    pub challenge: &'a str,
    /// Whom it is bound to (hashed browser id, or `api`).
    pub binding: &'a str,
    /// The client's IP address.
    pub ip: Option<&'a str>,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
}

/// Records a new challenge.
pub async fn insert(tx: &mut WriteTx, c: &NewChallenge<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO login_challenges (challenge, binding, ip, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(c.challenge)
    .bind(c.binding)
    .bind(c.ip.map(str::to_owned))
    .bind(c.issued_at.millis())
    .bind(c.expires_at.millis())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Challenges issued to `ip` since `since`.
pub async fn issued_to_ip_since(tx: &mut WriteTx, ip: &str, since: Timestamp) -> Result<u32> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM login_challenges WHERE ip = $1 AND issued_at >= $2",
    )
    .bind(ip)
    .bind(since.millis())
    .fetch_one(tx.conn())
    .await?;
    Ok(u32_from(n))
}

/// The state of a challenge, if it exists.
pub async fn state(tx: &mut WriteTx, challenge: &str) -> Result<Option<ChallengeState>> {
    let row = sqlx::query(
        "SELECT binding, expires_at, used_at FROM login_challenges WHERE challenge = $1",
    )
    .bind(challenge)
    .fetch_optional(tx.conn())
    .await?;
    row.map(|r| -> Result<ChallengeState> {
        let used: Option<i64> = r.try_get("used_at")?;
        Ok(ChallengeState {
            binding: r.try_get("binding")?,
            expires_at: Timestamp::from_millis(r.try_get("expires_at")?),
            used: used.is_some(),
        })
    })
    .transpose()
}

/// Marks a challenge answered; false if it already was (compare-and-swap,
/// so of two concurrent answers exactly one wins).
pub async fn consume(tx: &mut WriteTx, challenge: &str, now: Timestamp) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE login_challenges SET used_at = $1 WHERE challenge = $2 AND used_at IS NULL",
    )
    .bind(now.millis())
    .bind(challenge)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes challenges that expired before `before`; returns how many.
pub async fn purge(store: &Store, before: Timestamp) -> Result<u64> {
    let done = sqlx::query("DELETE FROM login_challenges WHERE expires_at < $1")
        .bind(before.millis())
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected())
}
