//! CertHall's CA engine: key families, signing keys behind one trait,
//! certificate profiles, issuance from PKCS#10 requests, CRLs and OCSP
//! responses.
//!
//! This crate is pure: it builds and signs DER structures from what it is
//! given. It never reads the clock (times are parameters, as in rcgen), never
//! touches the database (the service layer stores what it returns) and
//! never sees HTTP. The split follows step-ca: [`keys`] is the pluggable
//! signing backend (`cas/apiv1`), [`profile`] says what may be issued
//! (`authority/provisioner`), [`issue`], [`crl`] and [`ocsp`] are the
//! operations (`authority/tls.go`).
//!
//! Standards: RFC 5280 (certificates, CRLs), RFC 2986 (PKCS #10), RFC 6960
//! and RFC 5019 (OCSP), GM/T 0003 / GB/T 32918 (SM2), GM/T 0004 (SM3),
//! GM/T 0009 (SM2 usage, signer ID `1234567812345678`), GM/T 0015-2023
//! (certificate format for SM2 certificates).

pub mod chain;
pub mod crl;
pub mod csr;
pub mod family;
pub mod issue;
pub mod keys;
pub mod name;
pub mod ocsp;
pub mod pkcs11;
pub mod profile;
pub mod sealed;
pub mod time;

pub use family::{Family, KeyAlgorithm};
pub use keys::{CaSigner, SoftwareKey};

/// Why the CA engine refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The request is not a well-formed PKCS#10 CSR (or not PEM/DER at all).
    #[error("malformed certificate request: {0}")]
    MalformedCsr(String),
    /// The CSR's signature does not verify with its own key.
    #[error("the certificate request's signature does not verify (no proof of possession)")]
    BadCsrSignature,
    /// The key in the CSR is not allowed by the profile.
    #[error("key not allowed by the profile: {0}")]
    KeyNotAllowed(String),
    /// The subject given by the caller is not valid.
    #[error("invalid subject: {0}")]
    InvalidSubject(String),
    /// A private key file could not be decrypted (wrong passphrase or corrupt).
    #[error("cannot decrypt the CA key (wrong passphrase or damaged file)")]
    WrongPassphrase,
    /// A key operation failed.
    #[error("key operation failed: {0}")]
    Key(String),
    /// DER encoding or decoding failed.
    #[error("encoding: {0}")]
    Der(#[from] der::Error),
    /// An OCSP request could not be read.
    #[error("malformed OCSP request: {0}")]
    MalformedOcspRequest(String),
    /// A profile is invalid.
    #[error("invalid profile: {0}")]
    InvalidProfile(String),
}

/// Result of a CA operation.
pub type Result<T, E = CaError> = std::result::Result<T, E>;
