//! Tokens behind a PKCS#11 module: the vendor's UKey library in real use,
//! SoftHSM2 in tests and development.
//!
//! Each call opens a session on the token's slot, logs in with the PIN it
//! was given (when the operation needs one), does its work, logs out and
//! closes the session: the agent holds no login state between requests. Calls are
//! serialized, because PKCS#11 login state is shared by every session of the
//! process on a slot.
//!
//! Objects follow the usual UKey layout (and what PKCS#11 tools expect): the
//! private key, the public key and the certificate of one key pair share a
//! `CKA_ID`; certificates are public objects, so listing them needs no PIN.
//! Chain certificates are written with the same `CKA_ID`; the key's own
//! certificate is the one whose public key is the key's.
//!
//! # PIN lock
//!
//! Hardware keys lock their PIN after a number of wrong tries; some modules
//! (SoftHSM2 among them) never do. The agent therefore keeps its own count
//! of wrong PINs per token in a small state file ([`PinGuard`]) and refuses
//! the PIN after [`MAX_PIN_TRIES`] wrong ones, exactly as a hardware key
//! would; unblocking with the SO PIN resets it. When the module reports its
//! own state (`CKF_USER_PIN_LOCKED`, `CKF_USER_PIN_FINAL_TRY`), that wins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use certhall_ca::pkcs11::{finish_signature, key_pair_templates, read_public_key, signing_input};
use certhall_ca::KeyAlgorithm;
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use der::{Decode, Encode};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use spki::SubjectPublicKeyInfoOwned;

use crate::token::{KeyEntry, Pin, Result, TokenBackend, TokenError, TokenInfo, MAX_PIN_TRIES};

/// Key algorithms generated through PKCS#11 (SM2 has no standard
/// mechanism).
pub const ALGORITHMS: [KeyAlgorithm; 2] = [KeyAlgorithm::EcP256, KeyAlgorithm::Rsa(2048)];

/// The tokens of one PKCS#11 module.
pub struct Pkcs11Tokens {
    module: PathBuf,
    ctx: Pkcs11,
    guard: Mutex<PinGuard>,
}

impl std::fmt::Debug for Pkcs11Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Tokens")
            .field("module", &self.module)
            .finish()
    }
}

impl Pkcs11Tokens {
    /// Loads and initialises `module`; the PIN guard keeps its counts in
    /// `state_file`.
    pub fn open(module: &Path, state_file: PathBuf) -> Result<Self> {
        let ctx = Pkcs11::new(module).map_err(|e| {
            TokenError::Module(format!(
                "cannot load the PKCS#11 module {}: {e}",
                module.display()
            ))
        })?;
        ctx.initialize(CInitializeArgs::OsThreads).map_err(|e| {
            TokenError::Module(format!(
                "cannot initialise the PKCS#11 module {}: {e}",
                module.display()
            ))
        })?;
        Ok(Self {
            module: module.to_path_buf(),
            ctx,
            guard: Mutex::new(PinGuard::load(state_file)),
        })
    }

    /// The module's path.
    pub fn module(&self) -> &Path {
        &self.module
    }

    fn guard(&self) -> MutexGuard<'_, PinGuard> {
        self.guard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The slot holding the token with this serial, and its information.
    fn slot(&self, serial: &str) -> Result<(Slot, cryptoki::slot::TokenInfo)> {
        for slot in self.ctx.get_slots_with_token().map_err(module_error)? {
            let info = self.ctx.get_token_info(slot).map_err(module_error)?;
            if info.token_initialized() && info.serial_number().trim() == serial {
                return Ok((slot, info));
            }
        }
        Err(TokenError::TokenAbsent)
    }

    /// The guard's key for a token: the module and the serial.
    fn guard_key(&self, serial: &str) -> String {
        format!("{}|{serial}", self.module.display())
    }

