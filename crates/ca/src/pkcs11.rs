//! CA keys inside a PKCS#11 token: an HSM in production, SoftHSM2 in tests.
//!
//! [`Pkcs11Key`] implements [`CaSigner`], so the engine issues certificates,
//! CRLs and OCSP responses with a token key exactly as with a
//! [`SoftwareKey`](crate::SoftwareKey). The private key never leaves the
//! token: [`Pkcs11Key::generate`] creates it inside (`CKA_TOKEN`,
//! `CKA_PRIVATE`, `CKA_SENSITIVE`, `CKA_EXTRACTABLE = false`, sign-only) and
//! [`Pkcs11Key::open`] finds it again by label.
//!
//! # Where the configuration comes from
//!
//! A key is named by the module (shared library), the token label and the
//! key label ([`Pkcs11KeyRef`], safe to store as JSON); the user PIN is a
//! secret that comes from a file or the environment at runtime and is added
//! with [`Pkcs11KeyRef::with_pin`] / [`Pkcs11KeyRef::with_pin_from_file`].
//! [`Pkcs11Config`] is the reference plus the PIN (`Debug` masks the PIN; it
//! is wiped from memory when the configuration is dropped).
//!
//! # Algorithms
//!
//! | key | generated with | signed with |
//! |---|---|---|
//! | EC P-256 | `CKM_EC_KEY_PAIR_GEN`, `CKA_EC_PARAMS` = prime256v1 OID | SHA-256 on the host, then `CKM_ECDSA` (raw `r ‖ s`, DER-encoded here) |
//! | RSA 2048 / 3072 / 4096 | `CKM_RSA_PKCS_KEY_PAIR_GEN`, e = 65537 | SHA-256 `DigestInfo` built on the host, then `CKM_RSA_PKCS` |
//!
//! Hashing on the host for both families means only 32 (EC) or 51 (RSA)
//! bytes cross the wire whatever the size of the message (a CRL of a busy
//! CA can be megabytes; a network HSM would otherwise receive all of it),
//! and it only needs the two most widely implemented mechanisms.
//! `CKM_RSA_PKCS` over a `DigestInfo` produces exactly the bytes of
//! `CKM_SHA256_RSA_PKCS` (RFC 8017 §9.2).
//!
//! SM2 is not available: PKCS#11 defines no SM2 mechanism and SoftHSM2 has
//! none. Chinese HSMs expose SM2 through GM/T 0016 (SKF) / GM/T 0018 (SDF)
//! or vendor-defined PKCS#11 mechanisms; that is a separate backend.
//!
//! Every signature the token returns is verified with the public key before
//! it is used: a faulty or misconfigured token (or an RSA-CRT fault, which
//! would leak the key if the signature were published) never produces a
//! certificate.
//!
//! # Threads, sessions and the module
//!
//! The PKCS#11 library is initialised once per process and per module
//! (`C_Initialize` a second time fails, and `C_Finalize` ends every user of
//! the module), so all keys of one module share one context, which is
//! finalised when the last key is dropped. Each key holds one read-only
//! session behind a `Mutex`: a PKCS#11 session runs one operation at a time
//! anyway, the session keeps the token logged in, and a CA signs at a rate
//! where one session per key is plenty (and HSMs limit their session
//! count). If the session is lost (HSM restart, network HSM reconnect,
//! token logged out), the next signature opens a new session, logs in again
//! and retries once.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::{AuthPin, Ulong};
use der::asn1::OctetString;
use der::{Decode, Encode};
use pkcs8::EncodePublicKey;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spki::SubjectPublicKeyInfoOwned;
use zeroize::Zeroize;

use crate::family::{oid, Family, KeyAlgorithm};
use crate::keys::{raw_ec_signature_to_der, CaSigner};
use crate::{CaError, Result};

/// The DER `DigestInfo` prefix of a SHA-256 digest (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// RSA modulus sizes [`Pkcs11Key::generate`] accepts.
pub const RSA_BITS: [u32; 3] = [2048, 3072, 4096];

