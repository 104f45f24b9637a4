//! The soft token's cryptography: PIN-derived keys (scrypt), the wrapped
//! master key and the sealed private keys (AES-256-GCM).

use super::*;

/// Whose PIN: the user's or the security officer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    User,
    So,
}

impl Role {
    pub(super) fn failures(self, file: &mut TokenFile) -> &mut u32 {
        match self {
            Self::User => &mut file.user_failures,
            Self::So => &mut file.so_failures,
        }
    }

    /// The master key wrapped under this PIN (`None` on a blank token).
    pub(super) fn wrap(self, file: &TokenFile) -> Option<&WrappedKey> {
        match self {
            Self::User => file.user_pin.as_ref(),
            Self::So => file.so_pin.as_ref(),
        }
    }

    pub(super) fn locked(self) -> TokenError {
        match self {
            Self::User => TokenError::PinLocked,
            Self::So => TokenError::SoPinLocked,
        }
    }

    pub(super) fn wrong(self, retries_left: u32) -> TokenError {
        let retries_left = Some(retries_left);
        match self {
            Self::User => TokenError::WrongPin { retries_left },
            Self::So => TokenError::WrongSoPin { retries_left },
        }
    }

    pub(super) fn tag(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::So => "so",
        }
    }
}

/// The key derivation for PIN wraps, as recorded in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase", deny_unknown_fields)]
pub(super) enum Kdf {
    /// scrypt (RFC 7914) with a 32-byte output.
    Scrypt { log_n: u8, r: u32, p: u32 },
}

impl Kdf {
    /// For real tokens: N = 2^15 (32 MiB), the scrypt crate's recommendation.
    pub(super) const DEFAULT: Self = Self::Scrypt {
        log_n: 15,
        r: 8,
        p: 1,
    };
    /// For unit tests only.
    pub(super) const TEST: Self = Self::Scrypt {
        log_n: 10,
        r: 8,
        p: 1,
    };

    /// The parameters, if within what we are willing to run: a file must
    /// not make the agent spend gigabytes.
    pub(super) fn params(self) -> Result<scrypt::Params, String> {
        let Self::Scrypt { log_n, r, p } = self;
        if !(10..=20).contains(&log_n) || !(1..=32).contains(&r) || !(1..=16).contains(&p) {
            return Err(format!(
                "scrypt parameters out of range (log_n {log_n}, r {r}, p {p})"
            ));
        }
        scrypt::Params::new(log_n, r, p, MASTER_LEN)
            .map_err(|e| format!("bad scrypt parameters (log_n {log_n}, r {r}, p {p}): {e}"))
    }

    pub(super) fn derive(self, pin: &Pin, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let params = self.params().map_err(TokenError::Module)?;
        let mut out = Zeroizing::new([0u8; 32]);
        scrypt::scrypt(pin.expose().as_bytes(), salt, &params, out.as_mut())
            .map_err(|e| TokenError::Module(format!("scrypt failed: {e}")))?;
        Ok(out)
    }
}

/// Associated data of a master-key wrap: the token and whose PIN.
pub(super) fn wrap_aad(serial: &str, role: Role) -> Vec<u8> {
    format!("{FORMAT}/v{VERSION}/master\0{serial}\0{}", role.tag()).into_bytes()
}

/// Associated data of an encrypted private key: the token and the key id.
pub(super) fn key_aad(serial: &str, id: &[u8]) -> Vec<u8> {
    let mut aad = format!("{FORMAT}/v{VERSION}/key\0{serial}\0").into_bytes();
    aad.extend_from_slice(id);
    aad
}

pub(super) fn wrap_master(
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
pub(super) fn unwrap_master(
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
pub(super) fn open_key(master: &MasterKey, serial: &str, key: &StoredKey) -> Result<SoftwareKey> {
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
pub(super) fn seal(key: &[u8; 32], clear: &[u8], aad: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
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
pub(super) fn open(
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

pub(super) fn key_error(e: certhall_ca::CaError) -> TokenError {
    TokenError::Module(format!("soft token key operation failed: {e}"))
}
