//! 制证 (step 8): production attempts and the keys handed out.

use certhall_domain::production::{AttemptState, KeyKind};
use certhall_domain::{AccountId, OperatorId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store, StoreError, WriteTx};

/// One production attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// Its id.
    pub id: i64,
    /// The order.
    pub order_id: i64,
    /// Who started it.
    pub operator_id: OperatorId,
    /// Their username (for the page).
    pub operator_name: String,
    /// Where it is.
    pub state: AttemptState,
    /// The key pair to generate.
    pub key_kind: KeyKind,
    /// The label the token gets.
    pub token_label: String,
    /// The token's serial once known (after initialisation).
    pub token_serial: Option<String>,
    /// The token was initialised by this attempt (or an earlier one of the
    /// order) with the PINs below.
    pub token_initialized: bool,
    /// The user PIN, sealed; empty once the attempt ended.
    pub pin_sealed: String,
    /// The SO PIN, sealed.
    pub so_pin_sealed: String,
    /// The key's id on the token (hex).
    pub key_id: Option<String>,
    /// The certificate issued for the key.
    pub certificate_serial: Option<String>,
    /// Where it failed.
    pub failed_stage: Option<String>,
    /// Why it failed (shown to the producer).
    pub failure: Option<String>,
    /// Started.
    pub started_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// Ended.
    pub finished_at: Option<Timestamp>,
}

const COLUMNS: &str = "id, order_id, operator_id, operator_name, state, key_kind, token_label, \
     token_serial, token_initialized, pin_sealed, so_pin_sealed, key_id, certificate_serial, \
     failed_stage, failure, started_at, updated_at, finished_at";

fn from_row(r: &AnyRow) -> Result<AttemptRow> {
    let state: String = r.try_get("state")?;
    let kind: String = r.try_get("key_kind")?;
    let finished: Option<i64> = r.try_get("finished_at")?;
    Ok(AttemptRow {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        operator_id: OperatorId(r.try_get("operator_id")?),
        operator_name: r.try_get("operator_name")?,
        state: AttemptState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("attempt state {state:?}")))?,
        key_kind: KeyKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("key kind {kind:?}")))?,
        token_label: r.try_get("token_label")?,
        token_serial: r.try_get("token_serial")?,
        token_initialized: r.try_get::<i64, _>("token_initialized")? != 0,
        pin_sealed: r.try_get("pin_sealed")?,
        so_pin_sealed: r.try_get("so_pin_sealed")?,
        key_id: r.try_get("key_id")?,
        certificate_serial: r.try_get("certificate_serial")?,
        failed_stage: r.try_get("failed_stage")?,
        failure: r.try_get("failure")?,
        started_at: Timestamp::from_millis(r.try_get("started_at")?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
        finished_at: finished.map(Timestamp::from_millis),
    })
}

/// What a new attempt starts with.
#[derive(Debug, Clone)]
pub struct NewAttempt<'a> {
    /// The order.
    pub order_id: i64,
    /// Who.
    pub operator_id: OperatorId,
    /// Their username.
    pub operator_name: &'a str,
    /// The key pair to generate.
    pub key_kind: KeyKind,
    /// The token's label.
    pub token_label: &'a str,
    /// The token, when it is already initialised (a retry on the same key).
    pub token_serial: Option<&'a str>,
    /// Whether the PINs below are already the token's.
    pub token_initialized: bool,
    /// Sealed user PIN.
    pub pin_sealed: &'a str,
    /// Sealed SO PIN.
    pub so_pin_sealed: &'a str,
}

