//! 第六步 选择介质与收货信息: the key model (介质), the delivery address
//! (收货地址) and the invoice (发票) of an approved order, and what it
//! costs.
//!
//! - Key models are inventory items with a price. The manual's “红Key /
//!   蓝Key 随机发放”: the applicant picks the model, never the colour;
//!   CertHall assigns a colour from stock at production. Stock is counted
//!   per model and colour ([`KeyColour`]); a model is available while any
//!   colour has a unit that is not reserved by another order.
//! - Addresses name a county-level division by its GB/T 2260 code
//!   ([`crate::divisions`]) and a mainland mobile.
//! - Invoices are 全电发票 (数电票): 数电普票 or 数电专票. The buyer's
//!   纳税人识别号 is checked: an 18-character one is a unified social
//!   credit code (GB 32100 check character) or, for individuals, a resident
//!   ID (GB 11643).
//! - Amounts are integer fen: the application's price as agreed at step 2
//!   plus the key's price ([`Amount`]).

use serde::{Deserialize, Serialize};

use crate::divisions::{delivery_leaf, DivisionPath};
use crate::identity::{resident_id_check_char, uscc_check_char, Uscc};
use crate::{Phone, Refusal};

/// A key model (介质型号) of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyModel {
    /// Stable code, e.g. `ukey-sm2` (lower-case letters, digits, `-`).
    pub code: String,
    /// Shown name, e.g. 国密 UKey（红/蓝随机）.
    pub name: String,
    /// One line for the applicant.
    pub description: String,
    /// Price in fen.
    pub price_fen: i64,
    /// Which bundled picture shows it ([`KEY_PICTURES`]).
    pub picture: String,
    /// Offered to applicants.
    pub active: bool,
}

/// The pictures CertHall ships for key models (SVG, served by the web
/// layer as `/static/keys/<name>.svg`).
pub const KEY_PICTURES: [&str; 2] = ["ukey-standard", "ukey-compact"];

impl KeyModel {
    /// Checks every field; the refusal names the first problem.
    pub fn validate(&self) -> Result<(), Refusal> {
        let bad = |what: &str| Err(Refusal::InvalidKeyModel(what.to_owned()));
        if !(2..=32).contains(&self.code.len())
            || !self
                .code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("代码须为 2–32 位小写字母、数字或“-”");
        }
        let name_len = self.name.trim().chars().count();
        if name_len == 0 || name_len > 40 || self.name.chars().any(char::is_control) {
            return bad("名称须为 1–40 个字符");
        }
        if self.description.chars().count() > 200 || self.description.chars().any(char::is_control)
        {
            return bad("说明不能超过 200 个字符");
        }
        if !(0..=10_000_000).contains(&self.price_fen) {
            return bad("价格须在 0–100000 元之间");
        }
        if !KEY_PICTURES.contains(&self.picture.as_str()) {
            return bad("图片须为 ukey-standard 或 ukey-compact");
        }
        Ok(())
    }
}

/// The colour of a physical key (红Key / 蓝Key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyColour {
    /// 红Key.
    Red,
    /// 蓝Key.
    Blue,
}

impl KeyColour {
    /// Every colour.
    pub const ALL: [KeyColour; 2] = [KeyColour::Red, KeyColour::Blue];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Red => "red",
            Self::Blue => "blue",
        }
    }

    /// Reads a stored or typed name (`red`, `blue`, 红, 蓝).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "red" | "红" | "红Key" => Some(Self::Red),
            "blue" | "蓝" | "蓝Key" => Some(Self::Blue),
            _ => None,
        }
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Red => "红Key",
            Self::Blue => "蓝Key",
        }
    }
}

/// A model's stock: units on hand per colour, and units promised to orders
/// that are confirmed but not produced yet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stock {
    /// Units on hand, per colour.
    pub on_hand: Vec<(KeyColour, i64)>,
    /// Units reserved by confirmed orders (any colour).
    pub reserved: i64,
}

