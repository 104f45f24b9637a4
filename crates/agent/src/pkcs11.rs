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
//! The key's own certificate is the one with the key's `CKA_ID` and public
//! key; chain certificates get `CKA_ID` = key id ‖ `0xCA` ‖ index, so that
//! software pairing certificates with keys by `CKA_ID` (NSS, OpenSC,
//! minidrivers) never offers a CA certificate for the key. Keys that have
//! a certificate but no public-key object (a common vendor layout) are
//! listed with the certificate's public key.
//!
//! # Blank tokens
//!
//! A token present but not initialised (`CKF_TOKEN_INITIALIZED` clear: a
//! new UKey, or the free slot SoftHSM2 always offers) is listed as blank.
//! Its id is its `serialNumber` when the module reports one; SoftHSM2
//! reports none before initialisation (the field is all spaces), so such a
//! token is named by its slot, `slot<id>` (decimal slot id). That name holds
//! only while the module keeps the slot: it is good for the initialisation
//! that follows the listing, not to be stored. [`TokenBackend::init_token`]
//! runs `C_InitToken` (SO PIN and label), then logs in as the SO and sets
//! the user PIN with `C_InitPIN`. SoftHSM2 assigns the serial number at
//! `C_InitToken` (16 hex digits), keeps the slot handle for this process,
//! and offers a new free slot; the token therefore comes back under its
//! new id.
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

