//! Orders, their wizard data and their history.

use certhall_domain::order::{OrderId, OrderKind, OrderState, Step};
use certhall_domain::{AccountId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store, StoreError, WriteTx};

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    /// Its id (shown as the order number).
    pub id: OrderId,
    /// Whose.
    pub account_id: AccountId,
    /// What for.
    pub kind: OrderKind,
    /// Where it is.
    pub state: OrderState,
    /// Bumped by every transition (compare-and-swap).
    pub version: i64,
    /// The counter's reason when it returned the order.
    pub return_reason: Option<String>,
    /// When it was started.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// The application chosen at step 2 (for lists).
    pub application_name: Option<String>,
    /// The enterprise saved at step 3 (for lists).
    pub enterprise_name: Option<String>,
    /// What it costs, once step 6 is confirmed (fen).
    pub amount_fen: Option<i64>,
}

const COLUMNS: &str = "id, account_id, kind, state, step, version, return_reason, created_at, \
                       updated_at, application_name, enterprise_name, amount_fen";

fn order_from_row(r: &AnyRow) -> Result<OrderRow> {
    let kind: String = r.try_get("kind")?;
    let state: String = r.try_get("state")?;
    let step: i64 = r.try_get("step")?;
    Ok(OrderRow {
        id: OrderId(r.try_get("id")?),
        account_id: AccountId(r.try_get("account_id")?),
        kind: kind
            .parse()
            .map_err(|()| StoreError::Corrupt(format!("order kind {kind:?}")))?,
        state: OrderState::from_db(&state, step)
            .ok_or_else(|| StoreError::Corrupt(format!("order state {state:?}/{step}")))?,
        version: r.try_get("version")?,
        return_reason: r.try_get("return_reason")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
        application_name: r.try_get("application_name")?,
        enterprise_name: r.try_get("enterprise_name")?,
        amount_fen: r.try_get("amount_fen")?,
    })
}

/// Starts an order; returns it.
pub async fn create(
    tx: &mut WriteTx,
    account: AccountId,
    kind: OrderKind,
    state: OrderState,
    now: Timestamp,
) -> Result<OrderRow> {
    let (name, step) = state.to_db();
    let row = sqlx::query(&format!(
        "INSERT INTO orders (account_id, kind, state, step, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 1, $5, $5) RETURNING {COLUMNS}"
    ))
    .bind(account.0)
    .bind(kind.as_str())
    .bind(name)
    .bind(step)
    .bind(now.millis())
    .fetch_one(tx.conn())
    .await?;
    order_from_row(&row)
}

/// One order by id.
pub async fn get(store: &Store, id: OrderId) -> Result<Option<OrderRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(order_from_row).transpose()
}

/// The same, inside a write transaction.
pub async fn get_tx(tx: &mut WriteTx, id: OrderId) -> Result<Option<OrderRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(tx.conn())
        .await?;
    row.as_ref().map(order_from_row).transpose()
}

/// An account's orders, newest first.
pub async fn of_account(store: &Store, account: AccountId, limit: u32) -> Result<Vec<OrderRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM orders WHERE account_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(account.0)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(order_from_row).collect()
}

/// Which of an account's orders a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderFilter {
    /// All of them.
    #[default]
    All,
    /// Still being filled in or checked (draft, authorization, review,
    /// returned, counter visit).
    InProgress,
    /// Approved: waiting for step 6 or payment.
    ToPay,
    /// Paid and later.
    Paid,
    /// Cancelled.
    Cancelled,
}

impl OrderFilter {
    /// Every filter, in the order the page offers them.
    pub const ALL: [OrderFilter; 5] = [
        Self::All,
        Self::InProgress,
        Self::ToPay,
        Self::Paid,
        Self::Cancelled,
    ];

    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::InProgress => "in_progress",
            Self::ToPay => "to_pay",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
        }
    }

    /// Reads the query value (unknown: all).
    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .unwrap_or_default()
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::All => "全部",
            Self::InProgress => "办理中",
            Self::ToPay => "待支付",
            Self::Paid => "已支付",
            Self::Cancelled => "已取消",
        }
    }

    /// The stored state names it covers (empty: all).
    fn states(self) -> &'static [&'static str] {
        match self {
            Self::All => &[],
            Self::InProgress => &[
                "draft",
                "counter_visit",
                "awaiting_authorization",
                "authorization_refused",
                "in_review",
                "returned",
                "awaiting_key_write",
            ],
            Self::ToPay => &["approved", "awaiting_payment"],
            Self::Paid => &["paid"],
            Self::Cancelled => &["cancelled"],
        }
    }
}

