//! The CA engine end to end, as an operator and a relying party meet it:
//! `certhall ca …` commands, a running `certhall serve`, and independent
//! tools — OpenSSL (`verify`, `x509`, `crl`, `ocsp -url`) and Python's
//! `cryptography` as a second parser.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_certhall");
const CA_PASSPHRASE: &str = "certhall cli test passphrase";

fn certhall(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .env("CERTHALL_PUBLIC_URL", "http://127.0.0.1:9")
        // A production-like folder: the CA passphrase from the environment.
        .env("CERTHALL_CA_PASSPHRASE", CA_PASSPHRASE)
        .env_remove("CERTHALL_DEMO")
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "command failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn python(dir: &Path, script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "python failed:\n{text}");
    text
}

struct Server(Child, String);

impl Server {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .env("CERTHALL_CA_PASSPHRASE", CA_PASSPHRASE)
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let base = format!(
            "http://{}",
            first.split("http://").nth(1).unwrap().trim_end_matches('/')
        );
        std::thread::spawn(move || for _ in lines {});
        Self(child, base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn csr(dir: &Path, family: &str, name: &str) {
    let (alg, opt) = match family {
        "sm2" => ("EC", "ec_paramgen_curve:SM2"),
        "p256" => ("EC", "ec_paramgen_curve:prime256v1"),
        _ => ("RSA", "rsa_keygen_bits:2048"),
    };
    let key = format!("{name}.key");
    let out = format!("{name}.csr");
    let (ok1, t) = openssl(
        dir,
        &["genpkey", "-algorithm", alg, "-pkeyopt", opt, "-out", &key],
    );
    assert!(ok1, "{t}");
    let mut args = vec![
        "req",
        "-new",
        "-key",
        &key,
        "-out",
        &out,
        "-subj",
        "/CN=whatever the applicant typed",
    ];
    if family == "sm2" {
        args.extend(["-sm3", "-sigopt", "distid:1234567812345678"]);
    }
    let (ok2, t) = openssl(dir, &args);
    assert!(ok2, "{t}");
}

const SUBJECT: &str = "C=CN,ST=山东省,L=枣庄市,O=枣庄市某某建设工程有限公司,USCC=91350100M000100Y43,CN=枣庄市某某建设工程有限公司";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_verify_revoke_and_check_status_over_ocsp_and_crl() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();

    // An RSA hierarchy from the command line; demo mode adds SM2 and P-256 at start.
    let init = ok(&certhall(d, &["ca", "init", "--family", "rsa"]));
    assert!(
        init.contains("rsa root") && init.contains("rsa issuing"),
        "{init}"
    );
    let again = certhall(d, &["ca", "init", "--family", "rsa"]);
    assert!(!again.status.success(), "a second init is refused");
    let key_files: Vec<String> = std::fs::read_dir(d.join("data/ca"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for f in key_files.iter().filter(|f| f.ends_with(".key.pem")) {
        let text = std::fs::read_to_string(d.join("data/ca").join(f)).unwrap();
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{f} must be encrypted"
        );
    }
    let server = Server::start(d);
    let base = server.1.clone();
    let page = reqwest::get(format!("{base}/ca"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("证书体系公示")
            && page.contains("SM2 国密")
            && page.contains("ECDSA P-256")
            && page.contains("RSA"),
        "{page}"
    );

    for family in ["sm2", "p256", "rsa"] {
        let chain = ok(&certhall(d, &["ca", "chain", "--family", family]));
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        std::fs::write(d.join(format!("{family}-chain.pem")), &chain).unwrap();
        let issuing_der = reqwest::get(format!("{base}/ca/{family}-issuing.der"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        std::fs::write(d.join(format!("{family}-issuing.der")), &issuing_der).unwrap();
        let (o, t) = openssl(
            d,
            &[
                "x509",
                "-inform",
                "DER",
                "-in",
                &format!("{family}-issuing.der"),
                "-out",
                &format!("{family}-issuing.pem"),
            ],
        );
        assert!(o, "{t}");
        let root_der = reqwest::get(format!("{base}/ca/{family}-root.der"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        std::fs::write(d.join(format!("{family}-root.der")), &root_der).unwrap();
        let (o, t) = openssl(
            d,
            &[
                "x509",
                "-inform",
                "DER",
                "-in",
                &format!("{family}-root.der"),
                "-out",
                &format!("{family}-root.pem"),
            ],
        );
        assert!(o, "{t}");

        csr(d, family, family);
        let pem = ok(&certhall(
            d,
            &[
                "ca",
                "issue",
                "--family",
                family,
                "--profile",
                "enterprise",
                "--csr",
                &format!("{family}.csr"),
                "--subject",
                SUBJECT,
            ],
        ));
        let ee = format!("{family}-ee.pem");
        std::fs::write(d.join(&ee), &pem).unwrap();

        // The chain verifies with OpenSSL (SM2: link by link with the GM/T signer ID).
        if family == "sm2" {
            for (anchor, target) in [
                ("sm2-root.pem", "sm2-issuing.pem"),
                ("sm2-issuing.pem", ee.as_str()),
            ] {
                let (o, t) = openssl(
                    d,
                    &[
                        "verify",
                        "-partial_chain",
                        "-vfyopt",
                        "distid:1234567812345678",
                        "-CAfile",
                        anchor,
                        target,
                    ],
                );
                assert!(o, "{family}: {t}");
            }
        } else {
            let (o, t) = openssl(
                d,
                &[
                    "verify",
                    "-CAfile",
                    &format!("{family}-root.pem"),
                    "-untrusted",
                    &format!("{family}-issuing.pem"),
                    &ee,
                ],
            );
            assert!(o && t.contains(": OK"), "{family}: {t}");
        }
        let (_, text) = openssl(
            d,
            &["x509", "-in", &ee, "-noout", "-text", "-nameopt", "utf8"],
        );
        assert!(
            text.contains("枣庄市某某建设工程有限公司")
                && text.contains("CA:FALSE")
                && text.contains("OCSP - URI:http://127.0.0.1:9/ocsp"),
            "{text}"
        );
        assert!(
            text.contains(&format!("URI:http://127.0.0.1:9/crl/{family}-issuing.crl")),
            "{text}"
        );
        let serial = {
            let (_, s) = openssl(d, &["x509", "-in", &ee, "-noout", "-serial"]);
            s.trim().trim_start_matches("serial=").to_ascii_lowercase()
        };
        let show = ok(&certhall(d, &["ca", "show", &serial]));
        assert!(show.contains("status:      valid"), "{show}");

        // OCSP against the running server: good, with the nonce echoed.
        let ocsp = |extra: &[&str]| {
            let mut v: Vec<String> = vec![
                "ocsp".into(),
                "-issuer".into(),
                format!("{family}-issuing.pem"),
                "-cert".into(),
                ee.clone(),
                "-url".into(),
                format!("{base}/ocsp"),
                "-CAfile".into(),
                format!("{family}-chain.pem"),
            ];
            v.extend(extra.iter().map(|s| s.to_string()));
            let refs: Vec<&str> = v.iter().map(String::as_str).collect();
            openssl(d, &refs)
        };
        if family != "sm2" {
            let (_, t) = ocsp(&[]);
            assert!(
                t.contains("Response verify OK") && t.contains(&format!("{ee}: good")),
                "{family}: {t}"
            );
            assert!(!t.contains("WARNING: no nonce"), "nonce echoed: {t}");
            let (_, t) = ocsp(&["-no_nonce"]);
            assert!(
                t.contains("Response verify OK") && t.contains(": good"),
                "{family}: {t}"
            );
        } else {
            // OpenSSL 3.0 checks SM2 OCSP signatures with an empty signer
            // ID; the status itself is read, the signature is verified
            // below with pkeyutl and the GM/T ID.
            let (_, t) = ocsp(&["-respout", "sm2-good.der", "-noverify"]);
            assert!(t.contains(&format!("{ee}: good")), "{family}: {t}");
        }

        // Revoke from the command line while the server runs.
        let rev = ok(&certhall(
            d,
            &[
                "ca",
                "revoke",
                &serial,
                "--reason",
                "keyCompromise",
                "--comment",
                "测试注销",
            ],
        ));
        assert!(rev.contains("revoked"), "{rev}");
        let again = certhall(d, &["ca", "revoke", &serial, "--reason", "keyCompromise"]);
        assert!(!again.status.success(), "revoking twice is refused");
        // The server learns of another process's revocation within
        // ocsp_poll (250 ms: it keeps answers in memory and polls the
        // database's OCSP generation, docs/ca.md).
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if family != "sm2" {
            let (_, t) = ocsp(&["-no_nonce"]);
            assert!(
                t.contains("Response verify OK")
                    && t.contains(": revoked")
                    && t.contains("Reason: keyCompromise"),
                "{family}: cache dropped on revocation: {t}"
            );
            let (_, t) = ocsp(&[]);
            assert!(
                t.contains(": revoked") && !t.contains("WARNING: no nonce"),
                "{family}: {t}"
            );
            // Unknown serial.
            let (_, t) = openssl(
                d,
                &[
                    "ocsp",
                    "-issuer",
                    &format!("{family}-issuing.pem"),
                    "-serial",
                    "0x0123456789abcdef",
                    "-url",
                    &format!("{base}/ocsp"),
                    "-CAfile",
                    &format!("{family}-chain.pem"),
                ],
            );
            assert!(
                t.contains("0x0123456789abcdef: unknown") && t.contains("Response verify OK"),
                "{family}: {t}"
            );
            // The CRL over HTTP verifies and lists the certificate.
            let crl = reqwest::get(format!("{base}/crl/{family}-issuing.crl"))
                .await
                .unwrap();
            assert_eq!(crl.headers()["content-type"], "application/pkix-crl");
            std::fs::write(d.join(format!("{family}.crl")), crl.bytes().await.unwrap()).unwrap();
            let (o, t) = openssl(
                d,
                &[
                    "crl",
                    "-inform",
                    "DER",
                    "-in",
                    &format!("{family}.crl"),
                    "-CAfile",
                    &format!("{family}-issuing.pem"),
                    "-noout",
                    "-text",
                ],
            );
            assert!(
                o && t.contains("verify OK") && t.contains("Key Compromise"),
                "{family}: {t}"
            );
            let (_, t) = openssl(
                d,
                &[
                    "crl",
                    "-inform",
                    "DER",
                    "-in",
                    &format!("{family}.crl"),
                    "-out",
                    &format!("{family}-crl.pem"),
                ],
            );
            let _ = t;
            let (o, t) = openssl(
                d,
                &[
                    "verify",
                    "-crl_check",
                    "-CAfile",
                    &format!("{family}-chain.pem"),
                    "-CRLfile",
                    &format!("{family}-crl.pem"),
                    &ee,
                ],
            );
            assert!(!o && t.contains("certificate revoked"), "{family}: {t}");
        } else {
            let (_, t) = ocsp(&["-respout", "sm2-revoked.der", "-noverify"]);
            assert!(
                t.contains(": revoked") && t.contains("Reason: keyCompromise"),
                "{t}"
            );
            // The SM2 signature of the OCSP response, checked by OpenSSL with the GM/T ID.
            python(d, "from cryptography.x509 import ocsp, load_pem_x509_certificate\nr = ocsp.load_der_ocsp_response(open('sm2-revoked.der','rb').read())\nopen('tbs.bin','wb').write(r.tbs_response_bytes)\nopen('sig.bin','wb').write(r.signature)\nopen('responder.pem','wb').write(r.certificates[0].public_bytes(__import__('cryptography').hazmat.primitives.serialization.Encoding.PEM))\n");
            let (o, t) = openssl(
                d,
                &[
                    "x509",
                    "-in",
                    "responder.pem",
                    "-pubkey",
                    "-noout",
                    "-out",
                    "responder.pub",
                ],
            );
            assert!(o, "{t}");
            let (o, t) = openssl(
                d,
                &[
                    "pkeyutl",
                    "-verify",
                    "-pubin",
                    "-inkey",
                    "responder.pub",
                    "-rawin",
                    "-digest",
                    "sm3",
                    "-pkeyopt",
                    "distid:1234567812345678",
                    "-in",
                    "tbs.bin",
                    "-sigfile",
                    "sig.bin",
                ],
            );
            assert!(
                o && t.contains("Signature Verified Successfully"),
                "sm2 OCSP signature: {t}"
            );
            let crl = reqwest::get(format!("{base}/crl/sm2-issuing.crl"))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            std::fs::write(d.join("sm2.crl"), crl).unwrap();
        }

        // A second, independent parser reads the certificate, the CRL and an OCSP response.
        let resp_file = if family == "sm2" {
            "sm2-revoked.der".to_owned()
        } else {
            let (_, _) = ocsp(&["-no_nonce", "-respout", &format!("{family}-revoked.der")]);
            format!("{family}-revoked.der")
        };
        let parsed = python(d, &format!(
            "from cryptography import x509\nfrom cryptography.x509 import ocsp\n\
             c = x509.load_pem_x509_certificate(open('{ee}','rb').read())\n\
             print('cert', format(c.serial_number, 'x'), c.subject.rfc4514_string())\n\
             crl = x509.load_der_x509_crl(open('{family}.crl','rb').read())\n\
             e = crl.get_revoked_certificate_by_serial_number(c.serial_number)\n\
             print('crl', e is not None, e.extensions.get_extension_for_class(x509.CRLReason).value.reason.name)\n\
             r = ocsp.load_der_ocsp_response(open('{resp_file}','rb').read())\n\
             print('ocsp', r.response_status.name, r.certificate_status.name, r.revocation_reason.name)\n"
        ));
        assert!(
            parsed.contains(&format!("cert {}", serial.trim_start_matches('0'))),
            "{parsed}"
        );
        assert!(
            parsed.contains("crl True key_compromise")
                && parsed.contains("ocsp SUCCESSFUL REVOKED key_compromise"),
            "{family}: {parsed}"
        );
    }

    // `ca crl` writes the current CRL; it lists the revoked certificate.
    ok(&certhall(
        d,
        &["ca", "crl", "--family", "p256", "--out", "cli.crl"],
    ));
    let (o, t) = openssl(
        d,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "cli.crl",
            "-CAfile",
            "p256-issuing.pem",
            "-noout",
            "-text",
        ],
    );
    assert!(
        o && t.contains("verify OK") && t.contains("Key Compromise"),
        "{t}"
    );
    let pem = ok(&certhall(
        d,
        &["ca", "crl", "--family", "p256", "--role", "root"],
    ));
    assert!(pem.starts_with("-----BEGIN X509 CRL-----"), "{pem}");

    // OCSP over GET (RFC 6960 Appendix A.1): base64 of the request in the path.
    let (o, t) = openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            "p256-issuing.pem",
            "-cert",
            "p256-ee.pem",
            "-no_nonce",
            "-reqout",
            "get.der",
        ],
    );
    assert!(o, "{t}");
    let b64 = python(d, "import base64,urllib.parse;print(urllib.parse.quote(base64.b64encode(open('get.der','rb').read()).decode(), safe=''))");
    let r = reqwest::get(format!("{base}/ocsp/{}", b64.trim()))
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/ocsp-response");
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age="));
    std::fs::write(d.join("get-resp.der"), r.bytes().await.unwrap()).unwrap();
    let (_, t) = openssl(
        d,
        &[
            "ocsp",
            "-respin",
            "get-resp.der",
            "-issuer",
            "p256-issuing.pem",
            "-cert",
            "p256-ee.pem",
            "-no_nonce",
            "-CAfile",
            "p256-chain.pem",
        ],
    );
    assert!(
        t.contains("p256-ee.pem: revoked") && t.contains("Response verify OK"),
        "{t}"
    );

    // A malformed OCSP request gets a malformedRequest response, not a 500.
    let r = reqwest::Client::new()
        .post(format!("{base}/ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(vec![1, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        &[0x30, 0x03, 0x0a, 0x01, 0x01]
    );

    // Bad requests are refused and nothing is stored.
    let before = ok(&certhall(d, &["ca", "list"])).lines().count();
    std::fs::write(d.join("junk.csr"), b"not a certificate request").unwrap();
    let (o, t) = openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            "small.key",
        ],
    );
    assert!(o, "{t}");
    let (o, t) = openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "small.key",
            "-out",
            "small.csr",
            "-subj",
            "/CN=x",
        ],
    );
    assert!(o, "{t}");
    for (csr_file, subject, why) in [
        ("junk.csr", SUBJECT, "neither PEM nor DER"),
        ("small.csr", SUBJECT, "RSA 1024"),
        ("p256.csr", "C=CN,CN=缺少单位名称", "requires O"),
        (
            "p256.csr",
            "C=CN,O=x,USCC=91350100M000100Y44,CN=x",
            "unified social credit code",
        ),
    ] {
        let out = certhall(
            d,
            &[
                "ca",
                "issue",
                "--family",
                "p256",
                "--profile",
                "enterprise",
                "--csr",
                csr_file,
                "--subject",
                subject,
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(why),
            "{csr_file}: {err}"
        );
    }
    assert_eq!(
        ok(&certhall(d, &["ca", "list"])).lines().count(),
        before,
        "nothing stored"
    );

    // Every CA operation is in the audit chain, and the chain is intact.
    drop(server);
    let verify = ok(&certhall(d, &["audit", "verify"]));
    assert!(verify.contains("intact"), "{verify}");
}

/// `certhall ca init --pkcs11-module …`: the issuing CA's key is generated
/// inside a SoftHSM2 token the test creates, and the certificates it signs
/// verify with OpenSSL.
#[test]
fn ca_keys_in_a_softhsm2_token() {
    let module = std::env::var("CERTHALL_PKCS11_MODULE")
        .unwrap_or_else(|_| "/usr/lib/softhsm/libsofthsm2.so".into());
    if !Path::new(&module).exists()
        || Command::new("softhsm2-util")
            .arg("--version")
            .output()
            .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but softhsm2 is missing: apt-get install -y softhsm2"
        );
        certhall_store::testing::report_skip(
            "PKCS#11 CLI test (softhsm2 not installed; scripts/test.sh installs it)",
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir_all(d.join("tokens")).unwrap();
    std::fs::write(
        d.join("softhsm2.conf"),
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            d.join("tokens").display()
        ),
    )
    .unwrap();
    let conf = d.join("softhsm2.conf");
    let init = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "certhall-ca",
            "--so-pin",
            "87654321",
            "--pin",
            "12345678",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(d.join("data"))
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .env("SOFTHSM2_CONF", &conf)
            .env("CERTHALL_CA_PKCS11_PIN", "12345678")
            .current_dir(d)
            .output()
            .unwrap()
    };
    let out = ok(&run(&[
        "ca",
        "init",
        "--family",
        "p256",
        "--pkcs11-module",
        &module,
        "--token-label",
        "certhall-ca",
    ]));
    assert!(out.contains("p256 issuing"), "{out}");
    // The keys are in the token, not on disk.
    assert!(
        !d.join("data/ca").exists()
            || std::fs::read_dir(d.join("data/ca")).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".key.pem"))
    );
    std::fs::write(
        d.join("chain.pem"),
        ok(&run(&["ca", "chain", "--family", "p256"])),
    )
    .unwrap();
    csr(d, "p256", "ee");
    let pem = ok(&run(&[
        "ca",
        "issue",
        "--family",
        "p256",
        "--profile",
        "enterprise",
        "--csr",
        "ee.csr",
        "--subject",
        SUBJECT,
    ]));
    std::fs::write(d.join("ee.pem"), pem).unwrap();
    let (o, t) = openssl(d, &["verify", "-CAfile", "chain.pem", "ee.pem"]);
    assert!(o && t.contains("ee.pem: OK"), "{t}");
    // A wrong PIN is a clear error.
    let bad = Command::new(BIN)
        .args([
            "ca",
            "issue",
            "--family",
            "p256",
            "--profile",
            "enterprise",
            "--csr",
            "ee.csr",
            "--subject",
            SUBJECT,
            "--data-dir",
        ])
        .arg(d.join("data"))
        .env_remove("DATABASE_URL")
        .env("SOFTHSM2_CONF", &conf)
        .env("CERTHALL_CA_PKCS11_PIN", "00000000")
        .current_dir(d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("wrong PIN"), "{err}");
}

