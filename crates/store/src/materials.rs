//! An order's images (营业执照, 公章, 法人章, 法人手写签名, 授权委托书) and
//! the legal representative's SMS authorization requests.

use certhall_domain::materials::{AuthorizationOutcome, MaterialKind};
use certhall_domain::wizard::LicenseReading;
use certhall_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{u32_from, Result, Store, StoreError, WriteTx};

/// A stored image, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterialInfo {
    /// Which image.
    pub kind: MaterialKind,
    /// `png` or `jpeg`.
    pub format: String,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// SHA-256 of the stored bytes, hex.
    pub sha256: String,
    /// Size of the stored bytes.
    pub size: u64,
    /// The file name the browser sent (shown only, never used as a path).
    pub original_name: String,
    /// Fields read by OCR (licenses; stored as JSON).
    pub ocr: Option<LicenseReading>,
    /// When.
    pub uploaded_at: Timestamp,
}

/// An image to store.
#[derive(Debug, Clone)]
pub struct NewMaterial<'a> {
    /// Which image.
    pub kind: MaterialKind,
    /// `png` or `jpeg`.
    pub format: &'a str,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// SHA-256 of `bytes`, hex.
    pub sha256: &'a str,
    /// The re-encoded image.
    pub bytes: &'a [u8],
    /// The browser's file name (cut to 200 characters).
    pub original_name: &'a str,
}

const INFO_COLUMNS: &str =
    "kind, format, width, height, sha256, CAST(LENGTH(bytes) AS BIGINT) AS size, original_name, ocr, uploaded_at";

fn info_from_row(r: &AnyRow) -> Result<MaterialInfo> {
    let kind: String = r.try_get("kind")?;
    let ocr: Option<String> = r.try_get("ocr")?;
    let size: i64 = r.try_get("size")?;
    Ok(MaterialInfo {
        kind: kind
            .parse()
            .map_err(|()| StoreError::Corrupt(format!("material kind {kind:?}")))?,
        format: r.try_get("format")?,
        width: u32_from(r.try_get("width")?),
        height: u32_from(r.try_get("height")?),
        sha256: r.try_get("sha256")?,
        size: u64::try_from(size).unwrap_or(0),
        original_name: r.try_get("original_name")?,
        ocr: ocr
            .map(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| StoreError::Corrupt(format!("material ocr: {e}")))
            })
            .transpose()?,
        uploaded_at: Timestamp::from_millis(r.try_get("uploaded_at")?),
    })
}

/// Stores (or replaces) the order's image of `m.kind`; any OCR reading of
/// the image it replaces goes with it.
pub async fn put(tx: &mut WriteTx, order: i64, m: &NewMaterial<'_>, now: Timestamp) -> Result<()> {
    let name: String = m.original_name.chars().take(200).collect();
    sqlx::query(
        "INSERT INTO order_materials \
           (order_id, kind, format, width, height, sha256, bytes, original_name, ocr, uploaded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9) \
         ON CONFLICT (order_id, kind) DO UPDATE SET format = excluded.format, \
           width = excluded.width, height = excluded.height, sha256 = excluded.sha256, \
           bytes = excluded.bytes, original_name = excluded.original_name, ocr = NULL, \
           uploaded_at = excluded.uploaded_at",
    )
    .bind(order)
    .bind(m.kind.as_str())
    .bind(m.format)
    .bind(i64::from(m.width))
    .bind(i64::from(m.height))
    .bind(m.sha256)
    .bind(m.bytes.to_vec())
    .bind(name)
    .bind(now.millis())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Records what OCR read from the order's image of `kind`, if that image
/// is still the one with `sha256` (a newer upload wins).
pub async fn set_ocr(
    tx: &mut WriteTx,
    order: i64,
    kind: MaterialKind,
    sha256: &str,
    reading: &LicenseReading,
) -> Result<bool> {
    let fields = serde_json::to_string(reading)
        .map_err(|e| StoreError::Corrupt(format!("material ocr: {e}")))?;
    let done = sqlx::query(
        "UPDATE order_materials SET ocr = $1 WHERE order_id = $2 AND kind = $3 AND sha256 = $4",
    )
    .bind(fields)
    .bind(order)
    .bind(kind.as_str())
    .bind(sha256)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The order's images (without bytes), in [`MaterialKind::ALL`] order.
pub async fn of_order(store: &Store, order: i64) -> Result<Vec<MaterialInfo>> {
    let rows = sqlx::query(&format!(
        "SELECT {INFO_COLUMNS} FROM order_materials WHERE order_id = $1"
    ))
    .bind(order)
    .fetch_all(store.pool())
    .await?;
    let mut all = rows.iter().map(info_from_row).collect::<Result<Vec<_>>>()?;
    all.sort_by_key(|m| m.kind);
    Ok(all)
}

/// The kinds present, inside a write transaction (the submit check).
pub async fn kinds_tx(tx: &mut WriteTx, order: i64) -> Result<Vec<MaterialKind>> {
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM order_materials WHERE order_id = $1")
            .bind(order)
            .fetch_all(tx.conn())
            .await?;
    Ok(kinds.iter().filter_map(|k| k.parse().ok()).collect())
}

/// One image with its bytes.
pub async fn image(
    store: &Store,
    order: i64,
    kind: MaterialKind,
) -> Result<Option<(MaterialInfo, Vec<u8>)>> {
    let row = sqlx::query(&format!(
        "SELECT {INFO_COLUMNS}, bytes FROM order_materials WHERE order_id = $1 AND kind = $2"
    ))
    .bind(order)
    .bind(kind.as_str())
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| Ok((info_from_row(&r)?, r.try_get::<Vec<u8>, _>("bytes")?)))
        .transpose()
}

/// The licenses on an account's other orders, newest first (at most
/// `limit`): (the order, its enterprise name, the image without bytes).
pub async fn licenses_of_account(
    store: &Store,
    account: certhall_domain::AccountId,
    except_order: i64,
    limit: u32,
) -> Result<Vec<(i64, Option<String>, MaterialInfo)>> {
    // INFO_COLUMNS, qualified (orders has a `kind` too).
    let rows = sqlx::query(
        "SELECT m.order_id AS from_order, o.enterprise_name AS from_enterprise, \
                m.kind, m.format, m.width, m.height, m.sha256, \
                CAST(LENGTH(m.bytes) AS BIGINT) AS size, m.original_name, m.ocr, m.uploaded_at \
         FROM order_materials m JOIN orders o ON o.id = m.order_id \
         WHERE o.account_id = $1 AND m.kind = $2 AND m.order_id <> $3 \
         ORDER BY m.uploaded_at DESC, m.order_id DESC LIMIT $4",
    )
    .bind(account.0)
    .bind(MaterialKind::License.as_str())
    .bind(except_order)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("from_order")?,
                r.try_get("from_enterprise")?,
                info_from_row(r)?,
            ))
        })
        .collect()
}

