//! Sessions: how long a login lasts, and the tokens that carry it.
//!
//! A session token is 256 random bits given to the browser (cookie) or API
//! client (bearer token). The database keeps only its SHA-256, so a copy of
//! the database cannot be turned into live sessions. Sessions end after an
//! idle period (30 minutes by default) or an absolute lifetime, whichever
//! comes first. To keep reads cheap, the last-seen time is written at most
//! once per [`SessionPolicy::touch_interval`].

use std::time::Duration;

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::ServerSecret;
use crate::Timestamp;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Session lifetime rules.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after login, however active.
    pub absolute_lifetime: Duration,
    /// Last-seen is written at most this often.
    pub touch_interval: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_lifetime: Duration::from_secs(12 * 3600),
            touch_interval: Duration::from_secs(60),
        }
    }
}

/// Whether a stored session may serve a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Valid; `touch` says whether to record activity now.
    Active {
        /// Write the new last-seen time.
        touch: bool,
    },
    /// Ended by inactivity or age; delete it.
    Expired,
}

impl SessionPolicy {
    /// Checks a session created at `created_at`, last seen at `last_seen_at`.
    pub fn status(
        &self,
        created_at: Timestamp,
        last_seen_at: Timestamp,
        now: Timestamp,
    ) -> SessionStatus {
        if now.since(last_seen_at) >= self.idle_timeout
            || now.since(created_at) >= self.absolute_lifetime
        {
            SessionStatus::Expired
        } else {
            SessionStatus::Active {
                touch: now.since(last_seen_at) >= self.touch_interval,
            }
        }
    }
}

/// A session token as given to the client; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(***)")
    }
}

impl SessionToken {
    /// 256 fresh random bits.
    pub fn generate<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        Self(B64.encode(b))
    }

    /// Accepts a token presented by a client if it has the right shape.
    pub fn from_client(s: &str) -> Option<Self> {
        let ok = s.len() == 43
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(s.to_owned()))
    }

    /// The token text to hand to the client.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key the session is stored under: hex SHA-256 of the token.
    pub fn storage_key(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// A random opaque id for a browser before login (binds CSRF tokens).
pub fn new_browser_id<R: RngCore + ?Sized>(rng: &mut R) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    B64.encode(b)
}

/// The CSRF token for forms rendered to the browser identified by
/// `browser_id` (the double-submit pattern, keyed so it cannot be forged).
pub fn csrf_token(secret: &ServerSecret, browser_id: &str) -> String {
    B64.encode(secret.mac("csrf", &[browser_id.as_bytes()]))
}

/// Checks a presented CSRF token in constant time.
pub fn csrf_valid(secret: &ServerSecret, browser_id: &str, presented: &str) -> bool {
    let expected = csrf_token(secret, browser_id);
    !browser_id.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// How a session's token is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A browser cookie.
    Browser,
    /// A bearer token for API clients.
    Api,
}

impl SessionKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Browser => "browser",
            Self::Api => "api",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const T0: Timestamp = Timestamp::from_millis(1_795_588_200_000);

    #[test]
    fn idle_and_absolute_expiry() {
        let p = SessionPolicy::default();
        let min = |m: u64| Duration::from_secs(m * 60);
        assert_eq!(p.status(T0, T0, T0), SessionStatus::Active { touch: false });
        assert_eq!(
            p.status(T0, T0, T0.plus(min(2))),
            SessionStatus::Active { touch: true }
        );
        assert_eq!(p.status(T0, T0, T0.plus(min(30))), SessionStatus::Expired);
        let active_all_day = T0.plus(min(12 * 60 - 1));
        assert_eq!(
            p.status(T0, active_all_day, T0.plus(min(12 * 60))),
            SessionStatus::Expired
        );
    }

    #[test]
    fn tokens() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = SessionToken::generate(&mut rng);
        let b = SessionToken::generate(&mut rng);
        assert_ne!(a, b);
        assert_eq!(SessionToken::from_client(a.as_str()), Some(a.clone()));
        assert_eq!(SessionToken::from_client("short"), None);
        assert_eq!(SessionToken::from_client(&"!".repeat(43)), None);
        assert_eq!(a.storage_key().len(), 64);
        assert_ne!(a.storage_key(), a.as_str());
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_browser() {
        let s = ServerSecret::for_tests();
        let t = csrf_token(&s, "browser-1");
        assert!(csrf_valid(&s, "browser-1", &t));
        assert!(!csrf_valid(&s, "browser-2", &t));
        assert!(!csrf_valid(&s, "browser-1", ""));
        assert!(!csrf_valid(&s, "", &csrf_token(&s, "")));
    }
}
