//! 证书变更 online (issue 12): the enterprise's data changed (a new name,
//! legal representative, address …); the certificate is replaced on the
//! key the applicant holds.
//!
//! 1. [`Services::start_change`]: 介质查询 found one of the account's valid
//!    certificates; a change order (`OrderKind::Change`) is opened with
//!    the certificate's order's steps 1–3 filled in, at step 3.
//! 2. The wizard as for a new certificate, with the change rules
//!    ([`certhall_domain::change`]): the same application and enterprise
//!    (统一社会信用代码), something changed, and the changed license
//!    uploaded to the change order (OCR reads it); step 5 authorizes again
//!    (by the legal representative's SMS, so a new representative answers
//!    it, or by letter). The counter reviews it, seeing what changed.
//! 3. Approved, the order waits for the key write
//!    (`OrderState::AwaitingKeyWrite`): no key, payment or shipping. The
//!    applicant's page drives the agent as for a renewal
//!    ([`Services::start_change_write`] opens a renewal row naming the
//!    order); the new certificate takes its subject from the order's
//!    checked data. Read back, it completes the order; the old certificate
//!    is revoked (`affiliationChanged` when the name changed, otherwise
//!    `superseded`), activations carry over and the platforms hear
//!    `certificate.changed`.

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::change::{self, FieldChange};
use certhall_domain::lifecycle::subject_common_name;
use certhall_domain::message::{MessageKind, NewMessage};
use certhall_domain::order::{OrderKind, OrderState, Step};
use certhall_domain::steps::OrderSteps;
use certhall_domain::wizard::EnterpriseIdentity;
use certhall_domain::{production, AccountId, OrderId, Refusal};
use certhall_store::ca::CertificateRow;
use certhall_store::orders::{self, OrderRow};
use certhall_store::{messages, LockKey};
use serde_json::json;

use crate::auth::CodeSent;
use crate::certificates::{CertificateStatus, MyCertificate};
use crate::renewal::{KeyProof, KeyWriteFor, RenewalStarted};
use crate::{append_audit, RequestMeta, Result, Services};

/// A change order's link to the certificate it changes.
#[derive(Debug, Clone)]
pub struct ChangeView {
    /// The certificate changed.
    pub old_serial: String,
    /// The enterprise as on the certificate's order (when it had one).
    pub before: Option<EnterpriseIdentity>,
    /// What differs in the change order's step 3 so far.
    pub changes: Vec<FieldChange>,
}

/// Why a certificate in `status` cannot be changed (none when it can).
fn why_not_changeable(status: CertificateStatus) -> Option<&'static str> {
    Some(match status {
        CertificateStatus::Superseded => {
            "该证书已被新证书替换，请对新证书办理变更（如已有变更订单，请先取消）"
        }
        CertificateStatus::Revoked => "该证书已注销，不能变更，请办理证书新办",
        CertificateStatus::Expired => "该证书已过期，不能变更，请办理证书新办",
        _ => return None,
    })
}

fn code_purpose(order: OrderId) -> String {
    format!("change:{order}")
}

fn challenge_binding(account: AccountId, order: OrderId) -> String {
    format!("change:{}:{order}", account.0)
}

