//! Checking that a certificate was signed by a given CA certificate (the
//! link a path validator checks at each step).

use der::Encode;
use x509_cert::Certificate;

/// True if `cert` names `issuer` as its issuer and `issuer`'s key verifies
/// `cert`'s signature (with the family algorithm of that key).
pub fn signed_by(cert: &Certificate, issuer: &Certificate) -> bool {
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return false;
    }
    let Ok(tbs) = cert.tbs_certificate.to_der() else {
        return false;
    };
    let Some(signature) = cert.signature.as_bytes() else {
        return false;
    };
    crate::csr::verify_signature(
        &issuer.tbs_certificate.subject_public_key_info,
        &tbs,
        signature,
    )
    .is_ok()
}
