//! The demo SMS gateway: an outbox in the database instead of a provider.
//!
//! Used while no real provider is configured (demo mode). Every message is
//! stored and shown at `/dev/outbox`, so a newcomer can log in with the code
//! they would have received.

use std::sync::Arc;

use async_trait::async_trait;
use certhall_domain::Clock;
use certhall_store::sms::{outbox_insert, OutboxEntry};
use certhall_store::Store;

use crate::{Sms, SmsError, SmsGateway};

/// Writes messages to the `sms_outbox` table.
#[derive(Debug, Clone)]
pub struct DemoOutbox {
    store: Store,
    clock: Arc<dyn Clock>,
}

impl DemoOutbox {
    /// An outbox in `store`, timestamped by `clock`.
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }
}

#[async_trait]
impl SmsGateway for DemoOutbox {
    async fn send(&self, sms: &Sms) -> Result<(), SmsError> {
        let entry = OutboxEntry {
            to: sms.to.as_str().to_owned(),
            template: sms.template.key().to_owned(),
            body: sms.template.text(),
            sent_at: self.clock.now(),
        };
        outbox_insert(&self.store, &entry).await?;
        tracing::info!(to = %sms.to.masked(), template = sms.template.key(), "demo sms stored in outbox");
        Ok(())
    }

    fn is_demo(&self) -> bool {
        true
    }
}
