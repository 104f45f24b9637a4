//! Independent checks of the OCSP responder (RFC 6960, RFC 5019): real
//! requests made by `openssl ocsp`, responses read back by
//! `openssl ocsp -respin` and by a second parser (Python's `cryptography`),
//! for every family.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certhall_ca::crl::Reason;
use certhall_ca::issue::{self, random_serial, Issuer, Kind, Request};
use certhall_ca::name::Subject;
use certhall_ca::ocsp::{self, Status};
use certhall_ca::profile::Profile;
use certhall_ca::{csr, CaError, CaSigner, Family, SoftwareKey};
use certhall_domain::Timestamp;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_ocsp::{BasicOcspResponse, OcspResponse, OcspResponseStatus};

use super::common::{
    end_entity, hierarchy, openssl, openssl_sm2_verify, write_chain, write_pem, Hierarchy,
    CERTIFICATE, DAY,
};

const HOUR: Duration = Duration::from_secs(3_600);

/// The real current time. The engine never reads the clock, but these tests
/// must: `openssl ocsp` checks thisUpdate/nextUpdate against the wall clock
/// whatever `-attime` says (that option only moves chain verification).
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Timestamp::from_millis(i64::try_from(d.as_millis()).unwrap())
}

/// A hierarchy, its delegated OCSP signer and one end-entity certificate,
/// written as PEM files into a temporary directory.
#[derive(Debug)]
struct Setup {
    family: Family,
    now: Timestamp,
    h: Hierarchy,
    responder_key: SoftwareKey,
    responder: (Certificate, Vec<u8>),
    ee: (Certificate, Vec<u8>),
    serial: Vec<u8>,
    dir: tempfile::TempDir,
}

