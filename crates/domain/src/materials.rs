//! 第五步 上传材料与授权: the images an application carries and how the
//! legal representative (法定代表人) authorizes it.
//!
//! - [`MaterialKind`]: the business license (read at step 3) and the step-5
//!   images (公章, 法人章, 法人手写签名, 授权委托书).
//! - [`check_submission`]: what must be present before step 5 is
//!   submitted by either route.
//! - [`LegalRepContact`]: whom the authorization SMS goes to, checked
//!   against the license's legal representative.
//! - [`LegalRepReply`]: what an inbound SMS says, and [`reply_effect`]:
//!   whether it may still decide the order (72 hours, same phone).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::identity::ResidentId;
use crate::order::{Authorization, OrderEvent, Step};
use crate::wizard::check_person_name;
use crate::{Phone, Refusal, Timestamp};

/// An image belonging to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MaterialKind {
    /// 营业执照 (step 3, read by OCR).
    License,
    /// 公章: the company seal stamped on paper.
    CompanySeal,
    /// 法人章: the legal representative's seal.
    LegalRepSeal,
    /// 法人手写签名: the legal representative's handwritten signature.
    LegalRepSignature,
    /// 授权委托书: the letter authorizing the applicant.
    AuthorizationLetter,
}

impl MaterialKind {
    /// All kinds, in the order the pages show them.
    pub const ALL: [MaterialKind; 5] = [
        Self::License,
        Self::CompanySeal,
        Self::LegalRepSeal,
        Self::LegalRepSignature,
        Self::AuthorizationLetter,
    ];

    /// The images every step-5 submission needs, whatever the route.
    pub const STEP5_REQUIRED: [MaterialKind; 3] = [
        Self::CompanySeal,
        Self::LegalRepSeal,
        Self::LegalRepSignature,
    ];

    /// Stored (and form field / URL) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::License => "license",
            Self::CompanySeal => "company_seal",
            Self::LegalRepSeal => "legal_rep_seal",
            Self::LegalRepSignature => "legal_rep_signature",
            Self::AuthorizationLetter => "authorization_letter",
        }
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::License => "营业执照",
            Self::CompanySeal => "公章",
            Self::LegalRepSeal => "法人章",
            Self::LegalRepSignature => "法人手写签名",
            Self::AuthorizationLetter => "授权委托书",
        }
    }

    /// What to photograph, shown beside the upload field.
    pub fn hint_zh(self) -> &'static str {
        match self {
            Self::License => "营业执照正本或副本的照片或扫描件，四角完整、文字清晰。",
            Self::CompanySeal => "在白纸上加盖公章后拍照或扫描。",
            Self::LegalRepSeal => "在白纸上加盖法人章后拍照或扫描。",
            Self::LegalRepSignature => "法定代表人在白纸上手写签名后拍照或扫描。",
            Self::AuthorizationLetter => {
                "法定代表人签字并加盖公章的授权委托书（可打印系统按本订单填好的授权委托书）。"
            }
        }
    }

    /// The wizard step the image is uploaded at.
    pub fn step(self) -> Step {
        match self {
            Self::License => Step::Enterprise,
            _ => Step::Materials,
        }
    }
}

impl FromStr for MaterialKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

impl fmt::Display for MaterialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Authorization {
    /// Stored (and form) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LegalRepSms => "legal_rep_sms",
            Self::Letter => "letter",
        }
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::LegalRepSms => "法人短信授权",
            Self::Letter => "上传授权委托书",
        }
    }

    /// The route chosen in a form; refused when none was.
    pub fn parse(input: &str) -> Result<Self, Refusal> {
        match input.trim() {
            "legal_rep_sms" => Ok(Self::LegalRepSms),
            "letter" => Ok(Self::Letter),
            "" => Err(Refusal::MissingField("授权方式")),
            _ => Err(Refusal::InvalidField(
                "授权方式只能选择法人短信授权或上传授权委托书".into(),
            )),
        }
    }
}

/// Refuses a step-5 submission that lacks an image the route needs; the
/// first missing one is named.
pub fn check_submission(route: Authorization, present: &[MaterialKind]) -> Result<(), Refusal> {
    if !present.contains(&MaterialKind::License) {
        return Err(Refusal::MaterialMissing("营业执照（请返回第三步上传）"));
    }
    let letter = (route == Authorization::Letter).then_some(MaterialKind::AuthorizationLetter);
    for kind in MaterialKind::STEP5_REQUIRED.into_iter().chain(letter) {
        if !present.contains(&kind) {
            return Err(Refusal::MaterialMissing(kind.label_zh()));
        }
    }
    Ok(())
}

/// How long the legal representative has to answer the SMS.
pub const AUTHORIZATION_WINDOW: Duration = Duration::from_secs(72 * 3600);