/// Where a token key is, without the PIN: what the service stores (as
/// JSON) to find the key again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11KeyRef {
    /// The PKCS#11 module (shared library), e.g.
    /// `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label (`CKA_LABEL` of the token, at most 32 bytes).
    pub token_label: String,
    /// The key's label (`CKA_LABEL` of the private and public key objects).
    pub key_label: String,
}

impl Pkcs11KeyRef {
    /// The configuration with the user PIN.
    pub fn with_pin(self, pin: impl Into<String>) -> Pkcs11Config {
        Pkcs11Config {
            module: self.module,
            token_label: self.token_label,
            key_label: self.key_label,
            pin: pin.into(),
        }
    }

    /// The configuration with the user PIN read from a file (one trailing
    /// line break, as `echo` writes, is not part of the PIN).
    pub fn with_pin_from_file(self, path: &Path) -> Result<Pkcs11Config> {
        let mut text = std::fs::read_to_string(path).map_err(|e| {
            CaError::Key(format!(
                "cannot read the PKCS#11 PIN file {}: {e}",
                path.display()
            ))
        })?;
        let pin = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text)
            .to_owned();
        text.zeroize();
        Ok(self.with_pin(pin))
    }
}

/// A token key reference plus the user PIN: what [`Pkcs11Key::open`] and
/// [`Pkcs11Key::generate`] need.
///
/// It deserializes (unknown fields refused) for deployments that keep the
/// whole thing in a protected configuration file; when the PIN comes from
/// elsewhere, build it with [`Pkcs11KeyRef::with_pin`]. It deliberately does
/// not implement `Serialize`, so the PIN cannot end up in stored JSON.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library).
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The key's label.
    pub key_label: String,
    /// The user PIN (masked in `Debug`, wiped on drop).
    pub pin: String,
}

impl Pkcs11Config {
    /// The reference without the PIN (for storage).
    pub fn key_ref(&self) -> Pkcs11KeyRef {
        Pkcs11KeyRef {
            module: self.module.clone(),
            token_label: self.token_label.clone(),
            key_label: self.key_label.clone(),
        }
    }
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("key_label", &self.key_label)
            .field("pin", &"***")
            .finish()
    }
}

impl Drop for Pkcs11Config {
    fn drop(&mut self) {
        self.pin.zeroize();
    }
}

/// How well the token protects a private key, as its attributes say.
/// An attribute the token does not report counts as the unsafe value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyProtection {
    /// `CKA_TOKEN`: stored in the token (not a session object).
    pub token: bool,
    /// `CKA_PRIVATE`: usable only after login.
    pub private: bool,
    /// `CKA_SENSITIVE`: the key value cannot be read.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`: the key can be wrapped out of the token.
    pub extractable: bool,
    /// `CKA_ALWAYS_SENSITIVE`: it has been sensitive since it was created.
    pub always_sensitive: bool,
    /// `CKA_NEVER_EXTRACTABLE`: it has never been extractable.
    pub never_extractable: bool,
    /// `CKA_LOCAL`: generated inside the token (not imported).
    pub local: bool,
}

impl KeyProtection {
    /// Generated in the token and never readable or exportable since: what
    /// a CA key in an HSM should be.
    pub fn never_left_the_token(&self) -> bool {
        self.token
            && self.private
            && self.sensitive
            && !self.extractable
            && self.always_sensitive
            && self.never_extractable
            && self.local
    }
}

/// A CA key inside a PKCS#11 token.
pub struct Pkcs11Key {
    // Field order is drop order: the session closes before the module
    // context is released (which may finalise the library).
    live: Mutex<Live>,
    config: Pkcs11Config,
    id: Vec<u8>,
    algorithm: KeyAlgorithm,
    public_key: SubjectPublicKeyInfoOwned,
    module: Arc<Module>,
}

/// The session and the private key handle (handles are only valid within
/// the session's application, so they are replaced together).
struct Live {
    session: Session,
    private: ObjectHandle,
}

