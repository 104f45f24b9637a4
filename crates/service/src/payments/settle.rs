//! Applying what a provider says about an attempt (a callback's or a
//! query's answer). Every branch runs under the order's payment lock and
//! changes the attempt by compare-and-swap. A success is decided by
//! [`certhall_domain::payment::decide_success`] — apply, duplicate, wrong
//! amount, or apply-and-refund — and written with the order's transition,
//! the messages and the audit entries in one transaction.

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::message::{MessageKind, NewMessage};
use certhall_domain::order::{OrderEvent, OrderState};
use certhall_domain::payment::{decide_success, AttemptState, SuccessDecision};
use certhall_domain::{OrderId, Refusal};
use certhall_payment::TradeState;
use certhall_store::payments::{self, AttemptRow, Settlement};
use certhall_store::{messages, notices, orders, LockKey, WriteTx};
use serde_json::json;

use super::Applied;
use crate::orders::OrderActor;
use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

impl Services {
    /// Applies what the provider says about an attempt (a callback's or a
    /// query's answer). Only `paying` moves to closed or failed; a payment
    /// is applied from any state but `paid`.
    pub(crate) async fn apply_trade(
        &self,
        a: &AttemptRow,
        state: &TradeState,
        by: &str,
        meta: &RequestMeta,
    ) -> Result<Applied> {
        match state {
            TradeState::Paid(paid) => self.apply_success(a, paid, by, meta).await,
            TradeState::Closed | TradeState::Failed(_) => {
                let applied = self.settle_unpaid(a, state, by, meta).await?;
                if applied == Applied::Failed {
                    // A failed payment's number is closed at the provider
                    // too, so its QR code cannot be paid later (best
                    // effort: the job's late check covers the rest).
                    if let Some(p) = self.payments.provider(a.channel) {
                        if let Err(e) = p.close(&a.out_trade_no).await {
                            tracing::info!(error = %e, attempt = a.id, "failed payment not closed at the provider");
                        }
                    }
                }
                Ok(applied)
            }
            TradeState::NotPaid | TradeState::UserPaying | TradeState::NotFound => {
                Ok(Applied::Unchanged)
            }
        }
    }

