//! The counter console (柜台端, issue 5 item 7): operators, their two-step
//! login, and the review of orders submitted with an authorization letter.
//!
//! Login: username + password (argon2id; an unknown username costs the
//! same time), then a code by SMS to the operator's phone under the
//! applicant's code policy ([`certhall_domain::otp::OtpPolicy`]: send
//! limits, five minutes, single use, five tries). Each failure of either
//! step counts towards the lock
//! ([`certhall_domain::operator::CounterLoginLimits`]); every attempt is
//! audited. The session lives in `operator_sessions`, apart from
//! applicants'.
//!
//! Review: decisions go through [`Services::order_event`] with
//! [`crate::orders::OrderActor::Operator`], so they are compare-and-swapped,
//! audited and messaged like every transition; the loser of two
//! simultaneous decisions is told the order was already handled.
//!
//! Here: the types the pages show and the operators themselves (demo
//! operator, adding one, the 制证 permission); `login.rs`: the two-step
//! login and sessions; `review.rs`: the queue, the detail, decisions.

mod certificates;
mod login;
mod review;

pub use certificates::{CounterRevocation, COUNTER_REASONS};
pub(crate) use review::{fields, Reader};

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::operator::{check_new_password, hash_password, OperatorRole, Username};
use certhall_domain::order::Step;
use certhall_domain::session::SessionToken;
use certhall_domain::wizard::EnterpriseInput;
use certhall_domain::{OperatorId, Phone, Refusal};
use certhall_store::operators::{self, OperatorRow};
use certhall_store::orders::{OrderEventRow, OrderRow};
use rand::rngs::OsRng;
use serde_json::json;

use crate::{append_audit, RequestMeta, Result, Services};

/// A logged-in operator, as every counter request sees them.
#[derive(Debug, Clone)]
pub struct OperatorInfo {
    /// Operator id.
    pub id: OperatorId,
    /// Login name.
    pub username: String,
    /// Their phone (orders of the account with this phone are not theirs
    /// to review).
    pub phone: Phone,
    /// Role.
    pub role: OperatorRole,
    /// Holds the 制证 permission.
    pub producer: bool,
    /// The session's storage key.
    pub session_key: String,
}

/// The password was right; the code is on its way.
#[derive(Debug, Clone)]
pub struct PasswordAccepted {
    /// Token of the half-done login, for the `ch_counter` cookie.
    pub pending: SessionToken,
    /// Where the code went, masked.
    pub phone_masked: String,
    /// Minutes the code is valid.
    pub valid_minutes: u64,
}

/// Which orders the queue shows.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// `in_review` (default), `returned` or `approved`.
    pub state: Option<String>,
    /// Application code or name (step 2), exact.
    pub application: Option<String>,
    /// Entered the state on or after this day (`YYYY-MM-DD`, CST).
    pub from: Option<String>,
    /// Entered the state on or before this day (`YYYY-MM-DD`, CST).
    pub to: Option<String>,
}

/// The states the queue may be filtered by, with their labels.
pub const QUEUE_STATES: [(&str, &str); 6] = [
    ("in_review", "待审核"),
    ("returned", "已退回"),
    ("approved", "已通过"),
    ("awaiting_payment", "待支付"),
    ("paid", "已支付待制证"),
    ("cancelled", "已取消"),
];

/// One line of the queue.
#[derive(Debug, Clone)]
pub struct QueueItem {
    /// The order.
    pub order: OrderRow,
    /// 经办人 (step 1 name), if typed.
    pub applicant: String,
    /// 企业名称 (step 3), if typed.
    pub enterprise: String,
    /// 应用 (step 2), if chosen.
    pub application: String,
    /// Since when it waits (CST).
    pub since: String,
}

/// The review queue.
#[derive(Debug, Clone)]
pub struct ReviewQueue {
    /// Orders waiting for review, whatever the filter.
    pub waiting: usize,
    /// The orders that pass the filter, oldest first.
    pub items: Vec<QueueItem>,
}

/// One field the applicant typed.
#[derive(Debug, Clone)]
pub struct FieldView {
    /// Label (Chinese where known, else the key).
    pub label: String,
    /// Value as text.
    pub value: String,
}

/// What the applicant typed at one step.
#[derive(Debug, Clone)]
pub struct StepView {
    /// The step.
    pub step: Step,
    /// Its fields; empty when nothing was typed.
    pub fields: Vec<FieldView>,
}

/// Everything the detail page shows.
#[derive(Debug, Clone)]
pub struct ReviewDetail {
    /// The order.
    pub order: OrderRow,
    /// The applicant account's phone, masked.
    pub account_phone_masked: String,
    /// True when the order belongs to the operator's own phone.
    pub own: bool,
    /// Steps 1–5.
    pub steps: Vec<StepView>,
    /// History, oldest first.
    pub events: Vec<OrderEventRow>,
    /// The images (license and step 5), without bytes.
    pub materials: Vec<certhall_store::materials::MaterialInfo>,
    /// The license's fields as typed beside what OCR read (when it read).
    pub license_check: Vec<LicenseCheck>,
    /// The legal representative's newest authorization request.
    pub authorization: Option<certhall_store::materials::AuthorizationRow>,
    /// Step 6 as confirmed (key model, address, invoice, amount).
    pub checkout: Option<certhall_store::checkouts::CheckoutRow>,
    /// Payment attempts, oldest first.
    pub attempts: Vec<certhall_store::payments::AttemptRow>,
    /// Refunds, oldest first.
    pub refunds: Vec<certhall_store::payments::RefundRow>,
    /// 证书变更: the certificate changed and what changes.
    pub change: Option<crate::change::ChangeView>,
}

