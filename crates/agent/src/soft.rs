//! Software tokens ("软证书"): a USB key's behaviour, kept in encrypted files.
//!
//! Used in demo mode and by users who hold a "soft certificate". Each token
//! is one JSON file in a directory, `<serial>.token.json`, and behaves like
//! a hardware key: key pairs are generated inside the token, private keys
//! never leave it, every private-key operation takes the user PIN, and wrong
//! PINs count towards a lock that only the SO PIN lifts.
//!
//! # Keys and PINs
//!
//! Each token has a random 32-byte master key. It is stored twice, wrapped
//! with AES-256-GCM (NIST SP 800-38D) under a key derived from the user PIN
//! and under one derived from the SO PIN, each with its own random salt. The
//! derivation is scrypt (RFC 7914, memory-hard: N = 2^15, r = 8, p = 1 for
//! new wraps); its parameters are recorded next to each wrap and reading
//! always uses the recorded ones. A wrong PIN shows up as a failed GCM tag.
//!
//! Each private key is its PKCS#8 DER (RFC 5208) encrypted with AES-256-GCM
//! under the master key (random 96-bit nonce; the associated data binds the
//! ciphertext to the token serial and key id). Public objects (SPKI, label,
//! algorithm, certificate, chain) are stored in the clear: listing them
//! needs no PIN, as on a hardware key.
//!
//! # Blank tokens
//!
//! A blank token is a file with a serial and a placeholder label
//! ([`BLANK_LABEL`]) but no PINs, no master key and no keys (`user_pin` and
//! `so_pin` are `null`): the software twin of a new UKey, for producing a
//! certificate at the counter (制证) in demo mode.
//! [`TokenBackend::init_token`] gives it its label and PINs — the same
//! master-key scheme as [`SoftTokens::create_token`], through the same
//! code — and its serial stays. Every other operation on it answers
//! [`TokenError::NotInitialized`]. With [`SoftTokens::keep_blank_token`]
//! on, listing the tokens first makes sure one blank token exists, so a
//! demo operator always has a key to produce onto.
//!
//! # PIN lock
//!
//! The file counts wrong user and SO PINs. A check first refuses when the
//! count is at [`MAX_PIN_TRIES`], then increments and *persists* the count,
//! and only then runs the KDF, so killing the agent mid-check gives no free
//! try; a correct PIN resets the count. The wrong attempt that reaches the
//! limit already returns [`TokenError::PinLocked`] (or
//! [`TokenError::SoPinLocked`]), not `WrongPin { retries_left: Some(0) }`.
//!
//! The counter stops guessing through the agent (that is, by web pages).
//! Someone who can copy the file can guess offline, which scrypt makes
//! slow but not impossible: a soft token is weaker than a hardware key, and
//! the UI should say so.
//!
//! # File format (version 1)
//!
//! ```json
//! {
//!   "format": "certhall-soft-token",
//!   "version": 1,
//!   "serial": "9f86d081884c7d65",
//!   "label": "张三的软证书",
//!   "user_pin": { "kdf": { "name": "scrypt", "log_n": 15, "r": 8, "p": 1 },
//!                 "salt": "<base64, 16 bytes>", "nonce": "<base64, 12 bytes>",
//!                 "wrapped_key": "<base64, 32-byte master key + 16-byte tag>" },
//!   "so_pin": { …the same… },           // both null on a blank token
//!   "user_failures": 0,
//!   "so_failures": 0,
//!   "keys": [ { "id": "<hex, 16 bytes>", "label": "签名密钥",
//!               "algorithm": "sm2" | "ec-p256" | "rsa-2048",
//!               "public_key": "<base64 SPKI DER>",
//!               "nonce": "<base64, 12 bytes>",
//!               "encrypted_private_key": "<base64, PKCS#8 DER + tag>",
//!               "certificate": "<base64 DER>" | null,
//!               "chain": ["<base64 DER>", …] } ]
//! }
//! ```
//!
//! Every write goes to a temporary file in the same directory, is synced,
//! and is renamed over the old file. All operations of one [`SoftTokens`]
//! are serialized by a mutex; two agent processes must not share a
//! directory. A file that cannot be read is a [`TokenError::Module`] for
//! that token only: [`TokenBackend::tokens`] skips it with a warning.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64_ENGINE;
use base64::Engine;
use certhall_ca::{CaSigner, KeyAlgorithm, SoftwareKey};
use der::Encode;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::token::{
    check_token_label, KeyEntry, Pin, Result, TokenBackend, TokenError, TokenInfo, MAX_PIN_TRIES,
};

/// The `format` field of every token file.
const FORMAT: &str = "certhall-soft-token";
/// The file format version this code writes and reads.
const VERSION: u32 = 1;
/// Token files are `<serial>` followed by this.
const SUFFIX: &str = ".token.json";
/// Key pairs one token holds at most.
pub const MAX_KEYS: usize = 16;
/// Longest token or key label, in characters.
const MAX_LABEL: usize = 64;
/// Largest certificate (each of the certificate and its chain) accepted.
const MAX_CERT_LEN: usize = 16 * 1024;
/// Most chain certificates stored with a key.
const MAX_CHAIN: usize = 8;
/// Largest token file read (16 full keys fit well within it).
const MAX_FILE_LEN: u64 = 8 * 1024 * 1024;
/// Manufacturer shown for software tokens.
const MANUFACTURER: &str = "CertHall";
/// Model shown for software tokens.
const MODEL: &str = "软证书 (Soft Token)";
/// Label of a blank token until it is initialised.
pub const BLANK_LABEL: &str = "空白UKey";

const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const MASTER_LEN: usize = 32;
const TAG_LEN: usize = 16;
const KEY_ID_LEN: usize = 16;

type MasterKey = Zeroizing<[u8; MASTER_LEN]>;

/// The software-token backend: a directory of token files.
#[derive(Debug)]
pub struct SoftTokens {
    dir: PathBuf,
    /// The KDF used for new PIN wraps (reading uses each wrap's own).
    kdf: Kdf,
    /// Listing makes sure one blank token exists (demo mode).
    keep_blank: bool,
    /// Serializes every operation: read, PIN count, write.
    lock: Mutex<()>,
}

