//! PKCS #10 certificate requests (RFC 2986): parsing PEM or DER, checking
//! the signature with the request's own key (proof of possession), and
//! classifying the key. The request's subject is ignored by design: the
//! caller supplies the subject from verified identity data.

use der::{Decode, Encode};
use pkcs8::DecodePublicKey;
use sha2::Sha256;
use signature::Verifier;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::request::CertReq;

use crate::family::{ec_curve, oid, KeyAlgorithm};
use crate::keys::{der_ec_signature_to_raw, SM2_DIST_ID};
use crate::{CaError, Result};

/// A request whose signature verified.
#[derive(Debug, Clone)]
pub struct VerifiedCsr {
    /// The public key to certify.
    pub public_key: SubjectPublicKeyInfoOwned,
    /// Its algorithm.
    pub key: KeyAlgorithm,
}

/// Reads a CSR given as PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE
/// REQUEST`) or DER, and verifies its signature.
pub fn verify(input: &[u8]) -> Result<VerifiedCsr> {
    let der = to_der(input)?;
    let req = CertReq::from_der(&der)
        .map_err(|e| CaError::MalformedCsr(format!("not a PKCS#10 request: {e}")))?;
    let key = classify(&req.info.public_key)?;
    let message = req.info.to_der()?;
    let sig = req
        .signature
        .as_bytes()
        .ok_or_else(|| CaError::MalformedCsr("signature has unused bits".into()))?;
    let alg = req.algorithm.oid;
    match key {
        KeyAlgorithm::EcP256 if alg == oid::ECDSA_WITH_SHA256 => verify_p256(&req.info.public_key, &message, sig)?,
        KeyAlgorithm::Sm2 if alg == oid::SM2_WITH_SM3 => verify_sm2(&req.info.public_key, &message, sig)?,
        KeyAlgorithm::Rsa(_) if alg == oid::SHA256_WITH_RSA => verify_rsa(&req.info.public_key, &message, sig)?,
        _ => {
            return Err(CaError::KeyNotAllowed(format!(
                "signature algorithm {alg} does not match a {key} key (expected ecdsa-with-SHA256, SM2-with-SM3 or sha256WithRSAEncryption)"
            )))
        }
    }
    Ok(VerifiedCsr {
        public_key: req.info.public_key,
        key,
    })
}

fn to_der(input: &[u8]) -> Result<Vec<u8>> {
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        // White space around the PEM (a blank line after it, as `jq -r`
        // prints the agent's CSR) and CRLF line ends are not the request.
        let text = std::str::from_utf8(trimmed.trim_ascii_end())
            .map_err(|_| CaError::MalformedCsr("PEM is not text".into()))?
            .replace("\r\n", "\n");
        let (label, der) = der::pem::decode_vec(text.as_bytes())
            .map_err(|e| CaError::MalformedCsr(format!("bad PEM: {e}")))?;
        if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
            return Err(CaError::MalformedCsr(format!(
                "PEM label is {label:?}, expected \"CERTIFICATE REQUEST\""
            )));
        }
        Ok(der)
    } else if trimmed.first() == Some(&0x30) {
        Ok(input.to_vec())
    } else {
        Err(CaError::MalformedCsr("neither PEM nor DER".into()))
    }
}

/// The key algorithm of a public key; refuses anything CertHall does not
/// certify (other curves, small RSA is left to profiles).
pub fn classify(spki: &SubjectPublicKeyInfoOwned) -> Result<KeyAlgorithm> {
    let alg = spki.algorithm.oid;
    if alg == oid::EC_PUBLIC_KEY {
        return match ec_curve(spki) {
            Some(c) if c == oid::SECP256R1 => Ok(KeyAlgorithm::EcP256),
            Some(c) if c == oid::SM2P256V1 => Ok(KeyAlgorithm::Sm2),
            Some(c) => Err(CaError::KeyNotAllowed(format!(
                "unsupported elliptic curve {c}"
            ))),
            None => Err(CaError::KeyNotAllowed(
                "EC key without a named curve".into(),
            )),
        };
    }
    if alg == oid::RSA_ENCRYPTION {
        let der = spki.to_der()?;
        let key = rsa::RsaPublicKey::from_public_key_der(&der)
            .map_err(|e| CaError::MalformedCsr(format!("bad RSA key: {e}")))?;
        let bits = rsa::traits::PublicKeyParts::size(&key) * 8;
        return Ok(KeyAlgorithm::Rsa(bits as u32));
    }
    Err(CaError::KeyNotAllowed(format!(
        "unsupported key algorithm {alg}"
    )))
}

fn verify_p256(spki: &SubjectPublicKeyInfoOwned, msg: &[u8], sig: &[u8]) -> Result<()> {
    let point = spki.subject_public_key.raw_bytes();
    // Uncompressed points (what every CSR we have seen carries) verify with
    // AWS-LC, three to four times faster; a point that is not on the curve is
    // refused as a malformed key first, as below.
    if point.first() == Some(&4) {
        p256::PublicKey::from_sec1_bytes(point)
            .map_err(|e| CaError::MalformedCsr(format!("bad P-256 key: {e}")))?;
        return aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            point,
        )
        .verify(msg, sig)
        .map_err(|_| CaError::BadCsrSignature);
    }
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki.to_der()?)
        .map_err(|e| CaError::MalformedCsr(format!("bad P-256 key: {e}")))?;
    let sig = p256::ecdsa::DerSignature::from_bytes(sig).map_err(|_| CaError::BadCsrSignature)?;
    key.verify(msg, &sig).map_err(|_| CaError::BadCsrSignature)
}

fn verify_sm2(spki: &SubjectPublicKeyInfoOwned, msg: &[u8], sig: &[u8]) -> Result<()> {
    let key =
        sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DIST_ID, spki.subject_public_key.raw_bytes())
            .map_err(|_| CaError::MalformedCsr("bad SM2 key".into()))?;
    let raw = der_ec_signature_to_raw(sig).map_err(|_| CaError::BadCsrSignature)?;
    let sig = sm2::dsa::Signature::from_slice(&raw).map_err(|_| CaError::BadCsrSignature)?;
    key.verify(msg, &sig).map_err(|_| CaError::BadCsrSignature)
}

fn verify_rsa(spki: &SubjectPublicKeyInfoOwned, msg: &[u8], sig: &[u8]) -> Result<()> {
    // AWS-LC first (2048–8192-bit keys); what it refuses is judged by the
    // `rsa` crate below, which tells a malformed key from a bad signature.
    let fast = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        spki.subject_public_key.raw_bytes(),
    );
    if fast.verify(msg, sig).is_ok() {
        return Ok(());
    }
    let key = rsa::RsaPublicKey::from_public_key_der(&spki.to_der()?)
        .map_err(|e| CaError::MalformedCsr(format!("bad RSA key: {e}")))?;
    let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key);
    let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| CaError::BadCsrSignature)?;
    verifier
        .verify(msg, &sig)
        .map_err(|_| CaError::BadCsrSignature)
}

/// Verifies a signature made by `spki`'s key over `msg` with the family
/// algorithm of that key (used to check our own output in tests and for
/// challenge signatures later).
pub fn verify_signature(spki: &SubjectPublicKeyInfoOwned, msg: &[u8], sig: &[u8]) -> Result<()> {
    match classify(spki)? {
        KeyAlgorithm::EcP256 => verify_p256(spki, msg, sig),
        KeyAlgorithm::Sm2 => verify_sm2(spki, msg, sig),
        KeyAlgorithm::Rsa(_) => verify_rsa(spki, msg, sig),
    }
}
