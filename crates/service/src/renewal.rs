//! 证书更新 online (issue 12): the applicant renews a certificate onto the
//! UKey it is on, through the key agent on their own PC.
//!
//! The page drives the agent; CertHall decides and records, one call per
//! stage, each checked against the renewal's state
//! ([`certhall_domain::renewal`]):
//!
//! 1. [`Services::start_renewal`]: 介质查询 found the certificate on the
//!    plugged-in key and its key signed CertHall's challenge
//!    ([`Services::issue_renewal_challenge`], purpose `renew`): CertHall
//!    checks that signature against the old certificate (the UKey is
//!    here, not only the account), the SMS code, that the certificate is
//!    the account's and on this token, and the renewal window, and opens
//!    the renewal (one per certificate).
//! 2. [`Services::renewal_csr`]: a new key pair was generated in the same
//!    token; CertHall issues the new certificate with the old one's subject
//!    and profile (never the request's), for a key that is not the old
//!    one, while the old certificate is still valid.
//! 3. [`Services::renewal_written`]: the page read the new certificate back
//!    from the token; equal bytes complete the renewal, unless either
//!    certificate was revoked meanwhile (then it fails). In one
//!    transaction: the old certificate is revoked as `superseded`, the
//!    activations carry over, the platforms are told
//!    (`certificate.renewed`, then `certificate.revoked`), the key record
//!    points at the new certificate, a message, the audit entries.
//!
//! A failure ([`Services::renewal_failed`], or a renewal left open for
//! [`RENEWAL_STALE`] and found by the next one) revokes the new certificate
//! if one was issued; the old one stays valid throughout. The PIN is never
//! CertHall's business here: the agent checks it on the token.

use certhall_ca::crl::Reason;
use certhall_ca::Family;
use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::lifecycle::subject_common_name;
use certhall_domain::message::{MessageKind, NewMessage};
use certhall_domain::order::{OrderKind, OrderState};
use certhall_domain::renewal::{renewal_transition, RenewalEvent, RenewalState, RENEWAL_STALE};
use certhall_domain::{AccountId, OrderId, Refusal};
use certhall_store::ca::CertificateRow;
use certhall_store::orders::OrderRow;
use certhall_store::renewals::{self as db, RenewalChange};
// The row the pages show, re-exported so the web names no store type.
pub use certhall_store::renewals::RenewalRow;
use certhall_store::{messages, production as pdb, relying, WriteTx};
use serde_json::json;

use crate::auth::CodeSent;
use crate::certificates::{lifecycle_facts, MyCertificate};
use crate::production::IssuedForKey;
use crate::revocation::Confirmation;
use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

/// The old key's answer to a renewal challenge, as the agent gave it.
#[derive(Debug, Clone, Copy)]
pub struct KeyProof<'a> {
    /// The challenge from [`Services::issue_renewal_challenge`].
    pub challenge: &'a str,
    /// The bytes the agent signed.
    pub signed_data: &'a [u8],
    /// The signature over them.
    pub signature: &'a [u8],
    /// Origins the signed message may name: CertHall's own.
    pub accepted_origins: &'a [String],
}

/// A challenge unknown, expired or used.
const CHALLENGE_STALE: &str = "更新请求已失效（超过 2 分钟或已使用），请重新点击“更新证书”。";

/// What a challenge for renewing `serial` is bound to.
fn challenge_binding(account: AccountId, serial: &str) -> String {
    format!("renew:{}:{serial}", account.0)
}

