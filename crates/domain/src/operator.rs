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
use serde::{Deserialize, Serialize};

use crate::otp::LoginCode;
use crate::secret::ServerSecret;
use crate::{Phone, Refusal, Timestamp};

/// The id of a counter operator (柜台人员). The store keeps it as a 64-bit
/// integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OperatorId(pub i64);

impl fmt::Display for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// What became of one counter password try (a row of the password-try
/// history, [`PasswordTries`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryOutcome {
    /// Counted, the password check still running (or never finished):
    /// counts as a failure.
    Pending,
    /// The password (or username) was wrong.
    Wrong,
    /// The password was right (the SMS code still to come). Counts in the
    /// run like a failure until the login completes: a run of tries is
    /// ended only by [`Self::LoggedIn`], so no number of concurrent tries
    /// gets more than the lock's number of verdicts.
    Right,
    /// A login completed (password and SMS code): ends a run of failures.
    LoggedIn,
    /// Refused before any check (locked or too many tries from the IP).
    Refused,
}

impl TryOutcome {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Wrong => "wrong",
            Self::Right => "right",
            Self::LoggedIn => "logged_in",
            Self::Refused => "refused",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "wrong" => Self::Wrong,
            "right" => Self::Right,
            "logged_in" => Self::LoggedIn,
            "refused" => Self::Refused,
            _ => return None,
        })
    }

    /// Counts towards the lock (a password try not followed by a login).
    pub fn counts(self) -> bool {
        matches!(self, Self::Pending | Self::Wrong | Self::Right)
    }
}

/// One counter password try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordTry {
    /// The client's address, when known.
    pub ip: Option<String>,
    /// When it was counted.
    pub at: Timestamp,
    /// Its outcome.
    pub outcome: TryOutcome,
}

/// The password tries a new one is judged by: those for the username
/// (from every address, oldest first, over [`CounterLoginLimits::history`])
/// and how many came from the client's address in the address window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordTries {
    /// Tries for this username, oldest first.
    pub for_user: Vec<PasswordTry>,
    /// Failed tries (and tries still being checked) from this address for
    /// any username since the start of the address window. Right
    /// passwords do not count: an office behind one address logs in.
    pub from_ip: u32,
    /// The oldest try counted in `from_ip`.
    pub oldest_from_ip: Option<Timestamp>,
    /// The outcome of the latest try from this address, any username.
    pub last_from_ip: Option<TryOutcome>,
}

/// The limits on counter password tries. The password is counted before
/// it is checked, so concurrent tries cannot all reach the (slow) check.
///
/// - **(username, address)**: [`LockoutPolicy`] on the tries from one
///   address: 5 password tries without a completed login lock that username *from that
///   address* for 30 minutes. Someone guessing a username from elsewhere
///   does not lock the operator out of their own desk.
/// - **username, from everywhere**: a slower lock, 20 consecutive
///   failures from any addresses lock the username everywhere for 30
///   minutes.
/// - **address**: at most 30 failed tries (any username) per 15 minutes
///   from one address.
///
/// A completed login ends a run of failures. Pure: the history and the time
/// are passed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterLoginLimits {
    /// Per (username, address).
    pub per_address: LockoutPolicy,
    /// Per username, from every address.
    pub per_user: LockoutPolicy,
    /// Tries per address in [`Self::address_window`].
    pub address_max: u32,
    /// The address window.
    pub address_window: Duration,
    /// How far back the history is read (longer than either lock).
    pub history: Duration,
}

