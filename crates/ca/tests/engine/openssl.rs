//! Independent checks of the engine's output: OpenSSL (`openssl verify`,
//! `openssl x509`, `openssl crl`) and a second parser (x509-parser), for
//! every family.

use std::path::Path;

use certhall_ca::crl::{self, Reason, Revoked};
use certhall_ca::issue::{self, random_serial, Issuer};
use certhall_ca::name::Subject;
use certhall_ca::profile::Profile;
use certhall_ca::{csr, CaSigner, Family, SoftwareKey};

use super::common::{
    end_entity, hierarchy, openssl, openssl_crl_text, openssl_sm2_verify, openssl_verify,
    write_chain, write_pem, CERTIFICATE, DAY, EE_SUBJECT, NOW,
};

/// A CSR made by OpenSSL for the family's key type. OpenSSL 3's default
/// SM2 signer ID for X.509 objects is empty, so the GM/T default ID is
/// passed explicitly (as `-vfyopt` is when verifying).
fn openssl_csr(dir: &Path, family: Family) -> Vec<u8> {
    let (alg, opt) = match family {
        Family::Sm2 => ("EC", "ec_paramgen_curve:SM2"),
        Family::P256 => ("EC", "ec_paramgen_curve:prime256v1"),
        Family::Rsa => ("RSA", "rsa_keygen_bits:2048"),
    };
    let (ok, text) = openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            alg,
            "-pkeyopt",
            opt,
            "-out",
            "ee.key",
        ],
    );
    assert!(ok, "{text}");
    let digest = if family == Family::Sm2 {
        "-sm3"
    } else {
        "-sha256"
    };
    let mut args = vec![
        "req",
        "-new",
        "-key",
        "ee.key",
        digest,
        "-out",
        "ee.csr",
        "-subj",
        "/CN=ignored by the CA",
    ];
    if family == Family::Sm2 {
        args.extend(["-sigopt", "distid:1234567812345678"]);
    }
    let (ok, text) = openssl(dir, &args);
    assert!(ok, "{text}");
    std::fs::read(dir.join("ee.csr")).unwrap()
}

