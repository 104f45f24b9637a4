//! The token abstraction: what the agent can do with a USB key (or a
//! software token), whatever the library behind it.
//!
//! A [`TokenBackend`] is one source of tokens: a PKCS#11 module
//! ([`crate::pkcs11`]), the software-token directory ([`crate::soft`]), and
//! later a GM/T 0016 (SKF) library. The HTTP layer never sees a backend's
//! types; it calls these methods (on a blocking thread: module calls block)
//! and turns [`TokenError`] into a JSON error.
//!
//! Rules every backend keeps:
//! - private keys never leave the token: there is no method that returns one;
//! - every private-key operation takes the PIN in the same call, and the
//!   backend logs in, acts and logs out: no PIN and no login state is kept
//!   between calls;
//! - a wrong PIN counts towards the lock ([`MAX_PIN_TRIES`]); a correct one
//!   resets the count;
//! - a blank token (not initialised: no PINs, no keys) is listed, with
//!   [`TokenInfo::initialized`] false and no keys; [`TokenBackend::init_token`]
//!   is the only operation it takes, every other one answers
//!   [`TokenError::NotInitialized`]. Initialisation is the counter's job
//!   (制证): CertHall chooses the label and both PINs.

use std::fmt;

use certhall_ca::KeyAlgorithm;
use zeroize::Zeroize;

/// Wrong PINs in a row after which a token's user PIN locks, as on most
/// hardware keys. Unblocking takes the SO PIN (the counter's job).
pub const MAX_PIN_TRIES: u32 = 10;

/// Shortest and longest PIN the agent accepts (the usual range of UKey
/// PINs; PKCS#11 modules may be stricter and say so).
pub const PIN_LEN: std::ops::RangeInclusive<usize> = 6..=32;

/// Longest token label, in bytes of UTF-8: the size of PKCS#11's
/// `CK_TOKEN_INFO.label` (a CJK character takes 3 bytes).
pub const TOKEN_LABEL_MAX_BYTES: usize = 32;

/// Checks the label given to a blank token at initialisation: 1–32 bytes of
/// UTF-8 ([`TOKEN_LABEL_MAX_BYTES`]), no control characters. Every backend
/// applies the same rule, so a page gets the same answer whatever the key.
pub fn check_token_label(label: &str) -> Result<(), TokenError> {
    if label.trim().is_empty() {
        return Err(TokenError::BadRequest("UKey 标签不能为空。".into()));
    }
    if label.chars().any(char::is_control) {
        return Err(TokenError::BadRequest("UKey 标签不能含控制字符。".into()));
    }
    if label.len() > TOKEN_LABEL_MAX_BYTES {
        return Err(TokenError::BadRequest(format!(
            "标签过长（最多 {TOKEN_LABEL_MAX_BYTES} 字节）"
        )));
    }
    Ok(())
}

