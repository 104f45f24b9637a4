//! The certificate authority as a service (step-ca's `authority/`): creates
//! hierarchies, issues from CSRs, revokes, keeps CRLs and OCSP responses
//! fresh. `certhall-ca` builds and signs; this module decides, persists
//! (certificate and audit entry in one transaction) and loads keys.
//!
//! Keys: software keys are encrypted PKCS#8 files in the key directory
//! (passphrase from configuration); PKCS#11 keys stay in their token. The
//! database records where each key is (`key_ref`), never the key.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certhall_ca::crl::{self, Reason, Revoked};
use certhall_ca::issue::{
    self, fingerprint_sha256, random_serial, serial_hex, CaUrls, Issuer, Kind, Request,
};
use certhall_ca::name::Subject;
use certhall_ca::profile::Profile;
use certhall_ca::{csr, CaError, CaSigner, Family, SoftwareKey};
use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::{AccountId, Refusal, Timestamp};
use certhall_store::ca::{self as db, AuthorityRow, CertificateRow, CrlRow, RevocationRow};
use der::Decode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use x509_cert::Certificate;

use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

const DAY: Duration = Duration::from_secs(86_400);

/// CA settings.
#[derive(Clone)]
pub struct CaSettings {
    /// Where encrypted key files are written.
    pub key_dir: PathBuf,
    /// Passphrase of the key files.
    pub passphrase: Option<Vec<u8>>,
    /// Public base URL for CRL, OCSP and CA certificate links, without a
    /// trailing slash (e.g. `https://ca.example.cn`).
    pub public_url: String,
    /// PIN for PKCS#11 keys.
    pub pkcs11_pin: Option<String>,
    /// CRL lifetime (thisUpdate → nextUpdate).
    pub crl_validity: Duration,
    /// A CRL is re-signed when less than this remains.
    pub crl_refresh_before: Duration,
    /// OCSP response lifetime.
    pub ocsp_validity: Duration,
    /// A cached OCSP response is re-signed when less than this remains.
    pub ocsp_refresh_before: Duration,
    /// Lifetime of a delegated OCSP signing certificate.
    pub ocsp_signer_validity: Duration,
    /// The OCSP signer is replaced when less than this remains.
    pub ocsp_signer_rotate_before: Duration,
    /// How often a process asks the database whether a revocation or a
    /// signer rotation (in any process) has made its in-memory OCSP
    /// answers stale: another process's revocation shows within this.
    pub ocsp_poll: Duration,
}

impl std::fmt::Debug for CaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSettings")
            .field("key_dir", &self.key_dir)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "***"))
            .field("public_url", &self.public_url)
            .field("pkcs11_pin", &self.pkcs11_pin.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl CaSettings {
    /// Defaults with the given key directory, passphrase and public URL.
    pub fn new(key_dir: PathBuf, passphrase: Option<Vec<u8>>, public_url: String) -> Self {
        Self {
            key_dir,
            passphrase,
            public_url: public_url.trim_end_matches('/').to_owned(),
            pkcs11_pin: None,
            crl_validity: 7 * DAY,
            crl_refresh_before: 3 * DAY,
            ocsp_validity: DAY,
            ocsp_refresh_before: Duration::from_secs(8 * 3600),
            ocsp_signer_validity: 30 * DAY,
            ocsp_signer_rotate_before: 7 * DAY,
            ocsp_poll: Duration::from_millis(250),
        }
    }
}

/// The CA's runtime: settings and the keys loaded so far.
#[derive(Debug)]
pub struct CaRuntime {
    /// Settings.
    pub settings: CaSettings,
    keys: Mutex<HashMap<i64, Arc<dyn CaSigner>>>,
    /// The OCSP responder's memory (see `crate::ocsp`).
    pub(crate) ocsp: crate::ocsp::OcspMemory,
}

impl CaRuntime {
    /// A runtime with no keys loaded yet.
    pub fn new(settings: CaSettings) -> Self {
        Self {
            settings,
            keys: Mutex::new(HashMap::new()),
            ocsp: crate::ocsp::OcspMemory::default(),
        }
    }
}

/// Where a CA key lives, as stored in `ca_authorities.key_ref`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum KeyRef {
    /// An encrypted PKCS#8 file, relative to the key directory.
    File {
        /// File name.
        path: String,
    },
    /// A key inside a PKCS#11 token.
    Pkcs11 {
        /// The module (shared library).
        module: String,
        /// The token's label.
        token_label: String,
        /// The key's label.
        key_label: String,
    },
}

