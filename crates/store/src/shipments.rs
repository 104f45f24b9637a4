//! Shipping (step 8): courier orders, their route events and the pushes
//! as received.

use certhall_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store, WriteTx};

/// One courier order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentRow {
    /// Its id.
    pub id: i64,
    /// The CertHall order.
    pub order_id: i64,
    /// Which courier (`sf`, `demo`).
    pub courier: String,
    /// Our order number at the courier (never reused).
    pub courier_order_id: String,
    /// The waybill number, once accepted.
    pub waybill_no: Option<String>,
    /// `requesting`, `shipped`, `delivered`, `failed`, `cancelled`.
    pub state: String,
    /// The courier's error, for failed ones.
    pub error: Option<String>,
    /// Who shipped it.
    pub actor: String,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// Signed for.
    pub delivered_at: Option<Timestamp>,
}

const COLUMNS: &str = "id, order_id, courier, courier_order_id, waybill_no, state, error, actor, \
                       created_at, updated_at, delivered_at";

fn from_row(r: &AnyRow) -> Result<ShipmentRow> {
    let delivered: Option<i64> = r.try_get("delivered_at")?;
    Ok(ShipmentRow {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        courier: r.try_get("courier")?,
        courier_order_id: r.try_get("courier_order_id")?,
        waybill_no: r.try_get("waybill_no")?,
        state: r.try_get("state")?,
        error: r.try_get("error")?,
        actor: r.try_get("actor")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
        delivered_at: delivered.map(Timestamp::from_millis),
    })
}

/// How many shipments the order has had (for the next courier order
/// number).
pub async fn count_of_order(tx: &mut WriteTx, order: i64) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM shipments WHERE order_id = $1")
            .bind(order)
            .fetch_one(tx.conn())
            .await?,
    )
}

/// Inserts a `requesting` shipment; `None` when the order has a live one
/// (requesting, shipped or delivered) already.
pub async fn insert_requesting(
    tx: &mut WriteTx,
    order: i64,
    courier: &str,
    courier_order_id: &str,
    actor: &str,
    now: Timestamp,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO shipments (order_id, courier, courier_order_id, state, actor, created_at, updated_at) \
         VALUES ($1, $2, $3, 'requesting', $4, $5, $5) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(order)
    .bind(courier)
    .bind(courier_order_id)
    .bind(actor)
    .bind(now.millis())
    .fetch_optional(tx.conn())
    .await?)
}

/// Moves a shipment from `from` to `to` (compare-and-swap), setting the
/// waybill number or the error when given.
#[allow(clippy::too_many_arguments)]
pub async fn set_state(
    tx: &mut WriteTx,
    id: i64,
    from: &str,
    to: &str,
    waybill_no: Option<&str>,
    error: Option<&str>,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE shipments SET state = $1, waybill_no = COALESCE($2, waybill_no), \
             error = COALESCE($3, error), updated_at = $4, \
             delivered_at = CASE WHEN $1 = 'delivered' THEN $4 ELSE delivered_at END \
         WHERE id = $5 AND state = $6",
    )
    .bind(to)
    .bind(waybill_no)
    .bind(error)
    .bind(now.millis())
    .bind(id)
    .bind(from)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a shipment as looked at now (polling goes round every one in
/// transit, least recently looked at first).
pub async fn touch(tx: &mut WriteTx, id: i64, now: Timestamp) -> Result<()> {
    sqlx::query("UPDATE shipments SET updated_at = $1 WHERE id = $2")
        .bind(now.millis())
        .bind(id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// One shipment.
pub async fn get(store: &Store, id: i64) -> Result<Option<ShipmentRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM shipments WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The same, inside a write transaction.
pub async fn get_tx(tx: &mut WriteTx, id: i64) -> Result<Option<ShipmentRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM shipments WHERE id = $1"))
        .bind(id)
        .fetch_optional(tx.conn())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The shipment with a waybill number.
pub async fn by_waybill_tx(tx: &mut WriteTx, waybill: &str) -> Result<Option<ShipmentRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM shipments WHERE waybill_no = $1"
    ))
    .bind(waybill)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// An order's shipments, oldest first.
pub async fn of_order(store: &Store, order: i64) -> Result<Vec<ShipmentRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM shipments WHERE order_id = $1 ORDER BY id"
    ))
    .bind(order)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// The order's live shipment (requesting, shipped or delivered), if any.
pub async fn live_of_order(tx: &mut WriteTx, order: i64) -> Result<Option<ShipmentRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM shipments WHERE order_id = $1 \
         AND state IN ('requesting', 'shipped', 'delivered')"
    ))
    .bind(order)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Shipments on their way (to poll), least recently looked at first.
pub async fn in_transit(store: &Store, limit: u32) -> Result<Vec<ShipmentRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM shipments WHERE state = 'shipped' ORDER BY updated_at LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Shipments whose courier request got no answer before `before` (a
/// process died mid-request).
pub async fn stuck_requesting(store: &Store, before: Timestamp) -> Result<Vec<ShipmentRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM shipments WHERE state = 'requesting' AND updated_at < $1 ORDER BY id"
    ))
    .bind(before.millis())
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Every shipment, newest first (the demo courier's page).
pub async fn recent(store: &Store, limit: u32) -> Result<Vec<ShipmentRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM shipments ORDER BY id DESC LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// One route event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRow {
    /// Stable key (courier event id, or a hash): each event is kept once.
    pub dedup_key: String,
    /// The courier's operation code.
    pub op_code: String,
    /// Its stage (`picked_up`, `in_transit`, …).
    pub stage: String,
    /// When it happened.
    pub accept_time: Timestamp,
    /// Where.
    pub address: String,
    /// The courier's words.
    pub remark: String,
    /// `push` or `poll`.
    pub source: String,
}

/// Adds a route event; false if it was known already.
pub async fn insert_route(
    tx: &mut WriteTx,
    shipment: i64,
    r: &RouteRow,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO shipment_routes (shipment_id, dedup_key, op_code, stage, accept_time, address, \
                                      remark, source, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(shipment)
    .bind(r.dedup_key.as_str())
    .bind(r.op_code.as_str())
    .bind(r.stage.as_str())
    .bind(r.accept_time.millis())
    .bind(r.address.as_str())
    .bind(r.remark.as_str())
    .bind(r.source.as_str())
    .bind(now.millis())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A shipment's route, in the order things happened.
pub async fn routes(store: &Store, shipment: i64) -> Result<Vec<RouteRow>> {
    let rows = sqlx::query(
        "SELECT dedup_key, op_code, stage, accept_time, address, remark, source \
         FROM shipment_routes WHERE shipment_id = $1 ORDER BY accept_time, id",
    )
    .bind(shipment)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RouteRow {
                dedup_key: r.try_get("dedup_key")?,
                op_code: r.try_get("op_code")?,
                stage: r.try_get("stage")?,
                accept_time: Timestamp::from_millis(r.try_get("accept_time")?),
                address: r.try_get("address")?,
                remark: r.try_get("remark")?,
                source: r.try_get("source")?,
            })
        })
        .collect()
}

/// Records a push as received.
pub async fn insert_push(
    tx: &mut WriteTx,
    ip: Option<&str>,
    body: &str,
    outcome: &str,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO courier_pushes (received_at, ip, body, outcome) VALUES ($1, $2, $3, $4)",
    )
    .bind(now.millis())
    .bind(ip)
    .bind(body)
    .bind(outcome)
    .execute(tx.conn())
    .await?;
    Ok(())
}