impl fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Key")
            .field("module", &self.config.module)
            .field("token_label", &self.config.token_label)
            .field("key_label", &self.config.key_label)
            .field("id", &hex::encode(&self.id))
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl Pkcs11Key {
    /// Opens an existing key: finds the token by label, logs in with the
    /// PIN, finds the private key by `CKA_LABEL` and the public key with the
    /// same label and `CKA_ID`.
    ///
    /// Errors name the problem: a wrong PIN ("wrong PIN for token …"), a
    /// locked PIN, an unknown token (with the labels of the tokens that do
    /// exist), a missing key, an unsupported key type.
    pub fn open(config: Pkcs11Config) -> Result<Self> {
        let module = Module::get(&config.module)?;
        let session = connect(&module, &config, false)?;
        let private = find_private_key(&session, &config, None)?;
        let attrs = session
            .get_attributes(private, &[AttributeType::Id, AttributeType::Sign])
            .map_err(p11("read the private key's attributes"))?;
        let mut id = None;
        let mut can_sign = false;
        for a in attrs {
            match a {
                Attribute::Id(v) => id = Some(v),
                Attribute::Sign(v) => can_sign = v,
                _ => {}
            }
        }
        let id = id.unwrap_or_default();
        if !can_sign {
            return Err(CaError::Key(format!(
                "key {:?} on token {:?} is not allowed to sign (CKA_SIGN is false)",
                config.key_label, config.token_label
            )));
        }
        let public = find_one(
            &session,
            ObjectClass::PUBLIC_KEY,
            &config.key_label,
            Some(&id),
        )?
        .ok_or_else(|| {
            CaError::Key(format!(
                "token {:?} has the private key {:?} but no public key object with the same label and CKA_ID {}",
                config.token_label,
                config.key_label,
                hex::encode(&id)
            ))
        })?;
        let (algorithm, public_key) = read_public_key(
            &session,
            public,
            &format!(
                "key {:?} on token {:?}",
                config.key_label, config.token_label
            ),
        )?;
        let private_type = session
            .get_attributes(private, &[AttributeType::KeyType])
            .map_err(p11("read the private key's type"))?;
        let expected = match algorithm {
            KeyAlgorithm::Rsa(_) => KeyType::RSA,
            _ => KeyType::EC,
        };
        if !private_type.contains(&Attribute::KeyType(expected)) {
            return Err(CaError::Key(format!(
                "the private and public key objects labelled {:?} are of different types",
                config.key_label
            )));
        }
        Ok(Self {
            live: Mutex::new(Live { session, private }),
            config,
            id,
            algorithm,
            public_key,
            module,
        })
    }

    /// Generates a key pair inside the token and opens it.
    ///
    /// EC P-256 or RSA of [`RSA_BITS`] bits (public exponent 65537). The
    /// private key is a token object, private, sensitive, not extractable,
    /// allowed to sign and nothing else; both objects get the configured
    /// label and a fresh random 16-byte `CKA_ID`. Refuses if a key with that
    /// label already exists on the token, and refuses SM2 (no standard
    /// PKCS#11 mechanism).
    pub fn generate(config: Pkcs11Config, alg: KeyAlgorithm) -> Result<Self> {
        if let KeyAlgorithm::Rsa(bits) = alg {
            if !RSA_BITS.contains(&bits) {
                return Err(CaError::Key(format!(
                    "RSA {bits} is not offered for CA keys (choose 2048, 3072 or 4096)"
                )));
            }
        }
        let module = Module::get(&config.module)?;
        {
            let session = connect(&module, &config, true)?;
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                let found = session
                    .find_objects(&[
                        Attribute::Class(class),
                        Attribute::Label(config.key_label.as_bytes().to_vec()),
                    ])
                    .map_err(p11("search the token for the key label"))?;
                if !found.is_empty() {
                    return Err(CaError::Key(format!(
                        "token {:?} already has a key labelled {:?}: refusing to create a second one \
                         (choose another label, or delete the old key with the HSM's tools)",
                        config.token_label, config.key_label
                    )));
                }
            }
            let mut id = vec![0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut id);
            let (mechanism, public_template, private_template) =
                key_pair_templates(alg, config.key_label.as_bytes(), &id)?;
            session
                .generate_key_pair(&mechanism, &public_template, &private_template)
                .map_err(p11(&format!("generate a {alg} key pair in the token")))?;
        }
        let key = Self::open(config)?;
        drop(module);
        Ok(key)
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Where the key is (no PIN), for storage.
    pub fn key_ref(&self) -> Pkcs11KeyRef {
        self.config.key_ref()
    }

    /// The key's `CKA_ID` (shared by the private and public key objects).
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// The private key's protection attributes, read from the token.
    pub fn protection(&self) -> Result<KeyProtection> {
        let live = lock(&self.live);
        let attrs = live
            .session
            .get_attributes(
                live.private,
                &[
                    AttributeType::Token,
                    AttributeType::Private,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::Local,
                ],
            )
            .map_err(p11("read the private key's attributes"))?;
        let mut p = KeyProtection {
            token: false,
            private: false,
            sensitive: false,
            extractable: true,
            always_sensitive: false,
            never_extractable: false,
            local: false,
        };
        for a in attrs {
            match a {
                Attribute::Token(v) => p.token = v,
                Attribute::Private(v) => p.private = v,
                Attribute::Sensitive(v) => p.sensitive = v,
                Attribute::Extractable(v) => p.extractable = v,
                Attribute::AlwaysSensitive(v) => p.always_sensitive = v,
                Attribute::NeverExtractable(v) => p.never_extractable = v,
                Attribute::Local(v) => p.local = v,
                _ => {}
            }
        }
        Ok(p)
    }

    /// A new session, logged in, with the private key found again by label
    /// and `CKA_ID`.
    fn reconnect(&self) -> Result<Live> {
        let session = connect(&self.module, &self.config, false)?;
        let private = find_private_key(&session, &self.config, Some(&self.id))?;
        Ok(Live { session, private })
    }
}