/// Where to create new CA keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyBackend {
    /// Encrypted files in the key directory.
    File,
    /// A PKCS#11 token (module path, token label).
    Pkcs11 {
        /// Module.
        module: String,
        /// Token label.
        token_label: String,
    },
}

/// The roles of CA certificates.
pub mod role {
    /// Self-signed root.
    pub const ROOT: &str = "root";
    /// Issuing (subordinate) CA.
    pub const ISSUING: &str = "issuing";
    /// Delegated OCSP signer.
    pub const OCSP: &str = "ocsp";
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct IssueInput<'a> {
    /// Which hierarchy.
    pub family: Family,
    /// Profile name.
    pub profile: &'a str,
    /// The PKCS#10 request, PEM or DER.
    pub csr: &'a [u8],
    /// Subject from verified data, `C=CN,O=…,CN=…`.
    pub subject: &'a str,
    /// Owning account.
    pub account: Option<AccountId>,
    /// Owning order.
    pub order_id: Option<i64>,
    /// The certificate this renews.
    pub predecessor: Option<&'a str>,
}

/// An OCSP answer and how long HTTP caches may keep it.
#[derive(Debug, Clone)]
pub struct OcspAnswer {
    /// The DER response.
    pub der: Vec<u8>,
    /// `Some((thisUpdate, nextUpdate))` for cacheable responses (no nonce).
    pub cache: Option<(Timestamp, Timestamp)>,
}

fn refused(e: CaError) -> ServiceError {
    match e {
        CaError::MalformedCsr(_)
        | CaError::BadCsrSignature
        | CaError::KeyNotAllowed(_)
        | CaError::InvalidSubject(_)
        | CaError::InvalidProfile(_) => Refusal::CaRequestRefused(e.to_string()).into(),
        other => ServiceError::Ca(other),
    }
}

pub(crate) fn family_of(row: &AuthorityRow) -> Result<Family> {
    row.family
        .parse()
        .map_err(|e: String| ServiceError::Ca(CaError::Key(e)))
}

pub(crate) fn parse_cert(der: &[u8]) -> Result<Certificate> {
    Certificate::from_der(der).map_err(|e| ServiceError::Ca(e.into()))
}

impl Services {
    pub(crate) fn ca(&self) -> &CaRuntime {
        &self.ca
    }

    /// The URLs a family's certificates point to.
    pub fn ca_urls(&self, family: Family, role_of_issuer: &str) -> CaUrls {
        let base = &self.ca().settings.public_url;
        CaUrls {
            crl: format!("{base}/crl/{family}-{role_of_issuer}.crl"),
            ocsp: format!("{base}/ocsp"),
            ca_issuers: format!("{base}/ca/{family}-{role_of_issuer}.der"),
        }
    }

    fn passphrase(&self) -> Result<&[u8]> {
        self.ca().settings.passphrase.as_deref().ok_or_else(|| {
            ServiceError::Ca(CaError::Key(
                "no CA key passphrase configured (ca_passphrase_file or CERTHALL_CA_PASSPHRASE)"
                    .into(),
            ))
        })
    }

    /// Creates a key for a new CA certificate and says where it lives.
    fn create_key(
        &self,
        backend: &KeyBackend,
        family: Family,
        role: &str,
        alg: certhall_ca::KeyAlgorithm,
        tag: &str,
    ) -> Result<(Arc<dyn CaSigner>, KeyRef)> {
        match backend {
            KeyBackend::File => {
                let key = SoftwareKey::generate(alg).map_err(ServiceError::Ca)?;
                let pem = key
                    .to_encrypted_pem(self.passphrase()?)
                    .map_err(ServiceError::Ca)?;
                let dir = &self.ca().settings.key_dir;
                std::fs::create_dir_all(dir).map_err(|e| {
                    ServiceError::Ca(CaError::Key(format!(
                        "cannot create {}: {e}",
                        dir.display()
                    )))
                })?;
                let name = format!("{family}-{role}-{tag}.key.pem");
                write_new_file(&dir.join(&name), pem.as_bytes()).map_err(|e| {
                    ServiceError::Ca(CaError::Key(format!("cannot write key file {name}: {e}")))
                })?;
                Ok((Arc::new(key), KeyRef::File { path: name }))
            }
            KeyBackend::Pkcs11 {
                module,
                token_label,
            } => {
                let key_label = format!("certhall-{family}-{role}-{tag}");
                let cfg = certhall_ca::pkcs11::Pkcs11Config {
                    module: module.into(),
                    token_label: token_label.clone(),
                    key_label: key_label.clone(),
                    pin: self.pkcs11_pin()?,
                };
                let key =
                    certhall_ca::pkcs11::Pkcs11Key::generate(cfg, alg).map_err(ServiceError::Ca)?;
                Ok((
                    Arc::new(key),
                    KeyRef::Pkcs11 {
                        module: module.clone(),
                        token_label: token_label.clone(),
                        key_label,
                    },
                ))
            }
        }
    }

