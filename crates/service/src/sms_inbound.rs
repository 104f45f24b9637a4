//! SMS received from phones (replies). The legal representative's
//! authorization (manual 2.3.1 step 5) will route 同意 / 拒绝 replies to the
//! pending order; until then every reply is recorded and audited.

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::Phone;
use certhall_store::sms::{inbound_insert, InboundEntry};
use serde_json::json;

use crate::{append_audit, RequestMeta, Result, Services};

/// What CertHall did with an inbound SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundOutcome {
    /// A short description, stored with the message.
    pub outcome: String,
}

impl Services {
    /// Receives an SMS from `from_input` with text `body`.
    pub async fn receive_sms(
        &self,
        from_input: &str,
        body: &str,
        meta: &RequestMeta,
    ) -> Result<InboundOutcome> {
        let from = Phone::parse(from_input)?;
        let body: String = body.trim().chars().take(500).collect();
        if body.is_empty() {
            return Err(certhall_domain::Refusal::MissingField("短信内容").into());
        }
        let outcome = "无待处理的授权请求，已记录".to_owned();
        let mut tx = self.store.begin_write().await?;
        inbound_insert(
            &mut tx,
            &InboundEntry {
                from: from.as_str().to_owned(),
                body: body.clone(),
                received_at: self.clock.now(),
                outcome: outcome.clone(),
            },
        )
        .await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Anonymous,
            meta,
            AuditEvent::SmsInbound,
            json!({ "from": from.masked(), "chars": body.chars().count(), "outcome": outcome }),
        )
        .await?;
        tx.commit().await?;
        Ok(InboundOutcome { outcome })
    }
}