impl CaSigner for Pkcs11Key {
    fn family(&self) -> Family {
        match self.algorithm {
            KeyAlgorithm::Rsa(_) => Family::Rsa,
            KeyAlgorithm::EcP256 => Family::P256,
            KeyAlgorithm::Sm2 => Family::Sm2,
        }
    }

    fn public_key_info(&self) -> Result<SubjectPublicKeyInfoOwned> {
        Ok(self.public_key.clone())
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let (mechanism, input) = signing_input(self.algorithm, message)?;
        let raw = {
            let mut live = lock(&self.live);
            match live.session.sign(&mechanism, live.private, &input) {
                Ok(sig) => sig,
                Err(e) if session_lost(&e) => {
                    *live = self.reconnect().map_err(|again| {
                        CaError::Key(format!(
                            "lost the session to token {:?} ({e}) and could not reconnect: {again}",
                            self.config.token_label
                        ))
                    })?;
                    live.session
                        .sign(&mechanism, live.private, &input)
                        .map_err(p11("sign with the token key"))?
                }
                Err(e) => return Err(p11("sign with the token key")(e)),
            }
        };
        finish_signature(self.algorithm, &self.public_key, message, raw).map_err(|_| {
            CaError::Key(format!(
                "token {:?} returned a signature that does not verify with key {:?}; not using it",
                self.config.token_label, self.config.key_label
            ))
        })
    }
}