impl Stock {
    /// Units on hand, all colours.
    pub fn total(&self) -> i64 {
        self.on_hand.iter().map(|(_, n)| *n).sum()
    }

    /// Units an order may still take.
    pub fn available(&self) -> i64 {
        (self.total() - self.reserved).max(0)
    }
}

/// What the page sends for an address (raw text).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AddressInput {
    /// 收货人.
    pub recipient: String,
    /// 手机号码.
    pub phone: String,
    /// The county-level division's GB/T 2260 code (six digits).
    pub division: String,
    /// 详细地址 (street, number, building, room).
    pub street: String,
}

/// A checked delivery address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAddress {
    /// 收货人.
    pub recipient: String,
    /// A mainland mobile.
    pub phone: Phone,
    /// Province, city and district.
    pub division: DivisionPath,
    /// 详细地址.
    pub street: String,
}

impl DeliveryAddress {
    /// `山东省 枣庄市 市中区 光明路88号`.
    pub fn one_line(&self) -> String {
        format!("{} {}", self.division.display(), self.street)
    }
}

fn clean(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl AddressInput {
    /// Checks the address field by field; the refusal names the field.
    pub fn validate(&self) -> Result<DeliveryAddress, Refusal> {
        let recipient = clean(&self.recipient);
        if recipient.is_empty() {
            return Err(Refusal::MissingField("收货人"));
        }
        let n = recipient.chars().count();
        if !(2..=20).contains(&n)
            || recipient
                .chars()
                .any(|c| c.is_control() || c.is_ascii_digit())
        {
            return Err(Refusal::InvalidField(
                "收货人姓名应为 2–20 个字，不含数字".into(),
            ));
        }
        if self.phone.trim().is_empty() {
            return Err(Refusal::MissingField("收货人手机号"));
        }
        let phone = Phone::parse(&self.phone).map_err(|_| {
            Refusal::InvalidField("收货人手机号应为11位中国大陆手机号码（如 13800138000）".into())
        })?;
        if self.division.trim().is_empty() {
            return Err(Refusal::MissingField("所在地区（省、市、区县）"));
        }
        let division = delivery_leaf(self.division.trim()).ok_or(Refusal::UnknownDivision)?;
        let street = clean(&self.street);
        if street.is_empty() {
            return Err(Refusal::MissingField("详细地址"));
        }
        let n = street.chars().count();
        if !(4..=100).contains(&n) || street.chars().any(char::is_control) {
            return Err(Refusal::InvalidField(
                "详细地址应为 4–100 个字（街道、门牌号、楼栋、房间号）".into(),
            ));
        }
        Ok(DeliveryAddress {
            recipient,
            phone,
            division,
            street,
        })
    }
}

/// 数电普票 or 数电专票.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceKind {
    /// 数电普票 (电子发票（普通发票）).
    Ordinary,
    /// 数电专票 (电子发票（增值税专用发票）).
    Special,
}

impl InvoiceKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ordinary => "ordinary",
            Self::Special => "special",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ordinary" => Some(Self::Ordinary),
            "special" => Some(Self::Special),
            _ => None,
        }
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Ordinary => "数电普票",
            Self::Special => "数电专票",
        }
    }
}

/// What the page sends for an invoice (raw text); `kind` empty or `none`
/// means no invoice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InvoiceInput {
    /// `none`, `ordinary` or `special`.
    pub kind: String,
    /// 购买方名称.
    pub buyer_name: String,
    /// 纳税人识别号.
    pub tax_id: String,
    /// 专票: 地址.
    pub address: String,
    /// 专票: 电话.
    pub phone: String,
    /// 专票: 开户银行.
    pub bank: String,
    /// 专票: 银行账号.
    pub account: String,
    /// Where the invoice is sent.
    pub email: String,
}

/// The buyer's registered details a 数电专票 carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialInvoiceDetails {
    /// 地址.
    pub address: String,
    /// 电话.
    pub phone: String,
    /// 开户银行.
    pub bank: String,
    /// 银行账号.
    pub account: String,
}