    /// Opens a session and logs in as `user` with `pin`, counting wrong
    /// PINs. The caller holds the guard for the whole operation, which also
    /// serializes logins.
    fn login(
        &self,
        guard: &mut PinGuard,
        serial: &str,
        user: UserType,
        pin: &Pin,
    ) -> Result<Session> {
        let (slot, info) = self.slot(serial)?;
        let key = self.guard_key(serial);
        let so = matches!(user, UserType::So);
        let failures = guard.failures(&key, so);
        if failures >= MAX_PIN_TRIES || (!so && info.user_pin_locked()) {
            return Err(if so {
                TokenError::SoPinLocked
            } else {
                TokenError::PinLocked
            });
        }
        let session = self.ctx.open_rw_session(slot).map_err(module_error)?;
        match session.login(user, Some(&AuthPin::new(pin.expose().into()))) {
            Ok(()) => {
                guard.reset(&key, so);
                Ok(session)
            }
            Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                // Left logged in by a failed logout: start clean and retry.
                let _ = session.logout();
                drop(session);
                let session = self.ctx.open_rw_session(slot).map_err(module_error)?;
                session
                    .login(user, Some(&AuthPin::new(pin.expose().into())))
                    .map_err(|e| self.wrong_pin(guard, serial, so, e))?;
                guard.reset(&key, so);
                Ok(session)
            }
            Err(e) => Err(self.wrong_pin(guard, serial, so, e)),
        }
    }

    /// Maps a failed login, counting it when the PIN was wrong.
    fn wrong_pin(&self, guard: &mut PinGuard, serial: &str, so: bool, e: P11Error) -> TokenError {
        match e {
            P11Error::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _) => {
                let key = self.guard_key(serial);
                let failures = guard.count(&key, so);
                let module_says = self.slot(serial).ok().map(|(_, info)| info);
                let locked = failures >= MAX_PIN_TRIES
                    || (!so && module_says.as_ref().is_some_and(|i| i.user_pin_locked()));
                let mut left = MAX_PIN_TRIES.saturating_sub(failures);
                if !so && module_says.as_ref().is_some_and(|i| i.user_pin_final_try()) {
                    left = left.min(1);
                }
                match (so, locked) {
                    (false, true) => TokenError::PinLocked,
                    (true, true) => TokenError::SoPinLocked,
                    (false, false) => TokenError::WrongPin {
                        retries_left: Some(left),
                    },
                    (true, false) => TokenError::WrongSoPin {
                        retries_left: Some(left),
                    },
                }
            }
            P11Error::Pkcs11(RvError::PinLocked, _) => {
                if so {
                    TokenError::SoPinLocked
                } else {
                    TokenError::PinLocked
                }
            }
            other => module_error(other),
        }
    }

    /// Runs `f` in a session logged in as the user, then logs out.
    fn with_user<T>(
        &self,
        serial: &str,
        pin: &Pin,
        f: impl FnOnce(&Session) -> Result<T>,
    ) -> Result<T> {
        let mut guard = self.guard();
        let session = self.login(&mut guard, serial, UserType::User, pin)?;
        let result = f(&session);
        let _ = session.logout();
        result
    }
}

