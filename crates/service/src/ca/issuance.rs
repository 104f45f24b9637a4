//! Issuing certificates from CSRs (the subject from verified data, never
//! from the CSR) and revoking them.

use std::sync::Arc;
use std::time::Duration;

use certhall_ca::crl::Reason;
use certhall_ca::csr;
use certhall_ca::issue::{
    self, fingerprint_sha256, random_serial, serial_hex, Issuer, Kind, Request,
};
use certhall_ca::name::Subject;
use certhall_ca::profile::Profile;
use certhall_domain::audit::{Actor, AuditEvent, NewAuditEntry};
use certhall_domain::Refusal;
use certhall_store::ca::{self as db, CertificateRow, RevocationRow};
use serde_json::json;

use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

use super::group_commit::{BuiltFrom, Job, Verdict};
use super::*;

impl Services {
    /// Issues a certificate from a CSR. The certificate row and its audit
    /// entry commit together (with whatever else was issued at the same
    /// moment: see `group_commit`); the certificate is returned only once
    /// that commit is done.
    pub async fn ca_issue(&self, input: &IssueInput<'_>, actor: Actor) -> Result<CertificateRow> {
        let mut building = Some(self.ca().issue_queue.building());
        let verified = csr::verify(input.csr).map_err(refused)?;
        let subject = Subject::parse(input.subject).map_err(refused)?;
        // A view that went stale between building and committing (another
        // process rotated the CA or changed the profile) is rebuilt; three
        // changes within one issuance mean something is wrong.
        for _ in 0..3 {
            let profile_entry = self.issuing_profile(input.profile).await?;
            let (profile, profile_body) = &*profile_entry;
            profile.check_key(verified.key).map_err(refused)?;
            profile.check_subject(&subject).map_err(refused)?;
            let view = self.issuing_view(input.family).await?;
            let now = self.clock.now();
            // Five minutes of backdating absorbs relying parties' clock skew.
            let not_before = now.minus(Duration::from_secs(300));
            let not_after = now
                .plus(DAY * profile.validity_days)
                .min(view.authority.not_after)
                .min(input.ends_by.unwrap_or(view.authority.not_after));
            let serial = random_serial();
            let (_, der_bytes) = issue::issue(
                Issuer {
                    certificate: Some(&view.certificate),
                    signer: view.signer.as_ref(),
                },
                Request {
                    serial: &serial,
                    subject: subject.to_name().map_err(ServiceError::Ca)?,
                    public_key: verified.public_key.clone(),
                    not_before,
                    not_after,
                    kind: Kind::EndEntity {
                        profile,
                        urls: &view.urls,
                    },
                },
            )
            .map_err(ServiceError::Ca)?;
            let row = CertificateRow {
                serial: serial_hex(&serial),
                issuer_id: view.authority.id,
                profile: profile.name.clone(),
                subject: subject.to_string(),
                key_algorithm: verified.key.to_string(),
                not_before,
                not_after,
                sha256: fingerprint_sha256(&der_bytes),
                der: der_bytes,
                account_id: input.account,
                order_id: input.order_id,
                predecessor_serial: input.predecessor.map(str::to_owned),
                issued_at: now,
                revocation: None,
            };
            let audit = NewAuditEntry::new(
                actor.clone(),
                None,
                AuditEvent::CertificateIssued,
                json!({
                    "serial": row.serial,
                    "family": input.family.as_str(),
                    "profile": row.profile,
                    "subject": row.subject,
                    "key": row.key_algorithm,
                    "account": row.account_id.map(|a| a.0),
                    "predecessor": row.predecessor_serial,
                    "sha256": row.sha256,
                }),
            );
            let job = Job {
                built_from: BuiltFrom {
                    family: input.family.as_str().to_owned(),
                    authority_id: view.authority.id,
                    profile: profile.name.clone(),
                    profile_body: profile_body.clone(),
                },
                row: row.clone(),
                audit,
            };
            match self
                .ca()
                .issue_queue
                .submit(
                    &self.store,
                    &self.clock,
                    building
                        .take()
                        .unwrap_or_else(|| self.ca().issue_queue.building()),
                    job,
                )
                .await?
            {
                Verdict::Stored => return Ok(row),
                Verdict::Stale => self.ca().forget_issuing(),
            }
        }
        Err(ServiceError::Internal(
            "the issuing CA or the profile changed three times during one issuance".into(),
        ))
    }

