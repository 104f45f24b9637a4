//! The review of submitted orders: the queue, an order's detail, decisions
//! (approve, return with a reason) and cancellations at the counter.

use certhall_domain::audit::{Actor, AuditEvent, NewAuditEntry};
use certhall_domain::operator::{counter_reason, cst_day_start, may_review, DAY};
use certhall_domain::order::{OrderEvent, OrderState, Step};
use certhall_domain::Refusal;
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
            let step2 = orders::step_data(&self.store, order.id, Step::Application).await?;
            if let Some(a) = application {
                if !step2.as_ref().is_some_and(|d| mentions(d, a)) {
                    continue;
                }
            }
            let step1 = orders::step_data(&self.store, order.id, Step::Identity).await?;
            let step3 = orders::step_data(&self.store, order.id, Step::Enterprise).await?;
            items.push(QueueItem {
                applicant: text_at(step1.as_ref(), &["name"]),
                enterprise: text_at(step3.as_ref(), &["name"]),
                application: text_at(
                    step2.as_ref(),
                    &["application_name", "name", "application", "code"],
                ),
                since: order.updated_at.display_cst(),
                order,
            });
        }
        Ok(ReviewQueue { waiting, items })
    }

    /// One order as the counter sees it.
    pub async fn review_detail(&self, who: &OperatorInfo, id: i64) -> Result<ReviewDetail> {
        let (order, account) = self.order_with_account(id).await?;
        let mut steps = Vec::new();
        for step in Step::ALL {
            let data = orders::step_data(&self.store, id, step).await?;
            steps.push(StepView {
                step,
                fields: data.as_ref().map(|d| fields(step, d)).unwrap_or_default(),
            });
        }
        let materials = certhall_store::materials::of_order(&self.store, id).await?;
        let typed = orders::step_data(&self.store, id, Step::Enterprise).await?;
        let license_check = materials
            .iter()
            .find(|m| m.kind == certhall_domain::materials::MaterialKind::License)
            .and_then(|m| m.ocr.as_ref())
            .map(|read| {
                LICENSE_FIELDS
                    .iter()
                    .map(|(key, label)| LicenseCheck {
                        label,
                        typed: text_at(typed.as_ref(), &[key]),
                        read: text_at(Some(read), &[key]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ReviewDetail {
            authorization: certhall_store::materials::latest_of_order(&self.store, id).await?,
            checkout: certhall_store::checkouts::get(&self.store, id).await?,
            attempts: certhall_store::payments::attempts_of_order(&self.store, id).await?,
            refunds: certhall_store::payments::refunds_of_order(&self.store, id).await?,
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
        id: i64,
        reason: &str,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let reason = counter_reason(reason, "取消原因")?;
        let (order, account) = self.order_with_account(id).await?;
        may_review(&who.phone, &account.phone)?;
        if !matches!(
            order.state,
            OrderState::Approved | OrderState::AwaitingPayment | OrderState::Paid
        ) {
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
        id: i64,
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
        id: i64,
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
        id: i64,
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
        id: i64,
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
            ReviewDecision::Approve => "审核通过，请登录选择介质与收货地址",
            ReviewDecision::Reject { .. } => "未通过，请登录查看退回原因并修改后重新提交",
        };
        let sms = Sms {
            to: account.phone.clone(),
            template: SmsTemplate::ReviewResult {
                order: id,
                outcome: outcome.to_owned(),
            },
        };
        if let Err(e) = self.sms.send(&sms).await {
            tracing::warn!(order = id, error = %e, "review result SMS not sent");
        }
        Ok(order)
    }
}

/// True when any string in `data` (top level) equals `needle`.
fn mentions(data: &serde_json::Value, needle: &str) -> bool {
    match data {
        serde_json::Value::Object(m) => m.values().any(|v| v.as_str() == Some(needle)),
        serde_json::Value::String(s) => s == needle,
        _ => false,
    }
}

/// The first of `keys` that holds text.
pub(crate) fn text_at(data: Option<&serde_json::Value>, keys: &[&str]) -> String {
    data.and_then(|d| keys.iter().find_map(|k| d.get(*k).and_then(|v| v.as_str())))
        .unwrap_or_default()
        .to_owned()
}

/// A step's data as labelled fields, in the stored order.
pub(crate) fn fields(step: Step, data: &serde_json::Value) -> Vec<FieldView> {
    let Some(map) = data.as_object() else {
        return vec![FieldView {
            label: "内容".into(),
            value: data.to_string(),
        }];
    };
    map.iter()
        .filter(|(k, v)| !(k.as_str() == "legal_rep" && v.is_null()))
        .map(|(k, v)| FieldView {
            label: label_of(step, k).map_or_else(|| k.clone(), str::to_owned),
            value: match (k.as_str(), v) {
                ("price_fen", serde_json::Value::Number(n)) => n
                    .as_i64()
                    .map(certhall_domain::application::format_price)
                    .unwrap_or_else(|| n.to_string()),
                ("authorization", serde_json::Value::String(a)) => match a.as_str() {
                    "legal_rep_sms" => "法人短信授权".to_owned(),
                    "letter" => "上传授权委托书".to_owned(),
                    other => other.to_owned(),
                },
                ("legal_rep", serde_json::Value::Object(m)) => ["name", "id_number", "phone"]
                    .iter()
                    .filter_map(|k| m.get(*k).and_then(|v| v.as_str()))
                    .collect::<Vec<_>>()
                    .join(" · "),
                ("handling", serde_json::Value::String(h)) => match h.as_str() {
                    "online" => "在线办理".to_owned(),
                    "counter" => "柜台办理".to_owned(),
                    other => other.to_owned(),
                },
                (_, serde_json::Value::String(s)) => s.clone(),
                (_, serde_json::Value::Null) => String::new(),
                (_, other) => other.to_string(),
            },
        })
        .collect()
}

fn label_of(step: Step, key: &str) -> Option<&'static str> {
    Some(match (step, key) {
        (Step::Identity, "name") => "姓名",
        (Step::Enterprise, "name") => "企业名称",
        (Step::Application, "application" | "code") => "应用",
        (Step::Application, "name" | "application_name") => "应用名称",
        (_, "id_number") => "身份证号码",
        (_, "phone") => "手机号",
        (_, "uscc") => "统一社会信用代码",
        (_, "kind") => "类型",
        (_, "legal_representative") => "法定代表人",
        (_, "address") => "住所",
        (_, "registered_capital") => "注册资本",
        (_, "established") => "成立日期",
        (_, "registered_place") => "注册地",
        (_, "nature") => "企业性质",
        (_, "handling") => "办理方式",
        (_, "price_fen") => "价格",
        (_, "profile") => "证书模板",
        (_, "validity_days") => "有效期（天）",
        (_, "authorization") => "授权方式",
        (_, "legal_rep") => "法定代表人（短信授权）",
        _ => return None,
    })
}
