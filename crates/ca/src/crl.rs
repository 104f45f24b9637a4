//! Certificate revocation lists (RFC 5280 §5), one per issuing CA.

use certhall_domain::Timestamp;
use der::asn1::{BitString, OctetString};
use der::Encode;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber, CrlReason};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;

use crate::issue::key_identifier;
use crate::keys::CaSigner;
use crate::time::x509_time;
use crate::Result;

/// RFC 5280 reason codes, with the names `certhall ca revoke --reason` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// unspecified (0).
    Unspecified,
    /// keyCompromise (1).
    KeyCompromise,
    /// cACompromise (2).
    CaCompromise,
    /// affiliationChanged (3).
    AffiliationChanged,
    /// superseded (4).
    Superseded,
    /// cessationOfOperation (5).
    CessationOfOperation,
    /// certificateHold (6).
    CertificateHold,
    /// privilegeWithdrawn (9).
    PrivilegeWithdrawn,
}

impl Reason {
    /// All reasons.
    pub const ALL: [Reason; 8] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
    ];

    /// The RFC 5280 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    /// Parses the RFC 5280 name (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
    }

    /// What an applicant's online choice (注销) is recorded as.
    pub fn of_applicant(choice: certhall_domain::lifecycle::ApplicantRevocationReason) -> Self {
        Self::parse(choice.rfc5280_name()).unwrap_or(Self::Unspecified)
    }

    /// The numeric code.
    pub fn code(self) -> u8 {
        self.to_x509() as u8
    }

    /// From the numeric code.
    pub fn from_code(c: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|r| i64::from(r.code()) == c)
    }

    /// The Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Unspecified => "未指明",
            Self::KeyCompromise => "密钥泄露",
            Self::CaCompromise => "CA泄露",
            Self::AffiliationChanged => "从属关系变更",
            Self::Superseded => "已被取代",
            Self::CessationOfOperation => "停止使用",
            Self::CertificateHold => "暂停",
            Self::PrivilegeWithdrawn => "权限撤销",
        }
    }

    /// The x509-cert enum.
    pub fn to_x509(self) -> CrlReason {
        match self {
            Self::Unspecified => CrlReason::Unspecified,
            Self::KeyCompromise => CrlReason::KeyCompromise,
            Self::CaCompromise => CrlReason::CaCompromise,
            Self::AffiliationChanged => CrlReason::AffiliationChanged,
            Self::Superseded => CrlReason::Superseded,
            Self::CessationOfOperation => CrlReason::CessationOfOperation,
            Self::CertificateHold => CrlReason::CertificateHold,
            Self::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        }
    }
}

/// One revoked certificate on a CRL.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// Serial bytes.
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub at: Timestamp,
    /// Why.
    pub reason: Reason,
}

/// Builds and signs the CRL of `issuer` (certificate + key); returns DER.
pub fn build(
    issuer_cert: &Certificate,
    signer: &dyn CaSigner,
    number: u64,
    this_update: Timestamp,
    next_update: Timestamp,
    revoked: &[Revoked],
) -> Result<Vec<u8>> {
    let issuer = issuer_cert.tbs_certificate.subject.clone();
    let entries: Vec<RevokedCert> = revoked
        .iter()
        .map(|r| {
            // RFC 5280 §5.3.1: omit reasonCode rather than use unspecified.
            let exts = if r.reason == Reason::Unspecified {
                None
            } else {
                Some(vec![r.reason.to_x509().to_extension(&issuer, &[])?])
            };
            Ok(RevokedCert {
                serial_number: SerialNumber::new(&r.serial)?,
                revocation_date: x509_time(r.at)?,
                crl_entry_extensions: exts,
            })
        })
        .collect::<Result<_>>()?;
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(key_identifier(
            &issuer_cert.tbs_certificate.subject_public_key_info,
        ))?),
        ..Default::default()
    };
    let number = CrlNumber(der::asn1::Uint::new(&number.to_be_bytes())?);
    let exts: Vec<Extension> = vec![
        aki.to_extension(&issuer, &[])?,
        number.to_extension(&issuer, &[])?,
    ];
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: signer.family().signature_algorithm(),
        issuer,
        this_update: x509_time(this_update)?,
        next_update: Some(x509_time(next_update)?),
        revoked_certificates: if entries.is_empty() {
            None
        } else {
            Some(entries)
        },
        crl_extensions: Some(exts),
    };
    let sig = signer.sign(&tbs.to_der()?)?;
    let crl = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: signer.family().signature_algorithm(),
        signature: BitString::from_bytes(&sig)?,
    };
    Ok(crl.to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use certhall_domain::lifecycle::ApplicantRevocationReason;

    #[test]
    fn every_applicant_choice_is_a_named_reason() {
        for choice in ApplicantRevocationReason::ALL {
            // Not the Unspecified fallback: the name itself parsed.
            assert_eq!(Reason::of_applicant(choice).as_str(), choice.rfc5280_name());
        }
        assert_eq!(
            Reason::of_applicant(ApplicantRevocationReason::KeyLost),
            Reason::KeyCompromise
        );
    }
}
