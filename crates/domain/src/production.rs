//! 制证 (step 8): a producer at the counter writes a paid order's
//! certificate onto a UKey through their key agent.
//!
//! One order may take several **attempts** (the agent went away, the key
//! was faulty); at most one is open at a time. An attempt's states:
//!
//! ```text
//!   Started ──CSR accepted, certificate issued──► Issued ──read back, equal──► Completed
//!      │                                             │
//!      └──────────── failure reported / stale ───────┴──► Failed / Abandoned
//!                                                          (an issued certificate is
//!                                                           revoked: cessationOfOperation)
//! ```
//!
//! The PINs are CertHall's: a random user PIN (sent to the applicant by
//! SMS once the key is made) and a random SO PIN (kept sealed for online
//! PIN unlock, never shown).

use std::fmt;
use std::time::Duration;

use rand::{CryptoRng, Rng, RngCore};

use crate::Refusal;

/// The key pair an application's certificates use (generated in the
/// token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// SM2 (国密).
    Sm2,
    /// ECDSA P-256.
    P256,
    /// RSA 2048.
    Rsa2048,
}

impl KeyKind {
    /// Every kind.
    pub const ALL: [KeyKind; 3] = [KeyKind::Sm2, KeyKind::P256, KeyKind::Rsa2048];

    /// Stored name, also the key agent's algorithm name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sm2 => "sm2",
            Self::P256 => "p256",
            Self::Rsa2048 => "rsa2048",
        }
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Sm2 => "SM2（国密）",
            Self::P256 => "ECC P-256",
            Self::Rsa2048 => "RSA 2048",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s.trim())
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a production attempt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptState {
    /// PINs chosen, the key being prepared.
    Started,
    /// A certificate was issued for the key's request; not yet confirmed
    /// on the key.
    Issued,
    /// The certificate was read back from the key: done.
    Completed,
    /// The producer's page reported a failure.
    Failed,
    /// Nobody finished it in time (the page was closed).
    Abandoned,
}

impl AttemptState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Issued => "issued",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Started,
            Self::Issued,
            Self::Completed,
            Self::Failed,
            Self::Abandoned,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Started => "制证中",
            Self::Issued => "证书已签发，待写入",
            Self::Completed => "制证完成",
            Self::Failed => "制证失败",
            Self::Abandoned => "已超时作废",
        }
    }

    /// Still open (blocks another attempt on the same order).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Started | Self::Issued)
    }
}

/// Something that happens to an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEvent {
    /// The key's request was accepted and a certificate issued.
    Issue,
    /// The certificate read back from the key equals the issued one.
    Confirm,
    /// The page reported a failure.
    Fail,
    /// Open for longer than [`ATTEMPT_STALE`].
    Abandon,
}

/// The attempt's state after `event`.
pub fn attempt_transition(
    state: AttemptState,
    event: AttemptEvent,
) -> Result<AttemptState, Refusal> {
    use AttemptEvent as E;
    use AttemptState as S;
    match (state, event) {
        (S::Started, E::Issue) => Ok(S::Issued),
        (S::Issued, E::Confirm) => Ok(S::Completed),
        (S::Started | S::Issued, E::Fail) => Ok(S::Failed),
        (S::Started | S::Issued, E::Abandon) => Ok(S::Abandoned),
        _ => Err(Refusal::ProductionAttemptClosed(state.label_zh())),
    }
}

/// An open attempt older than this is abandoned by the production job
/// (its certificate, if any, revoked) so the order can be produced again.
pub const ATTEMPT_STALE: Duration = Duration::from_secs(15 * 60);

/// A random six-digit user PIN, avoiding the guessable ones (one digit
/// repeated, a run up or down).
pub fn user_pin<R: RngCore + CryptoRng>(rng: &mut R) -> String {
    loop {
        let pin: String = (0..6)
            .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
            .collect();
        if !guessable(&pin) {
            return pin;
        }
    }
}

fn guessable(pin: &str) -> bool {
    let d: Vec<i16> = pin
        .bytes()
        .map(|b| i16::from(b) - i16::from(b'0'))
        .collect();
    let steps: Vec<i16> = d.windows(2).map(|w| w[1] - w[0]).collect();
    steps.iter().all(|s| *s == 0) || steps.iter().all(|s| *s == 1) || steps.iter().all(|s| *s == -1)
}

