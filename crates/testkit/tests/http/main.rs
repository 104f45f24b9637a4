//! In-process tests of the whole router (pages + API), on SQLite and
//! PostgreSQL: every refusal of the login flow, sessions, CSRF, messages,
//! the audit trail and the operations endpoints.
//!
//! The helpers are here; the tests are grouped by seam in the modules below.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ca;
mod change;
mod login;
mod messages;
mod ops;
mod relying;
mod reminders;
mod renewal;
mod revocation;
mod sessions;
mod wizard;

use std::time::Duration;

use certhall_store::audit;
use certhall_testkit::TestApp;
use serde_json::Value;

pub(crate) async fn audit_events(app: &TestApp, event: &str) -> Vec<Value> {
    audit::recent(&app.db.store, Some(event), 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

pub(crate) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
