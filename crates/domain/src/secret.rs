//! The server secret and the keyed hashes derived from it.
//!
//! One secret per deployment, shared by every CertHall process of that
//! deployment. It keys the hash of login codes (so a copy of the database
//! does not reveal codes by brute-forcing a million values) and the CSRF
//! tokens. Each use has its own label so one derived value can never be
//! replayed as another.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The deployment's server secret; `Debug` never prints it.
#[derive(Clone)]
pub struct ServerSecret(Vec<u8>);

impl ServerSecret {
    /// Wraps raw secret bytes (at least 32 bytes are expected).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// A fixed secret for tests.
    pub fn for_tests() -> Self {
        Self(b"certhall-test-secret-0123456789abcdef".to_vec())
    }

    /// HMAC-SHA256 over `label` and `parts`, each length-prefixed so that
    /// different splits of the same bytes never collide.
    pub fn mac(&self, label: &str, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            // HMAC accepts keys of any length; this arm cannot be taken.
            Err(_) => return [0; 32],
        };
        mac.update(&(label.len() as u64).to_be_bytes());
        mac.update(label.as_bytes());
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

impl ServerSecret {
    /// Encrypts a small secret for storage (AES-256-GCM under a key derived
    /// for `label`, random nonce): `base64(nonce ‖ ciphertext ‖ tag)`. The
    /// label is also the associated data, so a value sealed for one use
    /// does not open as another.
    pub fn seal(&self, label: &str, plaintext: &[u8]) -> String {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        use base64::Engine as _;
        use rand::RngCore;
        let key = self.mac("seal-key", &[label.as_bytes()]);
        let cipher = aes_gcm::Aes256Gcm::new(&key.into());
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad: label.as_bytes(),
                },
            )
            // AES-GCM encryption fails only for inputs of gigabytes.
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    /// Opens what [`ServerSecret::seal`] made with the same label; `None`
    /// if it was sealed under another secret or label, or altered.
    pub fn open(&self, label: &str, sealed: &str) -> Option<Vec<u8>> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        if bytes.len() < 12 + 16 {
            return None;
        }
        let (nonce, ct) = bytes.split_at(12);
        let key = self.mac("seal-key", &[label.as_bytes()]);
        let cipher = aes_gcm::Aes256Gcm::new(&key.into());
        cipher
            .decrypt(
                aes_gcm::Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: label.as_bytes(),
                },
            )
            .ok()
    }
}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(***)")
    }
}

/// Compares two secrets in constant time (for their common length; a
/// length difference is not hidden).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn labels_and_splits_separate_values() {
        let s = ServerSecret::for_tests();
        assert_ne!(s.mac("a", &[b"xy"]), s.mac("b", &[b"xy"]));
        assert_ne!(s.mac("a", &[b"x", b"y"]), s.mac("a", &[b"xy"]));
        assert_eq!(s.mac("a", &[b"xy"]), s.mac("a", &[b"xy"]));
        assert_eq!(format!("{s:?}"), "ServerSecret(***)");
    }

    #[test]
    fn sealed_values_open_only_with_their_label_and_secret() {
        let s = ServerSecret::for_tests();
        let a = s.seal("so-pin", b"Abc123");
        let b = s.seal("so-pin", b"Abc123");
        assert_ne!(a, b, "random nonce");
        assert_eq!(s.open("so-pin", &a).as_deref(), Some(&b"Abc123"[..]));
        assert_eq!(s.open("user-pin", &a), None);
        assert_eq!(ServerSecret::new(vec![7; 32]).open("so-pin", &a), None);
        let mut altered = a.into_bytes();
        altered[20] ^= 1;
        assert_eq!(s.open("so-pin", &String::from_utf8(altered).unwrap()), None);
        assert_eq!(s.open("so-pin", "short"), None);
    }
}
