//! Leases for background jobs shared by several CertHall processes.
//!
//! Time is cut into slots (a job's tick: `now / interval`). A process runs
//! a job's slot only if it [`claim`]s it: one `UPDATE` moves the job's
//! lease row to the slot, and succeeds only while no process has run this
//! slot or a later one and no lease is live — so each tick runs once
//! across processes, a run that outlives its tick is not joined by a
//! second one, and a process that dies mid-run leaves a lease that simply
//! expires. Each run leaves a [`JobRun`] row.

use certhall_domain::Timestamp;
use sqlx::Row;

use crate::{Result, Store};

/// Tries to take `slot` of job `name` for `holder` until `lease_until`.
/// True: run it now (and call [`finish`]); false: another process has it.
pub async fn claim(
    store: &Store,
    name: &str,
    slot: i64,
    holder: &str,
    lease_until: Timestamp,
    now: Timestamp,
) -> Result<bool> {
    sqlx::query(
        "INSERT INTO job_leases (name, slot, holder, lease_until) VALUES ($1, -1, '', 0) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .execute(store.pool())
    .await?;
    let done = sqlx::query(
        "UPDATE job_leases SET slot = $1, holder = $2, lease_until = $3 \
         WHERE name = $4 AND slot < $1 AND lease_until <= $5",
    )
    .bind(slot)
    .bind(holder)
    .bind(lease_until.millis())
    .bind(name)
    .bind(now.millis())
    .execute(store.pool())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("INSERT INTO job_runs (name, slot, holder, started_at) VALUES ($1, $2, $3, $4)")
        .bind(name)
        .bind(slot)
        .bind(holder)
        .bind(now.millis())
        .execute(store.pool())
        .await?;
    Ok(true)
}

/// Ends a run: records its summary and releases the lease.
pub async fn finish(
    store: &Store,
    name: &str,
    slot: i64,
    holder: &str,
    summary: &str,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE job_runs SET finished_at = $1, summary = $2 WHERE name = $3 AND slot = $4 AND holder = $5",
    )
    .bind(now.millis())
    .bind(summary)
    .bind(name)
    .bind(slot)
    .bind(holder)
    .execute(store.pool())
    .await?;
    sqlx::query(
        "UPDATE job_leases SET lease_until = $1 WHERE name = $2 AND slot = $3 AND holder = $4",
    )
    .bind(now.millis())
    .bind(name)
    .bind(slot)
    .bind(holder)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    /// The tick.
    pub slot: i64,
    /// Which process ran it.
    pub holder: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended (none while running, or if the process died).
    pub finished_at: Option<Timestamp>,
    /// What it did.
    pub summary: Option<String>,
}

/// A job's runs, oldest first.
pub async fn runs(store: &Store, name: &str) -> Result<Vec<JobRun>> {
    let rows = sqlx::query(
        "SELECT slot, holder, started_at, finished_at, summary FROM job_runs WHERE name = $1 ORDER BY slot",
    )
    .bind(name)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let finished: Option<i64> = r.try_get("finished_at")?;
            Ok(JobRun {
                slot: r.try_get("slot")?,
                holder: r.try_get("holder")?,
                started_at: Timestamp::from_millis(r.try_get("started_at")?),
                finished_at: finished.map(Timestamp::from_millis),
                summary: r.try_get("summary")?,
            })
        })
        .collect()
}

/// Deletes runs older than `before` (the lease rows stay).
pub async fn purge_runs(store: &Store, before: Timestamp) -> Result<u64> {
    let done = sqlx::query("DELETE FROM job_runs WHERE started_at < $1")
        .bind(before.millis())
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected())
}