fn setup(family: Family, serial: &[u8]) -> Setup {
    let now = wall_clock();
    let start = now.minus(DAY);
    let h = hierarchy(family, start);
    let responder_key = SoftwareKey::generate(family.issuing_key()).unwrap();
    let responder = issue::issue(
        Issuer {
            certificate: Some(&h.issuing.0),
            signer: &h.issuing_key,
        },
        Request {
            serial: &random_serial(),
            subject: Subject::parse(&format!(
                "C=CN,O=CertHall 测试CA,CN=CertHall {family} OCSP Responder"
            ))
            .unwrap()
            .to_name()
            .unwrap(),
            public_key: responder_key.public_key_info().unwrap(),
            not_before: start,
            not_after: start.plus(DAY * 30),
            kind: Kind::OcspSigner,
        },
    )
    .unwrap();
    let profile = Profile::enterprise();
    let subject = Subject::parse("C=CN,O=某公司,USCC=91350100M000100Y43,CN=某公司").unwrap();
    profile.check_subject(&subject).unwrap();
    let ee_key = SoftwareKey::generate(family.issuing_key()).unwrap();
    let ee = issue::issue(
        Issuer {
            certificate: Some(&h.issuing.0),
            signer: &h.issuing_key,
        },
        end_entity(
            serial,
            &subject,
            ee_key.public_key_info().unwrap(),
            &profile,
            &h.urls,
            start,
        ),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_pem(d, "root.pem", CERTIFICATE, &h.root.1);
    write_pem(d, "issuing.pem", CERTIFICATE, &h.issuing.1);
    write_pem(d, "responder.pem", CERTIFICATE, &responder.1);
    write_pem(d, "ee.pem", CERTIFICATE, &ee.1);
    write_chain(d);
    Setup {
        family,
        now,
        h,
        responder_key,
        responder,
        ee,
        serial: serial.to_vec(),
        dir,
    }
}

impl Setup {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Builds a response the way the service will: this hour, valid a day.
    fn respond(
        &self,
        items: &[(x509_ocsp::CertId, Status)],
        nonce: Option<&x509_ocsp::ext::Nonce>,
    ) -> Vec<u8> {
        ocsp::build_response(
            &self.responder.0,
            &self.responder_key,
            items,
            self.now,
            self.now.minus(HOUR),
            self.now.plus(DAY),
            nonce,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", self.family))
    }
}

/// The second parser: Python's `cryptography` reads the response and prints
/// what it found, one fact a line. With `verify`, it also checks the
/// signature with the key of the certificate in `certs` (not for SM2, which
/// `cryptography` does not implement).
const PY_READ: &str = r#"
import sys
from cryptography import x509
from cryptography.x509 import ocsp
r = ocsp.load_der_ocsp_response(open(sys.argv[1], "rb").read())
print("status", r.response_status.name)
if r.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL:
    print("responder_key_hash", r.responder_key_hash.hex())
    print("responder_name", r.responder_name)
    print("signature_algorithm", r.signature_algorithm_oid.dotted_string)
    print("certs", len(r.certificates))
    for s in r.responses:
        reason = s.revocation_reason.value if s.revocation_reason else None
        print("single", s.certificate_status.name, format(s.serial_number, "x"), reason)
    try:
        print("nonce", r.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce.hex())
    except x509.ExtensionNotFound:
        print("nonce", None)
    if len(sys.argv) > 2 and sys.argv[2] == "verify":
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
        key = r.certificates[0].public_key()
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(r.signature, r.tbs_response_bytes, padding.PKCS1v15(), r.signature_hash_algorithm)
        else:
            key.verify(r.signature, r.tbs_response_bytes, ec.ECDSA(r.signature_hash_algorithm))
        print("signature ok")
"#;

fn python_read(dir: &Path, file: &str, verify: bool) -> String {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", PY_READ, file]).current_dir(dir);
    if verify {
        cmd.arg("verify");
    }
    let out = cmd.output().expect("python3 is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The `BasicOCSPResponse` inside a successful response.
fn basic_of(resp: &[u8]) -> BasicOcspResponse {
    let outer = OcspResponse::from_der(resp).unwrap();
    assert_eq!(outer.response_status, OcspResponseStatus::Successful);
    let bytes = outer.response_bytes.unwrap();
    assert_eq!(
        bytes.response_type,
        const_oid::db::rfc6960::ID_PKIX_OCSP_BASIC
    );
    BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap()
}

/// Our own verifier (the only one for SM2: see [`Setup::openssl_read`]).
fn check_signature(s: &Setup, resp: &[u8]) {
    let basic = basic_of(resp);
    csr::verify_signature(
        &s.responder.0.tbs_certificate.subject_public_key_info,
        &basic.tbs_response_data.to_der().unwrap(),
        basic.signature.raw_bytes(),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", s.family));
    if s.family == Family::Sm2 {
        // `openssl ocsp` cannot be given the SM2 signer ID: OpenSSL checks
        // the signature over the TBS bytes with pkeyutl instead.
        openssl_sm2_verify(
            s.path(),
            &s.responder.0.tbs_certificate.subject_public_key_info,
            &basic.tbs_response_data.to_der().unwrap(),
            basic.signature.raw_bytes(),
        );
    }
    assert_eq!(
        basic.signature_algorithm,
        s.family.signature_algorithm(),
        "{}",
        s.family
    );
    assert_eq!(basic.certs.as_deref(), Some(&[s.responder.0.clone()][..]));
    assert_eq!(
        basic.tbs_response_data.responder_id,
        x509_ocsp::ResponderId::ByKey(
            der::asn1::OctetString::new(issue::key_identifier(
                &s.responder.0.tbs_certificate.subject_public_key_info
            ))
            .unwrap()
        )
    );
}

impl Setup {
    /// `openssl ocsp -reqout` for the end-entity certificate (or `ids`).
    fn openssl_request(&self, file: &str, ids: &[&str]) -> ocsp::ParsedRequest {
        let mut args = vec!["ocsp", "-issuer", "issuing.pem"];
        args.extend(ids);
        args.extend(["-reqout", file]);
        let (ok, text) = openssl(self.path(), &args);
        assert!(ok, "{}: {text}", self.family);
        ocsp::parse_request(&std::fs::read(self.path().join(file)).unwrap())
            .unwrap_or_else(|e| panic!("{} {file}: {e}", self.family))
    }

    /// `openssl ocsp -respin` with `args` (which name the certificates to
    /// report on). The response's signature and the delegation are checked
    /// against `chain.pem` — except for SM2: OpenSSL 3.0 verifies SM2 OCSP
    /// signatures with an empty signer ID and has no option to give it the
    /// GM/T 0009 one, so it is read with `-noverify` and the signature is
    /// checked by [`check_signature`] instead.
    fn openssl_read(&self, file: &str, args: &[&str]) -> String {
        let mut all = vec!["ocsp", "-respin", file];
        all.extend(args);
        if self.family == Family::Sm2 {
            all.push("-noverify");
        } else {
            all.extend(["-CAfile", "chain.pem"]);
        }
        let (ok, text) = openssl(self.path(), &all);
        assert!(ok, "{} {file}: {text}", self.family);
        if self.family != Family::Sm2 {
            assert!(
                text.contains("Response verify OK"),
                "{}: {text}",
                self.family
            );
        }
        assert!(!text.contains("WARNING"), "{}: {text}", self.family);
        text
    }

    fn write(&self, file: &str, der: &[u8]) {
        std::fs::write(self.path().join(file), der).unwrap();
    }
}

fn check_family(family: Family) {
    let s = setup(family, &random_serial());
    let issuing = &s.h.issuing.0;
    let root = &s.h.root.0;
    let serial_hex = issue::serial_hex(&s.serial);
    let verify_in_python = family != Family::Sm2;

    // Requests made by OpenSSL: SHA-1 CertID (its default) with and without
    // a nonce, SHA-256 and SM3 CertIDs.
    let with_nonce = s.openssl_request("req_nonce.der", &["-cert", "ee.pem"]);
    let sha1 = s.openssl_request("req_sha1.der", &["-cert", "ee.pem", "-no_nonce"]);
    let sha256 = s.openssl_request(
        "req_sha256.der",
        &["-sha256", "-cert", "ee.pem", "-no_nonce"],
    );
    let sm3 = s.openssl_request("req_sm3.der", &["-sm3", "-cert", "ee.pem", "-no_nonce"]);
    for (req, alg) in [
        (&with_nonce, "1.3.14.3.2.26"),
        (&sha1, "1.3.14.3.2.26"),
        (&sha256, "2.16.840.1.101.3.4.2.1"),
        (&sm3, "1.2.156.10197.1.401"),
    ] {
        assert_eq!(req.items.len(), 1);
        let id = &req.items[0];
        assert_eq!(id.hash_algorithm.oid.to_string(), alg);
        assert!(ocsp::issued_by(id, issuing), "{family} {alg}");
        assert!(!ocsp::issued_by(id, root), "{family} {alg}");
        assert_eq!(ocsp::serial_of(id), s.serial, "{family} {alg}");
        assert_eq!(hex::encode(ocsp::serial_of(id)), serial_hex);
    }
    let nonce = with_nonce
        .nonce
        .clone()
        .expect("openssl sends a nonce by default");
    assert_eq!(nonce.0.as_bytes().len(), 16, "OpenSSL's default nonce");
    assert!(sha1.nonce.is_none() && sha256.nonce.is_none() && sm3.nonce.is_none());
    // A CertID naming another issuer is not ours. With `-cert`, OpenSSL
    // hashes the certificate's issuer *name* (the issuing CA's) but the
    // `-issuer` certificate's *key* (here the root's): neither CA matches,
    // which shows both hashes are compared.
    let (ok, text) = openssl(
        s.path(),
        &[
            "ocsp",
            "-issuer",
            "root.pem",
            "-cert",
            "ee.pem",
            "-no_nonce",
            "-reqout",
            "mixed.der",
        ],
    );
    assert!(ok, "{text}");
    let mixed = ocsp::parse_request(&std::fs::read(s.path().join("mixed.der")).unwrap()).unwrap();
    assert!(!ocsp::issued_by(&mixed.items[0], issuing));
    assert!(!ocsp::issued_by(&mixed.items[0], root));
    // With `-serial`, both hashes are the root's.
    let (ok, text) = openssl(
        s.path(),
        &[
            "ocsp",
            "-issuer",
            "root.pem",
            "-serial",
            "0x01",
            "-no_nonce",
            "-reqout",
            "root.der",
        ],
    );
    assert!(ok, "{text}");
    let other = ocsp::parse_request(&std::fs::read(s.path().join("root.der")).unwrap()).unwrap();
    assert!(!ocsp::issued_by(&other.items[0], issuing));
    assert!(ocsp::issued_by(&other.items[0], root));

    // good, with the nonce echoed.
    let resp = s.respond(&[(with_nonce.items[0].clone(), Status::Good)], Some(&nonce));
    s.write("good.der", &resp);
    check_signature(&s, &resp);
    assert_eq!(basic_of(&resp).nonce(), Some(nonce.clone()));
    let text = s.openssl_read(
        "good.der",
        &["-issuer", "issuing.pem", "-cert", "ee.pem", "-no_nonce"],
    );
    assert!(text.contains("ee.pem: good"), "{family}: {text}");
    eprintln!("--- {family}: good, SHA-1 CertID\n{text}");
    // With the request OpenSSL made, it checks the nonce itself (signature
    // checks included, so not for SM2 — see openssl_read).
    if family != Family::Sm2 {
        let text = s.openssl_read("good.der", &["-reqin", "req_nonce.der", "-resp_text"]);
        assert!(text.contains("Cert Status: good"), "{family}: {text}");
        assert!(!text.contains("Nonce Verify error"), "{family}: {text}");
        let printed = hex::encode_upper(nonce.to_der().unwrap());
        assert!(
            text.contains(&printed),
            "{family}: nonce {printed} not in {text}"
        );
        // And it does check: another nonce is refused.
        let other = x509_ocsp::ext::Nonce::new(vec![0x42; 16]).unwrap();
        let wrong = s.respond(&[(with_nonce.items[0].clone(), Status::Good)], Some(&other));
        s.write("wrong_nonce.der", &wrong);
        let (ok, text) = openssl(
            s.path(),
            &[
                "ocsp",
                "-respin",
                "wrong_nonce.der",
                "-reqin",
                "req_nonce.der",
                "-CAfile",
                "chain.pem",
            ],
        );
        assert!(
            !ok && text.contains("Nonce Verify error"),
            "{family}: {text}"
        );
    }
    let py = python_read(s.path(), "good.der", verify_in_python);
    eprintln!("--- {family}: python, good\n{py}");
    assert!(py.contains("status SUCCESSFUL"), "{py}");
    assert!(
        py.contains(&format!(
            "single GOOD {} None",
            serial_hex.trim_start_matches('0')
        )),
        "{py}"
    );
    assert!(
        py.contains(&format!("nonce {}", hex::encode(nonce.0.as_bytes()))),
        "{py}"
    );
    assert!(
        py.contains(&format!(
            "responder_key_hash {}",
            hex::encode(issue::key_identifier(
                &s.responder.0.tbs_certificate.subject_public_key_info
            ))
        )),
        "{py}"
    );
    assert!(
        py.contains("responder_name None") && py.contains("certs 1"),
        "{py}"
    );
    assert!(
        py.contains(&format!(
            "signature_algorithm {}",
            family.signature_algorithm().oid
        )),
        "{py}"
    );
    if verify_in_python {
        assert!(py.contains("signature ok"), "{py}");
    }

    // revoked (keyCompromise), SHA-1 CertID, no nonce.
    let revoked_at = s.now.minus(HOUR * 2);
    let resp = s.respond(
        &[(
            sha1.items[0].clone(),
            Status::Revoked {
                at: revoked_at,
                reason: Some(Reason::KeyCompromise),
            },
        )],
        None,
    );
    s.write("revoked.der", &resp);
    check_signature(&s, &resp);
    assert_eq!(basic_of(&resp).nonce(), None);
    let text = s.openssl_read(
        "revoked.der",
        &["-issuer", "issuing.pem", "-cert", "ee.pem", "-no_nonce"],
    );
    eprintln!("--- {family}: revoked, SHA-1 CertID\n{text}");
    assert!(text.contains("ee.pem: revoked"), "{family}: {text}");
    assert!(text.contains("Reason: keyCompromise"), "{family}: {text}");
    assert!(text.contains("Revocation Time:"), "{family}: {text}");
    let py = python_read(s.path(), "revoked.der", verify_in_python);
    assert!(
        py.contains(&format!(
            "single REVOKED {} keyCompromise",
            serial_hex.trim_start_matches('0')
        )),
        "{py}"
    );
    assert!(py.contains("nonce None"), "{py}");

    // good for a SHA-256 CertID; revoked without a reason for an SM3 one.
    let resp = s.respond(&[(sha256.items[0].clone(), Status::Good)], None);
    s.write("good256.der", &resp);
    check_signature(&s, &resp);
    let text = s.openssl_read(
        "good256.der",
        &[
            "-issuer",
            "issuing.pem",
            "-sha256",
            "-cert",
            "ee.pem",
            "-no_nonce",
        ],
    );
    assert!(text.contains("ee.pem: good"), "{family}: {text}");
    let resp = s.respond(
        &[(
            sm3.items[0].clone(),
            Status::Revoked {
                at: revoked_at,
                reason: Some(Reason::Unspecified),
            },
        )],
        None,
    );
    s.write("revoked_sm3.der", &resp);
    check_signature(&s, &resp);
    let text = s.openssl_read(
        "revoked_sm3.der",
        &[
            "-issuer",
            "issuing.pem",
            "-sm3",
            "-cert",
            "ee.pem",
            "-no_nonce",
        ],
    );
    assert!(
        text.contains("ee.pem: revoked") && !text.contains("Reason:"),
        "{family}: {text}"
    );
    let py = python_read(s.path(), "revoked_sm3.der", verify_in_python);
    assert!(
        py.contains(&format!(
            "single REVOKED {} None",
            serial_hex.trim_start_matches('0')
        )),
        "{py}"
    );

    // unknown: a serial this CA never issued.
    let stranger = random_serial();
    let stranger_arg = format!("0x{}", hex::encode(stranger));
    let req = s.openssl_request("req_unknown.der", &["-serial", &stranger_arg, "-no_nonce"]);
    assert!(ocsp::issued_by(&req.items[0], issuing));
    assert_eq!(ocsp::serial_of(&req.items[0]), stranger.to_vec());
    let status = if ocsp::serial_of(&req.items[0]) == s.serial {
        Status::Good
    } else {
        Status::Unknown
    };
    assert_eq!(status, Status::Unknown);
    let resp = s.respond(&[(req.items[0].clone(), status)], None);
    s.write("unknown.der", &resp);
    check_signature(&s, &resp);
    let text = s.openssl_read(
        "unknown.der",
        &[
            "-issuer",
            "issuing.pem",
            "-serial",
            &stranger_arg,
            "-no_nonce",
        ],
    );
    eprintln!("--- {family}: unknown\n{text}");
    assert!(
        text.contains(&format!("{stranger_arg}: unknown")),
        "{family}: {text}"
    );
    let py = python_read(s.path(), "unknown.der", verify_in_python);
    assert!(
        py.contains(&format!(
            "single UNKNOWN {} None",
            hex::encode(stranger).trim_start_matches('0')
        )),
        "{py}"
    );

    // Three answers in one response, in the order asked.
    let resp = s.respond(
        &[
            (sha1.items[0].clone(), Status::Good),
            (
                sha256.items[0].clone(),
                Status::Revoked {
                    at: revoked_at,
                    reason: Some(Reason::Superseded),
                },
            ),
            (req.items[0].clone(), Status::Unknown),
        ],
        None,
    );
    s.write("multi.der", &resp);
    check_signature(&s, &resp);
    let text = s.openssl_read("multi.der", &["-resp_text"]);
    let good = text.find("Cert Status: good").unwrap();
    let revoked = text.find("Cert Status: revoked").unwrap();
    let unknown = text.find("Cert Status: unknown").unwrap();
    assert!(good < revoked && revoked < unknown, "{family}: {text}");
    assert!(
        text.contains("Revocation Reason: superseded"),
        "{family}: {text}"
    );
    let py = python_read(s.path(), "multi.der", verify_in_python);
    let singles: Vec<&str> = py.lines().filter(|l| l.starts_with("single ")).collect();
    let short = serial_hex.trim_start_matches('0');
    assert_eq!(
        singles,
        [
            format!("single GOOD {short} None"),
            format!("single REVOKED {short} superseded"),
            format!(
                "single UNKNOWN {} None",
                hex::encode(stranger).trim_start_matches('0')
            ),
        ],
        "{py}"
    );
}

#[test]
fn sm2_responses_read_by_openssl_and_cryptography() {
    check_family(Family::Sm2);
}

#[test]
fn p256_responses_verify_with_openssl_and_cryptography() {
    check_family(Family::P256);
}

#[test]
fn rsa_responses_verify_with_openssl_and_cryptography() {
    check_family(Family::Rsa);
}

/// A stored serial whose first byte is zero: DER drops it, `serial_of`
/// puts it back.
#[test]
fn a_serial_with_a_leading_zero_byte_round_trips() {
    let mut serial = random_serial();
    serial[0] = 0x00;
    serial[1] = 0x01;
    let s = setup(Family::P256, &serial);
    let req = s.openssl_request("req.der", &["-cert", "ee.pem", "-no_nonce"]);
    let id = &req.items[0];
    assert_eq!(
        id.serial_number.as_bytes().len(),
        15,
        "DER drops the zero byte"
    );
    assert_eq!(ocsp::serial_of(id), serial.to_vec());
    assert!(issue::serial_hex(&ocsp::serial_of(id)).starts_with("0001"));
    assert!(ocsp::issued_by(id, &s.h.issuing.0));
    let resp = s.respond(&[(id.clone(), Status::Good)], None);
    s.write("resp.der", &resp);
    let text = s.openssl_read(
        "resp.der",
        &["-issuer", "issuing.pem", "-cert", "ee.pem", "-no_nonce"],
    );
    assert!(text.contains("ee.pem: good"), "{text}");
}

#[test]
fn error_responses_are_read_by_openssl_and_cryptography() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (status, openssl_name, python_name) in [
        (
            OcspResponseStatus::MalformedRequest,
            "malformedrequest (1)",
            "MALFORMED_REQUEST",
        ),
        (
            OcspResponseStatus::InternalError,
            "internalerror (2)",
            "INTERNAL_ERROR",
        ),
        (OcspResponseStatus::TryLater, "trylater (3)", "TRY_LATER"),
        (
            OcspResponseStatus::SigRequired,
            "sigrequired (5)",
            "SIG_REQUIRED",
        ),
        (
            OcspResponseStatus::Unauthorized,
            "unauthorized (6)",
            "UNAUTHORIZED",
        ),
    ] {
        let der = ocsp::error_response(status);
        std::fs::write(d.join("err.der"), &der).unwrap();
        let (_, text) = openssl(d, &["ocsp", "-respin", "err.der", "-resp_text"]);
        if status == OcspResponseStatus::MalformedRequest {
            eprintln!("--- openssl, malformedRequest\n{text}");
        }
        assert!(
            text.contains(&format!("Responder Error: {openssl_name}")),
            "{text}"
        );
        let py = python_read(d, "err.der", false);
        assert_eq!(py.trim(), format!("status {python_name}"));
        let back = OcspResponse::from_der(&der).unwrap();
        assert_eq!(back.response_status, status);
        assert!(back.response_bytes.is_none());
    }
}

fn sha1_cert_id(serial: &[u8]) -> x509_ocsp::CertId {
    x509_ocsp::CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ID_SHA_1,
            parameters: Some(der::asn1::Null.into()),
        },
        issuer_name_hash: der::asn1::OctetString::new([1u8; 20]).unwrap(),
        issuer_key_hash: der::asn1::OctetString::new([2u8; 20]).unwrap(),
        serial_number: x509_cert::serial_number::SerialNumber::new(serial).unwrap(),
    }
}

fn request_der(
    items: usize,
    extensions: Vec<x509_cert::ext::Extension>,
    single_extensions: Option<Vec<x509_cert::ext::Extension>>,
) -> Vec<u8> {
    x509_ocsp::OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: (0..items)
                .map(|i| x509_ocsp::Request {
                    req_cert: sha1_cert_id(&[0x10, i as u8 + 1]),
                    single_request_extensions: single_extensions.clone(),
                })
                .collect(),
            request_extensions: if extensions.is_empty() {
                None
            } else {
                Some(extensions)
            },
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

fn extension(oid: &str, critical: bool, value: Vec<u8>) -> x509_cert::ext::Extension {
    x509_cert::ext::Extension {
        extn_id: oid.parse().unwrap(),
        critical,
        extn_value: der::asn1::OctetString::new(value).unwrap(),
    }
}

const NONCE_OID: &str = "1.3.6.1.5.5.7.48.1.2";

fn nonce_ext(len: usize) -> x509_cert::ext::Extension {
    let inner = der::asn1::OctetString::new(vec![0x5a; len]).unwrap();
    extension(NONCE_OID, false, inner.to_der().unwrap())
}

fn refused(der: &[u8]) -> bool {
    matches!(
        ocsp::parse_request(der),
        Err(CaError::MalformedOcspRequest(_))
    )
}

#[test]
fn malformed_requests_are_refused() {
    // Not DER, empty, truncated, trailing bytes.
    let good = request_der(1, vec![], None);
    assert!(ocsp::parse_request(&good).is_ok());
    assert!(refused(b"hello"));
    assert!(refused(&[]));
    assert!(refused(&good[..good.len() - 1]));
    assert!(refused(&[good.as_slice(), &[0]].concat()));
    // 0 items, 16, 17.
    assert!(refused(&request_der(0, vec![], None)));
    assert_eq!(
        ocsp::parse_request(&request_der(16, vec![], None))
            .unwrap()
            .items
            .len(),
        16
    );
    assert!(refused(&request_der(17, vec![], None)));
    // Nonce lengths (RFC 9654: 1 to 128 octets).
    for (len, ok) in [(0, false), (1, true), (32, true), (128, true), (129, false)] {
        let der = request_der(1, vec![nonce_ext(len)], None);
        match ocsp::parse_request(&der) {
            Ok(p) => {
                assert!(ok, "nonce of {len} accepted");
                assert_eq!(p.nonce.unwrap().0.as_bytes(), vec![0x5a; len].as_slice());
            }
            Err(e) => assert!(!ok, "nonce of {len} refused: {e}"),
        }
    }
    // A nonce that is not an OCTET STRING, and a repeated one.
    assert!(refused(&request_der(
        1,
        vec![extension(NONCE_OID, false, vec![1, 2, 3])],
        None
    )));
    assert!(refused(&request_der(
        1,
        vec![nonce_ext(16), nonce_ext(16)],
        None
    )));
    // Unknown extensions: ignored unless critical.
    let unknown = "1.2.3.4.5";
    assert!(ocsp::parse_request(&request_der(
        1,
        vec![extension(unknown, false, vec![5, 0])],
        None
    ))
    .is_ok());
    assert!(refused(&request_der(
        1,
        vec![extension(unknown, true, vec![5, 0])],
        None
    )));
    assert!(refused(&request_der(
        1,
        vec![],
        Some(vec![extension(unknown, true, vec![5, 0])])
    )));
    assert!(ocsp::parse_request(&request_der(
        1,
        vec![],
        Some(vec![extension(unknown, false, vec![5, 0])])
    ))
    .is_ok());

    // OpenSSL's own 17-certificate request.
    let s = setup(Family::P256, &random_serial());
    let mut args: Vec<String> = ["ocsp", "-issuer", "issuing.pem", "-no_nonce"]
        .map(String::from)
        .to_vec();
    for i in 1..=17 {
        args.extend(["-serial".into(), format!("{i}")]);
    }
    args.extend(["-reqout".into(), "many.der".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, text) = openssl(s.path(), &args);
    assert!(ok, "{text}");
    assert!(refused(&std::fs::read(s.path().join("many.der")).unwrap()));
}

#[test]
fn build_response_refuses_inconsistent_input() {
    let s = setup(Family::P256, &random_serial());
    let id = sha1_cert_id(&s.serial);
    let item = [(id.clone(), Status::Good)];
    // The issuing CA's key with the responder's certificate.
    assert!(matches!(
        ocsp::build_response(
            &s.responder.0,
            &s.h.issuing_key,
            &item,
            s.now,
            s.now,
            s.now.plus(DAY),
            None
        ),
        Err(CaError::Key(_))
    ));
    // No items, too many items.
    assert!(ocsp::build_response(
        &s.responder.0,
        &s.responder_key,
        &[],
        s.now,
        s.now,
        s.now.plus(DAY),
        None
    )
    .is_err());
    let many: Vec<_> = (0..17).map(|_| (id.clone(), Status::Unknown)).collect();
    assert!(ocsp::build_response(
        &s.responder.0,
        &s.responder_key,
        &many,
        s.now,
        s.now,
        s.now.plus(DAY),
        None
    )
    .is_err());
    // nextUpdate not after thisUpdate.
    assert!(ocsp::build_response(
        &s.responder.0,
        &s.responder_key,
        &item,
        s.now,
        s.now,
        s.now,
        None
    )
    .is_err());
    // The ee's certificate is not a responder for its own key: the key must match.
    assert!(ocsp::build_response(
        &s.ee.0,
        &s.responder_key,
        &item,
        s.now,
        s.now,
        s.now.plus(DAY),
        None
    )
    .is_err());
}
