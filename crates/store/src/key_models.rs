//! Key models (介质), their stock per colour, the moves that changed it,
//! and which models each application offers.

use certhall_domain::checkout::{KeyColour, KeyModel, Stock};
use certhall_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store, StoreError, WriteTx};

const COLUMNS: &str = "code, name, description, price_fen, picture, active";

fn from_row(r: &AnyRow) -> Result<KeyModel> {
    let active: i64 = r.try_get("active")?;
    Ok(KeyModel {
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        price_fen: r.try_get("price_fen")?,
        picture: r.try_get("picture")?,
        active: active != 0,
    })
}

/// Adds a model (with zero stock of every colour); false if the code
/// exists.
pub async fn insert(tx: &mut WriteTx, m: &KeyModel, now: Timestamp) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO key_models (code, name, description, price_fen, picture, active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (code) DO NOTHING",
    )
    .bind(m.code.as_str())
    .bind(m.name.as_str())
    .bind(m.description.as_str())
    .bind(m.price_fen)
    .bind(m.picture.as_str())
    .bind(i64::from(m.active))
    .bind(now.millis())
    .execute(tx.conn())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    for colour in KeyColour::ALL {
        sqlx::query("INSERT INTO key_stock (model_code, colour, on_hand) VALUES ($1, $2, 0)")
            .bind(m.code.as_str())
            .bind(colour.as_str())
            .execute(tx.conn())
            .await?;
    }
    Ok(true)
}

/// Replaces a model's fields; false if there is none with its code.
pub async fn update(tx: &mut WriteTx, m: &KeyModel, now: Timestamp) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE key_models SET name = $1, description = $2, price_fen = $3, picture = $4, \
                active = $5, updated_at = $6 WHERE code = $7",
    )
    .bind(m.name.as_str())
    .bind(m.description.as_str())
    .bind(m.price_fen)
    .bind(m.picture.as_str())
    .bind(i64::from(m.active))
    .bind(now.millis())
    .bind(m.code.as_str())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One model.
pub async fn get(store: &Store, code: &str) -> Result<Option<KeyModel>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM key_models WHERE code = $1"))
        .bind(code)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The same, inside a write transaction.
pub async fn get_tx(tx: &mut WriteTx, code: &str) -> Result<Option<KeyModel>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM key_models WHERE code = $1"))
        .bind(code)
        .fetch_optional(tx.conn())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every model, by code.
pub async fn list(store: &Store) -> Result<Vec<KeyModel>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM key_models ORDER BY price_fen, code"
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// The active models `application` offers: those linked to it, or every
/// active model when none is linked.
pub async fn offered(store: &Store, application: &str) -> Result<Vec<KeyModel>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM key_models m WHERE active = 1 AND ( \
            EXISTS (SELECT 1 FROM application_key_models a \
                    WHERE a.application_code = $1 AND a.model_code = m.code) \
            OR NOT EXISTS (SELECT 1 FROM application_key_models a WHERE a.application_code = $1)) \
         ORDER BY price_fen, code"
    ))
    .bind(application)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Links exactly `models` to `application` (empty: every active model).
pub async fn set_offered(tx: &mut WriteTx, application: &str, models: &[String]) -> Result<()> {
    sqlx::query("DELETE FROM application_key_models WHERE application_code = $1")
        .bind(application)
        .execute(tx.conn())
        .await?;
    for m in models {
        sqlx::query(
            "INSERT INTO application_key_models (application_code, model_code) VALUES ($1, $2)",
        )
        .bind(application)
        .bind(m.as_str())
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}

/// The models linked to `application` (empty: it offers every model).
pub async fn linked(store: &Store, application: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT model_code FROM application_key_models WHERE application_code = $1 ORDER BY model_code",
    )
    .bind(application)
    .fetch_all(store.pool())
    .await?)
}

async fn stock_rows(conn: &mut sqlx::AnyConnection, code: &str) -> Result<Stock> {
    let rows = sqlx::query(
        "SELECT colour, on_hand FROM key_stock WHERE model_code = $1 ORDER BY colour DESC",
    )
    .bind(code)
    .fetch_all(&mut *conn)
    .await?;
    let mut on_hand = Vec::new();
    for r in &rows {
        let colour: String = r.try_get("colour")?;
        let colour = KeyColour::parse(&colour)
            .ok_or_else(|| StoreError::Corrupt(format!("key colour {colour:?}")))?;
        on_hand.push((colour, r.try_get::<i64, _>("on_hand")?));
    }
    let reserved: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM order_checkouts WHERE key_model = $1 AND reserved = 1",
    )
    .bind(code)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Stock { on_hand, reserved })
}

/// A model's stock and reservations.
pub async fn stock(store: &Store, code: &str) -> Result<Stock> {
    let mut conn = store.pool().acquire().await?;
    stock_rows(&mut conn, code).await
}

/// The same, inside a write transaction (take the model's lock first).
pub async fn stock_tx(tx: &mut WriteTx, code: &str) -> Result<Stock> {
    stock_rows(tx.conn(), code).await
}

/// One change of stock.
#[derive(Debug, Clone)]
pub struct StockMove<'a> {
    /// The model.
    pub model: &'a str,
    /// The colour.
    pub colour: KeyColour,
    /// Units in (+) or out (−).
    pub delta: i64,
    /// Why (入库, 盘点, 制证出库 …).
    pub reason: &'a str,
    /// Who (`Actor` text).
    pub actor: &'a str,
}

/// Applies a move and records it; false (nothing changed) if it would take
/// the stock below zero or the model has no such stock row.
pub async fn apply_move(tx: &mut WriteTx, m: &StockMove<'_>, now: Timestamp) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE key_stock SET on_hand = on_hand + $1 \
         WHERE model_code = $2 AND colour = $3 AND on_hand + $1 >= 0",
    )
    .bind(m.delta)
    .bind(m.model)
    .bind(m.colour.as_str())
    .execute(tx.conn())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO key_stock_moves (model_code, colour, delta, reason, actor, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(m.model)
    .bind(m.colour.as_str())
    .bind(m.delta)
    .bind(m.reason)
    .bind(m.actor)
    .bind(now.millis())
    .execute(tx.conn())
    .await?;
    Ok(true)
}