/// The mechanism and templates that generate a signing key pair inside a
/// token: EC P-256 or RSA (public exponent 65537), both objects labelled
/// `label` with `CKA_ID` `id`; the private key a token object, private,
/// sensitive, not extractable, allowed to sign and nothing else. SM2 is
/// refused (no standard PKCS#11 mechanism).
pub fn key_pair_templates(
    alg: KeyAlgorithm,
    label: &[u8],
    id: &[u8],
) -> Result<(Mechanism<'static>, Vec<Attribute>, Vec<Attribute>)> {
    let (mechanism, specific) = match alg {
        KeyAlgorithm::Sm2 => {
            return Err(CaError::Key(
                "SM2 keys need a GM/T 0016 (SKF) or vendor module: PKCS#11 has no standard \
                 SM2 mechanism and SoftHSM2 implements none"
                    .into(),
            ))
        }
        KeyAlgorithm::EcP256 => (
            Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(oid::SECP256R1.to_der()?)],
        ),
        KeyAlgorithm::Rsa(bits) => (
            Mechanism::RsaPkcsKeyPairGen,
            vec![
                Attribute::ModulusBits(
                    Ulong::try_from(bits as usize).map_err(p11("encode the modulus size"))?,
                ),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            ],
        ),
    };
    let mut public_template = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Label(label.to_vec()),
        Attribute::Id(id.to_vec()),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
    ];
    public_template.extend(specific);
    let private_template = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(label.to_vec()),
        Attribute::Id(id.to_vec()),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
    ];
    Ok((mechanism, public_template, private_template))
}

/// What to hand the token to sign `message`: SHA-256 is computed on the
/// host, then `CKM_ECDSA` over the digest or `CKM_RSA_PKCS` over its
/// `DigestInfo`.
pub fn signing_input(alg: KeyAlgorithm, message: &[u8]) -> Result<(Mechanism<'static>, Vec<u8>)> {
    let digest = Sha256::digest(message);
    match alg {
        KeyAlgorithm::EcP256 => Ok((Mechanism::Ecdsa, digest.to_vec())),
        KeyAlgorithm::Rsa(_) => Ok((
            Mechanism::RsaPkcs,
            [&SHA256_DIGEST_INFO_PREFIX[..], &digest[..]].concat(),
        )),
        KeyAlgorithm::Sm2 => Err(CaError::Key(
            "SM2 signing through PKCS#11 is not supported".into(),
        )),
    }
}

/// Turns what the token returned for [`signing_input`] into the X.509
/// encoding (DER `ECDSA-Sig-Value` from raw `r ‖ s`) and verifies it with
/// `public_key` before anyone uses it.
pub fn finish_signature(
    alg: KeyAlgorithm,
    public_key: &SubjectPublicKeyInfoOwned,
    message: &[u8],
    raw: Vec<u8>,
) -> Result<Vec<u8>> {
    let signature = match alg {
        KeyAlgorithm::EcP256 => raw_ec_signature_to_der(&raw)?,
        _ => raw,
    };
    crate::csr::verify_signature(public_key, message, &signature)?;
    Ok(signature)
}

/// One initialised PKCS#11 module, shared by every key of the process that
/// uses it.
struct Module {
    /// The canonical path (the registry key).
    path: PathBuf,
    /// `None` only while the module is being dropped.
    ctx: Option<Pkcs11>,
    /// Per slot, the SHA-256 of the PIN this process logged in with: PKCS#11
    /// login state is shared by all sessions of an application, so a second
    /// login answers `CKR_USER_ALREADY_LOGGED_IN` without checking the PIN.
    /// This lets a wrong PIN be refused in that case too.
    logins: Mutex<HashMap<u64, [u8; 32]>>,
}

/// Every module loaded by this process (entries die with their last key).
static MODULES: Mutex<Vec<(PathBuf, Weak<Module>)>> = Mutex::new(Vec::new());