/// The legal representative, as typed at step 5 for the SMS route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalRepContact {
    /// Name, as on the license.
    pub name: String,
    /// Resident ID number (validated).
    pub id_number: String,
    /// The phone that receives the SMS and whose reply counts.
    pub phone: String,
}

impl LegalRepContact {
    /// Validates what was typed. `license_legal_rep` is the legal
    /// representative saved at step 3: the names must agree.
    pub fn parse(
        name: &str,
        id_number: &str,
        phone: &str,
        license_legal_rep: &str,
        now: Timestamp,
    ) -> Result<Self, Refusal> {
        let name = check_person_name(name, "法定代表人姓名")?;
        if id_number.trim().is_empty() {
            return Err(Refusal::MissingField("法定代表人身份证号码"));
        }
        let id = ResidentId::parse(id_number, now)?;
        if phone.trim().is_empty() {
            return Err(Refusal::MissingField("法定代表人手机号"));
        }
        let phone = Phone::parse(phone)?;
        if name != license_legal_rep.trim() {
            return Err(Refusal::LegalRepMismatch(
                license_legal_rep.trim().to_owned(),
            ));
        }
        Ok(Self {
            name,
            id_number: id.as_str().to_owned(),
            phone: phone.as_str().to_owned(),
        })
    }
}

/// Where a legal-rep authorization request (法人短信授权) stands: the
/// stored `outcome` of a request row. Each request is its own record
/// (STYLE "records, not flags"); only a `Pending` one may decide its order.
///
/// ```text
/// Sending ─┬─ SMS sent, order moved ─→ Pending ─┬─ 同意 in time ─→ Agreed
///          └─ send or submit failed ─→ Failed   ├─ 拒绝 in time ─→ Refused
///                                               ├─ 72 hours over ─→ Expired
///                                               └─ resent / step 5 taken back ─→ Withdrawn
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthorizationOutcome {
    /// Recorded before the SMS goes out, so every attempt counts towards
    /// the limits.
    Sending,
    /// Sent; waiting for the legal representative's answer.
    Pending,
    /// 同意 within the window: the order is authorized.
    Agreed,
    /// 拒绝 within the window: the order is not authorized.
    Refused,
    /// No answer within [`AUTHORIZATION_WINDOW`].
    Expired,
    /// Replaced by a resent request, or step 5 was taken back.
    Withdrawn,
    /// The SMS could not be sent or the submission did not commit.
    Failed,
}

impl AuthorizationOutcome {
    /// Every outcome.
    pub const ALL: [Self; 7] = [
        Self::Sending,
        Self::Pending,
        Self::Agreed,
        Self::Refused,
        Self::Expired,
        Self::Withdrawn,
        Self::Failed,
    ];

    /// Stored name (also the JSON API's).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Pending => "pending",
            Self::Agreed => "agreed",
            Self::Refused => "refused",
            Self::Expired => "expired",
            Self::Withdrawn => "withdrawn",
            Self::Failed => "failed",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Shown to the counter.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Sending => "发送中",
            Self::Pending => "等待回复",
            Self::Agreed => "已同意",
            Self::Refused => "已拒绝",
            Self::Expired => "超时未回复",
            Self::Withdrawn => "已撤回（重新发送）",
            Self::Failed => "发送失败",
        }
    }

    /// True while the legal representative's answer still counts.
    pub fn is_pending(self) -> bool {
        self == Self::Pending
    }
}

impl fmt::Display for AuthorizationOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Splits an order number off a reply (`同意 12`, `12同意`): legal
/// representatives of several pending orders name the one they answer.
pub fn split_order_number(body: &str) -> (String, Option<i64>) {
    let text = body.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits_end > 0 {
        return (
            text[digits_end..].to_owned(),
            text[..digits_end].parse().ok(),
        );
    }
    let start = text
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_digit())
        .last()
        .map(|(i, _)| i);
    match start {
        Some(i) => (text[..i].to_owned(), text[i..].parse().ok()),
        None => (text.to_owned(), None),
    }
}

/// What a legal representative's SMS says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegalRepReply {
    /// 同意.
    Agree,
    /// 拒绝.
    Refuse,
    /// Anything else: recorded, changes nothing.
    Unclear,
}

impl LegalRepReply {
    /// Reads a reply. Only an unambiguous answer counts: 同意 (or 是, Y,
    /// TY) and 拒绝 (or 不同意, 否, N, JJ), with surrounding spaces and
    /// punctuation ignored; anything longer or mixed is unclear.
    pub fn parse(body: &str) -> Self {
        let text: String = body
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_ascii_punctuation() && !is_cjk_punct(*c))
            .collect::<String>()
            .to_uppercase();
        match text.as_str() {
            "同意" | "是" | "Y" | "YES" | "TY" => Self::Agree,
            "拒绝" | "不同意" | "否" | "N" | "NO" | "JJ" => Self::Refuse,
            _ => Self::Unclear,
        }
    }
}