/// A random 16-character SO PIN (letters and digits without the easily
/// confused `0 O 1 l I`). Nobody types it: CertHall keeps it sealed.
pub fn so_pin<R: RngCore + CryptoRng>(rng: &mut R) -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    (0..16)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Longest token label in bytes (PKCS#11's `CK_TOKEN_INFO.label`).
pub const TOKEN_LABEL_BYTES: usize = 32;

/// The token's label: the enterprise's name, as much of it as fits, then
/// the order number — `枣庄市建设工程集团-1024`.
pub fn token_label(order_id: i64, enterprise: &str) -> String {
    let suffix = format!("-{order_id}");
    let room = TOKEN_LABEL_BYTES.saturating_sub(suffix.len());
    let mut name = String::new();
    for c in enterprise.trim().chars().filter(|c| !c.is_control()) {
        if name.len() + c.len_utf8() > room {
            break;
        }
        name.push(c);
    }
    if name.is_empty() {
        format!("CertHall{suffix}")
    } else {
        format!("{name}{suffix}")
    }
}

/// The certificate's subject, from the order's verified data (never from
/// the key's request): `C=CN,O=<enterprise>,OU=<经办人>,USCC=<code>,CN=<enterprise>`.
pub fn certificate_subject(enterprise: &str, uscc: &str, applicant: &str) -> String {
    let esc = |v: &str| v.trim().replace(',', "\\,");
    let mut s = format!("C=CN,O={}", esc(enterprise));
    if !applicant.trim().is_empty() {
        s.push_str(&format!(",OU={}", esc(applicant)));
    }
    s.push_str(&format!(",USCC={},CN={}", esc(uscc), esc(enterprise)));
    s
}

/// Where in the production a failure happened (as the page reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedStage {
    /// Initialising the blank key.
    Init,
    /// Generating the key pair and its request.
    Keygen,
    /// CertHall issuing the certificate.
    Issue,
    /// Writing the certificate to the key.
    Write,
    /// Reading it back.
    ReadBack,
}

impl FailedStage {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Keygen => "keygen",
            Self::Issue => "issue",
            Self::Write => "write",
            Self::ReadBack => "read_back",
        }
    }

    /// Reads a name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Init,
            Self::Keygen,
            Self::Issue,
            Self::Write,
            Self::ReadBack,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Init => "初始化 UKey",
            Self::Keygen => "在 UKey 内生成密钥",
            Self::Issue => "签发证书",
            Self::Write => "写入证书",
            Self::ReadBack => "读回校验",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::rngs::OsRng;

    #[test]
    fn attempts_close_once() {
        use AttemptEvent as E;
        use AttemptState as S;
        assert_eq!(attempt_transition(S::Started, E::Issue), Ok(S::Issued));
        assert_eq!(attempt_transition(S::Issued, E::Confirm), Ok(S::Completed));
        assert_eq!(attempt_transition(S::Issued, E::Fail), Ok(S::Failed));
        assert_eq!(attempt_transition(S::Started, E::Abandon), Ok(S::Abandoned));
        assert!(attempt_transition(S::Started, E::Confirm).is_err());
        assert!(attempt_transition(S::Issued, E::Issue).is_err());
        for closed in [S::Completed, S::Failed, S::Abandoned] {
            assert!(!closed.is_open());
            for e in [E::Issue, E::Confirm, E::Fail, E::Abandon] {
                assert!(attempt_transition(closed, e).is_err());
            }
            assert_eq!(AttemptState::parse(closed.as_str()), Some(closed));
        }
    }

    #[test]
    fn pins_are_random_and_not_guessable() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = user_pin(&mut OsRng);
            assert_eq!(p.len(), 6);
            assert!(p.bytes().all(|b| b.is_ascii_digit()));
            assert!(!guessable(&p));
            seen.insert(p);
            let so = so_pin(&mut OsRng);
            assert_eq!(so.len(), 16);
            assert!(so
                .chars()
                .all(|c| c.is_ascii_alphanumeric() && !"0O1lI".contains(c)));
        }
        assert!(seen.len() > 190, "{}", seen.len());
        assert!(guessable("111111") && guessable("123456") && guessable("987654"));
        assert!(!guessable("123457"));
    }

    #[test]
    fn labels_fit_the_token() {
        let l = token_label(1024, "枣庄市建设工程集团有限责任公司");
        assert!(l.len() <= TOKEN_LABEL_BYTES, "{l}");
        assert_eq!(l, "枣庄市建设工程集团-1024");
        assert_eq!(token_label(7, "  "), "CertHall-7");
        assert_eq!(token_label(7, "ACME"), "ACME-7");
    }

    #[test]
    fn subject_comes_from_verified_data() {
        assert_eq!(
            certificate_subject("甲公司,分部", "91370400MA3C5X1234", "张三"),
            "C=CN,O=甲公司\\,分部,OU=张三,USCC=91370400MA3C5X1234,CN=甲公司\\,分部"
        );
        assert_eq!(KeyKind::parse("p256"), Some(KeyKind::P256));
        assert_eq!(KeyKind::parse("ecdsa"), None);
    }
}