/// Inserts a `started` attempt; `None` when the order has an open one
/// already (the unique index decides between concurrent producers).
pub async fn insert(tx: &mut WriteTx, a: &NewAttempt<'_>, now: Timestamp) -> Result<Option<i64>> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO production_attempts (order_id, operator_id, operator_name, state, key_kind, \
             token_label, token_serial, token_initialized, pin_sealed, so_pin_sealed, started_at, updated_at) \
         VALUES ($1, $2, $3, 'started', $4, $5, $6, $7, $8, $9, $10, $10) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(a.order_id)
    .bind(a.operator_id.0)
    .bind(a.operator_name)
    .bind(a.key_kind.as_str())
    .bind(a.token_label)
    .bind(a.token_serial)
    .bind(i64::from(a.token_initialized))
    .bind(a.pin_sealed)
    .bind(a.so_pin_sealed)
    .bind(now.millis())
    .fetch_optional(tx.conn())
    .await?;
    Ok(id)
}

/// One attempt.
pub async fn get(store: &Store, id: i64) -> Result<Option<AttemptRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM production_attempts WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The same, inside a write transaction.
pub async fn get_tx(tx: &mut WriteTx, id: i64) -> Result<Option<AttemptRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM production_attempts WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The order's attempts, oldest first.
pub async fn of_order(store: &Store, order: i64) -> Result<Vec<AttemptRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM production_attempts WHERE order_id = $1 ORDER BY id"
    ))
    .bind(order)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// The same, inside a write transaction.
pub async fn of_order_tx(tx: &mut WriteTx, order: i64) -> Result<Vec<AttemptRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM production_attempts WHERE order_id = $1 ORDER BY id"
    ))
    .bind(order)
    .fetch_all(tx.conn())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Open attempts last changed before `before` (the production job
/// abandons them).
pub async fn stale(store: &Store, before: Timestamp) -> Result<Vec<AttemptRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM production_attempts \
         WHERE state IN ('started', 'issued') AND updated_at < $1 ORDER BY id"
    ))
    .bind(before.millis())
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// What changes with a state move.
#[derive(Debug, Clone, Default)]
pub struct AttemptChange<'a> {
    /// The token's serial (after initialisation).
    pub token_serial: Option<&'a str>,
    /// The token now carries the attempt's PINs.
    pub token_initialized: Option<bool>,
    /// The key's id.
    pub key_id: Option<&'a str>,
    /// The issued certificate.
    pub certificate_serial: Option<&'a str>,
    /// Where it failed.
    pub failed_stage: Option<&'a str>,
    /// Why.
    pub failure: Option<&'a str>,
    /// Wipe the sealed user PIN.
    pub wipe_pin: bool,
    /// The attempt ends now.
    pub finished: bool,
    /// Move it only if it has not changed since (the job abandoning a
    /// stale attempt must not abandon one its producer just touched).
    pub unchanged_since: Option<Timestamp>,
}