fn is_cjk_punct(c: char) -> bool {
    matches!(
        c,
        '。' | '，'
            | '！'
            | '？'
            | '、'
            | '；'
            | '：'
            | '“'
            | '”'
            | '‘'
            | '’'
            | '（'
            | '）'
            | '【'
            | '】'
            | '…'
            | '～'
    )
}

/// A pending request for the legal representative's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingAuthorization {
    /// When the SMS was sent.
    pub requested_at: Timestamp,
}

impl PendingAuthorization {
    /// When answers stop counting.
    pub fn expires_at(self) -> Timestamp {
        self.requested_at.plus(AUTHORIZATION_WINDOW)
    }
}

/// What an inbound reply does to a pending authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyEffect {
    /// The order is authorized (同意 in time).
    Authorize,
    /// The order is refused (拒绝 in time).
    Refuse,
    /// Recorded only: the text is unclear.
    IgnoredUnclear,
    /// Recorded only: the 72 hours are over.
    IgnoredExpired,
    /// Recorded only: several orders wait for this phone and the reply
    /// does not name one.
    IgnoredAmbiguous,
}

impl ReplyEffect {
    /// What a decisive reply does: the outcome its request is closed with
    /// and the order's event. `None` when the reply is only recorded.
    pub fn decision(self) -> Option<(AuthorizationOutcome, OrderEvent)> {
        match self {
            Self::Authorize => Some((AuthorizationOutcome::Agreed, OrderEvent::LegalRepAgreed)),
            Self::Refuse => Some((AuthorizationOutcome::Refused, OrderEvent::LegalRepRefused)),
            Self::IgnoredUnclear | Self::IgnoredExpired | Self::IgnoredAmbiguous => None,
        }
    }

    /// The outcome recorded with the inbound SMS.
    pub fn outcome_zh(self) -> &'static str {
        match self {
            Self::Authorize => "法定代表人同意，订单已授权",
            Self::Refuse => "法定代表人拒绝，订单未授权",
            Self::IgnoredUnclear => "回复内容无法识别（请回复“同意”或“拒绝”），未改变订单",
            Self::IgnoredExpired => "授权请求已超过72小时，回复未改变订单",
            Self::IgnoredAmbiguous => {
                "该号码有多个待授权订单，回复未注明订单号（如“同意 12”），未改变订单"
            }
        }
    }
}

