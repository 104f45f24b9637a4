//! 证书注销 at the counter (issue 12): an operator finds a certificate by
//! serial, enterprise name or USCC and revokes it with an RFC 5280 reason
//! and a note; an administrator revokes every live certificate of an
//! enterprise at once. Each revocation commits with its CRL, its dropped
//! OCSP answer, its audit entry and the owner's message; a bulk
//! revocation is one transaction: all of them or none.

use certhall_ca::crl::Reason;
use certhall_domain::audit::Actor;
use certhall_domain::identity::Uscc;
use certhall_domain::lifecycle::subject_common_name;
use certhall_domain::message::{MessageKind, NewMessage};
use certhall_domain::operator::OperatorRole;
use certhall_domain::Refusal;
use certhall_store::ca::{self as cadb, CertificateRow};
use certhall_store::{messages, WriteTx};

use super::OperatorInfo;
use crate::ca::normalize_serial;
use crate::revocation::MAX_COMMENT_CHARS;
use crate::{RequestMeta, Result, Services};

/// Certificates a search lists at most.
const SEARCH_LIMIT: u32 = 100;

/// The reasons counter staff choose from: RFC 5280's, less those that are
/// not theirs to give (`superseded` is set by renewal and change;
/// `cACompromise` concerns a CA; `certificateHold` and `removeFromCRL`
/// are not used: a revocation here is final).
pub const COUNTER_REASONS: [Reason; 5] = [
    Reason::KeyCompromise,
    Reason::AffiliationChanged,
    Reason::CessationOfOperation,
    Reason::PrivilegeWithdrawn,
    Reason::Unspecified,
];

/// What the counter typed for a revocation.
#[derive(Debug, Clone, Default)]
pub struct CounterRevocation {
    /// The reason's RFC 5280 name (`keyCompromise`, …).
    pub reason: String,
    /// Why, in the operator's words (required).
    pub comment: String,
}

fn checked(input: &CounterRevocation) -> Result<(Reason, String)> {
    let reason = Reason::parse(&input.reason)
        .filter(|r| COUNTER_REASONS.contains(r))
        .ok_or_else(|| Refusal::InvalidField("请选择注销原因。".into()))?;
    let comment = input.comment.trim();
    if comment.is_empty() {
        return Err(Refusal::InvalidField("请填写注销说明（依据、申请人等）。".into()).into());
    }
    let n = comment.chars().count();
    if n > MAX_COMMENT_CHARS {
        return Err(Refusal::InvalidField(format!(
            "注销说明不能超过{MAX_COMMENT_CHARS}个字（现有{n}个字）。"
        ))
        .into());
    }
    Ok((reason, comment.to_owned()))
}

impl Services {
    /// The counter's certificate search: a serial, or text in the subject
    /// (an enterprise's name or USCC). Empty text finds nothing.
    pub async fn counter_find_certificates(&self, text: &str) -> Result<Vec<CertificateRow>> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Vec::new());
        }
        Ok(
            cadb::search_certificates(&self.store, &normalize_serial(text), text, SEARCH_LIMIT)
                .await?,
        )
    }

    /// Revokes one certificate from the counter.
    pub async fn counter_revoke(
        &self,
        who: &OperatorInfo,
        serial: &str,
        input: &CounterRevocation,
        meta: &RequestMeta,
    ) -> Result<CertificateRow> {
        let (reason, comment) = checked(input)?;
        let serial = normalize_serial(serial);
        let mut tx = self.store.begin_write().await?;
        let c = cadb::certificate_tx(&mut tx, &serial)
            .await?
            .ok_or(Refusal::CertificateNotFound)?;
        self.counter_revoke_one(&mut tx, who, &c, reason, &comment, meta)
            .await?;
        tx.commit().await?;
        self.ca_revocation_committed();
        self.ca_certificate(&serial).await
    }

    /// Revokes every certificate of the enterprise `uscc` that is neither
    /// revoked nor expired, in one transaction (administrators only).
    /// Returns the certificates revoked.
    pub async fn counter_revoke_enterprise(
        &self,
        who: &OperatorInfo,
        uscc: &str,
        input: &CounterRevocation,
        meta: &RequestMeta,
    ) -> Result<Vec<String>> {
        if who.role != OperatorRole::Admin {
            return Err(Refusal::NotAdmin.into());
        }
        let uscc = Uscc::parse(uscc)?;
        let (reason, comment) = checked(input)?;
        let mut tx = self.store.begin_write().await?;
        let live = cadb::live_of_enterprise(&mut tx, uscc.as_str(), self.clock.now()).await?;
        if live.is_empty() {
            return Err(Refusal::InvalidField(format!(
                "统一社会信用代码为{}的企业没有有效证书。",
                uscc.as_str()
            ))
            .into());
        }
        let comment = format!("批量注销：{comment}");
        for c in &live {
            self.counter_revoke_one(&mut tx, who, c, reason, &comment, meta)
                .await?;
        }
        tx.commit().await?;
        self.ca_revocation_committed();
        Ok(live.into_iter().map(|c| c.serial).collect())
    }

    async fn counter_revoke_one(
        &self,
        tx: &mut WriteTx,
        who: &OperatorInfo,
        c: &CertificateRow,
        reason: Reason,
        comment: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        self.ca_revoke_in(
            tx,
            &c.serial,
            reason,
            Actor::Operator(who.id),
            Some(comment),
            meta,
        )
        .await?;
        if let Some(account) = c.account_id {
            messages::insert(
                tx,
                account,
                &NewMessage {
                    kind: MessageKind::System,
                    title: "证书已注销".to_owned(),
                    body: format!(
                        "您的证书（{}，序列号{}）已由柜台于{}注销，注销原因：{}。\
                         该证书已立即失效。如有疑问，请联系柜台。",
                        subject_common_name(&c.subject),
                        c.serial,
                        self.clock.now().display_cst(),
                        reason.label_zh()
                    ),
                    order_id: None,
                },
                self.clock.now(),
            )
            .await?;
        }
        Ok(())
    }
}