impl SoftTokens {
    /// The tokens in `dir`, creating the directory (mode 0700 on Unix) if
    /// it does not exist.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(|e| {
            TokenError::Module(format!(
                "cannot create the soft token directory {}: {e}",
                dir.display()
            ))
        })?;
        Ok(Self {
            dir,
            kdf: Kdf::DEFAULT,
            keep_blank: false,
            lock: Mutex::new(()),
        })
    }

    /// Uses a cheap KDF (scrypt N = 2^10) for new PIN wraps, so tests run
    /// fast. Never for real tokens.
    #[doc(hidden)]
    pub fn with_test_kdf(mut self) -> Self {
        self.kdf = Kdf::TEST;
        self
    }

    /// Keeps one blank token in the directory: when on, every listing
    /// ([`TokenBackend::tokens`]) first creates one if none is blank
    /// (CertHall's demo mode, where the counter produces certificates onto
    /// software tokens). Off by default.
    pub fn keep_blank_token(mut self, on: bool) -> Self {
        self.keep_blank = on;
        self
    }

    /// The directory holding the token files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a new empty token with a random serial (16 hex digits).
    /// Both PINs must meet [`Pin::check_new`]; the label is 1–64
    /// characters.
    pub fn create_token(&self, label: &str, user_pin: &Pin, so_pin: &Pin) -> Result<TokenInfo> {
        check_label(label, "软证书名称")?;
        user_pin.check_new()?;
        so_pin.check_new()?;
        let _guard = self.guard();
        let mut file = TokenFile::blank(self.new_serial()?);
        self.initialise(&mut file, label, user_pin, so_pin)?;
        self.save(&file)?;
        Ok(file.info())
    }

    /// Creates a blank token (no PINs, no keys, label [`BLANK_LABEL`]) with
    /// a random serial, to be initialised with
    /// [`TokenBackend::init_token`].
    pub fn create_blank_token(&self) -> Result<TokenInfo> {
        let _guard = self.guard();
        self.create_blank_locked()
    }

    /// A blank token: the first one listed, or a new one if there is none.
    pub fn ensure_blank_token(&self) -> Result<TokenInfo> {
        let _guard = self.guard();
        if let Some(blank) = self.list_locked()?.into_iter().find(|t| !t.initialized) {
            return Ok(blank);
        }
        self.create_blank_locked()
    }

    /// [`Self::create_blank_token`], the lock held.
    fn create_blank_locked(&self) -> Result<TokenInfo> {
        let file = TokenFile::blank(self.new_serial()?);
        self.save(&file)?;
        tracing::info!(serial = %file.serial, "created a blank soft token");
        Ok(file.info())
    }

    /// A random serial (16 hex digits) no token file has.
    fn new_serial(&self) -> Result<String> {
        loop {
            let mut raw = [0u8; 8];
            OsRng.fill_bytes(&mut raw);
            let serial = hex::encode(raw);
            if !self.path(&serial)?.exists() {
                return Ok(serial);
            }
        }
    }

    /// Gives a token its label and PINs: a new random master key wrapped
    /// under each PIN, fresh counts. The one place a token gets its master
    /// key and PINs, whether created initialised or initialised later.
    fn initialise(
        &self,
        file: &mut TokenFile,
        label: &str,
        user_pin: &Pin,
        so_pin: &Pin,
    ) -> Result<()> {
        let mut master: MasterKey = Zeroizing::new([0u8; MASTER_LEN]);
        OsRng.fill_bytes(master.as_mut());
        let serial = file.serial.clone();
        file.user_pin = Some(wrap_master(
            &master,
            &serial,
            Role::User,
            user_pin,
            self.kdf,
        )?);
        file.so_pin = Some(wrap_master(&master, &serial, Role::So, so_pin, self.kdf)?);
        file.label = label.into();
        file.user_failures = 0;
        file.so_failures = 0;
        Ok(())
    }

    fn guard(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data, so a panic elsewhere cannot leave it
        // inconsistent: a poisoned lock is still good.
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The path of a token's file; a string that is not a serial we would
    /// have made names no token (and cannot escape the directory).
    fn path(&self, serial: &str) -> Result<PathBuf> {
        if !is_serial(serial) {
            return Err(TokenError::TokenAbsent);
        }
        Ok(self.dir.join(format!("{serial}{SUFFIX}")))
    }

    /// Reads and checks a token's file.
    fn load(&self, serial: &str) -> Result<TokenFile> {
        let path = self.path(serial)?;
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(TokenError::TokenAbsent),
            Err(e) => {
                return Err(TokenError::Module(format!(
                    "cannot read soft token file {}: {e}",
                    path.display()
                )))
            }
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                TokenError::Module(format!(
                    "cannot read soft token file {}: {e}",
                    path.display()
                ))
            })?;
        if bytes.len() as u64 > MAX_FILE_LEN {
            return Err(TokenError::Module(format!(
                "soft token file {} is larger than {MAX_FILE_LEN} bytes",
                path.display()
            )));
        }
        TokenFile::parse(&bytes, serial)
            .map_err(|msg| TokenError::Module(format!("soft token file {}: {msg}", path.display())))
    }

    /// Writes a token's file atomically.
    fn save(&self, file: &TokenFile) -> Result<()> {
        let path = self.path(&file.serial)?;
        let bytes = serde_json::to_vec_pretty(file)
            .map_err(|e| TokenError::Module(format!("cannot encode soft token file: {e}")))?;
        write_atomic(&self.dir, &path, &bytes).map_err(|e| {
            TokenError::Module(format!(
                "cannot write soft token file {}: {e}",
                path.display()
            ))
        })
    }

    /// The tokens in the directory, the lock held.
    fn list_locked(&self) -> Result<Vec<TokenInfo>> {
        let entries = fs::read_dir(&self.dir).map_err(|e| {
            TokenError::Module(format!(
                "cannot list soft token directory {}: {e}",
                self.dir.display()
            ))
        })?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot list a soft token file");
                    continue;
                }
            };
            let name = entry.file_name();
            let Some(serial) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
                continue;
            };
            if !is_serial(serial) {
                continue;
            }
            match self.load(serial) {
                Ok(file) => out.push(file.info()),
                // Deleted since the listing.
                Err(TokenError::TokenAbsent) => {}
                Err(e) => {
                    tracing::warn!(serial, error = %e, "skipping an unreadable soft token");
                }
            }
        }
        out.sort_by(|a, b| a.serial.cmp(&b.serial));
        Ok(out)
    }

    /// Checks a PIN, keeping the hardware-like count (see the module doc),
    /// and returns the master key.
    fn login(&self, file: &mut TokenFile, role: Role, pin: &Pin) -> Result<MasterKey> {
        let failures = *role.failures(file);
        if failures >= MAX_PIN_TRIES {
            return Err(role.locked());
        }
        // Counted before the check, so an interrupted check still counts.
        let failures = failures + 1;
        *role.failures(file) = failures;
        self.save(file)?;
        let wrap = role.wrap(file).ok_or(TokenError::NotInitialized)?;
        match unwrap_master(wrap, &file.serial, role, pin)? {
            Some(master) => {
                *role.failures(file) = 0;
                self.save(file)?;
                Ok(master)
            }
            None if failures >= MAX_PIN_TRIES => Err(role.locked()),
            None => Err(role.wrong(MAX_PIN_TRIES - failures)),
        }
    }
}

