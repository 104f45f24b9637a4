//! The counter console (柜台端, issue 5 item 7): operators, their two-step
//! login, and the review of orders submitted with an authorization letter.
//!
//! Login: username + password (argon2id; an unknown username costs the
//! same time), then a code by SMS to the operator's phone under the
//! applicant's code policy ([`certhall_domain::otp::OtpPolicy`]: send
//! limits, five minutes, single use, five tries). Each failure of either
//! step counts towards the lock ([`LockoutPolicy`]); every attempt is
//! audited. The session lives in `operator_sessions`, apart from
//! applicants'.
//!
//! Review: decisions go through [`Services::order_event`] with
//! [`OrderActor::Operator`], so they are compare-and-swapped, audited and
//! messaged like every transition; the loser of two simultaneous
//! decisions is told the order was already handled.

use certhall_domain::audit::{Actor, AuditEvent, NewAuditEntry};
use certhall_domain::operator::{
    check_new_password, counter_reason, cst_day_start, hash_counter_code, hash_password,
    may_review, verify_nobody, verify_password, CounterLoginLimits, LockoutPolicy, OperatorRole,
    TryOutcome, Username, DAY,
};
use certhall_domain::order::{OrderEvent, OrderState, Step};
use certhall_domain::otp::{CodeDecision, LoginCode, RATE_WINDOW};
use certhall_domain::session::{SessionStatus, SessionToken};
use certhall_domain::{Phone, Refusal};
use certhall_notify::{Sms, SmsTemplate};
use certhall_store::operators::{self, NewOperatorSession, OperatorRow, OperatorStage};
use certhall_store::orders::{self, OrderEventRow, OrderRow};
use certhall_store::{accounts, login_codes, LockKey, WriteTx};
use rand::rngs::OsRng;
use serde_json::json;

use crate::orders::OrderActor;

/// A counter password try, counted or refused before the check.
enum PasswordTryCounted {
    /// Counted (`id`); the operator, if the username exists.
    Counted {
        id: i64,
        operator: Option<OperatorRow>,
    },
    /// Refused before the check.
    Refused(Refusal),
}
use crate::{append_audit, AccessRefusal, RequestMeta, Result, ServiceError, Services};

