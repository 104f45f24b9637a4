//! The life of an issued certificate (issue 12), as rules: the status an
//! applicant and a relying platform see, the window in which it may be
//! renewed online (证书更新), and which expiry reminder (到期提醒) is due.
//! Pure: the facts come in (dates, revocation, activation), the decision
//! comes out; the service stores and sends.

use std::fmt;
use std::time::Duration;

use crate::clock::Timestamp;

const DAY: Duration = Duration::from_secs(86_400);

/// Whole days from `now` to `not_after`, counting a started day as a
/// day; negative once it has passed (−1 on the day after).
pub fn days_left(not_after: Timestamp, now: Timestamp) -> i64 {
    let day = 86_400_000;
    let left = not_after.millis().saturating_sub(now.millis());
    if left >= 0 {
        (left + day - 1) / day
    } else {
        -((-left + day - 1) / day)
    }
}

/// What is known about one certificate, from its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// Its revocation, if any.
    pub revocation: Option<Revocation>,
    /// Activated for at least one relying platform (证书激活).
    pub activated: bool,
}

/// A revocation as the status needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// When it took effect.
    pub at: Timestamp,
    /// Revoked because a newer certificate replaced it (renewal or change:
    /// RFC 5280 `superseded`), not because of a problem.
    pub superseded: bool,
}

/// A certificate's status: issued → activated → expired / revoked /
/// superseded. Derived from the facts at a moment, never stored, so it
/// cannot disagree with the dates or the revocation record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateStatus {
    /// Issued, validity not started yet (backdated issuance makes this rare).
    NotYetValid,
    /// Valid, not yet activated for a relying platform.
    Issued,
    /// Valid and activated for at least one relying platform.
    Activated,
    /// Past its validity.
    Expired,
    /// Revoked (注销) for a reason other than replacement.
    Revoked,
    /// Replaced by a renewed or changed certificate.
    Superseded,
}

impl CertificateStatus {
    /// The status of `facts` at `now`. A revocation outranks the dates: a
    /// certificate revoked and then expired is still shown as revoked.
    pub fn at(facts: &CertificateFacts, now: Timestamp) -> Self {
        match facts.revocation {
            Some(r) if r.at <= now && r.superseded => return Self::Superseded,
            Some(r) if r.at <= now => return Self::Revoked,
            _ => {}
        }
        if now < facts.not_before {
            Self::NotYetValid
        } else if now >= facts.not_after {
            Self::Expired
        } else if facts.activated {
            Self::Activated
        } else {
            Self::Issued
        }
    }

    /// Whether a relying platform may accept the certificate now.
    pub fn is_usable(self) -> bool {
        matches!(self, Self::Issued | Self::Activated)
    }

    /// Stable code (API, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotYetValid => "not_yet_valid",
            Self::Issued => "issued",
            Self::Activated => "activated",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Superseded => "superseded",
        }
    }

    /// What 我的证书 shows.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::NotYetValid => "未生效",
            Self::Issued => "有效（未激活）",
            Self::Activated => "已激活",
            Self::Expired => "已过期",
            Self::Revoked => "已注销",
            Self::Superseded => "已更新（被新证书替换）",
        }
    }
}

impl fmt::Display for CertificateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a certificate may be renewed online: from `before_expiry` before
/// its end of validity until `after_expiry` after it (configurable; the
/// seed's rule is 90 days before until 365 days after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalWindow {
    /// How long before expiry renewal opens.
    pub before_expiry: Duration,
    /// How long after expiry renewal stays open.
    pub after_expiry: Duration,
}

impl Default for RenewalWindow {
    fn default() -> Self {
        Self {
            before_expiry: DAY * 90,
            after_expiry: DAY * 365,
        }
    }
}

/// Whether a renewal may start now, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalTiming {
    /// Within the window.
    Open,
    /// Too early: the window opens at `opens_at`.
    TooEarly {
        /// When renewal opens.
        opens_at: Timestamp,
    },
    /// Too late: the window closed at `closed_at`; a new application is
    /// needed.
    TooLate {
        /// When renewal closed.
        closed_at: Timestamp,
    },
    /// The certificate was revoked or replaced: it cannot be renewed (a
    /// replaced one's successor can).
    NotRenewable(CertificateStatus),
}

