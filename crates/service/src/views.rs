//! What the pages read, as `Services` methods, and the row types they
//! show, re-exported: the web layer depends on the services, not on the
//! store (the compiler keeps that boundary: `certhall-web` does not list
//! `certhall-store`).

use certhall_domain::AccountId;
use certhall_store::{orders, sms};

pub use certhall_store::checkouts::CheckoutRow;
pub use certhall_store::materials::MaterialInfo;
pub use certhall_store::notices::Notice;
pub use certhall_store::orders::{OrderFilter, OrderRow};
pub use certhall_store::payments::{AttemptRow, RefundRow};
pub use certhall_store::sms::{InboundEntry, OutboxEntry};

use crate::{Result, Services};

impl Services {
    /// The database's kind (`sqlite`, `postgresql`), for readiness.
    pub fn database_name(&self) -> &'static str {
        self.store.backend().name()
    }

    /// Whether the database answers.
    pub async fn database_ping(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }

    /// The account's latest orders, newest first.
    pub async fn recent_orders(&self, account: AccountId, limit: u32) -> Result<Vec<OrderRow>> {
        Ok(orders::of_account(&self.store, account, limit).await?)
    }

    /// The demo outbox, newest first (demo mode's `/dev/outbox`).
    pub async fn demo_outbox(&self, limit: u32) -> Result<Vec<OutboxEntry>> {
        Ok(sms::outbox_recent(&self.store, None, limit).await?)
    }

    /// Simulated replies received, newest first.
    pub async fn demo_inbound(&self, limit: u32) -> Result<Vec<InboundEntry>> {
        Ok(sms::inbound_recent(&self.store, limit).await?)
    }
}
