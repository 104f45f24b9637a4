//! 注销 online (issue 12): the applicant revokes one of their certificates
//! with a reason offered in plain Chinese, confirmed by a code sent by SMS
//! to the account's phone. The code's check, the revocation record, the
//! new CRL, the dropped OCSP answer, the message and the audit entries
//! commit together: a wrong or expired code leaves the certificate as it
//! was, and once the call returns, OCSP and the CRL say revoked.
//!
//! Confirmation codes are login codes with a purpose (`revoke:SERIAL`):
//! the same send limits (they count every purpose), the same policy for
//! expiry and wrong tries, a hash bound to the purpose.

use certhall_domain::audit::Actor;
use certhall_domain::lifecycle::{subject_common_name, ApplicantRevocationReason};
use certhall_domain::message::{MessageKind, NewMessage};
use certhall_domain::otp::{hash_confirmation, CodeDecision, LoginCode};
use certhall_domain::{AccountId, Phone, Refusal};
use certhall_notify::SmsTemplate;
use certhall_store::ca::CertificateRow;
use certhall_store::{accounts, login_codes, messages, LockKey, WriteTx};

use crate::auth::CodeSent;
use crate::{RequestMeta, Result, Services};

/// Longest note an applicant may add to a revocation.
pub const MAX_COMMENT_CHARS: usize = 200;

/// What the applicant filled in on the revocation page.
#[derive(Debug, Clone, Default)]
pub struct RevocationInput {
    /// The reason's code (`key_lost`, `data_changed`, …).
    pub reason: String,
    /// An optional note.
    pub comment: String,
    /// The code from the SMS.
    pub code: String,
    /// Ticked: 我已了解注销后证书立即失效且不可恢复.
    pub understood: bool,
}

/// The outcome of [`Services::confirm_code`].
#[derive(Debug)]
pub(crate) enum Confirmation {
    /// Right: consumed in the transaction.
    Confirmed,
    /// Refused; a wrong try is counted in the transaction.
    Refused(Refusal),
}

fn purpose(serial: &str) -> String {
    format!("revoke:{serial}")
}

impl Services {
    /// The phone of an account.
    async fn account_phone(&self, account: AccountId) -> Result<Phone> {
        Ok(accounts::get(&self.store, account)
            .await?
            .ok_or(Refusal::NotFound)?
            .phone)
    }

    /// Sends the code that confirms `purpose` to the account's own phone
    /// (`action` names it in the SMS), within the login codes' limits.
    pub(crate) async fn send_confirmation_code(
        &self,
        account: AccountId,
        purpose: &str,
        action: String,
        meta: &RequestMeta,
    ) -> Result<CodeSent> {
        let phone = self.account_phone(account).await?;
        self.send_code(
            &phone,
            purpose,
            Actor::Account(account),
            |code, minutes| SmsTemplate::ConfirmCode {
                action,
                code,
                minutes,
            },
            meta,
        )
        .await
    }

    /// Checks the code that confirms `purpose` inside `tx`, first thing in
    /// it: consumes it when right, counts the try when wrong. On
    /// [`Confirmation::Refused`] the caller commits `tx` (it holds only
    /// the counted try, so the tries left shrink) and refuses.
    pub(crate) async fn confirm_code(
        &self,
        tx: &mut WriteTx,
        phone: &Phone,
        purpose: &str,
        input: &str,
    ) -> Result<Confirmation> {
        let code = match LoginCode::parse(input) {
            Ok(c) => c,
            Err(r) => return Ok(Confirmation::Refused(r)),
        };
        let now = self.clock.now();
        tx.lock(LockKey::Phone(phone.as_str())).await?;
        let latest = login_codes::latest_for(tx, phone, purpose).await?;
        let presented = hash_confirmation(&self.secret, phone, purpose, &code);
        let decision = self
            .otp
            .check_code(latest.as_ref().map(|(_, c)| c), &presented, now);
        Ok(match (decision, latest) {
            (CodeDecision::Accept, Some((id, issued))) => {
                if login_codes::consume(tx, id, issued.attempts, now).await? {
                    Confirmation::Confirmed
                } else {
                    Confirmation::Refused(Refusal::CodeUsed)
                }
            }
            (CodeDecision::CountWrongTry(r), Some((id, issued))) => {
                // A concurrent try may have counted first; the refusal
                // stands either way.
                login_codes::count_wrong_try(tx, id, issued.attempts).await?;
                Confirmation::Refused(r)
            }
            (CodeDecision::Refuse(r) | CodeDecision::CountWrongTry(r), _) => {
                Confirmation::Refused(r)
            }
            (CodeDecision::Accept, None) => Confirmation::Refused(Refusal::CodeNotRequested),
        })
    }

