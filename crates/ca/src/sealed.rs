//! Sealing a secret to a one-time key (ECIES on P-256): how CertHall hands
//! a token's SO PIN to the key agent for an online PIN unlock (PIN 解锁)
//! without the page that carries it ever seeing it.
//!
//! The agent makes a [`Recipient`] (a fresh P-256 key pair that lives in
//! its memory only) and gives the page the public half. CertHall
//! [`seal`]s the secret to it: an ephemeral key of its own, ECDH, HKDF-
//! SHA-256 over the shared secret, AES-256-GCM. The `context` (the token's
//! serial) is bound into the key derivation and the authenticated data, so
//! a box sealed for one token never opens as another's. The recipient
//! opens once: [`Recipient::open`] consumes it.
//!
//! Wire format (base64url, no padding): `ephemeral public key (65 bytes,
//! SEC1 uncompressed) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hkdf::Hkdf;
use p256::ecdh::EphemeralSecret;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::PublicKey;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;

/// Domain separation of the key derivation.
const INFO: &[u8] = b"certhall sealed v1";
const POINT_LEN: usize = 65;
const NONCE_LEN: usize = 12;

/// Why a box could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The recipient's public key is not a P-256 point.
    #[error("not a P-256 public key")]
    BadPublicKey,
    /// The box is malformed, for another key or another context, or was
    /// altered.
    #[error("the sealed box does not open")]
    DoesNotOpen,
}

/// A one-time key to receive one sealed box.
pub struct Recipient {
    secret: EphemeralSecret,
    public: Vec<u8>,
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipient").finish_non_exhaustive()
    }
}

impl Default for Recipient {
    fn default() -> Self {
        Self::new()
    }
}

impl Recipient {
    /// A fresh key pair.
    pub fn new() -> Self {
        let secret = EphemeralSecret::random(&mut OsRng);
        let public = secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        Self { secret, public }
    }

    /// The public half, base64url (what the page hands CertHall).
    pub fn public_key(&self) -> String {
        B64.encode(&self.public)
    }

    /// Opens a box sealed to this key for `context`. The key is gone
    /// afterwards, whether the box opened or not.
    pub fn open(self, sealed: &str, context: &[u8]) -> Result<Vec<u8>, SealError> {
        let bytes = B64
            .decode(sealed.trim())
            .map_err(|_| SealError::DoesNotOpen)?;
        if bytes.len() < POINT_LEN + NONCE_LEN + 16 {
            return Err(SealError::DoesNotOpen);
        }
        let (point, rest) = bytes.split_at(POINT_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let sender = PublicKey::from_sec1_bytes(point).map_err(|_| SealError::DoesNotOpen)?;
        let shared = self.secret.diffie_hellman(&sender);
        let cipher = cipher(
            shared.raw_secret_bytes().as_slice(),
            point,
            &self.public,
            context,
        );
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::DoesNotOpen)
    }
}

fn cipher(shared: &[u8], sender: &[u8], recipient: &[u8], context: &[u8]) -> Aes256Gcm {
    let mut salt = Vec::with_capacity(sender.len() + recipient.len());
    salt.extend_from_slice(sender);
    salt.extend_from_slice(recipient);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut info = INFO.to_vec();
    info.push(0);
    info.extend_from_slice(context);
    let mut key = [0u8; 32];
    // 32 bytes is far below HKDF-SHA-256's limit of 8160.
    hk.expand(&info, &mut key).unwrap_or_default();
    let cipher = Aes256Gcm::new_from_slice(&key).unwrap_or_else(|_| unreachable!("32-byte key"));
    zeroize::Zeroize::zeroize(&mut key);
    cipher
}

/// Reads a recipient's public key (base64url SEC1): what [`seal`] accepts.
pub fn recipient_key(recipient: &str) -> Result<PublicKey, SealError> {
    let bytes = B64
        .decode(recipient.trim())
        .map_err(|_| SealError::BadPublicKey)?;
    PublicKey::from_sec1_bytes(&bytes).map_err(|_| SealError::BadPublicKey)
}

/// Seals `plaintext` to the recipient's public key (base64url SEC1) for
/// `context`.
pub fn seal(recipient: &str, context: &[u8], plaintext: &[u8]) -> Result<String, SealError> {
    let recipient_key = recipient_key(recipient)?;
    let recipient_bytes = recipient_key.to_encoded_point(false).as_bytes().to_vec();
    let ephemeral = EphemeralSecret::random(&mut OsRng);
    let sender = ephemeral
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    let shared = ephemeral.diffie_hellman(&recipient_key);
    let cipher = cipher(
        shared.raw_secret_bytes().as_slice(),
        &sender,
        &recipient_bytes,
        context,
    );
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: context,
            },
        )
        .map_err(|_| SealError::BadPublicKey)?;
    let mut out = sender;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(B64.encode(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_once_for_its_context_only() {
        let r = Recipient::new();
        let boxed = seal(&r.public_key(), b"token-1", b"so-pin 87654321").unwrap();
        assert_eq!(r.open(&boxed, b"token-1").unwrap(), b"so-pin 87654321");

        let r = Recipient::new();
        let boxed = seal(&r.public_key(), b"token-1", b"x").unwrap();
        assert_eq!(r.open(&boxed, b"token-2"), Err(SealError::DoesNotOpen));

        // Another recipient's key does not open it.
        let r1 = Recipient::new();
        let r2 = Recipient::new();
        let boxed = seal(&r1.public_key(), b"t", b"secret").unwrap();
        assert_eq!(r2.open(&boxed, b"t"), Err(SealError::DoesNotOpen));

        // A flipped byte anywhere is refused.
        let r = Recipient::new();
        let boxed = seal(&r.public_key(), b"t", b"secret").unwrap();
        let mut raw = B64.decode(&boxed).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(r.open(&B64.encode(raw), b"t"), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn bad_public_keys_are_refused() {
        assert_eq!(
            seal("not base64!", b"t", b"x"),
            Err(SealError::BadPublicKey)
        );
        assert_eq!(
            seal(&B64.encode([4u8; 65]), b"t", b"x"),
            Err(SealError::BadPublicKey)
        );
    }
}
