//! Refunds: recorded in the transaction that decides them, submitted
//! after it commits, then driven by the provider's answers (and the job)
//! until final; the applicant is told at each end.

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::message::{MessageKind, NewMessage};
use certhall_domain::payment::{new_out_refund_no, RefundState};
use certhall_domain::{OrderId, Refusal};
use certhall_payment::{NewRefund, PaymentError, RefundStatus};
use certhall_store::orders::{self, OrderRow};
use certhall_store::payments::{self, AttemptRow, NewRefundRow, RefundRow};
use certhall_store::{messages, notices, WriteTx};
use serde_json::json;

use super::{provider_fault, system_meta};
use crate::{append_audit, RequestMeta, Result, Services};

impl Services {
    /// Records a full refund of a paid attempt (state `requested`) with
    /// its own number, and tells the applicant. Submitted after commit.
    pub(crate) async fn request_refund_tx(
        &self,
        tx: &mut WriteTx,
        order: &OrderRow,
        attempt: &AttemptRow,
        reason: &str,
        actor: &Actor,
    ) -> Result<Option<RefundRow>> {
        if payments::live_refund_of_attempt(tx, attempt.id)
            .await?
            .is_some()
        {
            return Ok(None); // refunded (or being refunded) already
        }
        let now = self.clock.now();
        let n = payments::refund_count(tx, order.id.0).await? + 1;
        let no = new_out_refund_no(
            order.id,
            u32::try_from(n).unwrap_or(0),
            &mut rand::rngs::OsRng,
        );
        let refund = payments::insert_refund(
            tx,
            &NewRefundRow {
                order_id: order.id.0,
                attempt_id: attempt.id,
                out_refund_no: &no,
                amount_fen: attempt.amount_fen,
                reason,
                requested_by: &actor.to_string(),
            },
            now,
        )
        .await?;
        append_audit(
            tx,
            self.clock.as_ref(),
            actor.clone(),
            &system_meta(),
            AuditEvent::RefundChanged,
            json!({
                "order": order.id, "refund": refund.id, "out_refund_no": no,
                "attempt": attempt.id, "amount_fen": attempt.amount_fen,
                "to": "requested", "reason": reason,
            }),
        )
        .await?;
        messages::insert(
            tx,
            order.account_id,
            &NewMessage {
                kind: MessageKind::System,
                title: format!("退款处理中（订单 {}）", order.id),
                body: format!(
                    "订单 {} 的 {} 元将按原支付方式退回（{}），一般 1–3 个工作日到账。",
                    order.id,
                    certhall_domain::money::yuan_decimal(attempt.amount_fen),
                    reason
                ),
                order_id: Some(order.id),
            },
            now,
        )
        .await?;
        Ok(Some(refund))
    }

    /// Submits (or asks about) the order's open refunds; errors are logged
    /// and left to the job.
    pub(crate) async fn submit_open_refunds_of(&self, order_id: OrderId) {
        let Ok(refunds) = payments::refunds_of_order(&self.store, order_id.0).await else {
            return;
        };
        for r in refunds.into_iter().filter(|r| !r.state.is_final()) {
            if let Err(e) = self.drive_refund(&r).await {
                tracing::warn!(error = %e, refund = r.id, "refund not submitted yet; the job retries");
            }
        }
    }

