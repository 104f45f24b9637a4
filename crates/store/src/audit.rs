//! The audit log's rows. The chain is computed by `certhall_domain::audit`;
//! this module only stores and reads it, serializing appends.

use certhall_domain::audit::{AuditEntry, NewAuditEntry, ThrottleWindow};
use certhall_domain::Timestamp;
use sqlx::Row;

use crate::{LockKey, Result, Store, WriteTx};

/// Appends an entry inside the caller's transaction, so the event and the
/// change it records commit together or not at all.
pub async fn append(tx: &mut WriteTx, now: Timestamp, new: &NewAuditEntry) -> Result<AuditEntry> {
    let mut entries = append_many(tx, now, &[new]).await?;
    Ok(entries.remove(0))
}

/// Appends several entries, chained in order, with multi-row INSERTs (the
/// group commit of issuances). Same lock and chain as [`append`].
pub async fn append_many(
    tx: &mut WriteTx,
    now: Timestamp,
    news: &[&NewAuditEntry],
) -> Result<Vec<AuditEntry>> {
    if news.is_empty() {
        return Ok(Vec::new());
    }
    tx.lock(LockKey::AuditChain).await?;
    let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(tx.conn())
        .await?;
    let mut head = match head {
        Some(row) => Some((
            row.try_get::<String, _>("hash")?,
            row.try_get::<i64, _>("seq")?,
        )),
        None => None,
    };
    let mut entries = Vec::with_capacity(news.len());
    for new in news {
        let entry = AuditEntry::seal(head.as_ref().map(|(h, s)| (h.as_str(), *s)), now, new);
        head = Some((entry.hash.clone(), entry.seq));
        entries.push(entry);
    }
    for chunk in crate::insert_chunks(&entries) {
        let sql = format!(
            "INSERT INTO audit_log (seq, at, actor, ip, event, data, prev_hash, hash) VALUES {}",
            crate::values_list(tx.backend(), chunk.len(), 8)
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(e.seq)
                .bind(e.at.millis())
                .bind(e.actor.as_str())
                .bind(e.ip.clone())
                .bind(e.event.as_str())
                .bind(e.data.as_str())
                .bind(e.prev_hash.as_str())
                .bind(e.hash.as_str());
        }
        q.execute(tx.conn()).await?;
    }
    Ok(entries)
}

fn entry_from_row(r: &sqlx::any::AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.try_get("seq")?,
        at: Timestamp::from_millis(r.try_get("at")?),
        actor: r.try_get("actor")?,
        ip: r.try_get("ip")?,
        event: r.try_get("event")?,
        data: r.try_get("data")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// Up to `limit` rows with `seq > after`, in order (for streaming checks).
pub async fn page(store: &Store, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
    let rows = sqlx::query(
        "SELECT seq, at, actor, ip, event, data, prev_hash, hash FROM audit_log \
         WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(entry_from_row).collect()
}

/// The latest `limit` rows, newest first, optionally of one event only.
pub async fn recent(store: &Store, event: Option<&str>, limit: u32) -> Result<Vec<AuditEntry>> {
    let rows = sqlx::query(
        "SELECT seq, at, actor, ip, event, data, prev_hash, hash FROM audit_log \
         WHERE ($1 IS NULL OR event = $1) ORDER BY seq DESC LIMIT $2",
    )
    .bind(event.map(str::to_owned))
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(entry_from_row).collect()
}

/// The refusal throttle's window for `caller` (call under
/// [`LockKey::AuditChain`], which serializes it with the chain).
pub async fn throttle_window(tx: &mut WriteTx, caller: &str) -> Result<Option<ThrottleWindow>> {
    let row = sqlx::query(
        "SELECT window_start, refusals, unreported FROM audit_throttle WHERE caller = $1",
    )
    .bind(caller)
    .fetch_optional(tx.conn())
    .await?;
    row.map(|r| {
        Ok(ThrottleWindow {
            start: Timestamp::from_millis(r.try_get("window_start")?),
            count: u32::try_from(r.try_get::<i64, _>("refusals")?).unwrap_or(u32::MAX),
            unreported: u32::try_from(r.try_get::<i64, _>("unreported")?).unwrap_or(u32::MAX),
        })
    })
    .transpose()
}

/// Stores the refusal throttle's window for `caller`.
pub async fn set_throttle_window(
    tx: &mut WriteTx,
    caller: &str,
    window: &ThrottleWindow,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_throttle (caller, window_start, refusals, unreported) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (caller) DO UPDATE SET \
         window_start = excluded.window_start, refusals = excluded.refusals, \
         unreported = excluded.unreported",
    )
    .bind(caller)
    .bind(window.start.millis())
    .bind(i64::from(window.count))
    .bind(i64::from(window.unreported))
    .execute(tx.conn())
    .await?;
    Ok(())
}
