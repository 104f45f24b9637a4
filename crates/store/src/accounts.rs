//! Accounts (one per phone).

use certhall_domain::account::Account;
use certhall_domain::{AccountId, Phone, Timestamp};
use sqlx::Row;

use crate::{Result, Store, StoreError, WriteTx};

fn account_from_row(row: &sqlx::any::AnyRow) -> Result<Account> {
    let phone: String = row.try_get("phone")?;
    Ok(Account {
        id: AccountId(row.try_get("id")?),
        phone: Phone::parse(&phone)
            .map_err(|_| StoreError::Corrupt(format!("account phone {phone:?}")))?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

/// The account with this phone, inside a write transaction.
pub async fn find_by_phone(tx: &mut WriteTx, phone: &Phone) -> Result<Option<Account>> {
    let row = sqlx::query("SELECT id, phone, created_at FROM accounts WHERE phone = $1")
        .bind(phone.as_str())
        .fetch_optional(tx.conn())
        .await?;
    row.as_ref().map(account_from_row).transpose()
}

/// Creates an account for `phone`.
pub async fn create(tx: &mut WriteTx, phone: &Phone, now: Timestamp) -> Result<AccountId> {
    let id: i64 =
        sqlx::query_scalar("INSERT INTO accounts (phone, created_at) VALUES ($1, $2) RETURNING id")
            .bind(phone.as_str())
            .bind(now.millis())
            .fetch_one(tx.conn())
            .await?;
    Ok(AccountId(id))
}

/// The id of the account with this phone, outside any transaction (for
/// binding certificates to an account).
pub async fn id_by_phone(store: &Store, phone: &Phone) -> Result<Option<AccountId>> {
    let id: Option<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE phone = $1")
        .bind(phone.as_str())
        .fetch_optional(store.pool())
        .await?;
    Ok(id.map(AccountId))
}

/// One account by id, outside any transaction (the counter checks whose
/// order it reviews).
pub async fn get(store: &Store, id: AccountId) -> Result<Option<Account>> {
    let row = sqlx::query("SELECT id, phone, created_at FROM accounts WHERE id = $1")
        .bind(id.0)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(account_from_row).transpose()
}