/// A checked invoice request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceRequest {
    /// 普票 or 专票.
    pub kind: InvoiceKind,
    /// 购买方名称.
    pub buyer_name: String,
    /// 纳税人识别号, upper case.
    pub tax_id: String,
    /// 专票 only.
    pub special: Option<SpecialInvoiceDetails>,
    /// Where the invoice is sent.
    pub email: String,
}

/// Checks a 纳税人识别号: 15, 17, 18 or 20 characters of digits and upper
/// case letters; when it has 18 it must be a unified social credit code
/// with a correct GB 32100 check character, or a resident ID number with a
/// correct GB 11643 check character (individuals). Returns it upper case.
pub fn check_tax_id(text: &str) -> Result<String, Refusal> {
    let id: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if id.is_empty() {
        return Err(Refusal::MissingField("纳税人识别号"));
    }
    if !matches!(id.len(), 15 | 17 | 18 | 20) || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Refusal::InvalidTaxId(
            "纳税人识别号应为15、17、18或20位数字或大写字母（一般为统一社会信用代码）".into(),
        ));
    }
    if id.len() == 18 {
        if Uscc::is_valid_canonical(&id) {
            return Ok(id);
        }
        if id[..17].bytes().all(|b| b.is_ascii_digit())
            && resident_id_check_char(&id[..17]).map(String::from) == Some(id[17..].to_owned())
        {
            return Ok(id);
        }
        if uscc_check_char(&id[..17]).is_some() {
            return Err(Refusal::InvalidTaxId(
                "纳税人识别号（统一社会信用代码）校验位不正确，请对照营业执照逐位核对".into(),
            ));
        }
        return Err(Refusal::InvalidTaxId(
            "18位纳税人识别号应为统一社会信用代码（不含字母I、O、S、V、Z），请对照营业执照核对"
                .into(),
        ));
    }
    Ok(id)
}

/// A plausible email address: one `@`, something before it, a domain with
/// a dot after it, no spaces, at most 254 characters.
pub fn check_email(text: &str) -> Result<String, Refusal> {
    let email = text.trim();
    if email.is_empty() {
        return Err(Refusal::MissingField("接收发票的电子邮箱"));
    }
    let bad = || Refusal::InvalidField("电子邮箱格式不正确（例如 finance@example.com）".into());
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let ok = email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && email.is_ascii()
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(bad());
    }
    Ok(email.to_owned())
}

fn required(value: &str, name: &'static str, max: usize) -> Result<String, Refusal> {
    let v = clean(value);
    if v.is_empty() {
        return Err(Refusal::MissingField(name));
    }
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(Refusal::InvalidField(format!("{name}不能超过 {max} 个字")));
    }
    Ok(v)
}

impl InvoiceInput {
    /// `None` when no invoice is wanted; else the checked request.
    pub fn validate(&self) -> Result<Option<InvoiceRequest>, Refusal> {
        let kind = match self.kind.trim() {
            "" | "none" => return Ok(None),
            k => InvoiceKind::parse(k)
                .ok_or_else(|| Refusal::InvalidField("请选择发票类型".into()))?,
        };
        let buyer_name = required(&self.buyer_name, "发票抬头（购买方名称）", 100)?;
        let tax_id = check_tax_id(&self.tax_id)?;
        let special = match kind {
            InvoiceKind::Ordinary => None,
            InvoiceKind::Special => {
                let account: String = self
                    .account
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                if account.is_empty() {
                    return Err(Refusal::MissingField("银行账号"));
                }
                if !(6..=32).contains(&account.len())
                    || !account.bytes().all(|b| b.is_ascii_digit() || b == b'-')
                {
                    return Err(Refusal::InvalidField("银行账号应为 6–32 位数字".into()));
                }
                let phone = required(&self.phone, "购买方电话", 20)?;
                if !phone
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '-' | ' ' | '(' | ')' | '+'))
                {
                    return Err(Refusal::InvalidField(
                        "购买方电话只能包含数字和“-”，例如 0632-1234567".into(),
                    ));
                }
                Some(SpecialInvoiceDetails {
                    address: required(&self.address, "购买方地址", 100)?,
                    phone,
                    bank: required(&self.bank, "开户银行", 60)?,
                    account,
                })
            }
        };
        Ok(Some(InvoiceRequest {
            kind,
            buyer_name,
            tax_id,
            special,
            email: check_email(&self.email)?,
        }))
    }
}