    async fn settle_unpaid(
        &self,
        a: &AttemptRow,
        state: &TradeState,
        by: &str,
        meta: &RequestMeta,
    ) -> Result<Applied> {
        let (to, failure) = match state {
            TradeState::Failed(why) => (AttemptState::Failed, Some(why.as_str())),
            _ => (AttemptState::Closed, None),
        };
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        // The same lock as a success: a callback being applied and a close
        // never interleave.
        tx.lock(LockKey::OrderPayment(a.order_id)).await?;
        let moved = payments::settle_attempt(
            &mut tx,
            &Settlement {
                id: a.id,
                to,
                by,
                transaction_id: None,
                paid_at: None,
                failure,
            },
            now,
        )
        .await?;
        if !moved {
            return Ok(Applied::Duplicate);
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::System,
            meta,
            AuditEvent::PaymentSettled,
            json!({
                "order": a.order_id, "attempt": a.id, "out_trade_no": a.out_trade_no,
                "to": to.as_str(), "by": by, "failure": failure,
            }),
        )
        .await?;
        if to == AttemptState::Failed {
            if let Some(order) = orders::get_tx(&mut tx, OrderId(a.order_id)).await? {
                messages::insert(
                    &mut tx,
                    order.account_id,
                    &NewMessage {
                        kind: MessageKind::System,
                        title: format!("支付未成功（订单 {}）", a.order_id),
                        body: format!(
                            "订单 {} 的{}未成功：{}。请回到订单页面重新支付。",
                            a.order_id,
                            a.channel.label_zh(),
                            failure.unwrap_or("支付失败")
                        ),
                        order_id: Some(OrderId(a.order_id)),
                    },
                    now,
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(if to == AttemptState::Failed {
            Applied::Failed
        } else {
            Applied::Closed
        })
    }

    /// Marks the attempt paid from whatever unpaid state it is in; false if
    /// it is paid already.
    async fn mark_paid(
        &self,
        tx: &mut WriteTx,
        current: &AttemptRow,
        paid: &certhall_payment::PaidTrade,
        by: &str,
    ) -> Result<bool> {
        let now = self.clock.now();
        Ok(match current.state {
            AttemptState::Paying => {
                payments::settle_attempt(
                    tx,
                    &Settlement {
                        id: current.id,
                        to: AttemptState::Paid,
                        by,
                        transaction_id: Some(&paid.transaction_id),
                        paid_at: Some(paid.paid_at.unwrap_or(now)),
                        failure: None,
                    },
                    now,
                )
                .await?
            }
            AttemptState::Closed | AttemptState::Failed => {
                payments::settle_late_payment(
                    tx,
                    current.id,
                    &paid.transaction_id,
                    Some(paid.paid_at.unwrap_or(now)),
                    now,
                )
                .await?
            }
            AttemptState::Paid => false,
        })
    }

    async fn apply_success(
        &self,
        a: &AttemptRow,
        paid: &certhall_payment::PaidTrade,
        by: &str,
        meta: &RequestMeta,
    ) -> Result<Applied> {
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::OrderPayment(a.order_id)).await?;
        // Read again inside the lock: the row may have moved.
        let current = payments::attempt_by_no_tx(&mut tx, &a.out_trade_no)
            .await?
            .ok_or(Refusal::NotFound)?;
        let order = orders::get_tx(&mut tx, OrderId(a.order_id))
            .await?
            .ok_or(Refusal::NotFound)?;
        // What the order owes: step 6's total (a renewal order's price,
        // which has no step 6), fixed when payment became due.
        let owes = match order.state {
            OrderState::AwaitingPayment => order.amount_fen,
            _ => None,
        };
        let decision = decide_success(current.state, current.amount_fen, paid.amount_fen, owes);
        if let SuccessDecision::Duplicate = decision {
            return Ok(Applied::Duplicate);
        }
        if let SuccessDecision::AmountMismatch { expected, got } = decision {
            append_audit(
                &mut tx,
                self.clock.as_ref(),
                Actor::System,
                meta,
                AuditEvent::PaymentSettled,
                json!({
                    "order": a.order_id, "attempt": a.id, "out_trade_no": a.out_trade_no,
                    "refused": "amount_mismatch", "expected_fen": expected, "got_fen": got,
                    "by": by,
                }),
            )
            .await?;
            tx.commit().await?;
            tracing::error!(
                attempt = a.id,
                expected,
                got,
                "payment amount does not match the attempt; nothing applied"
            );
            return Ok(Applied::AmountMismatch);
        }
        // Under the lock the row read above cannot have moved; should it
        // ever, that is a fault to retry (the provider retries), never a
        // silent "duplicate" that loses the payment.
        if !self.mark_paid(&mut tx, &current, paid, by).await? {
            return Err(ServiceError::Internal(format!(
                "attempt {} moved under the payment lock",
                current.id
            )));
        }
        let applied = match decision {
            SuccessDecision::Apply => {
                self.order_event_tx(
                    &mut tx,
                    OrderActor::System,
                    OrderId(a.order_id),
                    None,
                    OrderEvent::PaymentSucceeded,
                    None,
                    meta,
                )
                .await?;
                notices::insert(
                    &mut tx,
                    "paid",
                    &if order.kind == certhall_domain::order::OrderKind::Renewal {
                        format!("订单 {} 已支付（证书更新，申请人在线写入）", a.order_id)
                    } else {
                        format!("订单 {} 已支付，待制证", a.order_id)
                    },
                    &format!(
                        "{}，{}，{} 元。",
                        order.enterprise_name.clone().unwrap_or_default(),
                        a.channel.label_zh(),
                        certhall_domain::money::yuan_decimal(a.amount_fen)
                    ),
                    Some(a.order_id),
                    now,
                )
                .await?;
                Applied::Paid
            }
            _ => {
                let reason = match order.state {
                    OrderState::Cancelled => "订单已取消，款项原路退回",
                    OrderState::Paid | OrderState::AwaitingKeyWrite | OrderState::Completed => {
                        "重复支付，款项原路退回"
                    }
                    _ => "订单金额已变更或不再待支付，款项原路退回",
                };
                self.request_refund_tx(&mut tx, &order, &current, reason, &Actor::System)
                    .await?;
                Applied::Refunding
            }
        };
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::System,
            meta,
            AuditEvent::PaymentSettled,
            json!({
                "order": a.order_id, "attempt": a.id, "out_trade_no": a.out_trade_no,
                "from": current.state.as_str(), "to": "paid", "by": by,
                "transaction_id": paid.transaction_id, "amount_fen": paid.amount_fen,
                "refund": applied == Applied::Refunding,
            }),
        )
        .await?;
        tx.commit().await?;
        if applied == Applied::Refunding {
            self.submit_open_refunds_of(OrderId(a.order_id)).await;
        }
        Ok(applied)
    }
}
