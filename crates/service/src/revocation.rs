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
use crate::certificates::MyCertificate;
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
    pub(crate) async fn account_phone(&self, account: AccountId) -> Result<Phone> {
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

/// What the applicant filled in on the 补办 page.
#[derive(Debug, Clone, Default)]
pub struct ReplacementInput {
    /// `lost` or `broken`.
    pub reason: String,
    /// The code from the SMS.
    pub code: String,
    /// Ticked: the old certificate is revoked at once.
    pub understood: bool,
}

impl Services {
    /// 补办: sends the code that confirms replacing one of the account's
    /// certificates.
    pub async fn send_replacement_code(
        &self,
        account: AccountId,
        serial: &str,
        meta: &RequestMeta,
    ) -> Result<CodeSent> {
        let mine = self.my_certificate(account, serial).await?;
        replaceable(&mine)?;
        let c = &mine.certificate;
        let action = format!("证书补办（{}）", subject_common_name(&c.subject));
        self.send_confirmation_code(account, &format!("replace:{}", c.serial), action, meta)
            .await
    }

    /// 补办 (lost or broken key): revokes the old certificate (unless it
    /// already is) and opens a replacement order prefilled with the steps
    /// of the order that produced it (identity, application, enterprise),
    /// which then goes through review, payment, production and shipping
    /// like a new one. Confirmed by an SMS code; all in one transaction.
    pub async fn start_replacement(
        &self,
        account: AccountId,
        serial: &str,
        input: &ReplacementInput,
        meta: &RequestMeta,
    ) -> Result<certhall_store::orders::OrderRow> {
        use certhall_domain::audit::AuditEvent;
        use certhall_domain::lifecycle::ReplacementReason;
        use certhall_domain::order::{OrderKind, OrderState, Step};
        use certhall_store::orders;

        let mine = self.my_certificate(account, serial).await?;
        replaceable(&mine)?;
        let c = &mine.certificate;
        let reason = ReplacementReason::parse(&input.reason)
            .ok_or_else(|| Refusal::InvalidField("请选择补办原因。".into()))?;
        if !input.understood {
            return Err(Refusal::InvalidField(
                "请勾选“我已了解原证书将立即注销且不可恢复”。".into(),
            )
            .into());
        }
        // The original order's first three steps: read before the write
        // transaction (they do not change).
        let prefill = self.first_steps_of(c).await?;
        let phone = self.account_phone(account).await?;
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        if let Confirmation::Refused(r) = self
            .confirm_code(
                &mut tx,
                &phone,
                &format!("replace:{}", c.serial),
                &input.code,
            )
            .await?
        {
            tx.commit().await?;
            return Err(r.into());
        }
        if let Some(open) =
            orders::open_replacement(&mut tx, &c.serial, OrderKind::Replacement).await?
        {
            return Err(Refusal::InvalidField(format!(
                "该证书已有补办订单（订单 {}），请在“我的订单”中继续办理。",
                open.0
            ))
            .into());
        }
        let revoked_now = c.revocation.is_none();
        if revoked_now {
            let note = match reason {
                ReplacementReason::KeyLost => "补办：UKey 丢失",
                ReplacementReason::KeyBroken => "补办：UKey 损坏",
            };
            self.ca_revoke_in(
                &mut tx,
                &c.serial,
                certhall_ca::crl::Reason::of_applicant(reason.revocation()),
                Actor::Account(account),
                Some(note),
                meta,
            )
            .await?;
        }
        let order = orders::create(
            &mut tx,
            account,
            OrderKind::Replacement,
            OrderState::Draft {
                reached: Step::Identity,
            },
            now,
        )
        .await?;
        for (step, v) in &prefill {
            orders::save_step(&mut tx, order.id, *step, v, now).await?;
        }
        orders::insert_replacement(&mut tx, order.id, &c.serial, reason.as_str(), now).await?;
        crate::append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(account),
            meta,
            AuditEvent::OrderCreated,
            serde_json::json!({
                "order": order.id,
                "kind": OrderKind::Replacement.as_str(),
                "replaces": c.serial,
                "reason": reason.as_str(),
                "prefilled_steps": prefill.len(),
            }),
        )
        .await?;
        messages::insert(
            &mut tx,
            account,
            &NewMessage {
                kind: MessageKind::System,
                title: "补办订单已创建".to_owned(),
                body: format!(
                    "已为证书（{}，序列号{}）创建补办订单{}{}。申请信息已按原订单预先填好，\
                     请核对后提交，经柜台审核、支付后将制作新的 UKey 并寄出。",
                    subject_common_name(&c.subject),
                    c.serial,
                    order.id.0,
                    if revoked_now {
                        "，原证书已注销"
                    } else {
                        ""
                    }
                ),
                order_id: Some(order.id),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        if revoked_now {
            self.ca_revocation_committed();
        }
        Ok(order)
    }
}

impl Services {
    /// What the order a certificate was issued for saved at steps 1–3,
    /// to fill a 补办 or 变更 order in (nothing when it had no order).
    pub(crate) async fn first_steps_of(
        &self,
        c: &CertificateRow,
    ) -> Result<Vec<(certhall_domain::order::Step, serde_json::Value)>> {
        use certhall_domain::order::Step;
        let mut prefill = Vec::new();
        if let Some(original) = c.order_id {
            for step in [Step::Identity, Step::Application, Step::Enterprise] {
                let saved = certhall_store::orders::step_data(
                    &self.store,
                    certhall_domain::OrderId(original),
                    step,
                )
                .await?;
                if let Some(v) = saved {
                    prefill.push((step, v));
                }
            }
        }
        Ok(prefill)
    }
}

/// Refuses 补办 of a certificate that is not
/// [`crate::certificates::CertificateStatus::replaceable`], saying why.
fn replaceable(mine: &MyCertificate) -> Result<()> {
    use crate::certificates::CertificateStatus as S;
    if mine.status.replaceable() {
        return Ok(());
    }
    let why = if mine.status == S::Superseded {
        "该证书已被新证书替换，请对新证书办理补办。"
    } else {
        "该证书已过期，无法补办，请在首页办理新证书。"
    };
    Err(Refusal::InvalidField(why.into()).into())
}
