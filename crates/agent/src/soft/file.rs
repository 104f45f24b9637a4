//! The soft token's file: its format (version 1), reading, writing it
//! atomically, and the small encodings it uses.

use super::*;

/// The master key wrapped under a PIN.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WrappedKey {
    pub(super) kdf: Kdf,
    pub(super) salt: B64,
    pub(super) nonce: B64,
    pub(super) wrapped_key: B64,
}

/// One key pair and its certificates.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoredKey {
    pub(super) id: Hex,
    pub(super) label: String,
    #[serde(with = "algorithm")]
    pub(super) algorithm: KeyAlgorithm,
    pub(super) public_key: B64,
    pub(super) nonce: B64,
    pub(super) encrypted_private_key: B64,
    pub(super) certificate: Option<B64>,
    pub(super) chain: Vec<B64>,
}

impl StoredKey {
    pub(super) fn entry(&self) -> KeyEntry {
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
pub(super) struct TokenFile {
    pub(super) format: String,
    pub(super) version: u32,
    pub(super) serial: String,
    pub(super) label: String,
    /// `None` (with `so_pin`) on a blank token.
    pub(super) user_pin: Option<WrappedKey>,
    pub(super) so_pin: Option<WrappedKey>,
    pub(super) user_failures: u32,
    pub(super) so_failures: u32,
    pub(super) keys: Vec<StoredKey>,
}

/// The fields read before the rest, to tell "not ours" and "too new" from
/// "corrupt".
#[derive(Deserialize)]
pub(super) struct Header {
    pub(super) format: Option<String>,
    pub(super) version: Option<u32>,
}

impl TokenFile {
    /// Parses and checks a file expected to hold token `serial`; the error
    /// says what is wrong, in English, for the log.
    pub(super) fn parse(bytes: &[u8], serial: &str) -> Result<Self, String> {
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
    pub(super) fn check(&self, serial: &str) -> Result<(), String> {
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
    pub(super) fn blank(serial: String) -> Self {
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
    pub(super) fn initialized(&self) -> bool {
        self.user_pin.is_some() && self.so_pin.is_some()
    }

    /// Refuses a blank token.
    pub(super) fn ready(&self) -> Result<()> {
        if self.initialized() {
            Ok(())
        } else {
            Err(TokenError::NotInitialized)
        }
    }

    pub(super) fn info(&self) -> TokenInfo {
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

    pub(super) fn key(&self, id: &[u8]) -> Result<&StoredKey> {
        self.keys
            .iter()
            .find(|k| k.id.0 == id)
            .ok_or(TokenError::NoSuchKey)
    }

    pub(super) fn key_mut(&mut self, id: &[u8]) -> Result<&mut StoredKey> {
        self.keys
            .iter_mut()
            .find(|k| k.id.0 == id)
            .ok_or(TokenError::NoSuchKey)
    }
}

/// The algorithms a soft token offers, by their name in the file.
pub(super) fn alg_name(alg: KeyAlgorithm) -> Result<&'static str> {
    match alg {
        KeyAlgorithm::Sm2 => Ok("sm2"),
        KeyAlgorithm::EcP256 => Ok("ec-p256"),
        KeyAlgorithm::Rsa(2048) => Ok("rsa-2048"),
        KeyAlgorithm::Rsa(_) => Err(TokenError::Unsupported(
            "软证书不支持该密钥算法（可选 SM2、EC P-256、RSA 2048）".into(),
        )),
    }
}

pub(super) fn alg_from_name(name: &str) -> Option<KeyAlgorithm> {
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

pub(super) fn check_label(label: &str, what: &str) -> Result<()> {
    let len = label.chars().count();
    if !(1..=MAX_LABEL).contains(&len) || label.chars().any(char::is_control) {
        return Err(TokenError::BadRequest(format!(
            "{what}应为 1–{MAX_LABEL} 个字符，且不含控制字符"
        )));
    }
    Ok(())
}

/// A serial this backend makes: 16 lowercase hex digits.
pub(super) fn is_serial(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Writes `path` so that a crash leaves either the old or the new file:
/// temporary file in the same directory, synced, renamed over, directory
/// synced.
pub(super) fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
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
pub(super) struct B64(pub(super) Vec<u8>);

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
pub(super) struct Hex(pub(super) Vec<u8>);

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
