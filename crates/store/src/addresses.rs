//! 收货地址簿: each account's delivery addresses, one of them the default.

use certhall_domain::checkout::DeliveryAddress;
use certhall_domain::{AccountId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store, WriteTx};

/// An address as stored (the division by its code; the domain reads it
/// back through the bundled table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRow {
    /// Its id.
    pub id: i64,
    /// 收货人.
    pub recipient: String,
    /// Mobile.
    pub phone: String,
    /// GB/T 2260 code of the county-level division.
    pub division_code: i64,
    /// 详细地址.
    pub street: String,
    /// The account's default.
    pub is_default: bool,
    /// Last changed.
    pub updated_at: Timestamp,
}

const COLUMNS: &str = "id, recipient, phone, division_code, street, is_default, updated_at";

fn from_row(r: &AnyRow) -> Result<AddressRow> {
    let d: i64 = r.try_get("is_default")?;
    Ok(AddressRow {
        id: r.try_get("id")?,
        recipient: r.try_get("recipient")?,
        phone: r.try_get("phone")?,
        division_code: r.try_get("division_code")?,
        street: r.try_get("street")?,
        is_default: d != 0,
        updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
    })
}

/// An account's addresses, the default first, then the most recent.
pub async fn list(store: &Store, account: AccountId) -> Result<Vec<AddressRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM addresses WHERE account_id = $1 \
         ORDER BY is_default DESC, updated_at DESC, id DESC"
    ))
    .bind(account.0)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// One of the account's addresses.
pub async fn get(store: &Store, account: AccountId, id: i64) -> Result<Option<AddressRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM addresses WHERE account_id = $1 AND id = $2"
    ))
    .bind(account.0)
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// How many addresses the account has.
pub async fn count(tx: &mut WriteTx, account: AccountId) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM addresses WHERE account_id = $1")
            .bind(account.0)
            .fetch_one(tx.conn())
            .await?,
    )
}

/// The id of the account's address equal to `a`, if it has one.
pub async fn find_same(
    tx: &mut WriteTx,
    account: AccountId,
    a: &DeliveryAddress,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM addresses WHERE account_id = $1 AND recipient = $2 AND phone = $3 \
         AND division_code = $4 AND street = $5",
    )
    .bind(account.0)
    .bind(a.recipient.as_str())
    .bind(a.phone.as_str())
    .bind(i64::from(a.division.code()))
    .bind(a.street.as_str())
    .fetch_optional(tx.conn())
    .await?)
}

/// Adds an address; returns its id.
pub async fn insert(
    tx: &mut WriteTx,
    account: AccountId,
    a: &DeliveryAddress,
    is_default: bool,
    now: Timestamp,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO addresses (account_id, recipient, phone, division_code, street, is_default, \
                                created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
    )
    .bind(account.0)
    .bind(a.recipient.as_str())
    .bind(a.phone.as_str())
    .bind(i64::from(a.division.code()))
    .bind(a.street.as_str())
    .bind(i64::from(is_default))
    .bind(now.millis())
    .fetch_one(tx.conn())
    .await?)
}

/// Replaces an address; false if the account has no such address.
pub async fn update(
    tx: &mut WriteTx,
    account: AccountId,
    id: i64,
    a: &DeliveryAddress,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE addresses SET recipient = $1, phone = $2, division_code = $3, street = $4, \
                updated_at = $5 WHERE account_id = $6 AND id = $7",
    )
    .bind(a.recipient.as_str())
    .bind(a.phone.as_str())
    .bind(i64::from(a.division.code()))
    .bind(a.street.as_str())
    .bind(now.millis())
    .bind(account.0)
    .bind(id)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Makes `id` the account's only default; false if no such address.
pub async fn set_default(tx: &mut WriteTx, account: AccountId, id: i64) -> Result<bool> {
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT id FROM addresses WHERE account_id = $1 AND id = $2")
            .bind(account.0)
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
    if exists.is_none() {
        return Ok(false);
    }
    sqlx::query("UPDATE addresses SET is_default = CASE WHEN id = $1 THEN 1 ELSE 0 END WHERE account_id = $2")
        .bind(id)
        .bind(account.0)
        .execute(tx.conn())
        .await?;
    Ok(true)
}

/// Deletes an address; false if the account has no such address. When it
/// was the default, the most recent remaining address becomes the default.
pub async fn delete(tx: &mut WriteTx, account: AccountId, id: i64) -> Result<bool> {
    let was_default: Option<i64> = sqlx::query_scalar(
        "DELETE FROM addresses WHERE account_id = $1 AND id = $2 RETURNING is_default",
    )
    .bind(account.0)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some(was_default) = was_default else {
        return Ok(false);
    };
    if was_default != 0 {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM addresses WHERE account_id = $1 ORDER BY updated_at DESC, id DESC LIMIT 1",
        )
        .bind(account.0)
        .fetch_optional(tx.conn())
        .await?;
        if let Some(next) = next {
            set_default(tx, account, next).await?;
        }
    }
    Ok(true)
}
