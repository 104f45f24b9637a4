//! RSA keys and SHA256withRSA (RSASSA-PKCS1-v1_5 over SHA-256), the
//! signature both WeChat Pay API v3 (`WECHATPAY2-SHA256-RSA2048`) and
//! Alipay (`RSA2`) use, with the Base64 signatures both put on the wire.
//!
//! Keys arrive as PEM files (PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE
//! KEY`, SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY`, X.509 `CERTIFICATE`)
//! or, as Alipay's console hands them out, as bare Base64 of the DER.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};

use crate::PaymentError;

/// Reads a key, certificate or APIv3-key file named in the configuration.
pub(crate) fn read_file(path: &std::path::Path) -> Result<String, PaymentError> {
    std::fs::read_to_string(path)
        .map_err(|e| PaymentError::Config(format!("cannot read {}: {e}", path.display())))
}

/// Reads an RSA private key: PEM (PKCS#8 or PKCS#1) or bare Base64 DER.
pub fn private_key(text: &str) -> Result<RsaPrivateKey, PaymentError> {
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return RsaPrivateKey::from_pkcs8_pem(t)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(t))
            .map_err(|e| PaymentError::Config(format!("private key: {e}")));
    }
    let der = bare_base64(t)?;
    RsaPrivateKey::from_pkcs8_der(&der)
        .or_else(|_| RsaPrivateKey::from_pkcs1_der(&der))
        .map_err(|e| PaymentError::Config(format!("private key: {e}")))
}

/// Reads an RSA public key: PEM (SPKI or PKCS#1), an X.509 certificate's
/// key, or bare Base64 DER (SPKI or PKCS#1).
pub fn public_key(text: &str) -> Result<RsaPublicKey, PaymentError> {
    let t = text.trim();
    if t.contains("-----BEGIN CERTIFICATE-----") {
        return certificate(t).map(|(_, key)| key);
    }
    if t.starts_with("-----BEGIN") {
        return RsaPublicKey::from_public_key_pem(t)
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(t))
            .map_err(|e| PaymentError::Config(format!("public key: {e}")));
    }
    let der = bare_base64(t)?;
    RsaPublicKey::from_public_key_der(&der)
        .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
        .map_err(|e| PaymentError::Config(format!("public key: {e}")))
}

/// Reads an X.509 certificate (PEM): its serial number as upper-case hex
/// without leading zero bytes (how WeChat Pay names platform certificates
/// in `Wechatpay-Serial`) and its RSA public key.
pub fn certificate(pem: &str) -> Result<(String, RsaPublicKey), PaymentError> {
    use x509_cert::der::{DecodePem, Encode};
    let cert = x509_cert::Certificate::from_pem(pem.trim().as_bytes())
        .map_err(|e| PaymentError::Config(format!("certificate: {e}")))?;
    let serial_bytes = cert.tbs_certificate.serial_number.as_bytes();
    let trimmed: Vec<u8> = serial_bytes
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    let serial: String = trimmed.iter().map(|b| format!("{b:02X}")).collect();
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| PaymentError::Config(format!("certificate key: {e}")))?;
    let key = RsaPublicKey::from_public_key_der(&spki)
        .map_err(|e| PaymentError::Config(format!("certificate key is not RSA: {e}")))?;
    Ok((serial, key))
}

fn bare_base64(text: &str) -> Result<Vec<u8>, PaymentError> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD
        .decode(compact)
        .map_err(|_| PaymentError::Config("key is neither PEM nor Base64 DER".into()))
}

/// SHA256withRSA over `message`, Base64.
pub fn sign(key: &RsaPrivateKey, message: &[u8]) -> Result<String, PaymentError> {
    let digest = Sha256::digest(message);
    let sig = key
        .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
        .map_err(|e| PaymentError::Config(format!("signing failed: {e}")))?;
    Ok(STANDARD.encode(sig))
}

/// True when `signature_b64` is a SHA256withRSA signature of `message` by
/// `key`. A malformed signature is simply false.
pub fn verify(key: &RsaPublicKey, message: &[u8], signature_b64: &str) -> bool {
    let Ok(sig) = STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    let digest = Sha256::digest(message);
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
        .is_ok()
}

/// A random string of `n` characters from `[0-9A-Za-z]` (request nonces).
pub fn nonce(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}
