//! Login with phone + SMS code, sessions and logout (manual 2.1).

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::message::NewMessage;
use certhall_domain::otp::{hash_code, hash_confirmation, CodeDecision, LoginCode, RATE_WINDOW};
use certhall_domain::session::SessionKind;
use certhall_domain::session::{SessionStatus, SessionToken};
use certhall_domain::{AccountId, Phone, Refusal};
use certhall_notify::{Sms, SmsTemplate};
use certhall_store::sessions::NewSession;
use certhall_store::{accounts, login_codes, messages, sessions, LockKey, WriteTx};
use rand::rngs::OsRng;
use serde_json::json;

use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

/// A code was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSent {
    /// The phone it went to.
    pub phone: Phone,
    /// Seconds before another code may be requested.
    pub resend_after_secs: u64,
    /// Minutes the code is valid.
    pub valid_minutes: u64,
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The new session's token, for the cookie or the API client.
    pub token: SessionToken,
    /// Whose session.
    pub account_id: AccountId,
    /// True when this login created the account.
    pub new_account: bool,
}

/// How a login proved who it is (recorded in the audit entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod<'a> {
    /// Phone + SMS code.
    Sms,
    /// 数字证书登录, with the certificate's serial.
    Certificate {
        /// Serial (hex) of the certificate that logged in.
        serial: &'a str,
    },
}

impl LoginMethod<'_> {
    fn name(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Certificate { .. } => "certificate",
        }
    }

    fn certificate(self) -> Option<String> {
        match self {
            Self::Sms => None,
            Self::Certificate { serial } => Some(serial.to_owned()),
        }
    }
}

/// A logged-in caller, as every protected request sees it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The account.
    pub account_id: AccountId,
    /// Its phone.
    pub phone: Phone,
    /// Unread messages, for the header badge.
    pub unread: u32,
    /// The session's storage key.
    pub session_key: String,
}

impl Services {
    /// Sends a login code to `phone_input`, within the send limits.
    pub async fn send_login_code(&self, phone_input: &str, meta: &RequestMeta) -> Result<CodeSent> {
        let phone = match Phone::parse(phone_input) {
            Ok(p) => p,
            Err(r) => return self.refuse_send(r, None, meta).await,
        };
        self.send_code(
            &phone,
            login_codes::LOGIN,
            Actor::Anonymous,
            |code, minutes| SmsTemplate::LoginCode { code, minutes },
            meta,
        )
        .await
    }