impl RenewalWindow {
    /// Whether the certificate of `facts` may be renewed at `now`.
    pub fn check(&self, facts: &CertificateFacts, now: Timestamp) -> RenewalTiming {
        let status = CertificateStatus::at(facts, now);
        if matches!(
            status,
            CertificateStatus::Revoked | CertificateStatus::Superseded
        ) {
            return RenewalTiming::NotRenewable(status);
        }
        let opens_at = facts.not_after.minus(self.before_expiry);
        let closed_at = facts.not_after.plus(self.after_expiry);
        if now < opens_at {
            RenewalTiming::TooEarly { opens_at }
        } else if now >= closed_at {
            RenewalTiming::TooLate { closed_at }
        } else {
            RenewalTiming::Open
        }
    }
}

impl RenewalTiming {
    /// What the renewal page says when renewal cannot start, in Chinese:
    /// why, and what to do instead. `None` when it is open.
    pub fn message_zh(&self, not_after: Timestamp) -> Option<String> {
        let expires = not_after.date_zh();
        match self {
            Self::Open => None,
            Self::TooEarly { opens_at } => Some(format!(
                "该证书将于{expires}到期，自{}起可以在线更新。现在无需更新，证书可以继续正常使用。",
                opens_at.date_zh()
            )),
            Self::TooLate { closed_at } => Some(format!(
                "该证书已于{expires}到期，在线更新的期限已于{}结束。请重新申请新证书（首页“新办证书”）。",
                closed_at.date_zh()
            )),
            Self::NotRenewable(CertificateStatus::Superseded) => Some(
                "该证书已被新证书替换，无需更新。请在“我的证书”中查看新证书。".to_owned(),
            ),
            Self::NotRenewable(_) => Some(
                "该证书已注销，无法更新。如需继续使用，请申请补办或新办证书。".to_owned(),
            ),
        }
    }
}

/// The reasons an applicant chooses from to revoke (注销) a certificate
/// online, in plain Chinese, each with its RFC 5280 CRLReason. Counter
/// staff have the full list (`certhall_ca::crl::Reason`); `superseded` is
/// set by renewal and change, never chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplicantRevocationReason {
    /// The key was lost or may be known to someone else: keyCompromise (1).
    KeyLost,
    /// The enterprise's registered data changed: affiliationChanged (3).
    DataChanged,
    /// The certificate is no longer needed: cessationOfOperation (5).
    NoLongerNeeded,
    /// Another reason: unspecified (0).
    Other,
}

impl ApplicantRevocationReason {
    /// Every choice, in the order the page offers them.
    pub const ALL: [Self; 4] = [
        Self::KeyLost,
        Self::DataChanged,
        Self::NoLongerNeeded,
        Self::Other,
    ];

    /// The form value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyLost => "key_lost",
            Self::DataChanged => "data_changed",
            Self::NoLongerNeeded => "no_longer_needed",
            Self::Other => "other",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The RFC 5280 name of the CRLReason it is recorded as.
    pub fn rfc5280_name(self) -> &'static str {
        match self {
            Self::KeyLost => "keyCompromise",
            Self::DataChanged => "affiliationChanged",
            Self::NoLongerNeeded => "cessationOfOperation",
            Self::Other => "unspecified",
        }
    }

    /// What the applicant reads.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::KeyLost => "证书介质（UKey）丢失，或密钥可能已被他人获取",
            Self::DataChanged => "单位名称、法定代表人等登记信息已变更",
            Self::NoLongerNeeded => "不再需要使用该证书",
            Self::Other => "其他原因",
        }
    }
}

/// Why a key is replaced (补办).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplacementReason {
    /// The UKey was lost: its certificate is revoked as keyCompromise.
    KeyLost,
    /// The UKey is broken: its certificate is revoked as
    /// cessationOfOperation (the key is not known to anyone).
    KeyBroken,
}

impl ReplacementReason {
    /// Every choice, in the order the page offers them.
    pub const ALL: [Self; 2] = [Self::KeyLost, Self::KeyBroken];