/// Moves an attempt from `from` to `to` with `change` (compare-and-swap):
/// false when it was no longer in `from`.
pub async fn update(
    tx: &mut WriteTx,
    id: i64,
    from: AttemptState,
    to: AttemptState,
    change: &AttemptChange<'_>,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE production_attempts SET state = $1, updated_at = $2, \
             token_serial = COALESCE($3, token_serial), \
             token_initialized = COALESCE($4, token_initialized), \
             key_id = COALESCE($5, key_id), \
             certificate_serial = COALESCE($6, certificate_serial), \
             failed_stage = COALESCE($7, failed_stage), \
             failure = COALESCE($8, failure), \
             pin_sealed = CASE WHEN $9 = 1 THEN '' ELSE pin_sealed END, \
             finished_at = CASE WHEN $10 = 1 THEN $2 ELSE finished_at END \
         WHERE id = $11 AND state = $12 AND ($13 < 0 OR updated_at < $13)",
    )
    .bind(to.as_str())
    .bind(now.millis())
    .bind(change.token_serial)
    .bind(change.token_initialized.map(i64::from))
    .bind(change.key_id)
    .bind(change.certificate_serial)
    .bind(change.failed_stage)
    .bind(change.failure)
    .bind(i64::from(change.wipe_pin))
    .bind(i64::from(change.finished))
    .bind(id)
    .bind(from.as_str())
    .bind(change.unchanged_since.map_or(-1, Timestamp::millis))
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Wipes the sealed PINs kept on every attempt of an order (its key is
/// made: the SO PIN lives on in `ukeys`, the user PIN nowhere).
pub async fn wipe_pins_of_order(tx: &mut WriteTx, order: i64) -> Result<()> {
    sqlx::query(
        "UPDATE production_attempts SET pin_sealed = '', so_pin_sealed = '' WHERE order_id = $1",
    )
    .bind(order)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Certificates issued for production that are on no key and belong to
/// no open attempt, issued before `before`, not revoked: left behind by a
/// crash between issuing and recording. The production job revokes them.
/// A renewal's certificate carries its order too, but is the renewal's
/// business (`sweep_renewals`).
pub async fn orphaned_certificates(store: &Store, before: Timestamp) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT c.serial FROM certificates c \
         WHERE c.order_id IS NOT NULL AND c.issued_at < $1 \
           AND EXISTS (SELECT 1 FROM production_attempts pa WHERE pa.order_id = c.order_id) \
           AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial) \
           AND NOT EXISTS (SELECT 1 FROM ukeys u WHERE u.certificate_serial = c.serial) \
           AND NOT EXISTS (SELECT 1 FROM renewals rn WHERE rn.new_serial = c.serial) \
           AND NOT EXISTS (SELECT 1 FROM production_attempts pa \
                           WHERE pa.certificate_serial = c.serial AND pa.state IN ('started', 'issued')) \
         ORDER BY c.issued_at",
    )
    .bind(before.millis())
    .fetch_all(store.pool())
    .await?)
}

/// A key handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UkeyRow {
    /// The token's serial number (介质序列号).
    pub token_serial: String,
    /// The order it was made for.
    pub order_id: i64,
    /// The applicant's account.
    pub account_id: AccountId,
    /// Key model code.
    pub key_model: String,
    /// Key model name.
    pub key_model_name: String,
    /// 红 / 蓝 (stored colour code).
    pub colour: String,
    /// The certificate on it.
    pub certificate_serial: String,
    /// The SO PIN, sealed.
    pub so_pin_sealed: String,
    /// The next SO PIN, sealed, while an online PIN unlock that sets it is
    /// not confirmed (the token has one or the other).
    pub so_pin_pending: Option<String>,
    /// The attempt that made it.
    pub attempt_id: i64,
    /// When.
    pub produced_at: Timestamp,
}

const UKEY_INSERT_COLUMNS: &str =
    "token_serial, order_id, account_id, key_model, key_model_name, colour, \
     certificate_serial, so_pin_sealed, attempt_id, produced_at";

const UKEY_COLUMNS: &str =
    "token_serial, order_id, account_id, key_model, key_model_name, colour, \
     certificate_serial, so_pin_sealed, so_pin_pending, attempt_id, produced_at";

fn ukey_from_row(r: &AnyRow) -> Result<UkeyRow> {
    Ok(UkeyRow {
        token_serial: r.try_get("token_serial")?,
        order_id: r.try_get("order_id")?,
        account_id: AccountId(r.try_get("account_id")?),
        key_model: r.try_get("key_model")?,
        key_model_name: r.try_get("key_model_name")?,
        colour: r.try_get("colour")?,
        certificate_serial: r.try_get("certificate_serial")?,
        so_pin_sealed: r.try_get("so_pin_sealed")?,
        so_pin_pending: r.try_get("so_pin_pending")?,
        attempt_id: r.try_get("attempt_id")?,
        produced_at: Timestamp::from_millis(r.try_get("produced_at")?),
    })
}