impl Module {
    /// The shared context of the module at `path`, initialising it if no
    /// key of the process uses it yet.
    fn get(path: &Path) -> Result<Arc<Module>> {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut modules = lock(&MODULES);
        modules.retain(|(_, m)| m.strong_count() > 0);
        // Upgrading only the matching entry and returning it: an Arc must
        // never be dropped while MODULES is held (its drop takes the lock).
        if let Some(m) = modules
            .iter()
            .find(|(p, _)| *p == canonical)
            .and_then(|(_, m)| m.upgrade())
        {
            return Ok(m);
        }
        let ctx = Pkcs11::new(&canonical).map_err(|e| {
            CaError::Key(format!(
                "cannot load the PKCS#11 module {}: {e}",
                path.display()
            ))
        })?;
        match ctx.initialize(CInitializeArgs::OsThreads) {
            Ok(()) => {}
            Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {
                // Someone else in this process initialised the library
                // directly. Dropping `ctx` would call C_Finalize under them.
                std::mem::forget(ctx);
                return Err(CaError::Key(format!(
                    "the PKCS#11 module {} was already initialised by other code in this process",
                    path.display()
                )));
            }
            Err(e) => {
                return Err(CaError::Key(format!(
                    "cannot initialise the PKCS#11 module {}: {e}",
                    path.display()
                )))
            }
        }
        let module = Arc::new(Module {
            path: canonical.clone(),
            ctx: Some(ctx),
            logins: Mutex::new(HashMap::new()),
        });
        modules.push((canonical, Arc::downgrade(&module)));
        Ok(module)
    }

    fn ctx(&self) -> Result<&Pkcs11> {
        self.ctx
            .as_ref()
            .ok_or_else(|| CaError::Key("the PKCS#11 module is being finalised".into()))
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        // Finalise under the registry lock, so a key opened concurrently
        // initialises the library after this C_Finalize, never before it.
        let _registry = lock(&MODULES);
        drop(self.ctx.take());
    }
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module").field("path", &self.path).finish()
    }
}

/// Finds the token, opens a session and logs the user in.
fn connect(module: &Module, config: &Pkcs11Config, read_write: bool) -> Result<Session> {
    let ctx = module.ctx()?;
    let slot = find_token(ctx, config)?;
    let session = if read_write {
        ctx.open_rw_session(slot)
    } else {
        ctx.open_ro_session(slot)
    }
    .map_err(p11("open a session with the token"))?;
    login(module, slot, &session, config)?;
    Ok(session)
}

fn find_token(ctx: &Pkcs11, config: &Pkcs11Config) -> Result<Slot> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(p11("list the module's slots"))?;
    let mut labels = Vec::new();
    let mut matches = Vec::new();
    for slot in slots {
        let info = ctx
            .get_token_info(slot)
            .map_err(p11("read token information"))?;
        if !info.token_initialized() {
            continue;
        }
        if info.label() == config.token_label {
            matches.push((slot, info));
        } else {
            labels.push(format!("{:?}", info.label()));
        }
    }
    let (slot, info) = match matches.len() {
        1 => matches.remove(0),
        0 => {
            let available = if labels.is_empty() {
                "none (no initialised token: is the module configured? for SoftHSM2, \
                 check SOFTHSM2_CONF)"
                    .to_owned()
            } else {
                labels.join(", ")
            };
            return Err(CaError::Key(format!(
                "no token labelled {:?} in PKCS#11 module {}; available tokens: {available}",
                config.token_label,
                config.module.display()
            )));
        }
        n => {
            return Err(CaError::Key(format!(
                "{n} tokens are labelled {:?} in PKCS#11 module {}: labels must be unique",
                config.token_label,
                config.module.display()
            )))
        }
    };
    if info.user_pin_locked() {
        return Err(CaError::Key(format!(
            "the user PIN of token {:?} is locked (too many wrong PINs); the security officer must unlock it",
            config.token_label
        )));
    }
    if !info.user_pin_initialized() {
        return Err(CaError::Key(format!(
            "token {:?} has no user PIN yet (initialise it with the token's tools)",
            config.token_label
        )));
    }
    Ok(slot)
}