    /// The form value (and the stored reason).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyLost => "lost",
            Self::KeyBroken => "broken",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// What the applicant reads.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::KeyLost => "UKey 丢失（原证书将按“密钥可能泄露”注销）",
            Self::KeyBroken => "UKey 损坏、无法使用（原证书将按“停止使用”注销）",
        }
    }

    /// The revocation of the old certificate it implies.
    pub fn revocation(self) -> ApplicantRevocationReason {
        match self {
            Self::KeyLost => ApplicantRevocationReason::KeyLost,
            Self::KeyBroken => ApplicantRevocationReason::NoLongerNeeded,
        }
    }
}

/// The expiry reminders (到期提醒), in order: 90, 30 and 7 days before the
/// end of validity, and the day after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReminderStage {
    /// 90 days before expiry.
    Days90,
    /// 30 days before expiry.
    Days30,
    /// 7 days before expiry.
    Days7,
    /// The day after expiry.
    Expired,
}

impl ReminderStage {
    /// Every stage, earliest first.
    pub const ALL: [Self; 4] = [Self::Days90, Self::Days30, Self::Days7, Self::Expired];

    /// How long an `Expired` reminder may still be sent after its moment:
    /// a certificate that expired long before reminders existed (or while
    /// they were turned off) is not announced weeks late.
    pub const EXPIRED_GRACE: Duration = Duration::from_secs(86_400 * 30);

    /// Stable code, the key of the sent-reminders record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Days90 => "d-90",
            Self::Days30 => "d-30",
            Self::Days7 => "d-7",
            Self::Expired => "d+1",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Which reminder, in words (我的证书's list of reminders sent).
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Days90 => "到期前90天提醒",
            Self::Days30 => "到期前30天提醒",
            Self::Days7 => "到期前7天提醒",
            Self::Expired => "到期次日提醒",
        }
    }

    /// When this reminder becomes due for a certificate ending at `not_after`.
    pub fn moment(self, not_after: Timestamp) -> Timestamp {
        match self {
            Self::Days90 => not_after.minus(DAY * 90),
            Self::Days30 => not_after.minus(DAY * 30),
            Self::Days7 => not_after.minus(DAY * 7),
            Self::Expired => not_after.plus(DAY),
        }
    }

    /// The reminder to send now for a certificate, given the stages already
    /// sent for it: the latest stage whose moment has passed, unless it or
    /// a later one was sent. Earlier stages that were missed (a restart
    /// across a moment, a certificate issued with less than 90 days left)
    /// are skipped, never sent in a burst. A stage whose moment lies before
    /// the certificate's validity began is not due. Revoked and replaced
    /// certificates get no reminder; nor does any when `None`.
    pub fn due(
        facts: &CertificateFacts,
        now: Timestamp,
        sent: &[ReminderStage],
    ) -> Option<ReminderStage> {
        if matches!(
            CertificateStatus::at(facts, now),
            CertificateStatus::Revoked | CertificateStatus::Superseded
        ) {
            return None;
        }
        let latest = Self::ALL
            .into_iter()
            .rev()
            .find(|st| st.moment(facts.not_after) <= now)?;
        if latest.moment(facts.not_after) < facts.not_before {
            return None;
        }
        if latest == Self::Expired
            && now.since(latest.moment(facts.not_after)) > Self::EXPIRED_GRACE
        {
            return None;
        }
        if sent.iter().any(|s| *s >= latest) {
            return None;
        }
        Some(latest)
    }

    /// The in-app message (kind 到期提醒) and SMS text for this reminder,
    /// sent at `now` (the title counts the days actually left).
    pub fn text_zh(self, subject_name: &str, not_after: Timestamp, now: Timestamp) -> ReminderText {
        let date = not_after.date_zh();
        match self {
            Self::Expired => ReminderText {
                sms_status: format!("已于{date}到期"),
                title: "证书已到期".to_owned(),
                body: format!(
                    "您的证书（{subject_name}）已于{date}到期，已无法在交易平台使用。\
                     到期后365天内仍可在线办理证书更新，请尽快登录网上营业厅办理。"
                ),
            },
            _ => {
                // The days actually left (a run late after a restart says
                // so, rather than the stage's nominal 90, 30 or 7).
                let days = days_left(not_after, now).max(1);
                ReminderText {
                    sms_status: format!("将于{date}到期"),
                    title: format!("证书将在{days}天后到期"),
                    body: format!(
                        "您的证书（{subject_name}）将于{date}到期。\
                         请在到期前登录网上营业厅办理证书更新，以免影响在交易平台的使用。"
                    ),
                }
            }
        }
    }
}

