//! 第六步 as saved on an order: key model, delivery address, invoice and
//! the amount, and whether the order holds a unit of stock.

use certhall_domain::checkout::InvoiceRequest;
use certhall_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store, StoreError, WriteTx};

/// An order's checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRow {
    /// The order.
    pub order_id: i64,
    /// The key model's code.
    pub key_model: String,
    /// Its name when chosen.
    pub key_model_name: String,
    /// The application's price (fen).
    pub application_fen: i64,
    /// The key's price (fen).
    pub key_fen: i64,
    /// The total (fen).
    pub total_fen: i64,
    /// 收货人.
    pub recipient: String,
    /// Mobile.
    pub phone: String,
    /// County-level division code.
    pub division_code: i64,
    /// `山东省 枣庄市 市中区`.
    pub division_text: String,
    /// 详细地址.
    pub street: String,
    /// The invoice, if wanted.
    pub invoice: Option<InvoiceRequest>,
    /// Holds a unit of its model's stock.
    pub reserved: bool,
    /// Last changed.
    pub updated_at: Timestamp,
}

impl CheckoutRow {
    /// `山东省 枣庄市 市中区 光明路88号`.
    pub fn address_line(&self) -> String {
        format!("{} {}", self.division_text, self.street)
    }
}

const COLUMNS: &str = "order_id, key_model, key_model_name, application_fen, key_fen, total_fen, \
                       recipient, phone, division_code, division_text, street, invoice, reserved, updated_at";

fn from_row(r: &AnyRow) -> Result<CheckoutRow> {
    let invoice: Option<String> = r.try_get("invoice")?;
    let reserved: i64 = r.try_get("reserved")?;
    Ok(CheckoutRow {
        order_id: r.try_get("order_id")?,
        key_model: r.try_get("key_model")?,
        key_model_name: r.try_get("key_model_name")?,
        application_fen: r.try_get("application_fen")?,
        key_fen: r.try_get("key_fen")?,
        total_fen: r.try_get("total_fen")?,
        recipient: r.try_get("recipient")?,
        phone: r.try_get("phone")?,
        division_code: r.try_get("division_code")?,
        division_text: r.try_get("division_text")?,
        street: r.try_get("street")?,
        invoice: invoice
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("invoice: {e}")))?,
        reserved: reserved != 0,
        updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
    })
}

/// An order's checkout, if saved.
pub async fn get(store: &Store, order: i64) -> Result<Option<CheckoutRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM order_checkouts WHERE order_id = $1"
    ))
    .bind(order)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The same, inside a write transaction.
pub async fn get_tx(tx: &mut WriteTx, order: i64) -> Result<Option<CheckoutRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM order_checkouts WHERE order_id = $1"
    ))
    .bind(order)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Saves (replacing) an order's checkout.
pub async fn upsert(tx: &mut WriteTx, c: &CheckoutRow) -> Result<()> {
    let invoice = c
        .invoice
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("invoice: {e}")))?;
    sqlx::query(
        "INSERT INTO order_checkouts (order_id, key_model, key_model_name, application_fen, key_fen, \
                total_fen, recipient, phone, division_code, division_text, street, invoice, reserved, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (order_id) DO UPDATE SET key_model = excluded.key_model, \
                key_model_name = excluded.key_model_name, application_fen = excluded.application_fen, \
                key_fen = excluded.key_fen, total_fen = excluded.total_fen, recipient = excluded.recipient, \
                phone = excluded.phone, division_code = excluded.division_code, \
                division_text = excluded.division_text, street = excluded.street, \
                invoice = excluded.invoice, reserved = excluded.reserved, updated_at = excluded.updated_at",
    )
    .bind(c.order_id)
    .bind(c.key_model.as_str())
    .bind(c.key_model_name.as_str())
    .bind(c.application_fen)
    .bind(c.key_fen)
    .bind(c.total_fen)
    .bind(c.recipient.as_str())
    .bind(c.phone.as_str())
    .bind(c.division_code)
    .bind(c.division_text.as_str())
    .bind(c.street.as_str())
    .bind(invoice)
    .bind(i64::from(c.reserved))
    .bind(c.updated_at.millis())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Releases (or takes) the order's unit of stock.
pub async fn set_reserved(tx: &mut WriteTx, order: i64, reserved: bool) -> Result<()> {
    sqlx::query("UPDATE order_checkouts SET reserved = $1 WHERE order_id = $2")
        .bind(i64::from(reserved))
        .bind(order)
        .execute(tx.conn())
        .await?;
    Ok(())
}