/// A PIN: masked in `Debug`, wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    /// Wraps a PIN as typed (no validation: a wrong PIN must still be
    /// counted by the token).
    pub fn new(pin: impl Into<String>) -> Self {
        Self(pin.into())
    }

    /// The PIN's text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Checks a PIN the user chooses (a new PIN): length and characters.
    pub fn check_new(&self) -> Result<(), TokenError> {
        let len = self.0.chars().count();
        if !PIN_LEN.contains(&len) {
            return Err(TokenError::PinPolicy(format!(
                "新 PIN 码长度应为 {}–{} 位",
                PIN_LEN.start(),
                PIN_LEN.end()
            )));
        }
        if !self.0.chars().all(|c| c.is_ascii_graphic()) {
            return Err(TokenError::PinPolicy(
                "新 PIN 码只能包含字母、数字和常用符号".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(***)")
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// What the agent knows about one token (no PIN needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The token's serial number, unique within its backend. A blank
    /// PKCS#11 token that reports no serial number is named by its slot
    /// instead (`slot<id>`; see [`crate::pkcs11`]).
    pub serial: String,
    /// The token has been initialised (label and PINs set); a blank token
    /// takes only [`TokenBackend::init_token`].
    pub initialized: bool,
    /// The token's label (what the user named it).
    pub label: String,
    /// Who made it.
    pub manufacturer: String,
    /// Its model.
    pub model: String,
    /// User PIN tries left before the lock, when known (`None` for a
    /// blank token, which has no PIN yet).
    pub pin_retries_left: Option<u32>,
    /// The user PIN is locked (only the SO PIN can unblock it).
    pub pin_locked: bool,
}

/// A key pair on a token and the certificate stored with it (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The key's identifier on the token (`CKA_ID` on PKCS#11), shared by
    /// the private key, the public key and the certificate.
    pub key_id: Vec<u8>,
    /// The key's label.
    pub label: String,
    /// The key's algorithm.
    pub algorithm: KeyAlgorithm,
    /// The DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// The DER certificate for this key, if one was written.
    pub certificate: Option<Vec<u8>>,
    /// The DER certificates of its chain (issuing CA first), if written.
    pub chain: Vec<Vec<u8>>,
}

/// Why a token operation failed. Each variant is one stable error code of
/// the agent's API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The PIN is wrong; the token counts it.
    #[error("wrong PIN ({retries_left:?} tries left)")]
    WrongPin {
        /// Tries left before the lock, when known.
        retries_left: Option<u32>,
    },
    /// The user PIN is locked.
    #[error("the user PIN is locked")]
    PinLocked,
    /// The SO PIN is wrong.
    #[error("wrong SO PIN ({retries_left:?} tries left)")]
    WrongSoPin {
        /// Tries left before the SO PIN locks, when known.
        retries_left: Option<u32>,
    },
    /// The SO PIN is locked: the token cannot be unblocked any more.
    #[error("the SO PIN is locked")]
    SoPinLocked,
    /// A new PIN does not meet the rules (message in Chinese).
    #[error("PIN policy: {0}")]
    PinPolicy(String),
    /// No token with that serial is present (unplugged?).
    #[error("no such token")]
    TokenAbsent,
    /// The token is blank: it must be initialised first.
    #[error("the token is not initialised")]
    NotInitialized,
    /// The token is initialised already: initialising it again would wipe
    /// it, so the agent refuses.
    #[error("the token is already initialised")]
    AlreadyInitialized,
    /// No key with that id on the token.
    #[error("no such key")]
    NoSuchKey,
    /// The key has no certificate.
    #[error("no certificate for that key")]
    NoSuchCertificate,
    /// The token cannot do this (algorithm, operation).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The request is wrong (e.g. the certificate is not for that key).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The token is full.
    #[error("the token has no room left")]
    TokenFull,
    /// The module or storage failed.
    #[error("token failure: {0}")]
    Module(String),
}

/// Result of a token operation.
pub type Result<T, E = TokenError> = std::result::Result<T, E>;

/// One source of tokens. Methods block (module and file calls); the HTTP
/// layer runs them on a blocking thread.
pub trait TokenBackend: Send + Sync + fmt::Debug {
    /// The backend's name, the prefix of its token ids in the API
    /// (`pkcs11`, `soft`, later `skf`).
    fn kind(&self) -> &'static str;

    /// The tokens present now, blank ones included.
    fn tokens(&self) -> Result<Vec<TokenInfo>>;

    /// One token present now, blank or not.
    fn token(&self, serial: &str) -> Result<TokenInfo> {
        self.tokens()?
            .into_iter()
            .find(|t| t.serial == serial)
            .ok_or(TokenError::TokenAbsent)
    }

    /// The key pairs on a token and their certificates (public objects: no
    /// PIN needed, as with a hardware key). A blank token has none.
    fn keys(&self, serial: &str) -> Result<Vec<KeyEntry>>;

    /// Initialises a blank token (制证 at the counter): sets its label
    /// ([`check_token_label`]), its SO PIN and its user PIN (both must meet
    /// [`Pin::check_new`]), and returns the token as it is now — its serial
    /// may have changed (a PKCS#11 module may assign one at initialisation),
    /// and the new serial is the one to use from then on. An initialised
    /// token is refused with [`TokenError::AlreadyInitialized`] and left
    /// untouched.
    fn init_token(
        &self,
        serial: &str,
        label: &str,
        so_pin: &Pin,
        user_pin: &Pin,
    ) -> Result<TokenInfo>;

    /// Checks the user PIN (counting a wrong one).
    fn verify_pin(&self, serial: &str, pin: &Pin) -> Result<()>;

    /// Changes the user PIN, checking the old one.
    fn change_pin(&self, serial: &str, old: &Pin, new: &Pin) -> Result<()>;

    /// Sets a new user PIN with the SO PIN, unlocking a locked token.
    fn unblock_pin(&self, serial: &str, so_pin: &Pin, new_pin: &Pin) -> Result<()>;

    /// Changes the SO PIN, checking the old one (CertHall rotates it after
    /// every online PIN unlock).
    fn change_so_pin(&self, serial: &str, old: &Pin, new: &Pin) -> Result<()>;

    /// Generates a key pair inside the token. Which algorithms a backend
    /// offers is its own business (SM2 needs the software token or SKF).
    fn generate_key(
        &self,
        serial: &str,
        pin: &Pin,
        algorithm: KeyAlgorithm,
        label: &str,
    ) -> Result<KeyEntry>;

    /// Signs `message` with the private key `key_id`: SHA-256 with ECDSA
    /// (DER `ECDSA-Sig-Value`) or RSA PKCS #1 v1.5; SM3 with SM2 (signer ID
    /// `1234567812345678`, DER `SEQUENCE { r, s }`). The same encodings as
    /// in X.509, so the signature verifies with the certificate's key.
    fn sign(&self, serial: &str, pin: &Pin, key_id: &[u8], message: &[u8]) -> Result<Vec<u8>>;

    /// Writes a certificate (and its chain) next to the key it certifies,
    /// replacing any earlier one for that key. The caller has checked that
    /// the certificate's public key is the key's.
    fn store_certificate(
        &self,
        serial: &str,
        pin: &Pin,
        key_id: &[u8],
        certificate: &[u8],
        chain: &[Vec<u8>],
    ) -> Result<()>;

    /// Deletes a key pair and its certificates.
    fn delete_key(&self, serial: &str, pin: &Pin, key_id: &[u8]) -> Result<()>;
}