/// Where a reminder's SMS stands. The in-app message goes out with the
/// reminder's record; the SMS follows it and is never sent twice: a send
/// that a process left half-way is `Unknown`, not tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderSms {
    /// To be sent.
    Pending,
    /// A process is sending it.
    Sending,
    /// The provider accepted it.
    Sent,
    /// The provider refused it [`ReminderSms::MAX_TRIES`] times.
    Failed,
    /// The owner turned SMS reminders off for this certificate.
    Off,
    /// A process died while sending it: not known to have gone out.
    Unknown,
}

impl ReminderSms {
    /// Sends tried before a reminder's SMS is given up.
    pub const MAX_TRIES: i64 = 3;

    /// A send left in `Sending` this long is taken for a dead process.
    pub const STALE_SEND: Duration = Duration::from_secs(600);

    /// Stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Off => "off",
            Self::Unknown => "unknown",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Sending,
            Self::Sent,
            Self::Failed,
            Self::Off,
            Self::Unknown,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// What 我的证书 says about it.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Pending | Self::Sending => "短信发送中",
            Self::Sent => "短信已发送",
            Self::Failed | Self::Unknown => "短信未能发送",
            Self::Off => "短信提醒已关闭",
        }
    }

    /// After a failed send with `tries` tries counted (this one included):
    /// try again later, or give up.
    pub fn after_failure(tries: i64) -> Self {
        if tries >= Self::MAX_TRIES {
            Self::Failed
        } else {
            Self::Pending
        }
    }
}

/// The common name (CN) of a subject as CertHall writes it (`KEY=value`
/// pairs joined by `,`, a `,` inside a value escaped as `\,`); the whole
/// text when it has none.
pub fn subject_common_name(subject: &str) -> String {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = subject.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => cur.extend(chars.next()),
            ',' => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    parts.push(cur);
    parts
        .iter()
        .find_map(|p| p.trim().strip_prefix("CN=").map(str::to_owned))
        .unwrap_or_else(|| subject.to_owned())
}