    fn pkcs11_pin(&self) -> Result<String> {
        self.ca().settings.pkcs11_pin.clone().ok_or_else(|| {
            ServiceError::Ca(CaError::Key(
                "no PKCS#11 PIN configured (ca_pkcs11_pin_file or CERTHALL_CA_PKCS11_PIN)".into(),
            ))
        })
    }

    /// The signer of a CA certificate, loaded once per process.
    pub fn ca_signer(&self, row: &AuthorityRow) -> Result<Arc<dyn CaSigner>> {
        if let Some(k) = self
            .ca()
            .keys
            .lock()
            .ok()
            .and_then(|m| m.get(&row.id).cloned())
        {
            return Ok(k);
        }
        let key_ref: KeyRef = serde_json::from_str(&row.key_ref).map_err(|e| {
            ServiceError::Ca(CaError::Key(format!(
                "bad key reference of CA {}: {e}",
                row.id
            )))
        })?;
        let signer: Arc<dyn CaSigner> = match key_ref {
            KeyRef::File { path } => {
                let file = self.ca().settings.key_dir.join(&path);
                let pem = std::fs::read_to_string(&file).map_err(|e| {
                    ServiceError::Ca(CaError::Key(format!(
                        "cannot read CA key {}: {e}",
                        file.display()
                    )))
                })?;
                Arc::new(
                    SoftwareKey::from_encrypted_pem(&pem, self.passphrase()?)
                        .map_err(ServiceError::Ca)?,
                )
            }
            KeyRef::Pkcs11 {
                module,
                token_label,
                key_label,
            } => {
                let cfg = certhall_ca::pkcs11::Pkcs11Config {
                    module: module.into(),
                    token_label,
                    key_label,
                    pin: self.pkcs11_pin()?,
                };
                Arc::new(certhall_ca::pkcs11::Pkcs11Key::open(cfg).map_err(ServiceError::Ca)?)
            }
        };
        if let Ok(mut m) = self.ca().keys.lock() {
            m.insert(row.id, signer.clone());
        }
        Ok(signer)
    }

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

    /// The active CA certificate of a family and role.
    pub async fn ca_active(&self, family: Family, role: &str) -> Result<AuthorityRow> {
        db::active_authority(&self.store, family.as_str(), role)
            .await?
            .ok_or_else(|| Refusal::CaNotInitialized(family.to_string()).into())
    }

    /// The chain of a family: issuing CA, then root.
    pub async fn ca_chain(&self, family: Family) -> Result<Vec<AuthorityRow>> {
        Ok(vec![
            self.ca_active(family, role::ISSUING).await?,
            self.ca_active(family, role::ROOT).await?,
        ])
    }

    /// Adds the default profiles when missing.
    pub async fn ca_seed_profiles(&self) -> Result<()> {
        for p in [Profile::enterprise(), Profile::person()] {
            if db::profile(&self.store, &p.name).await?.is_none() {
                self.ca_save_profile(&p, false, Actor::System).await?;
            }
        }
        Ok(())
    }