    /// Sends a code for `purpose` (`login`, or an operation it confirms,
    /// see `revocation`) to `phone`, within the send limits, which count
    /// every purpose. `template` makes the SMS from the code and its
    /// minutes. A code the gateway could not deliver neither works nor
    /// counts; sends and refusals are audited as `actor`.
    pub(crate) async fn send_code(
        &self,
        phone: &Phone,
        purpose: &str,
        actor: Actor,
        template: impl FnOnce(String, u64) -> SmsTemplate,
        meta: &RequestMeta,
    ) -> Result<CodeSent> {
        let now = self.clock.now();
        let code = LoginCode::generate(&mut OsRng);

        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::Phone(phone.as_str())).await?;
        let history = login_codes::send_history(
            &mut tx,
            phone,
            purpose,
            meta.ip.as_deref(),
            now.minus(RATE_WINDOW),
        )
        .await?;
        if let Err(r) = self.otp.check_send(&history, now) {
            drop(tx);
            self.audit_alone(certhall_domain::audit::NewAuditEntry::new(
                actor,
                meta.ip.clone(),
                AuditEvent::SmsCodeRefused,
                json!({ "phone": phone.masked(), "purpose": purpose, "reason": r.code() }),
            ))
            .await?;
            return Err(r.into());
        }
        let hash = if purpose == login_codes::LOGIN {
            hash_code(&self.secret, phone, &code)
        } else {
            hash_confirmation(&self.secret, phone, purpose, &code)
        };
        let code_id =
            login_codes::insert_for(&mut tx, phone, purpose, &hash, meta.ip.as_deref(), now)
                .await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor.clone(),
            meta,
            AuditEvent::SmsCodeSent,
            json!({ "phone": phone.masked(), "purpose": purpose }),
        )
        .await?;
        tx.commit().await?;

        let minutes = self.otp.ttl.as_secs() / 60;
        let sms = Sms {
            to: phone.clone(),
            template: template(code.as_str().to_owned(), minutes),
        };
        if let Err(e) = self.sms.send(&sms).await {
            // Undelivered: the code must neither work nor count against the
            // limits. The failure itself is audited.
            let mut tx = self.store.begin_write().await?;
            login_codes::delete(&mut tx, code_id).await?;
            append_audit(
                &mut tx,
                self.clock.as_ref(),
                Actor::System,
                meta,
                AuditEvent::SmsCodeRefused,
                json!({ "phone": phone.masked(), "purpose": purpose, "reason": "gateway_failed" }),
            )
            .await?;
            tx.commit().await?;
            return Err(e.into());
        }
        Ok(CodeSent {
            phone: phone.clone(),
            resend_after_secs: self.otp.resend_cooldown.as_secs(),
            valid_minutes: minutes,
        })
    }

    async fn refuse_send<T>(
        &self,
        r: Refusal,
        phone: Option<&Phone>,
        meta: &RequestMeta,
    ) -> Result<T> {
        self.audit_alone(certhall_domain::audit::NewAuditEntry::new(
            Actor::Anonymous,
            meta.ip.clone(),
            AuditEvent::SmsCodeRefused,
            json!({ "phone": phone.map(Phone::masked), "reason": r.code() }),
        ))
        .await?;
        Err(r.into())
    }

    /// Seconds before another code may be sent to `phone_input` (0 when it
    /// may be sent now or the input is not a phone), so a re-rendered form
    /// can show the true countdown.
    pub async fn resend_wait_secs(&self, phone_input: &str) -> Result<u64> {
        let Ok(phone) = Phone::parse(phone_input) else {
            return Ok(0);
        };
        let Some(last) = login_codes::last_sent(&self.store, &phone).await? else {
            return Ok(0);
        };
        let elapsed = self.clock.now().since(last);
        Ok(self.otp.resend_cooldown.saturating_sub(elapsed).as_secs())
    }

    /// Logs in with a code. `replacing` is the session the client held
    /// before, which ends here (the session id always changes at login).
    pub async fn verify_login_code(
        &self,
        phone_input: &str,
        code_input: &str,
        kind: SessionKind,
        replacing: Option<&SessionToken>,
        meta: &RequestMeta,
    ) -> Result<LoggedIn> {
        let parsed =
            Phone::parse(phone_input).and_then(|p| LoginCode::parse(code_input).map(|c| (p, c)));
        let (phone, code) = match parsed {
            Ok(v) => v,
            Err(r) => {
                self.audit_alone(certhall_domain::audit::NewAuditEntry::new(
                    Actor::Anonymous,
                    meta.ip.clone(),
                    AuditEvent::LoginFailed,
                    json!({ "reason": r.code() }),
                ))
                .await?;
                return Err(r.into());
            }
        };
        let now = self.clock.now();
        let presented = hash_code(&self.secret, &phone, &code);

        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::Phone(phone.as_str())).await?;
        let latest = login_codes::latest(&mut tx, &phone).await?;
        let decision = self
            .otp
            .check_code(latest.as_ref().map(|(_, c)| c), &presented, now);
        match (decision, latest) {
            (CodeDecision::Accept, Some((code_id, issued))) => {
                if !login_codes::consume(&mut tx, code_id, issued.attempts, now).await? {
                    return self.refuse_login(tx, Refusal::CodeUsed, &phone, meta).await;
                }
                let (account_id, new_account) = self.account_for(&mut tx, &phone, meta).await?;
                let token = self
                    .open_session(&mut tx, account_id, kind, replacing, meta, LoginMethod::Sms)
                    .await?;
                tx.commit().await?;
                Ok(LoggedIn {
                    token,
                    account_id,
                    new_account,
                })
            }
            (decision, latest) => {
                let refusal = match decision {
                    CodeDecision::CountWrongTry(r) => {
                        if let Some((code_id, issued)) = latest {
                            // A concurrent try may have counted first; the
                            // refusal stands either way.
                            login_codes::count_wrong_try(&mut tx, code_id, issued.attempts).await?;
                        }
                        r
                    }
                    CodeDecision::Refuse(r) => r,
                    CodeDecision::Accept => Refusal::CodeNotRequested,
                };
                self.refuse_login(tx, refusal, &phone, meta).await
            }
        }
    }

    /// The account of `phone` inside `tx`, created (with its welcome
    /// message and audit entry) if there is none; true when created.
    pub(crate) async fn account_for(
        &self,
        tx: &mut WriteTx,
        phone: &Phone,
        meta: &RequestMeta,
    ) -> Result<(AccountId, bool)> {
        if let Some(a) = accounts::find_by_phone(tx, phone).await? {
            return Ok((a.id, false));
        }
        let now = self.clock.now();
        let id = accounts::create(tx, phone, now).await?;
        messages::insert(tx, id, &NewMessage::welcome(), now).await?;
        append_audit(
            tx,
            self.clock.as_ref(),
            Actor::Account(id),
            meta,
            AuditEvent::AccountCreated,
            json!({ "phone": phone.masked() }),
        )
        .await?;
        Ok((id, true))
    }

    /// The account of `phone`, created if there is none (demo seeding and
    /// administrators binding a certificate to a phone).
    pub async fn ensure_account(&self, phone: &Phone) -> Result<AccountId> {
        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::Phone(phone.as_str())).await?;
        let (id, _) = self
            .account_for(&mut tx, phone, &RequestMeta::default())
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Starts a session for `account_id` inside `tx` (ending the session it
    /// replaces) and audits the login made by `method` (`sms`,
    /// `certificate`).
    pub(crate) async fn open_session(
        &self,
        tx: &mut WriteTx,
        account_id: AccountId,
        kind: SessionKind,
        replacing: Option<&SessionToken>,
        meta: &RequestMeta,
        method: LoginMethod<'_>,
    ) -> Result<SessionToken> {
        if let Some(old) = replacing {
            sessions::delete(tx, &old.storage_key()).await?;
        }
        let token = SessionToken::generate(&mut OsRng);
        let key = token.storage_key();
        sessions::create(
            tx,
            &NewSession {
                key: &key,
                account_id,
                kind,
                ip: meta.ip.as_deref(),
                user_agent: meta.user_agent.as_deref(),
            },
            self.clock.now(),
        )
        .await?;
        append_audit(
            tx,
            self.clock.as_ref(),
            Actor::Account(account_id),
            meta,
            AuditEvent::LoginSucceeded,
            json!({
                "method": method.name(),
                "certificate": method.certificate(),
                "session": &key[..16],
                "kind": kind.as_str(),
            }),
        )
        .await?;
        Ok(token)
    }

    /// Audits a failed login inside `tx`, commits, and returns the refusal.
    async fn refuse_login<T>(
        &self,
        mut tx: WriteTx,
        refusal: Refusal,
        phone: &Phone,
        meta: &RequestMeta,
    ) -> Result<T> {
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Anonymous,
            meta,
            AuditEvent::LoginFailed,
            json!({ "phone": phone.masked(), "reason": refusal.code() }),
        )
        .await?;
        tx.commit().await?;
        Err(refusal.into())
    }

    /// Finds the live session for `token`, ending it if it expired.
    pub async fn authenticate(&self, token: &SessionToken) -> Result<SessionInfo> {
        let key = token.storage_key();
        let Some(view) = sessions::view(&self.store, &key).await? else {
            return Err(Refusal::NotLoggedIn.into());
        };
        let now = self.clock.now();
        match self
            .sessions
            .status(view.created_at, view.last_seen_at, now)
        {
            SessionStatus::Expired => {
                sessions::delete_expired(&self.store, &key).await?;
                Err(Refusal::SessionExpired.into())
            }
            SessionStatus::Active { touch } => {
                if touch {
                    sessions::touch(&self.store, &key, now).await?;
                }
                Ok(SessionInfo {
                    account_id: view.account_id,
                    phone: view.phone,
                    unread: view.unread,
                    session_key: key,
                })
            }
        }
    }

    /// Ends the caller's session.
    pub async fn logout(&self, who: &SessionInfo, meta: &RequestMeta) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        sessions::delete(&mut tx, &who.session_key).await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(who.account_id),
            meta,
            AuditEvent::Logout,
            json!({ "session": &who.session_key[..16] }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl ServiceError {
    /// The refusal inside, if this is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Self::Refused(r) => Some(r),
            _ => None,
        }
    }
}