/// A logged-in operator, as every counter request sees them.
#[derive(Debug, Clone)]
pub struct OperatorInfo {
    /// Operator id.
    pub id: i64,
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

/// The license fields compared, with their step-3 keys.
const LICENSE_FIELDS: [(&str, &str); 7] = [
    ("name", "企业名称"),
    ("uscc", "统一社会信用代码"),
    ("kind", "类型"),
    ("legal_representative", "法定代表人"),
    ("address", "住所"),
    ("registered_capital", "注册资本"),
    ("established", "成立日期"),
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

    /// Login step 1: username + password. On success a code goes to the
    /// operator's phone and a half-done login is returned.
    pub async fn counter_password(
        &self,
        username_input: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<PasswordAccepted> {
        let typed: String = username_input.trim().chars().take(64).collect();
        let username = Username::parse(&typed).ok();
        // Tries are counted under the name as it will be looked up.
        let try_name = username
            .as_ref()
            .map_or_else(|| typed.to_lowercase(), |u| u.as_str().to_owned());
        let (try_id, op) = match self
            .count_password_try(username.as_ref(), &try_name, meta)
            .await?
        {
            PasswordTryCounted::Refused(r) => return Err(r.into()),
            PasswordTryCounted::Counted { id, operator } => match operator {
                // Slow (argon2): outside any transaction, after the count.
                Some(op) if verify_password(&op.password_hash, password) => (id, op),
                Some(op) => {
                    return self
                        .password_failure(
                            id,
                            &try_name,
                            Actor::Operator(op.id),
                            "wrong_password",
                            meta,
                        )
                        .await;
                }
                None => {
                    // Same work as a real check, so timing does not tell.
                    verify_nobody(password);
                    return self
                        .password_failure(id, &try_name, Actor::Anonymous, "unknown_user", meta)
                        .await;
                }
            },
        };
        let now = self.clock.now();

        let code = LoginCode::generate(&mut OsRng);
        let pending = SessionToken::generate(&mut OsRng);
        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::Phone(op.phone.as_str())).await?;
        operators::set_try_outcome(&mut tx, try_id, TryOutcome::Right).await?;
        let history = login_codes::send_history(
            &mut tx,
            &op.phone,
            meta.ip.as_deref(),
            now.minus(RATE_WINDOW),
        )
        .await?;
        if let Err(r) = self.otp.check_send(&history, now) {
            append_audit(
                &mut tx,
                self.clock.as_ref(),
                Actor::Operator(op.id),
                meta,
                AuditEvent::SmsCodeRefused,
                json!({ "console": "counter", "phone": op.phone.masked(), "reason": r.code() }),
            )
            .await?;
            tx.commit().await?;
            return Err(r.into());
        }
        let hash = hash_counter_code(&self.secret, &op.phone, &code);
        let code_id =
            login_codes::insert(&mut tx, &op.phone, &hash, meta.ip.as_deref(), now).await?;
        let key = pending.storage_key();
        operators::create_session(
            &mut tx,
            &NewOperatorSession {
                key: &key,
                operator_id: op.id,
                stage: OperatorStage::Password,
                ip: meta.ip.as_deref(),
                user_agent: meta.user_agent.as_deref(),
            },
            now,
        )
        .await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Operator(op.id),
            meta,
            AuditEvent::CounterLoginSucceeded,
            json!({ "stage": "password", "username": op.username }),
        )
        .await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Operator(op.id),
            meta,
            AuditEvent::SmsCodeSent,
            json!({ "console": "counter", "phone": op.phone.masked() }),
        )
        .await?;
        tx.commit().await?;