/// Checks that `proof` is a `renew` signature over `challenge` by the key
/// of `old` (the refusal says what to do otherwise).
fn check_key_proof(old: &CertificateRow, proof: &KeyProof<'_>) -> std::result::Result<(), Refusal> {
    use certhall_domain::cert_login::SignedMessage;
    use der::Decode;
    const NOT_THIS_KEY: &str =
        "UKey 签名校验未通过：插入的 UKey 中没有这张证书的密钥。请插入存放该证书的 UKey 后重试。";
    let message_ok = SignedMessage::parse(proof.signed_data).is_some_and(|m| {
        m.purpose == "renew"
            && m.challenge == proof.challenge
            && proof.accepted_origins.contains(&m.origin)
    });
    let cert = x509_cert::Certificate::from_der(&old.der)
        .map_err(|_| Refusal::RenewalProofFailed(NOT_THIS_KEY))?;
    let signature_ok = certhall_ca::csr::verify_signature(
        &cert.tbs_certificate.subject_public_key_info,
        proof.signed_data,
        proof.signature,
    )
    .is_ok();
    if message_ok && signature_ok {
        Ok(())
    } else {
        Err(Refusal::RenewalProofFailed(NOT_THIS_KEY))
    }
}

/// True if `key` is the public key `old` certifies.
fn same_public_key(old: &CertificateRow, key: &x509_cert::spki::SubjectPublicKeyInfoOwned) -> bool {
    use der::Decode;
    x509_cert::Certificate::from_der(&old.der)
        .is_ok_and(|c| c.tbs_certificate.subject_public_key_info == *key)
}

/// What a key write is for: the challenge's binding, the SMS code's
/// purpose, and the 证书变更 order (none for a renewal).
#[derive(Debug, Clone)]
pub(crate) struct KeyWriteFor {
    pub(crate) binding: String,
    pub(crate) code_purpose: String,
    pub(crate) order: Option<OrderId>,
}

/// A renewal opened: what the page tells the agent next.
#[derive(Debug, Clone)]
pub struct RenewalStarted {
    /// The renewal.
    pub renewal: RenewalRow,
    /// The key pair to generate (the agent's algorithm name: the old
    /// certificate's).
    pub algorithm: &'static str,
    /// The new key's label on the token.
    pub key_label: String,
}

fn purpose(serial: &str) -> String {
    format!("renew:{serial}")
}

/// The agent's algorithm name for a family's end-entity keys.
fn agent_algorithm(family: Family) -> &'static str {
    match family {
        Family::Sm2 => "sm2",
        Family::P256 => "p256",
        Family::Rsa => "rsa2048",
    }
}

/// Why a renewal left open too long ended.
const ABANDONED: &str = "更新中断超过 30 分钟，已作废";

impl Services {
    /// One of the account's certificates. Another account's (it may be on
    /// the key plugged in all the same) is [`Refusal::NotOwnCertificate`];
    /// one CertHall never issued, [`Refusal::CertificateNotFound`].
    pub async fn own_certificate(&self, account: AccountId, serial: &str) -> Result<MyCertificate> {
        match self.my_certificate(account, serial).await {
            Err(ServiceError::Refused(Refusal::CertificateNotFound)) => {
                self.ca_certificate(serial).await?;
                Err(Refusal::NotOwnCertificate.into())
            }
            other => other,
        }
    }

    /// Refuses unless the certificate may be renewed now (the window's
    /// message says why and what to do instead).
    fn check_renewal_window(&self, c: &CertificateRow) -> Result<()> {
        let timing = self
            .renewal_window
            .check(&lifecycle_facts(c), self.clock.now());
        match timing.message_zh(c.not_after) {
            None => Ok(()),
            Some(why) => Err(Refusal::RenewalNotOpen(why).into()),
        }
    }

    /// The family (CA hierarchy) a certificate was issued under.
    async fn family_of_certificate(&self, c: &CertificateRow) -> Result<Family> {
        let issuer = certhall_store::ca::authority(&self.store, c.issuer_id)
            .await?
            .ok_or(Refusal::CertificateNotFound)?;
        issuer
            .family
            .parse()
            .map_err(|_| ServiceError::Internal(format!("authority family {:?}", issuer.family)))
    }