impl TokenBackend for SoftTokens {
    fn kind(&self) -> &'static str {
        "soft"
    }

    fn tokens(&self) -> Result<Vec<TokenInfo>> {
        let _guard = self.guard();
        let mut out = self.list_locked()?;
        if self.keep_blank && out.iter().all(|t| t.initialized) {
            out.push(self.create_blank_locked()?);
            out.sort_by(|a, b| a.serial.cmp(&b.serial));
        }
        Ok(out)
    }

    fn token(&self, serial: &str) -> Result<TokenInfo> {
        let _guard = self.guard();
        Ok(self.load(serial)?.info())
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
        let _guard = self.guard();
        let mut file = self.load(serial)?;
        if file.initialized() {
            return Err(TokenError::AlreadyInitialized);
        }
        self.initialise(&mut file, label, user_pin, so_pin)?;
        self.save(&file)?;
        Ok(file.info())
    }

    fn keys(&self, serial: &str) -> Result<Vec<KeyEntry>> {
        let _guard = self.guard();
        let file = self.load(serial)?;
        Ok(file.keys.iter().map(StoredKey::entry).collect())
    }

    fn verify_pin(&self, serial: &str, pin: &Pin) -> Result<()> {
        let _guard = self.guard();
        let mut file = self.load(serial)?;
        file.ready()?;
        self.login(&mut file, Role::User, pin).map(drop)
    }

    fn change_pin(&self, serial: &str, old: &Pin, new: &Pin) -> Result<()> {
        let _guard = self.guard();
        let mut file = self.load(serial)?;
        file.ready()?;
        new.check_new()?;
        let master = self.login(&mut file, Role::User, old)?;
        file.user_pin = Some(wrap_master(
            &master,
            &file.serial,
            Role::User,
            new,
            self.kdf,
        )?);
        self.save(&file)
    }

    fn unblock_pin(&self, serial: &str, so_pin: &Pin, new_pin: &Pin) -> Result<()> {
        let _guard = self.guard();
        let mut file = self.load(serial)?;
        file.ready()?;
        new_pin.check_new()?;
        let master = self.login(&mut file, Role::So, so_pin)?;
        file.user_pin = Some(wrap_master(
            &master,
            &file.serial,
            Role::User,
            new_pin,
            self.kdf,
        )?);
        file.user_failures = 0;
        self.save(&file)
    }

    fn generate_key(
        &self,
        serial: &str,
        pin: &Pin,
        algorithm: KeyAlgorithm,
        label: &str,
    ) -> Result<KeyEntry> {
        let _guard = self.guard();
        let mut file = self.load(serial)?;
        file.ready()?;
        alg_name(algorithm)?;
        check_label(label, "密钥标签")?;
        if file.keys.len() >= MAX_KEYS {
            return Err(TokenError::TokenFull);
        }
        let master = self.login(&mut file, Role::User, pin)?;
        let key = SoftwareKey::generate(algorithm).map_err(key_error)?;
        let public_key = key
            .public_key_info()
            .map_err(key_error)?
            .to_der()
            .map_err(|e| TokenError::Module(format!("cannot encode a public key: {e}")))?;
        let id = loop {
            let mut id = vec![0u8; KEY_ID_LEN];
            OsRng.fill_bytes(&mut id);
            if file.key(&id).is_err() {
                break id;
            }
        };
        let pkcs8 = key.to_pkcs8_der().map_err(key_error)?;
        let (nonce, ciphertext) = seal(&master, &pkcs8, &key_aad(&file.serial, &id))?;
        let stored = StoredKey {
            id: Hex(id),
            label: label.into(),
            algorithm,
            public_key: B64(public_key),
            nonce: B64(nonce.to_vec()),
            encrypted_private_key: B64(ciphertext),
            certificate: None,
            chain: Vec::new(),
        };
        let entry = stored.entry();
        file.keys.push(stored);
        self.save(&file)?;
        Ok(entry)
    }

    fn sign(&self, serial: &str, pin: &Pin, key_id: &[u8], message: &[u8]) -> Result<Vec<u8>> {
        let _guard = self.guard();
        let mut file = self.load(serial)?;
        file.ready()?;
        file.key(key_id)?;
        let master = self.login(&mut file, Role::User, pin)?;
        let key = open_key(&master, &file.serial, file.key(key_id)?)?;
        key.sign(message).map_err(key_error)
    }

    fn store_certificate(
        &self,
        serial: &str,
        pin: &Pin,
        key_id: &[u8],
        certificate: &[u8],
        chain: &[Vec<u8>],
    ) -> Result<()> {
        let _guard = self.guard();
        let mut file = self.load(serial)?;
        file.ready()?;
        file.key(key_id)?;
        if chain.len() > MAX_CHAIN {
            return Err(TokenError::BadRequest(format!(
                "证书链最多 {MAX_CHAIN} 张证书"
            )));
        }
        for cert in std::iter::once(certificate).chain(chain.iter().map(Vec::as_slice)) {
            if cert.is_empty() || cert.len() > MAX_CERT_LEN {
                return Err(TokenError::BadRequest(format!(
                    "证书应为 1–{MAX_CERT_LEN} 字节的 DER 数据"
                )));
            }
        }
        self.login(&mut file, Role::User, pin)?;
        let stored = file.key_mut(key_id)?;
        stored.certificate = Some(B64(certificate.to_vec()));
        stored.chain = chain.iter().cloned().map(B64).collect();
        self.save(&file)
    }

    fn delete_key(&self, serial: &str, pin: &Pin, key_id: &[u8]) -> Result<()> {
        let _guard = self.guard();
        let mut file = self.load(serial)?;
        file.ready()?;
        file.key(key_id)?;
        self.login(&mut file, Role::User, pin)?;
        file.keys.retain(|k| k.id.0 != key_id);
        self.save(&file)
    }
}

/// Whose PIN: the user's or the security officer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    So,
}

impl Role {
    fn failures(self, file: &mut TokenFile) -> &mut u32 {
        match self {
            Self::User => &mut file.user_failures,
            Self::So => &mut file.so_failures,
        }
    }

    /// The master key wrapped under this PIN (`None` on a blank token).
    fn wrap(self, file: &TokenFile) -> Option<&WrappedKey> {
        match self {
            Self::User => file.user_pin.as_ref(),
            Self::So => file.so_pin.as_ref(),
        }
    }

    fn locked(self) -> TokenError {
        match self {
            Self::User => TokenError::PinLocked,
            Self::So => TokenError::SoPinLocked,
        }
    }

    fn wrong(self, retries_left: u32) -> TokenError {
        let retries_left = Some(retries_left);
        match self {
            Self::User => TokenError::WrongPin { retries_left },
            Self::So => TokenError::WrongSoPin { retries_left },
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::So => "so",
        }
    }
}

/// The key derivation for PIN wraps, as recorded in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase", deny_unknown_fields)]
enum Kdf {
    /// scrypt (RFC 7914) with a 32-byte output.
    Scrypt { log_n: u8, r: u32, p: u32 },
}

impl Kdf {
    /// For real tokens: N = 2^15 (32 MiB), the scrypt crate's recommendation.
    const DEFAULT: Self = Self::Scrypt {
        log_n: 15,
        r: 8,
        p: 1,
    };
    /// For unit tests only.
    const TEST: Self = Self::Scrypt {
        log_n: 10,
        r: 8,
        p: 1,
    };

    /// The parameters, if within what we are willing to run: a file must
    /// not make the agent spend gigabytes.
    fn params(self) -> Result<scrypt::Params, String> {
        let Self::Scrypt { log_n, r, p } = self;
        if !(10..=20).contains(&log_n) || !(1..=32).contains(&r) || !(1..=16).contains(&p) {
            return Err(format!(
                "scrypt parameters out of range (log_n {log_n}, r {r}, p {p})"
            ));
        }
        scrypt::Params::new(log_n, r, p, MASTER_LEN)
            .map_err(|e| format!("bad scrypt parameters (log_n {log_n}, r {r}, p {p}): {e}"))
    }

    fn derive(self, pin: &Pin, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let params = self.params().map_err(TokenError::Module)?;
        let mut out = Zeroizing::new([0u8; 32]);
        scrypt::scrypt(pin.expose().as_bytes(), salt, &params, out.as_mut())
            .map_err(|e| TokenError::Module(format!("scrypt failed: {e}")))?;
        Ok(out)
    }
}

/// The master key wrapped under a PIN.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrappedKey {
    kdf: Kdf,
    salt: B64,
    nonce: B64,
    wrapped_key: B64,
}

/// One key pair and its certificates.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    id: Hex,
    label: String,
    #[serde(with = "algorithm")]
    algorithm: KeyAlgorithm,
    public_key: B64,
    nonce: B64,
    encrypted_private_key: B64,
    certificate: Option<B64>,
    chain: Vec<B64>,
}

