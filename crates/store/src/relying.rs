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
    /// When it was registered.
    pub created_at: Timestamp,
}

const SELECT: &str = "SELECT id, name, application, origins, created_at FROM relying_platforms";

fn from_row(r: &sqlx::any::AnyRow) -> Result<PlatformRow> {
    Ok(PlatformRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        application: r.try_get("application")?,
        origins: r.try_get("origins")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
    })
}

/// Registers a platform; `None` when the name is taken.
pub async fn insert(
    tx: &mut WriteTx,
    name: &str,
    application: &str,
    origins: &str,
    token_hash: &str,
    now: Timestamp,
) -> Result<Option<i64>> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO relying_platforms (name, application, origins, token_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(name)
    .bind(application)
    .bind(origins)
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

/// The platforms a certificate is activated for: (name, when).
pub async fn activations_of(store: &Store, serial: &str) -> Result<Vec<(String, Timestamp)>> {
    let rows = sqlx::query(
        "SELECT p.name, a.activated_at FROM certificate_activations a \
         JOIN relying_platforms p ON p.id = a.platform_id WHERE a.serial = $1 ORDER BY a.activated_at",
    )
    .bind(serial)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("name")?,
                Timestamp::from_millis(r.try_get("activated_at")?),
            ))
        })
        .collect()
}