    /// 证书更新: sends the code that confirms renewing one of the
    /// account's certificates (only within the renewal window).
    pub async fn send_renewal_code(
        &self,
        account: AccountId,
        serial: &str,
        meta: &RequestMeta,
    ) -> Result<CodeSent> {
        let mine = self.own_certificate(account, serial).await?;
        let c = &mine.certificate;
        self.check_renewal_window(c)?;
        self.paid_renewal_order(c).await?;
        let action = format!("证书更新（{}）", subject_common_name(&c.subject));
        self.send_confirmation_code(account, &purpose(&c.serial), action, meta)
            .await
    }

    /// The challenge the old key signs (purpose `renew`) to start the
    /// renewal of `serial`: only for the account's certificates, within
    /// the window. Bound to the account and the certificate, valid for
    /// two minutes, used once.
    pub async fn issue_renewal_challenge(
        &self,
        account: AccountId,
        serial: &str,
        meta: &RequestMeta,
    ) -> Result<crate::cert_login::IssuedChallenge> {
        let mine = self.own_certificate(account, serial).await?;
        self.check_renewal_window(&mine.certificate)?;
        self.paid_renewal_order(&mine.certificate).await?;
        self.issue_login_challenge(&challenge_binding(account, &mine.certificate.serial), meta)
            .await
    }

    /// The paid 证书更新 order the renewal of `c` completes, if any; when
    /// renewal carries a price, refuses until one is paid.
    async fn paid_renewal_order(&self, c: &CertificateRow) -> Result<Option<OrderId>> {
        if let Some(change) =
            certhall_store::orders::open_successor(&self.store, &c.serial, OrderKind::Change)
                .await?
        {
            return Err(Refusal::InvalidField(format!(
                "该证书正在办理证书变更（订单 {change}），变更完成后将获得新证书；如需更新，请先取消变更订单"
            ))
            .into());
        }
        if let Some(id) =
            certhall_store::orders::open_successor(&self.store, &c.serial, OrderKind::Renewal)
                .await?
        {
            let order = certhall_store::orders::get(&self.store, id)
                .await?
                .ok_or(Refusal::NotFound)?;
            if order.state == OrderState::AwaitingKeyWrite {
                return Ok(Some(id));
            }
        }
        if self.renewal_price_fen > 0 {
            return Err(Refusal::RenewalUnpaid(certhall_domain::money::yuan_decimal(
                self.renewal_price_fen,
            ))
            .into());
        }
        Ok(None)
    }