impl StoredKey {
    fn entry(&self) -> KeyEntry {
        KeyEntry {
            key_id: self.id.0.clone(),
            label: self.label.clone(),
            algorithm: self.algorithm,
            public_key: self.public_key.0.clone(),
            certificate: self.certificate.as_ref().map(|c| c.0.clone()),
            chain: self.chain.iter().map(|c| c.0.clone()).collect(),
        }
    }
}

/// A token file (see the module doc).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    format: String,
    version: u32,
    serial: String,
    label: String,
    /// `None` (with `so_pin`) on a blank token.
    user_pin: Option<WrappedKey>,
    so_pin: Option<WrappedKey>,
    user_failures: u32,
    so_failures: u32,
    keys: Vec<StoredKey>,
}

/// The fields read before the rest, to tell "not ours" and "too new" from
/// "corrupt".
#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    version: Option<u32>,
}

impl TokenFile {
    /// Parses and checks a file expected to hold token `serial`; the error
    /// says what is wrong, in English, for the log.
    fn parse(bytes: &[u8], serial: &str) -> Result<Self, String> {
        let header: Header =
            serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
        if header.format.as_deref() != Some(FORMAT) {
            return Err(format!("not a {FORMAT} file"));
        }
        match header.version {
            Some(VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "format version {v}, but this agent reads version {VERSION} only"
                ))
            }
            None => return Err("no format version".into()),
        }
        let file: Self =
            serde_json::from_slice(bytes).map_err(|e| format!("malformed token: {e}"))?;
        file.check(serial)?;
        Ok(file)
    }

    /// The invariants the code relies on (lengths, ranges, uniqueness).
    fn check(&self, serial: &str) -> Result<(), String> {
        if self.serial != serial {
            return Err(format!(
                "holds token {:?}, not the one its name says",
                self.serial
            ));
        }
        if self.label.chars().count() > MAX_LABEL {
            return Err("label too long".into());
        }
        if self.user_pin.is_some() != self.so_pin.is_some() {
            return Err("one PIN wrap without the other".into());
        }
        if !self.initialized()
            && (!self.keys.is_empty() || self.user_failures != 0 || self.so_failures != 0)
        {
            return Err("a blank token with keys or PIN counts".into());
        }
        for (role, wrap) in [("user", &self.user_pin), ("SO", &self.so_pin)] {
            let Some(wrap) = wrap else { continue };
            wrap.kdf.params()?;
            if !(SALT_LEN..=64).contains(&wrap.salt.0.len())
                || wrap.nonce.0.len() != NONCE_LEN
                || wrap.wrapped_key.0.len() != MASTER_LEN + TAG_LEN
            {
                return Err(format!("malformed {role} PIN wrap"));
            }
        }
        if self.keys.len() > MAX_KEYS {
            return Err(format!("more than {MAX_KEYS} keys"));
        }
        for (i, key) in self.keys.iter().enumerate() {
            if key.id.0.is_empty()
                || key.id.0.len() > 64
                || key.nonce.0.len() != NONCE_LEN
                || key.encrypted_private_key.0.len() <= TAG_LEN
                || key.public_key.0.is_empty()
            {
                return Err(format!("malformed key {}", hex::encode(&key.id.0)));
            }
            if self.keys[..i].iter().any(|k| k.id == key.id) {
                return Err(format!("duplicate key id {}", hex::encode(&key.id.0)));
            }
        }
        Ok(())
    }

    /// A blank token (no PINs, no keys) with this serial.
    fn blank(serial: String) -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            serial,
            label: BLANK_LABEL.into(),
            user_pin: None,
            so_pin: None,
            user_failures: 0,
            so_failures: 0,
            keys: Vec::new(),
        }
    }

    /// The token has its PINs (the file check makes it both or neither).
    fn initialized(&self) -> bool {
        self.user_pin.is_some() && self.so_pin.is_some()
    }

    /// Refuses a blank token.
    fn ready(&self) -> Result<()> {
        if self.initialized() {
            Ok(())
        } else {
            Err(TokenError::NotInitialized)
        }
    }

    fn info(&self) -> TokenInfo {
        let initialized = self.initialized();
        TokenInfo {
            serial: self.serial.clone(),
            initialized,
            label: self.label.clone(),
            manufacturer: MANUFACTURER.into(),
            model: MODEL.into(),
            pin_retries_left: initialized.then(|| MAX_PIN_TRIES.saturating_sub(self.user_failures)),
            pin_locked: self.user_failures >= MAX_PIN_TRIES,
        }
    }

    fn key(&self, id: &[u8]) -> Result<&StoredKey> {
        self.keys
            .iter()
            .find(|k| k.id.0 == id)
            .ok_or(TokenError::NoSuchKey)
    }

    fn key_mut(&mut self, id: &[u8]) -> Result<&mut StoredKey> {
        self.keys
            .iter_mut()
            .find(|k| k.id.0 == id)
            .ok_or(TokenError::NoSuchKey)
    }
}

/// Associated data of a master-key wrap: the token and whose PIN.
fn wrap_aad(serial: &str, role: Role) -> Vec<u8> {
    format!("{FORMAT}/v{VERSION}/master\0{serial}\0{}", role.tag()).into_bytes()
}

/// Associated data of an encrypted private key: the token and the key id.
fn key_aad(serial: &str, id: &[u8]) -> Vec<u8> {
    let mut aad = format!("{FORMAT}/v{VERSION}/key\0{serial}\0").into_bytes();
    aad.extend_from_slice(id);
    aad
}

fn wrap_master(
    master: &MasterKey,
    serial: &str,
    role: Role,
    pin: &Pin,
    kdf: Kdf,
) -> Result<WrappedKey> {
    let mut salt = [0u8; SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    let kek = kdf.derive(pin, &salt)?;
    let (nonce, wrapped) = seal(&kek, master.as_ref(), &wrap_aad(serial, role))?;
    Ok(WrappedKey {
        kdf,
        salt: B64(salt.to_vec()),
        nonce: B64(nonce.to_vec()),
        wrapped_key: B64(wrapped),
    })
}

/// The master key, or `None` when the PIN is wrong (the tag fails).
fn unwrap_master(
    wrap: &WrappedKey,
    serial: &str,
    role: Role,
    pin: &Pin,
) -> Result<Option<MasterKey>> {
    let kek = wrap.kdf.derive(pin, &wrap.salt.0)?;
    let Some(clear) = open(
        &kek,
        &wrap.nonce.0,
        &wrap.wrapped_key.0,
        &wrap_aad(serial, role),
    )?
    else {
        return Ok(None);
    };
    let mut master: MasterKey = Zeroizing::new([0u8; MASTER_LEN]);
    if clear.len() != MASTER_LEN {
        return Err(TokenError::Module(
            "wrapped master key of wrong length".into(),
        ));
    }
    master.copy_from_slice(&clear);
    Ok(Some(master))
}

/// Decrypts a stored private key.
fn open_key(master: &MasterKey, serial: &str, key: &StoredKey) -> Result<SoftwareKey> {
    let pkcs8 = open(
        master,
        &key.nonce.0,
        &key.encrypted_private_key.0,
        &key_aad(serial, &key.id.0),
    )?
    .ok_or_else(|| {
        // The master key is right (the PIN unwrapped it), so the file was
        // altered or damaged.
        TokenError::Module(format!(
            "private key {} does not decrypt: the token file is damaged",
            hex::encode(&key.id.0)
        ))
    })?;
    SoftwareKey::from_pkcs8_der(&pkcs8).map_err(key_error)
}

/// AES-256-GCM encryption under a fresh random nonce.
fn seal(key: &[u8; 32], clear: &[u8], aad: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
    let cipher =
        Aes256Gcm::new_from_slice(key).map_err(|e| TokenError::Module(format!("AES key: {e}")))?;
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: clear, aad })
        .map_err(|_| TokenError::Module("AES-GCM encryption failed".into()))?;
    Ok((nonce, sealed))
}

