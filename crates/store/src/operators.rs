//! Counter operators and their sessions (`0007_operators.sql`).
//!
//! Operator sessions are kept apart from applicants' (`sessions` references
//! accounts): a token from one table never authenticates against the
//! other. A session row starts at stage `password` (password right, SMS
//! code outstanding) and is replaced by an `active` row with a new token
//! when the code is right.

use certhall_domain::operator::{OperatorRole, PasswordTries, PasswordTry, TryOutcome, Username};
use certhall_domain::{OperatorId, Phone, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{u32_from, Result, Store, StoreError, WriteTx};

/// An operator as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRow {
    /// Its id (`operator:<id>` in the audit log).
    pub id: OperatorId,
    /// Login name.
    pub username: String,
    /// Where login codes go.
    pub phone: Phone,
    /// What they may do.
    pub role: OperatorRole,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Consecutive failures since the last success or lock.
    pub failed_logins: u32,
    /// Locked until then, if set and in the future.
    pub locked_until: Option<Timestamp>,
    /// When added.
    pub created_at: Timestamp,
    /// Holds the 制证 permission.
    pub producer: bool,
}

const COLUMNS: &str =
    "id, username, phone, role, password_hash, failed_logins, locked_until, created_at, producer";

fn operator_from_row(r: &AnyRow) -> Result<OperatorRow> {
    let phone: String = r.try_get("phone")?;
    let role: String = r.try_get("role")?;
    let locked: Option<i64> = r.try_get("locked_until")?;
    Ok(OperatorRow {
        id: OperatorId(r.try_get("id")?),
        username: r.try_get("username")?,
        phone: Phone::parse(&phone).map_err(|_| StoreError::Corrupt("operator phone".into()))?,
        role: role
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("operator role {role:?}")))?,
        password_hash: r.try_get("password_hash")?,
        failed_logins: u32_from(r.try_get("failed_logins")?),
        locked_until: locked.map(Timestamp::from_millis),
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        producer: r.try_get::<i64, _>("producer")? != 0,
    })
}

/// Grants or withdraws the 制证 permission; false if no such operator.
pub async fn set_producer(tx: &mut WriteTx, id: OperatorId, producer: bool) -> Result<bool> {
    let done = sqlx::query("UPDATE operators SET producer = $1 WHERE id = $2")
        .bind(i64::from(producer))
        .bind(id.0)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Adds an operator; returns its id. A taken username is a unique
/// violation ([`StoreError::is_unique_violation`]).
pub async fn create(
    tx: &mut WriteTx,
    username: &Username,
    phone: &Phone,
    role: OperatorRole,
    password_hash: &str,
    now: Timestamp,
) -> Result<OperatorId> {
    let id = sqlx::query_scalar(
        "INSERT INTO operators (username, phone, role, password_hash, failed_logins, created_at) \
         VALUES ($1, $2, $3, $4, 0, $5) RETURNING id",
    )
    .bind(username.as_str())
    .bind(phone.as_str())
    .bind(role.as_str())
    .bind(password_hash)
    .bind(now.millis())
    .fetch_one(tx.conn())
    .await?;
    Ok(OperatorId(id))
}

/// All operators, by username.
pub async fn list(store: &Store) -> Result<Vec<OperatorRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM operators ORDER BY username"
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(operator_from_row).collect()
}

/// One operator by username, outside any transaction.
pub async fn find(store: &Store, username: &str) -> Result<Option<OperatorRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM operators WHERE username = $1"
    ))
    .bind(username)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(operator_from_row).transpose()
}

/// One operator by username, inside a write transaction.
pub async fn by_username(tx: &mut WriteTx, username: &str) -> Result<Option<OperatorRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM operators WHERE username = $1"
    ))
    .bind(username)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(operator_from_row).transpose()
}

/// One operator by id, inside a write transaction.
pub async fn get_tx(tx: &mut WriteTx, id: OperatorId) -> Result<Option<OperatorRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM operators WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(tx.conn())
        .await?;
    row.as_ref().map(operator_from_row).transpose()
}

