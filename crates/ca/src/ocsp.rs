//! OCSP (RFC 6960) with the lightweight profile of RFC 5019: reading
//! requests, answering them with signed `BasicOCSPResponse`s, and the
//! unsigned error responses of RFC 6960 §2.3.
//!
//! The responder is a *delegated* one (RFC 6960 §4.2.2.2): a certificate
//! issued by the issuing CA with id-kp-OCSPSigning and id-pkix-ocsp-nocheck
//! (see [`crate::issue::Kind::OcspSigner`]). Every response names it by key
//! (RFC 5019 §2.2.3: `ResponderID ::= byKey`, the SHA-1 of its public key
//! bits), carries it in `certs` so clients can check the delegation, and
//! always has `nextUpdate` (RFC 5019 §2.2.4).
//!
//! What the caller does with a request:
//!
//! 1. [`parse_request`]; on error answer [`error_response`]`(MalformedRequest)`;
//! 2. for each [`CertId`], find the issuing CA with [`issued_by`] and look
//!    the certificate up by [`serial_of`] (the bytes CertHall stores);
//! 3. [`build_response`] with a [`Status`] per item — `Unknown` when the
//!    issuer is not ours or the serial was never issued.
//!
//! Like the rest of the engine this module is pure: times are parameters,
//! nothing is read or written.
//!
//! Choices worth knowing:
//! - at most [`MAX_ITEMS`] certificates per request (RFC 5019 §2.1.1 asks
//!   clients for one; a small cap keeps the signing cost per request bounded);
//! - request signatures are not checked (RFC 6960 §4.1.2 makes them
//!   optional, RFC 5019 §2.1.2 lets responders ignore them);
//! - a nonce (RFC 6960 §4.4.1 as replaced by RFC 9654) must be a DER
//!   `OCTET STRING` of 1 to 128 octets, otherwise the request is malformed;
//!   a valid one is echoed unchanged;
//! - a request extension marked critical that this responder does not
//!   understand makes the request malformed (RFC 5280 §4.2 semantics).

use certhall_domain::Timestamp;
use const_oid::db::rfc6960::{ID_PKIX_OCSP_NONCE, ID_PKIX_OCSP_RESPONSE};
use der::asn1::{BitString, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use sm3::Sm3;
use x509_cert::ext::Extension;
use x509_cert::Certificate;
use x509_ocsp::ext::Nonce;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

use crate::crl::Reason;
use crate::family::oid;
use crate::issue::key_identifier;
use crate::keys::CaSigner;
use crate::time::generalized;
use crate::{CaError, Result};

/// The most certificates one request may ask about.
pub const MAX_ITEMS: usize = 16;

/// The longest nonce accepted, in octets (RFC 9654 §2.1).
pub const MAX_NONCE_LEN: usize = 128;

/// The width of CertHall serials in bytes (see [`crate::issue::random_serial`]),
/// to which [`serial_of`] pads shorter serials.
pub const SERIAL_LEN: usize = 16;

/// A well-formed OCSP request: the certificates asked about, in order, and
/// the nonce to echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    /// The `reqCert` of each single request (1 to [`MAX_ITEMS`]), to be
    /// echoed unchanged in the response.
    pub items: Vec<CertId>,
    /// The request's nonce, if it sent one.
    pub nonce: Option<Nonce>,
}

/// Reads a DER `OCSPRequest` (the body of a POST, or the base64-decoded
/// path of a GET, RFC 6960 Appendix A).
///
/// Refused with [`CaError::MalformedOcspRequest`]: anything that is not
/// exactly one DER `OCSPRequest`, no or more than [`MAX_ITEMS`] single
/// requests, a nonce that is not an `OCTET STRING` of 1 to
/// [`MAX_NONCE_LEN`] octets or appears twice, and critical extensions this
/// responder does not understand.
pub fn parse_request(der: &[u8]) -> Result<ParsedRequest> {
    let req = OcspRequest::from_der(der).map_err(|e| malformed(e.to_string()))?;
    let tbs = &req.tbs_request;
    let n = tbs.request_list.len();
    if n == 0 {
        return Err(malformed("no certificate asked about".into()));
    }
    if n > MAX_ITEMS {
        return Err(malformed(format!(
            "{n} certificates asked about, at most {MAX_ITEMS} per request"
        )));
    }
    let mut nonce = None;
    for ext in tbs.request_extensions.iter().flatten() {
        if ext.extn_id == ID_PKIX_OCSP_NONCE {
            if nonce.is_some() {
                return Err(malformed("nonce extension repeated".into()));
            }
            nonce = Some(read_nonce(ext)?);
        } else if ext.critical && ext.extn_id != ID_PKIX_OCSP_RESPONSE {
            // id-pkix-ocsp-response (acceptable responses) is understood:
            // the answer is always id-pkix-ocsp-basic, which every client
            // must accept (RFC 6960 §4.4.3).
            return Err(malformed(format!(
                "unsupported critical extension {}",
                ext.extn_id
            )));
        }
    }
    let mut items = Vec::with_capacity(n);
    for single in &tbs.request_list {
        if let Some(ext) = single
            .single_request_extensions
            .iter()
            .flatten()
            .find(|e| e.critical)
        {
            return Err(malformed(format!(
                "unsupported critical single request extension {}",
                ext.extn_id
            )));
        }
        items.push(single.req_cert.clone());
    }
    Ok(ParsedRequest { items, nonce })
}