use crate::token::{
    check_token_label, KeyEntry, Pin, Result, TokenBackend, TokenError, TokenInfo, MAX_PIN_TRIES,
};

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
            // Canonical, so that the PIN counts do not depend on how the
            // path was spelled.
            module: std::fs::canonicalize(module).unwrap_or_else(|_| module.to_path_buf()),
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

    /// The slot holding the token with this serial (blank or not), and its
    /// information.
    fn slot(&self, serial: &str) -> Result<(Slot, cryptoki::slot::TokenInfo)> {
        for slot in self.ctx.get_slots_with_token().map_err(module_error)? {
            let info = self.ctx.get_token_info(slot).map_err(module_error)?;
            if token_serial(slot, &info) == serial {
                return Ok((slot, info));
            }
        }
        Err(TokenError::TokenAbsent)
    }

    /// The same, for an operation that needs an initialised token.
    fn ready_slot(&self, serial: &str) -> Result<(Slot, cryptoki::slot::TokenInfo)> {
        let (slot, info) = self.slot(serial)?;
        if !info.token_initialized() {
            return Err(TokenError::NotInitialized);
        }
        Ok((slot, info))
    }

    /// Refuses a blank token before anything else is checked (calls
    /// serialized like every other).
    fn require_initialized(&self, serial: &str) -> Result<()> {
        let _serialized = self.guard();
        self.ready_slot(serial).map(drop)
    }

    /// What the API shows of a token.
    fn info(&self, guard: &PinGuard, slot: Slot, info: &cryptoki::slot::TokenInfo) -> TokenInfo {
        let serial = token_serial(slot, info);
        let (pin_retries_left, pin_locked) = if info.token_initialized() {
            let failures = guard.failures(&self.guard_key(&serial), false);
            let locked = info.user_pin_locked() || failures >= MAX_PIN_TRIES;
            let mut left = MAX_PIN_TRIES.saturating_sub(failures);
            if info.user_pin_final_try() {
                left = left.min(1);
            }
            (Some(if locked { 0 } else { left }), locked)
        } else {
            // No PIN yet, so nothing to count.
            (None, false)
        };
        TokenInfo {
            label: info.label().trim().to_owned(),
            manufacturer: info.manufacturer_id().trim().to_owned(),
            model: info.model().trim().to_owned(),
            serial,
            initialized: info.token_initialized(),
            pin_retries_left,
            pin_locked,
        }
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
        let (slot, info) = self.ready_slot(serial)?;
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
        // Count the try before making it (and refuse if the count cannot be
        // saved): for modules that never lock, this count is the lock, and
        // stopping the agent mid-login must not give a free try.
        guard.count(&key, so)?;
        let mut result = session.login(user, Some(&AuthPin::new(pin.expose().into())));
        if let Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) = result {
            // Left logged in by a failed logout: start clean and retry.
            let _ = session.logout();
            result = session.login(user, Some(&AuthPin::new(pin.expose().into())));
        }
        match result {
            Ok(()) => {
                guard.reset(&key, so);
                Ok(session)
            }
            Err(e) => {
                if !matches!(e, P11Error::Pkcs11(RvError::PinIncorrect, _)) {
                    // Not a wrong PIN: the try does not count.
                    guard.uncount(&key, so);
                }
                Err(self.wrong_pin(guard, serial, so, e))
            }
        }
    }

    /// Maps a failed login (a wrong PIN was counted already).
    fn wrong_pin(&self, guard: &mut PinGuard, serial: &str, so: bool, e: P11Error) -> TokenError {
        match e {
            P11Error::Pkcs11(RvError::PinIncorrect, _) => {
                let key = self.guard_key(serial);
                let failures = guard.failures(&key, so);
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
            // A PIN of a length the token never accepts: not a try.
            P11Error::Pkcs11(RvError::PinLenRange, _) if so => TokenError::WrongSoPin {
                retries_left: Some(
                    MAX_PIN_TRIES.saturating_sub(guard.failures(&self.guard_key(serial), so)),
                ),
            },
            P11Error::Pkcs11(RvError::PinLenRange, _) => TokenError::WrongPin {
                retries_left: Some(
                    MAX_PIN_TRIES.saturating_sub(guard.failures(&self.guard_key(serial), so)),
                ),
            },
            P11Error::Pkcs11(RvError::PinExpired, _) => TokenError::PinPolicy(
                "UKey 的 PIN 码已过期，请用 UKey 厂商的管理工具修改 PIN 码后再试。".into(),
            ),
            P11Error::Pkcs11(RvError::UserPinNotInitialized, _) => {
                TokenError::Unsupported("这个 UKey 还没有设置用户 PIN 码，请到柜台初始化。".into())
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
            out.push(self.info(&guard, slot, &info));
        }
        Ok(out)
    }

    fn token(&self, serial: &str) -> Result<TokenInfo> {
        let guard = self.guard();
        let (slot, info) = self.slot(serial)?;
        Ok(self.info(&guard, slot, &info))
    }

    fn keys(&self, serial: &str) -> Result<Vec<KeyEntry>> {
        let _serialized = self.guard();
        let (slot, info) = self.slot(serial)?;
        if !info.token_initialized() {
            return Ok(Vec::new());
        }
        let session = self.ctx.open_ro_session(slot).map_err(module_error)?;
        read_keys(&session)
    }

    fn init_token(
        &self,
        serial: &str,
        label: &str,
        so_pin: &Pin,
        user_pin: &Pin,
    ) -> Result<TokenInfo> {
        check_token_label(label)?;
        so_pin.check_new()?;
        user_pin.check_new()?;
        let mut guard = self.guard();
        let (slot, info) = self.slot(serial)?;
        if info.token_initialized() {
            // C_InitToken would re-initialise it (with the right SO PIN),
            // destroying every key on it.
            return Err(TokenError::AlreadyInitialized);
        }
        // The module's own PIN lengths, checked before anything is written:
        // a PIN refused after C_InitToken would leave a half-made token.
        let (min, max) = (info.min_pin_length(), info.max_pin_length());
        for pin in [so_pin, user_pin] {
            let len = pin.expose().len();
            if (min > 0 && len < min) || (max > 0 && len > max) {
                return Err(TokenError::PinPolicy(format!(
                    "该 UKey 的 PIN 码长度应为 {min}–{max} 位"
                )));
            }
        }
        self.ctx
            .init_token(slot, &AuthPin::new(so_pin.expose().into()), label)
            .map_err(|e| match e {
                P11Error::Pkcs11(RvError::PinLenRange | RvError::PinInvalid, _) => {
                    TokenError::PinPolicy("该 UKey 不接受这个管理员 PIN 码，请换一个".into())
                }
                // A module that keeps a factory SO PIN on blank keys.
                P11Error::Pkcs11(RvError::PinIncorrect, _) => {
                    TokenError::WrongSoPin { retries_left: None }
                }
                P11Error::Pkcs11(RvError::PinLocked, _) => TokenError::SoPinLocked,
                other => module_error(other),
            })?;
        // The serial as the module now reports it (SoftHSM2 assigns one
        // here); the slot stays the same.
        let info = self.ctx.get_token_info(slot).map_err(module_error)?;
        let serial = token_serial(slot, &info);
        // Counts left by an earlier life of this serial (a key wiped with
        // the vendor's tool) do not apply to the new PINs.
        let key = self.guard_key(&serial);
        guard.reset(&key, true);
        guard.reset(&key, false);
        let session = self.login(&mut guard, &serial, UserType::So, so_pin)?;
        let result = session
            .init_pin(&AuthPin::new(user_pin.expose().into()))
            .map_err(|e| match e {
                P11Error::Pkcs11(RvError::PinLenRange | RvError::PinInvalid, _) => {
                    TokenError::PinPolicy(
                        "UKey 已初始化，但不接受这个用户 PIN 码；请用管理员 PIN 码重设用户 PIN 码"
                            .into(),
                    )
                }
                other => TokenError::Module(format!(
                    "the token is initialised, but setting its user PIN failed \
                     (set it with pin/unblock and the SO PIN): PKCS#11: {other}"
                )),
            });
        let _ = session.logout();
        drop(session);
        result?;
        let info = self.ctx.get_token_info(slot).map_err(module_error)?;
        Ok(self.info(&guard, slot, &info))
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

    fn change_so_pin(&self, serial: &str, old: &Pin, new: &Pin) -> Result<()> {
        new.check_new()?;
        let mut guard = self.guard();
        let session = self.login(&mut guard, serial, UserType::So, old)?;
        let result = session
            .set_pin(
                &AuthPin::new(old.expose().into()),
                &AuthPin::new(new.expose().into()),
            )
            .map_err(|e| match e {
                P11Error::Pkcs11(RvError::PinLenRange | RvError::PinInvalid, _) => {
                    TokenError::PinPolicy("该 UKey 不接受这个新 SO PIN，请换一个".into())
                }
                other => module_error(other),
            });
        let _ = session.logout();
        result
    }

    fn generate_key(
        &self,
        serial: &str,
        pin: &Pin,
        algorithm: KeyAlgorithm,
        label: &str,
    ) -> Result<KeyEntry> {
        self.require_initialized(serial)?;
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
            let (public, private) = session
                .generate_key_pair(&mechanism, &public, &private)
                .map_err(|e| match e {
                    P11Error::Pkcs11(RvError::DeviceMemory, _) => TokenError::TokenFull,
                    other => module_error(other),
                })?;
            let (algorithm, spki) =
                match read_public_key(session, public, &format!("key {label:?}")) {
                    Ok(v) => v,
                    Err(e) => {
                        // No orphaned key pair on the token.
                        let _ = session.destroy_object(private);
                        let _ = session.destroy_object(public);
                        return Err(TokenError::Module(e.to_string()));
                    }
                };
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
        self.require_initialized(serial)?;
        // Before any PIN try: a key this module cannot sign with.
        let algorithm = self
            .keys(serial)?
            .into_iter()
            .find(|k| k.key_id == key_id)
            .map(|k| k.algorithm)
            .ok_or(TokenError::NoSuchKey)?;
        if algorithm == KeyAlgorithm::Sm2 {
            return Err(TokenError::Unsupported(
                "这是 SM2（国密）证书：当前的 PKCS#11 驱动无法用它签名，需要支持国密的 UKey 驱动（SKF）。"
                    .into(),
            ));
        }
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
                .into_iter()
                .chain(find_by_id(session, ObjectClass::CERTIFICATE, key_id)?)
                .find_map(|h| label_of(session, h).filter(|l| !l.is_empty()))
                .unwrap_or_default();
            let mut old = find_by_id(session, ObjectClass::CERTIFICATE, key_id)?;
            for i in 0..=u8::MAX {
                old.extend(find_by_id(
                    session,
                    ObjectClass::CERTIFICATE,
                    &chain_id(key_id, i),
                )?);
                if i as usize >= MAX_CHAIN {
                    break;
                }
            }
            if chain.len() > MAX_CHAIN {
                return Err(TokenError::BadRequest(format!(
                    "证书链过长（最多 {MAX_CHAIN} 张）。"
                )));
            }
            let mut created = Vec::new();
            let entries = std::iter::once((key_id.to_vec(), certificate, label.clone())).chain(
                chain.iter().enumerate().map(|(i, c)| {
                    (
                        chain_id(key_id, i as u8),
                        c.as_slice(),
                        format!("{label} CA {}", i + 1),
                    )
                }),
            );
            for (id, der, label) in entries {
                match create_certificate(session, &id, &label, der) {
                    Ok(h) => created.push(h),
                    Err(e) => {
                        // Leave the token as it was.
                        for h in created {
                            let _ = session.destroy_object(h);
                        }
                        return Err(e);
                    }
                }
            }
            // Only now that the new objects exist do the old ones go.
            for h in old {
                session.destroy_object(h).map_err(module_error)?;
            }
            Ok(())
        })
    }

    fn delete_key(&self, serial: &str, pin: &Pin, key_id: &[u8]) -> Result<()> {
        self.with_user(serial, pin, |session| {
            let private = find_by_id(session, ObjectClass::PRIVATE_KEY, key_id)?;
            let public = find_by_id(session, ObjectClass::PUBLIC_KEY, key_id)?;
            let mut certificates = find_by_id(session, ObjectClass::CERTIFICATE, key_id)?;
            for i in 0..=MAX_CHAIN as u8 {
                certificates.extend(find_by_id(
                    session,
                    ObjectClass::CERTIFICATE,
                    &chain_id(key_id, i),
                )?);
            }
            if private.is_empty() && public.is_empty() && certificates.is_empty() {
                return Err(TokenError::NoSuchKey);
            }
            // The private key first: if anything fails after, what is left
            // is public and can be deleted again.
            for h in private.into_iter().chain(public).chain(certificates) {
                session.destroy_object(h).map_err(module_error)?;
            }
            Ok(())
        })
    }
}