/// What `reply`, received at `now`, does to `pending`.
pub fn reply_effect(
    pending: PendingAuthorization,
    reply: LegalRepReply,
    now: Timestamp,
) -> ReplyEffect {
    if now >= pending.expires_at() {
        return ReplyEffect::IgnoredExpired;
    }
    match reply {
        LegalRepReply::Agree => ReplyEffect::Authorize,
        LegalRepReply::Refuse => ReplyEffect::Refuse,
        LegalRepReply::Unclear => ReplyEffect::IgnoredUnclear,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn submission_needs_the_images_of_its_route() {
        assert_eq!(
            check_submission(Authorization::Letter, &MaterialKind::STEP5_REQUIRED),
            Err(Refusal::MaterialMissing("营业执照（请返回第三步上传）"))
        );
        let mut three = MaterialKind::STEP5_REQUIRED.to_vec();
        three.push(MaterialKind::License);
        let three = three.as_slice();
        assert_eq!(check_submission(Authorization::LegalRepSms, three), Ok(()));
        assert_eq!(
            check_submission(Authorization::Letter, three),
            Err(Refusal::MaterialMissing("授权委托书"))
        );
        assert_eq!(
            check_submission(
                Authorization::LegalRepSms,
                &[
                    MaterialKind::License,
                    MaterialKind::CompanySeal,
                    MaterialKind::LegalRepSignature
                ]
            ),
            Err(Refusal::MaterialMissing("法人章"))
        );
        let mut all = three.to_vec();
        all.push(MaterialKind::AuthorizationLetter);
        assert_eq!(check_submission(Authorization::Letter, &all), Ok(()));
    }

    #[test]
    fn outcomes_keep_their_stored_names() {
        let names: Vec<&str> = AuthorizationOutcome::ALL
            .iter()
            .map(|o| o.as_str())
            .collect();
        // The names in the rows of existing databases (0008_materials.sql).
        assert_eq!(
            names,
            [
                "sending",
                "pending",
                "agreed",
                "refused",
                "expired",
                "withdrawn",
                "failed"
            ]
        );
        for o in AuthorizationOutcome::ALL {
            assert_eq!(AuthorizationOutcome::parse(o.as_str()), Some(o));
            assert_eq!(o.to_string(), o.as_str());
            assert!(!o.label_zh().is_empty());
        }
        assert_eq!(AuthorizationOutcome::parse("Pending"), None);
        assert_eq!(AuthorizationOutcome::parse(""), None);
        let pending: Vec<_> = AuthorizationOutcome::ALL
            .into_iter()
            .filter(|o| o.is_pending())
            .collect();
        assert_eq!(pending, [AuthorizationOutcome::Pending]);
    }

    #[test]
    fn only_a_clear_timely_reply_closes_a_request() {
        use AuthorizationOutcome as O;
        for (effect, want) in [
            (
                ReplyEffect::Authorize,
                Some((O::Agreed, OrderEvent::LegalRepAgreed)),
            ),
            (
                ReplyEffect::Refuse,
                Some((O::Refused, OrderEvent::LegalRepRefused)),
            ),
            (ReplyEffect::IgnoredUnclear, None),
            (ReplyEffect::IgnoredExpired, None),
            (ReplyEffect::IgnoredAmbiguous, None),
        ] {
            assert_eq!(effect.decision(), want, "{effect:?}");
            if let Some((outcome, _)) = want {
                assert!(!outcome.is_pending(), "a decided request is closed");
            }
        }
    }

    #[test]
    fn routes_are_stored_by_their_form_names() {
        for route in [Authorization::LegalRepSms, Authorization::Letter] {
            assert_eq!(
                serde_json::to_value(route).unwrap(),
                serde_json::json!(route.as_str())
            );
            assert_eq!(Authorization::parse(route.as_str()), Ok(route));
        }
    }

    #[test]
    fn kinds_round_trip() {
        for k in MaterialKind::ALL {
            assert_eq!(k.as_str().parse::<MaterialKind>(), Ok(k));
        }
        assert!("../etc".parse::<MaterialKind>().is_err());
    }

    #[test]
    fn replies_are_read_strictly() {
        use LegalRepReply::*;
        for (text, want) in [
            ("同意", Agree),
            (" 同意。", Agree),
            ("同意！", Agree),
            ("ty", Agree),
            ("拒绝", Refuse),
            ("不同意", Refuse),
            ("JJ", Refuse),
            ("同意拒绝", Unclear),
            ("好的", Unclear),
            ("我不太同意", Unclear),
            ("", Unclear),
        ] {
            assert_eq!(LegalRepReply::parse(text), want, "{text:?}");
        }
    }

    #[test]
    fn order_numbers_are_split_off() {
        assert_eq!(split_order_number("同意 12"), ("同意 ".into(), Some(12)));
        assert_eq!(split_order_number("12拒绝"), ("拒绝".into(), Some(12)));
        assert_eq!(split_order_number("同意"), ("同意".into(), None));
        assert_eq!(
            LegalRepReply::parse(&split_order_number("同意 12").0),
            LegalRepReply::Agree
        );
    }

    #[test]
    fn replies_count_for_72_hours() {
        let t0 = Timestamp::from_millis(1_700_000_000_000);
        let p = PendingAuthorization { requested_at: t0 };
        let just_before = t0.plus(AUTHORIZATION_WINDOW).minus(Duration::from_secs(1));
        assert_eq!(
            reply_effect(p, LegalRepReply::Agree, just_before),
            ReplyEffect::Authorize
        );
        assert_eq!(
            reply_effect(p, LegalRepReply::Refuse, t0),
            ReplyEffect::Refuse
        );
        assert_eq!(
            reply_effect(p, LegalRepReply::Agree, t0.plus(AUTHORIZATION_WINDOW)),
            ReplyEffect::IgnoredExpired
        );
        assert_eq!(
            reply_effect(p, LegalRepReply::Unclear, t0),
            ReplyEffect::IgnoredUnclear
        );
    }

    #[test]
    fn the_legal_rep_must_be_the_licenses() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let ok = LegalRepContact::parse("张三", "11010519491231002X", "13900139000", "张三", now);
        assert_eq!(ok.unwrap().phone, "13900139000");
        assert_eq!(
            LegalRepContact::parse("李四", "11010519491231002X", "13900139000", "张三", now),
            Err(Refusal::LegalRepMismatch("张三".into()))
        );
        assert_eq!(
            LegalRepContact::parse("张三", "110105194912310021", "13900139000", "张三", now)
                .unwrap_err()
                .code(),
            "resident_id_check_digit"
        );
        assert_eq!(
            LegalRepContact::parse("张三", "11010519491231002X", "", "张三", now),
            Err(Refusal::MissingField("法定代表人手机号"))
        );
    }
}