/// AES-256-GCM decryption; `None` when the tag does not verify.
fn open(
    key: &[u8; 32],
    nonce: &[u8],
    sealed: &[u8],
    aad: &[u8],
) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| TokenError::Module("AES-GCM nonce of wrong length".into()))?;
    let cipher =
        Aes256Gcm::new_from_slice(key).map_err(|e| TokenError::Module(format!("AES key: {e}")))?;
    Ok(cipher
        .decrypt(Nonce::from_slice(&nonce), Payload { msg: sealed, aad })
        .ok()
        .map(Zeroizing::new))
}

fn key_error(e: certhall_ca::CaError) -> TokenError {
    TokenError::Module(format!("soft token key operation failed: {e}"))
}

/// The algorithms a soft token offers, by their name in the file.
fn alg_name(alg: KeyAlgorithm) -> Result<&'static str> {
    match alg {
        KeyAlgorithm::Sm2 => Ok("sm2"),
        KeyAlgorithm::EcP256 => Ok("ec-p256"),
        KeyAlgorithm::Rsa(2048) => Ok("rsa-2048"),
        KeyAlgorithm::Rsa(_) => Err(TokenError::Unsupported(
            "软证书不支持该密钥算法（可选 SM2、EC P-256、RSA 2048）".into(),
        )),
    }
}

fn alg_from_name(name: &str) -> Option<KeyAlgorithm> {
    [
        KeyAlgorithm::Sm2,
        KeyAlgorithm::EcP256,
        KeyAlgorithm::Rsa(2048),
    ]
    .into_iter()
    .find(|a| alg_name(*a).ok() == Some(name))
}

/// Serde for [`StoredKey::algorithm`]: the file's own names, not
/// [`KeyAlgorithm`]'s serde form, so the format does not move with it.
mod algorithm {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use certhall_ca::KeyAlgorithm;

    pub(super) fn serialize<S: Serializer>(alg: &KeyAlgorithm, s: S) -> Result<S::Ok, S::Error> {
        let name = super::alg_name(*alg).map_err(serde::ser::Error::custom)?;
        s.serialize_str(name)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<KeyAlgorithm, D::Error> {
        let name = String::deserialize(d)?;
        super::alg_from_name(&name)
            .ok_or_else(|| D::Error::custom(format!("unknown key algorithm {name:?}")))
    }
}

fn check_label(label: &str, what: &str) -> Result<()> {
    let len = label.chars().count();
    if !(1..=MAX_LABEL).contains(&len) || label.chars().any(char::is_control) {
        return Err(TokenError::BadRequest(format!(
            "{what}应为 1–{MAX_LABEL} 个字符，且不含控制字符"
        )));
    }
    Ok(())
}

/// A serial this backend makes: 16 lowercase hex digits.
fn is_serial(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Writes `path` so that a crash leaves either the old or the new file:
/// temporary file in the same directory, synced, renamed over, directory
/// synced.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::other("bad file name"))?;
    let mut suffix = [0u8; 8];
    OsRng.fill_bytes(&mut suffix);
    let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(suffix)));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Bytes stored as standard base64 in the file.
#[derive(Clone, PartialEq, Eq)]
struct B64(Vec<u8>);

impl Serialize for B64 {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&B64_ENGINE.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        B64_ENGINE
            .decode(s)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

/// Bytes stored as lowercase hex (key ids, as the API shows them).
#[derive(Clone, PartialEq, Eq)]
struct Hex(Vec<u8>);

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map(Self).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use der::Decode;
    use spki::SubjectPublicKeyInfoOwned;

    const USER: &str = "123456";
    const SO: &str = "87654321";

    fn setup() -> (tempfile::TempDir, SoftTokens, String) {
        let dir = tempfile::tempdir().unwrap();
        let tokens = SoftTokens::open(dir.path().join("tokens"))
            .unwrap()
            .with_test_kdf();
        let info = tokens
            .create_token("测试软证书", &Pin::new(USER), &Pin::new(SO))
            .unwrap();
        (dir, tokens, info.serial)
    }

    fn user() -> Pin {
        Pin::new(USER)
    }

    fn wrong() -> Pin {
        Pin::new("000000")
    }

    fn assert_signs(tokens: &SoftTokens, serial: &str, pin: &Pin, key: &KeyEntry) {
        let msg = b"CertHall soft token test message";
        let sig = tokens.sign(serial, pin, &key.key_id, msg).unwrap();
        let spki = SubjectPublicKeyInfoOwned::from_der(&key.public_key).unwrap();
        certhall_ca::csr::verify_signature(&spki, msg, &sig).unwrap();
        assert!(certhall_ca::csr::verify_signature(&spki, b"another message", &sig).is_err());
    }

    fn info(tokens: &SoftTokens, serial: &str) -> TokenInfo {
        tokens
            .tokens()
            .unwrap()
            .into_iter()
            .find(|t| t.serial == serial)
            .unwrap()
    }

