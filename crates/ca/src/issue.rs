//! Building and signing certificates (RFC 5280 §4): root, issuing CA,
//! delegated OCSP signer and end-entity certificates.
//!
//! Every certificate gets a 128-bit random positive serial (the caller
//! passes it, so uniqueness is enforced where certificates are stored),
//! subject and authority key identifiers, and — below the root — CRL
//! distribution point and authority information access (OCSP + CA issuers)
//! URLs built from the deployment's public base URL.

use certhall_domain::Timestamp;
use der::asn1::{BitString, Ia5String, OctetString};
use der::{Decode, Encode};
use rand::RngCore;
use sha1::{Digest, Sha1};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;
use x509_cert::Certificate;

use crate::family::oid;
use crate::keys::CaSigner;
use crate::profile::Profile;
use crate::time::x509_time;
use crate::{CaError, Result};

/// Where relying parties find a CA's CRL, OCSP responder and certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaUrls {
    /// CRL distribution point, e.g. `https://ca.example/crl/p256.crl`.
    pub crl: String,
    /// OCSP responder, e.g. `https://ca.example/ocsp`.
    pub ocsp: String,
    /// The issuing CA certificate, e.g. `https://ca.example/ca/p256-issuing.der`.
    pub ca_issuers: String,
}

/// A fresh serial: 128 random bits, positive, never zero.
pub fn random_serial() -> [u8; 16] {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[0] &= 0x7f;
    if b[0] == 0 {
        b[0] = 0x01;
    }
    b
}

/// The serial as lower-case hex, the form CertHall stores and shows.
pub fn serial_hex(serial: &[u8]) -> String {
    hex::encode(serial)
}

/// The key identifier of a public key: SHA-1 of the subjectPublicKey bits
/// (RFC 5280 §4.2.1.2, method 1).
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec()
}

fn ext<E: AsExtension>(value: &E, subject: &Name, others: &[Extension]) -> Result<Extension> {
    Ok(value.to_extension(subject, others)?)
}

fn uri(u: &str) -> Result<GeneralName> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(u)?))
}

/// What kind of certificate to build.
#[derive(Debug, Clone)]
pub enum Kind<'a> {
    /// A self-signed root CA.
    Root,
    /// An issuing (subordinate) CA, path length 0.
    Issuing {
        /// Where the root publishes.
        urls: &'a CaUrls,
    },
    /// A delegated OCSP responder (id-kp-OCSPSigning, id-pkix-ocsp-nocheck).
    OcspSigner,
    /// An end-entity certificate per a profile.
    EndEntity {
        /// The profile.
        profile: &'a Profile,
        /// Where the issuing CA publishes.
        urls: &'a CaUrls,
    },
}

/// Everything needed to issue one certificate.
#[derive(Debug)]
pub struct Request<'a> {
    /// Serial (see [`random_serial`]).
    pub serial: &'a [u8],
    /// Subject name.
    pub subject: Name,
    /// Subject public key.
    pub public_key: SubjectPublicKeyInfoOwned,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// What to build.
    pub kind: Kind<'a>,
}

/// The issuer: its certificate (`None` for a self-signed root) and key.
#[derive(Debug, Clone, Copy)]
pub struct Issuer<'a> {
    /// The issuer's certificate; `None` when the request is a root signing
    /// itself.
    pub certificate: Option<&'a Certificate>,
    /// The issuer's key.
    pub signer: &'a dyn CaSigner,
}