impl TokenBackend for Pkcs11Tokens {
    fn kind(&self) -> &'static str {
        "pkcs11"
    }

    fn tokens(&self) -> Result<Vec<TokenInfo>> {
        let guard = self.guard();
        let mut out = Vec::new();
        for slot in self.ctx.get_slots_with_token().map_err(module_error)? {
            let info = self.ctx.get_token_info(slot).map_err(module_error)?;
            if !info.token_initialized() {
                continue;
            }
            let serial = info.serial_number().trim().to_owned();
            let failures = guard.failures(&self.guard_key(&serial), false);
            let locked = info.user_pin_locked() || failures >= MAX_PIN_TRIES;
            let mut left = MAX_PIN_TRIES.saturating_sub(failures);
            if info.user_pin_final_try() {
                left = left.min(1);
            }
            out.push(TokenInfo {
                label: info.label().trim().to_owned(),
                manufacturer: info.manufacturer_id().trim().to_owned(),
                model: info.model().trim().to_owned(),
                serial,
                pin_retries_left: Some(if locked { 0 } else { left }),
                pin_locked: locked,
            });
        }
        Ok(out)
    }

    fn keys(&self, serial: &str) -> Result<Vec<KeyEntry>> {
        let _serialized = self.guard();
        let (slot, _) = self.slot(serial)?;
        let session = self.ctx.open_ro_session(slot).map_err(module_error)?;
        read_keys(&session)
    }

    fn verify_pin(&self, serial: &str, pin: &Pin) -> Result<()> {
        self.with_user(serial, pin, |_| Ok(()))
    }

    fn change_pin(&self, serial: &str, old: &Pin, new: &Pin) -> Result<()> {
        new.check_new()?;
        self.with_user(serial, old, |session| {
            session
                .set_pin(
                    &AuthPin::new(old.expose().into()),
                    &AuthPin::new(new.expose().into()),
                )
                .map_err(|e| match e {
                    P11Error::Pkcs11(RvError::PinLenRange | RvError::PinInvalid, _) => {
                        TokenError::PinPolicy("该 UKey 不接受这个新 PIN 码，请换一个".into())
                    }
                    other => module_error(other),
                })
        })
    }

    fn unblock_pin(&self, serial: &str, so_pin: &Pin, new_pin: &Pin) -> Result<()> {
        new_pin.check_new()?;
        let mut guard = self.guard();
        let session = self.login(&mut guard, serial, UserType::So, so_pin)?;
        let result = session
            .init_pin(&AuthPin::new(new_pin.expose().into()))
            .map_err(|e| match e {
                P11Error::Pkcs11(RvError::PinLenRange | RvError::PinInvalid, _) => {
                    TokenError::PinPolicy("该 UKey 不接受这个新 PIN 码，请换一个".into())
                }
                other => module_error(other),
            });
        let _ = session.logout();
        if result.is_ok() {
            guard.reset(&self.guard_key(serial), false);
        }
        result
    }

    fn generate_key(
        &self,
        serial: &str,
        pin: &Pin,
        algorithm: KeyAlgorithm,
        label: &str,
    ) -> Result<KeyEntry> {
        if !ALGORITHMS.contains(&algorithm) {
            return Err(TokenError::Unsupported(format!(
                "该 UKey（PKCS#11）不支持生成 {algorithm} 密钥，可选 EC P-256 或 RSA 2048"
            )));
        }
        self.with_user(serial, pin, |session| {
            let mut id = vec![0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut id);
            let (mechanism, public, private) = key_pair_templates(algorithm, label.as_bytes(), &id)
                .map_err(|e| TokenError::Module(e.to_string()))?;
            let (public, _) = session
                .generate_key_pair(&mechanism, &public, &private)
                .map_err(|e| match e {
                    P11Error::Pkcs11(RvError::DeviceMemory, _) => TokenError::TokenFull,
                    other => module_error(other),
                })?;
            let (algorithm, spki) = read_public_key(session, public, &format!("key {label:?}"))
                .map_err(|e| TokenError::Module(e.to_string()))?;
            Ok(KeyEntry {
                key_id: id,
                label: label.to_owned(),
                algorithm,
                public_key: spki.to_der().map_err(der_error)?,
                certificate: None,
                chain: Vec::new(),
            })
        })
    }

    fn sign(&self, serial: &str, pin: &Pin, key_id: &[u8], message: &[u8]) -> Result<Vec<u8>> {
        self.with_user(serial, pin, |session| {
            let private = find_by_id(session, ObjectClass::PRIVATE_KEY, key_id)?
                .into_iter()
                .next()
                .ok_or(TokenError::NoSuchKey)?;
            let entry = read_keys(session)?
                .into_iter()
                .find(|k| k.key_id == key_id)
                .ok_or(TokenError::NoSuchKey)?;
            let spki = SubjectPublicKeyInfoOwned::from_der(&entry.public_key).map_err(der_error)?;
            let (mechanism, input) = signing_input(entry.algorithm, message)
                .map_err(|e| TokenError::Unsupported(e.to_string()))?;
            let raw = session
                .sign(&mechanism, private, &input)
                .map_err(module_error)?;
            finish_signature(entry.algorithm, &spki, message, raw).map_err(|_| {
                TokenError::Module(
                    "the token returned a signature that does not verify; not using it".into(),
                )
            })
        })
    }

    fn store_certificate(
        &self,
        serial: &str,
        pin: &Pin,
        key_id: &[u8],
        certificate: &[u8],
        chain: &[Vec<u8>],
    ) -> Result<()> {
        self.with_user(serial, pin, |session| {
            if find_by_id(session, ObjectClass::PRIVATE_KEY, key_id)?.is_empty() {
                return Err(TokenError::NoSuchKey);
            }
            let label = find_by_id(session, ObjectClass::PUBLIC_KEY, key_id)?
                .first()
                .and_then(|h| label_of(session, *h))
                .unwrap_or_default();
            for old in find_by_id(session, ObjectClass::CERTIFICATE, key_id)? {
                session.destroy_object(old).map_err(module_error)?;
            }
            for (der, label) in std::iter::once((certificate, label.clone()))
                .chain(chain.iter().map(|c| (c.as_slice(), format!("{label} CA"))))
            {
                let cert = x509_cert::Certificate::from_der(der)
                    .map_err(|e| TokenError::BadRequest(format!("证书格式不正确：{e}")))?;
                let tbs = &cert.tbs_certificate;
                session
                    .create_object(&[
                        Attribute::Class(ObjectClass::CERTIFICATE),
                        Attribute::CertificateType(CertificateType::X_509),
                        Attribute::Token(true),
                        Attribute::Private(false),
                        Attribute::Id(key_id.to_vec()),
                        Attribute::Label(label.into_bytes()),
                        Attribute::Subject(tbs.subject.to_der().map_err(der_error)?),
                        Attribute::Issuer(tbs.issuer.to_der().map_err(der_error)?),
                        Attribute::SerialNumber(tbs.serial_number.to_der().map_err(der_error)?),
                        Attribute::Value(der.to_vec()),
                    ])
                    .map_err(|e| match e {
                        P11Error::Pkcs11(RvError::DeviceMemory, _) => TokenError::TokenFull,
                        other => module_error(other),
                    })?;
            }
            Ok(())
        })
    }

    fn delete_key(&self, serial: &str, pin: &Pin, key_id: &[u8]) -> Result<()> {
        self.with_user(serial, pin, |session| {
            let private = find_by_id(session, ObjectClass::PRIVATE_KEY, key_id)?;
            if private.is_empty() {
                return Err(TokenError::NoSuchKey);
            }
            for class in [ObjectClass::CERTIFICATE, ObjectClass::PUBLIC_KEY] {
                for h in find_by_id(session, class, key_id)? {
                    session.destroy_object(h).map_err(module_error)?;
                }
            }
            for h in private {
                session.destroy_object(h).map_err(module_error)?;
            }
            Ok(())
        })
    }
}