/// Records a produced key; false if the token or the order has one.
pub async fn insert_ukey(tx: &mut WriteTx, k: &UkeyRow) -> Result<bool> {
    let done = sqlx::query(&format!(
        "INSERT INTO ukeys ({UKEY_INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT DO NOTHING"
    ))
    .bind(k.token_serial.as_str())
    .bind(k.order_id)
    .bind(k.account_id.0)
    .bind(k.key_model.as_str())
    .bind(k.key_model_name.as_str())
    .bind(k.colour.as_str())
    .bind(k.certificate_serial.as_str())
    .bind(k.so_pin_sealed.as_str())
    .bind(k.attempt_id)
    .bind(k.produced_at.millis())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The key made for an order.
pub async fn ukey_of_order(store: &Store, order: i64) -> Result<Option<UkeyRow>> {
    let row = sqlx::query(&format!(
        "SELECT {UKEY_COLUMNS} FROM ukeys WHERE order_id = $1"
    ))
    .bind(order)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(ukey_from_row).transpose()
}

/// The key record of a token.
pub async fn ukey_of_token(tx: &mut WriteTx, token_serial: &str) -> Result<Option<UkeyRow>> {
    let row = sqlx::query(&format!(
        "SELECT {UKEY_COLUMNS} FROM ukeys WHERE token_serial = $1"
    ))
    .bind(token_serial)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(ukey_from_row).transpose()
}

/// The key a certificate is on now, if CertHall made it.
pub async fn ukey_of_certificate(store: &Store, serial: &str) -> Result<Option<UkeyRow>> {
    let row = sqlx::query(&format!(
        "SELECT {UKEY_COLUMNS} FROM ukeys WHERE certificate_serial = $1"
    ))
    .bind(serial)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(ukey_from_row).transpose()
}

/// A renewal wrote a new certificate onto the token.
pub async fn set_ukey_certificate(
    tx: &mut WriteTx,
    token_serial: &str,
    serial: &str,
) -> Result<()> {
    sqlx::query("UPDATE ukeys SET certificate_serial = $1 WHERE token_serial = $2")
        .bind(serial)
        .bind(token_serial)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Records the next SO PIN (sealed) of a token while its rotation is
/// under way.
pub async fn set_so_pin_pending(tx: &mut WriteTx, token_serial: &str, sealed: &str) -> Result<()> {
    sqlx::query("UPDATE ukeys SET so_pin_pending = $1 WHERE token_serial = $2")
        .bind(sealed)
        .bind(token_serial)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The rotation is done: the pending SO PIN is the token's.
pub async fn promote_so_pin(tx: &mut WriteTx, token_serial: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE ukeys SET so_pin_sealed = so_pin_pending, so_pin_pending = NULL \
         WHERE token_serial = $1 AND so_pin_pending IS NOT NULL",
    )
    .bind(token_serial)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An account's keys, newest first.
pub async fn ukeys_of_account(store: &Store, account: AccountId) -> Result<Vec<UkeyRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {UKEY_COLUMNS} FROM ukeys WHERE account_id = $1 ORDER BY produced_at DESC"
    ))
    .bind(account.0)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(ukey_from_row).collect()
}

/// The order this token belongs to, if any: the order whose key it is,
/// or an order still in production whose attempt initialised it (an
/// order made on another token no longer claims it).
pub async fn token_owner(tx: &mut WriteTx, token_serial: &str) -> Result<Option<i64>> {
    let handed_out: Option<i64> =
        sqlx::query_scalar("SELECT order_id FROM ukeys WHERE token_serial = $1")
            .bind(token_serial)
            .fetch_optional(tx.conn())
            .await?;
    if handed_out.is_some() {
        return Ok(handed_out);
    }
    Ok(sqlx::query_scalar(
        "SELECT pa.order_id FROM production_attempts pa \
         WHERE pa.token_serial = $1 AND pa.token_initialized = 1 \
           AND NOT EXISTS (SELECT 1 FROM ukeys u WHERE u.order_id = pa.order_id) \
         ORDER BY pa.id DESC LIMIT 1",
    )
    .bind(token_serial)
    .fetch_optional(tx.conn())
    .await?)
}