/// What an order costs, in fen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// The application's price, as agreed at step 2.
    pub application_fen: i64,
    /// The key model's price.
    pub key_fen: i64,
}

impl Amount {
    /// What the applicant pays.
    pub fn total_fen(self) -> i64 {
        self.application_fen.saturating_add(self.key_fen)
    }
}

/// Step 6 as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutInput {
    /// The chosen model's code.
    pub key_model: String,
    /// The delivery address.
    pub address: AddressInput,
    /// The invoice (kind `none` for none).
    pub invoice: InvoiceInput,
}

/// Step 6, checked (the model's availability is checked against stock by
/// the service, under the stock lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The chosen model's code.
    pub key_model: String,
    /// Where the key goes.
    pub address: DeliveryAddress,
    /// The invoice, if wanted.
    pub invoice: Option<InvoiceRequest>,
}

impl CheckoutInput {
    /// Checks the model choice, then the address, then the invoice, in the
    /// page's order.
    pub fn validate(&self) -> Result<Checkout, Refusal> {
        let key_model = self.key_model.trim().to_owned();
        if key_model.is_empty() {
            return Err(Refusal::MissingField("UKey 介质"));
        }
        Ok(Checkout {
            key_model,
            address: self.address.validate()?,
            invoice: self.invoice.validate()?,
        })
    }
}

