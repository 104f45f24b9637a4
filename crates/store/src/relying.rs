//! Relying platforms (公共资源交易平台) and the certificates activated for
//! them (证书激活).

use certhall_domain::{AccountId, Timestamp};
use sqlx::Row;

use crate::{Result, Store, WriteTx};

/// A relying platform as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformRow {
    /// Its id.
    pub id: i64,
    /// Its name (枣庄公共资源交易平台).
    pub name: String,
    /// The application code its certificates are issued for (`sdzfcg`).
    pub application: String,
    /// Origins of its pages, one per line.
    pub origins: String,
    /// Where it is told of revocations, if anywhere.
    pub webhook_url: Option<String>,
    /// When it was registered.
    pub created_at: Timestamp,
}

const SELECT: &str =
    "SELECT id, name, application, origins, webhook_url, created_at FROM relying_platforms";

fn from_row(r: &sqlx::any::AnyRow) -> Result<PlatformRow> {
    Ok(PlatformRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        application: r.try_get("application")?,
        origins: r.try_get("origins")?,
        webhook_url: r.try_get("webhook_url")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
    })
}

/// Registers a platform; `None` when the name is taken.
pub async fn insert(
    tx: &mut WriteTx,
    name: &str,
    application: &str,
    origins: &str,
    webhook_url: Option<&str>,
    token_hash: &str,
    now: Timestamp,
) -> Result<Option<i64>> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO relying_platforms (name, application, origins, webhook_url, token_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(name)
    .bind(application)
    .bind(origins)
    .bind(webhook_url)
    .bind(token_hash)
    .bind(now.millis())
    .fetch_optional(tx.conn())
    .await?;
    Ok(id)
}

/// The platform whose token hashes to `token_hash`.
pub async fn by_token_hash(store: &Store, token_hash: &str) -> Result<Option<PlatformRow>> {
    let row = sqlx::query(&format!("{SELECT} WHERE token_hash = $1"))
        .bind(token_hash)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Wrong platform tokens presented from `ip` since `since`.
pub async fn auth_failures_since(store: &Store, ip: &str, since: Timestamp) -> Result<u32> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM platform_auth_failures WHERE ip = $1 AND at >= $2",
    )
    .bind(ip)
    .bind(since.millis())
    .fetch_one(store.pool())
    .await?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Records a wrong platform token from `ip`, dropping rows older than
/// `keep_after`.
pub async fn record_auth_failure(
    tx: &mut WriteTx,
    ip: &str,
    now: Timestamp,
    keep_after: Timestamp,
) -> Result<()> {
    sqlx::query("DELETE FROM platform_auth_failures WHERE at < $1")
        .bind(keep_after.millis())
        .execute(tx.conn())
        .await?;
    sqlx::query("INSERT INTO platform_auth_failures (ip, at) VALUES ($1, $2)")
        .bind(ip)
        .bind(now.millis())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// One platform.
pub async fn get(store: &Store, id: i64) -> Result<Option<PlatformRow>> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every platform, by name.
pub async fn all(store: &Store) -> Result<Vec<PlatformRow>> {
    let rows = sqlx::query(&format!("{SELECT} ORDER BY name"))
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

/// Records an activation; false when the certificate was already
/// activated for that platform.
pub async fn activate(
    tx: &mut WriteTx,
    serial: &str,
    platform: i64,
    account: AccountId,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO certificate_activations (serial, platform_id, account_id, activated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (serial, platform_id) DO NOTHING",
    )
    .bind(serial)
    .bind(platform)
    .bind(account.0)
    .bind(now.millis())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// When the certificate was activated for the platform, if it was.
pub async fn activated_at(store: &Store, serial: &str, platform: i64) -> Result<Option<Timestamp>> {
    let at: Option<i64> = sqlx::query_scalar(
        "SELECT activated_at FROM certificate_activations WHERE serial = $1 AND platform_id = $2",
    )
    .bind(serial)
    .bind(platform)
    .fetch_optional(store.pool())
    .await?;
    Ok(at.map(Timestamp::from_millis))
}

/// The activations of an account's certificates: (serial, platform
/// name, when), oldest first.
pub async fn activations_of_account(
    store: &Store,
    account: AccountId,
) -> Result<Vec<(String, String, Timestamp)>> {
    let rows = sqlx::query(
        "SELECT a.serial, p.name, a.activated_at FROM certificate_activations a \
         JOIN relying_platforms p ON p.id = a.platform_id WHERE a.account_id = $1 \
         ORDER BY a.activated_at",
    )
    .bind(account.0)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("serial")?,
                r.try_get("name")?,
                Timestamp::from_millis(r.try_get("activated_at")?),
            ))
        })
        .collect()
}

