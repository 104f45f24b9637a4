//! The review of submitted orders: the queue, an order's detail, decisions
//! (approve, return with a reason) and cancellations at the counter.

use certhall_domain::audit::{Actor, AuditEvent, NewAuditEntry};
use certhall_domain::operator::{counter_reason, cst_day_start, may_review, DAY};
use certhall_domain::order::{OrderEvent, OrderState, Step};
use certhall_domain::steps::StepData;
use certhall_domain::wizard::EnterpriseInput;
use certhall_domain::{OrderId, Refusal};
use certhall_notify::{Sms, SmsTemplate};
use certhall_store::accounts;
use certhall_store::orders::{self, OrderRow};
use serde_json::json;

use super::{
    FieldView, LicenseCheck, OperatorInfo, QueueFilter, QueueItem, ReviewDecision, ReviewDetail,
    ReviewQueue, StepView, LICENSE_FIELDS, QUEUE_LIMIT, QUEUE_STATES,
};
use crate::orders::OrderActor;
use crate::{AccessRefusal, RequestMeta, Result, ServiceError, Services};

impl Services {
    /// The review queue, oldest first.
    pub async fn review_queue(&self, filter: &QueueFilter) -> Result<ReviewQueue> {
        let waiting = orders::in_state(&self.store, "in_review", QUEUE_LIMIT)
            .await?
            .len();
        let state = filter
            .state
            .as_deref()
            .and_then(|s| QUEUE_STATES.iter().find(|(k, _)| *k == s))
            .map_or("in_review", |(k, _)| *k);
        let from = filter.from.as_deref().and_then(cst_day_start);
        let to = filter
            .to
            .as_deref()
            .and_then(cst_day_start)
            .map(|t| t.plus(DAY));
        let application = filter
            .application
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty());
        let mut items = Vec::new();
        for order in orders::in_state(&self.store, state, QUEUE_LIMIT).await? {
            if from.is_some_and(|f| order.updated_at < f)
                || to.is_some_and(|t| order.updated_at >= t)
            {
                continue;
            }
            let steps = self.steps_of(order.id).await?;
            if let Some(a) = application {
                if !steps.application.as_ref().is_some_and(|d| d.is_named(a)) {
                    continue;
                }
            }
            items.push(QueueItem {
                applicant: steps.applicant_name().to_owned(),
                enterprise: steps.enterprise_name().to_owned(),
                application: steps.application_name().to_owned(),
                since: order.updated_at.display_cst(),
                order,
            });
        }
        Ok(ReviewQueue { waiting, items })
    }

    /// One order as the counter sees it.
    pub async fn review_detail(&self, who: &OperatorInfo, id: OrderId) -> Result<ReviewDetail> {
        let (order, account) = self.order_with_account(id).await?;
        let saved = self.steps_of(id).await?;
        let steps = Step::ALL
            .into_iter()
            .map(|step| StepView {
                step,
                fields: saved
                    .get(step)
                    .map(|d| fields(&d, Reader::Counter))
                    .unwrap_or_default(),
            })
            .collect();
        let materials = certhall_store::materials::of_order(&self.store, id.0).await?;
        let typed = EnterpriseInput::from(saved.enterprise.unwrap_or_default());
        let license_check = materials
            .iter()
            .find(|m| m.kind == certhall_domain::materials::MaterialKind::License)
            .and_then(|m| m.ocr.as_ref())
            .map(|read| {
                LICENSE_FIELDS
                    .iter()
                    .map(|(label, field)| LicenseCheck {
                        label,
                        typed: field(&typed).to_owned(),
                        read: field(&read.fields).to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ReviewDetail {
            change: self.change_of(&order).await?,
            authorization: certhall_store::materials::latest_of_order(&self.store, id.0).await?,
            checkout: certhall_store::checkouts::get(&self.store, id.0).await?,
            attempts: certhall_store::payments::attempts_of_order(&self.store, id.0).await?,
            refunds: certhall_store::payments::refunds_of_order(&self.store, id.0).await?,
            materials,
            license_check,
            own: may_review(&who.phone, &account.phone).is_err(),
            account_phone_masked: account.phone.masked(),
            events: orders::events(&self.store, id).await?,
            steps,
            order,
        })
    }

    /// The counter's notice board, newest first.
    pub async fn counter_notices(
        &self,
        limit: u32,
    ) -> Result<Vec<certhall_store::notices::Notice>> {
        Ok(certhall_store::notices::recent(&self.store, limit).await?)
    }

    /// Cancels an order at the counter, with a reason (a paid order is
    /// refunded in full). Not the operator's own order.
    pub async fn counter_cancel(
        &self,
        who: &OperatorInfo,
        id: OrderId,
        reason: &str,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let reason = counter_reason(reason, "取消原因")?;
        let (order, account) = self.order_with_account(id).await?;
        may_review(&who.phone, &account.phone)?;
        if !order.state.counter_cancellable() {
            return Err(Refusal::OrderStateConflict(order.state.label_zh()).into());
        }
        self.cancel_order(OrderActor::Operator(who.id), id, Some(&reason), meta)
            .await
    }

    /// Whether 审核通过 may be asked for on the page the operator saw
    /// (order `id` at `version`): refused for an order of the operator's
    /// own phone, and for a decision on a stale page (audited).
    pub async fn review_confirmable(
        &self,
        who: &OperatorInfo,
        id: OrderId,
        version: i64,
        meta: &RequestMeta,
    ) -> Result<()> {
        let (order, account) = self.order_with_account(id).await?;
        may_review(&who.phone, &account.phone)?;
        if order.state != OrderState::InReview || order.version != version {
            self.stale_decision(who, id, version, meta).await?;
            return Err(Refusal::ReviewAlreadyDecided(order.state.label_zh()).into());
        }
        Ok(())
    }

    /// Order `id` and the account it belongs to (the counter's view: any
    /// order).
    async fn order_with_account(
        &self,
        id: OrderId,
    ) -> Result<(OrderRow, certhall_domain::account::Account)> {
        let order = orders::get(&self.store, id)
            .await?
            .ok_or(Refusal::NotFound)?;
        let account = accounts::get(&self.store, order.account_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        Ok((order, account))
    }

    /// Audits a decision taken on a stale page (throttled).
    async fn stale_decision(
        &self,
        who: &OperatorInfo,
        id: OrderId,
        version: i64,
        meta: &RequestMeta,
    ) -> Result<()> {
        self.audit_access_refused(
            AccessRefusal {
                actor: Actor::Operator(who.id),
                reason: "stale_decision",
                target: json!({ "order": id, "version": version }),
            },
            meta,
        )
        .await
    }

    /// Approves or returns order `id`, if it is still at `version`.
    pub async fn review_decide(
        &self,
        who: &OperatorInfo,
        id: OrderId,
        version: i64,
        decision: &ReviewDecision,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let (_, account) = self.order_with_account(id).await?;
        if let Err(r) = may_review(&who.phone, &account.phone) {
            self.audit_alone(NewAuditEntry::new(
                Actor::Operator(who.id),
                meta.ip.clone(),
                AuditEvent::OrderTransitioned,
                json!({ "order": id, "refused": r.code() }),
            ))
            .await?;
            return Err(r.into());
        }
        let (event, reason) = match decision {
            ReviewDecision::Approve => (OrderEvent::Approve, None),
            ReviewDecision::Reject { step, reason } => (
                OrderEvent::Reject(*step),
                Some(counter_reason(reason, "退回原因")?),
            ),
        };
        let reason = reason.as_deref();
        let order = match self
            .order_event(
                OrderActor::Operator(who.id),
                id,
                version,
                event,
                reason,
                meta,
            )
            .await
        {
            Err(ServiceError::Refused(Refusal::OrderStateConflict(state))) => {
                self.stale_decision(who, id, version, meta).await?;
                return Err(Refusal::ReviewAlreadyDecided(state).into());
            }
            other => other?,
        };
        // The in-app message went with the transition; the SMS is a
        // courtesy on top: its failure does not undo the decision.
        let outcome = match decision {
            ReviewDecision::Approve if order.state == OrderState::AwaitingKeyWrite => {
                "审核通过，请登录并插入原 UKey，将变更后的新证书写入"
            }
            ReviewDecision::Approve => "审核通过，请登录选择介质与收货地址",
            ReviewDecision::Reject { .. } => "未通过，请登录查看退回原因并修改后重新提交",
        };
        let sms = Sms {
            to: account.phone.clone(),
            template: SmsTemplate::ReviewResult {
                order: id.0,
                outcome: outcome.to_owned(),
            },
        };
        if let Err(e) = self.sms.send(&sms).await {
            tracing::warn!(order = id.0, error = %e, "review result SMS not sent");
        }
        Ok(order)
    }
}

/// Who reads an order's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reader {
    /// The counter: everything, as typed.
    Counter,
    /// The applicant's order page: ID numbers masked, the application's
    /// code and certificate profile left out (they mean nothing to them).
    Applicant,
}

/// A step's data as labelled fields, in the step's order; fields left
/// empty are not shown.
pub(crate) fn fields(data: &StepData, reader: Reader) -> Vec<FieldView> {
    let counter = reader == Reader::Counter;
    let id_number = |id: &str| {
        if counter {
            id.to_owned()
        } else {
            crate::orders::mask_id_number(id)
        }
    };
    let mut out: Vec<(&str, String)> = Vec::new();
    match data {
        StepData::Identity(p) => {
            out.push(("姓名", p.name.clone()));
            out.push(("身份证号码", id_number(&p.id_number)));
            out.push(("手机号", p.phone.clone()));
        }
        StepData::Application(a) => {
            if counter {
                out.push(("应用", a.code.clone()));
            }
            out.push(("应用名称", a.name.clone()));
            if counter {
                out.push(("证书模板", a.profile.clone()));
            }
            if let Some(k) = a.key_kind {
                out.push(("密钥算法", k.label_zh().to_owned()));
            }
            if a.validity_days > 0 {
                out.push(("有效期（天）", a.validity_days.to_string()));
            }
            if let Some(fen) = a.price_fen {
                out.push(("价格", certhall_domain::application::format_price(fen)));
            }
        }
        StepData::Enterprise(e) => {
            out.push(("企业名称", e.name.clone()));
            out.push(("统一社会信用代码", e.uscc.clone()));
            out.push(("类型", e.kind.clone()));
            out.push(("法定代表人", e.legal_representative.clone()));
            out.push(("住所", e.address.clone()));
            out.push(("注册资本", e.registered_capital.clone()));
            out.push(("成立日期", e.established.clone()));
            out.push(("注册地", e.registered_place.clone()));
            out.push(("企业性质", e.nature.clone()));
        }
        StepData::Handling(h) => out.push(("办理方式", h.handling.label_zh().to_owned())),
        StepData::Materials(m) => {
            out.push(("授权方式", m.authorization.label_zh().to_owned()));
            if let Some(rep) = &m.legal_rep {
                out.push((
                    "法定代表人（短信授权）",
                    [
                        rep.name.clone(),
                        id_number(&rep.id_number),
                        rep.phone.clone(),
                    ]
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
                    .join(" · "),
                ));
            }
        }
    }
    out.into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(label, value)| FieldView {
            label: label.to_owned(),
            value,
        })
        .collect()
}
