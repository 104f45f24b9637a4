//! What the applicant fills in at each wizard step, validated (manual
//! 2.3.1). The services store the validated values as each step's data;
//! a refusal names the field in Chinese and nothing is stored.

use serde::{Deserialize, Serialize};

use crate::identity::{ResidentId, Uscc};
use crate::{Refusal, Timestamp};

/// Step 1, 个人实名认证: the applicant (经办人). Also the step's stored
/// data ([`crate::steps`]): a missing field reads as empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PersonalIdentity {
    /// Name as on the ID card.
    pub name: String,
    /// Resident ID number (validated, GB 11643).
    pub id_number: String,
    /// The account's phone (not editable: it is how they logged in).
    pub phone: String,
}

/// Checks a person's name: 2–30 characters, Chinese or Latin letters, the
/// middle dot of minority names, spaces inside Latin names.
pub fn check_person_name(name: &str, field: &'static str) -> Result<String, Refusal> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Refusal::MissingField(field));
    }
    let count = name.chars().count();
    let ok = (2..=30).contains(&count)
        && name
            .chars()
            .all(|c| c.is_alphabetic() || c == '·' || c == '•' || c == ' ');
    if !ok {
        return Err(Refusal::InvalidField(format!(
            "{field}应为 2–30 个汉字或字母"
        )));
    }
    Ok(name.to_owned())
}

impl PersonalIdentity {
    /// Validates step 1 as typed.
    pub fn parse(
        name: &str,
        id_number: &str,
        phone: &str,
        now: Timestamp,
    ) -> Result<Self, Refusal> {
        let name = check_person_name(name, "姓名")?;
        if id_number.trim().is_empty() {
            return Err(Refusal::MissingField("身份证号码"));
        }
        let id = ResidentId::parse(id_number, now)?;
        Ok(Self {
            name,
            id_number: id.as_str().to_owned(),
            phone: phone.to_owned(),
        })
    }
}

/// Checks an enterprise name as licenses print them: Chinese characters,
/// letters, digits, brackets and a few joining marks; no addresses of web
/// sites (the name goes into SMS sent to third parties).
pub fn check_enterprise_name(name: &str) -> Result<String, Refusal> {
    let allowed = |c: char| c.is_alphanumeric() || "（）()·&-、 ".contains(c);
    let lower = name.to_lowercase();
    if name.chars().count() < 2
        || !name.chars().all(allowed)
        || lower.contains("www")
        || lower.contains("http")
    {
        return Err(Refusal::InvalidField(
            "企业名称应与营业执照一致，只能包含汉字、字母、数字和括号".into(),
        ));
    }
    Ok(name.to_owned())
}

/// Reads a business license (营业执照) image into the fields of step 3
/// (the port; certhall-ocr is the implementation). CPU-heavy and blocking:
/// callers run it on a blocking thread.
pub trait LicenseReader: Send + Sync + std::fmt::Debug {
    /// What was read from `image` (a clean PNG or JPEG): fields not found
    /// are empty, `registered_place` and `nature` always are. `Err` is a
    /// fault of the reader, logged, never shown.
    fn read(&self, image: &[u8]) -> Result<LicenseReading, String>;
}

/// What a [`LicenseReader`] read from one image. Kept with the image: the
/// counter compares it with what was typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LicenseReading {
    /// The fields as read.
    #[serde(flatten)]
    pub fields: EnterpriseInput,
    /// The fields the reader is not sure of, by their names in
    /// [`EnterpriseInput`] (`address`, `kind`, …): the page marks them
    /// 请核对 instead of passing them off as read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsure: Vec<String>,
    /// How many of the marks every license prints were seen: the title
    /// 营业执照 and its labels (统一社会信用代码, 类型, 住所, 成立日期, …).
    /// `None` for readings stored before it was counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_marks: Option<u32>,
}

/// Fewer of a license's printed marks than this, and the image is not a
/// license (a seal, an ID card, an invoice that names a company): real
/// licenses print the title and seven or more labels, and a blurred photo
/// still shows several.
pub const LICENSE_MARKS_NEEDED: u32 = 3;

