//! 证书更新 (renewals onto the same token) and PIN 解锁 (PIN unlocks): the
//! applicant's own work on a key they hold.

use certhall_domain::renewal::{RenewalState, UnlockState};
use certhall_domain::{AccountId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store, StoreError, WriteTx};

/// One renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalRow {
    /// Its id.
    pub id: i64,
    /// Whose.
    pub account_id: AccountId,
    /// The certificate renewed.
    pub old_serial: String,
    /// The token both are on.
    pub token_serial: String,
    /// Where it is.
    pub state: RenewalState,
    /// The new key's id on the token (hex), once generated.
    pub key_id: Option<String>,
    /// The new certificate, once issued.
    pub new_serial: Option<String>,
    /// Why it failed.
    pub failure: Option<String>,
    /// Started.
    pub started_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// Ended.
    pub finished_at: Option<Timestamp>,
    /// The 证书变更 order whose certificate this writes (none for a
    /// renewal).
    pub order_id: Option<i64>,
}

const COLUMNS: &str = "id, account_id, old_serial, token_serial, state, key_id, new_serial, \
     failure, started_at, updated_at, finished_at, order_id";

fn from_row(r: &AnyRow) -> Result<RenewalRow> {
    let state: String = r.try_get("state")?;
    let finished: Option<i64> = r.try_get("finished_at")?;
    Ok(RenewalRow {
        id: r.try_get("id")?,
        account_id: AccountId(r.try_get("account_id")?),
        old_serial: r.try_get("old_serial")?,
        token_serial: r.try_get("token_serial")?,
        state: RenewalState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("renewal state {state:?}")))?,
        key_id: r.try_get("key_id")?,
        new_serial: r.try_get("new_serial")?,
        failure: r.try_get("failure")?,
        started_at: Timestamp::from_millis(r.try_get("started_at")?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
        finished_at: finished.map(Timestamp::from_millis),
        order_id: r.try_get("order_id")?,
    })
}

/// Opens a renewal (for the 证书变更 order `order`, if any); `None` when
/// the certificate has an open one.
pub async fn insert(
    tx: &mut WriteTx,
    account: AccountId,
    old_serial: &str,
    token_serial: &str,
    order: Option<i64>,
    now: Timestamp,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO renewals \
         (account_id, old_serial, token_serial, state, started_at, updated_at, order_id) \
         VALUES ($1, $2, $3, $4, $5, $5, $6) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(account.0)
    .bind(old_serial)
    .bind(token_serial)
    .bind(RenewalState::Started.as_str())
    .bind(now.millis())
    .bind(order)
    .fetch_optional(tx.conn())
    .await?)
}

/// One renewal.
pub async fn get(store: &Store, id: i64) -> Result<Option<RenewalRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM renewals WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Open renewals untouched since `before`, oldest first.
pub async fn stale(store: &Store, before: Timestamp) -> Result<Vec<RenewalRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM renewals \
         WHERE state IN ('started', 'issued') AND updated_at < $1 ORDER BY id"
    ))
    .bind(before.millis())
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// The open renewal of a certificate, if any.
pub async fn open_of(tx: &mut WriteTx, old_serial: &str) -> Result<Option<RenewalRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM renewals WHERE old_serial = $1 AND state IN ('started', 'issued')"
    ))
    .bind(old_serial)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The open key write of an order (a change, a paid renewal), if any.
pub async fn open_of_order(tx: &mut WriteTx, order: i64) -> Result<Option<RenewalRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM renewals WHERE order_id = $1 AND state IN ('started', 'issued')"
    ))
    .bind(order)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// An account's completed renewals (old serial, new serial, token).
pub async fn completed_of_account(
    store: &Store,
    account: AccountId,
) -> Result<Vec<(String, String, String)>> {
    let rows = sqlx::query(
        "SELECT old_serial, new_serial, token_serial FROM renewals \
         WHERE account_id = $1 AND state = 'completed' ORDER BY id",
    )
    .bind(account.0)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("old_serial")?,
                r.try_get::<Option<String>, _>("new_serial")?
                    .unwrap_or_default(),
                r.try_get("token_serial")?,
            ))
        })
        .collect()
}