fn login(module: &Module, slot: Slot, session: &Session, config: &Pkcs11Config) -> Result<()> {
    let digest: [u8; 32] = Sha256::digest(config.pin.as_bytes()).into();
    let wrong_pin = || CaError::Key(format!("wrong PIN for token {:?}", config.token_label));
    match session.login(UserType::User, Some(&AuthPin::new(config.pin.clone()))) {
        Ok(()) => {
            lock(&module.logins).insert(slot.id(), digest);
            Ok(())
        }
        Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
            match lock(&module.logins).get(&slot.id()) {
                Some(known) if *known != digest => Err(wrong_pin()),
                // Logged in with this PIN, or by code outside this module
                // (then the PIN cannot be checked without logging everyone
                // out).
                _ => Ok(()),
            }
        }
        Err(P11Error::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => Err(wrong_pin()),
        Err(P11Error::Pkcs11(RvError::PinLocked, _)) => Err(CaError::Key(format!(
            "the user PIN of token {:?} is locked (too many wrong PINs)",
            config.token_label
        ))),
        Err(e) => Err(p11(&format!("log in to token {:?}", config.token_label))(e)),
    }
}

/// The private key labelled `config.key_label` (and with `id`, if given).
fn find_private_key(
    session: &Session,
    config: &Pkcs11Config,
    id: Option<&[u8]>,
) -> Result<ObjectHandle> {
    find_one(session, ObjectClass::PRIVATE_KEY, &config.key_label, id)?.ok_or_else(|| {
        CaError::Key(format!(
            "no private key labelled {:?} on token {:?}",
            config.key_label, config.token_label
        ))
    })
}

fn find_one(
    session: &Session,
    class: ObjectClass,
    label: &str,
    id: Option<&[u8]>,
) -> Result<Option<ObjectHandle>> {
    let mut template = vec![
        Attribute::Class(class),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    if let Some(id) = id {
        template.push(Attribute::Id(id.to_vec()));
    }
    let found = session
        .find_objects(&template)
        .map_err(p11("search the token"))?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        more => Err(CaError::Key(format!(
            "{} {class} objects are labelled {label:?}: key labels must be unique on the token",
            more.len()
        ))),
    }
}

/// The algorithm and SubjectPublicKeyInfo of a public key object (EC P-256
/// or RSA). `what` names the key in error messages ("key \"x\" on token
/// \"y\"").
pub fn read_public_key(
    session: &Session,
    public: ObjectHandle,
    what: &str,
) -> Result<(KeyAlgorithm, SubjectPublicKeyInfoOwned)> {
    let attrs = session
        .get_attributes(
            public,
            &[
                AttributeType::KeyType,
                AttributeType::EcParams,
                AttributeType::EcPoint,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
            ],
        )
        .map_err(p11("read the public key"))?;
    let (mut key_type, mut params, mut point, mut modulus, mut exponent) =
        (None, None, None, None, None);
    for a in attrs {
        match a {
            Attribute::KeyType(v) => key_type = Some(v),
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            Attribute::Modulus(v) => modulus = Some(v),
            Attribute::PublicExponent(v) => exponent = Some(v),
            _ => {}
        }
    }
    let missing = |attr: &str| CaError::Key(format!("the public key of {what} has no {attr}"));
    let (alg, doc) = match key_type {
        Some(t) if t == KeyType::EC => {
            let params = params.ok_or_else(|| missing("CKA_EC_PARAMS"))?;
            if params != oid::SECP256R1.to_der()? {
                let curve = der::asn1::ObjectIdentifier::from_der(&params)
                    .map(|o| o.to_string())
                    .unwrap_or_else(|_| hex::encode(&params));
                let hint = if params == oid::SM2P256V1.to_der()? {
                    " (SM2 keys need a GM/T 0016 (SKF) or vendor module)"
                } else {
                    ""
                };
                return Err(CaError::Key(format!(
                    "{what} is on curve {curve}; only P-256 is supported{hint}"
                )));
            }
            let point = point.ok_or_else(|| missing("CKA_EC_POINT"))?;
            // PKCS#11 says CKA_EC_POINT is the DER OCTET STRING of the
            // point; a few tokens return the bare point.
            let sec1 = if point.len() == 65 && point[0] == 0x04 {
                point
            } else {
                OctetString::from_der(&point)
                    .map_err(|e| CaError::Key(format!("CKA_EC_POINT is not an OCTET STRING: {e}")))?
                    .into_bytes()
            };
            let key = p256::PublicKey::from_sec1_bytes(&sec1)
                .map_err(|e| CaError::Key(format!("CKA_EC_POINT is not a P-256 point: {e}")))?;
            (KeyAlgorithm::EcP256, key.to_public_key_der())
        }
        Some(t) if t == KeyType::RSA => {
            let n = modulus.ok_or_else(|| missing("CKA_MODULUS"))?;
            let e = exponent.ok_or_else(|| missing("CKA_PUBLIC_EXPONENT"))?;
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&n),
                rsa::BigUint::from_bytes_be(&e),
            )
            .map_err(|e| CaError::Key(format!("the token's RSA public key is invalid: {e}")))?;
            let bits = rsa::traits::PublicKeyParts::n(&key).bits() as u32;
            (KeyAlgorithm::Rsa(bits), key.to_public_key_der())
        }
        Some(t) => {
            return Err(CaError::Key(format!(
                "{what} is of type {t}; only EC P-256 and RSA are supported"
            )))
        }
        None => return Err(missing("CKA_KEY_TYPE")),
    };
    let doc = doc.map_err(|e| CaError::Key(e.to_string()))?;
    Ok((alg, SubjectPublicKeyInfoOwned::from_der(doc.as_bytes())?))
}

