//! The counter's two-step login: password (counted before it is checked,
//! [`CounterLoginLimits`]), then the SMS code; sessions and logout.

use certhall_domain::audit::{Actor, AuditEvent, NewAuditEntry};
use certhall_domain::operator::{
    hash_counter_code, verify_nobody, verify_password, CounterLoginLimits, LockoutPolicy,
    TryOutcome, Username,
};
use certhall_domain::otp::{CodeDecision, LoginCode, RATE_WINDOW};
use certhall_domain::session::{SessionStatus, SessionToken};
use certhall_domain::Refusal;
use certhall_notify::{Sms, SmsTemplate};
use certhall_store::operators::{self, NewOperatorSession, OperatorRow, OperatorStage};
use certhall_store::{login_codes, LockKey, WriteTx};
use rand::rngs::OsRng;
use serde_json::json;

use super::{OperatorInfo, PasswordAccepted};
use crate::{append_audit, AccessRefusal, RequestMeta, Result, ServiceError, Services};

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

impl Services {
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
            login_codes::LOGIN,
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
