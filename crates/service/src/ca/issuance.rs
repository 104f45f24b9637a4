//! Issuing certificates from CSRs (the subject from verified data, never
//! from the CSR) and revoking them.

use std::time::Duration;

use certhall_ca::crl::Reason;
use certhall_ca::csr;
use certhall_ca::issue::{
    self, fingerprint_sha256, random_serial, serial_hex, Issuer, Kind, Request,
};
use certhall_ca::name::Subject;
use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::Refusal;
use certhall_store::ca::{self as db, CertificateRow, RevocationRow};
use serde_json::json;

use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

use super::*;

impl Services {
    /// Issues a certificate from a CSR; the certificate row and its audit
    /// entry commit together.
    pub async fn ca_issue(&self, input: &IssueInput<'_>, actor: Actor) -> Result<CertificateRow> {
        let profile = self.ca_profile(input.profile).await?;
        let verified = csr::verify(input.csr).map_err(refused)?;
        profile.check_key(verified.key).map_err(refused)?;
        let subject = Subject::parse(input.subject).map_err(refused)?;
        profile.check_subject(&subject).map_err(refused)?;
        let issuing = self.ca_active(input.family, role::ISSUING).await?;
        let issuing_cert = parse_cert(&issuing.der)?;
        let signer = self.ca_signer(&issuing)?;
        let now = self.clock.now();
        // Five minutes of backdating absorbs relying parties' clock skew.
        let not_before = now.minus(Duration::from_secs(300));
        let mut not_after = now.plus(DAY * profile.validity_days);
        if not_after > issuing.not_after {
            not_after = issuing.not_after;
        }
        let serial = random_serial();
        let urls = self.ca_urls(input.family, role::ISSUING);
        let (_, der_bytes) = issue::issue(
            Issuer {
                certificate: Some(&issuing_cert),
                signer: signer.as_ref(),
            },
            Request {
                serial: &serial,
                subject: subject.to_name().map_err(ServiceError::Ca)?,
                public_key: verified.public_key,
                not_before,
                not_after,
                kind: Kind::EndEntity {
                    profile: &profile,
                    urls: &urls,
                },
            },
        )
        .map_err(ServiceError::Ca)?;
        let row = CertificateRow {
            serial: serial_hex(&serial),
            issuer_id: issuing.id,
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
        let mut tx = self.store.begin_write().await?;
        if let Some(p) = input.predecessor {
            if db::certificate_tx(&mut tx, p).await?.is_none() {
                return Err(Refusal::CertificateNotFound.into());
            }
        }
        db::insert_certificate(&mut tx, &row).await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor,
            &RequestMeta::default(),
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
        )
        .await?;
        tx.commit().await?;
        Ok(row)
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
        let now = self.clock.now();
        let cert = db::certificate(&self.store, &serial)
            .await?
            .ok_or(Refusal::CertificateNotFound)?;
        let issuer = db::authority(&self.store, cert.issuer_id)
            .await?
            .ok_or(Refusal::CertificateNotFound)?;
        let mut tx = self.store.begin_write().await?;
        let rev = RevocationRow {
            reason: reason.as_str().to_owned(),
            reason_code: i64::from(reason.code()),
            revoked_at: now,
            actor: actor.to_string(),
            comment: comment.map(str::to_owned),
        };
        if !db::insert_revocation(&mut tx, &serial, &rev).await? {
            return Err(Refusal::AlreadyRevoked.into());
        }
        db::drop_ocsp(&mut tx, issuer.id, Some(&serial)).await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor,
            &RequestMeta::default(),
            AuditEvent::CertificateRevoked,
            json!({ "serial": serial, "reason": reason.as_str(), "comment": comment }),
        )
        .await?;
        self.sign_crl_in(&mut tx, &issuer, now).await?;
        tx.commit().await?;
        self.ca().ocsp.forget();
        self.ca_certificate(&serial).await
    }
}
