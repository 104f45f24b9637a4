//! Signing keys behind one trait ([`CaSigner`]), so the engine signs the
//! same way with a software key, a PKCS#11 token or (later) an HSM — the
//! role of rcgen's `SigningKey` and step-ca's `cas/apiv1`.
//!
//! Software keys are never stored in the clear: [`SoftwareKey::to_encrypted_pem`]
//! writes PKCS#8 `ENCRYPTED PRIVATE KEY` (PBES2: scrypt + AES-256-CBC,
//! RFC 8018 / RFC 7914), which OpenSSL reads too.

use std::fmt;

use der::asn1::UintRef;
use der::{Decode, Encode, Sequence};
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding, PrivateKeyInfo};
use rand::rngs::OsRng;
use sha2::Sha256;
use signature::{SignatureEncoding, Signer};
use spki::SubjectPublicKeyInfoOwned;
use zeroize::Zeroizing;

use crate::family::{oid, Family, KeyAlgorithm};
use crate::{CaError, Result};

/// The SM2 signer ID every CertHall SM2 signature uses: the GM/T 0009
/// default. (OpenSSL 3 verifies with `-vfyopt distid:1234567812345678`.)
pub const SM2_DIST_ID: &str = "1234567812345678";

/// Something that signs for a CA (root, issuing CA or OCSP signer).
pub trait CaSigner: Send + Sync + fmt::Debug {
    /// The family whose signature algorithm this key produces.
    fn family(&self) -> Family;

    /// The public key, as it goes into certificates.
    fn public_key_info(&self) -> Result<SubjectPublicKeyInfoOwned>;

    /// Signs `message` (hashing it as the family's algorithm requires) and
    /// returns the signature as it goes into the BIT STRING: DER
    /// `ECDSA-Sig-Value` / SM2 `SEQUENCE { r, s }`, or the RSA PKCS #1 v1.5
    /// block.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
}

/// A key held in memory, loaded from an encrypted file or just generated.
///
/// P-256 and RSA keys sign with `aws-lc-rs` (AWS-LC, OpenSSL's code line:
/// about ten times the RustCrypto `p256` signer and five times the `rsa`
/// crate; twice ring for RSA); the RustCrypto key is kept for PKCS#8
/// export. SM2 signs with RustCrypto `sm2`, on par with OpenSSL already.
pub enum SoftwareKey {
    /// SM2, with its signing key (public key and the GM/T 0009 `Z` prefix
    /// computed once, not per signature).
    Sm2(sm2::SecretKey, Box<sm2::dsa::SigningKey>),
    /// ECDSA P-256: the key, AWS-LC's signer and the public key (computed once).
    P256(p256::SecretKey, Box<FastEcdsa>),
    /// RSA, with AWS-LC's signer when it accepts the key (2048–8192 bits, a
    /// public exponent of at least 65537); otherwise the `rsa` crate signs.
    Rsa(
        Box<rsa::RsaPrivateKey>,
        Option<Box<aws_lc_rs::signature::RsaKeyPair>>,
    ),
}

/// AWS-LC's P-256 signer with the SubjectPublicKeyInfo DER beside it.
pub struct FastEcdsa {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
    spki: Vec<u8>,
}

impl fmt::Debug for FastEcdsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FastEcdsa(P-256)")
    }
}

impl fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SoftwareKey({})", self.algorithm())
    }
}

impl SoftwareKey {
    /// A fresh random key.
    pub fn generate(alg: KeyAlgorithm) -> Result<Self> {
        Ok(match alg {
            KeyAlgorithm::Sm2 => Self::sm2(sm2::SecretKey::random(&mut OsRng))?,
            KeyAlgorithm::EcP256 => Self::p256(p256::SecretKey::random(&mut OsRng))?,
            KeyAlgorithm::Rsa(bits) => Self::rsa(
                rsa::RsaPrivateKey::new(&mut OsRng, bits as usize)
                    .map_err(|e| CaError::Key(e.to_string()))?,
            )?,
        })
    }

    fn sm2(k: sm2::SecretKey) -> Result<Self> {
        let signer =
            sm2::dsa::SigningKey::new(SM2_DIST_ID, &k).map_err(|e| CaError::Key(e.to_string()))?;
        Ok(Self::Sm2(k, Box::new(signer)))
    }