/// An account's orders that pass `filter` and, when `search` is given,
/// whose number, enterprise or application contains it; newest first.
pub async fn search_of_account(
    store: &Store,
    account: AccountId,
    filter: OrderFilter,
    search: Option<&str>,
    limit: u32,
) -> Result<Vec<OrderRow>> {
    let states = filter.states();
    let mut sql = format!("SELECT {COLUMNS} FROM orders WHERE account_id = $1");
    let mut n = 1;
    for _ in states {
        n += 1;
        if n == 2 {
            sql.push_str(&format!(" AND state IN (${n}"));
        } else {
            sql.push_str(&format!(", ${n}"));
        }
    }
    if !states.is_empty() {
        sql.push(')');
    }
    let pattern = search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("%{}%", s.replace(['%', '_', '\\'], "")));
    if pattern.is_some() {
        n += 1;
        sql.push_str(&format!(
            " AND (CAST(id AS TEXT) = ${n} OR COALESCE(enterprise_name, '') LIKE ${} \
               OR COALESCE(application_name, '') LIKE ${})",
            n + 1,
            n + 1
        ));
        n += 1;
    }
    n += 1;
    sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT ${n}"));
    let mut q = sqlx::query(&sql).bind(account.0);
    for s in states {
        q = q.bind(*s);
    }
    if let Some(p) = &pattern {
        q = q.bind(p.trim_matches('%').to_owned()).bind(p.clone());
    }
    let rows = q.bind(i64::from(limit)).fetch_all(store.pool()).await?;
    rows.iter().map(order_from_row).collect()
}

/// Keeps the list columns in step with the saved wizard data.
pub async fn set_names(
    tx: &mut WriteTx,
    id: OrderId,
    application_name: Option<&str>,
    enterprise_name: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE orders SET application_name = COALESCE($1, application_name), \
                enterprise_name = COALESCE($2, enterprise_name) WHERE id = $3",
    )
    .bind(application_name.map(str::to_owned))
    .bind(enterprise_name.map(str::to_owned))
    .bind(id.0)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Sets (or clears) the amount shown for the order.
pub async fn set_amount(tx: &mut WriteTx, id: OrderId, amount_fen: Option<i64>) -> Result<()> {
    sqlx::query("UPDATE orders SET amount_fen = $1 WHERE id = $2")
        .bind(amount_fen)
        .bind(id.0)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Orders in a state, oldest change first (the counter's queue).
pub async fn in_state(store: &Store, state: &str, limit: u32) -> Result<Vec<OrderRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM orders WHERE state = $1 ORDER BY updated_at, id LIMIT $2"
    ))
    .bind(state)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(order_from_row).collect()
}

/// A transition to persist.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    /// The order.
    pub id: OrderId,
    /// The version it was read at.
    pub version: i64,
    /// The state it was read in.
    pub from: OrderState,
    /// The new state.
    pub to: OrderState,
    /// Who (`Actor` text).
    pub actor: &'a str,
    /// The counter's reason (stored on the order when returning it).
    pub reason: Option<&'a str>,
}

/// Moves the order if it is still at `t.version`; false if it moved on
/// (a stale page, or another operator first). Records the event.
pub async fn transition(tx: &mut WriteTx, t: &Transition<'_>, now: Timestamp) -> Result<bool> {
    let (name, step) = t.to.to_db();
    let done = sqlx::query(
        "UPDATE orders SET state = $1, step = $2, version = version + 1, \
                return_reason = COALESCE($3, return_reason), updated_at = $4 \
         WHERE id = $5 AND version = $6",
    )
    .bind(name)
    .bind(step)
    .bind(t.reason.map(str::to_owned))
    .bind(now.millis())
    .bind(t.id.0)
    .bind(t.version)
    .execute(tx.conn())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO order_events (order_id, from_state, to_state, actor, reason, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(t.id.0)
    .bind(t.from.to_string())
    .bind(t.to.to_string())
    .bind(t.actor)
    .bind(t.reason.map(str::to_owned))
    .bind(now.millis())
    .execute(tx.conn())
    .await?;
    Ok(true)
}

/// Bumps the order's version if it is still `version` (a change that is
/// not a transition, e.g. a new image, must not race a submission); false
/// if the order moved meanwhile.
pub async fn touch(tx: &mut WriteTx, id: OrderId, version: i64, now: Timestamp) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE orders SET version = version + 1, updated_at = $1 WHERE id = $2 AND version = $3",
    )
    .bind(now.millis())
    .bind(id.0)
    .bind(version)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Saves what was typed at a step (replacing the earlier version).
pub async fn save_step(
    tx: &mut WriteTx,
    order: OrderId,
    step: Step,
    data: &serde_json::Value,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO order_steps (order_id, step, data, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (order_id, step) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
    )
    .bind(order.0)
    .bind(i64::from(step.number()))
    .bind(data.to_string())
    .bind(now.millis())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// What was typed at a step, if anything.
pub async fn step_data(
    store: &Store,
    order: OrderId,
    step: Step,
) -> Result<Option<serde_json::Value>> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT data FROM order_steps WHERE order_id = $1 AND step = $2")
            .bind(order.0)
            .bind(i64::from(step.number()))
            .fetch_optional(store.pool())
            .await?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("order step data: {e}")))
    })
    .transpose()
}

