//! CRLs: signed on revocation, when fetched close to nextUpdate, and by
//! the scheduler.

use certhall_ca::crl::{self, Reason, Revoked};
use certhall_ca::CaError;
use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::Timestamp;
use certhall_store::ca::{self as db, AuthorityRow, CrlRow};
use serde_json::json;

use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

use super::*;

impl Services {
    pub(super) async fn sign_crl_in(
        &self,
        tx: &mut certhall_store::WriteTx,
        issuer: &AuthorityRow,
        now: Timestamp,
    ) -> Result<CrlRow> {
        let cert = parse_cert(&issuer.der)?;
        let signer = self.ca_signer(issuer)?;
        let revoked: Vec<Revoked> = db::revoked_by_issuer(tx, issuer.id)
            .await?
            .into_iter()
            .map(|(serial, at, code)| {
                Ok(Revoked {
                    serial: hex::decode(&serial)
                        .map_err(|e| ServiceError::Ca(CaError::Key(e.to_string())))?,
                    at,
                    reason: Reason::from_code(code).unwrap_or(Reason::Unspecified),
                })
            })
            .collect::<Result<_>>()?;
        let number = db::next_crl_number(tx, issuer.id).await?;
        let next_update = now.plus(self.ca().settings.crl_validity);
        let der_bytes = crl::build(
            &cert,
            signer.as_ref(),
            u64::try_from(number).unwrap_or(1),
            now,
            next_update,
            &revoked,
        )
        .map_err(ServiceError::Ca)?;
        let row = CrlRow {
            issuer_id: issuer.id,
            number,
            this_update: now,
            next_update,
            der: der_bytes,
        };
        db::insert_crl(tx, &row).await?;
        append_audit(
            tx,
            self.clock.as_ref(),
            Actor::System,
            &RequestMeta::default(),
            AuditEvent::CrlSigned,
            json!({ "issuer": issuer.serial, "family": issuer.family, "role": issuer.role, "number": number, "revoked": revoked.len() }),
        )
        .await?;
        Ok(row)
    }

    /// The current CRL of a CA, re-signed when `force` or close to its
    /// nextUpdate.
    pub async fn ca_crl(&self, issuer: &AuthorityRow, force: bool) -> Result<CrlRow> {
        let now = self.clock.now();
        if !force {
            if let Some(c) = db::latest_crl(&self.store, issuer.id).await? {
                if c.next_update.since(now) > self.ca().settings.crl_refresh_before {
                    return Ok(c);
                }
            }
        }
        let mut tx = self.store.begin_write().await?;
        tx.lock(certhall_store::LockKey::AuditChain).await?;
        if !force {
            // Another process may have just re-signed it.
            if let Some(c) = db::latest_crl(&self.store, issuer.id).await? {
                if c.next_update.since(now) > self.ca().settings.crl_refresh_before {
                    return Ok(c);
                }
            }
        }
        let row = self.sign_crl_in(&mut tx, issuer, now).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Re-signs CRLs close to nextUpdate and rotates OCSP signers close to
    /// expiry (the scheduler calls this).
    pub async fn ca_maintain(&self) -> Result<()> {
        for a in db::authorities(&self.store).await? {
            if a.retired_at.is_some() {
                continue;
            }
            match a.role.as_str() {
                role::ROOT | role::ISSUING => {
                    self.ca_crl(&a, false).await?;
                }
                role::OCSP => {
                    self.ca_ocsp_signer(family_of(&a)?, &backend_of(&a)).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