/// What the applicant is told of a license reading, and what fills the
/// form: [`vet_license_reading`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LicenseVerdict {
    /// A license: these fields fill the form, with these warnings shown
    /// beside them (a field the reading could not vouch for is left
    /// empty, never filled as if right).
    License {
        /// What fills the form.
        fields: Box<EnterpriseInput>,
        /// What to check by hand, in Chinese.
        warnings: Vec<String>,
        /// The fields to mark 请核对 (names as in [`EnterpriseInput`]).
        unsure: Vec<String>,
    },
    /// Neither 名称 nor 统一社会信用代码 was found, or too few of a
    /// license's marks: not a license (a seal, a photo of something
    /// else). Nothing fills the form and the image is not kept as the
    /// license.
    NotALicense,
}

/// Judges a reading of an image uploaded as the business license. A
/// license always carries its 名称 and 统一社会信用代码 and prints its
/// title and labels; a reading short of those is not a license. A code
/// that fails its GB 32100 check character was misread (or the image is
/// not genuine): it is left empty for the applicant to type from the
/// license, with a warning, and marked 请核对.
pub fn vet_license_reading(read: LicenseReading) -> LicenseVerdict {
    let LicenseReading {
        mut fields,
        mut unsure,
        license_marks,
    } = read;
    if (fields.name.trim().is_empty() && fields.uscc.trim().is_empty())
        || license_marks.is_some_and(|m| m < LICENSE_MARKS_NEEDED)
    {
        return LicenseVerdict::NotALicense;
    }
    let mut warnings = Vec::new();
    if !fields.uscc.trim().is_empty() && crate::identity::Uscc::parse(&fields.uscc).is_err() {
        warnings.push(format!(
            "识别出的统一社会信用代码“{}”未通过校验（校验码不符），已留空，请对照营业执照填写。",
            fields.uscc.trim()
        ));
        fields.uscc.clear();
        unsure.push("uscc".to_owned());
    }
    unsure.sort();
    unsure.dedup();
    LicenseVerdict::License {
        fields: Box::new(fields),
        warnings,
        unsure,
    }
}

/// A date as licenses and people write it (`2015年6月30日`, `2015/06/30`,
/// `2015.6.30`) in the form `2015-06-30`; anything else is returned as is
/// (and refused by the date check).
pub fn normalize_date(text: &str) -> String {
    let parts: Vec<&str> = text
        .trim()
        .trim_end_matches('日')
        .split(['年', '月', '/', '.', '-'])
        .map(str::trim)
        .collect();
    match parts.as_slice() {
        [y, m, d]
            if y.len() == 4
                && [y, m, d]
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                && m.len() <= 2
                && d.len() <= 2 =>
        {
            format!("{y}-{m:0>2}-{d:0>2}")
        }
        _ => text.trim().to_owned(),
    }
}

/// Enterprise natures offered at step 3 (企业性质).
pub const ENTERPRISE_NATURES: [&str; 8] = [
    "国有企业",
    "集体企业",
    "私营企业",
    "外商投资企业",
    "港澳台投资企业",
    "个体工商户",
    "事业单位",
    "社会团体及其他组织",
];

/// Step 3, 企业实名认证: the enterprise, as on its business license plus
/// what the license does not say. Also the step's stored data
/// ([`crate::steps`]): a missing field reads as empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnterpriseIdentity {
    /// 名称.
    pub name: String,
    /// 统一社会信用代码 (validated, GB 32100).
    pub uscc: String,
    /// 类型 (e.g. 有限责任公司(自然人投资或控股)).
    pub kind: String,
    /// 法定代表人.
    pub legal_representative: String,
    /// 住所 (address on the license).
    pub address: String,
    /// 注册资本.
    pub registered_capital: String,
    /// 成立日期 (YYYY-MM-DD).
    pub established: String,
    /// 注册地 (province + city, e.g. 山东省枣庄市): must agree with the
    /// license's address.
    pub registered_place: String,
    /// 企业性质 (one of [`ENTERPRISE_NATURES`]).
    pub nature: String,
}

/// Step 3 as typed (or read by OCR and corrected).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnterpriseInput {
    /// 名称.
    pub name: String,
    /// 统一社会信用代码.
    pub uscc: String,
    /// 类型.
    pub kind: String,
    /// 法定代表人.
    pub legal_representative: String,
    /// 住所.
    pub address: String,
    /// 注册资本.
    pub registered_capital: String,
    /// 成立日期.
    pub established: String,
    /// 注册地.
    pub registered_place: String,
    /// 企业性质.
    pub nature: String,
}