/// Every saved step of an order, in step order, in one query (the order
/// page shows them all).
pub async fn steps_data(store: &Store, order: OrderId) -> Result<Vec<(Step, serde_json::Value)>> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT step, data FROM order_steps WHERE order_id = $1 ORDER BY step")
            .bind(order.0)
            .fetch_all(store.pool())
            .await?;
    rows.into_iter()
        .map(|(n, text)| {
            let step = Step::from_number(n)
                .ok_or_else(|| StoreError::Corrupt(format!("order step number {n}")))?;
            let data = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("order step data: {e}")))?;
            Ok((step, data))
        })
        .collect()
}

/// One line of an order's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEventRow {
    /// State before.
    pub from_state: String,
    /// State after.
    pub to_state: String,
    /// Who.
    pub actor: String,
    /// Why (a return reason).
    pub reason: Option<String>,
    /// When.
    pub at: Timestamp,
}

impl OrderEventRow {
    /// The state before, as shown to people.
    pub fn from_label(&self) -> String {
        OrderState::from_display(&self.from_state)
            .map_or_else(|| self.from_state.clone(), |s| s.label_zh())
    }

    /// The state after, as shown to people.
    pub fn to_label(&self) -> String {
        OrderState::from_display(&self.to_state)
            .map_or_else(|| self.to_state.clone(), |s| s.label_zh())
    }
}

/// An order's history, oldest first.
pub async fn events(store: &Store, order: OrderId) -> Result<Vec<OrderEventRow>> {
    let rows = sqlx::query(
        "SELECT from_state, to_state, actor, reason, at FROM order_events \
         WHERE order_id = $1 ORDER BY id",
    )
    .bind(order.0)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OrderEventRow {
                from_state: r.try_get("from_state")?,
                to_state: r.try_get("to_state")?,
                actor: r.try_get("actor")?,
                reason: r.try_get("reason")?,
                at: Timestamp::from_millis(r.try_get("at")?),
            })
        })
        .collect()
}

/// What the account typed at `step` in its most recent order that has it
/// (to prefill a new order: "prefilled next time").
pub async fn latest_step_data_of_account(
    store: &Store,
    account: AccountId,
    step: Step,
) -> Result<Option<serde_json::Value>> {
    let text: Option<String> = sqlx::query_scalar(
        "SELECT s.data FROM order_steps s JOIN orders o ON o.id = s.order_id \
         WHERE o.account_id = $1 AND s.step = $2 ORDER BY s.updated_at DESC LIMIT 1",
    )
    .bind(account.0)
    .bind(i64::from(step.number()))
    .fetch_optional(store.pool())
    .await?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("order step data: {e}")))
    })
    .transpose()
}

/// Records that `order` replaces the certificate `serial` (补办; `reason`
/// is `lost` or `broken`).
pub async fn insert_replacement(
    tx: &mut WriteTx,
    order: OrderId,
    serial: &str,
    reason: &str,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO order_replaces (order_id, serial, reason, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(order.0)
    .bind(serial)
    .bind(reason)
    .bind(now.millis())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The newest order of a kind for a certificate, still under way.
const OPEN_SUCCESSOR: &str =
    "SELECT o.id FROM order_replaces r JOIN orders o ON o.id = r.order_id \
     WHERE r.serial = $1 AND o.kind = $2 AND o.state NOT IN ('cancelled', 'completed') \
     ORDER BY o.id DESC LIMIT 1";

/// The order of `kind` (补办 or 变更) for `serial` still under way (not
/// cancelled nor completed), if any.
pub async fn open_replacement(
    tx: &mut WriteTx,
    serial: &str,
    kind: OrderKind,
) -> Result<Option<OrderId>> {
    let id: Option<i64> = sqlx::query_scalar(OPEN_SUCCESSOR)
        .bind(serial)
        .bind(kind.as_str())
        .fetch_optional(tx.conn())
        .await?;
    Ok(id.map(OrderId))
}

/// [`open_replacement`] outside a transaction (for pages and checks that
/// decide nothing on their own).
pub async fn open_successor(
    store: &Store,
    serial: &str,
    kind: OrderKind,
) -> Result<Option<OrderId>> {
    let id: Option<i64> = sqlx::query_scalar(OPEN_SUCCESSOR)
        .bind(serial)
        .bind(kind.as_str())
        .fetch_optional(store.pool())
        .await?;
    Ok(id.map(OrderId))
}

/// The certificate an order replaces (补办), changes (变更) or renews (a
/// priced 更新), if any.
pub async fn replaced_by(store: &Store, order: OrderId) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT serial FROM order_replaces WHERE order_id = $1")
            .bind(order.0)
            .fetch_optional(store.pool())
            .await?,
    )
}