        let minutes = self.otp.ttl.as_secs() / 60;
        let sms = Sms {
            to: op.phone.clone(),
            template: SmsTemplate::LoginCode {
                code: code.as_str().to_owned(),
                minutes,
            },
        };
        if let Err(e) = self.sms.send(&sms).await {
            let mut tx = self.store.begin_write().await?;
            login_codes::delete(&mut tx, code_id).await?;
            operators::delete_session(&mut tx, &key).await?;
            append_audit(
                &mut tx,
                self.clock.as_ref(),
                Actor::System,
                meta,
                AuditEvent::SmsCodeRefused,
                json!({ "console": "counter", "phone": op.phone.masked(), "reason": "gateway_failed" }),
            )
            .await?;
            tx.commit().await?;
            return Err(e.into());
        }
        Ok(PasswordAccepted {
            pending,
            phone_masked: op.phone.masked(),
            valid_minutes: minutes,
        })
    }

    /// Login step 2: the SMS code, for the half-done login `pending`.
    /// Returns the session token (a new one: the pending token ends here).
    pub async fn counter_code(
        &self,
        pending: &SessionToken,
        code_input: &str,
        meta: &RequestMeta,
    ) -> Result<SessionToken> {
        let lockout = LockoutPolicy::default();
        let now = self.clock.now();
        let key = pending.storage_key();
        let mut tx = self.store.begin_write().await?;
        let view = operators::session_tx(&mut tx, &key).await?;
        let Some(view) = view.filter(|v| !v.active && now.since(v.created_at) < self.otp.ttl)
        else {
            drop(tx);
            self.counter_failure_alone(Actor::Anonymous, "", "login_restart", meta)
                .await?;
            return Err(Refusal::CounterLoginRestart.into());
        };
        // Serialize with other tries on this phone, then read the
        // operator's failure count afresh.
        tx.lock(LockKey::Phone(view.operator.phone.as_str()))
            .await?;
        let op = operators::get_tx(&mut tx, view.operator.id)
            .await?
            .ok_or(Refusal::CounterLoginRestart)?;
        if let Err(r) = lockout.check(op.locked_until, now) {
            operators::delete_session(&mut tx, &key).await?;
            self.audit_failure(
                &mut tx,
                Actor::Operator(op.id),
                &op.username,
                r.code(),
                meta,
            )
            .await?;
            tx.commit().await?;
            return Err(r.into());
        }
        let code = match LoginCode::parse(code_input) {
            Ok(c) => c,
            Err(r) => {
                self.audit_failure(
                    &mut tx,
                    Actor::Operator(op.id),
                    &op.username,
                    r.code(),
                    meta,
                )
                .await?;
                tx.commit().await?;
                return Err(r.into());
            }
        };
        let presented = hash_counter_code(&self.secret, &op.phone, &code);
        let latest = login_codes::latest(&mut tx, &op.phone).await?;
        let decision = self
            .otp
            .check_code(latest.as_ref().map(|(_, c)| c), &presented, now);
        match (decision, latest) {
            (CodeDecision::Accept, Some((code_id, issued))) => {
                if !login_codes::consume(&mut tx, code_id, issued.attempts, now).await? {
                    return Err(Refusal::CodeUsed.into());
                }
                operators::record_success(&mut tx, op.id).await?;
                // Ends the run of password failures from this address.
                operators::count_password_try(
                    &mut tx,
                    &op.username,
                    meta.ip.as_deref(),
                    TryOutcome::LoggedIn,
                    now,
                    now.minus(CounterLoginLimits::default().history),
                )
                .await?;
                operators::delete_session(&mut tx, &key).await?;
                let token = SessionToken::generate(&mut OsRng);
                let new_key = token.storage_key();
                operators::create_session(
                    &mut tx,
                    &NewOperatorSession {
                        key: &new_key,
                        operator_id: op.id,
                        stage: OperatorStage::Active,
                        ip: meta.ip.as_deref(),
                        user_agent: meta.user_agent.as_deref(),
                    },
                    now,
                )
                .await?;
                append_audit(
                    &mut tx,
                    self.clock.as_ref(),
                    Actor::Operator(op.id),
                    meta,
                    AuditEvent::CounterLoginSucceeded,
                    json!({ "stage": "code", "username": op.username, "session": &new_key[..16] }),
                )
                .await?;
                tx.commit().await?;
                Ok(token)
            }
            (CodeDecision::CountWrongTry(r), latest) => {
                if let Some((code_id, issued)) = latest {
                    login_codes::count_wrong_try(&mut tx, code_id, issued.attempts).await?;
                }
                let after = lockout.after_failure(op.failed_logins, now);
                operators::record_failure(&mut tx, op.id, after.failed_logins, after.locked_until)
                    .await?;
                let refusal = match after.locked_until {
                    Some(until) => {
                        operators::delete_session(&mut tx, &key).await?;
                        lockout
                            .check(Some(until), now)
                            .err()
                            .unwrap_or(Refusal::CounterLoginRestart)
                    }
                    None => r,
                };
                self.audit_failure(
                    &mut tx,
                    Actor::Operator(op.id),
                    &op.username,
                    refusal.code(),
                    meta,
                )
                .await?;
                tx.commit().await?;
                Err(refusal.into())
            }
            (decision, _) => {
                let r = match decision {
                    CodeDecision::Refuse(r) => r,
                    _ => Refusal::CodeNotRequested,
                };
                self.audit_failure(
                    &mut tx,
                    Actor::Operator(op.id),
                    &op.username,
                    r.code(),
                    meta,
                )
                .await?;
                tx.commit().await?;
                Err(r.into())
            }
        }
    }

    /// The operator whose session `token` is, if it is active and alive.
    /// [`Self::authenticate_operator`] for the counter API: an applicant's
    /// token presented there is refused like any unknown token, and the
    /// attempt audited (throttled) with the applicant and the `path`.
    pub async fn authenticate_counter_caller(
        &self,
        token: &SessionToken,
        path: &str,
        meta: &RequestMeta,
    ) -> Result<OperatorInfo> {
        let refused = match self.authenticate_operator(token).await {
            Ok(who) => return Ok(who),
            Err(ServiceError::Refused(Refusal::SessionExpired)) => {
                return Err(Refusal::SessionExpired.into())
            }
            Err(ServiceError::Refused(_)) => Refusal::BadToken,
            Err(e) => return Err(e),
        };
        if let Ok(applicant) = self.authenticate(token).await {
            self.audit_access_refused(
                AccessRefusal {
                    actor: Actor::Account(applicant.account_id),
                    reason: "applicant_token_on_counter",
                    target: json!({ "path": path }),
                },
                meta,
            )
            .await?;
        }
        Err(refused.into())
    }

    pub async fn authenticate_operator(&self, token: &SessionToken) -> Result<OperatorInfo> {
        let key = token.storage_key();
        let Some(view) = operators::session(&self.store, &key).await? else {
            return Err(Refusal::NotLoggedIn.into());
        };
        if !view.active {
            return Err(Refusal::NotLoggedIn.into());
        }
        let now = self.clock.now();
        match self
            .sessions
            .status(view.created_at, view.last_seen_at, now)
        {
            SessionStatus::Expired => {
                operators::delete_session_now(&self.store, &key).await?;
                Err(Refusal::SessionExpired.into())
            }
            SessionStatus::Active { touch } => {
                if touch {
                    operators::touch_session(&self.store, &key, now).await?;
                }
                Ok(OperatorInfo {
                    id: view.operator.id,
                    username: view.operator.username,
                    phone: view.operator.phone,
                    role: view.operator.role,
                    producer: view.operator.producer,
                    session_key: key,
                })
            }
        }
    }

    /// Ends the operator's session.
    pub async fn counter_logout(&self, who: &OperatorInfo, meta: &RequestMeta) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        operators::delete_session(&mut tx, &who.session_key).await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Operator(who.id),
            meta,
            AuditEvent::CounterLogout,
            json!({ "session": &who.session_key[..16] }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

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
        let order = orders::get(&self.store, id)
            .await?
            .ok_or(Refusal::NotFound)?;
        let account = accounts::get(&self.store, order.account_id)
            .await?
            .ok_or(Refusal::NotFound)?;
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
        let order = orders::get(&self.store, id)
            .await?
            .ok_or(Refusal::NotFound)?;
        let account = accounts::get(&self.store, order.account_id)
            .await?
            .ok_or(Refusal::NotFound)?;
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
        let d = self.review_detail(who, id).await?;
        if d.own {
            return Err(Refusal::OwnOrderReview.into());
        }
        if d.order.state != OrderState::InReview || d.order.version != version {
            self.stale_decision(who, id, version, meta).await?;
            return Err(Refusal::ReviewAlreadyDecided(d.order.state.label_zh()).into());
        }
        Ok(())
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
        let order = orders::get(&self.store, id)
            .await?
            .ok_or(Refusal::NotFound)?;
        let account = accounts::get(&self.store, order.account_id)
            .await?
            .ok_or(Refusal::NotFound)?;
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

    /// Counts a password try before the password is checked, under the
    /// username's (then the address's) lock, so that concurrent tries
    /// cannot all reach the check: refused when a limit is reached.
    async fn count_password_try(
        &self,
        username: Option<&Username>,
        try_name: &str,
        meta: &RequestMeta,
    ) -> Result<PasswordTryCounted> {
        let limits = CounterLoginLimits::default();
        let now = self.clock.now();
        let ip = meta.ip.as_deref();
        let prune_before = now.minus(limits.history);
        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::CounterLogin(try_name)).await?;
        if let Some(ip) = ip {
            tx.lock(LockKey::CounterAddress(ip)).await?;
        }
        let operator = match username {
            Some(u) => operators::by_username(&mut tx, u.as_str()).await?,
            None => None,
        };
        let tries = operators::password_tries(
            &mut tx,
            try_name,
            ip,
            prune_before,
            now.minus(limits.address_window),
        )
        .await?;
        // The SMS-code step locks the operator everywhere (it needs the
        // right password first).
        let refused = limits.check(&tries, ip, now).and_then(|()| {
            operator.as_ref().map_or(Ok(()), |op| {
                LockoutPolicy::default().check(op.locked_until, now)
            })
        });
        let Err(refusal) = refused else {
            let id = operators::count_password_try(
                &mut tx,
                try_name,
                ip,
                TryOutcome::Pending,
                now,
                prune_before,
            )
            .await?;
            tx.commit().await?;
            return Ok(PasswordTryCounted::Counted { id, operator });
        };
        operators::count_password_try(
            &mut tx,
            try_name,
            ip,
            TryOutcome::Refused,
            now,
            prune_before,
        )
        .await?;
        // One audit entry per run of refusals, so a scan cannot flood the
        // chain: the first refused try from this address for this name,
        // and the first one refused for the address limit.
        let first = match refusal {
            Refusal::CounterTooManyTries { .. } => tries.last_from_ip != Some(TryOutcome::Refused),
            _ => tries
                .for_user
                .iter()
                .rev()
                .find(|t| t.ip.as_deref() == ip)
                .is_none_or(|t| t.outcome != TryOutcome::Refused),
        };
        if first {
            let actor = operator
                .as_ref()
                .map_or(Actor::Anonymous, |op| Actor::Operator(op.id));
            self.audit_failure(&mut tx, actor, try_name, refusal.code(), meta)
                .await?;
        }
        tx.commit().await?;
        Ok(PasswordTryCounted::Refused(refusal))
    }

    /// Records a wrong password (or unknown username) for the counted try
    /// `id`; refuses with the lock when this failure reached it.
    async fn password_failure<T>(
        &self,
        id: i64,
        try_name: &str,
        actor: Actor,
        reason: &str,
        meta: &RequestMeta,
    ) -> Result<T> {
        let limits = CounterLoginLimits::default();
        let now = self.clock.now();
        let ip = meta.ip.as_deref();
        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::CounterLogin(try_name)).await?;
        operators::set_try_outcome(&mut tx, id, TryOutcome::Wrong).await?;
        // Whether this failure locked the name: the user's tries with a
        // verdict (this one included), not those still being checked.
        let mut tries =
            operators::password_tries(&mut tx, try_name, None, now.minus(limits.history), now)
                .await?;
        tries.from_ip = 0;
        tries.for_user.retain(|t| t.outcome != TryOutcome::Pending);
        let refusal = match limits.check(&tries, ip, now) {
            Err(locked @ Refusal::OperatorLocked { .. }) => locked,
            _ => Refusal::CounterBadCredentials,
        };
        let why = match refusal {
            Refusal::OperatorLocked { .. } => "locked",
            _ => reason,
        };
        self.audit_failure(&mut tx, actor, try_name, why, meta)
            .await?;
        tx.commit().await?;
        Err(refusal.into())
    }

    async fn audit_failure(
        &self,
        tx: &mut WriteTx,
        actor: Actor,
        username: &str,
        reason: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        append_audit(
            tx,
            self.clock.as_ref(),
            actor,
            meta,
            AuditEvent::CounterLoginFailed,
            json!({ "username": username, "reason": reason }),
        )
        .await
    }

    async fn counter_failure_alone(
        &self,
        actor: Actor,
        username: &str,
        reason: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        self.audit_alone(NewAuditEntry::new(
            actor,
            meta.ip.clone(),
            AuditEvent::CounterLoginFailed,
            json!({ "username": username, "reason": reason }),
        ))
        .await
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