fn malformed(why: String) -> CaError {
    CaError::MalformedOcspRequest(why)
}

fn read_nonce(ext: &Extension) -> Result<Nonce> {
    let nonce = Nonce::from_der(ext.extn_value.as_bytes())
        .map_err(|e| malformed(format!("nonce is not an OCTET STRING: {e}")))?;
    let len = nonce.0.as_bytes().len();
    if len == 0 || len > MAX_NONCE_LEN {
        return Err(malformed(format!(
            "nonce of {len} octets (1 to {MAX_NONCE_LEN} allowed)"
        )));
    }
    Ok(nonce)
}

/// The serial number a [`CertId`] asks about, as CertHall stores serials:
/// unsigned big-endian bytes whose lower-case hex is the stored serial
/// ([`crate::issue::serial_hex`]).
///
/// The rule, which makes the mapping round-trip for every serial CertHall
/// issues (16 bytes, top bit clear, [`SERIAL_LEN`]):
/// 1. take the DER INTEGER's content octets and drop leading `0x00` octets
///    (the sign octet DER adds before a set top bit, and the leading zero
///    octets of a stored serial, which DER never encodes);
/// 2. if fewer than [`SERIAL_LEN`] octets remain, pad with `0x00` on the
///    left to [`SERIAL_LEN`] — so a stored serial `00 01 …` (16 bytes),
///    encoded by DER as the 15 octets `01 …`, comes back as the same 16
///    bytes.
///
/// Longer serials (other CAs allow up to 20 octets) come back unpadded. A
/// negative serial (never issued by a conforming CA) comes back as its
/// two's-complement octets; like a 16-octet positive serial with its top
/// bit set, it cannot equal a CertHall serial, whose top bit is clear, so
/// the answer for it is `unknown`.
pub fn serial_of(id: &CertId) -> Vec<u8> {
    let raw = id.serial_number.as_bytes();
    let negative = raw.first().is_some_and(|b| b & 0x80 != 0);
    if negative {
        return raw.to_vec();
    }
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
    let magnitude = &raw[start..];
    let mut out = Vec::with_capacity(SERIAL_LEN.max(magnitude.len()));
    out.resize(SERIAL_LEN.saturating_sub(magnitude.len()), 0);
    out.extend_from_slice(magnitude);
    out
}

/// The request's hash algorithm applied to `data`, for the algorithms
/// clients use in `CertID`: SHA-1 (`openssl ocsp`'s default and RFC 5019's
/// requirement), SHA-256, and SM3 (国密 clients). `None` otherwise.
fn cert_id_digest(alg: &ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    if *alg == oid::SHA1 {
        Some(Sha1::digest(data).to_vec())
    } else if *alg == oid::SHA256 {
        Some(Sha256::digest(data).to_vec())
    } else if *alg == oid::SM3 {
        Some(Sm3::digest(data).to_vec())
    } else {
        None
    }
}

/// Whether `id` names a certificate issued by `issuer`: both
/// `issuerNameHash` (hash of the DER of the issuer's subject) and
/// `issuerKeyHash` (hash of its public key bits) match, computed with the
/// request's hash algorithm (SHA-1, SHA-256 or SM3; anything else is
/// `false`, and the caller answers `unknown`).
pub fn issued_by(id: &CertId, issuer: &Certificate) -> bool {
    IssuerHashes::of(issuer).is_some_and(|h| h.names(id))
}

/// An issuing CA's `CertID` hashes under every algorithm [`issued_by`]
/// understands, computed once: a responder keeps them per CA instead of
/// encoding and hashing the CA's name and key on every request.
#[derive(Debug, Clone)]
pub struct IssuerHashes {
    /// (algorithm, issuerNameHash, issuerKeyHash)
    by_algorithm: Vec<(ObjectIdentifier, Vec<u8>, Vec<u8>)>,
}

