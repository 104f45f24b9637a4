//! 数字证书登录: the rules of login with a certificate on a key.
//!
//! The server issues a one-time challenge; the local key agent has the key
//! sign a [`SignedMessage`] that names the purpose, the origin of the page
//! that asked and the challenge; the server checks all three. Naming the
//! origin means a signature obtained by one site cannot be replayed at
//! another, and naming the purpose means a login signature is never
//! mistaken for any other kind of consent.

use std::time::Duration;

use rand::RngCore;

use crate::clock::Timestamp;
use crate::{AccountId, Refusal};

/// How long a challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(120);

/// Challenges one client IP may ask for per hour (each costs a database
/// row and invites a signature).
pub const CHALLENGES_PER_IP_PER_HOUR: u32 = 120;

/// Wrong relying-platform tokens one client IP may present per hour; after
/// that even a right one is refused from there until the hour has passed
/// (a platform calls from its own servers with one token).
pub const PLATFORM_AUTH_FAILURES_PER_IP_PER_HOUR: u32 = 20;

/// The first line of every message the agent signs, with its version.
pub const SIGNED_MESSAGE_HEADER: &str = "CertHall-Agent-Signature/1";

/// Purposes a signature can be made for (a closed list: a new purpose is a
/// deliberate change of the protocol): `login` to CertHall, `activate` a
/// certificate for a relying platform (证书激活, on the platform's page),
/// `renew` a certificate (证书更新: the old key proves it is present).
pub const PURPOSES: [&str; 3] = ["login", "activate", "renew"];

/// A fresh random challenge: 32 bytes as unpadded base64url (43 chars).
pub fn new_challenge(rng: &mut impl RngCore) -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// True if `s` has the shape of a challenge (16–128 base64url characters),
/// the only shape the agent agrees to sign.
pub fn challenge_well_formed(s: &str) -> bool {
    (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// When a challenge issued at `issued` stops being accepted.
pub fn challenge_expiry(issued: Timestamp) -> Timestamp {
    issued.plus(CHALLENGE_TTL)
}

/// The exact bytes a key signs for a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedMessage {
    /// What the signature is for (one of [`PURPOSES`]).
    pub purpose: String,
    /// The origin of the page that asked (`https://host[:port]`), or
    /// `local` for a program that is not a web page.
    pub origin: String,
    /// The server's challenge.
    pub challenge: String,
}

impl SignedMessage {
    /// The bytes to sign: four lines, LF-separated, no trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!(
            "{SIGNED_MESSAGE_HEADER}\npurpose: {}\norigin: {}\nchallenge: {}",
            self.purpose, self.origin, self.challenge
        )
        .into_bytes()
    }

    /// Reads signed bytes back; `None` unless they are exactly what
    /// [`SignedMessage::to_bytes`] produces for a known purpose, a
    /// plausible origin and a well-formed challenge.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.split('\n');
        if lines.next()? != SIGNED_MESSAGE_HEADER {
            return None;
        }
        let purpose = lines.next()?.strip_prefix("purpose: ")?;
        let origin = lines.next()?.strip_prefix("origin: ")?;
        let challenge = lines.next()?.strip_prefix("challenge: ")?;
        if lines.next().is_some()
            || !PURPOSES.contains(&purpose)
            || !origin_well_formed(origin)
            || !challenge_well_formed(challenge)
        {
            return None;
        }
        let message = Self {
            purpose: purpose.to_owned(),
            origin: origin.to_owned(),
            challenge: challenge.to_owned(),
        };
        (message.to_bytes() == bytes).then_some(message)
    }
}

/// True for `local` and for `http(s)://host[:port]` without path, query or
/// anything that could break the message's lines.
pub fn origin_well_formed(origin: &str) -> bool {
    if origin == "local" {
        return true;
    }
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    match rest {
        Some(host) => {
            !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        }
        None => false,
    }
}

/// The origin (`scheme://host[:port]`) of a URL such as CertHall's
/// configured public URL.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let mut host = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => "",
    };
    if !default_port.is_empty() && host.ends_with(default_port) {
        host.truncate(host.len() - default_port.len());
    }
    let origin = format!("{scheme}://{host}");
    origin_well_formed(&origin).then_some(origin)
}

/// What the database knows about a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeState {
    /// Whom it was issued to.
    pub binding: String,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
    /// It was answered already.
    pub used: bool,
}

/// The binding of a challenge issued to an API client (no browser).
pub const API_BINDING: &str = "api";

/// The binding of a challenge issued to a browser: the SHA-256 of its
/// browser id (the id itself stays in the cookie).
pub fn browser_binding(browser_id: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(browser_id.as_bytes()))
}

/// May `state` be answered now by the holder of `binding`? A challenge
/// answered before is a replay whoever presents it (the browser id changes
/// at login, so a replay from the same browser carries another binding).
pub fn check_challenge(
    state: Option<&ChallengeState>,
    binding: &str,
    now: Timestamp,
) -> Result<(), Refusal> {
    match state {
        None => Err(Refusal::CertChallengeInvalid),
        Some(s) if s.used => Err(Refusal::CertChallengeUsed),
        Some(s) if s.binding != binding => Err(Refusal::CertChallengeInvalid),
        Some(s) if now >= s.expires_at => Err(Refusal::CertChallengeExpired),
        Some(_) => Ok(()),
    }
}

