//! The certificate authority as a service (step-ca's `authority/`): creates
//! hierarchies, issues from CSRs, revokes, keeps CRLs and OCSP responses
//! fresh. `certhall-ca` builds and signs; this module decides, persists
//! (certificate and audit entry in one transaction) and loads keys.
//!
//! Keys: software keys are encrypted PKCS#8 files in the key directory
//! (passphrase from configuration); PKCS#11 keys stay in their token. The
//! database records where each key is (`key_ref`), never the key.
//!
//! Here: settings, the runtime, profiles and reads; `keys.rs`: where keys
//! live and new CA certificates; `hierarchy.rs`: roots, issuing CAs and
//! the OCSP signer; `issuance.rs`: issuing and revoking; `crls.rs`: CRLs;
//! the OCSP responder is `crate::ocsp`.

mod crls;
mod group_commit;
mod hierarchy;
mod issuance;
mod keys;

pub(crate) use keys::backend_of;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use certhall_ca::issue::CaUrls;
use certhall_ca::profile::Profile;
use certhall_ca::{CaError, CaSigner, Family};
use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::{AccountId, Refusal, Timestamp};
use certhall_store::ca::{self as db, AuthorityRow, CertificateRow};
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
    /// What issuance reads per family and per profile, kept between
    /// issuances; every batch is checked against the database when it
    /// commits (see `group_commit`), so a stale view never issues.
    issuing: RwLock<IssuingViews>,
    /// The group-commit writer's queue.
    issue_queue: group_commit::IssueQueue,
}

/// Issuing CAs (by family) and profiles (by name) as last read.
#[derive(Debug, Default)]
struct IssuingViews {
    authorities: HashMap<Family, Arc<IssuingView>>,
    profiles: HashMap<String, Arc<(Profile, String)>>,
}

/// An active issuing CA, parsed, with its signer and URLs.
#[derive(Debug)]
struct IssuingView {
    authority: AuthorityRow,
    certificate: Certificate,
    signer: Arc<dyn CaSigner>,
    urls: CaUrls,
}

impl CaRuntime {
    /// A runtime with no keys loaded yet.
    pub fn new(settings: CaSettings) -> Self {
        Self {
            settings,
            keys: Mutex::new(HashMap::new()),
            ocsp: crate::ocsp::OcspMemory::default(),
            issuing: RwLock::new(IssuingViews::default()),
            issue_queue: group_commit::IssueQueue::default(),
        }
    }

    /// Drops the issuing views (a CA or a profile changed here; changes
    /// made by other processes are caught when a batch commits).
    pub(crate) fn forget_issuing(&self) {
        let mut views = self.issuing.write().unwrap_or_else(|p| p.into_inner());
        *views = IssuingViews::default();
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
    /// The latest end of validity, when the profile's term must not run
    /// past it (a 证书变更 keeps its predecessor's end).
    pub ends_by: Option<certhall_domain::Timestamp>,
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

fn parse_profile(body: &str) -> Result<Profile> {
    serde_json::from_str(body).map_err(|e| ServiceError::Ca(CaError::InvalidProfile(e.to_string())))
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
        self.ca().forget_issuing();
        Ok(())
    }

    /// One profile.
    pub async fn ca_profile(&self, name: &str) -> Result<Profile> {
        Ok(self.ca_profile_with_body(name).await?.0)
    }

    /// One profile and the stored body it was read from.
    pub(crate) async fn ca_profile_with_body(&self, name: &str) -> Result<(Profile, String)> {
        let row = db::profile(&self.store, name)
            .await?
            .ok_or_else(|| Refusal::ProfileNotFound(name.to_owned()))?;
        Ok((parse_profile(&row.body)?, row.body))
    }

    /// All profiles.
    pub async fn ca_profiles(&self) -> Result<Vec<Profile>> {
        let rows = db::profiles(&self.store).await?;
        rows.iter().map(|r| parse_profile(&r.body)).collect()
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
}

/// `AB:CD:…` or `abcd…` → `abcd…`.
pub fn normalize_serial(s: &str) -> String {
    s.trim().replace(':', "").to_ascii_lowercase()
}