/// An event waiting for (or past) delivery to a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Its id.
    pub id: i64,
    /// The platform told.
    pub platform_id: i64,
    /// `certificate.revoked`, …
    pub kind: String,
    /// The certificate.
    pub serial: String,
    /// Details, JSON.
    pub data: String,
    /// When it happened.
    pub created_at: Timestamp,
    /// Deliveries tried.
    pub attempts: i64,
    /// When it is tried next.
    pub next_attempt_at: Timestamp,
    /// When the platform took it.
    pub delivered_at: Option<Timestamp>,
    /// The last failure.
    pub last_error: Option<String>,
}

const EVENT_SELECT: &str = "SELECT id, platform_id, kind, serial, data, created_at, attempts, \
                            next_attempt_at, delivered_at, last_error FROM platform_events";

fn event_from_row(r: &sqlx::any::AnyRow) -> Result<EventRow> {
    Ok(EventRow {
        id: r.try_get("id")?,
        platform_id: r.try_get("platform_id")?,
        kind: r.try_get("kind")?,
        serial: r.try_get("serial")?,
        data: r.try_get("data")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        attempts: i64::from(r.try_get::<i32, _>("attempts")?),
        next_attempt_at: Timestamp::from_millis(r.try_get("next_attempt_at")?),
        delivered_at: r
            .try_get::<Option<i64>, _>("delivered_at")?
            .map(Timestamp::from_millis),
        last_error: r.try_get("last_error")?,
    })
}

/// Queues `kind` about `serial` for every platform with a webhook that
/// the certificate is activated for (inside the transaction that made it
/// happen). Returns how many.
pub async fn queue_event(
    tx: &mut WriteTx,
    serial: &str,
    kind: &str,
    data: &str,
    now: Timestamp,
) -> Result<u64> {
    let done = sqlx::query(
        "INSERT INTO platform_events (platform_id, kind, serial, data, created_at, attempts, next_attempt_at) \
         SELECT a.platform_id, $1, $2, $3, $4, 0, $4 FROM certificate_activations a \
         JOIN relying_platforms p ON p.id = a.platform_id \
         WHERE a.serial = $2 AND p.webhook_url IS NOT NULL",
    )
    .bind(kind)
    .bind(serial)
    .bind(data)
    .bind(now.millis())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}

