//! Provider callbacks (payment and refund notifications): stored raw,
//! verified, applied by compare-and-swap, and their outcome audited.
//!
//! The routes are open to anyone. A sender whose callbacks were refused
//! [`REFUSED_PER_MINUTE`] times in the last minute is still answered and
//! its callbacks still verified — a genuine one is applied and stored as
//! always — but further refusals are neither stored nor audited, so junk
//! cannot fill the database or flood the audit chain.

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::payment::Channel;
use certhall_domain::Refusal;
use certhall_payment::{Callback, CallbackAnswer, Notice};
use certhall_store::payments::{self, NewCallback};
use serde_json::json;

use super::Applied;
use crate::{append_audit, RequestMeta, Result, Services};

/// Refused callbacks per sender per minute that are still stored and
/// audited.
pub const REFUSED_PER_MINUTE: i64 = 30;

/// The largest callback body kept: real notifications are under 4 KiB.
pub const MAX_CALLBACK_BYTES: usize = 16 * 1024;

impl Services {
    /// A callback from `channel`: stored raw, verified, then applied. The
    /// answer is what the provider expects (accepted also for a duplicate;
    /// refused for anything unverified or wrong, which is audited).
    pub async fn payment_callback(
        &self,
        channel: Channel,
        headers: &[(String, String)],
        body: &[u8],
        meta: &RequestMeta,
    ) -> Result<CallbackAnswer> {
        let Some(provider) = self.payments.provider(channel).cloned() else {
            return Err(Refusal::NotFound.into());
        };
        let now = self.clock.now();
        if body.len() > MAX_CALLBACK_BYTES {
            tracing::warn!(
                bytes = body.len(),
                "payment callback too large: refused without storing"
            );
            return Ok(provider.answer(false));
        }
        if let Some(ip) = meta.ip.as_deref() {
            let refused = payments::refused_from_ip_since(
                &self.store,
                ip,
                now.minus(std::time::Duration::from_secs(60)),
            )
            .await?;
            if refused >= REFUSED_PER_MINUTE
                && provider
                    .verify_callback(&Callback { headers, body }, now)
                    .is_err()
            {
                tracing::warn!(ip, "payment callback flood: refused without storing");
                return Ok(provider.answer(false));
            }
        }
        let kept: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(k, _)| k.starts_with("wechatpay-") || k == "content-type")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let id = payments::insert_callback(
            &self.store,
            &NewCallback {
                channel,
                headers: &json!(kept
                    .into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>())
                .to_string(),
                body,
                ip: meta.ip.as_deref(),
            },
            now,
        )
        .await?;
        let notice = match provider.verify_callback(&Callback { headers, body }, now) {
            Ok(n) => n,
            Err(e) => {
                let outcome = format!("refused_{}", e.code());
                self.record_callback(
                    id,
                    channel,
                    &outcome,
                    None,
                    None,
                    Some(&e.to_string()),
                    meta,
                )
                .await?;
                if e == certhall_payment::CallbackError::Probe {
                    tracing::info!("payment signature probe refused, as expected");
                } else {
                    tracing::warn!(error = %e, channel = channel.as_str(), "payment callback refused");
                }
                return Ok(provider.answer(false));
            }
        };
        match notice {
            Notice::Payment(p) => {
                let attempt = payments::attempt_by_no(&self.store, &p.out_trade_no).await?;
                let Some(attempt) = attempt.filter(|a| a.channel == channel) else {
                    self.record_callback(
                        id,
                        channel,
                        "refused_unknown_trade",
                        Some(&p.out_trade_no),
                        Some(&p.notification_id),
                        None,
                        meta,
                    )
                    .await?;
                    return Ok(provider.answer(false));
                };
                let applied = self
                    .apply_trade(&attempt, &p.state, "callback", meta)
                    .await?;
                self.record_callback(
                    id,
                    channel,
                    applied.outcome(),
                    Some(&p.out_trade_no),
                    Some(&p.notification_id),
                    None,
                    meta,
                )
                .await?;
                Ok(provider.answer(applied != Applied::AmountMismatch))
            }
            Notice::Refund(r) => {
                let Some(refund) = payments::refund_by_no(&self.store, &r.out_refund_no).await?
                else {
                    self.record_callback(
                        id,
                        channel,
                        "refused_unknown_refund",
                        Some(&r.out_trade_no),
                        Some(&r.notification_id),
                        None,
                        meta,
                    )
                    .await?;
                    return Ok(provider.answer(false));
                };
                self.apply_refund_status(&refund, &r.status, meta).await?;
                self.record_callback(
                    id,
                    channel,
                    "refund_applied",
                    Some(&r.out_trade_no),
                    Some(&r.notification_id),
                    None,
                    meta,
                )
                .await?;
                Ok(provider.answer(true))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_callback(
        &self,
        id: i64,
        channel: Channel,
        outcome: &str,
        out_trade_no: Option<&str>,
        notification_id: Option<&str>,
        detail: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        payments::set_callback_outcome(&mut tx, id, outcome, out_trade_no, notification_id, detail)
            .await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::System,
            meta,
            AuditEvent::PaymentCallback,
            json!({
                "callback": id, "channel": channel.as_str(), "outcome": outcome,
                "out_trade_no": out_trade_no, "notification_id": notification_id,
                "detail": detail,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