    /// 注销: sends the code that confirms revoking one of the account's
    /// certificates.
    pub async fn send_revocation_code(
        &self,
        account: AccountId,
        serial: &str,
        meta: &RequestMeta,
    ) -> Result<CodeSent> {
        let mine = self.my_certificate(account, serial).await?;
        let c = &mine.certificate;
        if c.revocation.is_some() {
            return Err(Refusal::AlreadyRevoked.into());
        }
        let action = format!("证书注销（{}）", subject_common_name(&c.subject));
        self.send_confirmation_code(account, &purpose(&c.serial), action, meta)
            .await
    }

    /// 注销: revokes one of the account's certificates, confirmed by the
    /// SMS code. Everything commits together or nothing does.
    pub async fn revoke_own_certificate(
        &self,
        account: AccountId,
        serial: &str,
        input: &RevocationInput,
        meta: &RequestMeta,
    ) -> Result<CertificateRow> {
        let mine = self.my_certificate(account, serial).await?;
        let c = &mine.certificate;
        if c.revocation.is_some() {
            return Err(Refusal::AlreadyRevoked.into());
        }
        let reason = ApplicantRevocationReason::parse(&input.reason)
            .ok_or_else(|| Refusal::InvalidField("请选择注销原因。".into()))?;
        let comment = input.comment.trim();
        if comment.chars().count() > MAX_COMMENT_CHARS {
            return Err(Refusal::InvalidField(format!(
                "补充说明不能超过{MAX_COMMENT_CHARS}个字（现有{}个字）。",
                comment.chars().count()
            ))
            .into());
        }
        if !input.understood {
            return Err(Refusal::InvalidField(
                "请勾选“我已了解注销后证书立即失效且不可恢复”。".into(),
            )
            .into());
        }
        let phone = self.account_phone(account).await?;
        let mut tx = self.store.begin_write().await?;
        if let Confirmation::Refused(r) = self
            .confirm_code(&mut tx, &phone, &purpose(&c.serial), &input.code)
            .await?
        {
            tx.commit().await?;
            return Err(r.into());
        }
        let comment = (!comment.is_empty()).then_some(comment);
        self.ca_revoke_in(
            &mut tx,
            &c.serial,
            certhall_ca::crl::Reason::of_applicant(reason),
            Actor::Account(account),
            comment,
            meta,
        )
        .await?;
        let name = subject_common_name(&c.subject);
        messages::insert(
            &mut tx,
            account,
            &NewMessage {
                kind: MessageKind::System,
                title: "证书已注销".to_owned(),
                body: format!(
                    "您的证书（{name}，序列号{}）已于{}注销，注销原因：{}。该证书已立即失效，\
                     交易平台将无法再使用。如需继续使用，请在首页办理新证书。",
                    c.serial,
                    self.clock.now().display_cst(),
                    reason.label_zh()
                ),
                order_id: None,
            },
            self.clock.now(),
        )
        .await?;
        tx.commit().await?;
        self.ca_revocation_committed();
        self.ca_certificate(&c.serial).await
    }
}