    #[test]
    fn create_and_list() {
        let (dir, tokens, serial) = setup();
        assert_eq!(tokens.kind(), "soft");
        assert!(is_serial(&serial));
        let list = tokens.tokens().unwrap();
        assert_eq!(
            list,
            vec![TokenInfo {
                serial: serial.clone(),
                initialized: true,
                label: "测试软证书".into(),
                manufacturer: "CertHall".into(),
                model: "软证书 (Soft Token)".into(),
                pin_retries_left: Some(MAX_PIN_TRIES),
                pin_locked: false,
            }]
        );
        assert!(tokens.keys(&serial).unwrap().is_empty());
        assert!(dir
            .path()
            .join("tokens")
            .join(format!("{serial}.token.json"))
            .is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(tokens.dir()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
            let path = tokens.path(&serial).unwrap();
            let mode = fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The recorded KDF is the one used; no temporary files are left.
        let file = tokens.load(&serial).unwrap();
        assert_eq!(file.user_pin.as_ref().unwrap().kdf, Kdf::TEST);
        assert_eq!(fs::read_dir(tokens.dir()).unwrap().count(), 1);
    }

    #[test]
    fn real_kdf_parameters_are_accepted() {
        let params = Kdf::DEFAULT.params().unwrap();
        assert_eq!((params.log_n(), params.r(), params.p()), (15, 8, 1));
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(SoftTokens::open(dir.path()).unwrap().kdf, Kdf::DEFAULT);
    }

    #[test]
    fn create_checks_its_input() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = SoftTokens::open(dir.path()).unwrap().with_test_kdf();
        assert!(matches!(
            tokens.create_token("x", &Pin::new("123"), &Pin::new(SO)),
            Err(TokenError::PinPolicy(_))
        ));
        assert!(matches!(
            tokens.create_token("x", &user(), &Pin::new("")),
            Err(TokenError::PinPolicy(_))
        ));
        assert!(matches!(
            tokens.create_token("", &user(), &Pin::new(SO)),
            Err(TokenError::BadRequest(_))
        ));
        assert!(matches!(
            tokens.create_token(&"长".repeat(65), &user(), &Pin::new(SO)),
            Err(TokenError::BadRequest(_))
        ));
        assert!(tokens.tokens().unwrap().is_empty());
    }

    #[test]
    fn generate_and_sign_each_algorithm() {
        let (_dir, tokens, serial) = setup();
        let mut ids = Vec::new();
        for (alg, label) in [
            (KeyAlgorithm::EcP256, "p256"),
            (KeyAlgorithm::Rsa(2048), "rsa"),
            (KeyAlgorithm::Sm2, "sm2"),
        ] {
            let key = tokens.generate_key(&serial, &user(), alg, label).unwrap();
            assert_eq!(key.algorithm, alg);
            assert_eq!(key.label, label);
            assert_eq!(key.key_id.len(), 16);
            assert_eq!(key.certificate, None);
            let spki = SubjectPublicKeyInfoOwned::from_der(&key.public_key).unwrap();
            assert_eq!(certhall_ca::csr::classify(&spki).unwrap(), alg);
            assert_signs(&tokens, &serial, &user(), &key);
            ids.push(key.key_id);
        }
        let listed: Vec<_> = tokens
            .keys(&serial)
            .unwrap()
            .into_iter()
            .map(|k| k.key_id)
            .collect();
        assert_eq!(listed, ids);
        // A second instance (a restarted agent) signs with the same keys.
        let again = SoftTokens::open(tokens.dir()).unwrap();
        for key in again.keys(&serial).unwrap() {
            assert_signs(&again, &serial, &user(), &key);
        }
    }

    #[test]
    fn bad_requests() {
        let (_dir, tokens, serial) = setup();
        assert!(matches!(
            tokens.generate_key(&serial, &user(), KeyAlgorithm::Rsa(3072), "k"),
            Err(TokenError::Unsupported(m)) if m.contains("软证书不支持该密钥算法")
        ));
        assert!(matches!(
            tokens.generate_key(&serial, &user(), KeyAlgorithm::Sm2, ""),
            Err(TokenError::BadRequest(_))
        ));
        assert!(matches!(
            tokens.generate_key(&serial, &user(), KeyAlgorithm::Sm2, &"k".repeat(65)),
            Err(TokenError::BadRequest(_))
        ));
        let key = tokens
            .generate_key(&serial, &user(), KeyAlgorithm::Sm2, &"键".repeat(64))
            .unwrap();
        // Unknown tokens, including names that are not serials at all.
        for bad in [
            "0000000000000000",
            "../../etc/passwd",
            "",
            "ABCDEF0123456789",
        ] {
            assert_eq!(tokens.keys(bad), Err(TokenError::TokenAbsent));
            assert_eq!(
                tokens.verify_pin(bad, &user()),
                Err(TokenError::TokenAbsent)
            );
        }
        assert_eq!(
            tokens.sign(&serial, &user(), &[1, 2, 3], b"m"),
            Err(TokenError::NoSuchKey)
        );
        assert_eq!(
            tokens.store_certificate(&serial, &user(), &[1, 2, 3], b"c", &[]),
            Err(TokenError::NoSuchKey)
        );
        assert_eq!(
            tokens.delete_key(&serial, &user(), &[1, 2, 3]),
            Err(TokenError::NoSuchKey)
        );
        assert!(matches!(
            tokens.store_certificate(&serial, &user(), &key.key_id, b"", &[]),
            Err(TokenError::BadRequest(_))
        ));
        // None of that counted as a wrong PIN.
        assert_eq!(info(&tokens, &serial).pin_retries_left, Some(MAX_PIN_TRIES));
    }

    #[test]
    fn token_full() {
        let (_dir, tokens, serial) = setup();
        for i in 0..MAX_KEYS {
            tokens
                .generate_key(&serial, &user(), KeyAlgorithm::EcP256, &format!("k{i}"))
                .unwrap();
        }
        assert_eq!(
            tokens.generate_key(&serial, &user(), KeyAlgorithm::EcP256, "one more"),
            Err(TokenError::TokenFull)
        );
        let first = tokens.keys(&serial).unwrap().remove(0);
        tokens.delete_key(&serial, &user(), &first.key_id).unwrap();
        tokens
            .generate_key(&serial, &user(), KeyAlgorithm::EcP256, "room again")
            .unwrap();
    }

    #[test]
    fn wrong_pins_count_down_and_lock() {
        let (_dir, tokens, serial) = setup();
        let key = tokens
            .generate_key(&serial, &user(), KeyAlgorithm::EcP256, "k")
            .unwrap();
        // Three wrong, then a right one resets the count.
        for left in [9, 8, 7] {
            assert_eq!(
                tokens.verify_pin(&serial, &wrong()),
                Err(TokenError::WrongPin {
                    retries_left: Some(left)
                })
            );
            assert_eq!(info(&tokens, &serial).pin_retries_left, Some(left));
        }
        tokens.verify_pin(&serial, &user()).unwrap();
        assert_eq!(info(&tokens, &serial).pin_retries_left, Some(MAX_PIN_TRIES));

        // Wrong PINs through any operation count.
        for left in (1..MAX_PIN_TRIES).rev() {
            let err = if left % 2 == 0 {
                tokens
                    .sign(&serial, &wrong(), &key.key_id, b"m")
                    .unwrap_err()
            } else {
                tokens.verify_pin(&serial, &wrong()).unwrap_err()
            };
            assert_eq!(
                err,
                TokenError::WrongPin {
                    retries_left: Some(left)
                }
            );
        }
        // The tenth wrong PIN locks, and says so.
        assert_eq!(
            tokens.verify_pin(&serial, &wrong()),
            Err(TokenError::PinLocked)
        );
        let locked = info(&tokens, &serial);
        assert!(locked.pin_locked);
        assert_eq!(locked.pin_retries_left, Some(0));
        // Now even the right PIN is refused, everywhere.
        assert_eq!(
            tokens.verify_pin(&serial, &user()),
            Err(TokenError::PinLocked)
        );
        assert_eq!(
            tokens.sign(&serial, &user(), &key.key_id, b"m"),
            Err(TokenError::PinLocked)
        );
        assert_eq!(
            tokens.change_pin(&serial, &user(), &Pin::new("654321")),
            Err(TokenError::PinLocked)
        );
        // Also after a restart: the count is in the file.
        let again = SoftTokens::open(tokens.dir()).unwrap();
        assert_eq!(
            again.verify_pin(&serial, &user()),
            Err(TokenError::PinLocked)
        );
        // Public objects are still readable.
        assert_eq!(tokens.keys(&serial).unwrap().len(), 1);
    }

    #[test]
    fn so_pin_unblocks() {
        let (_dir, tokens, serial) = setup();
        let key = tokens
            .generate_key(&serial, &user(), KeyAlgorithm::Sm2, "k")
            .unwrap();
        for _ in 0..MAX_PIN_TRIES {
            let _ = tokens.verify_pin(&serial, &wrong());
        }
        assert!(info(&tokens, &serial).pin_locked);

        let new = Pin::new("24681357");
        // A wrong SO PIN counts, with its own counter.
        for left in [9, 8] {
            assert_eq!(
                tokens.unblock_pin(&serial, &user(), &new),
                Err(TokenError::WrongSoPin {
                    retries_left: Some(left)
                })
            );
        }
        // A new PIN that breaks the rules is refused before the SO PIN is
        // checked (and counted).
        assert!(matches!(
            tokens.unblock_pin(&serial, &Pin::new(SO), &Pin::new("12")),
            Err(TokenError::PinPolicy(_))
        ));
        assert_eq!(tokens.load(&serial).unwrap().so_failures, 2);

        tokens.unblock_pin(&serial, &Pin::new(SO), &new).unwrap();
        let file = tokens.load(&serial).unwrap();
        assert_eq!((file.user_failures, file.so_failures), (0, 0));
        let unlocked = info(&tokens, &serial);
        assert!(!unlocked.pin_locked);
        assert_eq!(unlocked.pin_retries_left, Some(MAX_PIN_TRIES));

        assert_eq!(
            tokens.verify_pin(&serial, &user()),
            Err(TokenError::WrongPin {
                retries_left: Some(9)
            })
        );
        tokens.verify_pin(&serial, &new).unwrap();
        assert_signs(&tokens, &serial, &new, &key);
    }

    #[test]
    fn so_pin_locks() {
        let (_dir, tokens, serial) = setup();
        let new = Pin::new("24681357");
        for _ in 1..MAX_PIN_TRIES {
            assert!(matches!(
                tokens.unblock_pin(&serial, &wrong(), &new),
                Err(TokenError::WrongSoPin { .. })
            ));
        }
        assert_eq!(
            tokens.unblock_pin(&serial, &wrong(), &new),
            Err(TokenError::SoPinLocked)
        );
        assert_eq!(
            tokens.unblock_pin(&serial, &Pin::new(SO), &new),
            Err(TokenError::SoPinLocked)
        );
        // The user PIN is unaffected.
        tokens.verify_pin(&serial, &user()).unwrap();
    }

    #[test]
    fn change_pin() {
        let (_dir, tokens, serial) = setup();
        let key = tokens
            .generate_key(&serial, &user(), KeyAlgorithm::Rsa(2048), "k")
            .unwrap();
        let new = Pin::new("abc-DEF-123");
        assert!(matches!(
            tokens.change_pin(&serial, &user(), &Pin::new("short")),
            Err(TokenError::PinPolicy(_))
        ));
        assert_eq!(
            tokens.change_pin(&serial, &wrong(), &new),
            Err(TokenError::WrongPin {
                retries_left: Some(9)
            })
        );
        tokens.change_pin(&serial, &user(), &new).unwrap();
        assert_eq!(info(&tokens, &serial).pin_retries_left, Some(MAX_PIN_TRIES));
        assert!(matches!(
            tokens.verify_pin(&serial, &user()),
            Err(TokenError::WrongPin { .. })
        ));
        assert_signs(&tokens, &serial, &new, &key);
        // The SO PIN still unwraps the same master key.
        tokens
            .unblock_pin(&serial, &Pin::new(SO), &Pin::new(USER))
            .unwrap();
        assert_signs(&tokens, &serial, &user(), &key);
    }

    #[test]
    fn certificates_and_delete() {
        let (_dir, tokens, serial) = setup();
        let a = tokens
            .generate_key(&serial, &user(), KeyAlgorithm::EcP256, "a")
            .unwrap();
        let b = tokens
            .generate_key(&serial, &user(), KeyAlgorithm::Sm2, "b")
            .unwrap();
        let cert = vec![0x30, 0x03, 0x02, 0x01, 0x01];
        let chain = vec![vec![0x30, 0x00], vec![0x30, 0x01, 0x00]];
        assert_eq!(
            tokens.store_certificate(&serial, &wrong(), &a.key_id, &cert, &chain),
            Err(TokenError::WrongPin {
                retries_left: Some(9)
            })
        );
        assert_eq!(tokens.keys(&serial).unwrap()[0].certificate, None);
        tokens
            .store_certificate(&serial, &user(), &a.key_id, &cert, &chain)
            .unwrap();
        let keys = tokens.keys(&serial).unwrap();
        assert_eq!(keys[0].certificate.as_deref(), Some(&cert[..]));
        assert_eq!(keys[0].chain, chain);
        assert_eq!(keys[1].certificate, None);

        // Replacing drops the old chain.
        tokens
            .store_certificate(&serial, &user(), &a.key_id, &[0x30, 0x00], &[])
            .unwrap();
        let keys = tokens.keys(&serial).unwrap();
        assert_eq!(keys[0].certificate.as_deref(), Some(&[0x30, 0x00][..]));
        assert!(keys[0].chain.is_empty());

        assert!(matches!(
            tokens.delete_key(&serial, &wrong(), &a.key_id),
            Err(TokenError::WrongPin { .. })
        ));
        tokens.delete_key(&serial, &user(), &a.key_id).unwrap();
        let keys = tokens.keys(&serial).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].key_id, b.key_id);
        assert_eq!(
            tokens.sign(&serial, &user(), &a.key_id, b"m"),
            Err(TokenError::NoSuchKey)
        );
        assert_signs(&tokens, &serial, &user(), &keys[0]);
    }

    #[test]
    fn blank_token_takes_only_init() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = SoftTokens::open(dir.path()).unwrap().with_test_kdf();
        let blank = tokens.create_blank_token().unwrap();
        assert!(is_serial(&blank.serial));
        assert_eq!(
            blank,
            TokenInfo {
                serial: blank.serial.clone(),
                initialized: false,
                label: BLANK_LABEL.into(),
                manufacturer: "CertHall".into(),
                model: "软证书 (Soft Token)".into(),
                pin_retries_left: None,
                pin_locked: false,
            }
        );
        assert_eq!(tokens.tokens().unwrap(), vec![blank.clone()]);
        assert_eq!(tokens.token(&blank.serial).unwrap(), blank);
        let serial = blank.serial;
        assert!(tokens.keys(&serial).unwrap().is_empty());
        let no = Err(TokenError::NotInitialized);
        assert_eq!(tokens.verify_pin(&serial, &user()), no);
        assert_eq!(tokens.change_pin(&serial, &user(), &user()), no);
        assert_eq!(tokens.unblock_pin(&serial, &Pin::new(SO), &user()), no);
        assert_eq!(
            tokens.generate_key(&serial, &user(), KeyAlgorithm::Sm2, "k"),
            Err(TokenError::NotInitialized)
        );
        assert_eq!(
            tokens.sign(&serial, &user(), &[1; 16], b"m"),
            Err(TokenError::NotInitialized)
        );
        assert_eq!(
            tokens.store_certificate(&serial, &user(), &[1; 16], b"c", &[]),
            no
        );
        assert_eq!(tokens.delete_key(&serial, &user(), &[1; 16]), no);

        // Refusals leave it blank.
        for (label, so, pin) in [
            ("x", "12", USER),
            ("x", SO, ""),
            ("", SO, USER),
            ("\u{7}", SO, USER),
            (&"长".repeat(11), SO, USER),
        ] {
            assert!(matches!(
                tokens.init_token(&serial, label, &Pin::new(so), &Pin::new(pin)),
                Err(TokenError::PinPolicy(_) | TokenError::BadRequest(_))
            ));
        }
        assert!(!tokens.token(&serial).unwrap().initialized);

        // 32 bytes of label is the most.
        let label = format!("{}ab", "长".repeat(10));
        let info = tokens
            .init_token(&serial, &label, &Pin::new(SO), &user())
            .unwrap();
        assert_eq!(info.serial, serial);
        assert!(info.initialized);
        assert_eq!(info.label, label);
        assert_eq!(info.pin_retries_left, Some(MAX_PIN_TRIES));
        assert_eq!(
            tokens.init_token(&serial, "again", &Pin::new(SO), &user()),
            Err(TokenError::AlreadyInitialized)
        );
        // The same scheme as a token created initialised: the user PIN
        // signs, the SO PIN unwraps the same master key.
        let key = tokens
            .generate_key(&serial, &user(), KeyAlgorithm::Sm2, "k")
            .unwrap();
        assert_signs(&tokens, &serial, &user(), &key);
        let new = Pin::new("24681357");
        tokens.unblock_pin(&serial, &Pin::new(SO), &new).unwrap();
        assert_signs(&tokens, &serial, &new, &key);
        let file = tokens.load(&serial).unwrap();
        assert_eq!(file.user_pin.as_ref().unwrap().kdf, Kdf::TEST);
        let text = fs::read_to_string(tokens.path(&serial).unwrap()).unwrap();
        assert!(!text.contains(USER) && !text.contains(SO));
    }

    #[test]
    fn keep_blank_token() {
        let dir = tempfile::tempdir().unwrap();
        let plain = SoftTokens::open(dir.path()).unwrap().with_test_kdf();
        assert!(plain.tokens().unwrap().is_empty());
        let tokens = SoftTokens::open(dir.path())
            .unwrap()
            .with_test_kdf()
            .keep_blank_token(true);
        let first = tokens.tokens().unwrap();
        assert_eq!(first.len(), 1);
        assert!(!first[0].initialized);
        assert_eq!(first[0].label, BLANK_LABEL);
        // Listing again does not make another.
        assert_eq!(tokens.tokens().unwrap(), first);
        assert_eq!(tokens.ensure_blank_token().unwrap(), first[0]);
        tokens
            .init_token(&first[0].serial, "制证", &Pin::new(SO), &user())
            .unwrap();
        let second = tokens.tokens().unwrap();
        assert_eq!(second.len(), 2);
        let blank: Vec<_> = second.iter().filter(|t| !t.initialized).collect();
        assert_eq!(blank.len(), 1);
        assert_ne!(blank[0].serial, first[0].serial);
        // Without the option, ensure_blank_token still makes one on demand.
        let other = tempfile::tempdir().unwrap();
        let plain = SoftTokens::open(other.path()).unwrap();
        let made = plain.ensure_blank_token().unwrap();
        assert_eq!(plain.ensure_blank_token().unwrap(), made);
    }

    #[test]
    fn half_blank_files_are_refused() {
        let (_dir, tokens, serial) = setup();
        let path = tokens.path(&serial).unwrap();
        let original: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let mut json = original.clone();
        json["so_pin"] = serde_json::Value::Null;
        fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        assert!(matches!(tokens.keys(&serial), Err(TokenError::Module(_))));
        // A blank token cannot hold keys.
        fs::write(&path, serde_json::to_vec(&original).unwrap()).unwrap();
        tokens
            .generate_key(&serial, &user(), KeyAlgorithm::EcP256, "k")
            .unwrap();
        let mut json: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        json["so_pin"] = serde_json::Value::Null;
        json["user_pin"] = serde_json::Value::Null;
        fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        assert!(matches!(tokens.keys(&serial), Err(TokenError::Module(_))));
    }

    #[test]
    fn corrupt_files_are_skipped() {
        let (_dir, tokens, good) = setup();
        let other = tokens
            .create_token("second", &user(), &Pin::new(SO))
            .unwrap()
            .serial;
        let newer = tokens
            .create_token("third", &user(), &Pin::new(SO))
            .unwrap()
            .serial;
        fs::write(tokens.path(&other).unwrap(), b"{ not json").unwrap();
        let mut json: serde_json::Value =
            serde_json::from_slice(&fs::read(tokens.path(&newer).unwrap()).unwrap()).unwrap();
        json["version"] = 2.into();
        fs::write(
            tokens.path(&newer).unwrap(),
            serde_json::to_vec(&json).unwrap(),
        )
        .unwrap();
        // Stray files are ignored.
        fs::write(tokens.dir().join("notes.txt"), b"hello").unwrap();

        let list = tokens.tokens().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].serial, good);
        assert!(matches!(tokens.keys(&other), Err(TokenError::Module(_))));
        assert!(matches!(
            tokens.verify_pin(&newer, &user()),
            Err(TokenError::Module(m)) if m.contains("version 2")
        ));
        tokens.verify_pin(&good, &user()).unwrap();
    }

    #[test]
    fn tampered_files_are_refused() {
        let (_dir, tokens, serial) = setup();
        let key = tokens
            .generate_key(&serial, &user(), KeyAlgorithm::EcP256, "k")
            .unwrap();
        let path = tokens.path(&serial).unwrap();
        let original: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();

        // A file renamed to another serial.
        let mut json = original.clone();
        json["serial"] = "0123456789abcdef".into();
        fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        assert!(matches!(tokens.keys(&serial), Err(TokenError::Module(_))));

        // A KDF that would eat the machine.
        let mut json = original.clone();
        json["user_pin"]["kdf"]["log_n"] = 40.into();
        fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        assert!(matches!(tokens.keys(&serial), Err(TokenError::Module(_))));

        // A private key moved under another id does not decrypt.
        let mut json = original.clone();
        json["keys"][0]["id"] = hex::encode([7u8; 16]).into();
        fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        assert!(matches!(
            tokens.sign(&serial, &user(), &[7u8; 16], b"m"),
            Err(TokenError::Module(m)) if m.contains("damaged")
        ));

        fs::write(&path, serde_json::to_vec(&original).unwrap()).unwrap();
        assert_signs(&tokens, &serial, &user(), &key);
    }

    #[test]
    fn no_clear_secrets_on_disk() {
        let (_dir, tokens, serial) = setup();
        for alg in [
            KeyAlgorithm::EcP256,
            KeyAlgorithm::Sm2,
            KeyAlgorithm::Rsa(2048),
        ] {
            tokens.generate_key(&serial, &user(), alg, "k").unwrap();
        }
        let path = tokens.path(&serial).unwrap();
        let disk = fs::read(&path).unwrap();
        let text = String::from_utf8(disk.clone()).unwrap();

        // Every string in the file, and what it decodes to.
        fn strings(v: &serde_json::Value, out: &mut Vec<Vec<u8>>) {
            match v {
                serde_json::Value::String(s) => {
                    out.push(s.as_bytes().to_vec());
                    if let Ok(b) = B64_ENGINE.decode(s) {
                        out.push(b);
                    }
                    if let Ok(b) = hex::decode(s) {
                        out.push(b);
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
                serde_json::Value::Object(o) => o.values().for_each(|v| strings(v, out)),
                _ => {}
            }
        }
        let mut blobs = vec![disk];
        strings(&serde_json::from_str(&text).unwrap(), &mut blobs);

        let mut file = tokens.load(&serial).unwrap();
        let master = tokens.login(&mut file, Role::User, &user()).unwrap();
        let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        for key in &file.keys {
            let pkcs8 = open_key(&master, &serial, key)
                .unwrap()
                .to_pkcs8_der()
                .unwrap();
            for blob in &blobs {
                assert!(!contains(blob, &pkcs8), "clear PKCS#8 on disk");
            }
            assert!(!text.contains(&B64_ENGINE.encode(&pkcs8[..])));
            assert!(!text.contains(&hex::encode(&pkcs8[..])));
        }
        for blob in &blobs {
            assert!(!contains(blob, &master[..]), "clear master key on disk");
        }
        assert!(!text.contains(USER) && !text.contains(SO));
    }
}