/// The key models demo mode starts with, and the stock it puts in.
pub fn demo_key_models() -> Vec<(KeyModel, Vec<(KeyColour, i64)>)> {
    vec![
        (
            KeyModel {
                code: "ukey-standard".into(),
                name: "标准 UKey（红Key/蓝Key 随机发放）".into(),
                description: "USB 接口，支持国密 SM2 与 RSA，免驱动".into(),
                price_fen: 8_000,
                picture: "ukey-standard".into(),
                active: true,
            },
            vec![(KeyColour::Red, 50), (KeyColour::Blue, 50)],
        ),
        (
            KeyModel {
                code: "ukey-compact".into(),
                name: "迷你 UKey（Type-C 与 USB 双接口）".into(),
                description: "体积小巧，可直接用于笔记本电脑和手机".into(),
                price_fen: 12_000,
                picture: "ukey-compact".into(),
                active: true,
            },
            vec![(KeyColour::Red, 0), (KeyColour::Blue, 0)],
        ),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn address() -> AddressInput {
        AddressInput {
            recipient: "李 四".into(),
            phone: "13800138000".into(),
            division: "370402".into(),
            street: "光明路 88号 3号楼 501室".into(),
        }
    }

    #[test]
    fn a_good_address() {
        let a = address().validate().unwrap();
        assert_eq!(a.recipient, "李 四");
        assert_eq!(a.division.code(), 370402);
        assert_eq!(a.one_line(), "山东省 枣庄市 市中区 光明路 88号 3号楼 501室");
    }

    type Change = fn(&mut AddressInput);

    #[test]
    fn address_refusals_name_the_field() {
        let cases: [(Change, &str); 7] = [
            (|a| a.recipient.clear(), "missing_field"),
            (|a| a.recipient = "李".into(), "invalid_field"),
            (|a| a.phone = "0632-1234567".into(), "invalid_field"),
            (|a| a.phone = "12800138000".into(), "invalid_field"),
            (|a| a.division = "370400".into(), "unknown_division"),
            (|a| a.division = "999999".into(), "unknown_division"),
            (|a| a.street = "88".into(), "invalid_field"),
        ];
        for (change, code) in cases {
            let mut a = address();
            change(&mut a);
            assert_eq!(a.validate().unwrap_err().code(), code, "{a:?}");
        }
    }

    #[test]
    fn tax_ids() {
        let uscc = {
            let first = "91370400MA3C8XFH2";
            format!("{first}{}", uscc_check_char(first).unwrap())
        };
        assert_eq!(check_tax_id(&uscc.to_lowercase()).unwrap(), uscc);
        // A wrong check character is named as such.
        let mut wrong = uscc.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        let err = check_tax_id(&wrong).unwrap_err();
        assert_eq!(err.code(), "invalid_tax_id");
        assert!(err.message_zh().contains("校验位"), "{}", err.message_zh());
        // An individual's resident ID is a tax ID too.
        assert_eq!(
            check_tax_id("11010519491231002x").unwrap(),
            "11010519491231002X"
        );
        // Old 15-digit 税务登记号 and 20-character ones pass on format.
        assert!(check_tax_id("370402123456789").is_ok());
        assert!(check_tax_id("37040219491231002X01").is_ok());
        for bad in ["", "12345", "3704021234567890", "91370400MA3C8XFH2!"] {
            assert!(check_tax_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn invoices() {
        let none = InvoiceInput::default();
        assert_eq!(none.validate().unwrap(), None);
        let mut special = InvoiceInput {
            kind: "special".into(),
            buyer_name: "枣庄市恒信建设工程有限公司".into(),
            tax_id: "11010519491231002X".into(),
            address: "山东省枣庄市市中区光明路88号".into(),
            phone: "0632-1234567".into(),
            bank: "中国工商银行枣庄分行".into(),
            account: "1606 0201 0920 0123 456".into(),
            email: "finance@example.com".into(),
        };
        let ok = special.validate().unwrap().unwrap();
        assert_eq!(ok.kind, InvoiceKind::Special);
        assert_eq!(ok.special.unwrap().account, "1606020109200123456");
        special.bank.clear();
        assert_eq!(special.validate().unwrap_err().code(), "missing_field");
        let ordinary = InvoiceInput {
            kind: "ordinary".into(),
            buyer_name: "枣庄市恒信建设工程有限公司".into(),
            tax_id: "11010519491231002X".into(),
            email: "finance@example".into(),
            ..Default::default()
        };
        assert_eq!(ordinary.validate().unwrap_err().code(), "invalid_field");
        for good in ["a@b.cn", "finance.dept+ca@example.com.cn"] {
            assert!(check_email(good).is_ok(), "{good}");
        }
        for bad in ["a@b", "@b.cn", "a b@c.cn", "a@@b.cn", "a@b..cn", "张@b.cn"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn checkout_checks_in_page_order() {
        let input = CheckoutInput {
            key_model: String::new(),
            address: AddressInput::default(),
            invoice: InvoiceInput::default(),
        };
        assert_eq!(
            input.validate().unwrap_err(),
            Refusal::MissingField("UKey 介质")
        );
        let input = CheckoutInput {
            key_model: "ukey-standard".into(),
            address: address(),
            invoice: InvoiceInput::default(),
        };
        assert_eq!(input.validate().unwrap().invoice, None);
        assert_eq!(
            Amount {
                application_fen: 30_000,
                key_fen: 8_000
            }
            .total_fen(),
            38_000
        );
    }

    #[test]
    fn stock_counts() {
        let s = Stock {
            on_hand: vec![(KeyColour::Red, 2), (KeyColour::Blue, 1)],
            reserved: 2,
        };
        assert_eq!(s.available(), 1);
        let s = Stock {
            on_hand: vec![(KeyColour::Red, 1)],
            reserved: 3,
        };
        assert_eq!(s.available(), 0);
        for m in demo_key_models() {
            m.0.validate().unwrap();
        }
    }
}