/// Longest chain written next to a key.
const MAX_CHAIN: usize = 8;

/// The `CKA_ID` of the `i`-th chain certificate of a key: the key's id and
/// two bytes, so that software pairing certificates with keys by `CKA_ID`
/// (NSS, OpenSC, minidrivers) never offers a CA certificate for the key.
fn chain_id(key_id: &[u8], i: u8) -> Vec<u8> {
    let mut id = key_id.to_vec();
    id.extend([0xCA, i]);
    id
}

fn create_certificate(
    session: &Session,
    id: &[u8],
    label: &str,
    der: &[u8],
) -> Result<ObjectHandle> {
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| TokenError::BadRequest(format!("证书格式不正确：{e}")))?;
    let tbs = &cert.tbs_certificate;
    session
        .create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Subject(tbs.subject.to_der().map_err(der_error)?),
            Attribute::Issuer(tbs.issuer.to_der().map_err(der_error)?),
            Attribute::SerialNumber(tbs.serial_number.to_der().map_err(der_error)?),
            Attribute::Value(der.to_vec()),
        ])
        .map_err(|e| match e {
            P11Error::Pkcs11(RvError::DeviceMemory, _) => TokenError::TokenFull,
            other => module_error(other),
        })
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
    // Certificates: the key's own (same CKA_ID, same public key), its
    // chain (CKA_ID = key id + CA marker), or — on tokens that keep no
    // public-key object, as many vendor UKeys do — the only trace of a key
    // pair, whose public key is then the certificate's.
    let mut certificates: Vec<(Vec<u8>, Vec<u8>, String)> = Vec::new();
    for handle in session
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
        ])
        .map_err(module_error)?
    {
        let attrs = session
            .get_attributes(
                handle,
                &[
                    AttributeType::Id,
                    AttributeType::Value,
                    AttributeType::Label,
                ],
            )
            .map_err(module_error)?;
        let (mut id, mut value, mut label) = (None, None, String::new());
        for a in attrs {
            match a {
                Attribute::Id(v) => id = Some(v),
                Attribute::Value(v) => value = Some(v),
                Attribute::Label(v) => label = String::from_utf8_lossy(&v).into_owned(),
                _ => {}
            }
        }
        if let (Some(id), Some(der)) = (id, value) {
            certificates.push((id, der, label));
        }
    }
    // A chain certificate's id is a key's id plus the CA marker and an
    // index; any other certificate (even one whose id happens to contain
    // 0xCA) is a key's own.
    let key_ids: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| e.key_id.clone())
        .chain(certificates.iter().map(|(id, _, _)| id.clone()))
        .collect();
    let chain_of = |id: &[u8]| -> Option<(Vec<u8>, u8)> {
        let n = id.len();
        (n > 2 && id[n - 2] == 0xCA && key_ids.iter().any(|k| k.as_slice() == &id[..n - 2]))
            .then(|| (id[..n - 2].to_vec(), id[n - 1]))
    };
    let mut chains: Vec<(Vec<u8>, u8, Vec<u8>)> = Vec::new();
    for (id, der, label) in certificates {
        if let Some((key_id, index)) = chain_of(&id) {
            chains.push((key_id, index, der));
            continue;
        }
        let Ok(cert) = x509_cert::Certificate::from_der(&der) else {
            continue;
        };
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let spki_der = spki.to_der().map_err(der_error)?;
        match entries.iter_mut().find(|e| e.key_id == id) {
            Some(entry) if entry.public_key == spki_der => entry.certificate = Some(der),
            Some(entry) => chains.push((entry.key_id.clone(), u8::MAX, der)),
            None => {
                let Ok(algorithm) = certhall_ca::csr::classify(spki) else {
                    continue;
                };
                entries.push(KeyEntry {
                    key_id: id,
                    label,
                    algorithm,
                    public_key: spki_der,
                    certificate: Some(der),
                    chain: Vec::new(),
                });
            }
        }
    }
    chains.sort_by_key(|(_, i, _)| *i);
    for (key_id, _, der) in chains {
        if let Some(entry) = entries.iter_mut().find(|e| e.key_id == key_id) {
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

/// A token's id within the module: its serial number, trimmed, or for a
/// blank token that reports none, its slot (`slot<id>`; see the module
/// doc).
fn token_serial(slot: Slot, info: &cryptoki::slot::TokenInfo) -> String {
    let serial = info.serial_number().trim();
    if serial.is_empty() && !info.token_initialized() {
        format!("slot{}", slot.id())
    } else {
        serial.to_owned()
    }
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
/// that restarting the agent does not reset it. A try is counted (and
/// saved) before it is made; if the count cannot be saved, the try is
/// refused.
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
    /// Reads the counts. A missing file is no counts; an unreadable one is
    /// reported loudly (the counts restart from zero: the agent cannot
    /// know them, and refusing every PIN forever would be worse).
    pub fn load(path: PathBuf) -> Self {
        let counts = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!(
                    "the PIN count file {} is damaged ({e}); counting again from zero",
                    path.display()
                );
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        Self { path, counts }
    }

    fn failures(&self, key: &str, so: bool) -> u32 {
        self.counts
            .get(key)
            .map(|c| if so { c.so } else { c.user })
            .unwrap_or(0)
    }

    fn slot(&mut self, key: &str, so: bool) -> &mut u32 {
        let c = self.counts.entry(key.to_owned()).or_default();
        if so {
            &mut c.so
        } else {
            &mut c.user
        }
    }

    /// Counts a try about to be made; refuses it if the count cannot be
    /// saved.
    fn count(&mut self, key: &str, so: bool) -> Result<()> {
        let n = self.slot(key, so);
        *n = n.saturating_add(1);
        if let Err(e) = self.save() {
            let n = self.slot(key, so);
            *n = n.saturating_sub(1);
            return Err(TokenError::Module(format!(
                "cannot save the PIN count to {}: {e}",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Takes back a counted try that turned out not to be a PIN check.
    fn uncount(&mut self, key: &str, so: bool) {
        let n = self.slot(key, so);
        *n = n.saturating_sub(1);
        if let Err(e) = self.save() {
            tracing::warn!("cannot save the PIN counts to {}: {e}", self.path.display());
        }
    }

    fn reset(&mut self, key: &str, so: bool) {
        let n = self.slot(key, so);
        if *n != 0 {
            *n = 0;
            if let Err(e) = self.save() {
                tracing::warn!("cannot save the PIN counts to {}: {e}", self.path.display());
            }
        }
    }

    /// Writes the file atomically (unique temporary file, fsync, rename).
    fn save(&self) -> std::io::Result<()> {
        use std::io::Write;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut suffix = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut suffix);
        let tmp = dir.join(format!(".pin-counts-{}.tmp", hex::encode(suffix)));
        let result = (|| {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(&self.counts)?)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}