    fn p256(k: p256::SecretKey) -> Result<Self> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let point = k.public_key().to_encoded_point(false);
        let pair = aws_lc_rs::signature::EcdsaKeyPair::from_private_key_and_public_key(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &k.to_bytes(),
            point.as_bytes(),
        )
        .map_err(|e| CaError::Key(format!("P-256 key refused by aws-lc: {e}")))?;
        let spki = k
            .public_key()
            .to_public_key_der()
            .map_err(|e| CaError::Key(e.to_string()))?
            .into_vec();
        Ok(Self::P256(k, Box::new(FastEcdsa { pair, spki })))
    }

    fn rsa(k: rsa::RsaPrivateKey) -> Result<Self> {
        let der = k.to_pkcs8_der().map_err(|e| CaError::Key(e.to_string()))?;
        // AWS-LC refuses keys outside its policy (small moduli, e = 3);
        // those still sign, with the slower `rsa` crate.
        let fast = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der.as_bytes())
            .ok()
            .map(Box::new);
        Ok(Self::Rsa(Box::new(k), fast))
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            Self::Sm2(..) => KeyAlgorithm::Sm2,
            Self::P256(..) => KeyAlgorithm::EcP256,
            Self::Rsa(k, _) => {
                KeyAlgorithm::Rsa(rsa::traits::PublicKeyParts::size(k.as_ref()) as u32 * 8)
            }
        }
    }

    /// The clear PKCS#8 DER private key, wiped from memory when dropped.
    /// Only for code that encrypts it at once ([`Self::to_encrypted_pem`],
    /// the agent's software tokens): never write it out as it is.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        let doc = match self {
            Self::Sm2(k, _) => k.to_pkcs8_der(),
            Self::P256(k, _) => k.to_pkcs8_der(),
            Self::Rsa(k, _) => k.to_pkcs8_der(),
        }
        .map_err(|e| CaError::Key(e.to_string()))?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// PKCS#8 `ENCRYPTED PRIVATE KEY` PEM under `passphrase`: PBES2 with
    /// scrypt (N = 2^14, r = 8, p = 1: 16 MiB, within OpenSSL's default
    /// scrypt memory limit so `openssl pkey` reads the file) and AES-256-CBC.
    pub fn to_encrypted_pem(&self, passphrase: &[u8]) -> Result<String> {
        let clear = self.to_pkcs8_der()?;
        let info =
            PrivateKeyInfo::try_from(clear.as_slice()).map_err(|e| CaError::Key(e.to_string()))?;
        let mut salt = [0u8; 16];
        let mut iv = [0u8; 16];
        rand::RngCore::fill_bytes(&mut OsRng, &mut salt);
        rand::RngCore::fill_bytes(&mut OsRng, &mut iv);
        let scrypt = pkcs8::pkcs5::scrypt::Params::new(14, 8, 1, 32)
            .map_err(|e| CaError::Key(e.to_string()))?;
        let params = pkcs8::pkcs5::pbes2::Parameters::scrypt_aes256cbc(scrypt, &salt, &iv)
            .map_err(|e| CaError::Key(e.to_string()))?;
        let encrypted = info
            .encrypt_with_params(params, passphrase)
            .map_err(|e| CaError::Key(e.to_string()))?;
        let pem = encrypted
            .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            .map_err(|e| CaError::Key(e.to_string()))?;
        Ok(pem.to_string())
    }

    /// Reads an encrypted PKCS#8 PEM; a wrong passphrase is
    /// [`CaError::WrongPassphrase`].
    pub fn from_encrypted_pem(pem: &str, passphrase: &[u8]) -> Result<Self> {
        let (label, doc) = der::SecretDocument::from_pem(pem)
            .map_err(|e| CaError::Key(format!("not a PEM key file: {e}")))?;
        if label != "ENCRYPTED PRIVATE KEY" {
            return Err(CaError::Key(format!(
                "expected an ENCRYPTED PRIVATE KEY, found {label:?}: CA keys are never stored in the clear"
            )));
        }
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|e| CaError::Key(e.to_string()))?;
        let clear = info
            .decrypt(passphrase)
            .map_err(|_| CaError::WrongPassphrase)?;
        Self::from_pkcs8_der(clear.as_bytes())
    }

    /// Reads a clear PKCS#8 DER private key (only ever in memory).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let pki = PrivateKeyInfo::try_from(der).map_err(|_| CaError::WrongPassphrase)?;
        let alg = pki.algorithm.oid;
        let curve = pki
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok());
        match (alg, curve) {
            (a, Some(c)) if a == oid::EC_PUBLIC_KEY && c == oid::SM2P256V1 => Self::sm2(
                sm2::SecretKey::from_pkcs8_der(der).map_err(|e| CaError::Key(e.to_string()))?,
            ),
            (a, Some(c)) if a == oid::EC_PUBLIC_KEY && c == oid::SECP256R1 => Self::p256(
                p256::SecretKey::from_pkcs8_der(der).map_err(|e| CaError::Key(e.to_string()))?,
            ),
            (a, _) if a == oid::RSA_ENCRYPTION => Self::rsa(
                rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|e| CaError::Key(e.to_string()))?,
            ),
            (a, c) => Err(CaError::Key(format!(
                "unsupported key algorithm {a} / {c:?}"
            ))),
        }
    }
}