impl IssuerHashes {
    /// The hashes of `issuer`; `None` when its name cannot be encoded.
    pub fn of(issuer: &Certificate) -> Option<Self> {
        let name_der = issuer.tbs_certificate.subject.to_der().ok()?;
        let key_bits = issuer
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        let by_algorithm = [oid::SHA1, oid::SHA256, oid::SM3]
            .into_iter()
            .filter_map(|alg| {
                Some((
                    alg,
                    cert_id_digest(&alg, &name_der)?,
                    cert_id_digest(&alg, key_bits)?,
                ))
            })
            .collect();
        Some(Self { by_algorithm })
    }

    /// Whether `id` names a certificate of this issuer (see [`issued_by`]).
    pub fn names(&self, id: &CertId) -> bool {
        self.by_algorithm
            .iter()
            .find(|(alg, _, _)| *alg == id.hash_algorithm.oid)
            .is_some_and(|(_, name_hash, key_hash)| {
                id.issuer_name_hash.as_bytes() == name_hash.as_slice()
                    && id.issuer_key_hash.as_bytes() == key_hash.as_slice()
            })
    }
}

/// The status of one certificate, as the responder reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked.
    Revoked {
        /// When it was revoked.
        at: Timestamp,
        /// Why; `None` and [`Reason::Unspecified`] both leave
        /// `revocationReason` out (as RFC 5280 §5.3.1 asks of CRLs).
        reason: Option<Reason>,
    },
    /// Not known to this responder (not our issuer, never issued, or a hash
    /// algorithm we do not compute).
    Unknown,
}

impl Status {
    fn to_ocsp(self) -> Result<CertStatus> {
        Ok(match self {
            Self::Good => CertStatus::good(),
            Self::Unknown => CertStatus::unknown(),
            Self::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
                revocation_time: OcspGeneralizedTime(generalized(at)?),
                revocation_reason: reason
                    .filter(|r| *r != Reason::Unspecified)
                    .map(Reason::to_x509),
            }),
        })
    }
}

/// Builds and signs a successful `OCSPResponse` (DER) answering `items` in
/// order, each with its `CertId` echoed as the client sent it.
///
/// The `BasicOCSPResponse` names `responder` by key (SHA-1 of its public key
/// bits, RFC 5019 §2.2.3), carries `produced_at`, `this_update` and
/// `next_update` on every single response, echoes `nonce` when given, is
/// signed by `signer` with its family's algorithm (SM2-with-SM3 and signer
/// ID `1234567812345678`, ecdsa-with-SHA256, or sha256WithRSAEncryption)
/// over the DER of `tbsResponseData`, and includes `responder` in `certs`.
///
/// Errors: `signer`'s key is not the one certified by `responder`, no
/// items, more than [`MAX_ITEMS`], `next_update` not after `this_update`, or
/// a signing/encoding failure.
pub fn build_response(
    responder: &Certificate,
    signer: &dyn CaSigner,
    items: &[(CertId, Status)],
    produced_at: Timestamp,
    this_update: Timestamp,
    next_update: Timestamp,
    nonce: Option<&Nonce>,
) -> Result<Vec<u8>> {
    let responder_spki = &responder.tbs_certificate.subject_public_key_info;
    if signer.public_key_info()? != *responder_spki {
        return Err(CaError::Key(
            "the OCSP signing key is not the one in the responder certificate".into(),
        ));
    }
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(malformed(format!(
            "{} certificates to answer for (1 to {MAX_ITEMS})",
            items.len()
        )));
    }
    if next_update <= this_update {
        return Err(CaError::InvalidProfile(
            "OCSP nextUpdate must be after thisUpdate".into(),
        ));
    }
    let this = OcspGeneralizedTime(generalized(this_update)?);
    let next = OcspGeneralizedTime(generalized(next_update)?);
    let responses = items
        .iter()
        .map(|(id, status)| {
            Ok(SingleResponse {
                cert_id: id.clone(),
                cert_status: status.to_ocsp()?,
                this_update: this,
                next_update: Some(next),
                single_extensions: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let response_extensions = match nonce {
        Some(n) => Some(vec![Extension {
            extn_id: ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(n.to_der()?)?,
        }]),
        None => None,
    };
    let tbs = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(key_identifier(responder_spki))?),
        produced_at: OcspGeneralizedTime(generalized(produced_at)?),
        responses,
        response_extensions,
    };
    let signature = signer.sign(&tbs.to_der()?)?;
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: signer.family().signature_algorithm(),
        signature: BitString::from_bytes(&signature)?,
        certs: Some(vec![responder.clone()]),
    };
    Ok(OcspResponse::successful(basic)?.to_der()?)
}