/// Errors after which a new session may succeed.
fn session_lost(e: &P11Error) -> bool {
    matches!(
        e,
        P11Error::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::DeviceError,
            _
        )
    )
}

fn p11(what: &str) -> impl Fn(P11Error) -> CaError + '_ {
    move |e| CaError::Key(format!("PKCS#11: cannot {what}: {e}"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_info_prefix_matches_the_der_encoding() {
        // DigestInfo ::= SEQUENCE { AlgorithmIdentifier { sha256, NULL }, OCTET STRING (32) }
        let alg = spki::AlgorithmIdentifierOwned {
            oid: oid::SHA256,
            parameters: Some(der::asn1::AnyRef::NULL.into()),
        }
        .to_der()
        .unwrap();
        let digest = OctetString::new(vec![0u8; 32]).unwrap().to_der().unwrap();
        let mut expected = vec![0x30, (alg.len() + digest.len()) as u8];
        expected.extend(alg);
        expected.extend(&digest[..2]);
        assert_eq!(expected, SHA256_DIGEST_INFO_PREFIX);
    }

    #[test]
    fn config_debug_masks_the_pin_and_refuses_unknown_fields() {
        let cfg: Pkcs11Config = serde_json::from_str(
            r#"{"module":"/m.so","token_label":"t","key_label":"k","pin":"123456"}"#,
        )
        .unwrap();
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("123456") && shown.contains("***"),
            "{shown}"
        );
        assert!(serde_json::from_str::<Pkcs11Config>(
            r#"{"module":"/m.so","token_label":"t","key_label":"k","pin":"1","slot":0}"#
        )
        .is_err());
        let key_ref = cfg.key_ref();
        let json = serde_json::to_string(&key_ref).unwrap();
        assert!(!json.contains("123456"), "{json}");
        let back: Pkcs11KeyRef = serde_json::from_str(&json).unwrap();
        assert_eq!(back, key_ref);
        assert_eq!(back.with_pin("9").pin, "9");
        assert!(serde_json::from_str::<Pkcs11KeyRef>(
            r#"{"module":"/m.so","token_label":"t","key_label":"k","pin":"1"}"#
        )
        .is_err());
    }

    #[test]
    fn pin_file_loses_one_trailing_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let key_ref = Pkcs11KeyRef {
            module: "/m.so".into(),
            token_label: "t".into(),
            key_label: "k".into(),
        };
        for (content, pin) in [("1234\n", "1234"), ("1234\r\n", "1234"), ("12 34", "12 34")] {
            let path = dir.path().join("pin");
            std::fs::write(&path, content).unwrap();
            assert_eq!(key_ref.clone().with_pin_from_file(&path).unwrap().pin, pin);
        }
        assert!(key_ref
            .with_pin_from_file(&dir.path().join("missing"))
            .is_err());
    }
}