/// The key pairs visible in `session` (public keys and certificates, which
/// need no login), with their certificates.
fn read_keys(session: &Session) -> Result<Vec<KeyEntry>> {
    let mut entries: Vec<KeyEntry> = Vec::new();
    for public in session
        .find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)])
        .map_err(module_error)?
    {
        let Some(id) = id_of(session, public) else {
            continue;
        };
        let label = label_of(session, public).unwrap_or_default();
        match read_public_key(session, public, &format!("key {label:?}")) {
            Ok((algorithm, spki)) => entries.push(KeyEntry {
                key_id: id,
                label,
                algorithm,
                public_key: spki.to_der().map_err(der_error)?,
                certificate: None,
                chain: Vec::new(),
            }),
            // A key type the agent cannot use (e.g. another curve): skip it.
            Err(e) => tracing::debug!("skipping public key {label:?}: {e}"),
        }
    }
    for handle in session
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
        ])
        .map_err(module_error)?
    {
        let attrs = session
            .get_attributes(handle, &[AttributeType::Id, AttributeType::Value])
            .map_err(module_error)?;
        let (mut id, mut value) = (None, None);
        for a in attrs {
            match a {
                Attribute::Id(v) => id = Some(v),
                Attribute::Value(v) => value = Some(v),
                _ => {}
            }
        }
        let (Some(id), Some(der)) = (id, value) else {
            continue;
        };
        let Some(entry) = entries.iter_mut().find(|e| e.key_id == id) else {
            continue;
        };
        let own = x509_cert::Certificate::from_der(&der)
            .ok()
            .and_then(|c| c.tbs_certificate.subject_public_key_info.to_der().ok())
            .is_some_and(|spki| spki == entry.public_key);
        if own {
            entry.certificate = Some(der);
        } else {
            entry.chain.push(der);
        }
    }
    Ok(entries)
}

