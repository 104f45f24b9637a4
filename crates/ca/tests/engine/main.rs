//! Independent checks of the CA engine, in one test binary:
//!
//! - [`openssl`]: the engine's certificates, CRLs and encrypted key files
//!   checked by OpenSSL (`openssl verify`, `openssl x509`, `openssl crl`,
//!   `openssl pkey`) and by a second parser (x509-parser), for every
//!   family; bad requests are refused.
//! - [`ocsp`]: the OCSP responder (RFC 6960, RFC 5019) answering real
//!   requests made by `openssl ocsp`, its responses read back by
//!   `openssl ocsp -respin` and by Python's `cryptography`; malformed
//!   requests and inconsistent input are refused.
//! - [`pkcs11`]: CA keys generated in a PKCS#11 token (SoftHSM2) sign
//!   hierarchies, end entities and CRLs that OpenSSL verifies; keys persist
//!   and stay non-extractable; mistakes give clear errors.
//!
//! [`common`] holds what they share: the test hierarchy, the `openssl`
//! runner, PEM files and the CA's URLs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod ocsp;
mod openssl;
mod pkcs11;