/// Stores the failure count and lock after a failed step.
pub async fn record_failure(
    tx: &mut WriteTx,
    id: OperatorId,
    failed_logins: u32,
    locked_until: Option<Timestamp>,
) -> Result<()> {
    sqlx::query(
        "UPDATE operators SET failed_logins = $2, \
                locked_until = COALESCE($3, locked_until) WHERE id = $1",
    )
    .bind(id.0)
    .bind(i64::from(failed_logins))
    .bind(locked_until.map(Timestamp::millis))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Clears the failure count and any lock (after a successful login).
pub async fn record_success(tx: &mut WriteTx, id: OperatorId) -> Result<()> {
    sqlx::query("UPDATE operators SET failed_logins = 0, locked_until = NULL WHERE id = $1")
        .bind(id.0)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// One operator by phone, inside a write transaction.
pub async fn by_phone(tx: &mut WriteTx, phone: &Phone) -> Result<Option<OperatorRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM operators WHERE phone = $1"))
        .bind(phone.as_str())
        .fetch_optional(tx.conn())
        .await?;
    row.as_ref().map(operator_from_row).transpose()
}

/// The password tries a new try for `username` from `ip` is judged by:
/// the username's since `user_since` (oldest first) and the failures
/// from `ip` since `ip_since`. Call under [`crate::LockKey::CounterLogin`].
pub async fn password_tries(
    tx: &mut WriteTx,
    username: &str,
    ip: Option<&str>,
    user_since: Timestamp,
    ip_since: Timestamp,
) -> Result<PasswordTries> {
    let rows = sqlx::query(
        "SELECT ip, at, outcome FROM counter_login_tries \
         WHERE username = $1 AND at >= $2 ORDER BY at, id",
    )
    .bind(username)
    .bind(user_since.millis())
    .fetch_all(tx.conn())
    .await?;
    let mut for_user = Vec::with_capacity(rows.len());
    for r in &rows {
        let outcome: String = r.try_get("outcome")?;
        for_user.push(PasswordTry {
            ip: r.try_get("ip")?,
            at: Timestamp::from_millis(r.try_get("at")?),
            outcome: TryOutcome::parse(&outcome)
                .ok_or_else(|| StoreError::Corrupt(format!("password try outcome {outcome:?}")))?,
        });
    }
    let (mut from_ip, mut oldest, mut last_from_ip) = (0, None, None);
    if let Some(ip) = ip {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM counter_login_tries \
             WHERE ip = $1 AND at >= $2 AND outcome IN ('pending', 'wrong')",
        )
        .bind(ip)
        .bind(ip_since.millis())
        .fetch_one(tx.conn())
        .await?;
        from_ip = r.try_get::<i64, _>("n")?;
        oldest = r.try_get::<Option<i64>, _>("oldest")?;
        let last: Option<String> = sqlx::query_scalar(
            "SELECT outcome FROM counter_login_tries WHERE ip = $1 \
             ORDER BY at DESC, id DESC LIMIT 1",
        )
        .bind(ip)
        .fetch_optional(tx.conn())
        .await?;
        last_from_ip = last.as_deref().and_then(TryOutcome::parse);
    }
    Ok(PasswordTries {
        for_user,
        from_ip: u32_from(from_ip),
        oldest_from_ip: oldest.map(Timestamp::from_millis),
        last_from_ip,
    })
}

/// Counts a password try; returns its id (for [`set_try_outcome`]).
/// Tries from before `prune_before` are deleted on the way.
pub async fn count_password_try(
    tx: &mut WriteTx,
    username: &str,
    ip: Option<&str>,
    outcome: TryOutcome,
    now: Timestamp,
    prune_before: Timestamp,
) -> Result<i64> {
    sqlx::query("DELETE FROM counter_login_tries WHERE at < $1")
        .bind(prune_before.millis())
        .execute(tx.conn())
        .await?;
    let id = sqlx::query_scalar(
        "INSERT INTO counter_login_tries (username, ip, at, outcome) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(username)
    .bind(ip.map(str::to_owned))
    .bind(now.millis())
    .bind(outcome.as_str())
    .fetch_one(tx.conn())
    .await?;
    Ok(id)
}

/// Writes the verdict of a counted try.
pub async fn set_try_outcome(tx: &mut WriteTx, id: i64, outcome: TryOutcome) -> Result<()> {
    sqlx::query("UPDATE counter_login_tries SET outcome = $2 WHERE id = $1")
        .bind(id)
        .bind(outcome.as_str())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// How far a session's login got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorStage {
    /// Password right; the SMS code is outstanding.
    Password,
    /// Logged in.
    Active,
}

impl OperatorStage {
    fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Active => "active",
        }
    }
}

