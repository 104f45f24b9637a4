//! CA keys in a PKCS#11 token (SoftHSM2): keys generated inside the token
//! sign issuing-CA hierarchies, end-entity certificates and CRLs that
//! OpenSSL verifies; keys persist, stay sensitive and non-extractable, and
//! PIN, token and label mistakes give clear errors.
//!
//! Each test gets a fresh SoftHSM2 token store (its own `softhsm2.conf`).
//! SoftHSM2 reads `SOFTHSM2_CONF` from the process environment when the
//! library is initialised, so the tests run one at a time (a static lock).
//! Without softhsm2 the tests are skipped, except under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};

use certhall_ca::crl::{self, Reason, Revoked};
use certhall_ca::issue::{self, random_serial, Issuer};
use certhall_ca::name::Subject;
use certhall_ca::pkcs11::{Pkcs11Config, Pkcs11Key, Pkcs11KeyRef};
use certhall_ca::profile::Profile;
use certhall_ca::{csr, CaError, CaSigner, Family, KeyAlgorithm, SoftwareKey};
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use tempfile::TempDir;

use super::common::{
    end_entity, hierarchy_with, openssl_crl_text, openssl_verify, write_pem, Hierarchy,
    CERTIFICATE, DAY, EE_SUBJECT, NOW,
};

const DEBIAN_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "CertHall CA";
const SO_PIN: &str = "so-pin-1234";
const PIN: &str = "user-pin-5678";

static SERIAL: Mutex<()> = Mutex::new(());

/// A fresh SoftHSM2 token store with one initialised token, [`TOKEN`].
struct SoftHsm {
    dir: TempDir,
    conf: PathBuf,
    module: PathBuf,
    // Last: released after everything above (and after the test's keys,
    // which are declared later and dropped first).
    _serial: MutexGuard<'static, ()>,
}