/// `certhall ca profile list|add|edit`, and a profile change taking effect.
#[test]
fn profiles_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(&certhall(d, &["ca", "init", "--family", "p256"]));
    let list = ok(&certhall(d, &["ca", "profile", "list"]));
    assert!(
        list.contains("\"name\":\"enterprise\"") && list.contains("\"name\":\"person\""),
        "{list}"
    );

    ok(&certhall(
        d,
        &[
            "ca",
            "profile",
            "edit",
            "enterprise",
            "--validity-days",
            "30",
            "--policy-oid",
            "1.2.156.112559.1.1.4.1",
        ],
    ));
    csr(d, "p256", "ee");
    let pem = ok(&certhall(
        d,
        &[
            "ca",
            "issue",
            "--family",
            "p256",
            "--profile",
            "enterprise",
            "--csr",
            "ee.csr",
            "--subject",
            SUBJECT,
        ],
    ));
    std::fs::write(d.join("ee.pem"), pem).unwrap();
    let (_, text) = openssl(d, &["x509", "-in", "ee.pem", "-noout", "-text"]);
    assert!(text.contains("Policy: 1.2.156.112559.1.1.4.1"), "{text}");
    let (_, dates) = openssl(
        d,
        &["x509", "-in", "ee.pem", "-noout", "-startdate", "-enddate"],
    );
    let start = dates
        .lines()
        .find_map(|l| l.strip_prefix("notBefore="))
        .unwrap()
        .to_owned();
    let end = dates
        .lines()
        .find_map(|l| l.strip_prefix("notAfter="))
        .unwrap()
        .to_owned();
    let days = python(d, &format!(
        "from datetime import datetime\nf='%b %d %H:%M:%S %Y GMT'\nprint((datetime.strptime('{end}'.replace('  ',' '),f)-datetime.strptime('{start}'.replace('  ',' '),f)).total_seconds()/86400)"
    ));
    let days: f64 = days.trim().parse().unwrap();
    assert!((30.0..30.01).contains(&days), "validity {days} days");

    let mut bidder: serde_json::Value =
        serde_json::from_str(list.lines().find(|l| l.contains("\"person\"")).unwrap()).unwrap();
    bidder["name"] = "bidder".into();
    bidder["description"] = "投标专用证书".into();
    std::fs::write(d.join("bidder.json"), bidder.to_string()).unwrap();
    ok(&certhall(
        d,
        &["ca", "profile", "add", "--file", "bidder.json"],
    ));
    let dup = certhall(d, &["ca", "profile", "add", "--file", "bidder.json"]);
    assert!(!dup.status.success(), "adding twice is refused");
    bidder["name"] = "weak".into();
    bidder["key_algorithms"] = serde_json::json!([{ "type": "rsa", "bits": 1024 }]);
    std::fs::write(d.join("weak.json"), bidder.to_string()).unwrap();
    let weak = certhall(d, &["ca", "profile", "add", "--file", "weak.json"]);
    assert!(
        !weak.status.success() && String::from_utf8_lossy(&weak.stderr).contains("RSA size 1024"),
        "{}",
        String::from_utf8_lossy(&weak.stderr)
    );
    let missing = certhall(
        d,
        &["ca", "profile", "edit", "nope", "--validity-days", "3"],
    );
    assert!(!missing.status.success());
    let list = ok(&certhall(d, &["ca", "profile", "list"]));
    assert!(
        list.contains("投标专用证书") && !list.contains("\"weak\""),
        "{list}"
    );
}