fn find_by_id(session: &Session, class: ObjectClass, id: &[u8]) -> Result<Vec<ObjectHandle>> {
    session
        .find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])
        .map_err(module_error)
}

fn id_of(session: &Session, handle: ObjectHandle) -> Option<Vec<u8>> {
    session
        .get_attributes(handle, &[AttributeType::Id])
        .ok()?
        .into_iter()
        .find_map(|a| match a {
            Attribute::Id(v) if !v.is_empty() => Some(v),
            _ => None,
        })
}

fn label_of(session: &Session, handle: ObjectHandle) -> Option<String> {
    session
        .get_attributes(handle, &[AttributeType::Label])
        .ok()?
        .into_iter()
        .find_map(|a| match a {
            Attribute::Label(v) => Some(String::from_utf8_lossy(&v).into_owned()),
            _ => None,
        })
}

fn module_error(e: P11Error) -> TokenError {
    match e {
        P11Error::Pkcs11(
            RvError::TokenNotPresent | RvError::DeviceRemoved | RvError::SlotIdInvalid,
            _,
        ) => TokenError::TokenAbsent,
        other => TokenError::Module(format!("PKCS#11: {other}")),
    }
}

fn der_error(e: der::Error) -> TokenError {
    TokenError::Module(format!("DER: {e}"))
}

/// The agent's own count of wrong PINs per token, kept in a JSON file so
/// that restarting the agent does not reset it.
#[derive(Debug)]
pub struct PinGuard {
    path: PathBuf,
    counts: BTreeMap<String, Counts>,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct Counts {
    user: u32,
    so: u32,
}

impl PinGuard {
    /// Reads the counts (none if the file is missing or unreadable).
    pub fn load(path: PathBuf) -> Self {
        let counts = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self { path, counts }
    }

    fn failures(&self, key: &str, so: bool) -> u32 {
        self.counts
            .get(key)
            .map(|c| if so { c.so } else { c.user })
            .unwrap_or(0)
    }

    /// Counts one wrong PIN and returns the count.
    fn count(&mut self, key: &str, so: bool) -> u32 {
        let c = self.counts.entry(key.to_owned()).or_default();
        let n = if so { &mut c.so } else { &mut c.user };
        *n = n.saturating_add(1);
        let n = *n;
        self.save();
        n
    }

    fn reset(&mut self, key: &str, so: bool) {
        let Some(c) = self.counts.get_mut(key) else {
            return;
        };
        let n = if so { &mut c.so } else { &mut c.user };
        if *n != 0 {
            *n = 0;
            self.save();
        }
    }

    fn save(&self) {
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&self.counts)?)?;
            std::fs::rename(&tmp, &self.path)
        };
        if let Err(e) = write() {
            // Counting still works in memory for this run.
            tracing::warn!("cannot save the PIN counts to {}: {e}", self.path.display());
        }
    }
}
