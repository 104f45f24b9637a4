//! CA hierarchies: a root and an issuing CA per family, the delegated
//! OCSP signer and its rotation, demo mode's hierarchies.

use certhall_ca::issue::{random_serial, Kind};
use certhall_ca::Family;
use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::Refusal;
use certhall_store::ca::{self as db, AuthorityRow};
use serde_json::json;

use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

use super::*;

impl Services {
    /// Creates the root and issuing CA of `family` (and its OCSP signer and
    /// first CRLs).
    pub async fn ca_init(
        &self,
        family: Family,
        backend: &KeyBackend,
        actor: Actor,
    ) -> Result<Vec<AuthorityRow>> {
        if db::active_authority(&self.store, family.as_str(), role::ROOT)
            .await?
            .is_some()
        {
            return Err(Refusal::CaAlreadyInitialized(family.to_string()).into());
        }
        let now = self.clock.now();
        let tag = hex::encode(&random_serial()[..4]);
        let root = self.new_ca_cert(
            backend,
            family,
            role::ROOT,
            &tag,
            None,
            now.plus(20 * 365 * DAY),
            Kind::Root,
        )?;
        let root_cert = parse_cert(&root.der)?;
        let root_urls = self.ca_urls(family, role::ROOT);
        let issuing = self.new_ca_cert(
            backend,
            family,
            role::ISSUING,
            &tag,
            Some((&root_cert, root.key.as_ref())),
            now.plus(10 * 365 * DAY),
            Kind::Issuing { urls: &root_urls },
        )?;

        let mut tx = self.store.begin_write().await?;
        // Serialize with other processes initializing the same family (the
        // unique index on active authorities is the backstop).
        tx.lock(certhall_store::LockKey::AuditChain).await?;
        if db::active_authority_tx(&mut tx, family.as_str(), role::ROOT)
            .await?
            .is_some()
        {
            return Err(Refusal::CaAlreadyInitialized(family.to_string()).into());
        }
        let mut root_row = root.row(family, role::ROOT, None, now)?;
        root_row.id = db::insert_authority(&mut tx, &root_row).await?;
        let mut issuing_row = issuing.row(family, role::ISSUING, Some(root_row.id), now)?;
        issuing_row.id = db::insert_authority(&mut tx, &issuing_row).await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor.clone(),
            &RequestMeta::default(),
            AuditEvent::CaInitialized,
            json!({
                "family": family.as_str(),
                "root": { "serial": root_row.serial, "sha256": root_row.sha256 },
                "issuing": { "serial": issuing_row.serial, "sha256": issuing_row.sha256 },
                "keys": match backend { KeyBackend::File => "file", KeyBackend::Pkcs11 { .. } => "pkcs11" },
            }),
        )
        .await?;
        tx.commit().await?;
        if let Ok(mut m) = self.ca().keys.lock() {
            m.insert(root_row.id, root.key);
            m.insert(issuing_row.id, issuing.key);
        }
        self.ca().ocsp.forget();
        self.ca().forget_issuing();
        self.ca_ocsp_signer(family, backend).await?;
        self.ca_crl(&root_row, true).await?;
        self.ca_crl(&issuing_row, true).await?;
        Ok(vec![root_row, issuing_row])
    }

    /// The current OCSP signer of a family, issued or rotated when missing
    /// or close to expiry.
    pub async fn ca_ocsp_signer(
        &self,
        family: Family,
        backend: &KeyBackend,
    ) -> Result<AuthorityRow> {
        let now = self.clock.now();
        let current = db::active_authority(&self.store, family.as_str(), role::OCSP).await?;
        if let Some(c) = &current {
            if c.not_after.since(now) > self.ca().settings.ocsp_signer_rotate_before {
                return Ok(c.clone());
            }
        }
        let issuing = self.ca_active(family, role::ISSUING).await?;
        let issuing_cert = parse_cert(&issuing.der)?;
        let issuing_key = self.ca_signer(&issuing)?;
        let tag = hex::encode(&random_serial()[..4]);
        let not_after = now.plus(self.ca().settings.ocsp_signer_validity);
        let signer_cert = self.new_ca_cert(
            backend,
            family,
            role::OCSP,
            &tag,
            Some((&issuing_cert, issuing_key.as_ref())),
            not_after,
            Kind::OcspSigner,
        )?;
        let mut row = signer_cert.row(family, role::OCSP, Some(issuing.id), now)?;
        let mut tx = self.store.begin_write().await?;
        tx.lock(certhall_store::LockKey::AuditChain).await?;
        // Another process may have rotated meanwhile: keep theirs.
        if let Some(other) = db::active_authority_tx(&mut tx, family.as_str(), role::OCSP).await? {
            if current.as_ref().map(|c| c.id) != Some(other.id) {
                return Ok(other);
            }
            db::retire_authority(&mut tx, other.id, now).await?;
        }
        row.id = db::insert_authority(&mut tx, &row).await?;
        db::drop_ocsp(&mut tx, issuing.id, None).await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::System,
            &RequestMeta::default(),
            AuditEvent::CaOcspSignerIssued,
            json!({ "family": family.as_str(), "serial": row.serial, "not_after": not_after.rfc3339() }),
        )
        .await?;
        tx.commit().await?;
        if let Ok(mut m) = self.ca().keys.lock() {
            m.insert(row.id, signer_cert.key);
        }
        self.ca().ocsp.forget();
        Ok(row)
    }

    /// Makes sure demo mode has its hierarchies (SM2, P-256, RSA) and profiles.
    pub async fn ca_ensure_demo(&self) -> Result<()> {
        self.ca_seed_profiles().await?;
        // Every family: the demo catalogue has an application of each.
        for family in Family::ALL {
            if db::active_authority(&self.store, family.as_str(), role::ROOT)
                .await?
                .is_none()
            {
                match self.ca_init(family, &KeyBackend::File, Actor::System).await {
                    Ok(_) | Err(ServiceError::Refused(Refusal::CaAlreadyInitialized(_))) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}
