//! The demo SMS outbox and the inbound messages (replies from phones).

use certhall_domain::Timestamp;
use sqlx::Row;

use crate::{Result, Store, WriteTx};

/// A message in the demo outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Recipient phone.
    pub to: String,
    /// Template key.
    pub template: String,
    /// Full text.
    pub body: String,
    /// When it was "sent".
    pub sent_at: Timestamp,
}

/// A message received from a phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEntry {
    /// Sender phone.
    pub from: String,
    /// Text.
    pub body: String,
    /// When it arrived.
    pub received_at: Timestamp,
    /// What CertHall did with it.
    pub outcome: String,
}

/// Puts a message in the outbox.
pub async fn outbox_insert(store: &Store, e: &OutboxEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO sms_outbox (to_phone, template, body, sent_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(e.to.as_str())
    .bind(e.template.as_str())
    .bind(e.body.as_str())
    .bind(e.sent_at.millis())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The latest `limit` outbox messages, newest first, optionally to one phone.
pub async fn outbox_recent(
    store: &Store,
    to: Option<&str>,
    limit: u32,
) -> Result<Vec<OutboxEntry>> {
    let rows = sqlx::query(
        "SELECT to_phone, template, body, sent_at FROM sms_outbox \
         WHERE ($1 IS NULL OR to_phone = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(to.map(str::to_owned))
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OutboxEntry {
                to: r.try_get("to_phone")?,
                template: r.try_get("template")?,
                body: r.try_get("body")?,
                sent_at: Timestamp::from_millis(r.try_get("sent_at")?),
            })
        })
        .collect()
}

/// Records an inbound message.
pub async fn inbound_insert(tx: &mut WriteTx, e: &InboundEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO sms_inbound (from_phone, body, received_at, outcome) VALUES ($1, $2, $3, $4)",
    )
    .bind(e.from.as_str())
    .bind(e.body.as_str())
    .bind(e.received_at.millis())
    .bind(e.outcome.as_str())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The latest `limit` inbound messages, newest first.
pub async fn inbound_recent(store: &Store, limit: u32) -> Result<Vec<InboundEntry>> {
    let rows = sqlx::query(
        "SELECT from_phone, body, received_at, outcome FROM sms_inbound ORDER BY id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(InboundEntry {
                from: r.try_get("from_phone")?,
                body: r.try_get("body")?,
                received_at: Timestamp::from_millis(r.try_get("received_at")?),
                outcome: r.try_get("outcome")?,
            })
        })
        .collect()
}
