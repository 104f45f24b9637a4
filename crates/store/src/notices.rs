//! The counter's notice board (柜台通知): events every operator should see
//! (an order paid and waiting for production, a refund that needs a
//! person).

use certhall_domain::Timestamp;
use sqlx::Row;

use crate::{Result, Store, WriteTx};

/// A notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Its id.
    pub id: i64,
    /// `paid`, `refund_problem`, …
    pub kind: String,
    /// One line.
    pub title: String,
    /// Details.
    pub body: String,
    /// The order it is about.
    pub order_id: Option<i64>,
    /// When.
    pub created_at: Timestamp,
}

/// Posts a notice.
pub async fn insert(
    tx: &mut WriteTx,
    kind: &str,
    title: &str,
    body: &str,
    order_id: Option<i64>,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO operator_notices (kind, title, body, order_id, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(kind)
    .bind(title)
    .bind(body)
    .bind(order_id)
    .bind(now.millis())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The latest notices, newest first.
pub async fn recent(store: &Store, limit: u32) -> Result<Vec<Notice>> {
    let rows = sqlx::query(
        "SELECT id, kind, title, body, order_id, created_at FROM operator_notices ORDER BY id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Notice {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                title: r.try_get("title")?,
                body: r.try_get("body")?,
                order_id: r.try_get("order_id")?,
                created_at: Timestamp::from_millis(r.try_get("created_at")?),
            })
        })
        .collect()
}
