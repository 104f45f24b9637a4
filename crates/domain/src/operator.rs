//! Counter operators (柜台人员): who they are, how they prove it, and
//! when they are locked out.
//!
//! An operator logs in at `/counter` with a username and password, then a
//! one-time code sent by SMS to the operator's phone (the applicant's code
//! rules, [`crate::otp::OtpPolicy`], under a hash label of its own so a
//! counter code never opens an applicant session). Passwords are stored as
//! argon2id PHC strings (RFC 9106; the `argon2` crate's defaults, OWASP's
//! m = 19 MiB, t = 2, p = 1). Repeated failures lock the operator for a
//! while ([`LockoutPolicy`]); the policy is pure, time is passed in.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::{CryptoRng, RngCore};

use crate::otp::LoginCode;
use crate::secret::ServerSecret;
use crate::{Phone, Refusal, Timestamp};

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorRole {
    /// 柜台审核员: reviews orders.
    Operator,
    /// 管理员: everything an operator does, and administration.
    Admin,
}

impl OperatorRole {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Operator => "柜台审核员",
            Self::Admin => "管理员",
        }
    }
}

impl FromStr for OperatorRole {
    type Err = Refusal;
    fn from_str(s: &str) -> Result<Self, Refusal> {
        match s {
            "operator" => Ok(Self::Operator),
            "admin" => Ok(Self::Admin),
            _ => Err(Refusal::InvalidOperator(
                "角色只能是 operator（柜台审核员）或 admin（管理员）".into(),
            )),
        }
    }
}

impl fmt::Display for OperatorRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid username: 2–32 characters, lower-case ASCII letters, digits,
/// `.`, `_`, `-`, starting with a letter (input is trimmed and lower-cased).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Parses what was typed.
    pub fn parse(input: &str) -> Result<Self, Refusal> {
        let s = input.trim().to_ascii_lowercase();
        let ok = (2..=32).contains(&s.len())
            && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if ok {
            Ok(Self(s))
        } else {
            Err(Refusal::InvalidOperator(
                "用户名应为2–32位小写字母、数字或 . _ -，以字母开头".into(),
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest password accepted (argon2 takes any length; this bounds work).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Checks a new password: 10–128 characters, with letters and digits, not
/// containing the username.
pub fn check_new_password(username: &Username, password: &str) -> Result<(), Refusal> {
    let n = password.chars().count();
    let refuse = |why: &str| Err(Refusal::InvalidOperator(why.into()));
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        return refuse("密码长度应为10–128位");
    }
    if !password.chars().any(|c| c.is_alphabetic()) || !password.chars().any(|c| c.is_numeric()) {
        return refuse("密码应同时包含字母和数字");
    }
    if password.to_lowercase().contains(username.as_str()) {
        return refuse("密码不能包含用户名");
    }
    Ok(())
}

/// The argon2id PHC string of `password` with a fresh salt from `rng`.
pub fn hash_password<R: RngCore + CryptoRng>(
    rng: &mut R,
    password: &str,
) -> Result<String, Refusal> {
    let salt = SaltString::generate(rng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| Refusal::InvalidOperator("密码无法处理".into()))
}

/// True when `password` matches the stored PHC string (argon2 compares
/// the digests in constant time). A malformed stored hash never matches.
pub fn verify_password(stored: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Spends the time of one [`verify_password`] for a username that does not
/// exist, so the answer's timing does not tell which usernames do.
pub fn verify_nobody(password: &str) {
    const SALT: &str = "Y2VydGhhbGwtbm9ib2R5";
    if let Ok(salt) = SaltString::from_b64(SALT) {
        let bounded: String = password.chars().take(MAX_PASSWORD_CHARS).collect();
        let _ = Argon2::default().hash_password(bounded.as_bytes(), &salt);
    }
}

/// The keyed hash under which a counter login code is stored: like
/// [`crate::otp::hash_code`], under its own label.
pub fn hash_counter_code(secret: &ServerSecret, phone: &Phone, code: &LoginCode) -> Vec<u8> {
    secret
        .mac(
            "counter-login-code",
            &[phone.as_str().as_bytes(), code.as_str().as_bytes()],
        )
        .to_vec()
}

/// How many failures lock an operator, and for how long.
#[derive(Debug, Clone)]
pub struct LockoutPolicy {
    /// Consecutive failures (password or SMS code) that lock.
    pub max_failures: u32,
    /// How long the lock lasts.
    pub lock_for: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lock_for: Duration::from_secs(30 * 60),
        }
    }
}

/// The failure count and lock to store after one more failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterFailure {
    /// Consecutive failures now (0 again once locked).
    pub failed_logins: u32,
    /// Set when this failure locks the operator.
    pub locked_until: Option<Timestamp>,
}

impl LockoutPolicy {
    /// Refuses while `locked_until` is in the future.
    pub fn check(&self, locked_until: Option<Timestamp>, now: Timestamp) -> Result<(), Refusal> {
        match locked_until {
            Some(until) if until > now => {
                let left = until.since(now).as_secs();
                Err(Refusal::OperatorLocked {
                    minutes: left.div_ceil(60).max(1),
                })
            }
            _ => Ok(()),
        }
    }

    /// One more failure after `failed_before` consecutive ones.
    pub fn after_failure(&self, failed_before: u32, now: Timestamp) -> AfterFailure {
        let failed = failed_before.saturating_add(1);
        if failed >= self.max_failures {
            AfterFailure {
                failed_logins: 0,
                locked_until: Some(now.plus(self.lock_for)),
            }
        } else {
            AfterFailure {
                failed_logins: failed,
                locked_until: None,
            }
        }
    }
}

/// An operator may not review an order of the account that has the
/// operator's own phone.
pub fn may_review(operator_phone: &Phone, account_phone: &Phone) -> Result<(), Refusal> {
    if operator_phone == account_phone {
        Err(Refusal::OwnOrderReview)
    } else {
        Ok(())
    }
}

/// Reasons the counter gives most often when returning an order, with the
/// step each one sends the applicant back to.
pub const COMMON_REJECT_REASONS: [(&str, crate::order::Step); 5] = [
    ("授权委托书不清晰", crate::order::Step::Materials),
    ("公章不清晰", crate::order::Step::Materials),
    ("法人章或法人签名不清晰", crate::order::Step::Materials),
    ("营业执照信息与填写不一致", crate::order::Step::Enterprise),
    ("经办人身份信息有误", crate::order::Step::Identity),
];

/// The longest return reason kept.
pub const MAX_REASON_CHARS: usize = 200;

/// The reason to store: a common one or typed text (trimmed, required,
/// at most [`MAX_REASON_CHARS`]).
pub fn reject_reason(chosen: &str, typed: &str) -> Result<String, Refusal> {
    let typed = typed.trim();
    let chosen = chosen.trim();
    let reason = if !typed.is_empty() {
        if chosen.is_empty() || chosen == "其他" {
            typed.to_owned()
        } else {
            format!("{chosen}：{typed}")
        }
    } else if COMMON_REJECT_REASONS.iter().any(|(r, _)| *r == chosen) {
        chosen.to_owned()
    } else {
        return Err(Refusal::MissingField("退回原因"));
    };
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(Refusal::InvalidOperator("退回原因不能超过200字".into()));
    }
    Ok(reason)
}