impl Services {
    /// Why one of the account's certificates cannot be changed now (none
    /// when it can), for 介质查询.
    pub fn change_advice(&self, mine: &MyCertificate) -> Option<&'static str> {
        why_not_changeable(mine.status)
    }

    /// Refuses a change of one of the account's certificates that is
    /// revoked, replaced or expired, saying what to do instead.
    fn check_mine_changeable(&self, mine: &MyCertificate) -> Result<()> {
        match why_not_changeable(mine.status) {
            None => Ok(()),
            Some(why) => Err(Refusal::InvalidField(why.into()).into()),
        }
    }

    /// Refuses a change of a certificate that is revoked or expired (the
    /// record alone: for the write's later stages).
    pub(crate) fn check_changeable(&self, c: &CertificateRow) -> Result<()> {
        match why_not_changeable(CertificateStatus::of(c, self.clock.now(), false)) {
            None => Ok(()),
            Some(why) => Err(Refusal::InvalidField(why.into()).into()),
        }
    }

    /// Opens a 证书变更 order for one of the account's valid certificates,
    /// prefilled with the certificate's order's steps 1–3 and open at
    /// step 3 (the changed license is uploaded there). A certificate with
    /// a change under way gets that order's number instead.
    pub async fn start_change(
        &self,
        account: AccountId,
        serial: &str,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let mine = self.own_certificate(account, serial).await?;
        let c = &mine.certificate;
        self.check_mine_changeable(&mine)?;
        // The change is checked against what was verified for the
        // certificate: one issued without an order has nothing to compare.
        if c.order_id.is_none() {
            return Err(Refusal::InvalidField(
                "该证书不是通过网上营业厅申请的，无法在线核对变更前的信息，请携带新营业执照到柜台办理变更"
                    .into(),
            )
            .into());
        }
        let prefill = self.first_steps_of(c).await?;
        // Steps 1 and 2 carried over: the applicant starts at step 3.
        let reached = if prefill.len() >= 2 {
            Step::Enterprise
        } else {
            Step::Identity
        };
        let names = match c.order_id {
            Some(id) => orders::get(&self.store, OrderId(id)).await?,
            None => None,
        };
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        // One open order of each kind per certificate, decided under the
        // certificate's lock (two clicks, two processes).
        tx.lock(LockKey::Certificate(&c.serial)).await?;
        if let Some(open) = orders::open_replacement(&mut tx, &c.serial, OrderKind::Change).await? {
            return Err(Refusal::InvalidField(format!(
                "该证书已有变更订单（订单 {open}），请在“我的订单”中继续办理"
            ))
            .into());
        }
        // A renewal order under way (perhaps paid) would be left with a
        // replaced certificate.
        if let Some(open) = orders::open_replacement(&mut tx, &c.serial, OrderKind::Renewal).await?
        {
            return Err(Refusal::InvalidField(format!(
                "该证书有未完成的证书更新订单（订单 {open}），请先完成更新或取消该订单，再办理变更"
            ))
            .into());
        }
        let order = orders::create(
            &mut tx,
            account,
            OrderKind::Change,
            OrderState::Draft { reached },
            now,
        )
        .await?;
        for (step, v) in &prefill {
            orders::save_step(&mut tx, order.id, *step, v, now).await?;
        }
        if let Some(o) = &names {
            orders::set_names(
                &mut tx,
                order.id,
                o.application_name.as_deref(),
                o.enterprise_name.as_deref(),
            )
            .await?;
        }
        orders::insert_replacement(&mut tx, order.id, &c.serial, "change", now).await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(account),
            meta,
            AuditEvent::OrderCreated,
            json!({
                "order": order.id,
                "kind": OrderKind::Change.as_str(),
                "changes": c.serial,
                "prefilled_steps": prefill.len(),
            }),
        )
        .await?;
        messages::insert(
            &mut tx,
            account,
            &NewMessage {
                kind: MessageKind::System,
                title: "变更订单已创建".to_owned(),
                body: format!(
                    "已为证书（{}，序列号{}）创建变更订单{}。请在第三步上传变更后的营业执照并修改企业信息，\
                     经授权和柜台审核后，新证书将写入您现在的 UKey；原证书在写入前仍可正常使用。",
                    subject_common_name(&c.subject),
                    c.serial,
                    order.id
                ),
                order_id: Some(order.id),
            },
            now,
        )
        .await?;
        let order = orders::get_tx(&mut tx, order.id)
            .await?
            .ok_or(Refusal::NotFound)?;
        tx.commit().await?;
        Ok(order)
    }

    /// The certificate a change order changes, with the enterprise as
    /// before and what differs; `None` for other orders.
    pub async fn change_of(&self, order: &OrderRow) -> Result<Option<ChangeView>> {
        if order.kind != OrderKind::Change {
            return Ok(None);
        }
        let Some(old_serial) = orders::replaced_by(&self.store, order.id).await? else {
            return Ok(None);
        };
        let before = self
            .original_steps(&old_serial)
            .await?
            .and_then(|s| s.enterprise);
        let after = self.steps_of(order.id).await?.enterprise;
        let changes = match (&before, &after) {
            (Some(b), Some(a)) => change::enterprise_changes(b, a),
            _ => Vec::new(),
        };
        Ok(Some(ChangeView {
            old_serial,
            before,
            changes,
        }))
    }

    /// The steps of the order a certificate was issued for.
    async fn original_steps(&self, serial: &str) -> Result<Option<OrderSteps>> {
        match self.ca_certificate(serial).await?.order_id {
            Some(id) => Ok(Some(self.steps_of(OrderId(id)).await?)),
            None => Ok(None),
        }
    }

    /// The change rules for a step about to be saved on `order` (nothing
    /// for other kinds): step 2 keeps the application; step 3 keeps the
    /// enterprise, changes something and has the new license (`enterprise`
    /// is step 3 as typed, and whether the order has a license).
    pub(crate) async fn check_change_step(
        &self,
        order: OrderId,
        application: Option<&str>,
        enterprise: Option<(&EnterpriseIdentity, bool)>,
    ) -> Result<()> {
        let row = orders::get(&self.store, order)
            .await?
            .ok_or(Refusal::NotFound)?;
        if row.kind != OrderKind::Change {
            return Ok(());
        }
        let Some(old_serial) = orders::replaced_by(&self.store, order).await? else {
            return Ok(());
        };
        let Some(before) = self.original_steps(&old_serial).await? else {
            return Ok(());
        };
        if let (Some(after), Some(b)) = (application, &before.application) {
            change::check_application(&b.code, after)?;
        }
        if let (Some((after, license)), Some(b)) = (enterprise, &before.enterprise) {
            change::check_enterprise(b, after, license)?;
        }
        Ok(())
    }

    /// An approved change order of the account's, waiting for its key
    /// write, and the certificate it changes (still changeable).
    pub async fn change_awaiting_write(
        &self,
        account: AccountId,
        order: OrderId,
    ) -> Result<(OrderRow, MyCertificate)> {
        let row = self.order_of(account, order).await?;
        if row.kind != OrderKind::Change {
            return Err(Refusal::NotFound.into());
        }
        if row.state != OrderState::AwaitingKeyWrite {
            return Err(Refusal::OrderStateConflict(row.state.label_zh()).into());
        }
        let serial = orders::replaced_by(&self.store, order)
            .await?
            .ok_or(Refusal::NotFound)?;
        let mine = self.own_certificate(account, &serial).await?;
        self.check_mine_changeable(&mine)?;
        Ok((row, mine))
    }

    /// Sends the SMS code that confirms writing a change order's new
    /// certificate.
    pub async fn send_change_code(
        &self,
        account: AccountId,
        order: OrderId,
        meta: &RequestMeta,
    ) -> Result<CodeSent> {
        let (_, mine) = self.change_awaiting_write(account, order).await?;
        let action = format!(
            "证书变更（{}，订单 {order}）",
            subject_common_name(&mine.certificate.subject)
        );
        self.send_confirmation_code(account, &code_purpose(order), action, meta)
            .await
    }

    /// The challenge the old key signs (purpose `renew`) to start the key
    /// write of a change order: bound to the account and the order.
    pub async fn issue_change_challenge(
        &self,
        account: AccountId,
        order: OrderId,
        meta: &RequestMeta,
    ) -> Result<crate::cert_login::IssuedChallenge> {
        self.change_awaiting_write(account, order).await?;
        self.issue_login_challenge(&challenge_binding(account, order), meta)
            .await
    }

    /// Opens the key write of an approved change order onto the token the
    /// old certificate is on; then as a renewal (`/api/v1/renewals/…`).
    #[allow(clippy::too_many_arguments)]
    pub async fn start_change_write(
        &self,
        account: AccountId,
        order: OrderId,
        token_serial: &str,
        code: &str,
        proof: &KeyProof<'_>,
        meta: &RequestMeta,
    ) -> Result<RenewalStarted> {
        let (_, mine) = self.change_awaiting_write(account, order).await?;
        self.open_key_write(
            account,
            &mine,
            KeyWriteFor {
                binding: challenge_binding(account, order),
                code_purpose: code_purpose(order),
                order: Some(order),
            },
            token_serial,
            code,
            proof,
            meta,
        )
        .await
    }

    /// The subject and profile of a change order's new certificate: from
    /// its checked data, while it still waits for the write.
    pub(crate) async fn change_subject(
        &self,
        account: AccountId,
        order: OrderId,
    ) -> Result<(String, String)> {
        let row = self.order_of(account, order).await?;
        if row.state != OrderState::AwaitingKeyWrite {
            return Err(Refusal::OrderStateConflict(row.state.label_zh()).into());
        }
        let facts = self.order_facts(order).await?;
        Ok((
            production::certificate_subject(&facts.enterprise, &facts.uscc, &facts.applicant),
            facts.profile,
        ))
    }
}
