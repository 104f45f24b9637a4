//! One-time login codes (短信验证码) and the rules around them.
//!
//! A code is six random digits, valid for five minutes, good for one login,
//! void after five wrong tries. It is stored only as a keyed hash
//! ([`hash_code`]) and compared in constant time. Sending is limited three
//! ways: a cooldown per phone, a count per phone per hour and a count per IP
//! address per hour. The counts are derived from the stored send records,
//! so every CertHall process sharing a database enforces the same limits.
//! (Pattern: vaultwarden `src/api/core/two_factor/email.rs`.)

use std::time::Duration;

use rand::Rng;
use subtle::ConstantTimeEq;

use crate::refusal::Refusal;
use crate::secret::ServerSecret;
use crate::{Phone, Timestamp};

/// The limits that govern login codes.
#[derive(Debug, Clone)]
pub struct OtpPolicy {
    /// How long a code stays valid.
    pub ttl: Duration,
    /// Minimum time between two codes to the same phone.
    pub resend_cooldown: Duration,
    /// Wrong tries after which a code is void.
    pub max_attempts: u32,
    /// Codes one phone may receive per hour.
    pub per_phone_per_hour: u32,
    /// Codes one IP address may request per hour.
    pub per_ip_per_hour: u32,
}

impl Default for OtpPolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(5 * 60),
            resend_cooldown: Duration::from_secs(60),
            max_attempts: 5,
            per_phone_per_hour: 10,
            per_ip_per_hour: 30,
        }
    }
}

/// The window the hourly limits count over.
pub const RATE_WINDOW: Duration = Duration::from_secs(3600);

/// What the store knows about recent sends, as input to [`OtpPolicy::check_send`].
#[derive(Debug, Clone, Default)]
pub struct SendHistory {
    /// When the last code went to this phone, if any.
    pub last_sent_to_phone: Option<Timestamp>,
    /// Codes sent to this phone within [`RATE_WINDOW`].
    pub sent_to_phone_in_window: u32,
    /// Codes requested from this IP address within [`RATE_WINDOW`].
    pub sent_from_ip_in_window: u32,
}

/// A six-digit login code in clear, only ever held in memory until sent.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginCode(String);

impl std::fmt::Debug for LoginCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginCode(******)")
    }
}

impl LoginCode {
    /// Six uniformly random digits.
    pub fn generate<R: Rng + ?Sized>(rng: &mut R) -> Self {
        Self(format!("{:06}", rng.gen_range(0..1_000_000u32)))
    }

    /// Parses what the user typed (surrounding spaces ignored).
    pub fn parse(input: &str) -> Result<Self, Refusal> {
        let s = input.trim();
        if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(Refusal::InvalidCodeFormat)
        }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SMS text that carries this code.
    pub fn sms_text(&self, ttl: Duration) -> String {
        format!(
            "【CertHall】您的登录验证码为{}，{}分钟内有效。如非本人操作，请忽略本短信。",
            self.0,
            ttl.as_secs() / 60
        )
    }
}

/// The keyed hash under which a code is stored: bound to the phone, so a
/// hash copied to another phone's row does not match.
pub fn hash_code(secret: &ServerSecret, phone: &Phone, code: &LoginCode) -> Vec<u8> {
    secret
        .mac(
            "login-code",
            &[phone.as_str().as_bytes(), code.as_str().as_bytes()],
        )
        .to_vec()
}

/// The keyed hash of a code that confirms one operation (`purpose`, such
/// as `revoke:0A1B…`): bound to the phone and the purpose, so a login code
/// never confirms an operation, nor one operation's code another.
pub fn hash_confirmation(
    secret: &ServerSecret,
    phone: &Phone,
    purpose: &str,
    code: &LoginCode,
) -> Vec<u8> {
    secret
        .mac(
            "confirm-code",
            &[
                phone.as_str().as_bytes(),
                purpose.as_bytes(),
                code.as_str().as_bytes(),
            ],
        )
        .to_vec()
}

/// A code as stored: what [`OtpPolicy::check_code`] needs to decide.
#[derive(Debug, Clone)]
pub struct IssuedCode {
    /// Keyed hash of the code.
    pub code_hash: Vec<u8>,
    /// When it was sent.
    pub sent_at: Timestamp,
    /// Wrong tries so far.
    pub attempts: u32,
    /// When it was used to log in, if it was.
    pub consumed_at: Option<Timestamp>,
}

/// The decision about a presented code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeDecision {
    /// The code is right: consume it and log in.
    Accept,
    /// The code is wrong: count the try, then refuse with the refusal given.
    CountWrongTry(Refusal),
    /// Refuse without changing anything.
    Refuse(Refusal),
}

impl OtpPolicy {
    /// May a code be sent now? Checked in order: cooldown, phone, IP.
    pub fn check_send(&self, history: &SendHistory, now: Timestamp) -> Result<(), Refusal> {
        if let Some(last) = history.last_sent_to_phone {
            let elapsed = now.since(last);
            if elapsed < self.resend_cooldown {
                let left = self.resend_cooldown - elapsed;
                // Round up: "wait 0 seconds" would be a lie.
                let wait_secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                return Err(Refusal::ResendTooSoon { wait_secs });
            }
        }
        if history.sent_to_phone_in_window >= self.per_phone_per_hour {
            return Err(Refusal::PhoneSendLimit);
        }
        if history.sent_from_ip_in_window >= self.per_ip_per_hour {
            return Err(Refusal::IpSendLimit);
        }
        Ok(())
    }