/// A new operator session.
#[derive(Debug, Clone)]
pub struct NewOperatorSession<'a> {
    /// SHA-256 of the token.
    pub key: &'a str,
    /// Whose.
    pub operator_id: OperatorId,
    /// How far.
    pub stage: OperatorStage,
    /// Client IP.
    pub ip: Option<&'a str>,
    /// Client user agent (truncated).
    pub user_agent: Option<&'a str>,
}

/// Stores a session.
pub async fn create_session(
    tx: &mut WriteTx,
    s: &NewOperatorSession<'_>,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO operator_sessions \
           (id, operator_id, stage, created_at, last_seen_at, ip, user_agent) \
         VALUES ($1, $2, $3, $4, $4, $5, $6)",
    )
    .bind(s.key)
    .bind(s.operator_id.0)
    .bind(s.stage.as_str())
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

/// A stored session with its operator.
#[derive(Debug, Clone)]
pub struct OperatorSessionView {
    /// The operator.
    pub operator: OperatorRow,
    /// Stage `active`?
    pub active: bool,
    /// When the session began.
    pub created_at: Timestamp,
    /// Last recorded activity.
    pub last_seen_at: Timestamp,
}

const SESSION_SELECT: &str = "SELECT o.id, o.username, o.phone, o.role, o.password_hash, \
        o.failed_logins, o.locked_until, o.created_at, o.producer, \
        s.stage, s.created_at AS s_created_at, s.last_seen_at \
     FROM operator_sessions s JOIN operators o ON o.id = s.operator_id WHERE s.id = $1";

fn session_from_row(r: &AnyRow) -> Result<OperatorSessionView> {
    let stage: String = r.try_get("stage")?;
    Ok(OperatorSessionView {
        operator: operator_from_row(r)?,
        active: stage == OperatorStage::Active.as_str(),
        created_at: Timestamp::from_millis(r.try_get("s_created_at")?),
        last_seen_at: Timestamp::from_millis(r.try_get("last_seen_at")?),
    })
}

/// The session stored under `key`.
pub async fn session(store: &Store, key: &str) -> Result<Option<OperatorSessionView>> {
    let row = sqlx::query(SESSION_SELECT)
        .bind(key)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(session_from_row).transpose()
}

/// The same, inside a write transaction.
pub async fn session_tx(tx: &mut WriteTx, key: &str) -> Result<Option<OperatorSessionView>> {
    let row = sqlx::query(SESSION_SELECT)
        .bind(key)
        .fetch_optional(tx.conn())
        .await?;
    row.as_ref().map(session_from_row).transpose()
}

/// Records activity on a session.
pub async fn touch_session(store: &Store, key: &str, now: Timestamp) -> Result<()> {
    sqlx::query(
        "UPDATE operator_sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2",
    )
    .bind(key)
    .bind(now.millis())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Deletes a session; returns whether it existed.
pub async fn delete_session(tx: &mut WriteTx, key: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM operator_sessions WHERE id = $1")
        .bind(key)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes an expired session outside any other transaction.
pub async fn delete_session_now(store: &Store, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM operator_sessions WHERE id = $1")
        .bind(key)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Deletes operator sessions idle since before `idle_before` or created
/// before `created_before` (half-done logins go with the idle ones: their
/// code lives five minutes); returns how many.
pub async fn purge_sessions(
    store: &Store,
    idle_before: Timestamp,
    created_before: Timestamp,
) -> Result<u64> {
    let done =
        sqlx::query("DELETE FROM operator_sessions WHERE last_seen_at < $1 OR created_at < $2")
            .bind(idle_before.millis())
            .bind(created_before.millis())
            .execute(store.pool())
            .await?;
    Ok(done.rows_affected())
}
