//! Key families of CertHall's hierarchies and the algorithm identifiers
//! they use.
//!
//! | family | keys | signature |
//! |---|---|---|
//! | `sm2`  | SM2 (curve sm2p256v1, GB/T 32918) | SM2 with SM3, signer ID `1234567812345678` |
//! | `p256` | ECDSA P-256 | ecdsa-with-SHA256 |
//! | `rsa`  | RSA 3072 (root) / 2048 (issuing) | sha256WithRSAEncryption |

use std::fmt;
use std::str::FromStr;

use der::asn1::{AnyRef, ObjectIdentifier};
use serde::{Deserialize, Serialize};
use spki::AlgorithmIdentifierOwned;

/// Object identifiers used across the engine.
pub mod oid {
    use der::asn1::ObjectIdentifier as Oid;

    /// id-ecPublicKey (RFC 5480).
    pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    /// secp256r1 / prime256v1.
    pub const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    /// sm2p256v1 (GM/T 0006).
    pub const SM2P256V1: Oid = Oid::new_unwrap("1.2.156.10197.1.301");
    /// rsaEncryption.
    pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    /// ecdsa-with-SHA256.
    pub const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    /// sha256WithRSAEncryption.
    pub const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
    /// SM2 signature with SM3 (GM/T 0006).
    pub const SM2_WITH_SM3: Oid = Oid::new_unwrap("1.2.156.10197.1.501");
    /// SHA-1 (OCSP CertID).
    pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
    /// SHA-256.
    pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    /// SM3 (GM/T 0006).
    pub const SM3: Oid = Oid::new_unwrap("1.2.156.10197.1.401");
    /// organizationIdentifier (X.520, 2.5.4.97): where CertHall puts the
    /// unified social credit code (统一社会信用代码) in subjects.
    pub const ORGANIZATION_IDENTIFIER: Oid = Oid::new_unwrap("2.5.4.97");
    /// id-kp-OCSPSigning.
    pub const KP_OCSP_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.9");
    /// id-kp-clientAuth.
    pub const KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
    /// id-kp-emailProtection.
    pub const KP_EMAIL_PROTECTION: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.4");
    /// id-kp-codeSigning.
    pub const KP_CODE_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.3");
    /// id-pkix-ocsp-nocheck.
    pub const OCSP_NOCHECK: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.5");
    /// id-ad-ocsp.
    pub const AD_OCSP: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1");
    /// id-ad-caIssuers.
    pub const AD_CA_ISSUERS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.2");
}

/// A hierarchy's key family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// 国密: SM2 keys, SM2-with-SM3 signatures.
    Sm2,
    /// ECDSA P-256 with SHA-256.
    P256,
    /// RSA with SHA-256.
    Rsa,
}

impl Family {
    /// All families.
    pub const ALL: [Family; 3] = [Family::Sm2, Family::P256, Family::Rsa];

    /// Stored / command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sm2 => "sm2",
            Self::P256 => "p256",
            Self::Rsa => "rsa",
        }
    }

    /// The label users see.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Sm2 => "SM2 国密",
            Self::P256 => "ECDSA P-256",
            Self::Rsa => "RSA",
        }
    }

    /// The key algorithm of the root CA.
    pub fn root_key(self) -> KeyAlgorithm {
        match self {
            Self::Sm2 => KeyAlgorithm::Sm2,
            Self::P256 => KeyAlgorithm::EcP256,
            Self::Rsa => KeyAlgorithm::Rsa(3072),
        }
    }

    /// The key algorithm of the issuing CA and the OCSP signer.
    pub fn issuing_key(self) -> KeyAlgorithm {
        match self {
            Self::Sm2 => KeyAlgorithm::Sm2,
            Self::P256 => KeyAlgorithm::EcP256,
            Self::Rsa => KeyAlgorithm::Rsa(2048),
        }
    }

    /// The signature algorithm identifier CAs of this family sign with.
    pub fn signature_algorithm(self) -> AlgorithmIdentifierOwned {
        match self {
            Self::Sm2 => AlgorithmIdentifierOwned {
                oid: oid::SM2_WITH_SM3,
                parameters: None,
            },
            Self::P256 => AlgorithmIdentifierOwned {
                oid: oid::ECDSA_WITH_SHA256,
                parameters: None,
            },
            // RFC 4055: the parameters of sha256WithRSAEncryption are NULL.
            Self::Rsa => AlgorithmIdentifierOwned {
                oid: oid::SHA256_WITH_RSA,
                parameters: Some(AnyRef::NULL.into()),
            },
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sm2" => Ok(Self::Sm2),
            "p256" => Ok(Self::P256),
            "rsa" => Ok(Self::Rsa),
            other => Err(format!(
                "unknown family {other:?} (expected sm2, p256 or rsa)"
            )),
        }
    }
}

/// A subject key algorithm (what a CSR carries, what a profile accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "bits")]
pub enum KeyAlgorithm {
    /// SM2.
    Sm2,
    /// ECDSA / ECDH on P-256.
    EcP256,
    /// RSA of the given modulus size.
    Rsa(u32),
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sm2 => f.write_str("SM2"),
            Self::EcP256 => f.write_str("EC P-256"),
            Self::Rsa(bits) => write!(f, "RSA {bits}"),
        }
    }
}

/// The curve OID in an EC SubjectPublicKeyInfo, if any.
pub fn ec_curve(spki: &spki::SubjectPublicKeyInfoOwned) -> Option<ObjectIdentifier> {
    spki.algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Family::ALL {
            assert_eq!(f.as_str().parse::<Family>(), Ok(f));
        }
        assert!("ed25519".parse::<Family>().is_err());
    }
}