impl SoftHsm {
    /// `None` (after printing SKIPPED) when softhsm2 is not installed.
    fn new() -> Option<Self> {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let module = std::env::var_os("CERTHALL_PKCS11_MODULE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEBIAN_MODULE));
        let util = Command::new("softhsm2-util").arg("--version").output();
        if !module.exists() || util.is_err() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "CI=true but softhsm2 is not installed ({} / softhsm2-util): \
                     apt-get install -y softhsm2",
                    module.display()
                );
            }
            certhall_store::testing::report_skip(
                "PKCS#11 tests (softhsm2 not installed; scripts/test.sh installs it)",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        // Process-wide, hence the lock. Read by C_Initialize.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let hsm = Self {
            dir,
            conf,
            module,
            _serial: serial,
        };
        hsm.init_token(TOKEN);
        Some(hsm)
    }

    fn init_token(&self, label: &str) {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                SO_PIN,
                "--pin",
                PIN,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "softhsm2-util: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn config(&self, key_label: &str) -> Pkcs11Config {
        Pkcs11KeyRef {
            module: self.module.clone(),
            token_label: TOKEN.into(),
            key_label: key_label.into(),
        }
        .with_pin(PIN)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn signed_crl(issuing: &x509_cert::Certificate, key: &dyn CaSigner, number: u64) -> Vec<u8> {
    crl::build(
        issuing,
        key,
        number,
        NOW,
        NOW.plus(DAY),
        &[Revoked {
            serial: vec![0x01, 0x23, 0x45],
            at: NOW,
            reason: Reason::KeyCompromise,
        }],
    )
    .unwrap()
}

fn assert_crl_verifies(dir: &Path, crl_der: &[u8], family: Family) {
    write_pem(dir, "crl.pem", "X509 CRL", crl_der);
    let (ok, text) = openssl_crl_text(dir);
    assert!(
        ok && text.contains("verify OK") && text.contains("Key Compromise"),
        "{family}: {text}"
    );
}

/// The issuing CA's key is generated in the token; the root is a software
/// key. OpenSSL verifies the chain down to an end entity and the CRL; the
/// key is then opened again from a fresh context and signs once more.
fn token_issuing_ca(family: Family, alg: KeyAlgorithm) {
    let Some(hsm) = SoftHsm::new() else { return };
    let d = hsm.path();
    let label = format!("certhall-{family}-issuing");
    let token_key = Pkcs11Key::generate(hsm.config(&label), alg).unwrap();
    assert_eq!(token_key.algorithm(), alg);
    assert_eq!(token_key.family(), family);
    assert_eq!(token_key.id().len(), 16);
    let protection = token_key.protection().unwrap();
    assert!(
        !protection.extractable && protection.sensitive,
        "{protection:?}"
    );
    assert!(protection.never_left_the_token(), "{protection:?}");
    println!("{family}: generated {token_key:?}, {protection:?}");

    let Hierarchy {
        root,
        issuing_key: token_key,
        issuing,
        urls,
    } = hierarchy_with(family, token_key, "Issuing CA (HSM)", NOW);
    // An end entity signed by the token key.
    let ee_key = SoftwareKey::generate(family.issuing_key()).unwrap();
    let profile = Profile::enterprise();
    let subject = Subject::parse(EE_SUBJECT).unwrap();
    let (_, ee_der) = issue::issue(
        Issuer {
            certificate: Some(&issuing.0),
            signer: &token_key,
        },
        end_entity(
            &random_serial(),
            &subject,
            ee_key.public_key_info().unwrap(),
            &profile,
            &urls,
            NOW,
        ),
    )
    .unwrap();
    write_pem(d, "root.pem", CERTIFICATE, &root.1);
    write_pem(d, "issuing.pem", CERTIFICATE, &issuing.1);
    write_pem(d, "ee.pem", CERTIFICATE, &ee_der);
    let (ok, text) = openssl_verify(d, "ee.pem");
    assert!(ok && text.contains("ee.pem: OK"), "{family}: {text}");

    assert_crl_verifies(d, &signed_crl(&issuing.0, &token_key, 1), family);

    // Persistence: every key dropped, so the module is finalised; opening
    // the key initialises it afresh and reads the token store from disk.
    let spki = token_key.public_key_info().unwrap();
    let id = token_key.id().to_vec();
    drop(token_key);
    let reopened = Pkcs11Key::open(hsm.config(&label)).unwrap();
    assert_eq!(reopened.public_key_info().unwrap(), spki);
    assert_eq!(reopened.id(), id);
    assert_eq!(reopened.algorithm(), alg);
    assert_crl_verifies(d, &signed_crl(&issuing.0, &reopened, 2), family);
    let (_, ee2_der) = issue::issue(
        Issuer {
            certificate: Some(&issuing.0),
            signer: &reopened,
        },
        end_entity(
            &random_serial(),
            &subject,
            ee_key.public_key_info().unwrap(),
            &profile,
            &urls,
            NOW,
        ),
    )
    .unwrap();
    write_pem(d, "ee2.pem", CERTIFICATE, &ee2_der);
    let (ok, text) = openssl_verify(d, "ee2.pem");
    assert!(ok && text.contains("ee2.pem: OK"), "{family}: {text}");

    // A second key on the same token, opened while the first is alive,
    // shares the module (a second C_Initialize would fail).
    let ocsp_key = Pkcs11Key::generate(hsm.config("certhall-ocsp"), alg).unwrap();
    let msg = b"shared module";
    csr::verify_signature(
        &ocsp_key.public_key_info().unwrap(),
        msg,
        &ocsp_key.sign(msg).unwrap(),
    )
    .unwrap();
    csr::verify_signature(&spki, msg, &reopened.sign(msg).unwrap()).unwrap();
    drop(ocsp_key);
    drop(reopened);

    // Independent look at the token with plain cryptoki (no key of ours
    // alive, so this context is the only one): the private key is
    // sensitive, not extractable, and its value cannot be read.
    let ctx = Pkcs11::new(&hsm.module).unwrap();
    ctx.initialize(CInitializeArgs::OsThreads).unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == TOKEN)
        .unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::new(PIN.into())))
        .unwrap();
    let private = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(private.len(), 1);
    let attrs = session
        .get_attributes(
            private[0],
            &[
                AttributeType::Extractable,
                AttributeType::Sensitive,
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sign,
                AttributeType::Decrypt,
                AttributeType::Id,
            ],
        )
        .unwrap();
    for expected in [
        Attribute::Extractable(false),
        Attribute::Sensitive(true),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Id(id.clone()),
    ] {
        assert!(
            attrs.contains(&expected),
            "{family}: {expected:?} not in {attrs:?}"
        );
    }
    let secret = match alg {
        KeyAlgorithm::Rsa(_) => AttributeType::PrivateExponent,
        _ => AttributeType::Value,
    };
    assert!(
        matches!(
            session.get_attribute_info(private[0], &[secret]).unwrap()[..],
            [AttributeInfo::Sensitive]
        ),
        "{family}: the private value must be unreadable"
    );
}

#[test]
fn p256_issuing_ca_key_in_the_token() {
    token_issuing_ca(Family::P256, KeyAlgorithm::EcP256);
}

#[test]
fn rsa2048_issuing_ca_key_in_the_token() {
    token_issuing_ca(Family::Rsa, KeyAlgorithm::Rsa(2048));
}