    /// One step of a refund: submit it (`requested`) or ask about it
    /// (`processing`), then apply the answer.
    pub(super) async fn drive_refund(&self, r: &RefundRow) -> Result<bool> {
        let attempt = payments::attempt_by_id(&self.store, r.attempt_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        let provider = self.provider_of(attempt.channel)?.clone();
        payments::refund_queried(&self.store, r.id, self.clock.now()).await?;
        let status = match r.state {
            RefundState::Requested => match provider
                .refund(&NewRefund {
                    out_trade_no: &attempt.out_trade_no,
                    out_refund_no: &r.out_refund_no,
                    refund_fen: r.amount_fen,
                    total_fen: attempt.amount_fen,
                    reason: &r.reason,
                })
                .await
            {
                Ok(status) => status,
                // The provider refused it for good (not enough balance,
                // refunded already, …): a person takes over, told by the
                // counter's notice board, instead of a resubmission every
                // tick forever.
                Err(PaymentError::Provider { code, message }) if !transient(&code) => {
                    RefundStatus::Abnormal(format!("{code}: {message}"))
                }
                Err(e) => return Err(provider_fault(e)),
            },
            _ => provider
                .query_refund(&attempt.out_trade_no, &r.out_refund_no)
                .await
                .map_err(provider_fault)?,
        };
        self.apply_refund_status(r, &status, &system_meta()).await
    }

    /// Applies what the provider says about a refund; true when it is now
    /// final.
    ///
    /// (A refund refused for good becomes `Abnormal`, see `transient`.)
    pub(super) async fn apply_refund_status(
        &self,
        r: &RefundRow,
        status: &RefundStatus,
        meta: &RequestMeta,
    ) -> Result<bool> {
        let (to, provider_id, at, detail) = match status {
            RefundStatus::Processing => (RefundState::Processing, None, None, None),
            RefundStatus::Succeeded { refund_id, at } => (
                RefundState::Succeeded,
                refund_id.as_deref(),
                Some(at.unwrap_or(self.clock.now())),
                None,
            ),
            RefundStatus::Closed => (RefundState::Closed, None, None, Some("退款已关闭")),
            RefundStatus::Abnormal(why) => (RefundState::Abnormal, None, None, Some(why.as_str())),
            // The provider never got it: submit again next time.
            RefundStatus::NotFound if r.state == RefundState::Processing => {
                (RefundState::Requested, None, None, None)
            }
            RefundStatus::NotFound => return Ok(false),
        };
        if !(r.state.may_become(to)
            || (r.state == RefundState::Processing && to == RefundState::Requested))
        {
            return Ok(r.state.is_final());
        }
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        if !payments::update_refund(&mut tx, r.id, r.state, to, provider_id, at, detail, now)
            .await?
        {
            return Ok(false); // someone else moved it
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::System,
            meta,
            AuditEvent::RefundChanged,
            json!({
                "order": r.order_id, "refund": r.id, "out_refund_no": r.out_refund_no,
                "from": r.state.as_str(), "to": to.as_str(), "detail": detail,
            }),
        )
        .await?;
        if to.is_final() {
            if let Some(order) = orders::get_tx(&mut tx, OrderId(r.order_id)).await? {
                let (title, body) = match to {
                    RefundState::Succeeded => (
                        format!("退款成功（订单 {}）", r.order_id),
                        format!(
                            "订单 {} 的 {} 元已按原支付方式退回，请留意到账。",
                            r.order_id,
                            certhall_domain::money::yuan_decimal(r.amount_fen)
                        ),
                    ),
                    _ => (
                        format!("退款需人工处理（订单 {}）", r.order_id),
                        format!(
                            "订单 {} 的退款未能自动完成，财务人员将与您联系，请保持电话畅通。",
                            r.order_id
                        ),
                    ),
                };
                messages::insert(
                    &mut tx,
                    order.account_id,
                    &NewMessage {
                        kind: MessageKind::System,
                        title,
                        body,
                        order_id: Some(OrderId(r.order_id)),
                    },
                    now,
                )
                .await?;
                if to != RefundState::Succeeded {
                    notices::insert(
                        &mut tx,
                        "refund_problem",
                        &format!("订单 {} 退款异常，需财务处理", r.order_id),
                        &format!("退款单号 {}：{}", r.out_refund_no, detail.unwrap_or("")),
                        Some(r.order_id),
                        now,
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(to.is_final())
    }
}

/// Provider error codes that mean "try again later" rather than "no":
/// WeChat Pay's `SYSTEM_ERROR` / `FREQUENCY_LIMITED`, Alipay's
/// `ACQ.SYSTEM_ERROR` and gateway code `20000` (service unavailable), and
/// HTTP 5xx answers without a code.
fn transient(code: &str) -> bool {
    code.contains("SYSTEM_ERROR")
        || code.contains("FREQUENCY_LIMITED")
        || code == "20000"
        || code.starts_with("HTTP_5")
}

#[cfg(test)]
mod tests {
    #[test]
    fn transient_codes() {
        for c in [
            "SYSTEM_ERROR",
            "FREQUENCY_LIMITED",
            "ACQ.SYSTEM_ERROR",
            "20000",
            "HTTP_502",
        ] {
            assert!(super::transient(c), "{c}");
        }
        for c in [
            "NOT_ENOUGH",
            "INVALID_REQUEST",
            "ACQ.TRADE_HAS_FINISHED",
            "HTTP_400",
        ] {
            assert!(!super::transient(c), "{c}");
        }
    }
}