/// A request for the legal representative's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRow {
    /// Its id.
    pub id: i64,
    /// The order.
    pub order_id: i64,
    /// The legal representative.
    pub name: String,
    /// Their resident ID number.
    pub id_number: String,
    /// Their phone.
    pub phone: String,
    /// When the SMS went out.
    pub requested_at: Timestamp,
    /// When answers stop counting.
    pub expires_at: Timestamp,
    /// Where the request stands.
    pub outcome: AuthorizationOutcome,
    /// When it was answered.
    pub answered_at: Option<Timestamp>,
}

impl AuthorizationRow {
    /// The legal representative's phone as shown (`139****9000`).
    pub fn phone_masked(&self) -> String {
        certhall_domain::Phone::parse(&self.phone)
            .map(|p| p.masked())
            .unwrap_or_default()
    }
}

const AUTH_COLUMNS: &str =
    "id, order_id, name, id_number, phone, requested_at, expires_at, outcome, answered_at";

fn auth_from_row(r: &AnyRow) -> Result<AuthorizationRow> {
    let answered: Option<i64> = r.try_get("answered_at")?;
    let outcome: String = r.try_get("outcome")?;
    Ok(AuthorizationRow {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        name: r.try_get("name")?,
        id_number: r.try_get("id_number")?,
        phone: r.try_get("phone")?,
        requested_at: Timestamp::from_millis(r.try_get("requested_at")?),
        expires_at: Timestamp::from_millis(r.try_get("expires_at")?),
        outcome: AuthorizationOutcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("authorization outcome {outcome:?}")))?,
        answered_at: answered.map(Timestamp::from_millis),
    })
}

/// A new request to store.
#[derive(Debug, Clone)]
pub struct NewAuthorization<'a> {
    /// The order.
    pub order_id: i64,
    /// The legal representative.
    pub name: &'a str,
    /// Their resident ID number.
    pub id_number: &'a str,
    /// Their phone.
    pub phone: &'a str,
    /// When the SMS went out.
    pub requested_at: Timestamp,
    /// When answers stop counting.
    pub expires_at: Timestamp,
}

/// Records a request about to be sent (`sending`): it counts towards the
/// limits from now on, whatever happens to the SMS.
pub async fn record_sending(
    tx: &mut WriteTx,
    a: &NewAuthorization<'_>,
) -> Result<AuthorizationRow> {
    let row = sqlx::query(&format!(
        "INSERT INTO legal_rep_authorizations \
           (order_id, name, id_number, phone, requested_at, expires_at, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6, 'sending') RETURNING {AUTH_COLUMNS}"
    ))
    .bind(a.order_id)
    .bind(a.name)
    .bind(a.id_number)
    .bind(a.phone)
    .bind(a.requested_at.millis())
    .bind(a.expires_at.millis())
    .fetch_one(tx.conn())
    .await?;
    auth_from_row(&row)
}

