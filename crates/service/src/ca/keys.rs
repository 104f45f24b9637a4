//! Where CA keys live and how they are loaded: encrypted PKCS#8 files or
//! PKCS#11 tokens; new CA certificates with their keys.

use std::sync::Arc;

use certhall_ca::issue::{
    self, fingerprint_sha256, random_serial, serial_hex, Issuer, Kind, Request,
};
use certhall_ca::name::Subject;
use certhall_ca::{CaError, CaSigner, Family, SoftwareKey};
use certhall_domain::Timestamp;
use certhall_store::ca::AuthorityRow;
use x509_cert::Certificate;

use crate::{Result, ServiceError, Services};

use super::*;

impl Services {
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

/// A CA certificate just made, with its key, before it is stored.
pub(super) struct NewCa {
    pub(super) key: Arc<dyn CaSigner>,
    key_ref: KeyRef,
    subject: Subject,
    serial: [u8; 16],
    pub(super) der: Vec<u8>,
    not_before: Timestamp,
    not_after: Timestamp,
}

impl NewCa {
    /// The row that records it.
    pub(super) fn row(
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
    pub(super) fn new_ca_cert(
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
