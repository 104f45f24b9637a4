//! Certificate profiles: what a certificate issued for an application
//! (relying platform) looks like, and which requests it accepts. Stored as
//! JSON in the database; one per application later.

use der::flagset::FlagSet;
use serde::{Deserialize, Serialize};
use x509_cert::ext::pkix::KeyUsages;

use crate::family::{oid, KeyAlgorithm};
use crate::name::{Attr, Subject};
use crate::{CaError, Result};

/// A key usage bit a profile may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyUsageName {
    /// digitalSignature.
    DigitalSignature,
    /// nonRepudiation (contentCommitment).
    NonRepudiation,
    /// keyEncipherment.
    KeyEncipherment,
    /// dataEncipherment.
    DataEncipherment,
    /// keyAgreement.
    KeyAgreement,
}

/// An extended key usage a profile may list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExtendedKeyUsageName {
    /// TLS client authentication (login to relying platforms).
    ClientAuth,
    /// S/MIME and document signing.
    EmailProtection,
    /// Code signing.
    CodeSigning,
}

/// A certificate profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Unique name, e.g. `enterprise`.
    pub name: String,
    /// What it is for, shown to operators.
    pub description: String,
    /// Subject attributes that must be present (keys as in `CN=…`).
    pub subject_required: Vec<String>,
    /// Subject attributes that may be present besides the required ones.
    pub subject_optional: Vec<String>,
    /// Key algorithms accepted in requests.
    pub key_algorithms: Vec<KeyAlgorithm>,
    /// Validity in days.
    pub validity_days: u32,
    /// Key usage bits.
    pub key_usage: Vec<KeyUsageName>,
    /// Extended key usages.
    pub extended_key_usage: Vec<ExtendedKeyUsageName>,
    /// Certificate policy OID (dotted), if any.
    pub policy_oid: Option<String>,
}

impl Profile {
    /// The default profile for enterprise certificates (企业证书) used on
    /// public resource trading platforms.
    pub fn enterprise() -> Self {
        Self {
            name: "enterprise".into(),
            description: "企业数字证书（公共资源交易等应用）".into(),
            subject_required: vec!["C".into(), "O".into(), "USCC".into(), "CN".into()],
            subject_optional: vec!["ST".into(), "L".into(), "OU".into()],
            key_algorithms: vec![
                KeyAlgorithm::Sm2,
                KeyAlgorithm::EcP256,
                KeyAlgorithm::Rsa(2048),
                KeyAlgorithm::Rsa(3072),
                KeyAlgorithm::Rsa(4096),
            ],
            validity_days: 365,
            key_usage: vec![KeyUsageName::DigitalSignature, KeyUsageName::NonRepudiation],
            extended_key_usage: vec![
                ExtendedKeyUsageName::ClientAuth,
                ExtendedKeyUsageName::EmailProtection,
            ],
            policy_oid: None,
        }
    }

    /// The default profile for personal certificates (个人证书).
    pub fn person() -> Self {
        Self {
            name: "person".into(),
            description: "个人数字证书".into(),
            subject_required: vec!["C".into(), "CN".into()],
            subject_optional: vec!["ST".into(), "L".into(), "O".into(), "OU".into()],
            ..Self::enterprise()
        }
    }