impl CaSigner for SoftwareKey {
    fn family(&self) -> Family {
        match self {
            Self::Sm2(..) => Family::Sm2,
            Self::P256(..) => Family::P256,
            Self::Rsa(..) => Family::Rsa,
        }
    }

    fn public_key_info(&self) -> Result<SubjectPublicKeyInfoOwned> {
        let doc = match self {
            // From the signing keys' public halves, computed once.
            Self::Sm2(_, s) => sm2::PublicKey::from_affine(*s.verifying_key().as_affine())
                .map_err(|e| CaError::Key(e.to_string()))?
                .to_public_key_der(),
            Self::P256(_, s) => return Ok(SubjectPublicKeyInfoOwned::from_der(&s.spki)?),
            Self::Rsa(k, _) => k.to_public_key().to_public_key_der(),
        }
        .map_err(|e| CaError::Key(e.to_string()))?;
        Ok(SubjectPublicKeyInfoOwned::from_der(doc.as_bytes())?)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        match self {
            Self::Sm2(_, signer) => {
                let sig: sm2::dsa::Signature = signer
                    .try_sign(message)
                    .map_err(|e| CaError::Key(e.to_string()))?;
                raw_ec_signature_to_der(&sig.to_bytes())
            }
            Self::P256(_, signer) => {
                let sig = signer
                    .pair
                    .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
                    .map_err(|_| CaError::Key("P-256 signature failed".into()))?;
                Ok(sig.as_ref().to_vec())
            }
            Self::Rsa(_, Some(fast)) => {
                let mut sig = vec![0u8; fast.public_modulus_len()];
                fast.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .map_err(|_| CaError::Key("RSA signature failed".into()))?;
                Ok(sig)
            }
            Self::Rsa(k, None) => {
                let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(k.as_ref().clone());
                let sig = signer
                    .try_sign(message)
                    .map_err(|e| CaError::Key(e.to_string()))?;
                Ok(sig.to_vec())
            }
        }
    }
}

/// `SEQUENCE { r INTEGER, s INTEGER }`, the DER form of EC signatures.
#[derive(Sequence)]
struct EcSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// DER-encodes a raw `r ‖ s` SM2 or ECDSA signature (64 bytes for 256-bit
/// curves). Also used for PKCS#11 tokens, whose `CKM_ECDSA` returns `r ‖ s`.
pub fn raw_ec_signature_to_der(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(CaError::Key(format!(
            "raw EC signature of odd length {}",
            raw.len()
        )));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let v = EcSigValue {
        r: UintRef::new(r)?,
        s: UintRef::new(s)?,
    };
    Ok(v.to_der()?)
}

/// Splits a DER EC signature into 32-byte `r` and `s`.
pub fn der_ec_signature_to_raw(der_sig: &[u8]) -> Result<[u8; 64]> {
    let v = EcSigValue::from_der(der_sig)?;
    let mut out = [0u8; 64];
    for (i, part) in [v.r.as_bytes(), v.s.as_bytes()].iter().enumerate() {
        if part.len() > 32 {
            return Err(CaError::Key(
                "EC signature integer longer than 32 bytes".into(),
            ));
        }
        let start = i * 32 + (32 - part.len());
        out[start..(i + 1) * 32].copy_from_slice(part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use signature::Verifier;

    /// AWS-LC's signatures check out with a second implementation
    /// (RustCrypto), and keys it refuses still sign (with `rsa`).
    #[test]
    fn fast_signatures_verify_elsewhere_and_refused_keys_still_sign() {
        let msg = b"tbsCertificate";
        let p256 = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
        let SoftwareKey::P256(secret, _) = &p256 else {
            panic!("not P-256")
        };
        let sig = p256::ecdsa::DerSignature::from_bytes(&p256.sign(msg).unwrap()).unwrap();
        let verifier = p256::ecdsa::VerifyingKey::from(secret.public_key());
        verifier.verify(msg, &sig).unwrap();
        assert!(verifier.verify(b"another message", &sig).is_err());
        // The key as reloaded from PKCS#8 signs the same way.
        let again = SoftwareKey::from_pkcs8_der(&p256.to_pkcs8_der().unwrap()).unwrap();
        let sig = p256::ecdsa::DerSignature::from_bytes(&again.sign(msg).unwrap()).unwrap();
        verifier.verify(msg, &sig).unwrap();

        for (bits, fast_path) in [(2048, true), (1024, false)] {
            let key = SoftwareKey::generate(KeyAlgorithm::Rsa(bits)).unwrap();
            let SoftwareKey::Rsa(private, fast) = &key else {
                panic!("not RSA")
            };
            assert_eq!(fast.is_some(), fast_path, "{bits}");
            let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(private.to_public_key());
            let sig =
                rsa::pkcs1v15::Signature::try_from(key.sign(msg).unwrap().as_slice()).unwrap();
            verifier.verify(msg, &sig).unwrap();
        }
    }
}