impl Default for CounterLoginLimits {
    fn default() -> Self {
        Self {
            per_address: LockoutPolicy::default(),
            per_user: LockoutPolicy {
                max_failures: 20,
                lock_for: Duration::from_secs(30 * 60),
            },
            address_max: 30,
            address_window: Duration::from_secs(15 * 60),
            history: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl CounterLoginLimits {
    /// May a new try from `ip` be counted and checked now?
    pub fn check(
        &self,
        tries: &PasswordTries,
        ip: Option<&str>,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        if tries.from_ip >= self.address_max {
            let until = tries
                .oldest_from_ip
                .unwrap_or(now)
                .plus(self.address_window);
            return Err(Refusal::CounterTooManyTries {
                minutes: minutes_left(until, now),
            });
        }
        let everywhere = tries.for_user.iter();
        let from_here = tries.for_user.iter().filter(|t| t.ip.as_deref() == ip);
        let locks = [
            replay(&self.per_user, everywhere),
            replay(&self.per_address, from_here),
        ];
        match locks.into_iter().flatten().filter(|u| *u > now).max() {
            Some(until) => Err(Refusal::OperatorLocked {
                minutes: minutes_left(until, now),
            }),
            None => Ok(()),
        }
    }
}

/// Plays `policy` over the tries (oldest first): the lock they leave.
fn replay<'a>(
    policy: &LockoutPolicy,
    tries: impl Iterator<Item = &'a PasswordTry>,
) -> Option<Timestamp> {
    let mut failed = 0;
    let mut locked_until = None;
    for t in tries {
        match t.outcome {
            TryOutcome::LoggedIn => failed = 0,
            o if o.counts() => {
                if locked_until.is_some_and(|u| u > t.at) {
                    continue;
                }
                let after = policy.after_failure(failed, t.at);
                failed = after.failed_logins;
                if after.locked_until.is_some() {
                    locked_until = after.locked_until;
                }
            }
            _ => {}
        }
    }
    locked_until
}

fn minutes_left(until: Timestamp, now: Timestamp) -> u64 {
    until.since(now).as_secs().div_ceil(60).max(1)
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
    counter_reason(&reason, "退回原因")
}

/// A reason the counter gives (a return, a cancellation), as stored:
/// trimmed, required, and refused — never cut — when longer than
/// [`MAX_REASON_CHARS`], so the applicant reads what the operator wrote.
pub fn counter_reason(text: &str, what: &'static str) -> Result<String, Refusal> {
    let reason = text.trim();
    if reason.is_empty() {
        return Err(Refusal::MissingField(what));
    }
    let n = reason.chars().count();
    if n > MAX_REASON_CHARS {
        return Err(Refusal::InvalidField(format!(
            "{what}不能超过{MAX_REASON_CHARS}字（现为{n}字），请精简后再提交"
        )));
    }
    Ok(reason.to_owned())
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

    fn try_at(ip: &str, secs: u64, outcome: TryOutcome) -> PasswordTry {
        PasswordTry {
            ip: Some(ip.to_owned()),
            at: T0.plus(Duration::from_secs(secs)),
            outcome,
        }
    }

    #[test]
    fn five_failures_from_one_address_lock_that_address_only() {
        let limits = CounterLoginLimits::default();
        let mut tries = PasswordTries::default();
        for i in 0..4 {
            tries
                .for_user
                .push(try_at("10.0.0.1", i, TryOutcome::Wrong));
        }
        let now = T0.plus(Duration::from_secs(10));
        assert_eq!(limits.check(&tries, Some("10.0.0.1"), now), Ok(()));
        // A try still being checked counts as a failure.
        tries
            .for_user
            .push(try_at("10.0.0.1", 5, TryOutcome::Pending));
        assert_eq!(
            limits.check(&tries, Some("10.0.0.1"), now),
            Err(Refusal::OperatorLocked { minutes: 30 })
        );
        // Refused tries do not extend the lock.
        tries
            .for_user
            .push(try_at("10.0.0.1", 60, TryOutcome::Refused));
        // The operator's own desk is not locked by them.
        assert_eq!(limits.check(&tries, Some("10.0.0.2"), now), Ok(()));
        let later = T0.plus(Duration::from_secs(5 + 30 * 60));
        assert_eq!(limits.check(&tries, Some("10.0.0.1"), later), Ok(()));
        // After the lock the count starts again.
        tries
            .for_user
            .push(try_at("10.0.0.1", 5 + 30 * 60, TryOutcome::Wrong));
        assert_eq!(limits.check(&tries, Some("10.0.0.1"), later), Ok(()));
    }

    #[test]
    fn a_completed_login_ends_a_run_of_failures_a_right_password_does_not() {
        let limits = CounterLoginLimits::default();
        let now = T0.plus(Duration::from_secs(20));
        let run = |outcomes: &[TryOutcome]| {
            let mut tries = PasswordTries::default();
            for (i, o) in outcomes.iter().enumerate() {
                tries.for_user.push(try_at("10.0.0.1", i as u64, *o));
            }
            limits.check(&tries, Some("10.0.0.1"), now)
        };
        use TryOutcome::{LoggedIn, Right, Wrong};
        // A right password whose SMS code never came does not reset, and
        // counts in the run: five password verdicts at most, whatever the
        // race between them.
        assert!(run(&[Wrong, Wrong, Right, Wrong, Wrong]).is_err());
        assert_eq!(run(&[Wrong, Wrong, Right, Wrong]), Ok(()));
        // A completed login does.
        assert_eq!(
            run(&[Wrong, Wrong, Wrong, Right, LoggedIn, Wrong, Wrong, Wrong, Wrong]),
            Ok(())
        );
        assert!(run(&[Wrong, Wrong, Wrong, LoggedIn, Wrong, Wrong, Wrong, Wrong, Wrong]).is_err());
    }

    #[test]
    fn failures_from_many_addresses_lock_the_username_everywhere() {
        let limits = CounterLoginLimits::default();
        let mut tries = PasswordTries::default();
        for i in 0..19 {
            let ip = format!("10.1.{}.1", i % 5);
            tries.for_user.push(try_at(&ip, i, TryOutcome::Wrong));
        }
        let now = T0.plus(Duration::from_secs(60));
        assert_eq!(limits.check(&tries, Some("10.9.9.9"), now), Ok(()));
        tries
            .for_user
            .push(try_at("10.1.7.1", 30, TryOutcome::Wrong));
        assert_eq!(
            limits.check(&tries, Some("10.9.9.9"), now),
            Err(Refusal::OperatorLocked { minutes: 30 })
        );
    }

    #[test]
    fn one_address_may_not_try_without_end() {
        let limits = CounterLoginLimits::default();
        let tries = PasswordTries {
            for_user: Vec::new(),
            from_ip: 30,
            oldest_from_ip: Some(T0),
            last_from_ip: Some(TryOutcome::Wrong),
        };
        let now = T0.plus(Duration::from_secs(5 * 60));
        assert_eq!(
            limits.check(&tries, Some("10.0.0.1"), now),
            Err(Refusal::CounterTooManyTries { minutes: 10 })
        );
        let fewer = PasswordTries {
            from_ip: 29,
            ..tries
        };
        assert_eq!(limits.check(&fewer, Some("10.0.0.1"), now), Ok(()));
    }

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
        let long = "字".repeat(201);
        let err = reject_reason("其他", &long).unwrap_err();
        assert!(
            err.message_zh().contains("不能超过200字（现为201字）"),
            "{err:?}"
        );
        assert_eq!(
            counter_reason(&"字".repeat(200), "取消原因")
                .unwrap()
                .chars()
                .count(),
            200
        );
        assert_eq!(
            counter_reason("  ", "取消原因"),
            Err(Refusal::MissingField("取消原因"))
        );
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