/// Events due for delivery at `now` with fewer than `max_attempts` tries,
/// oldest first.
pub async fn due_events(
    store: &Store,
    now: Timestamp,
    max_attempts: i64,
    limit: u32,
) -> Result<Vec<EventRow>> {
    let rows = sqlx::query(&format!(
        "{EVENT_SELECT} WHERE delivered_at IS NULL AND next_attempt_at <= $1 AND attempts < $2 \
         ORDER BY id LIMIT $3"
    ))
    .bind(now.millis())
    .bind(max_attempts)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// Every event, oldest first (tests and the operators' view).
pub async fn events(store: &Store) -> Result<Vec<EventRow>> {
    let rows = sqlx::query(&format!("{EVENT_SELECT} ORDER BY id"))
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(event_from_row).collect()
}

/// Records a delivery try: delivered, or failed with `error` and tried
/// again at `next`. Only if the tries are still `attempts_seen` (a second
/// runner that got there first wins).
pub async fn record_try(
    store: &Store,
    id: i64,
    attempts_seen: i64,
    outcome: Result<(), (&str, Timestamp)>,
    now: Timestamp,
) -> Result<bool> {
    let (delivered, error, next) = match outcome {
        Ok(()) => (Some(now.millis()), None, now.millis()),
        Err((e, next)) => (None, Some(e), next.millis()),
    };
    let done = sqlx::query(
        "UPDATE platform_events SET attempts = attempts + 1, delivered_at = $1, last_error = $2, \
         next_attempt_at = $3 WHERE id = $4 AND attempts = $5 AND delivered_at IS NULL",
    )
    .bind(delivered)
    .bind(error)
    .bind(next)
    .bind(id)
    .bind(i32::try_from(attempts_seen).unwrap_or(i32::MAX))
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes a due event for one delivery try until `until` (so a second
/// runner skips it); false when another runner took it first.
pub async fn claim_event(
    store: &Store,
    id: i64,
    attempts_seen: i64,
    until: Timestamp,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE platform_events SET next_attempt_at = $1 \
         WHERE id = $2 AND attempts = $3 AND delivered_at IS NULL AND next_attempt_at <= $4",
    )
    .bind(until.millis())
    .bind(id)
    .bind(i32::try_from(attempts_seen).unwrap_or(i32::MAX))
    .bind(now.millis())
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A renewal: the new certificate is activated wherever the old one was
/// (its activation time is the renewal's). The number carried over.
pub async fn carry_activations(
    tx: &mut WriteTx,
    old_serial: &str,
    new_serial: &str,
    now: Timestamp,
) -> Result<u64> {
    let done = sqlx::query(
        "INSERT INTO certificate_activations (serial, platform_id, account_id, activated_at) \
         SELECT $1, platform_id, account_id, $2 FROM certificate_activations WHERE serial = $3 \
         ON CONFLICT (serial, platform_id) DO NOTHING",
    )
    .bind(new_serial)
    .bind(now.millis())
    .bind(old_serial)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}

/// A platform by its name.
pub async fn by_name(store: &Store, name: &str) -> Result<Option<PlatformRow>> {
    let row = sqlx::query(&format!("{SELECT} WHERE name = $1"))
        .bind(name)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Changes a platform's origins (one per line) and webhook.
pub async fn set_origins_and_webhook(
    tx: &mut WriteTx,
    id: i64,
    origins: &str,
    webhook_url: Option<&str>,
) -> Result<()> {
    sqlx::query("UPDATE relying_platforms SET origins = $1, webhook_url = $2 WHERE id = $3")
        .bind(origins)
        .bind(webhook_url)
        .bind(id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// A webhook event the demo platform received and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoEventRow {
    /// The platform it was for.
    pub platform_id: i64,
    /// CertHall's event id.
    pub event_id: i64,
    /// `certificate.revoked`, `certificate.renewed`, `certificate.changed`.
    pub kind: String,
    /// The certificate.
    pub serial: String,
    /// The body as received.
    pub body: String,
    /// When.
    pub received_at: Timestamp,
}

/// Records a received event; false when it was received before (a retry).
pub async fn insert_demo_event(tx: &mut WriteTx, e: &DemoEventRow) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO demo_platform_events (platform_id, event_id, kind, serial, body, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(e.platform_id)
    .bind(e.event_id)
    .bind(e.kind.as_str())
    .bind(e.serial.as_str())
    .bind(e.body.as_str())
    .bind(e.received_at.millis())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The demo platform's received events, newest first.
pub async fn demo_events(store: &Store, platform_id: i64, limit: u32) -> Result<Vec<DemoEventRow>> {
    let rows = sqlx::query(
        "SELECT platform_id, event_id, kind, serial, body, received_at FROM demo_platform_events \
         WHERE platform_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(platform_id)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DemoEventRow {
                platform_id: r.try_get("platform_id")?,
                event_id: r.try_get("event_id")?,
                kind: r.try_get("kind")?,
                serial: r.try_get("serial")?,
                body: r.try_get("body")?,
                received_at: Timestamp::from_millis(r.try_get("received_at")?),
            })
        })
        .collect()
}
