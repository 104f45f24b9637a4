//! Certificate subjects from verified data.
//!
//! The CA never trusts the subject of a CSR: the caller passes the subject
//! as `CN=…,O=…` text built from verified identity data, and this module
//! turns it into an X.501 `Name`. Values are `UTF8String` (Chinese names
//! must survive), except `countryName`, which X.520 requires to be a
//! two-letter `PrintableString`.
//!
//! The unified social credit code (统一社会信用代码, GB 32100) goes into the
//! `organizationIdentifier` attribute (X.520, OID 2.5.4.97), written `USCC=`
//! here. GM/T 0015-2023 adds the code to SM2 certificate subjects; we use
//! the X.520 attribute rather than a private OID so that every X.509 tool
//! (OpenSSL prints it as `organizationIdentifier`) reads it, for all three
//! families alike.

use std::fmt;

use const_oid::db::rfc4519;
use der::asn1::{Any, ObjectIdentifier, PrintableStringRef, SetOfVec, Utf8StringRef};
use der::Tag;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use crate::family::oid;
use crate::{CaError, Result};

/// The attributes CertHall puts in subjects, in the order they appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attr {
    /// `C` countryName.
    Country,
    /// `ST` stateOrProvinceName.
    State,
    /// `L` localityName.
    Locality,
    /// `O` organizationName.
    Organization,
    /// `OU` organizationalUnitName.
    OrgUnit,
    /// `USCC` organizationIdentifier (统一社会信用代码).
    Uscc,
    /// `CN` commonName.
    CommonName,
}

impl Attr {
    /// Every attribute, in subject order.
    pub const ALL: [Attr; 7] = [
        Self::Country,
        Self::State,
        Self::Locality,
        Self::Organization,
        Self::OrgUnit,
        Self::Uscc,
        Self::CommonName,
    ];

    fn parse(key: &str) -> Option<Self> {
        Some(match key.trim().to_ascii_uppercase().as_str() {
            "C" => Self::Country,
            "ST" => Self::State,
            "L" => Self::Locality,
            "O" => Self::Organization,
            "OU" => Self::OrgUnit,
            "USCC" | "ORGANIZATIONIDENTIFIER" => Self::Uscc,
            "CN" => Self::CommonName,
            _ => return None,
        })
    }

    /// The short name used in subject text.
    pub fn key(self) -> &'static str {
        match self {
            Self::Country => "C",
            Self::State => "ST",
            Self::Locality => "L",
            Self::Organization => "O",
            Self::OrgUnit => "OU",
            Self::Uscc => "USCC",
            Self::CommonName => "CN",
        }
    }

    fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Country => rfc4519::COUNTRY_NAME,
            Self::State => rfc4519::ST,
            Self::Locality => rfc4519::L,
            Self::Organization => rfc4519::O,
            Self::OrgUnit => rfc4519::OU,
            Self::Uscc => oid::ORGANIZATION_IDENTIFIER,
            Self::CommonName => rfc4519::CN,
        }
    }

    /// Upper bounds from RFC 5280 Appendix A.
    fn max_chars(self) -> usize {
        match self {
            Self::Country => 2,
            Self::CommonName | Self::Organization | Self::OrgUnit => 64,
            Self::State | Self::Locality => 128,
            Self::Uscc => 18,
        }
    }
}

/// A parsed, validated subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    attrs: Vec<(Attr, String)>,
}

