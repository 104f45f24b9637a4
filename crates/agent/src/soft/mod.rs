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

mod crypto;
mod file;
#[cfg(test)]
mod tests;

use crypto::*;
use file::*;

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

    fn change_so_pin(&self, serial: &str, old: &Pin, new: &Pin) -> Result<()> {
        let _guard = self.guard();
        let mut file = self.load(serial)?;
        file.ready()?;
        new.check_new()?;
        let master = self.login(&mut file, Role::So, old)?;
        file.so_pin = Some(wrap_master(&master, &file.serial, Role::So, new, self.kdf)?);
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