/// A reminder's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderText {
    /// Message title (and the SMS's lead).
    pub title: String,
    /// Message body.
    pub body: String,
    /// The SMS's `status` parameter (将于2027年1月1日到期): the SMS
    /// template says the rest.
    pub sms_status: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// 2027-01-01 00:00 CST.
    const T0: Timestamp = Timestamp::from_millis(1_798_732_800_000);

    fn facts(days_valid: u32) -> CertificateFacts {
        CertificateFacts {
            not_before: T0,
            not_after: T0.plus(DAY * days_valid),
            revocation: None,
            activated: false,
        }
    }

    #[test]
    fn subject_common_name_reads_escaped_commas() {
        assert_eq!(
            subject_common_name("CN=枣庄\\,某某有限公司,O=枣庄某某有限公司,C=CN"),
            "枣庄,某某有限公司"
        );
        assert_eq!(subject_common_name("O=x,C=CN"), "O=x,C=CN");
    }

    #[test]
    fn a_reminder_sms_is_given_up_after_three_failures() {
        assert_eq!(ReminderSms::after_failure(1), ReminderSms::Pending);
        assert_eq!(ReminderSms::after_failure(2), ReminderSms::Pending);
        assert_eq!(ReminderSms::after_failure(3), ReminderSms::Failed);
        for s in ["pending", "sending", "sent", "failed", "off", "unknown"] {
            assert_eq!(ReminderSms::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(ReminderSms::parse("x"), None);
    }

    #[test]
    fn status_follows_dates_activation_and_revocation() {
        let mut f = facts(365);
        assert_eq!(
            CertificateStatus::at(&f, T0.minus(DAY)),
            CertificateStatus::NotYetValid
        );
        assert_eq!(CertificateStatus::at(&f, T0), CertificateStatus::Issued);
        f.activated = true;
        assert_eq!(
            CertificateStatus::at(&f, T0.plus(DAY)),
            CertificateStatus::Activated
        );
        assert!(CertificateStatus::at(&f, T0.plus(DAY)).is_usable());
        assert_eq!(
            CertificateStatus::at(&f, f.not_after),
            CertificateStatus::Expired,
            "not_after is the first instant it is no longer valid"
        );
        f.revocation = Some(Revocation {
            at: T0.plus(DAY * 10),
            superseded: false,
        });
        assert_eq!(
            CertificateStatus::at(&f, T0.plus(DAY * 9)),
            CertificateStatus::Activated,
            "a revocation takes effect at its time"
        );
        assert_eq!(
            CertificateStatus::at(&f, T0.plus(DAY * 400)),
            CertificateStatus::Revoked,
            "revoked outranks expired"
        );
        f.revocation = Some(Revocation {
            at: T0.plus(DAY * 10),
            superseded: true,
        });
        let s = CertificateStatus::at(&f, T0.plus(DAY * 11));
        assert_eq!(s, CertificateStatus::Superseded);
        assert!(!s.is_usable());
        assert_eq!(s.label_zh(), "已更新（被新证书替换）");
    }

    #[test]
    fn renewal_window_is_90_days_before_to_365_after() {
        let f = facts(365);
        let w = RenewalWindow::default();
        let opens = f.not_after.minus(DAY * 90);
        let closes = f.not_after.plus(DAY * 365);
        assert_eq!(
            w.check(&f, opens.minus(Duration::from_secs(1))),
            RenewalTiming::TooEarly { opens_at: opens }
        );
        assert_eq!(w.check(&f, opens), RenewalTiming::Open);
        assert_eq!(
            w.check(&f, f.not_after.minus(DAY * 60)),
            RenewalTiming::Open
        );
        assert_eq!(
            w.check(&f, f.not_after.plus(DAY * 200)),
            RenewalTiming::Open
        );
        assert_eq!(
            w.check(&f, closes),
            RenewalTiming::TooLate { closed_at: closes }
        );
        let custom = RenewalWindow {
            before_expiry: DAY * 30,
            after_expiry: DAY * 30,
        };
        assert!(matches!(
            custom.check(&f, f.not_after.minus(DAY * 60)),
            RenewalTiming::TooEarly { .. }
        ));
    }

    #[test]
    fn renewal_refusals_say_why_and_what_to_do() {
        let f = facts(365);
        let w = RenewalWindow::default();
        let early = w
            .check(&f, T0.plus(DAY * 10))
            .message_zh(f.not_after)
            .unwrap();
        assert!(early.contains("2028年1月1日到期"), "{early}");
        assert!(early.contains("2027年10月3日起可以在线更新"), "{early}");
        let late = w
            .check(&f, f.not_after.plus(DAY * 400))
            .message_zh(f.not_after)
            .unwrap();
        assert!(late.contains("重新申请新证书"), "{late}");
        let mut revoked = f;
        revoked.revocation = Some(Revocation {
            at: T0.plus(DAY),
            superseded: false,
        });
        let msg = w
            .check(&revoked, f.not_after.minus(DAY * 10))
            .message_zh(f.not_after)
            .unwrap();
        assert!(msg.contains("已注销"), "{msg}");
        assert_eq!(
            w.check(&f, f.not_after.minus(DAY)).message_zh(f.not_after),
            None
        );
    }

    #[test]
    fn reminders_are_due_once_per_stage_in_order() {
        let f = facts(365);
        let at = |days_before: i64| {
            if days_before >= 0 {
                f.not_after.minus(DAY * days_before as u32)
            } else {
                f.not_after.plus(DAY * (-days_before) as u32)
            }
        };
        assert_eq!(ReminderStage::due(&f, at(91), &[]), None);
        assert_eq!(
            ReminderStage::due(&f, at(90), &[]),
            Some(ReminderStage::Days90)
        );
        let mut sent = vec![ReminderStage::Days90];
        assert_eq!(ReminderStage::due(&f, at(45), &sent), None, "sent once");
        assert_eq!(
            ReminderStage::due(&f, at(30), &sent),
            Some(ReminderStage::Days30)
        );
        sent.push(ReminderStage::Days30);
        assert_eq!(
            ReminderStage::due(&f, at(7), &sent),
            Some(ReminderStage::Days7)
        );
        sent.push(ReminderStage::Days7);
        assert_eq!(ReminderStage::due(&f, at(0), &sent), None);
        assert_eq!(
            ReminderStage::due(&f, at(-1), &sent),
            Some(ReminderStage::Expired)
        );
        sent.push(ReminderStage::Expired);
        assert_eq!(ReminderStage::due(&f, at(-2), &sent), None);
    }

    #[test]
    fn missed_stages_are_skipped_not_sent_in_a_burst() {
        let f = facts(365);
        // Nothing was sent (the job was down for two months): only the
        // latest stage goes out, and an earlier one never after a later.
        let now = f.not_after.minus(DAY * 20);
        assert_eq!(
            ReminderStage::due(&f, now, &[]),
            Some(ReminderStage::Days30)
        );
        assert_eq!(ReminderStage::due(&f, now, &[ReminderStage::Days7]), None);
        // Expired long ago: no late "expired" reminder.
        assert_eq!(
            ReminderStage::due(&f, f.not_after.plus(DAY * 60), &[]),
            None
        );
    }

    #[test]
    fn short_certificates_and_revoked_ones_get_fewer_reminders() {
        // Issued with 60 days of validity: the 90-day moment is before its
        // start, so the first reminder is the 30-day one.
        let f = facts(60);
        assert_eq!(ReminderStage::due(&f, T0.plus(DAY), &[]), None);
        assert_eq!(
            ReminderStage::due(&f, f.not_after.minus(DAY * 30), &[]),
            Some(ReminderStage::Days30)
        );
        let mut revoked = facts(365);
        revoked.revocation = Some(Revocation {
            at: T0.plus(DAY),
            superseded: true,
        });
        assert_eq!(
            ReminderStage::due(&revoked, revoked.not_after.minus(DAY * 7), &[]),
            None
        );
    }

    #[test]
    fn applicant_revocation_reasons_map_to_rfc5280() {
        let names: Vec<&str> = ApplicantRevocationReason::ALL
            .iter()
            .map(|r| r.rfc5280_name())
            .collect();
        assert_eq!(
            names,
            [
                "keyCompromise",
                "affiliationChanged",
                "cessationOfOperation",
                "unspecified"
            ]
        );
        assert!(!names.contains(&"superseded"), "set by renewal, not chosen");
        for r in ApplicantRevocationReason::ALL {
            assert_eq!(ApplicantRevocationReason::parse(r.as_str()), Some(r));
            assert!(!r.label_zh().is_empty());
        }
        assert_eq!(ApplicantRevocationReason::parse("superseded"), None);
    }

    #[test]
    fn reminder_codes_round_trip_and_texts_name_the_date() {
        for st in ReminderStage::ALL {
            assert_eq!(ReminderStage::parse(st.as_str()), Some(st));
        }
        assert_eq!(ReminderStage::parse("d-1"), None);
        let f = facts(365);
        let t = ReminderStage::Days30.text_zh(
            "枣庄某某建设有限公司",
            f.not_after,
            ReminderStage::Days30.moment(f.not_after),
        );
        assert_eq!(t.title, "证书将在30天后到期");
        assert!(t.body.contains("枣庄某某建设有限公司"));
        assert!(t.body.contains("2028年1月1日到期"));
        assert_eq!(t.sms_status, "将于2028年1月1日到期");
        // Run late (a restart across the moment): the days actually left.
        let late = ReminderStage::Days30.text_zh(
            "枣庄某某建设有限公司",
            f.not_after,
            f.not_after.minus(DAY * 20).plus(Duration::from_secs(3600)),
        );
        assert_eq!(late.title, "证书将在20天后到期");
        let t = ReminderStage::Expired.text_zh("枣庄某某建设有限公司", f.not_after, f.not_after);
        assert_eq!(t.title, "证书已到期");
        assert!(t.body.contains("365天内"));
        assert_eq!(t.sms_status, "已于2028年1月1日到期");
    }
}