    /// True when renewing `mine` must be paid for first (a price is set
    /// and no paid renewal order waits for its write).
    pub async fn renewal_unpaid(&self, mine: &MyCertificate) -> Result<bool> {
        match self.paid_renewal_order(&mine.certificate).await {
            Ok(_) => Ok(false),
            Err(ServiceError::Refused(Refusal::RenewalUnpaid(_))) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// The certificate one of the account's orders renews, changes or
    /// replaces (none for a new certificate's order).
    pub async fn order_certificate(
        &self,
        account: AccountId,
        id: OrderId,
    ) -> Result<Option<String>> {
        self.order_of(account, id).await?;
        Ok(certhall_store::orders::replaced_by(&self.store, id).await?)
    }

    /// The price of a renewal in yuan (`0.00`: free), as shown.
    pub fn renewal_price_yuan(&self) -> String {
        certhall_domain::money::yuan_decimal(self.renewal_price_fen)
    }

    /// The 证书变更 order a key write belongs to (none for a renewal, paid
    /// or free).
    async fn change_order_of(&self, renewal: &RenewalRow) -> Result<Option<OrderId>> {
        let Some(id) = renewal.order_id.map(OrderId) else {
            return Ok(None);
        };
        let order = certhall_store::orders::get(&self.store, id)
            .await?
            .ok_or(Refusal::NotFound)?;
        Ok((order.kind == OrderKind::Change).then_some(id))
    }

    /// When renewal carries a price (`[renewal] price_fen`): the 证书更新
    /// order that pays for renewing `serial` — the one under way, or a new
    /// one waiting for payment (no wizard: the certificate says what is
    /// renewed). Paid, the renewal page writes the new certificate.
    pub async fn start_renewal_order(
        &self,
        account: AccountId,
        serial: &str,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let mine = self.own_certificate(account, serial).await?;
        let c = &mine.certificate;
        self.check_renewal_window(c)?;
        if self.renewal_price_fen <= 0 {
            return Err(Refusal::InvalidField("证书更新免费，无需支付，请直接更新".into()).into());
        }
        let original = match c.order_id {
            Some(id) => certhall_store::orders::get(&self.store, OrderId(id)).await?,
            None => None,
        };
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        // One open order of each kind per certificate (two clicks, two
        // processes): decided under the certificate's lock.
        tx.lock(certhall_store::LockKey::Certificate(&c.serial))
            .await?;
        if let Some(open) =
            certhall_store::orders::open_replacement(&mut tx, &c.serial, OrderKind::Renewal).await?
        {
            drop(tx);
            return self.order_of(account, open).await;
        }
        if let Some(change) =
            certhall_store::orders::open_replacement(&mut tx, &c.serial, OrderKind::Change).await?
        {
            return Err(Refusal::InvalidField(format!(
                "该证书正在办理证书变更（订单 {change}），变更完成后将获得新证书；如需更新，请先取消变更订单"
            ))
            .into());
        }
        let order = certhall_store::orders::create(
            &mut tx,
            account,
            OrderKind::Renewal,
            OrderState::AwaitingPayment,
            now,
        )
        .await?;
        let holder = subject_common_name(&c.subject);
        certhall_store::orders::set_names(
            &mut tx,
            order.id,
            original
                .as_ref()
                .and_then(|o| o.application_name.as_deref()),
            Some(
                original
                    .as_ref()
                    .and_then(|o| o.enterprise_name.as_deref())
                    .unwrap_or(&holder),
            ),
        )
        .await?;
        certhall_store::orders::set_amount(&mut tx, order.id, Some(self.renewal_price_fen)).await?;
        certhall_store::orders::insert_replacement(&mut tx, order.id, &c.serial, "renewal", now)
            .await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(account),
            meta,
            AuditEvent::OrderCreated,
            json!({
                "order": order.id, "kind": OrderKind::Renewal.as_str(),
                "renews": c.serial, "amount_fen": self.renewal_price_fen,
            }),
        )
        .await?;
        tx.commit().await?;
        self.order_of(account, order.id).await
    }

    /// Stage 1: opens the renewal of `serial` onto the token
    /// `token_serial` (the one 介质查询 found it on), confirmed by the SMS
    /// code. A wrong code counts a try and opens nothing.
    pub async fn start_renewal(
        &self,
        account: AccountId,
        serial: &str,
        token_serial: &str,
        code: &str,
        proof: &KeyProof<'_>,
        meta: &RequestMeta,
    ) -> Result<RenewalStarted> {
        let mine = self.own_certificate(account, serial).await?;
        self.check_renewal_window(&mine.certificate)?;
        let order = self.paid_renewal_order(&mine.certificate).await?;
        self.open_key_write(
            account,
            &mine,
            KeyWriteFor {
                binding: challenge_binding(account, &mine.certificate.serial),
                code_purpose: purpose(&mine.certificate.serial),
                order,
            },
            token_serial,
            code,
            proof,
            meta,
        )
        .await
    }

    /// Opens a write of a successor of `mine` onto the token it is on (a
    /// renewal, or the key write of a 证书变更 order), once the old key's
    /// signature, the token and the SMS code check out.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn open_key_write(
        &self,
        account: AccountId,
        mine: &MyCertificate,
        target: KeyWriteFor,
        token_serial: &str,
        code: &str,
        proof: &KeyProof<'_>,
        meta: &RequestMeta,
    ) -> Result<RenewalStarted> {
        let c = &mine.certificate;
        // The key must be here: a session and the phone are not enough to
        // put a new certificate for the enterprise on any key.
        check_key_proof(c, proof)?;
        let token_serial = token_serial.trim();
        if token_serial.is_empty() || token_serial.len() > 64 {
            return Err(Refusal::MissingField("UKey 序列号").into());
        }
        // A key CertHall made: the certificate must be renewed onto it.
        if let Some(ukey) = &mine.ukey {
            if ukey.token_serial != token_serial {
                return Err(Refusal::WrongToken.into());
            }
        }
        let family = self.family_of_certificate(c).await?;
        let phone = self.account_phone(account).await?;
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        if let Err(r) = self
            .use_up_challenge(&mut tx, proof.challenge, &target.binding, now)
            .await?
        {
            tracing::info!(refusal = r.code(), "renewal: challenge not usable");
            return Err(Refusal::RenewalProofFailed(CHALLENGE_STALE).into());
        }
        if let Confirmation::Refused(r) = self
            .confirm_code(&mut tx, &phone, &target.code_purpose, code)
            .await?
        {
            tx.commit().await?;
            return Err(r.into());
        }
        let mut abandoned = false;
        if let Some(open) = db::open_of(&mut tx, &c.serial).await? {
            if open.updated_at.plus(RENEWAL_STALE) > now {
                return Err(Refusal::RenewalBusy.into());
            }
            self.end_renewal_in(
                &mut tx,
                &open,
                RenewalEvent::Abandon,
                ABANDONED,
                Actor::Account(account),
                meta,
            )
            .await?;
            abandoned = open.new_serial.is_some();
        }
        let order = target.order.map(|o| o.0);
        let id = db::insert(&mut tx, account, &c.serial, token_serial, order, now)
            .await?
            .ok_or(Refusal::RenewalBusy)?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(account),
            meta,
            AuditEvent::RenewalStep,
            json!({
                "renewal": id, "event": "started", "certificate": c.serial,
                "token": token_serial, "order": order,
            }),
        )
        .await?;
        tx.commit().await?;
        if abandoned {
            self.ca_revocation_committed();
        }
        Ok(RenewalStarted {
            renewal: self.own_renewal(account, id).await?,
            algorithm: agent_algorithm(family),
            key_label: format!("签名密钥-{}", now.date_zh()),
        })
    }

    /// One of the account's renewals (another account's is 404).
    pub async fn own_renewal(&self, account: AccountId, id: i64) -> Result<RenewalRow> {
        db::get(&self.store, id)
            .await?
            .filter(|r| r.account_id == account)
            .ok_or_else(|| Refusal::NotFound.into())
    }

    /// Stage 2: the new key pair is in the token; issues its certificate
    /// with the old certificate's subject and profile.
    pub async fn renewal_csr(
        &self,
        account: AccountId,
        id: i64,
        csr: &[u8],
        key_id: &str,
        meta: &RequestMeta,
    ) -> Result<IssuedForKey> {
        let renewal = self.own_renewal(account, id).await?;
        renewal_transition(renewal.state, RenewalEvent::Issue)?;
        let key_id = key_id.trim();
        if key_id.is_empty() || key_id.len() > 128 || !key_id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(Refusal::MissingField("密钥标识").into());
        }
        let old = self.ca_certificate(&renewal.old_serial).await?;
        // A renewal keeps the old subject and profile; a change takes them
        // from its order's checked data. Either way, a certificate revoked
        // since the write started (注销, 补办, the counter) gets no
        // successor.
        // The order it writes for (a change, a paid renewal) must still
        // wait for it: cancelled meanwhile, nothing is issued.
        if let Some(order) = renewal.order_id.map(OrderId) {
            let row = self.order_of(account, order).await?;
            if row.state != OrderState::AwaitingKeyWrite {
                return Err(Refusal::OrderStateConflict(row.state.label_zh()).into());
            }
        }
        // A change keeps its predecessor's end of validity: it changes the
        // data, it does not renew.
        let (subject, profile, order_id, ends_by) = match self.change_order_of(&renewal).await? {
            None => {
                self.check_renewal_window(&old)?;
                (old.subject.clone(), old.profile.clone(), old.order_id, None)
            }
            Some(order) => {
                self.check_changeable(&old)?;
                let (subject, profile) = self.change_subject(account, order).await?;
                (subject, profile, Some(order.0), Some(old.not_after))
            }
        };
        let family = self.family_of_certificate(&old).await?;
        let verified =
            certhall_ca::csr::verify(csr).map_err(|e| Refusal::CaRequestRefused(e.to_string()))?;
        if verified.key.to_string() != old.key_algorithm {
            return Err(Refusal::WrongKeyAlgorithm(family.label_zh()).into());
        }
        if same_public_key(&old, &verified.public_key) {
            return Err(Refusal::CaRequestRefused(
                "更新须在 UKey 内生成新的密钥，不能沿用原证书的密钥。".into(),
            )
            .into());
        }
        let cert = self
            .ca_issue(
                &crate::ca::IssueInput {
                    family,
                    profile: &profile,
                    csr,
                    subject: &subject,
                    account: Some(account),
                    order_id,
                    predecessor: Some(&old.serial),
                    ends_by,
                },
                Actor::Account(account),
            )
            .await?;
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        let moved = db::update(
            &mut tx,
            id,
            RenewalState::Started,
            RenewalState::Issued,
            &RenewalChange {
                key_id: Some(key_id),
                new_serial: Some(&cert.serial),
                ..RenewalChange::default()
            },
            now,
        )
        .await?;
        if !moved {
            drop(tx);
            // The renewal ended meanwhile: its certificate must not outlive it.
            self.revoke_unused_certificate(&cert.serial, "证书更新已结束，新证书作废")
                .await?;
            let state = self.own_renewal(account, id).await?.state;
            return Err(Refusal::RenewalClosed(state.label_zh()).into());
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(account),
            meta,
            AuditEvent::RenewalStep,
            json!({ "renewal": id, "event": "issued", "certificate": cert.serial, "key_id": key_id }),
        )
        .await?;
        tx.commit().await?;
        self.issued_for_key(family, cert).await
    }

    /// Stage 3: the new certificate read back from the token. Equal bytes
    /// complete the renewal (see the module's documentation); a different
    /// certificate ends it and revokes the new one.
    pub async fn renewal_written(
        &self,
        account: AccountId,
        id: i64,
        read_back: &[u8],
        meta: &RequestMeta,
    ) -> Result<CertificateRow> {
        let renewal = self.own_renewal(account, id).await?;
        renewal_transition(renewal.state, RenewalEvent::Complete)?;
        let new_serial = renewal.new_serial.clone().unwrap_or_default();
        let new = self.ca_certificate(&new_serial).await?;
        if new.der != read_back {
            self.renewal_failed(account, id, "从 UKey 读回的证书与签发的证书不一致", meta)
                .await?;
            return Err(Refusal::InvalidField(
                "从 UKey 读回的证书与签发的证书不一致，本次更新已作废（新证书已注销），原证书仍然有效。请重新更新。"
                    .into(),
            )
            .into());
        }
        let old = self.ca_certificate(&renewal.old_serial).await?;
        let now = self.clock.now();
        let actor = Actor::Account(account);
        let mut tx = self.store.begin_write().await?;
        // Either certificate revoked meanwhile (the old one by 注销 or
        // 补办, the new one by the sweep): no completion. Read inside the
        // transaction, after which a revocation waits for ours.
        let revoked = |c: Option<CertificateRow>| c.is_none_or(|c| c.revocation.is_some());
        let why = if revoked(certhall_store::ca::certificate_tx(&mut tx, &old.serial).await?) {
            Some("原证书已注销，本次更新已作废，新证书同时注销。")
        } else if revoked(certhall_store::ca::certificate_tx(&mut tx, &new.serial).await?) {
            Some("本次更新已超时作废，新证书已注销，原证书仍然有效。请重新更新。")
        } else {
            None
        };
        if let Some(why) = why {
            let ended = match self
                .end_renewal_in(
                    &mut tx,
                    &renewal,
                    RenewalEvent::Fail,
                    why,
                    actor.clone(),
                    meta,
                )
                .await
            {
                Ok(()) => {
                    tx.commit().await?;
                    self.ca_revocation_committed();
                    true
                }
                Err(ServiceError::Refused(Refusal::RenewalBusy | Refusal::RenewalClosed(_))) => {
                    false
                }
                Err(e) => return Err(e),
            };
            if ended {
                return Err(Refusal::RenewalNotOpen(why.to_owned()).into());
            }
            let state = self.own_renewal(account, id).await?.state;
            return Err(Refusal::RenewalClosed(state.label_zh()).into());
        }
        if !db::update(
            &mut tx,
            id,
            RenewalState::Issued,
            RenewalState::Completed,
            &RenewalChange {
                finished: true,
                ..RenewalChange::default()
            },
            now,
        )
        .await?
        {
            drop(tx);
            let state = self.own_renewal(account, id).await?.state;
            return Err(Refusal::RenewalClosed(state.label_zh()).into());
        }
        // The platforms hear of the successor before the revocation, and
        // the new certificate is activated wherever the old one was (a
        // change keeps the enterprise and the application).
        let change = self.change_order_of(&renewal).await?;
        let (kind, payload, reason, note) = match change {
            None => (
                "certificate.renewed",
                json!({
                    "new_serial": new.serial,
                    "not_after": new.not_after.rfc3339(),
                    "renewed_at": now.rfc3339(),
                }),
                Reason::Superseded,
                format!("证书更新：由新证书 {} 替换", new.serial),
            ),
            Some(order) => (
                "certificate.changed",
                json!({
                    "new_serial": new.serial,
                    "subject": new.subject,
                    "not_after": new.not_after.rfc3339(),
                    "changed_at": now.rfc3339(),
                }),
                // RFC 5280: affiliationChanged when the subject's name
                // changed; otherwise only the data behind it did.
                if new.subject == old.subject {
                    Reason::Superseded
                } else {
                    Reason::AffiliationChanged
                },
                format!("证书变更（订单 {order}）：由新证书 {} 替换", new.serial),
            ),
        };
        relying::queue_event(&mut tx, &old.serial, kind, &payload.to_string(), now).await?;
        let carried = relying::carry_activations(&mut tx, &old.serial, &new.serial, now).await?;
        self.ca_revoke_in(
            &mut tx,
            &old.serial,
            reason,
            actor.clone(),
            Some(&note),
            meta,
        )
        .await?;
        // The key record follows only if it held the renewed certificate
        // (a certificate renewed onto another key of the account's must not
        // take that key's record from its own certificate).
        if pdb::ukey_of_token(&mut tx, &renewal.token_serial)
            .await?
            .is_some_and(|k| k.account_id == account && k.certificate_serial == old.serial)
        {
            pdb::set_ukey_certificate(&mut tx, &renewal.token_serial, &new.serial).await?;
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor,
            meta,
            AuditEvent::RenewalStep,
            json!({
                "renewal": id, "event": "completed", "old": old.serial, "new": new.serial,
                "token": renewal.token_serial, "activations_carried": carried,
                "order": renewal.order_id,
            }),
        )
        .await?;
        if let Some(order) = renewal.order_id.map(OrderId) {
            // The order (a change, or a paid renewal) completes; its own
            // message says so.
            self.order_event_tx(
                &mut tx,
                crate::orders::OrderActor::System,
                order,
                None,
                certhall_domain::order::OrderEvent::KeyWritten,
                None,
                meta,
            )
            .await?;
            tx.commit().await?;
            self.ca_revocation_committed();
            return Ok(new);
        }
        messages::insert(
            &mut tx,
            account,
            &NewMessage {
                kind: MessageKind::System,
                title: "证书已更新".to_owned(),
                body: format!(
                    "您的证书（{}）已更新：新证书序列号{}，有效期至{}，已写入原 UKey，PIN 码不变。\
                     原证书（序列号{}）已停止使用。{}",
                    subject_common_name(&new.subject),
                    new.serial,
                    new.not_after.date_zh(),
                    old.serial,
                    if carried > 0 {
                        "原证书在交易平台的激活已转到新证书，无需重新激活。"
                    } else {
                        ""
                    }
                ),
                order_id: None,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        self.ca_revocation_committed();
        Ok(new)
    }

    /// The page reports a failure (the agent's or CertHall's message as
    /// shown). The renewal ends; a new certificate it issued is revoked;
    /// the old one stays valid.
    pub async fn renewal_failed(
        &self,
        account: AccountId,
        id: i64,
        message: &str,
        meta: &RequestMeta,
    ) -> Result<RenewalRow> {
        let renewal = self.own_renewal(account, id).await?;
        renewal_transition(renewal.state, RenewalEvent::Fail)?;
        let message: String = message.trim().chars().take(200).collect();
        let mut tx = self.store.begin_write().await?;
        self.end_renewal_in(
            &mut tx,
            &renewal,
            RenewalEvent::Fail,
            &message,
            Actor::Account(account),
            meta,
        )
        .await?;
        tx.commit().await?;
        if renewal.new_serial.is_some() {
            self.ca_revocation_committed();
        }
        self.own_renewal(account, id).await
    }

    /// Abandons renewals left open for [`RENEWAL_STALE`] (the page was
    /// closed half-way), revoking a new certificate they issued; the old
    /// one stays valid. Part of the production job's sweep; the number
    /// abandoned.
    pub async fn sweep_renewals(&self) -> Result<u32> {
        let before = self.clock.now().minus(RENEWAL_STALE);
        let mut abandoned = 0;
        for renewal in db::stale(&self.store, before).await? {
            let mut tx = self.store.begin_write().await?;
            match self
                .end_renewal_in(
                    &mut tx,
                    &renewal,
                    RenewalEvent::Abandon,
                    ABANDONED,
                    Actor::System,
                    &RequestMeta::default(),
                )
                .await
            {
                Ok(()) => {
                    tx.commit().await?;
                    if renewal.new_serial.is_some() {
                        self.ca_revocation_committed();
                    }
                    abandoned += 1;
                }
                // Finished by its page meanwhile (nothing was written).
                Err(ServiceError::Refused(Refusal::RenewalBusy)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(abandoned)
    }

    /// Ends an open renewal inside `tx` (failed or abandoned), revoking
    /// the certificate it issued.
    async fn end_renewal_in(
        &self,
        tx: &mut WriteTx,
        renewal: &RenewalRow,
        event: RenewalEvent,
        why: &str,
        actor: Actor,
        meta: &RequestMeta,
    ) -> Result<()> {
        let to = renewal_transition(renewal.state, event)?;
        if !db::update(
            tx,
            renewal.id,
            renewal.state,
            to,
            &RenewalChange {
                failure: Some(why),
                finished: true,
                ..RenewalChange::default()
            },
            self.clock.now(),
        )
        .await?
        {
            return Err(Refusal::RenewalBusy.into());
        }
        if let Some(new) = &renewal.new_serial {
            match self
                .ca_revoke_in(
                    tx,
                    new,
                    Reason::CessationOfOperation,
                    Actor::System,
                    Some("证书更新未完成，新证书作废"),
                    meta,
                )
                .await
            {
                Ok(()) | Err(ServiceError::Refused(Refusal::AlreadyRevoked)) => {}
                Err(e) => return Err(e),
            }
        }
        append_audit(
            tx,
            self.clock.as_ref(),
            actor,
            meta,
            AuditEvent::RenewalStep,
            json!({ "renewal": renewal.id, "event": to.as_str(), "why": why, "certificate": renewal.new_serial }),
        )
        .await
    }
}
