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
    use super::*;

    #[test]
    fn labels_and_splits_separate_values() {
        let s = ServerSecret::for_tests();
        assert_ne!(s.mac("a", &[b"xy"]), s.mac("b", &[b"xy"]));
        assert_ne!(s.mac("a", &[b"x", b"y"]), s.mac("a", &[b"xy"]));
        assert_eq!(s.mac("a", &[b"xy"]), s.mac("a", &[b"xy"]));
        assert_eq!(format!("{s:?}"), "ServerSecret(***)");
    }
}
