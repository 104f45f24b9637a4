//! SMS received from phones (replies). A reply from a phone with a pending
//! legal-representative authorization (manual 2.3.1 第五步 法人授权)
//! authorizes (同意) or refuses (拒绝) that order; anything else — another
//! number, unclear text, a reply after 72 hours — changes nothing. Every
//! reply is recorded with what was done with it, and audited.

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::materials::{
    reply_effect, split_order_number, AuthorizationOutcome, LegalRepReply, PendingAuthorization,
    ReplyEffect,
};
use certhall_domain::{OrderId, Phone};
use certhall_store::materials;
use certhall_store::sms::{inbound_insert, InboundEntry};
use certhall_store::LockKey;
use serde_json::json;

use crate::orders::OrderActor;
use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

/// What CertHall did with an inbound SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundOutcome {
    /// A short description, stored with the message.
    pub outcome: String,
    /// The order the reply decided, if it decided one.
    pub order: Option<OrderId>,
}

/// Recorded when no authorization waits for the phone.
const NOTHING_PENDING: &str = "该号码无待处理的授权请求，已记录，未改变任何订单";

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
        let now = self.clock.now();
        let (answer, named_order) = split_order_number(&body);
        let reply = LegalRepReply::parse(&answer);
        let mut tx = self.store.begin_write().await?;
        // Two replies from one phone at once are taken one after the other.
        tx.lock(LockKey::Phone(from.as_str())).await?;
        let pending = materials::pending_for_phone(&mut tx, from.as_str()).await?;
        let chosen = match named_order {
            Some(n) => pending.iter().find(|a| a.order_id == n),
            None if pending.len() == 1 => pending.first(),
            None => None,
        };
        let (outcome, decided) = match chosen {
            None if pending.is_empty() => (NOTHING_PENDING.to_owned(), None),
            None if named_order.is_some() => (
                "回复中的订单号没有待处理的授权请求，未改变任何订单".to_owned(),
                None,
            ),
            None => (ReplyEffect::IgnoredAmbiguous.outcome_zh().to_owned(), None),
            Some(request) => {
                let effect = reply_effect(
                    PendingAuthorization {
                        requested_at: request.requested_at,
                    },
                    reply,
                    now,
                );
                let step = effect.decision().map(|(closed_as, event)| {
                    let reason = (closed_as == AuthorizationOutcome::Refused)
                        .then_some("法定代表人回复拒绝");
                    (closed_as, event, reason)
                });
                let mut decided = None;
                let mut text = format!("订单{}：{}", request.order_id, effect.outcome_zh());
                let closed = match step {
                    Some((closed_as, _, _)) => {
                        materials::close(&mut tx, request.id, closed_as, now).await?
                    }
                    None => false,
                };
                if let (true, Some((_, event, reason))) = (closed, step) {
                    match self
                        .order_event_tx(
                            &mut tx,
                            OrderActor::System,
                            OrderId(request.order_id),
                            None,
                            event,
                            reason,
                            meta,
                        )
                        .await
                    {
                        Ok(_) => decided = Some(request.order_id),
                        // The order was cancelled meanwhile: the request is
                        // closed, the order stays as it is.
                        Err(ServiceError::Refused(r)) => {
                            text =
                                format!("订单{}：{}，订单未改变", request.order_id, r.message_zh());
                        }
                        Err(e) => return Err(e),
                    }
                }
                (text, decided)
            }
        };
        inbound_insert(
            &mut tx,
            &InboundEntry {
                from: from.as_str().to_owned(),
                body: body.clone(),
                received_at: now,
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
            json!({
                "from": from.masked(), "chars": body.chars().count(),
                "outcome": outcome, "order": decided,
            }),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(from = %from.masked(), order = ?decided, %outcome, "inbound SMS");
        Ok(InboundOutcome {
            outcome,
            order: decided.map(OrderId),
        })
    }
}