impl Subject {
    /// Parses `CN=…,O=…` (RFC 4514 style: `\,` escapes a comma). `CN` is
    /// required; each attribute at most once.
    pub fn parse(text: &str) -> Result<Self> {
        let mut attrs: Vec<(Attr, String)> = Vec::new();
        for part in split_unescaped(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| CaError::InvalidSubject(format!("{part:?} is not KEY=value")))?;
            let attr = Attr::parse(k).ok_or_else(|| {
                CaError::InvalidSubject(format!(
                    "unsupported attribute {k:?} (use C, ST, L, O, OU, USCC, CN)"
                ))
            })?;
            let value = v.trim().replace("\\,", ",");
            if value.is_empty() {
                return Err(CaError::InvalidSubject(format!("{} is empty", attr.key())));
            }
            if value.chars().count() > attr.max_chars() {
                return Err(CaError::InvalidSubject(format!(
                    "{} longer than {} characters",
                    attr.key(),
                    attr.max_chars()
                )));
            }
            if value.chars().any(char::is_control) {
                return Err(CaError::InvalidSubject(format!(
                    "{} contains control characters",
                    attr.key()
                )));
            }
            if attr == Attr::Country
                && !(value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()))
            {
                return Err(CaError::InvalidSubject(format!(
                    "C must be two capital letters, got {value:?}"
                )));
            }
            if attr == Attr::Uscc && !uscc_valid(&value) {
                return Err(CaError::InvalidSubject(format!(
                    "USCC {value:?} is not a valid unified social credit code"
                )));
            }
            if attrs.iter().any(|(a, _)| *a == attr) {
                return Err(CaError::InvalidSubject(format!(
                    "{} given twice",
                    attr.key()
                )));
            }
            attrs.push((attr, value));
        }
        if !attrs.iter().any(|(a, _)| *a == Attr::CommonName) {
            return Err(CaError::InvalidSubject("CN is required".into()));
        }
        attrs.sort_by_key(|(a, _)| *a);
        Ok(Self { attrs })
    }

    /// The value of one attribute.
    pub fn get(&self, attr: Attr) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(a, _)| *a == attr)
            .map(|(_, v)| v.as_str())
    }

    /// The attributes present.
    pub fn attrs(&self) -> impl Iterator<Item = Attr> + '_ {
        self.attrs.iter().map(|(a, _)| *a)
    }

    /// The X.501 name.
    pub fn to_name(&self) -> Result<Name> {
        let mut rdns = Vec::new();
        for (attr, value) in &self.attrs {
            let any = if *attr == Attr::Country {
                Any::new(
                    Tag::PrintableString,
                    PrintableStringRef::new(value)?.as_bytes(),
                )?
            } else {
                Any::new(Tag::Utf8String, Utf8StringRef::new(value)?.as_bytes())?
            };
            let atv = AttributeTypeAndValue {
                oid: attr.oid(),
                value: any,
            };
            rdns.push(RelativeDistinguishedName(SetOfVec::try_from(vec![atv])?));
        }
        Ok(RdnSequence(rdns))
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .attrs
            .iter()
            .map(|(a, v)| format!("{}={}", a.key(), v.replace(',', "\\,")))
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn split_unescaped(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// GB 32100 check of a unified social credit code, exactly as written
/// (canonical upper-case form, no spaces). The check itself lives in the
/// domain ([`certhall_domain::identity::Uscc`]), so the CA and the
/// application forms agree on what a valid code is.
pub fn uscc_valid(code: &str) -> bool {
    certhall_domain::identity::Uscc::is_valid_canonical(code)
}

/// Renders an X.501 name as `KEY=value,…` text (for storage and pages).
pub fn name_to_text(name: &Name) -> String {
    let mut parts = Vec::new();
    for rdn in &name.0 {
        for atv in rdn.0.iter() {
            let key = match atv.oid {
                o if o == rfc4519::COUNTRY_NAME => "C".to_owned(),
                o if o == rfc4519::ST => "ST".to_owned(),
                o if o == rfc4519::L => "L".to_owned(),
                o if o == rfc4519::O => "O".to_owned(),
                o if o == rfc4519::OU => "OU".to_owned(),
                o if o == rfc4519::CN => "CN".to_owned(),
                o if o == oid::ORGANIZATION_IDENTIFIER => "USCC".to_owned(),
                o => o.to_string(),
            };
            let value = String::from_utf8_lossy(atv.value.value()).replace(',', "\\,");
            parts.push(format!("{key}={value}"));
        }
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let s = Subject::parse(
            "CN=张三,O=枣庄某某建设有限公司,USCC=91370400MA3C6A9X1Q,C=CN,ST=山东省,L=枣庄市",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.to_string(),
            "C=CN,ST=山东省,L=枣庄市,O=枣庄某某建设有限公司,USCC=91370400MA3C6A9X1Q,CN=张三"
        );
        assert_eq!(
            name_to_text(&s.to_name().unwrap_or_else(|e| panic!("{e}"))),
            s.to_string()
        );
        let escaped = Subject::parse(r"CN=Foo\, Inc.").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(escaped.get(Attr::CommonName), Some("Foo, Inc."));
    }

    #[test]
    fn refuses_bad_subjects() {
        for bad in [
            "",
            "O=x",
            "CN=a,CN=b",
            "CN=a,X=1",
            "CN=a,C=China",
            "CN=a,USCC=91370400MA3C6A9X1A",
            "CN=",
            "CN",
        ] {
            assert!(Subject::parse(bad).is_err(), "{bad}");
        }
        assert!(Subject::parse(&format!("CN={}", "长".repeat(65))).is_err());
    }

    #[test]
    fn uscc_check_characters() {
        // Published examples of valid codes, and single-character changes.
        for good in [
            "91350100M000100Y43",
            "91110000802100433B",
            "91370400MA3C6A9X1Q",
        ] {
            assert!(uscc_valid(good), "{good}");
        }
        for bad in [
            "91350100M000100Y44",
            "9135010OM000100Y43",
            "91350100M000100Y4",
            "91350100M000100Y43X",
            "91350100M000100I43",
        ] {
            assert!(!uscc_valid(bad), "{bad}");
        }
    }
}
