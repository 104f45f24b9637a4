//! In-app messages.

use certhall_domain::message::{Message, MessageId, MessageKind, NewMessage};
use certhall_domain::{AccountId, OrderId, Timestamp};
use sqlx::Row;

use crate::{u32_from, Result, Store, StoreError, WriteTx};

fn message_from_row(row: &sqlx::any::AnyRow) -> Result<Message> {
    let kind: String = row.try_get("kind")?;
    let read_at: Option<i64> = row.try_get("read_at")?;
    Ok(Message {
        id: MessageId(row.try_get("id")?),
        account_id: AccountId(row.try_get("account_id")?),
        kind: MessageKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("message kind {kind:?}")))?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        read_at: read_at.map(Timestamp::from_millis),
        order_id: row.try_get::<Option<i64>, _>("order_id")?.map(OrderId),
    })
}

/// Delivers a message to an account.
pub async fn insert(
    tx: &mut WriteTx,
    account: AccountId,
    m: &NewMessage,
    now: Timestamp,
) -> Result<MessageId> {
    let id = sqlx::query_scalar(
        "INSERT INTO messages (account_id, kind, title, body, created_at, order_id) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(account.0)
    .bind(m.kind.as_str())
    .bind(m.title.as_str())
    .bind(m.body.as_str())
    .bind(now.millis())
    .bind(m.order_id.map(|o| o.0))
    .fetch_one(tx.conn())
    .await?;
    Ok(MessageId(id))
}

/// A page of an account's messages, newest first.
pub async fn list(
    store: &Store,
    account: AccountId,
    limit: u32,
    offset: u32,
) -> Result<Vec<Message>> {
    let rows = sqlx::query(
        "SELECT id, account_id, kind, title, body, created_at, read_at, order_id FROM messages \
         WHERE account_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
    )
    .bind(account.0)
    .bind(i64::from(limit))
    .bind(i64::from(offset))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(message_from_row).collect()
}

/// A page of an account's messages, newest first, with the account's total
/// and unread counts from the same query (two uncorrelated subqueries, each
/// evaluated once, index-only). Window functions would be shorter but make
/// SQLite read and sort every message of the account before the LIMIT
/// (measured: 10-25x slower at 2,000 messages, docs/benchmarks.md). The
/// counts are `None` when the page is past the end.
pub async fn page_with_counts(
    store: &Store,
    account: AccountId,
    limit: u32,
    offset: u32,
) -> Result<(Vec<Message>, Option<(u32, u32)>)> {
    let rows = sqlx::query(
        "SELECT id, account_id, kind, title, body, created_at, read_at, order_id, \
                (SELECT COUNT(*) FROM messages t WHERE t.account_id = $1) AS total, \
                (SELECT COUNT(*) FROM messages u WHERE u.account_id = $1 AND u.read_at IS NULL) AS unread \
         FROM messages WHERE account_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
    )
    .bind(account.0)
    .bind(i64::from(limit))
    .bind(i64::from(offset))
    .fetch_all(store.pool())
    .await?;
    let counts = match rows.first() {
        Some(r) => Some((
            u32_from(r.try_get("total")?),
            u32_from(r.try_get("unread")?),
        )),
        None => None,
    };
    let items = rows.iter().map(message_from_row).collect::<Result<_>>()?;
    Ok((items, counts))
}

/// How many messages an account has, and how many are unread.
pub async fn counts(store: &Store, account: AccountId) -> Result<(u32, u32)> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS total, \
                COALESCE(SUM(CASE WHEN read_at IS NULL THEN 1 ELSE 0 END), 0) AS unread \
         FROM messages WHERE account_id = $1",
    )
    .bind(account.0)
    .fetch_one(store.pool())
    .await?;
    Ok((
        u32_from(row.try_get("total")?),
        u32_from(row.try_get("unread")?),
    ))
}

/// Whether the account has this message, and whether it is unread.
pub async fn state(tx: &mut WriteTx, account: AccountId, id: MessageId) -> Result<Option<bool>> {
    let read_at: Option<Option<i64>> =
        sqlx::query_scalar("SELECT read_at FROM messages WHERE id = $1 AND account_id = $2")
            .bind(id.0)
            .bind(account.0)
            .fetch_optional(tx.conn())
            .await?;
    Ok(read_at.map(|r| r.is_none()))
}

/// Marks one of the account's messages read; returns whether it changed.
pub async fn mark_read(
    tx: &mut WriteTx,
    account: AccountId,
    id: MessageId,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE messages SET read_at = $3 WHERE id = $1 AND account_id = $2 AND read_at IS NULL",
    )
    .bind(id.0)
    .bind(account.0)
    .bind(now.millis())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks all the account's messages read; returns how many changed.
pub async fn mark_all_read(tx: &mut WriteTx, account: AccountId, now: Timestamp) -> Result<u64> {
    let done =
        sqlx::query("UPDATE messages SET read_at = $2 WHERE account_id = $1 AND read_at IS NULL")
            .bind(account.0)
            .bind(now.millis())
            .execute(tx.conn())
            .await?;
    Ok(done.rows_affected())
}