#[test]
fn every_family_verifies_with_openssl_and_a_second_parser() {
    for family in Family::ALL {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let h = hierarchy(family, NOW);
        let csr_pem = openssl_csr(d, family);
        let verified = csr::verify(&csr_pem).unwrap_or_else(|e| panic!("{family}: {e}"));
        let profile = Profile::enterprise();
        profile.check_key(verified.key).unwrap();
        let subject = Subject::parse(EE_SUBJECT).unwrap();
        profile.check_subject(&subject).unwrap();
        let serial = random_serial();
        let (_, ee_der) = issue::issue(
            Issuer {
                certificate: Some(&h.issuing.0),
                signer: &h.issuing_key,
            },
            end_entity(
                &serial,
                &subject,
                verified.public_key,
                &profile,
                &h.urls,
                NOW,
            ),
        )
        .unwrap();
        write_pem(d, "root.pem", CERTIFICATE, &h.root.1);
        write_pem(d, "issuing.pem", CERTIFICATE, &h.issuing.1);
        write_pem(d, "ee.pem", CERTIFICATE, &ee_der);

        if family == Family::Sm2 {
            // OpenSSL 3.0's `verify -vfyopt distid:…` applies the signer ID to
            // the target certificate only, so the chain is checked link by
            // link: issuing CA against the root, then the end entity against
            // the issuing CA. Without the ID, the same links fail — proof
            // that the signatures use the GM/T 0009 default ID.
            for (anchor, target) in [("root.pem", "issuing.pem"), ("issuing.pem", "ee.pem")] {
                let (ok, text) = openssl(
                    d,
                    &[
                        "verify",
                        "-attime",
                        "1795568500",
                        "-partial_chain",
                        "-vfyopt",
                        "distid:1234567812345678",
                        "-CAfile",
                        anchor,
                        target,
                    ],
                );
                assert!(ok && text.contains(": OK"), "{family} {target}: {text}");
                let (ok, _) = openssl(
                    d,
                    &[
                        "verify",
                        "-attime",
                        "1795568500",
                        "-partial_chain",
                        "-CAfile",
                        anchor,
                        target,
                    ],
                );
                assert!(
                    !ok,
                    "{target} must not verify with OpenSSL's empty default ID"
                );
            }
        } else {
            let (ok, text) = openssl_verify(d, "ee.pem");
            assert!(ok && text.contains("ee.pem: OK"), "{family}: {text}");
        }
        // Our own verifier agrees on every signature, the root's included.
        for (cert, signer) in [(&h.root.0, &h.root.0), (&h.issuing.0, &h.root.0)] {
            csr::verify_signature(
                &signer.tbs_certificate.subject_public_key_info,
                &der::Encode::to_der(&cert.tbs_certificate).unwrap(),
                cert.signature.raw_bytes(),
            )
            .unwrap_or_else(|e| panic!("{family}: {e}"));
        }

        let (ok, text) = openssl(
            d,
            &[
                "x509", "-in", "ee.pem", "-noout", "-text", "-nameopt", "utf8",
            ],
        );
        assert!(ok, "{text}");
        for needle in [
            "CA:FALSE",
            "Digital Signature, Non Repudiation",
            "TLS Web Client Authentication",
            "Subject Key Identifier",
            "Authority Key Identifier",
            "URI:http://127.0.0.1:8080/ocsp",
            "枣庄某某建设有限公司",
            "organizationIdentifier",
            "91350100M000100Y43",
        ] {
            assert!(
                text.contains(needle),
                "{family}: missing {needle:?} in\n{text}"
            );
        }
        assert!(
            text.contains(&format!("URI:http://127.0.0.1:8080/crl/{family}.crl")),
            "{text}"
        );

        // Second parser.
        for der in [&h.root.1, &h.issuing.1, &ee_der] {
            let (rest, parsed) = x509_parser::parse_x509_certificate(der)
                .unwrap_or_else(|e| panic!("{family}: {e}"));
            assert!(rest.is_empty());
            assert_eq!(parsed.version(), x509_parser::x509::X509Version::V3);
        }
        let (_, ee) = x509_parser::parse_x509_certificate(&ee_der).unwrap();
        assert_eq!(ee.raw_serial(), serial.as_slice());
        assert!(!ee.is_ca());

        // CRL with the certificate revoked.
        let crl_der = crl::build(
            &h.issuing.0,
            &h.issuing_key,
            7,
            NOW,
            NOW.plus(DAY),
            &[Revoked {
                serial: serial.to_vec(),
                at: NOW,
                reason: Reason::KeyCompromise,
            }],
        )
        .unwrap();
        let (_, parsed_crl) = x509_parser::parse_x509_crl(&crl_der).unwrap();
        assert_eq!(parsed_crl.iter_revoked_certificates().count(), 1);
        write_pem(d, "crl.pem", "X509 CRL", &crl_der);
        if family == Family::Sm2 {
            // `openssl crl` cannot be given the SM2 signer ID: the
            // signature is checked over the TBS bytes with pkeyutl.
            use der::{Decode, Encode};
            let list = x509_cert::crl::CertificateList::from_der(&crl_der).unwrap();
            openssl_sm2_verify(
                d,
                &h.issuing.0.tbs_certificate.subject_public_key_info,
                &list.tbs_cert_list.to_der().unwrap(),
                list.signature.raw_bytes(),
            );
            let (ok, text) = openssl(d, &["crl", "-in", "crl.pem", "-noout", "-text"]);
            assert!(
                ok && text.contains("Key Compromise") && text.contains("CRL Number"),
                "{family}: {text}"
            );
        } else {
            let (ok, text) = openssl_crl_text(d);
            assert!(
                ok && text.contains("verify OK")
                    && text.contains("Key Compromise")
                    && text.contains("CRL Number"),
                "{family}: {text}"
            );
            let (ok, text) = openssl(
                d,
                &["crl", "-in", "crl.pem", "-CAfile", "issuing.pem", "-noout"],
            );
            assert!(ok && text.contains("verify OK"), "{family}: {text}");
            write_chain(d);
            let (ok, text) = openssl(
                d,
                &[
                    "verify",
                    "-attime",
                    "1795568500",
                    "-crl_check",
                    "-CAfile",
                    "chain.pem",
                    "-CRLfile",
                    "crl.pem",
                    "ee.pem",
                ],
            );
            assert!(
                !ok && text.contains("certificate revoked"),
                "{family}: {text}"
            );
        }
    }
}