/// One license field: typed at step 3, and read by OCR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseCheck {
    /// Shown name.
    pub label: &'static str,
    /// As typed (saved at step 3).
    pub typed: String,
    /// As read from the image.
    pub read: String,
}

impl LicenseCheck {
    /// True when both agree (ignoring spaces).
    pub fn agrees(&self) -> bool {
        let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        squash(&self.typed) == squash(&self.read)
    }
}

/// The license fields compared: label, and the field of step 3's form.
type LicenseField = (&'static str, fn(&EnterpriseInput) -> &str);
const LICENSE_FIELDS: [LicenseField; 7] = [
    ("企业名称", |e| &e.name),
    ("统一社会信用代码", |e| &e.uscc),
    ("类型", |e| &e.kind),
    ("法定代表人", |e| &e.legal_representative),
    ("住所", |e| &e.address),
    ("注册资本", |e| &e.registered_capital),
    ("成立日期", |e| &e.established),
];

/// A decision on an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewDecision {
    /// 审核通过.
    Approve,
    /// 退回: to this step, with this reason.
    Reject {
        /// The step to fix.
        step: Step,
        /// Why (required).
        reason: String,
    },
}

const QUEUE_LIMIT: u32 = 500;

/// Demo mode's counter operator.
pub const DEMO_OPERATOR: &str = "guitai";
/// Its password (demo only).
pub const DEMO_OPERATOR_PASSWORD: &str = "Demo-Counter-2026";
/// Its phone (not the demo applicant's: nobody reviews their own order).
pub const DEMO_OPERATOR_PHONE: &str = "13700137000";

impl Services {
    /// Demo mode's counter operator (username [`DEMO_OPERATOR`], password
    /// [`DEMO_OPERATOR_PASSWORD`], codes to [`DEMO_OPERATOR_PHONE`]'s
    /// outbox), added once.
    pub async fn ensure_demo_operator(&self) -> Result<()> {
        if let Some(o) = operators::list(&self.store)
            .await?
            .into_iter()
            .find(|o| o.username == DEMO_OPERATOR)
        {
            // Demo data folders from before the 制证 permission existed.
            if !o.producer {
                self.set_producer(DEMO_OPERATOR, true, Actor::System)
                    .await?;
            }
            return Ok(());
        }
        self.add_operator(
            DEMO_OPERATOR,
            DEMO_OPERATOR_PHONE,
            "operator",
            DEMO_OPERATOR_PASSWORD,
            Actor::System,
        )
        .await?;
        self.set_producer(DEMO_OPERATOR, true, Actor::System)
            .await?;
        Ok(())
    }

    /// Grants or withdraws the 制证 permission (`certhall operator
    /// producer`).
    pub async fn set_producer(
        &self,
        username: &str,
        producer: bool,
        actor: Actor,
    ) -> Result<OperatorRow> {
        let op = operators::list(&self.store)
            .await?
            .into_iter()
            .find(|o| o.username == username)
            .ok_or(Refusal::NotFound)?;
        let mut tx = self.store.begin_write().await?;
        operators::set_producer(&mut tx, op.id, producer).await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor,
            &RequestMeta::default(),
            AuditEvent::OperatorPermissionChanged,
            json!({ "operator": op.id, "username": op.username, "producer": producer }),
        )
        .await?;
        let row = operators::get_tx(&mut tx, op.id)
            .await?
            .ok_or(Refusal::NotFound)?;
        tx.commit().await?;
        Ok(row)
    }

    /// Adds an operator (`certhall operator add`).
    pub async fn add_operator(
        &self,
        username: &str,
        phone: &str,
        role: &str,
        password: &str,
        actor: Actor,
    ) -> Result<OperatorRow> {
        let username = Username::parse(username)?;
        let phone = Phone::parse(phone)?;
        let role: OperatorRole = role.parse()?;
        check_new_password(&username, password)?;
        let hash = hash_password(&mut OsRng, password)?;
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        if let Some(other) = operators::by_phone(&mut tx, &phone).await? {
            return Err(if other.username == username.as_str() {
                Refusal::OperatorExists(other.username)
            } else {
                Refusal::OperatorPhoneTaken(other.username)
            }
            .into());
        }
        let id = match operators::create(&mut tx, &username, &phone, role, &hash, now).await {
            Ok(id) => id,
            Err(e) if e.is_unique_violation() => {
                // The username, or the phone taken at the same moment.
                return Err(match operators::by_phone(&mut tx, &phone).await {
                    Ok(Some(other)) if other.username != username.as_str() => {
                        Refusal::OperatorPhoneTaken(other.username)
                    }
                    _ => Refusal::OperatorExists(username.as_str().to_owned()),
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor,
            &RequestMeta::default(),
            AuditEvent::OperatorAdded,
            json!({
                "operator": id,
                "username": username.as_str(),
                "phone": phone.masked(),
                "role": role.as_str(),
            }),
        )
        .await?;
        let row = operators::get_tx(&mut tx, id)
            .await?
            .ok_or(Refusal::NotFound)?;
        tx.commit().await?;
        Ok(row)
    }

    /// All operators.
    pub async fn operators(&self) -> Result<Vec<OperatorRow>> {
        Ok(operators::list(&self.store).await?)
    }
}
