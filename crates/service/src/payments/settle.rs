//! Applying what a provider says about an attempt (a callback's or a
//! query's answer): only `paying` moves, by compare-and-swap; a success is
//! decided by [`certhall_domain::payment::decide_success`] (apply,
//! duplicate, wrong amount, or apply-and-refund) and written with the
//! order's transition, the messages and the audit entries in one
//! transaction.

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::message::{MessageKind, NewMessage};
use certhall_domain::order::{OrderEvent, OrderState};
use certhall_domain::payment::{decide_success, AttemptState, SuccessDecision};
use certhall_domain::Refusal;
use certhall_payment::TradeState;
use certhall_store::payments::{self, AttemptRow, Settlement};
use certhall_store::{messages, notices, orders, LockKey};
use serde_json::json;

use super::Applied;
use crate::orders::OrderActor;
use crate::{append_audit, RequestMeta, Result, Services};

impl Services {
    /// Applies what the provider says about an attempt (a callback's or a
    /// query's answer). Only `paying` moves (compare-and-swap).
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
                let (to, failure) = match state {
                    TradeState::Failed(why) => (AttemptState::Failed, Some(why.as_str())),
                    _ => (AttemptState::Closed, None),
                };
                let now = self.clock.now();
                let mut tx = self.store.begin_write().await?;
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
                    if let Some(order) = orders::get_tx(&mut tx, a.order_id).await? {
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
                                order_id: Some(a.order_id),
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
            TradeState::NotPaid | TradeState::UserPaying | TradeState::NotFound => {
                Ok(Applied::Unchanged)
            }
        }
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
        let order = orders::get_tx(&mut tx, a.order_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        let decision = decide_success(
            current.state,
            current.amount_fen,
            paid.amount_fen,
            order.state == OrderState::AwaitingPayment,
        );
        let applied = match decision {
            SuccessDecision::Duplicate => return Ok(Applied::Duplicate),
            SuccessDecision::AmountMismatch { expected, got } => {
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
            SuccessDecision::Apply => {
                let moved = payments::settle_attempt(
                    &mut tx,
                    &Settlement {
                        id: a.id,
                        to: AttemptState::Paid,
                        by,
                        transaction_id: Some(&paid.transaction_id),
                        paid_at: Some(paid.paid_at.unwrap_or(now)),
                        failure: None,
                    },
                    now,
                )
                .await?;
                if !moved {
                    return Ok(Applied::Duplicate);
                }
                self.order_event_tx(
                    &mut tx,
                    OrderActor::System,
                    a.order_id,
                    None,
                    OrderEvent::PaymentSucceeded,
                    None,
                    meta,
                )
                .await?;
                notices::insert(
                    &mut tx,
                    "paid",
                    &format!("订单 {} 已支付，待制证", a.order_id),
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
            SuccessDecision::ApplyAndRefund => {
                let moved = match current.state {
                    AttemptState::Paying => {
                        payments::settle_attempt(
                            &mut tx,
                            &Settlement {
                                id: a.id,
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
                    _ => {
                        payments::settle_late_payment(
                            &mut tx,
                            a.id,
                            &paid.transaction_id,
                            paid.paid_at,
                            now,
                        )
                        .await?
                    }
                };
                if !moved {
                    return Ok(Applied::Duplicate);
                }
                let reason = match order.state {
                    OrderState::Cancelled => "订单已取消，款项原路退回",
                    OrderState::AwaitingPayment => "支付单已关闭后到账，款项原路退回",
                    _ => "重复支付，款项原路退回",
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
                "to": "paid", "by": by, "transaction_id": paid.transaction_id,
                "amount_fen": paid.amount_fen, "refund": applied == Applied::Refunding,
            }),
        )
        .await?;
        tx.commit().await?;
        if applied == Applied::Refunding {
            self.submit_open_refunds_of(a.order_id).await;
        }
        Ok(applied)
    }
}