#[test]
fn refuses_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = openssl_csr(d, Family::P256);
    // What tools wrap around a PEM is accepted: a blank line after it
    // (`jq -r .csr` of the agent's answer, docs/agent.md), CRLF line ends,
    // leading white space.
    let text = String::from_utf8(good.clone()).unwrap();
    for wrapped in [
        format!("{text}\n"),
        format!("{}\n\n\n", text.trim_end()),
        text.replace('\n', "\r\n"),
        format!("  \n{text}"),
    ] {
        csr::verify(wrapped.as_bytes()).unwrap_or_else(|e| panic!("{wrapped:?}: {e}"));
    }
    // Broken signature: flip a byte near the end (inside the signature).
    let der = der::pem::decode_vec(&good).unwrap().1;
    let mut broken = der.clone();
    let n = broken.len();
    broken[n - 5] ^= 0x55;
    assert!(matches!(
        csr::verify(&broken),
        Err(certhall_ca::CaError::BadCsrSignature)
    ));
    // RSA 1024 parses but the profile refuses it.
    let (ok, text) = openssl(
        d,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "rsa:1024",
            "-keyout",
            "k",
            "-out",
            "small.csr",
            "-subj",
            "/CN=x",
        ],
    );
    assert!(ok, "{text}");
    let small = csr::verify(&std::fs::read(d.join("small.csr")).unwrap()).unwrap();
    assert!(Profile::enterprise().check_key(small.key).is_err());
    // Unsupported curve.
    let (ok, text) = openssl(
        d,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:secp384r1",
            "-keyout",
            "k",
            "-out",
            "p384.csr",
            "-subj",
            "/CN=x",
        ],
    );
    assert!(ok, "{text}");
    assert!(matches!(
        csr::verify(&std::fs::read(d.join("p384.csr")).unwrap()),
        Err(certhall_ca::CaError::KeyNotAllowed(_))
    ));
    // Random bytes, and a PEM with the wrong label.
    assert!(matches!(
        csr::verify(&[0x30, 0x03, 1, 2, 3]),
        Err(certhall_ca::CaError::MalformedCsr(_))
    ));
    assert!(matches!(
        csr::verify(b"hello"),
        Err(certhall_ca::CaError::MalformedCsr(_))
    ));
    let wrong_label = String::from_utf8(good)
        .unwrap()
        .replace("CERTIFICATE REQUEST", "CERTIFICATE");
    assert!(matches!(
        csr::verify(wrong_label.as_bytes()),
        Err(certhall_ca::CaError::MalformedCsr(_))
    ));
}

#[test]
fn encrypted_key_files_round_trip_and_refuse_a_wrong_passphrase() {
    for family in Family::ALL {
        let key = SoftwareKey::generate(family.issuing_key()).unwrap();
        let pem = key.to_encrypted_pem(b"correct horse").unwrap();
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{family}"
        );
        let back = SoftwareKey::from_encrypted_pem(&pem, b"correct horse").unwrap();
        assert_eq!(
            back.public_key_info().unwrap(),
            key.public_key_info().unwrap()
        );
        assert!(
            matches!(
                SoftwareKey::from_encrypted_pem(&pem, b"wrong"),
                Err(certhall_ca::CaError::WrongPassphrase)
            ),
            "{family}"
        );
        // OpenSSL reads the same file with the passphrase.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.pem"), &pem).unwrap();
        let (ok, text) = openssl(
            dir.path(),
            &[
                "pkey",
                "-in",
                "k.pem",
                "-passin",
                "pass:correct horse",
                "-noout",
            ],
        );
        assert!(ok, "{family}: {text}");
    }
}