/// `OCSPResponse { responseStatus = malformedRequest }`, the fallback of
/// [`error_response`].
const MALFORMED_REQUEST_DER: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x01];

/// An unsigned error `OCSPResponse` (RFC 6960 §2.3): `malformedRequest`,
/// `internalError`, `tryLater`, `sigRequired` or `unauthorized`, with no
/// `responseBytes`. `successful` without a response is not a valid message,
/// so it is answered as `internalError`. Never fails: should encoding ever
/// fail, the fixed DER of `malformedRequest` is returned.
pub fn error_response(status: OcspResponseStatus) -> Vec<u8> {
    let status = match status {
        OcspResponseStatus::Successful => OcspResponseStatus::InternalError,
        other => other,
    };
    OcspResponse {
        response_status: status,
        response_bytes: None,
    }
    .to_der()
    .unwrap_or_else(|_| MALFORMED_REQUEST_DER.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::Null;
    use spki::AlgorithmIdentifierOwned;
    use x509_cert::serial_number::SerialNumber;

    fn cert_id(serial: &[u8]) -> CertId {
        CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: oid::SHA1,
                parameters: Some(Null.into()),
            },
            issuer_name_hash: OctetString::new([0u8; 20]).unwrap(),
            issuer_key_hash: OctetString::new([0u8; 20]).unwrap(),
            serial_number: SerialNumber::new(serial).unwrap(),
        }
    }

    /// Through DER and back, as a client would send it.
    fn via_der(serial: &[u8]) -> Vec<u8> {
        let der = cert_id(serial).to_der().unwrap();
        serial_of(&CertId::from_der(&der).unwrap())
    }

    #[test]
    fn a_certhall_serial_round_trips() {
        for _ in 0..64 {
            let s = crate::issue::random_serial();
            assert_eq!(via_der(&s), s.to_vec());
            assert_eq!(hex::encode(via_der(&s)), crate::issue::serial_hex(&s));
        }
        let s = [0x7f; 16];
        assert_eq!(via_der(&s), s.to_vec());
    }

    #[test]
    fn leading_zero_bytes_come_back() {
        let mut s = [0xab; 16];
        s[0] = 0x00;
        s[1] = 0x01;
        // DER drops the leading zero octet...
        let der = cert_id(&s).to_der().unwrap();
        let id = CertId::from_der(&der).unwrap();
        assert_eq!(id.serial_number.as_bytes().len(), 15);
        // ...and serial_of puts it back.
        assert_eq!(serial_of(&id), s.to_vec());
        assert_eq!(
            hex::encode(serial_of(&id)),
            "0001abababababababababababababab"
        );
        let mut s = [0u8; 16];
        s[15] = 0x05;
        assert_eq!(via_der(&s), s.to_vec());
    }

    #[test]
    fn top_bit_set_and_long_serials() {
        // A 16-byte serial with the top bit set gets a sign octet in DER,
        // which serial_of drops.
        let s = [0x80; 16];
        let der = cert_id(&s).to_der().unwrap();
        let id = CertId::from_der(&der).unwrap();
        assert_eq!(id.serial_number.as_bytes().len(), 17);
        assert_eq!(serial_of(&id), s.to_vec());
        // 20-byte serials of other CAs come back as they are.
        let s = [0x11; 20];
        assert_eq!(via_der(&s), s.to_vec());
    }

    #[test]
    fn error_responses_encode() {
        assert_eq!(
            error_response(OcspResponseStatus::MalformedRequest),
            MALFORMED_REQUEST_DER.to_vec()
        );
        assert_eq!(
            error_response(OcspResponseStatus::Unauthorized),
            vec![0x30, 0x03, 0x0a, 0x01, 0x06]
        );
        assert_eq!(
            error_response(OcspResponseStatus::Successful),
            error_response(OcspResponseStatus::InternalError)
        );
    }

    #[test]
    fn status_reason_unspecified_is_left_out() {
        let at = Timestamp::from_millis(1_795_568_400_000);
        for reason in [None, Some(Reason::Unspecified)] {
            let CertStatus::Revoked(info) = (Status::Revoked { at, reason }).to_ocsp().unwrap()
            else {
                panic!("not revoked")
            };
            assert_eq!(info.revocation_reason, None);
        }
        let CertStatus::Revoked(info) = (Status::Revoked {
            at,
            reason: Some(Reason::KeyCompromise),
        })
        .to_ocsp()
        .unwrap() else {
            panic!("not revoked")
        };
        assert_eq!(
            info.revocation_reason,
            Some(x509_cert::ext::pkix::CrlReason::KeyCompromise)
        );
    }
}