    /// Decides about a presented code against the latest code issued to the
    /// phone (`None` when no code was ever sent).
    pub fn check_code(
        &self,
        issued: Option<&IssuedCode>,
        presented_hash: &[u8],
        now: Timestamp,
    ) -> CodeDecision {
        let Some(issued) = issued else {
            return CodeDecision::Refuse(Refusal::CodeNotRequested);
        };
        if issued.consumed_at.is_some() {
            return CodeDecision::Refuse(Refusal::CodeUsed);
        }
        if issued.attempts >= self.max_attempts {
            return CodeDecision::Refuse(Refusal::CodeExhausted);
        }
        if now.since(issued.sent_at) >= self.ttl {
            return CodeDecision::Refuse(Refusal::CodeExpired);
        }
        let matches: bool = issued.code_hash.ct_eq(presented_hash).into();
        if matches {
            CodeDecision::Accept
        } else {
            let attempts_left = self.max_attempts.saturating_sub(issued.attempts + 1);
            if attempts_left == 0 {
                CodeDecision::CountWrongTry(Refusal::CodeExhausted)
            } else {
                CodeDecision::CountWrongTry(Refusal::CodeWrong { attempts_left })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const T0: Timestamp = Timestamp::from_millis(1_795_588_200_000);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn codes_are_six_digits() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let c = LoginCode::generate(&mut rng);
            assert_eq!(c.as_str().len(), 6);
            assert!(c.as_str().bytes().all(|b| b.is_ascii_digit()));
        }
        assert_eq!(
            format!("{:?}", LoginCode::parse("012345").unwrap()),
            "LoginCode(******)"
        );
    }

    #[test]
    fn parse_refuses_non_codes() {
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６"] {
            assert_eq!(
                LoginCode::parse(bad),
                Err(Refusal::InvalidCodeFormat),
                "{bad}"
            );
        }
        assert_eq!(LoginCode::parse(" 000123 ").unwrap().as_str(), "000123");
    }

    #[test]
    fn send_limits_in_order() {
        let p = OtpPolicy::default();
        let ok = SendHistory::default();
        assert_eq!(p.check_send(&ok, T0), Ok(()));

        let recent = SendHistory {
            last_sent_to_phone: Some(T0.minus(Duration::from_millis(59_500))),
            ..Default::default()
        };
        assert_eq!(
            p.check_send(&recent, T0),
            Err(Refusal::ResendTooSoon { wait_secs: 1 })
        );
        let cooled = SendHistory {
            last_sent_to_phone: Some(T0.minus(secs(60))),
            ..Default::default()
        };
        assert_eq!(p.check_send(&cooled, T0), Ok(()));

        let phone_full = SendHistory {
            last_sent_to_phone: Some(T0.minus(secs(61))),
            sent_to_phone_in_window: 10,
            sent_from_ip_in_window: 0,
        };
        assert_eq!(p.check_send(&phone_full, T0), Err(Refusal::PhoneSendLimit));
        let ip_full = SendHistory {
            sent_from_ip_in_window: 30,
            ..Default::default()
        };
        assert_eq!(p.check_send(&ip_full, T0), Err(Refusal::IpSendLimit));
    }

    #[test]
    fn code_decisions() {
        let p = OtpPolicy::default();
        let s = ServerSecret::for_tests();
        let phone = Phone::parse("13800138000").unwrap();
        let right = hash_code(&s, &phone, &LoginCode::parse("123456").unwrap());
        let wrong = hash_code(&s, &phone, &LoginCode::parse("654321").unwrap());
        let other_phone = hash_code(
            &s,
            &Phone::parse("13900139000").unwrap(),
            &LoginCode::parse("123456").unwrap(),
        );
        let issued = IssuedCode {
            code_hash: right.clone(),
            sent_at: T0,
            attempts: 0,
            consumed_at: None,
        };
        let at = |d| T0.plus(d);

        assert_eq!(
            p.check_code(None, &right, T0),
            CodeDecision::Refuse(Refusal::CodeNotRequested)
        );
        assert_eq!(
            p.check_code(Some(&issued), &right, at(secs(299))),
            CodeDecision::Accept
        );
        assert_eq!(
            p.check_code(Some(&issued), &right, at(secs(300))),
            CodeDecision::Refuse(Refusal::CodeExpired)
        );
        assert_eq!(
            p.check_code(Some(&issued), &wrong, T0),
            CodeDecision::CountWrongTry(Refusal::CodeWrong { attempts_left: 4 })
        );
        assert_eq!(
            p.check_code(Some(&issued), &other_phone, T0),
            CodeDecision::CountWrongTry(Refusal::CodeWrong { attempts_left: 4 })
        );
        let fifth = IssuedCode {
            attempts: 4,
            ..issued.clone()
        };
        assert_eq!(
            p.check_code(Some(&fifth), &wrong, T0),
            CodeDecision::CountWrongTry(Refusal::CodeExhausted)
        );
        let void = IssuedCode {
            attempts: 5,
            ..issued.clone()
        };
        assert_eq!(
            p.check_code(Some(&void), &right, T0),
            CodeDecision::Refuse(Refusal::CodeExhausted)
        );
        let used = IssuedCode {
            consumed_at: Some(T0),
            ..issued
        };
        assert_eq!(
            p.check_code(Some(&used), &right, T0),
            CodeDecision::Refuse(Refusal::CodeUsed)
        );
    }
}
