//! PKCS#10 certificate requests (RFC 2986) signed by a key inside a token.
//!
//! The token only signs: the agent builds `CertificationRequestInfo` from
//! the key's public key and the requested subject, has the token sign its
//! DER, and assembles the request. The CA ignores the request's subject (it
//! takes the subject from verified data), but a meaningful one helps anyone
//! reading the request.

use certhall_ca::name::Subject;
use certhall_ca::{Family, KeyAlgorithm};
use der::asn1::BitString;
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::request::{CertReq, CertReqInfo, Version};

use crate::token::TokenError;

/// The signature family of a key algorithm.
pub fn family_of(algorithm: KeyAlgorithm) -> Family {
    match algorithm {
        KeyAlgorithm::Sm2 => Family::Sm2,
        KeyAlgorithm::EcP256 => Family::P256,
        KeyAlgorithm::Rsa(_) => Family::Rsa,
    }
}

/// Parses the subject a page asks for (`CN=…,O=…`), or `CN=<label>` when
/// none is given.
pub fn subject_or_label(subject: Option<&str>, label: &str) -> Result<Subject, TokenError> {
    let text = match subject.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => s.to_owned(),
        None => format!("CN={}", label.replace(',', "\\,")),
    };
    Subject::parse(&text)
        .map_err(|e| TokenError::BadRequest(format!("证书请求的主题格式不正确：{e}")))
}

/// Builds a DER PKCS#10 request for `public_key` (DER SPKI), signed by
/// `sign` (which must produce the X.509 signature encoding of the key's
/// family).
pub fn build(
    subject: &Subject,
    algorithm: KeyAlgorithm,
    public_key: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, TokenError>,
) -> Result<Vec<u8>, TokenError> {
    let encoding = |e: der::Error| TokenError::Module(format!("cannot encode the request: {e}"));
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject
            .to_name()
            .map_err(|e| TokenError::BadRequest(format!("证书请求的主题格式不正确：{e}")))?,
        public_key: SubjectPublicKeyInfoOwned::from_der(public_key).map_err(encoding)?,
        attributes: Default::default(),
    };
    let tbs = info.to_der().map_err(encoding)?;
    let signature = sign(&tbs)?;
    let request = CertReq {
        info,
        algorithm: family_of(algorithm).signature_algorithm(),
        signature: BitString::from_bytes(&signature).map_err(encoding)?,
    };
    request.to_der().map_err(encoding)
}

/// PEM text of a DER request.
pub fn to_pem(der: &[u8]) -> Result<String, TokenError> {
    der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, der)
        .map_err(|e| TokenError::Module(format!("cannot encode the request: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use certhall_ca::{CaSigner, SoftwareKey};

    #[test]
    fn requests_verify_for_every_family() {
        for alg in [
            KeyAlgorithm::EcP256,
            KeyAlgorithm::Sm2,
            KeyAlgorithm::Rsa(2048),
        ] {
            let key = SoftwareKey::generate(alg).unwrap();
            let spki = key.public_key_info().unwrap().to_der().unwrap();
            let subject = subject_or_label(None, "我的密钥, 1").unwrap();
            let der = build(&subject, alg, &spki, |tbs| {
                key.sign(tbs).map_err(|e| TokenError::Module(e.to_string()))
            })
            .unwrap();
            let verified = certhall_ca::csr::verify(&der).unwrap();
            assert_eq!(verified.key, alg);
            assert!(to_pem(&der)
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        }
    }

    #[test]
    fn a_bad_subject_is_a_bad_request() {
        assert!(matches!(
            subject_or_label(Some("XX=1"), "k"),
            Err(TokenError::BadRequest(_))
        ));
    }
}