    /// Checks the profile itself.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CaError::InvalidProfile(m));
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad(format!(
                "name {:?} must be lowercase letters, digits and '-'",
                self.name
            ));
        }
        if !(1..=3650).contains(&self.validity_days) {
            return bad(format!(
                "validity {} days is outside 1..=3650",
                self.validity_days
            ));
        }
        if self.key_algorithms.is_empty() {
            return bad("no key algorithm accepted".into());
        }
        for k in &self.key_algorithms {
            if let KeyAlgorithm::Rsa(bits) = k {
                if *bits < 2048 || !bits.is_multiple_of(1024) || *bits > 8192 {
                    return bad(format!(
                        "RSA size {bits} not allowed (2048..=8192, multiple of 1024)"
                    ));
                }
            }
        }
        if self.key_usage.is_empty() {
            return bad("no key usage".into());
        }
        for a in self.subject_required.iter().chain(&self.subject_optional) {
            if !Attr::ALL.iter().any(|k| k.key() == a) {
                return bad(format!("unknown subject attribute {a:?}"));
            }
        }
        if !self.subject_required.iter().any(|a| a == "CN") {
            return bad("CN must be required".into());
        }
        if let Some(p) = &self.policy_oid {
            if p.parse::<der::asn1::ObjectIdentifier>().is_err() {
                return bad(format!("policy OID {p:?} is not a dotted OID"));
            }
        }
        Ok(())
    }

    /// Refuses a subject with missing or unexpected attributes.
    pub fn check_subject(&self, subject: &Subject) -> Result<()> {
        for req in &self.subject_required {
            if !subject.attrs().any(|a| a.key() == req) {
                return Err(CaError::InvalidSubject(format!(
                    "profile {} requires {req}",
                    self.name
                )));
            }
        }
        for a in subject.attrs() {
            let key = a.key();
            if !self
                .subject_required
                .iter()
                .chain(&self.subject_optional)
                .any(|k| k == key)
            {
                return Err(CaError::InvalidSubject(format!(
                    "profile {} does not allow {key}",
                    self.name
                )));
            }
        }
        Ok(())
    }

    /// Refuses a key the profile does not accept.
    pub fn check_key(&self, key: KeyAlgorithm) -> Result<()> {
        if self.key_algorithms.contains(&key) {
            Ok(())
        } else {
            let accepted: Vec<String> = self
                .key_algorithms
                .iter()
                .map(ToString::to_string)
                .collect();
            Err(CaError::KeyNotAllowed(format!(
                "{key} (profile {} accepts {})",
                self.name,
                accepted.join(", ")
            )))
        }
    }

    /// The key usage flags.
    pub fn key_usage_flags(&self) -> FlagSet<KeyUsages> {
        let mut f = FlagSet::default();
        for k in &self.key_usage {
            f |= match k {
                KeyUsageName::DigitalSignature => KeyUsages::DigitalSignature,
                KeyUsageName::NonRepudiation => KeyUsages::NonRepudiation,
                KeyUsageName::KeyEncipherment => KeyUsages::KeyEncipherment,
                KeyUsageName::DataEncipherment => KeyUsages::DataEncipherment,
                KeyUsageName::KeyAgreement => KeyUsages::KeyAgreement,
            };
        }
        f
    }

    /// The extended key usage OIDs.
    pub fn extended_key_usage_oids(&self) -> Vec<der::asn1::ObjectIdentifier> {
        self.extended_key_usage
            .iter()
            .map(|e| match e {
                ExtendedKeyUsageName::ClientAuth => oid::KP_CLIENT_AUTH,
                ExtendedKeyUsageName::EmailProtection => oid::KP_EMAIL_PROTECTION,
                ExtendedKeyUsageName::CodeSigning => oid::KP_CODE_SIGNING,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_check_subjects() {
        for p in [Profile::enterprise(), Profile::person()] {
            p.validate().unwrap_or_else(|e| panic!("{e}"));
            let json = serde_json::to_string(&p).unwrap_or_default();
            let back: Profile = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, p);
        }
        let p = Profile::enterprise();
        let ok = Subject::parse("C=CN,O=某公司,USCC=91350100M000100Y43,CN=某公司")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(p.check_subject(&ok).is_ok());
        let missing = Subject::parse("C=CN,CN=张三").unwrap_or_else(|e| panic!("{e}"));
        assert!(p.check_subject(&missing).is_err());
        assert!(p.check_key(KeyAlgorithm::Rsa(1024)).is_err());
        let mut bad = Profile::enterprise();
        bad.key_algorithms = vec![KeyAlgorithm::Rsa(1024)];
        assert!(bad.validate().is_err());
    }
}