impl From<EnterpriseIdentity> for EnterpriseInput {
    /// A saved step 3 as the form's values (to prefill it again).
    fn from(e: EnterpriseIdentity) -> Self {
        Self {
            name: e.name,
            uscc: e.uscc,
            kind: e.kind,
            legal_representative: e.legal_representative,
            address: e.address,
            registered_capital: e.registered_capital,
            established: e.established,
            registered_place: e.registered_place,
            nature: e.nature,
        }
    }
}

fn required(value: &str, field: &'static str, max: usize) -> Result<String, Refusal> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Refusal::MissingField(field));
    }
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(Refusal::InvalidField(format!(
            "{field}不能超过 {max} 个字符"
        )));
    }
    Ok(v.to_owned())
}

/// The city of a registered place: `山东省枣庄市` → `枣庄`, `北京市` → `北京`,
/// `新疆维吾尔自治区乌鲁木齐市` → `乌鲁木齐`.
fn city_stem(place: &str) -> &str {
    ["省", "自治区"]
        .iter()
        .find_map(|p| place.split_once(p).map(|(_, rest)| rest))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(place)
        .trim_end_matches('市')
}

impl EnterpriseInput {
    /// Validates step 3.
    pub fn validate(&self, now: Timestamp) -> Result<EnterpriseIdentity, Refusal> {
        let name = check_enterprise_name(&required(&self.name, "企业名称", 100)?)?;
        if self.uscc.trim().is_empty() {
            return Err(Refusal::MissingField("统一社会信用代码"));
        }
        let uscc = Uscc::parse(&self.uscc)?;
        let kind = required(&self.kind, "企业类型", 60)?;
        let legal_representative = check_person_name(&self.legal_representative, "法定代表人")?;
        let address = required(&self.address, "住所", 200)?;
        let registered_capital = required(&self.registered_capital, "注册资本", 40)?;
        let established = normalize_date(&required(&self.established, "成立日期", 12)?);
        let date = time::Date::parse(
            &established,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map_err(|_| Refusal::InvalidField("成立日期格式应为 2015-06-30".into()))?;
        if date > now.to_cst().date() || date.year() < 1949 {
            return Err(Refusal::InvalidField("成立日期不正确".into()));
        }
        let registered_place = required(&self.registered_place, "注册地", 40)?;
        let stem = city_stem(&registered_place);
        if stem.chars().count() < 2 || !address.contains(stem) {
            return Err(Refusal::InvalidField(format!(
                "注册地“{registered_place}”与营业执照住所“{address}”不一致，请核对"
            )));
        }
        let nature = self.nature.trim().to_owned();
        if nature.is_empty() {
            return Err(Refusal::MissingField("企业性质"));
        }
        if !ENTERPRISE_NATURES.contains(&nature.as_str()) {
            return Err(Refusal::InvalidField("请从列表中选择企业性质".into()));
        }
        Ok(EnterpriseIdentity {
            name,
            uscc: uscc.as_str().to_owned(),
            kind,
            legal_representative,
            address,
            registered_capital,
            established,
            registered_place,
            nature,
        })
    }
}

/// Step 4, 办理方式.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Handling {
    /// 在线办理.
    Online,
    /// 柜台办理.
    Counter,
}

impl Handling {
    /// Stored (and form) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Counter => "counter",
        }
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Online => "在线办理",
            Self::Counter => "柜台办理",
        }
    }

    /// Reads the form value.
    pub fn parse(value: &str) -> Result<Self, Refusal> {
        match value.trim() {
            "online" => Ok(Self::Online),
            "counter" => Ok(Self::Counter),
            _ => Err(Refusal::MissingField("办理方式")),
        }
    }
}

/// Where and when to come when handling at a counter (第四步 柜台办理),
/// and what to bring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterInfo {
    /// The service point.
    pub name: &'static str,
    /// Its address.
    pub address: &'static str,
    /// Opening hours.
    pub hours: &'static str,
    /// Phone.
    pub phone: &'static str,
    /// What to bring.
    pub materials: &'static [&'static str],
}