/// What the server found out about a presented certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// CertHall issued exactly this certificate (same DER in its records)
    /// and its issuing CA's signature on it verifies.
    pub issued_here: bool,
    /// The challenge signature verifies with the certificate's key over a
    /// message for this purpose, origin and challenge.
    pub signature_valid: bool,
    /// Its key usage allows digital signatures (a login is one).
    pub signing: bool,
    /// It is revoked.
    pub revoked: bool,
    /// Its validity.
    pub not_before: Timestamp,
    /// Its validity.
    pub not_after: Timestamp,
    /// The account it belongs to.
    pub account: Option<AccountId>,
}

/// The account a certificate logs in to, or why not. Possession of the key
/// (the signature) is proved before anything about the certificate's
/// status is revealed.
pub fn check_certificate(facts: &CertificateFacts, now: Timestamp) -> Result<AccountId, Refusal> {
    if !facts.issued_here {
        return Err(Refusal::CertUnknown);
    }
    if !facts.signature_valid {
        return Err(Refusal::CertBadSignature);
    }
    if facts.revoked {
        return Err(Refusal::CertRevoked);
    }
    if !facts.signing {
        return Err(Refusal::CertNotForLogin);
    }
    if now < facts.not_before {
        return Err(Refusal::CertNotYetValid);
    }
    if now > facts.not_after {
        return Err(Refusal::CertExpired(facts.not_after.display_cst()));
    }
    facts.account.ok_or(Refusal::CertNotBound)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signed_message_round_trips_and_rejects_tampering() {
        let m = SignedMessage {
            purpose: "login".into(),
            origin: "http://127.0.0.1:8080".into(),
            challenge: new_challenge(&mut rand::thread_rng()),
        };
        let bytes = m.to_bytes();
        assert_eq!(SignedMessage::parse(&bytes), Some(m.clone()));
        let text = String::from_utf8(bytes.clone()).unwrap();
        for bad in [
            text.replace("login", "pay"),
            format!("{text}\n"),
            text.replace("CertHall-Agent-Signature/1", "CertHall-Agent-Signature/2"),
            text.replace("http://127.0.0.1:8080", "http://a/b"),
            text.replace(&m.challenge, "short"),
            text.replace("origin: ", "origin:  "),
        ] {
            assert_eq!(SignedMessage::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://CA.example.cn/hall/").as_deref(),
            Some("https://ca.example.cn")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("ftp//x"), None);
        assert_eq!(
            origin_of("https://hall.example.cn:443/").as_deref(),
            Some("https://hall.example.cn")
        );
        assert_eq!(origin_of("http://a:80").as_deref(), Some("http://a"));
        assert_eq!(origin_of("http://a:8443").as_deref(), Some("http://a:8443"));
        assert!(origin_well_formed("local"));
        assert!(!origin_well_formed("http://a b"));
        assert!(!origin_well_formed("http://a\nb"));
    }

    #[test]
    fn challenge_checks() {
        let t = Timestamp::from_millis(1_000_000);
        let state = ChallengeState {
            binding: "b".into(),
            expires_at: challenge_expiry(t),
            used: false,
        };
        assert_eq!(check_challenge(Some(&state), "b", t), Ok(()));
        assert_eq!(
            check_challenge(None, "b", t),
            Err(Refusal::CertChallengeInvalid)
        );
        assert_eq!(
            check_challenge(Some(&state), "other", t),
            Err(Refusal::CertChallengeInvalid)
        );
        assert_eq!(
            check_challenge(Some(&state), "b", t.plus(CHALLENGE_TTL)),
            Err(Refusal::CertChallengeExpired)
        );
        let used = ChallengeState {
            used: true,
            ..state
        };
        assert_eq!(
            check_challenge(Some(&used), "b", t),
            Err(Refusal::CertChallengeUsed)
        );
    }

    #[test]
    fn certificate_checks_prove_possession_first() {
        let t = Timestamp::from_millis(1_800_000_000_000);
        let day = Duration::from_secs(86_400);
        let good = CertificateFacts {
            issued_here: true,
            signature_valid: true,
            signing: true,
            revoked: false,
            not_before: t.minus(day),
            not_after: t.plus(day),
            account: Some(AccountId(7)),
        };
        assert_eq!(check_certificate(&good, t), Ok(AccountId(7)));
        let cases = [
            (
                CertificateFacts {
                    issued_here: false,
                    ..good.clone()
                },
                "cert_unknown",
            ),
            (
                CertificateFacts {
                    signature_valid: false,
                    revoked: true,
                    ..good.clone()
                },
                "cert_bad_signature",
            ),
            (
                CertificateFacts {
                    revoked: true,
                    ..good.clone()
                },
                "cert_revoked",
            ),
            (
                CertificateFacts {
                    signing: false,
                    ..good.clone()
                },
                "cert_not_for_login",
            ),
            (
                CertificateFacts {
                    not_before: t.plus(day),
                    ..good.clone()
                },
                "cert_not_yet_valid",
            ),
            (
                CertificateFacts {
                    not_after: t.minus(day),
                    ..good.clone()
                },
                "cert_expired",
            ),
            (
                CertificateFacts {
                    account: None,
                    ..good.clone()
                },
                "cert_not_bound",
            ),
        ];
        for (facts, code) in cases {
            assert_eq!(check_certificate(&facts, t).unwrap_err().code(), code);
        }
    }

    #[test]
    fn challenges_are_fresh_and_well_formed() {
        let a = new_challenge(&mut rand::thread_rng());
        let b = new_challenge(&mut rand::thread_rng());
        assert_ne!(a, b);
        assert!(challenge_well_formed(&a));
        assert_eq!(a.len(), 43);
        assert!(!challenge_well_formed("abc"));
        assert!(!challenge_well_formed(&"a/".repeat(10)));
    }
}