/// A change of a renewal.
#[derive(Debug, Clone, Default)]
pub struct RenewalChange<'a> {
    /// The new key's id.
    pub key_id: Option<&'a str>,
    /// The new certificate.
    pub new_serial: Option<&'a str>,
    /// Why it failed.
    pub failure: Option<&'a str>,
    /// It ends.
    pub finished: bool,
}

/// Moves a renewal from `from` to `to` (compare and set); false if it was
/// not in `from`.
pub async fn update(
    tx: &mut WriteTx,
    id: i64,
    from: RenewalState,
    to: RenewalState,
    change: &RenewalChange<'_>,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE renewals SET state = $1, key_id = COALESCE($2, key_id), \
         new_serial = COALESCE($3, new_serial), failure = COALESCE($4, failure), \
         updated_at = $5, finished_at = CASE WHEN $6 = 1 THEN $5 ELSE finished_at END \
         WHERE id = $7 AND state = $8",
    )
    .bind(to.as_str())
    .bind(change.key_id)
    .bind(change.new_serial)
    .bind(change.failure)
    .bind(now.millis())
    .bind(i64::from(change.finished))
    .bind(id)
    .bind(from.as_str())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One PIN unlock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlockRow {
    /// Its id.
    pub id: i64,
    /// Whose.
    pub account_id: AccountId,
    /// The token.
    pub token_serial: String,
    /// Where it is.
    pub state: UnlockState,
    /// Why it failed.
    pub failure: Option<String>,
    /// Started.
    pub started_at: Timestamp,
    /// Ended.
    pub finished_at: Option<Timestamp>,
}

const UNLOCK_COLUMNS: &str =
    "id, account_id, token_serial, state, failure, started_at, finished_at";

fn unlock_from_row(r: &AnyRow) -> Result<UnlockRow> {
    let state: String = r.try_get("state")?;
    let finished: Option<i64> = r.try_get("finished_at")?;
    Ok(UnlockRow {
        id: r.try_get("id")?,
        account_id: AccountId(r.try_get("account_id")?),
        token_serial: r.try_get("token_serial")?,
        state: UnlockState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unlock state {state:?}")))?,
        failure: r.try_get("failure")?,
        started_at: Timestamp::from_millis(r.try_get("started_at")?),
        finished_at: finished.map(Timestamp::from_millis),
    })
}

/// Records a release; `None` when the token has an open one.
pub async fn insert_unlock(
    tx: &mut WriteTx,
    account: AccountId,
    token_serial: &str,
    now: Timestamp,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO pin_unlocks (account_id, token_serial, state, started_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(account.0)
    .bind(token_serial)
    .bind(UnlockState::Released.as_str())
    .bind(now.millis())
    .fetch_optional(tx.conn())
    .await?)
}

/// One unlock.
pub async fn get_unlock(tx: &mut WriteTx, id: i64) -> Result<Option<UnlockRow>> {
    let row = sqlx::query(&format!(
        "SELECT {UNLOCK_COLUMNS} FROM pin_unlocks WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(unlock_from_row).transpose()
}

/// The open unlock of a token, if any.
pub async fn open_unlock_of(tx: &mut WriteTx, token_serial: &str) -> Result<Option<UnlockRow>> {
    let row = sqlx::query(&format!(
        "SELECT {UNLOCK_COLUMNS} FROM pin_unlocks WHERE token_serial = $1 AND state = 'released'"
    ))
    .bind(token_serial)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(unlock_from_row).transpose()
}

/// The unlocks of a token, newest first.
pub async fn unlocks_of_token(store: &Store, token_serial: &str) -> Result<Vec<UnlockRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {UNLOCK_COLUMNS} FROM pin_unlocks WHERE token_serial = $1 ORDER BY id DESC"
    ))
    .bind(token_serial)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(unlock_from_row).collect()
}

/// Ends an unlock (compare and set from `released`).
pub async fn finish_unlock(
    tx: &mut WriteTx,
    id: i64,
    to: UnlockState,
    failure: Option<&str>,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE pin_unlocks SET state = $1, failure = $2, finished_at = $3 \
         WHERE id = $4 AND state = 'released'",
    )
    .bind(to.as_str())
    .bind(failure)
    .bind(now.millis())
    .bind(id)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}