/// The counter shown by default (a deployment's own comes from its
/// configuration later).
pub const DEFAULT_COUNTER: CounterInfo = CounterInfo {
    name: "枣庄市数字证书服务大厅",
    address: "山东省枣庄市市中区光明路 1 号 政务服务中心二楼 C 区",
    hours: "工作日 8:30–12:00，13:30–17:30（法定节假日除外）",
    phone: "0632-0000000",
    materials: &[
        "营业执照副本原件及加盖公章的复印件",
        "经办人身份证原件及复印件",
        "法定代表人身份证复印件（加盖公章）",
        "授权委托书（加盖公章，法定代表人签字）",
        "数字证书申请表（可在柜台填写）",
    ],
};

#[cfg(test)]
mod license_reading_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_reading_without_name_or_code_is_not_a_license() {
        let seal = LicenseReading {
            fields: EnterpriseInput {
                address: "山东省".into(),
                ..EnterpriseInput::default()
            },
            ..LicenseReading::default()
        };
        assert_eq!(vet_license_reading(seal), LicenseVerdict::NotALicense);
    }

    #[test]
    fn a_reading_without_the_marks_of_a_license_is_not_one() {
        // An invoice names a company and prints its code, but not the
        // title and labels of a license.
        let invoice = LicenseReading {
            fields: EnterpriseInput {
                name: "枣庄市恒信建设工程有限公司".into(),
                uscc: "91370400MA3C8XFH2X".into(),
                ..EnterpriseInput::default()
            },
            unsure: Vec::new(),
            license_marks: Some(LICENSE_MARKS_NEEDED - 1),
        };
        assert_eq!(
            vet_license_reading(invoice.clone()),
            LicenseVerdict::NotALicense
        );
        // A reading stored before the marks were counted was judged then.
        let stored = LicenseReading {
            license_marks: None,
            ..invoice
        };
        assert!(matches!(
            vet_license_reading(stored),
            LicenseVerdict::License { .. }
        ));
    }

    #[test]
    fn a_code_failing_its_check_character_is_never_filled() {
        let first17 = "91370400MA3C8XFH2";
        let right = crate::identity::uscc_check_char(first17).unwrap();
        let wrong = "0123456789ABCDEFGHJKLMNPQRTUWXY"
            .chars()
            .find(|&c| c != right)
            .unwrap();
        let read = LicenseReading {
            fields: EnterpriseInput {
                name: "枣庄市恒信建设工程有限公司".into(),
                uscc: format!("{first17}{wrong}"),
                ..EnterpriseInput::default()
            },
            unsure: vec!["address".into()],
            license_marks: Some(8),
        };
        let LicenseVerdict::License {
            fields,
            warnings,
            unsure,
        } = vet_license_reading(read.clone())
        else {
            panic!("a license");
        };
        assert_eq!(fields.uscc, "");
        assert_eq!(fields.name, read.fields.name);
        assert!(warnings[0].contains("未通过校验"), "{warnings:?}");
        assert_eq!(
            unsure,
            ["address", "uscc"],
            "the emptied code is marked too"
        );
        // The right code is filled, without a warning.
        let good = LicenseReading {
            fields: EnterpriseInput {
                uscc: format!("{first17}{right}"),
                ..read.fields
            },
            unsure: Vec::new(),
            license_marks: Some(8),
        };
        assert_eq!(
            vet_license_reading(good.clone()),
            LicenseVerdict::License {
                fields: Box::new(good.fields),
                warnings: Vec::new(),
                unsure: Vec::new(),
            }
        );
    }

    #[test]
    fn readings_stored_before_unsure_fields_still_load() {
        let old = r#"{"name":"枣庄市恒信建设工程有限公司","uscc":"","kind":"","legal_representative":"","address":"","registered_capital":"","established":"","registered_place":"","nature":""}"#;
        let read: LicenseReading = serde_json::from_str(old).unwrap();
        assert_eq!(read.fields.name, "枣庄市恒信建设工程有限公司");
        assert!(read.unsure.is_empty() && read.license_marks.is_none());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_795_568_400_000);

    fn enterprise() -> EnterpriseInput {
        EnterpriseInput {
            name: "枣庄测试建设有限公司".into(),
            uscc: "91350100M000100Y43".into(),
            kind: "有限责任公司(自然人投资或控股)".into(),
            legal_representative: "张三".into(),
            address: "山东省枣庄市市中区光明路1号".into(),
            registered_capital: "壹仟万元整".into(),
            established: "2015-06-30".into(),
            registered_place: "山东省枣庄市".into(),
            nature: "私营企业".into(),
        }
    }

    #[test]
    fn enterprise_names_are_names() {
        for ok in [
            "枣庄市恒信建设工程有限公司",
            "华为技术有限公司（深圳）",
            "ABC (China) Co-Ltd",
        ] {
            assert!(check_enterprise_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "点击 http://x.cn 领奖",
            "www.example.com公司",
            "公司。请回复",
            "甲",
        ] {
            assert_eq!(
                check_enterprise_name(bad).unwrap_err().code(),
                "invalid_field",
                "{bad}"
            );
        }
    }

    #[test]
    fn dates_are_read_as_written() {
        for (text, want) in [
            ("2015年03月12日", "2015-03-12"),
            ("2015年3月2日", "2015-03-02"),
            ("2015/06/30", "2015-06-30"),
            ("2015.6.30", "2015-06-30"),
            ("2015-06-30", "2015-06-30"),
            ("去年", "去年"),
            ("15/6/30", "15/6/30"),
        ] {
            assert_eq!(normalize_date(text), want, "{text}");
        }
    }

    #[test]
    fn step_one() {
        let p =
            PersonalIdentity::parse(" 张三 ", "11010519491231002x", "13800138000", NOW).unwrap();
        assert_eq!(p.name, "张三");
        assert_eq!(p.id_number, "11010519491231002X");
        for (name, id, code) in [
            ("", "11010519491231002X", "missing_field"),
            ("张", "11010519491231002X", "invalid_field"),
            ("张三3", "11010519491231002X", "invalid_field"),
            ("张三", "", "missing_field"),
            ("张三", "110105194912310021", "resident_id_check_digit"),
        ] {
            assert_eq!(
                PersonalIdentity::parse(name, id, "13800138000", NOW)
                    .unwrap_err()
                    .code(),
                code,
                "{name} {id}"
            );
        }
        assert!(PersonalIdentity::parse("阿依古丽·买买提", "11010519491231002X", "1", NOW).is_ok());
    }

    #[test]
    fn step_three() {
        let e = enterprise().validate(NOW).unwrap();
        assert_eq!(e.uscc, "91350100M000100Y43");
        let cases = [
            (
                EnterpriseInput {
                    uscc: "91350100M000100Y44".into(),
                    ..enterprise()
                },
                "uscc_check_digit",
            ),
            (
                EnterpriseInput {
                    name: " ".into(),
                    ..enterprise()
                },
                "missing_field",
            ),
            (
                EnterpriseInput {
                    established: "2015-13-30".into(),
                    ..enterprise()
                },
                "invalid_field",
            ),
            (
                EnterpriseInput {
                    established: "2099-01-01".into(),
                    ..enterprise()
                },
                "invalid_field",
            ),
            (
                EnterpriseInput {
                    registered_place: "山东省济南市".into(),
                    ..enterprise()
                },
                "invalid_field",
            ),
            (
                EnterpriseInput {
                    nature: "外星企业".into(),
                    ..enterprise()
                },
                "invalid_field",
            ),
            (
                EnterpriseInput {
                    nature: String::new(),
                    ..enterprise()
                },
                "missing_field",
            ),
        ];
        for (input, code) in cases {
            assert_eq!(input.validate(NOW).unwrap_err().code(), code, "{input:?}");
        }
        let beijing = EnterpriseInput {
            registered_place: "北京市".into(),
            address: "北京市海淀区中关村大街1号".into(),
            ..enterprise()
        };
        assert!(beijing.validate(NOW).is_ok());
    }

    #[test]
    fn step_four() {
        assert_eq!(Handling::parse("online"), Ok(Handling::Online));
        assert_eq!(Handling::parse("counter"), Ok(Handling::Counter));
        assert!(Handling::parse("").is_err());
        for h in [Handling::Online, Handling::Counter] {
            assert_eq!(Handling::parse(h.as_str()), Ok(h));
            assert_eq!(serde_json::to_value(h).unwrap(), h.as_str(), "stored name");
        }
    }
}