/// Builds and signs a certificate; returns it with its DER.
pub fn issue(issuer: Issuer<'_>, req: Request<'_>) -> Result<(Certificate, Vec<u8>)> {
    let issuer_name = match (issuer.certificate, &req.kind) {
        (Some(c), _) => c.tbs_certificate.subject.clone(),
        (None, Kind::Root) => req.subject.clone(),
        (None, _) => {
            return Err(CaError::Key(
                "only a root may be signed without an issuer certificate".into(),
            ))
        }
    };
    let issuer_spki = match issuer.certificate {
        Some(c) => c.tbs_certificate.subject_public_key_info.clone(),
        None => issuer.signer.public_key_info()?,
    };
    if req.not_after <= req.not_before {
        return Err(CaError::InvalidProfile(
            "validity ends before it starts".into(),
        ));
    }

    let subject = &req.subject;
    let mut exts: Vec<Extension> = Vec::new();
    let ski = SubjectKeyIdentifier(OctetString::new(key_identifier(&req.public_key))?);
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(key_identifier(&issuer_spki))?),
        ..Default::default()
    };
    match &req.kind {
        Kind::Root => {
            exts.push(critical(ext(
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: None,
                },
                subject,
                &exts,
            )?));
            exts.push(critical(ext(
                &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
                subject,
                &exts,
            )?));
            exts.push(ext(&ski, subject, &exts)?);
        }
        Kind::Issuing { urls } => {
            exts.push(critical(ext(
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: Some(0),
                },
                subject,
                &exts,
            )?));
            exts.push(critical(ext(
                &KeyUsage(
                    KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature,
                ),
                subject,
                &exts,
            )?));
            exts.push(ext(&ski, subject, &exts)?);
            exts.push(ext(&aki, subject, &exts)?);
            exts.push(ext(&crl_dp(urls)?, subject, &exts)?);
        }
        Kind::OcspSigner => {
            exts.push(critical(ext(
                &BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
                subject,
                &exts,
            )?));
            exts.push(critical(ext(
                &KeyUsage(KeyUsages::DigitalSignature.into()),
                subject,
                &exts,
            )?));
            exts.push(ext(
                &ExtendedKeyUsage(vec![oid::KP_OCSP_SIGNING]),
                subject,
                &exts,
            )?);
            exts.push(ext(&ski, subject, &exts)?);
            exts.push(ext(&aki, subject, &exts)?);
            // RFC 6960 §4.2.2.2.1: id-pkix-ocsp-nocheck, value NULL.
            exts.push(Extension {
                extn_id: oid::OCSP_NOCHECK,
                critical: false,
                extn_value: OctetString::new(der::asn1::Null.to_der()?)?,
            });
        }
        Kind::EndEntity { profile, urls } => {
            exts.push(critical(ext(
                &BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
                subject,
                &exts,
            )?));
            exts.push(critical(ext(
                &KeyUsage(profile.key_usage_flags()),
                subject,
                &exts,
            )?));
            let eku = profile.extended_key_usage_oids();
            if !eku.is_empty() {
                exts.push(ext(&ExtendedKeyUsage(eku), subject, &exts)?);
            }
            exts.push(ext(&ski, subject, &exts)?);
            exts.push(ext(&aki, subject, &exts)?);
            if let Some(p) = &profile.policy_oid {
                let policy_identifier = p
                    .parse()
                    .map_err(|_| CaError::InvalidProfile(format!("policy OID {p:?}")))?;
                exts.push(ext(
                    &CertificatePolicies(vec![PolicyInformation {
                        policy_identifier,
                        policy_qualifiers: None,
                    }]),
                    subject,
                    &exts,
                )?);
            }
            exts.push(ext(&crl_dp(urls)?, subject, &exts)?);
            exts.push(ext(&aia(urls)?, subject, &exts)?);
        }
    }

    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(req.serial)?,
        signature: issuer.signer.family().signature_algorithm(),
        issuer: issuer_name,
        validity: Validity {
            not_before: x509_time(req.not_before)?,
            not_after: x509_time(req.not_after)?,
        },
        subject: req.subject.clone(),
        subject_public_key_info: req.public_key.clone(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(exts),
    };
    let tbs_der = tbs.to_der()?;
    let signature = issuer.signer.sign(&tbs_der)?;
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: issuer.signer.family().signature_algorithm(),
        signature: BitString::from_bytes(&signature)?,
    };
    let der = cert.to_der()?;
    // Round-trip: what we store must parse back to the same thing.
    let reparsed = Certificate::from_der(&der)?;
    if reparsed != cert {
        return Err(CaError::Key(
            "certificate does not round-trip through DER".into(),
        ));
    }
    Ok((cert, der))
}

fn critical(mut e: Extension) -> Extension {
    e.critical = true;
    e
}

fn crl_dp(urls: &CaUrls) -> Result<CrlDistributionPoints> {
    Ok(CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri(&urls.crl)?])),
        reasons: None,
        crl_issuer: None,
    }]))
}

fn aia(urls: &CaUrls) -> Result<AuthorityInfoAccessSyntax> {
    Ok(AuthorityInfoAccessSyntax(vec![
        AccessDescription {
            access_method: oid::AD_OCSP,
            access_location: uri(&urls.ocsp)?,
        },
        AccessDescription {
            access_method: oid::AD_CA_ISSUERS,
            access_location: uri(&urls.ca_issuers)?,
        },
    ]))
}

/// PEM of a DER certificate.
pub fn to_pem(der: &[u8]) -> Result<String> {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der)
        .map_err(|e| CaError::Key(e.to_string()))
}

/// SHA-256 fingerprint, upper-case hex with colons (as pages show it).
pub fn fingerprint_sha256(der: &[u8]) -> String {
    let d = sha2::Sha256::digest(der);
    d.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