fn key_error(r: Result<Pkcs11Key, CaError>) -> String {
    match r {
        Err(CaError::Key(m)) => m,
        other => panic!("expected CaError::Key, got {other:?}"),
    }
}

#[test]
fn mistakes_give_clear_errors() {
    let Some(hsm) = SoftHsm::new() else { return };
    hsm.init_token("Other token");

    // Wrong PIN, with no session open (C_Login answers CKR_PIN_INCORRECT).
    let mut cfg = hsm.config("k");
    cfg.pin = "not-the-pin".into();
    let m = key_error(Pkcs11Key::open(cfg.clone()));
    assert_eq!(m, format!("wrong PIN for token {TOKEN:?}"));
    let m = key_error(Pkcs11Key::generate(cfg.clone(), KeyAlgorithm::EcP256));
    assert!(m.starts_with("wrong PIN for token"), "{m}");

    let key = Pkcs11Key::generate(hsm.config("k"), KeyAlgorithm::EcP256).unwrap();
    // Wrong PIN while the token is logged in (C_Login answers
    // CKR_USER_ALREADY_LOGGED_IN without looking at the PIN).
    let m = key_error(Pkcs11Key::open(cfg));
    assert_eq!(m, format!("wrong PIN for token {TOKEN:?}"));
    // The right PIN in the same situation works.
    let again = Pkcs11Key::open(hsm.config("k")).unwrap();
    assert_eq!(
        again.public_key_info().unwrap(),
        key.public_key_info().unwrap()
    );

    // Unknown token: the error lists the tokens there are.
    let mut cfg = hsm.config("k");
    cfg.token_label = "No such token".into();
    let m = key_error(Pkcs11Key::open(cfg));
    assert!(
        m.contains("no token labelled \"No such token\"")
            && m.contains("\"CertHall CA\"")
            && m.contains("\"Other token\""),
        "{m}"
    );
    // Unknown key label.
    let m = key_error(Pkcs11Key::open(hsm.config("missing")));
    assert!(m.contains("no private key labelled \"missing\""), "{m}");
    // The label is taken.
    let m = key_error(Pkcs11Key::generate(
        hsm.config("k"),
        KeyAlgorithm::Rsa(2048),
    ));
    assert!(m.contains("already has a key labelled \"k\""), "{m}");
    // SM2 and odd RSA sizes are refused before touching the token.
    let m = key_error(Pkcs11Key::generate(hsm.config("sm2"), KeyAlgorithm::Sm2));
    assert!(
        m.contains("SM2 keys need a GM/T 0016 (SKF) or vendor module"),
        "{m}"
    );
    let m = key_error(Pkcs11Key::generate(
        hsm.config("small"),
        KeyAlgorithm::Rsa(1024),
    ));
    assert!(m.contains("RSA 1024"), "{m}");
    // A module that does not exist.
    let mut cfg = hsm.config("k");
    cfg.module = hsm.path().join("nope.so");
    let m = key_error(Pkcs11Key::open(cfg));
    assert!(m.contains("cannot load the PKCS#11 module"), "{m}");
    // The PIN never shows in Debug output.
    let shown = format!("{:?} {:?}", hsm.config("k"), key);
    assert!(!shown.contains(PIN), "{shown}");
}

#[test]
fn signs_from_many_threads_and_survives_a_logout() {
    let Some(hsm) = SoftHsm::new() else { return };
    let key = Arc::new(Pkcs11Key::generate(hsm.config("threads"), KeyAlgorithm::EcP256).unwrap());
    let spki = key.public_key_info().unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let key = Arc::clone(&key);
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| {
                        let msg = format!("thread {t} message {i}").into_bytes();
                        let sig = key.sign(&msg).unwrap();
                        (msg, sig)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for (msg, sig) in t.join().unwrap() {
            csr::verify_signature(&spki, &msg, &sig).unwrap();
        }
    }

    // Log the application out of the token behind the key's back (as an
    // HSM restart or a session timeout would): the next signature logs in
    // again on a new session. The module is already initialised by the
    // key, so this second handle must not C_Finalize it on drop: forget it.
    let raw = Pkcs11::new(&hsm.module).unwrap();
    let slot = raw
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| raw.get_token_info(*s).unwrap().label() == TOKEN)
        .unwrap();
    let session = raw.open_ro_session(slot).unwrap();
    session.logout().unwrap();
    drop(session);
    std::mem::forget(raw);
    let msg = b"after logout";
    let sig = key.sign(msg).unwrap();
    csr::verify_signature(&spki, msg, &sig).unwrap();
}
