//! The 应用 catalogue.

use certhall_domain::application::Application;
use certhall_domain::production::KeyKind;
use certhall_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store, WriteTx};

const COLUMNS: &str =
    "code, name, profile, key_kind, validity_days, price_fen, description, active";

fn from_row(r: &AnyRow) -> Result<Application> {
    let validity: i64 = r.try_get("validity_days")?;
    let active: i64 = r.try_get("active")?;
    let key_kind: String = r.try_get("key_kind")?;
    Ok(Application {
        key_kind: KeyKind::parse(&key_kind)
            .ok_or_else(|| crate::StoreError::Corrupt(format!("key kind {key_kind:?}")))?,
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        profile: r.try_get("profile")?,
        validity_days: u32::try_from(validity).unwrap_or(0),
        price_fen: r.try_get("price_fen")?,
        description: r.try_get("description")?,
        active: active != 0,
    })
}

/// Adds an application; false if the code exists.
pub async fn insert(tx: &mut WriteTx, a: &Application, now: Timestamp) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO applications (code, name, profile, validity_days, price_fen, description, active, \
                                   created_at, updated_at, key_kind) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) ON CONFLICT (code) DO NOTHING",
    )
    .bind(a.code.as_str())
    .bind(a.name.as_str())
    .bind(a.profile.as_str())
    .bind(i64::from(a.validity_days))
    .bind(a.price_fen)
    .bind(a.description.as_str())
    .bind(i64::from(a.active))
    .bind(now.millis())
    .bind(a.key_kind.as_str())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces an application's fields; false if there is none with its code.
pub async fn update(tx: &mut WriteTx, a: &Application, now: Timestamp) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE applications SET name = $1, profile = $2, validity_days = $3, price_fen = $4, \
                description = $5, active = $6, updated_at = $7, key_kind = $9 WHERE code = $8",
    )
    .bind(a.name.as_str())
    .bind(a.profile.as_str())
    .bind(i64::from(a.validity_days))
    .bind(a.price_fen)
    .bind(a.description.as_str())
    .bind(i64::from(a.active))
    .bind(now.millis())
    .bind(a.code.as_str())
    .bind(a.key_kind.as_str())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One application.
pub async fn get(store: &Store, code: &str) -> Result<Option<Application>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM applications WHERE code = $1"
    ))
    .bind(code)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The catalogue by name; only the active ones if asked.
pub async fn list(store: &Store, active_only: bool) -> Result<Vec<Application>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM applications WHERE ($1 = 0 OR active = 1) ORDER BY name, code"
    ))
    .bind(i64::from(active_only))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}