    /// The active issuing CA of a family, parsed, with its key: read once,
    /// then kept until a commit finds it stale.
    async fn issuing_view(&self, family: Family) -> Result<Arc<IssuingView>> {
        if let Some(v) = self.issuing_read().authorities.get(&family) {
            return Ok(v.clone());
        }
        let authority = self.ca_active(family, role::ISSUING).await?;
        let view = Arc::new(IssuingView {
            certificate: parse_cert(&authority.der)?,
            signer: self.ca_signer(&authority)?,
            urls: self.ca_urls(family, role::ISSUING),
            authority,
        });
        self.issuing_views()
            .authorities
            .insert(family, view.clone());
        Ok(view)
    }

    /// A profile and its stored body, kept like [`Self::issuing_view`].
    async fn issuing_profile(&self, name: &str) -> Result<Arc<(Profile, String)>> {
        if let Some(p) = self.issuing_read().profiles.get(name) {
            return Ok(p.clone());
        }
        let entry = Arc::new(self.ca_profile_with_body(name).await?);
        self.issuing_views()
            .profiles
            .insert(name.to_owned(), entry.clone());
        Ok(entry)
    }

    /// Read on every issuance, by every task at once: a read lock.
    fn issuing_read(&self) -> std::sync::RwLockReadGuard<'_, IssuingViews> {
        self.ca().issuing.read().unwrap_or_else(|p| p.into_inner())
    }

    fn issuing_views(&self) -> std::sync::RwLockWriteGuard<'_, IssuingViews> {
        self.ca().issuing.write().unwrap_or_else(|p| p.into_inner())
    }

    /// One certificate by serial (hex, any case, colons allowed).
    pub async fn ca_certificate(&self, serial: &str) -> Result<CertificateRow> {
        db::certificate(&self.store, &normalize_serial(serial))
            .await?
            .ok_or_else(|| Refusal::CertificateNotFound.into())
    }

    /// Revokes a certificate: a revocation record, the audit entry, a new
    /// CRL and the dropped OCSP cache entry, in one transaction.
    pub async fn ca_revoke(
        &self,
        serial: &str,
        reason: Reason,
        actor: Actor,
        comment: Option<&str>,
    ) -> Result<CertificateRow> {
        let serial = normalize_serial(serial);
        let mut tx = self.store.begin_write().await?;
        self.ca_revoke_in(
            &mut tx,
            &serial,
            reason,
            actor,
            comment,
            &RequestMeta::default(),
        )
        .await?;
        tx.commit().await?;
        self.ca_revocation_committed();
        self.ca_certificate(&serial).await
    }

    /// The writes of a revocation inside the caller's transaction (with
    /// whatever else must hold or fail with it: a confirmation code
    /// consumed, a message): the revocation record, the OCSP cache entry
    /// dropped, the audit entry and a new CRL. After the commit the caller
    /// calls [`Self::ca_revocation_committed`].
    pub(crate) async fn ca_revoke_in(
        &self,
        tx: &mut certhall_store::WriteTx,
        serial: &str,
        reason: Reason,
        actor: Actor,
        comment: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<()> {
        let now = self.clock.now();
        let cert = db::certificate_tx(tx, serial)
            .await?
            .ok_or(Refusal::CertificateNotFound)?;
        let issuer = db::authority(&self.store, cert.issuer_id)
            .await?
            .ok_or(Refusal::CertificateNotFound)?;
        let rev = RevocationRow {
            reason: reason.as_str().to_owned(),
            reason_code: i64::from(reason.code()),
            revoked_at: now,
            actor: actor.to_string(),
            comment: comment.map(str::to_owned),
        };
        if !db::insert_revocation(tx, serial, &rev).await? {
            return Err(Refusal::AlreadyRevoked.into());
        }
        db::drop_ocsp(tx, issuer.id, Some(serial)).await?;
        append_audit(
            tx,
            self.clock.as_ref(),
            actor,
            meta,
            AuditEvent::CertificateRevoked,
            json!({ "serial": serial, "reason": reason.as_str(), "comment": comment }),
        )
        .await?;
        self.sign_crl_in(tx, &issuer, now).await?;
        // The platforms it is activated for are told (the webhook job
        // delivers what this commits).
        certhall_store::relying::queue_event(
            tx,
            serial,
            "certificate.revoked",
            &json!({ "reason": reason.as_str(), "revoked_at": now.rfc3339() }).to_string(),
            now,
        )
        .await?;
        Ok(())
    }

    /// After a revocation's commit: this process's pre-signed OCSP answers
    /// are dropped at once (other processes notice the OCSP generation).
    pub(crate) fn ca_revocation_committed(&self) {
        self.ca().ocsp.forget();
    }
}
