//! 应用: the relying platforms a certificate is applied for (step 2 of the
//! wizard, 选择应用), each with its certificate profile, validity and price.

use crate::production::KeyKind;
use crate::Refusal;

/// One application of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// Stable code, e.g. `zzggzy` (lower-case letters, digits, `-`).
    pub code: String,
    /// Shown name, e.g. 枣庄公共资源交易.
    pub name: String,
    /// The CA profile certificates for it are issued under.
    pub profile: String,
    /// The key pair its certificates use (SM2 for 国密 platforms); the
    /// CA hierarchy follows from it.
    pub key_kind: KeyKind,
    /// Certificate validity in days.
    pub validity_days: u32,
    /// Price in fen (分) per certificate.
    pub price_fen: i64,
    /// One line for the applicant.
    pub description: String,
    /// Offered to applicants (inactive ones stay for existing orders).
    pub active: bool,
}

impl Application {
    /// Checks every field; the refusal names the first problem.
    pub fn validate(&self) -> Result<(), Refusal> {
        let bad = |what: &str| Err(Refusal::InvalidApplication(what.to_owned()));
        if !(2..=32).contains(&self.code.len())
            || !self
                .code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("代码须为 2–32 位小写字母、数字或“-”");
        }
        let name_len = self.name.trim().chars().count();
        if name_len == 0 || name_len > 64 || self.name.chars().any(char::is_control) {
            return bad("名称须为 1–64 个字符");
        }
        if self.profile.trim().is_empty() {
            return bad("须指定证书模板");
        }
        if !(1..=3650).contains(&self.validity_days) {
            return bad("有效期须为 1–3650 天");
        }
        if !(0..=100_000_000).contains(&self.price_fen) {
            return bad("价格须在 0–1000000 元之间");
        }
        if self.description.chars().count() > 200 {
            return bad("说明不能超过 200 个字符");
        }
        Ok(())
    }

    /// `300.00 元`.
    pub fn price_text(&self) -> String {
        format_price(self.price_fen)
    }
}

/// Reads a price in yuan (`300`, `300.5`, `300.00`, `¥300`) as fen.
pub fn parse_price(text: &str) -> Result<i64, Refusal> {
    let bad = || Refusal::InvalidApplication("价格格式不正确，例如 300 或 300.00".to_owned());
    let t = text
        .trim()
        .trim_start_matches(['¥', '￥'])
        .trim_end_matches('元')
        .trim();
    let (yuan, fen) = match t.split_once('.') {
        Some((y, f)) if !f.is_empty() && f.len() <= 2 && f.bytes().all(|b| b.is_ascii_digit()) => (
            y,
            if f.len() == 1 {
                format!("{f}0")
            } else {
                f.to_owned()
            },
        ),
        Some(_) => return Err(bad()),
        None => (t, "00".to_owned()),
    };
    if yuan.is_empty() || yuan.len() > 9 || !yuan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let yuan: i64 = yuan.parse().map_err(|_| bad())?;
    let fen: i64 = fen.parse().map_err(|_| bad())?;
    Ok(yuan * 100 + fen)
}

/// `12345` fen → `123.45 元`.
pub fn format_price(fen: i64) -> String {
    format!("{}.{:02} 元", fen / 100, fen % 100)
}

/// The catalogue demo mode starts with.
pub fn demo_catalogue() -> Vec<Application> {
    let app = |code: &str, name: &str, price_fen: i64, description: &str| Application {
        code: code.to_owned(),
        name: name.to_owned(),
        profile: "enterprise".to_owned(),
        // 国密 where the platform takes it; the others as their platforms
        // document (and so that a SoftHSM2 token, which has no SM2, can
        // carry them in tests).
        key_kind: match code {
            "zzggzy" => KeyKind::Sm2,
            "sdggzy" => KeyKind::Rsa2048,
            _ => KeyKind::P256,
        },
        validity_days: 365,
        price_fen,
        description: description.to_owned(),
        active: true,
    };
    vec![
        app(
            "zzggzy",
            "枣庄公共资源交易",
            30_000,
            "枣庄市公共资源交易平台投标、开标使用的企业数字证书",
        ),
        app(
            "sdzfcg",
            "山东省政府采购",
            30_000,
            "山东省政府采购网上商城及电子卖场使用的企业数字证书",
        ),
        app(
            "sdggzy",
            "山东省公共资源交易",
            40_000,
            "山东省公共资源交易平台（省级）使用的企业数字证书",
        ),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn prices() {
        for (text, fen) in [
            ("300", 30_000),
            ("300.00", 30_000),
            ("300.5", 30_050),
            ("¥ 12.34", 1_234),
            ("0", 0),
            ("45元", 4_500),
        ] {
            assert_eq!(parse_price(text), Ok(fen), "{text}");
        }
        for bad in ["", "abc", "1.234", "-5", "1.", ".5", "1,000"] {
            assert!(parse_price(bad).is_err(), "{bad}");
        }
        assert_eq!(format_price(30_050), "300.50 元");
    }

    #[test]
    fn the_demo_catalogue_is_valid() {
        let apps = demo_catalogue();
        assert_eq!(apps.len(), 3);
        assert!(apps.iter().any(|a| a.name == "枣庄公共资源交易"));
        for a in apps {
            a.validate().unwrap();
        }
    }

    #[test]
    fn validation_names_the_problem() {
        let good = demo_catalogue().remove(0);
        for (app, needle) in [
            (
                Application {
                    code: "A".into(),
                    ..good.clone()
                },
                "代码",
            ),
            (
                Application {
                    name: " ".into(),
                    ..good.clone()
                },
                "名称",
            ),
            (
                Application {
                    validity_days: 0,
                    ..good.clone()
                },
                "有效期",
            ),
            (
                Application {
                    price_fen: -1,
                    ..good.clone()
                },
                "价格",
            ),
            (
                Application {
                    profile: String::new(),
                    ..good.clone()
                },
                "模板",
            ),
        ] {
            let err = app.validate().unwrap_err();
            assert!(err.message_zh().contains(needle), "{err:?}");
        }
    }
}
