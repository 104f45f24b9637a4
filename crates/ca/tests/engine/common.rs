//! Helpers shared by the engine tests.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use certhall_ca::issue::{self, random_serial, CaUrls, Issuer, Kind, Request};
use certhall_ca::name::Subject;
use certhall_ca::profile::Profile;
use certhall_ca::{CaSigner, Family, SoftwareKey};
use certhall_domain::Timestamp;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

/// A fixed "now" for the tests that do not talk to a clock-reading peer.
pub const NOW: Timestamp = Timestamp::from_millis(1_795_568_400_000);
pub const DAY: Duration = Duration::from_secs(86_400);

/// A subject with Chinese names and the USCC attribute, as the enterprise
/// profile accepts it.
pub const EE_SUBJECT: &str = "C=CN,ST=山东省,L=枣庄市,O=枣庄某某建设有限公司,USCC=91350100M000100Y43,CN=枣庄某某建设有限公司";

/// The PEM label of a certificate.
pub const CERTIFICATE: &str = "CERTIFICATE";

/// A root CA (software key) and an issuing CA below it, both valid from
/// `not_before`.
#[derive(Debug)]
pub struct Hierarchy<K = SoftwareKey> {
    pub root: (Certificate, Vec<u8>),
    pub issuing_key: K,
    pub issuing: (Certificate, Vec<u8>),
    pub urls: CaUrls,
}

/// A hierarchy whose issuing CA has a fresh software key.
pub fn hierarchy(family: Family, not_before: Timestamp) -> Hierarchy {
    let issuing_key = SoftwareKey::generate(family.issuing_key()).unwrap();
    hierarchy_with(family, issuing_key, "Issuing CA", not_before)
}

/// A hierarchy whose issuing CA (common name `CertHall {family}
/// {issuing_name}`) has `issuing_key`, wherever that key lives.
pub fn hierarchy_with<K: CaSigner>(
    family: Family,
    issuing_key: K,
    issuing_name: &str,
    not_before: Timestamp,
) -> Hierarchy<K> {
    let urls = ca_urls(family);
    let root_key = SoftwareKey::generate(family.root_key()).unwrap();
    let root_subject = Subject::parse(&format!(
        "C=CN,O=CertHall 测试CA,CN=CertHall {family} Root CA"
    ))
    .unwrap();
    let root = issue::issue(
        Issuer {
            certificate: None,
            signer: &root_key,
        },
        Request {
            serial: &random_serial(),
            subject: root_subject.to_name().unwrap(),
            public_key: root_key.public_key_info().unwrap(),
            not_before,
            not_after: not_before.plus(DAY * 3650),
            kind: Kind::Root,
        },
    )
    .unwrap();
    let issuing_subject = Subject::parse(&format!(
        "C=CN,O=CertHall 测试CA,CN=CertHall {family} {issuing_name}"
    ))
    .unwrap();
    let issuing = issue::issue(
        Issuer {
            certificate: Some(&root.0),
            signer: &root_key,
        },
        Request {
            serial: &random_serial(),
            subject: issuing_subject.to_name().unwrap(),
            public_key: issuing_key.public_key_info().unwrap(),
            not_before,
            not_after: not_before.plus(DAY * 1825),
            kind: Kind::Issuing { urls: &urls },
        },
    )
    .unwrap();
    Hierarchy {
        root,
        issuing_key,
        issuing,
        urls,
    }
}

/// The request for an end-entity certificate under `profile`, valid from
/// `not_before` for the profile's validity, pointing at `urls`.
pub fn end_entity<'a>(
    serial: &'a [u8],
    subject: &Subject,
    public_key: SubjectPublicKeyInfoOwned,
    profile: &'a Profile,
    urls: &'a CaUrls,
    not_before: Timestamp,
) -> Request<'a> {
    Request {
        serial,
        subject: subject.to_name().unwrap(),
        public_key,
        not_before,
        not_after: not_before.plus(DAY * profile.validity_days),
        kind: Kind::EndEntity { profile, urls },
    }
}

/// The CA's CRL, OCSP and caIssuers URLs for `family`.
pub fn ca_urls(family: Family) -> CaUrls {
    CaUrls {
        crl: format!("http://127.0.0.1:8080/crl/{family}.crl"),
        ocsp: "http://127.0.0.1:8080/ocsp".into(),
        ca_issuers: format!("http://127.0.0.1:8080/ca/{family}-issuing.der"),
    }
}

/// Runs `openssl args` in `dir`: whether it succeeded, and stdout then
/// stderr.
pub fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `openssl verify` of `target` against `root.pem`, with `issuing.pem` as
/// the intermediate, at a time within [`NOW`]'s validity.
pub fn openssl_verify(dir: &Path, target: &str) -> (bool, String) {
    openssl(
        dir,
        &[
            "verify",
            "-attime",
            "1795568500",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            target,
        ],
    )
}

/// `openssl crl -text` of `crl.pem`, its signature checked against
/// `issuing.pem`.
pub fn openssl_crl_text(dir: &Path) -> (bool, String) {
    openssl(
        dir,
        &[
            "crl",
            "-in",
            "crl.pem",
            "-CAfile",
            "issuing.pem",
            "-noout",
            "-text",
        ],
    )
}

/// Writes `der` as a PEM file `name` in `dir`, with `label` (such as
/// [`CERTIFICATE`] or `X509 CRL`).
pub fn write_pem(dir: &Path, name: &str, label: &str, der: &[u8]) {
    std::fs::write(
        dir.join(name),
        der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap(),
    )
    .unwrap();
}

/// Writes `chain.pem`: `root.pem` then `issuing.pem`, both already in `dir`.
pub fn write_chain(dir: &Path) {
    std::fs::write(
        dir.join("chain.pem"),
        [
            std::fs::read(dir.join("root.pem")).unwrap(),
            std::fs::read(dir.join("issuing.pem")).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
}

/// Checks an SM2 signature with OpenSSL, independently of CertHall's own
/// verifier: `openssl pkeyutl -verify` over the raw `signed` bytes (a
/// TBS structure) with SM3 and the GM/T 0009 default signer ID. Where
/// OpenSSL's higher-level commands (`crl`, `ocsp`) cannot be given the ID,
/// this is how an SM2 CRL or OCSP signature gets an outside check. Also
/// checks that the same signature fails over altered bytes.
pub fn openssl_sm2_verify(
    dir: &Path,
    signer: &SubjectPublicKeyInfoOwned,
    signed: &[u8],
    signature: &[u8],
) {
    use der::Encode;
    write_pem(
        dir,
        "sm2-signer.pub.pem",
        "PUBLIC KEY",
        &signer.to_der().unwrap(),
    );
    std::fs::write(dir.join("sm2-signed.der"), signed).unwrap();
    std::fs::write(dir.join("sm2-signature.der"), signature).unwrap();
    let mut altered = signed.to_vec();
    let last = altered.len() - 1;
    altered[last] ^= 0x01;
    std::fs::write(dir.join("sm2-altered.der"), altered).unwrap();
    let verify = |data: &str| {
        openssl(
            dir,
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "sm2-signer.pub.pem",
                "-rawin",
                "-digest",
                "sm3",
                "-pkeyopt",
                "distid:1234567812345678",
                "-in",
                data,
                "-sigfile",
                "sm2-signature.der",
            ],
        )
    };
    let (ok, text) = verify("sm2-signed.der");
    assert!(
        ok && text.contains("Signature Verified Successfully"),
        "{text}"
    );
    let (ok, text) = verify("sm2-altered.der");
    assert!(!ok, "altered bytes must not verify: {text}");
}