/// The start of a day (`YYYY-MM-DD`) in China Standard Time, for the
/// queue's date filter; `None` when the text is not a date.
pub fn cst_day_start(date: &str) -> Option<Timestamp> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(date.trim(), format).ok()?;
    let offset = time::UtcOffset::from_hms(8, 0, 0).ok()?;
    let secs = day.midnight().assume_offset(offset).unix_timestamp();
    Some(Timestamp::from_millis(secs.checked_mul(1000)?))
}

/// One day, for the end of a date range.
pub const DAY: Duration = Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_795_568_400_000);

    #[test]
    fn usernames() {
        for ok in ["abc", "zhang.san", "li_si-2", "ABC"] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(Username::parse(" Wang ").unwrap().as_str(), "wang");
        for bad in ["", "a", "1abc", "a b", "张三", "a@b", &"a".repeat(33)] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles() {
        assert_eq!("admin".parse::<OperatorRole>(), Ok(OperatorRole::Admin));
        assert_eq!(
            "operator".parse::<OperatorRole>(),
            Ok(OperatorRole::Operator)
        );
        assert!("root".parse::<OperatorRole>().is_err());
    }

    #[test]
    fn password_rules() {
        let u = Username::parse("wang").unwrap();
        assert!(check_new_password(&u, "counter2026x").is_ok());
        for bad in ["short1", "onlyletters", "1234567890", "wang12345678"] {
            assert!(check_new_password(&u, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hash_and_verify() {
        let h = hash_password(&mut rand::rngs::OsRng, "counter2026x").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "counter2026x"));
        assert!(!verify_password(&h, "counter2026y"));
        assert!(!verify_password("not a hash", "counter2026x"));
        verify_nobody("whatever");
    }

    #[test]
    fn lockout() {
        let p = LockoutPolicy::default();
        let mut failed = 0;
        for _ in 0..4 {
            let a = p.after_failure(failed, T0);
            assert_eq!(a.locked_until, None);
            failed = a.failed_logins;
        }
        let a = p.after_failure(failed, T0);
        assert_eq!(a.failed_logins, 0);
        let until = a.locked_until.unwrap();
        assert_eq!(
            p.check(Some(until), T0),
            Err(Refusal::OperatorLocked { minutes: 30 })
        );
        assert_eq!(
            p.check(Some(until), T0.plus(Duration::from_secs(29 * 60 + 1))),
            Err(Refusal::OperatorLocked { minutes: 1 })
        );
        assert_eq!(p.check(Some(until), until), Ok(()));
        assert_eq!(p.check(None, T0), Ok(()));
    }

    #[test]
    fn reasons() {
        assert_eq!(reject_reason("公章不清晰", "").unwrap(), "公章不清晰");
        assert_eq!(reject_reason("其他", " 缺少页 ").unwrap(), "缺少页");
        assert_eq!(
            reject_reason("公章不清晰", "请重拍").unwrap(),
            "公章不清晰：请重拍"
        );
        assert_eq!(
            reject_reason("其他", ""),
            Err(Refusal::MissingField("退回原因"))
        );
        assert_eq!(
            reject_reason("", ""),
            Err(Refusal::MissingField("退回原因"))
        );
        assert!(reject_reason("", &"长".repeat(201)).is_err());
    }

    #[test]
    fn days() {
        assert_eq!(
            cst_day_start("2026-11-25"),
            Some(T0.minus(Duration::from_secs(9 * 3600)))
        );
        assert_eq!(cst_day_start("2026-13-01"), None);
        assert_eq!(cst_day_start(""), None);
    }

    #[test]
    fn own_orders() {
        let a = Phone::parse("13800138000").unwrap();
        let b = Phone::parse("13900139000").unwrap();
        assert_eq!(may_review(&a, &a), Err(Refusal::OwnOrderReview));
        assert_eq!(may_review(&a, &b), Ok(()));
    }
}