    /// Adds (`replace` false) or replaces a profile.
    pub async fn ca_save_profile(&self, p: &Profile, replace: bool, actor: Actor) -> Result<()> {
        p.validate().map_err(refused)?;
        let body = serde_json::to_string(p)
            .map_err(|e| ServiceError::Ca(CaError::InvalidProfile(e.to_string())))?;
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        let done = if replace {
            db::update_profile(&mut tx, &p.name, &body, now).await?
        } else {
            db::insert_profile(&mut tx, &p.name, &body, now).await?
        };
        if !done {
            return Err(if replace {
                Refusal::ProfileNotFound(p.name.clone())
            } else {
                Refusal::ProfileExists(p.name.clone())
            }
            .into());
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor,
            &RequestMeta::default(),
            AuditEvent::CaProfileSaved,
            json!({ "profile": p.name, "replaced": replace, "body": p }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One profile.
    pub async fn ca_profile(&self, name: &str) -> Result<Profile> {
        let row = db::profile(&self.store, name)
            .await?
            .ok_or_else(|| Refusal::ProfileNotFound(name.to_owned()))?;
        serde_json::from_str(&row.body)
            .map_err(|e| ServiceError::Ca(CaError::InvalidProfile(e.to_string())))
    }

    /// All profiles.
    pub async fn ca_profiles(&self) -> Result<Vec<Profile>> {
        let rows = db::profiles(&self.store).await?;
        rows.iter()
            .map(|r| {
                serde_json::from_str(&r.body)
                    .map_err(|e| ServiceError::Ca(CaError::InvalidProfile(e.to_string())))
            })
            .collect()
    }

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

    async fn sign_crl_in(
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

    /// Every CA certificate (for publication).
    pub async fn ca_authorities(&self) -> Result<Vec<AuthorityRow>> {
        Ok(db::authorities(&self.store).await?)
    }

    /// The latest `limit` issued certificates.
    pub async fn ca_certificates(
        &self,
        family: Option<Family>,
        limit: u32,
    ) -> Result<Vec<CertificateRow>> {
        let issuer = match family {
            Some(f) => Some(self.ca_active(f, role::ISSUING).await?.id),
            None => None,
        };
        Ok(db::certificates(&self.store, issuer, limit).await?)
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

/// Where new keys of a hierarchy go: next to the given CA's key.
pub(crate) fn backend_of(row: &AuthorityRow) -> KeyBackend {
    match serde_json::from_str::<KeyRef>(&row.key_ref) {
        Ok(KeyRef::Pkcs11 {
            module,
            token_label,
            ..
        }) => KeyBackend::Pkcs11 {
            module,
            token_label,
        },
        _ => KeyBackend::File,
    }
}

/// `AB:CD:…` or `abcd…` → `abcd…`.
pub fn normalize_serial(s: &str) -> String {
    s.trim().replace(':', "").to_ascii_lowercase()
}

/// A CA certificate just made, with its key, before it is stored.
struct NewCa {
    key: Arc<dyn CaSigner>,
    key_ref: KeyRef,
    subject: Subject,
    serial: [u8; 16],
    der: Vec<u8>,
    not_before: Timestamp,
    not_after: Timestamp,
}

impl NewCa {
    /// The row that records it.
    fn row(
        &self,
        family: Family,
        role: &str,
        issuer_id: Option<i64>,
        now: Timestamp,
    ) -> Result<AuthorityRow> {
        Ok(AuthorityRow {
            id: 0,
            family: family.as_str().to_owned(),
            role: role.to_owned(),
            serial: serial_hex(&self.serial),
            subject: self.subject.to_string(),
            der: self.der.clone(),
            sha256: fingerprint_sha256(&self.der),
            key_ref: serde_json::to_string(&self.key_ref)
                .map_err(|e| ServiceError::Ca(CaError::Key(e.to_string())))?,
            issuer_id,
            not_before: self.not_before,
            not_after: self.not_after,
            created_at: now,
            retired_at: None,
        })
    }
}

impl Services {
    /// Creates a key for a CA certificate of `role` and certifies it: a
    /// root signs itself (`issuer` None), others are signed by `issuer`.
    #[allow(clippy::too_many_arguments)]
    fn new_ca_cert(
        &self,
        backend: &KeyBackend,
        family: Family,
        role: &str,
        tag: &str,
        issuer: Option<(&Certificate, &dyn CaSigner)>,
        not_after: Timestamp,
        kind: Kind<'_>,
    ) -> Result<NewCa> {
        let alg = if role == role::ROOT {
            family.root_key()
        } else {
            family.issuing_key()
        };
        let (key, key_ref) = self.create_key(backend, family, role, alg, tag)?;
        let cn = match role {
            role::ROOT => "Root CA",
            role::ISSUING => "Issuing CA 1",
            _ => "OCSP Responder",
        };
        let subject = Subject::parse(&format!(
            "C=CN,O=CertHall,OU=CertHall PKI,CN=CertHall {} {cn}",
            family.as_str().to_uppercase()
        ))
        .map_err(refused)?;
        let serial = random_serial();
        let not_before = self.clock.now();
        let issuer = match issuer {
            Some((certificate, signer)) => Issuer {
                certificate: Some(certificate),
                signer,
            },
            None => Issuer {
                certificate: None,
                signer: key.as_ref(),
            },
        };
        let (_, der) = issue::issue(
            issuer,
            Request {
                serial: &serial,
                subject: subject.to_name().map_err(ServiceError::Ca)?,
                public_key: key.public_key_info().map_err(ServiceError::Ca)?,
                not_before,
                not_after,
                kind,
            },
        )
        .map_err(ServiceError::Ca)?;
        Ok(NewCa {
            key,
            key_ref,
            subject,
            serial,
            der,
            not_before,
            not_after,
        })
    }
}

fn write_new_file(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}