/// The SMS of request `id` went out and the order moved: it is the
/// order's pending request; earlier pending ones are withdrawn (only the
/// newest may decide the order). False if it was not `sending`.
pub async fn activate(tx: &mut WriteTx, id: i64, order: i64, now: Timestamp) -> Result<bool> {
    sqlx::query(
        "UPDATE legal_rep_authorizations SET outcome = 'withdrawn', answered_at = $1 \
         WHERE order_id = $2 AND outcome = 'pending'",
    )
    .bind(now.millis())
    .bind(order)
    .execute(tx.conn())
    .await?;
    let done = sqlx::query(
        "UPDATE legal_rep_authorizations SET outcome = 'pending' \
         WHERE id = $1 AND outcome = 'sending'",
    )
    .bind(id)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Request `id` did not go through (the SMS failed, or the order moved
/// meanwhile): `failed`, still counted by the limits.
pub async fn mark_failed(tx: &mut WriteTx, id: i64, now: Timestamp) -> Result<()> {
    sqlx::query(
        "UPDATE legal_rep_authorizations SET outcome = 'failed', answered_at = $1 \
         WHERE id = $2 AND outcome = 'sending'",
    )
    .bind(now.millis())
    .bind(id)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The pending requests sent to `phone`, newest first.
pub async fn pending_for_phone(tx: &mut WriteTx, phone: &str) -> Result<Vec<AuthorizationRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {AUTH_COLUMNS} FROM legal_rep_authorizations \
         WHERE outcome = 'pending' AND phone = $1 ORDER BY id DESC"
    ))
    .bind(phone)
    .fetch_all(tx.conn())
    .await?;
    rows.iter().map(auth_from_row).collect()
}

/// Requests sent in a period: for the order, and to the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentRequests {
    /// Sent for this order.
    pub for_order: usize,
    /// Sent to this phone (any order).
    pub for_phone: usize,
}

/// How many requests were made since `since` for `order` and to `phone`
/// (every attempt, sent or not). Inside the transaction that holds the
/// phone's lock, so concurrent submissions count each other.
pub async fn requests_since(
    tx: &mut WriteTx,
    order: i64,
    phone: &str,
    since: Timestamp,
) -> Result<RecentRequests> {
    let for_order: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM legal_rep_authorizations WHERE requested_at >= $1 AND order_id = $2",
    )
    .bind(since.millis())
    .bind(order)
    .fetch_one(tx.conn())
    .await?;
    let for_phone: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM legal_rep_authorizations WHERE requested_at >= $1 AND phone = $2",
    )
    .bind(since.millis())
    .bind(phone)
    .fetch_one(tx.conn())
    .await?;
    Ok(RecentRequests {
        for_order: usize::try_from(for_order).unwrap_or(usize::MAX),
        for_phone: usize::try_from(for_phone).unwrap_or(usize::MAX),
    })
}

/// Pending requests whose time ran out before `now`.
pub async fn pending_expired(
    store: &Store,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<AuthorizationRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {AUTH_COLUMNS} FROM legal_rep_authorizations \
         WHERE outcome = 'pending' AND expires_at <= $1 ORDER BY id LIMIT $2"
    ))
    .bind(now.millis())
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(auth_from_row).collect()
}

/// Closes a pending request with `outcome`; false if it was no longer
/// pending (answered or expired concurrently).
pub async fn close(
    tx: &mut WriteTx,
    id: i64,
    outcome: AuthorizationOutcome,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE legal_rep_authorizations SET outcome = $1, answered_at = $2 \
         WHERE id = $3 AND outcome = 'pending'",
    )
    .bind(outcome.as_str())
    .bind(now.millis())
    .bind(id)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The order's newest request, if any.
pub async fn latest_of_order(store: &Store, order: i64) -> Result<Option<AuthorizationRow>> {
    let row = sqlx::query(&format!(
        "SELECT {AUTH_COLUMNS} FROM legal_rep_authorizations WHERE order_id = $1 \
         ORDER BY id DESC LIMIT 1"
    ))
    .bind(order)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(auth_from_row).transpose()
}

/// Withdraws the order's pending request (the applicant took step 5 back
/// or cancelled): a later reply no longer counts.
pub async fn withdraw_pending(tx: &mut WriteTx, order: i64, now: Timestamp) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE legal_rep_authorizations SET outcome = 'withdrawn', answered_at = $1 \
         WHERE order_id = $2 AND outcome = 'pending'",
    )
    .bind(now.millis())
    .bind(order)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}
