use super::*;
use der::Decode;
use spki::SubjectPublicKeyInfoOwned;

const USER: &str = "123456";
const SO: &str = "87654321";

fn setup() -> (tempfile::TempDir, SoftTokens, String) {
    let dir = tempfile::tempdir().unwrap();
    let tokens = SoftTokens::open(dir.path().join("tokens"))
        .unwrap()
        .with_test_kdf();
    let info = tokens
        .create_token("测试软证书", &Pin::new(USER), &Pin::new(SO))
        .unwrap();
    (dir, tokens, info.serial)
}

fn user() -> Pin {
    Pin::new(USER)
}

fn wrong() -> Pin {
    Pin::new("000000")
}

fn assert_signs(tokens: &SoftTokens, serial: &str, pin: &Pin, key: &KeyEntry) {
    let msg = b"CertHall soft token test message";
    let sig = tokens.sign(serial, pin, &key.key_id, msg).unwrap();
    let spki = SubjectPublicKeyInfoOwned::from_der(&key.public_key).unwrap();
    certhall_ca::csr::verify_signature(&spki, msg, &sig).unwrap();
    assert!(certhall_ca::csr::verify_signature(&spki, b"another message", &sig).is_err());
}

fn info(tokens: &SoftTokens, serial: &str) -> TokenInfo {
    tokens
        .tokens()
        .unwrap()
        .into_iter()
        .find(|t| t.serial == serial)
        .unwrap()
}

#[test]
fn create_and_list() {
    let (dir, tokens, serial) = setup();
    assert_eq!(tokens.kind(), "soft");
    assert!(is_serial(&serial));
    let list = tokens.tokens().unwrap();
    assert_eq!(
        list,
        vec![TokenInfo {
            serial: serial.clone(),
            initialized: true,
            label: "测试软证书".into(),
            manufacturer: "CertHall".into(),
            model: "软证书 (Soft Token)".into(),
            pin_retries_left: Some(MAX_PIN_TRIES),
            pin_locked: false,
        }]
    );
    assert!(tokens.keys(&serial).unwrap().is_empty());
    assert!(dir
        .path()
        .join("tokens")
        .join(format!("{serial}.token.json"))
        .is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(tokens.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let path = tokens.path(&serial).unwrap();
        let mode = fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The recorded KDF is the one used; no temporary files are left.
    let file = tokens.load(&serial).unwrap();
    assert_eq!(file.user_pin.as_ref().unwrap().kdf, Kdf::TEST);
    assert_eq!(fs::read_dir(tokens.dir()).unwrap().count(), 1);
}

#[test]
fn real_kdf_parameters_are_accepted() {
    let params = Kdf::DEFAULT.params().unwrap();
    assert_eq!((params.log_n(), params.r(), params.p()), (15, 8, 1));
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(SoftTokens::open(dir.path()).unwrap().kdf, Kdf::DEFAULT);
}

#[test]
fn create_checks_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = SoftTokens::open(dir.path()).unwrap().with_test_kdf();
    assert!(matches!(
        tokens.create_token("x", &Pin::new("123"), &Pin::new(SO)),
        Err(TokenError::PinPolicy(_))
    ));
    assert!(matches!(
        tokens.create_token("x", &user(), &Pin::new("")),
        Err(TokenError::PinPolicy(_))
    ));
    assert!(matches!(
        tokens.create_token("", &user(), &Pin::new(SO)),
        Err(TokenError::BadRequest(_))
    ));
    assert!(matches!(
        tokens.create_token(&"长".repeat(65), &user(), &Pin::new(SO)),
        Err(TokenError::BadRequest(_))
    ));
    assert!(tokens.tokens().unwrap().is_empty());
}

#[test]
fn generate_and_sign_each_algorithm() {
    let (_dir, tokens, serial) = setup();
    let mut ids = Vec::new();
    for (alg, label) in [
        (KeyAlgorithm::EcP256, "p256"),
        (KeyAlgorithm::Rsa(2048), "rsa"),
        (KeyAlgorithm::Sm2, "sm2"),
    ] {
        let key = tokens.generate_key(&serial, &user(), alg, label).unwrap();
        assert_eq!(key.algorithm, alg);
        assert_eq!(key.label, label);
        assert_eq!(key.key_id.len(), 16);
        assert_eq!(key.certificate, None);
        let spki = SubjectPublicKeyInfoOwned::from_der(&key.public_key).unwrap();
        assert_eq!(certhall_ca::csr::classify(&spki).unwrap(), alg);
        assert_signs(&tokens, &serial, &user(), &key);
        ids.push(key.key_id);
    }
    let listed: Vec<_> = tokens
        .keys(&serial)
        .unwrap()
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(listed, ids);
    // A second instance (a restarted agent) signs with the same keys.
    let again = SoftTokens::open(tokens.dir()).unwrap();
    for key in again.keys(&serial).unwrap() {
        assert_signs(&again, &serial, &user(), &key);
    }
}

#[test]
fn bad_requests() {
    let (_dir, tokens, serial) = setup();
    assert!(matches!(
        tokens.generate_key(&serial, &user(), KeyAlgorithm::Rsa(3072), "k"),
        Err(TokenError::Unsupported(m)) if m.contains("软证书不支持该密钥算法")
    ));
    assert!(matches!(
        tokens.generate_key(&serial, &user(), KeyAlgorithm::Sm2, ""),
        Err(TokenError::BadRequest(_))
    ));
    assert!(matches!(
        tokens.generate_key(&serial, &user(), KeyAlgorithm::Sm2, &"k".repeat(65)),
        Err(TokenError::BadRequest(_))
    ));
    let key = tokens
        .generate_key(&serial, &user(), KeyAlgorithm::Sm2, &"键".repeat(64))
        .unwrap();
    // Unknown tokens, including names that are not serials at all.
    for bad in [
        "0000000000000000",
        "../../etc/passwd",
        "",
        "ABCDEF0123456789",
    ] {
        assert_eq!(tokens.keys(bad), Err(TokenError::TokenAbsent));
        assert_eq!(
            tokens.verify_pin(bad, &user()),
            Err(TokenError::TokenAbsent)
        );
    }
    assert_eq!(
        tokens.sign(&serial, &user(), &[1, 2, 3], b"m"),
        Err(TokenError::NoSuchKey)
    );
    assert_eq!(
        tokens.store_certificate(&serial, &user(), &[1, 2, 3], b"c", &[]),
        Err(TokenError::NoSuchKey)
    );
    assert_eq!(
        tokens.delete_key(&serial, &user(), &[1, 2, 3]),
        Err(TokenError::NoSuchKey)
    );
    assert!(matches!(
        tokens.store_certificate(&serial, &user(), &key.key_id, b"", &[]),
        Err(TokenError::BadRequest(_))
    ));
    // None of that counted as a wrong PIN.
    assert_eq!(info(&tokens, &serial).pin_retries_left, Some(MAX_PIN_TRIES));
}

#[test]
fn token_full() {
    let (_dir, tokens, serial) = setup();
    for i in 0..MAX_KEYS {
        tokens
            .generate_key(&serial, &user(), KeyAlgorithm::EcP256, &format!("k{i}"))
            .unwrap();
    }
    assert_eq!(
        tokens.generate_key(&serial, &user(), KeyAlgorithm::EcP256, "one more"),
        Err(TokenError::TokenFull)
    );
    let first = tokens.keys(&serial).unwrap().remove(0);
    tokens.delete_key(&serial, &user(), &first.key_id).unwrap();
    tokens
        .generate_key(&serial, &user(), KeyAlgorithm::EcP256, "room again")
        .unwrap();
}

#[test]
fn wrong_pins_count_down_and_lock() {
    let (_dir, tokens, serial) = setup();
    let key = tokens
        .generate_key(&serial, &user(), KeyAlgorithm::EcP256, "k")
        .unwrap();
    // Three wrong, then a right one resets the count.
    for left in [9, 8, 7] {
        assert_eq!(
            tokens.verify_pin(&serial, &wrong()),
            Err(TokenError::WrongPin {
                retries_left: Some(left)
            })
        );
        assert_eq!(info(&tokens, &serial).pin_retries_left, Some(left));
    }
    tokens.verify_pin(&serial, &user()).unwrap();
    assert_eq!(info(&tokens, &serial).pin_retries_left, Some(MAX_PIN_TRIES));

    // Wrong PINs through any operation count.
    for left in (1..MAX_PIN_TRIES).rev() {
        let err = if left % 2 == 0 {
            tokens
                .sign(&serial, &wrong(), &key.key_id, b"m")
                .unwrap_err()
        } else {
            tokens.verify_pin(&serial, &wrong()).unwrap_err()
        };
        assert_eq!(
            err,
            TokenError::WrongPin {
                retries_left: Some(left)
            }
        );
    }
    // The tenth wrong PIN locks, and says so.
    assert_eq!(
        tokens.verify_pin(&serial, &wrong()),
        Err(TokenError::PinLocked)
    );
    let locked = info(&tokens, &serial);
    assert!(locked.pin_locked);
    assert_eq!(locked.pin_retries_left, Some(0));
    // Now even the right PIN is refused, everywhere.
    assert_eq!(
        tokens.verify_pin(&serial, &user()),
        Err(TokenError::PinLocked)
    );
    assert_eq!(
        tokens.sign(&serial, &user(), &key.key_id, b"m"),
        Err(TokenError::PinLocked)
    );
    assert_eq!(
        tokens.change_pin(&serial, &user(), &Pin::new("654321")),
        Err(TokenError::PinLocked)
    );
    // Also after a restart: the count is in the file.
    let again = SoftTokens::open(tokens.dir()).unwrap();
    assert_eq!(
        again.verify_pin(&serial, &user()),
        Err(TokenError::PinLocked)
    );
    // Public objects are still readable.
    assert_eq!(tokens.keys(&serial).unwrap().len(), 1);
}

#[test]
fn so_pin_unblocks() {
    let (_dir, tokens, serial) = setup();
    let key = tokens
        .generate_key(&serial, &user(), KeyAlgorithm::Sm2, "k")
        .unwrap();
    for _ in 0..MAX_PIN_TRIES {
        let _ = tokens.verify_pin(&serial, &wrong());
    }
    assert!(info(&tokens, &serial).pin_locked);

    let new = Pin::new("24681357");
    // A wrong SO PIN counts, with its own counter.
    for left in [9, 8] {
        assert_eq!(
            tokens.unblock_pin(&serial, &user(), &new),
            Err(TokenError::WrongSoPin {
                retries_left: Some(left)
            })
        );
    }
    // A new PIN that breaks the rules is refused before the SO PIN is
    // checked (and counted).
    assert!(matches!(
        tokens.unblock_pin(&serial, &Pin::new(SO), &Pin::new("12")),
        Err(TokenError::PinPolicy(_))
    ));
    assert_eq!(tokens.load(&serial).unwrap().so_failures, 2);

    tokens.unblock_pin(&serial, &Pin::new(SO), &new).unwrap();
    let file = tokens.load(&serial).unwrap();
    assert_eq!((file.user_failures, file.so_failures), (0, 0));
    let unlocked = info(&tokens, &serial);
    assert!(!unlocked.pin_locked);
    assert_eq!(unlocked.pin_retries_left, Some(MAX_PIN_TRIES));

    assert_eq!(
        tokens.verify_pin(&serial, &user()),
        Err(TokenError::WrongPin {
            retries_left: Some(9)
        })
    );
    tokens.verify_pin(&serial, &new).unwrap();
    assert_signs(&tokens, &serial, &new, &key);
}

#[test]
fn so_pin_locks() {
    let (_dir, tokens, serial) = setup();
    let new = Pin::new("24681357");
    for _ in 1..MAX_PIN_TRIES {
        assert!(matches!(
            tokens.unblock_pin(&serial, &wrong(), &new),
            Err(TokenError::WrongSoPin { .. })
        ));
    }
    assert_eq!(
        tokens.unblock_pin(&serial, &wrong(), &new),
        Err(TokenError::SoPinLocked)
    );
    assert_eq!(
        tokens.unblock_pin(&serial, &Pin::new(SO), &new),
        Err(TokenError::SoPinLocked)
    );
    // The user PIN is unaffected.
    tokens.verify_pin(&serial, &user()).unwrap();
}

#[test]
fn change_pin() {
    let (_dir, tokens, serial) = setup();
    let key = tokens
        .generate_key(&serial, &user(), KeyAlgorithm::Rsa(2048), "k")
        .unwrap();
    let new = Pin::new("abc-DEF-123");
    assert!(matches!(
        tokens.change_pin(&serial, &user(), &Pin::new("short")),
        Err(TokenError::PinPolicy(_))
    ));
    assert_eq!(
        tokens.change_pin(&serial, &wrong(), &new),
        Err(TokenError::WrongPin {
            retries_left: Some(9)
        })
    );
    tokens.change_pin(&serial, &user(), &new).unwrap();
    assert_eq!(info(&tokens, &serial).pin_retries_left, Some(MAX_PIN_TRIES));
    assert!(matches!(
        tokens.verify_pin(&serial, &user()),
        Err(TokenError::WrongPin { .. })
    ));
    assert_signs(&tokens, &serial, &new, &key);
    // The SO PIN still unwraps the same master key.
    tokens
        .unblock_pin(&serial, &Pin::new(SO), &Pin::new(USER))
        .unwrap();
    assert_signs(&tokens, &serial, &user(), &key);
}

#[test]
fn certificates_and_delete() {
    let (_dir, tokens, serial) = setup();
    let a = tokens
        .generate_key(&serial, &user(), KeyAlgorithm::EcP256, "a")
        .unwrap();
    let b = tokens
        .generate_key(&serial, &user(), KeyAlgorithm::Sm2, "b")
        .unwrap();
    let cert = vec![0x30, 0x03, 0x02, 0x01, 0x01];
    let chain = vec![vec![0x30, 0x00], vec![0x30, 0x01, 0x00]];
    assert_eq!(
        tokens.store_certificate(&serial, &wrong(), &a.key_id, &cert, &chain),
        Err(TokenError::WrongPin {
            retries_left: Some(9)
        })
    );
    assert_eq!(tokens.keys(&serial).unwrap()[0].certificate, None);
    tokens
        .store_certificate(&serial, &user(), &a.key_id, &cert, &chain)
        .unwrap();
    let keys = tokens.keys(&serial).unwrap();
    assert_eq!(keys[0].certificate.as_deref(), Some(&cert[..]));
    assert_eq!(keys[0].chain, chain);
    assert_eq!(keys[1].certificate, None);

    // Replacing drops the old chain.
    tokens
        .store_certificate(&serial, &user(), &a.key_id, &[0x30, 0x00], &[])
        .unwrap();
    let keys = tokens.keys(&serial).unwrap();
    assert_eq!(keys[0].certificate.as_deref(), Some(&[0x30, 0x00][..]));
    assert!(keys[0].chain.is_empty());

    assert!(matches!(
        tokens.delete_key(&serial, &wrong(), &a.key_id),
        Err(TokenError::WrongPin { .. })
    ));
    tokens.delete_key(&serial, &user(), &a.key_id).unwrap();
    let keys = tokens.keys(&serial).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key_id, b.key_id);
    assert_eq!(
        tokens.sign(&serial, &user(), &a.key_id, b"m"),
        Err(TokenError::NoSuchKey)
    );
    assert_signs(&tokens, &serial, &user(), &keys[0]);
}

#[test]
fn blank_token_takes_only_init() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = SoftTokens::open(dir.path()).unwrap().with_test_kdf();
    let blank = tokens.create_blank_token().unwrap();
    assert!(is_serial(&blank.serial));
    assert_eq!(
        blank,
        TokenInfo {
            serial: blank.serial.clone(),
            initialized: false,
            label: BLANK_LABEL.into(),
            manufacturer: "CertHall".into(),
            model: "软证书 (Soft Token)".into(),
            pin_retries_left: None,
            pin_locked: false,
        }
    );
    assert_eq!(tokens.tokens().unwrap(), vec![blank.clone()]);
    assert_eq!(tokens.token(&blank.serial).unwrap(), blank);
    let serial = blank.serial;
    assert!(tokens.keys(&serial).unwrap().is_empty());
    let no = Err(TokenError::NotInitialized);
    assert_eq!(tokens.verify_pin(&serial, &user()), no);
    assert_eq!(tokens.change_pin(&serial, &user(), &user()), no);
    assert_eq!(tokens.unblock_pin(&serial, &Pin::new(SO), &user()), no);
    assert_eq!(
        tokens.generate_key(&serial, &user(), KeyAlgorithm::Sm2, "k"),
        Err(TokenError::NotInitialized)
    );
    assert_eq!(
        tokens.sign(&serial, &user(), &[1; 16], b"m"),
        Err(TokenError::NotInitialized)
    );
    assert_eq!(
        tokens.store_certificate(&serial, &user(), &[1; 16], b"c", &[]),
        no
    );
    assert_eq!(tokens.delete_key(&serial, &user(), &[1; 16]), no);

    // Refusals leave it blank.
    for (label, so, pin) in [
        ("x", "12", USER),
        ("x", SO, ""),
        ("", SO, USER),
        ("\u{7}", SO, USER),
        (&"长".repeat(11), SO, USER),
    ] {
        assert!(matches!(
            tokens.init_token(&serial, label, &Pin::new(so), &Pin::new(pin)),
            Err(TokenError::PinPolicy(_) | TokenError::BadRequest(_))
        ));
    }
    assert!(!tokens.token(&serial).unwrap().initialized);

    // 32 bytes of label is the most.
    let label = format!("{}ab", "长".repeat(10));
    let info = tokens
        .init_token(&serial, &label, &Pin::new(SO), &user())
        .unwrap();
    assert_eq!(info.serial, serial);
    assert!(info.initialized);
    assert_eq!(info.label, label);
    assert_eq!(info.pin_retries_left, Some(MAX_PIN_TRIES));
    assert_eq!(
        tokens.init_token(&serial, "again", &Pin::new(SO), &user()),
        Err(TokenError::AlreadyInitialized)
    );
    // The same scheme as a token created initialised: the user PIN
    // signs, the SO PIN unwraps the same master key.
    let key = tokens
        .generate_key(&serial, &user(), KeyAlgorithm::Sm2, "k")
        .unwrap();
    assert_signs(&tokens, &serial, &user(), &key);
    let new = Pin::new("24681357");
    tokens.unblock_pin(&serial, &Pin::new(SO), &new).unwrap();
    assert_signs(&tokens, &serial, &new, &key);
    let file = tokens.load(&serial).unwrap();
    assert_eq!(file.user_pin.as_ref().unwrap().kdf, Kdf::TEST);
    let text = fs::read_to_string(tokens.path(&serial).unwrap()).unwrap();
    assert!(!text.contains(USER) && !text.contains(SO));
}

#[test]
fn keep_blank_token() {
    let dir = tempfile::tempdir().unwrap();
    let plain = SoftTokens::open(dir.path()).unwrap().with_test_kdf();
    assert!(plain.tokens().unwrap().is_empty());
    let tokens = SoftTokens::open(dir.path())
        .unwrap()
        .with_test_kdf()
        .keep_blank_token(true);
    let first = tokens.tokens().unwrap();
    assert_eq!(first.len(), 1);
    assert!(!first[0].initialized);
    assert_eq!(first[0].label, BLANK_LABEL);
    // Listing again does not make another.
    assert_eq!(tokens.tokens().unwrap(), first);
    assert_eq!(tokens.ensure_blank_token().unwrap(), first[0]);
    tokens
        .init_token(&first[0].serial, "制证", &Pin::new(SO), &user())
        .unwrap();
    let second = tokens.tokens().unwrap();
    assert_eq!(second.len(), 2);
    let blank: Vec<_> = second.iter().filter(|t| !t.initialized).collect();
    assert_eq!(blank.len(), 1);
    assert_ne!(blank[0].serial, first[0].serial);
    // Without the option, ensure_blank_token still makes one on demand.
    let other = tempfile::tempdir().unwrap();
    let plain = SoftTokens::open(other.path()).unwrap();
    let made = plain.ensure_blank_token().unwrap();
    assert_eq!(plain.ensure_blank_token().unwrap(), made);
}

#[test]
fn half_blank_files_are_refused() {
    let (_dir, tokens, serial) = setup();
    let path = tokens.path(&serial).unwrap();
    let original: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let mut json = original.clone();
    json["so_pin"] = serde_json::Value::Null;
    fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(matches!(tokens.keys(&serial), Err(TokenError::Module(_))));
    // A blank token cannot hold keys.
    fs::write(&path, serde_json::to_vec(&original).unwrap()).unwrap();
    tokens
        .generate_key(&serial, &user(), KeyAlgorithm::EcP256, "k")
        .unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    json["so_pin"] = serde_json::Value::Null;
    json["user_pin"] = serde_json::Value::Null;
    fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(matches!(tokens.keys(&serial), Err(TokenError::Module(_))));
}

#[test]
fn corrupt_files_are_skipped() {
    let (_dir, tokens, good) = setup();
    let other = tokens
        .create_token("second", &user(), &Pin::new(SO))
        .unwrap()
        .serial;
    let newer = tokens
        .create_token("third", &user(), &Pin::new(SO))
        .unwrap()
        .serial;
    fs::write(tokens.path(&other).unwrap(), b"{ not json").unwrap();
    let mut json: serde_json::Value =
        serde_json::from_slice(&fs::read(tokens.path(&newer).unwrap()).unwrap()).unwrap();
    json["version"] = 2.into();
    fs::write(
        tokens.path(&newer).unwrap(),
        serde_json::to_vec(&json).unwrap(),
    )
    .unwrap();
    // Stray files are ignored.
    fs::write(tokens.dir().join("notes.txt"), b"hello").unwrap();

    let list = tokens.tokens().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].serial, good);
    assert!(matches!(tokens.keys(&other), Err(TokenError::Module(_))));
    assert!(matches!(
        tokens.verify_pin(&newer, &user()),
        Err(TokenError::Module(m)) if m.contains("version 2")
    ));
    tokens.verify_pin(&good, &user()).unwrap();
}

#[test]
fn tampered_files_are_refused() {
    let (_dir, tokens, serial) = setup();
    let key = tokens
        .generate_key(&serial, &user(), KeyAlgorithm::EcP256, "k")
        .unwrap();
    let path = tokens.path(&serial).unwrap();
    let original: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();

    // A file renamed to another serial.
    let mut json = original.clone();
    json["serial"] = "0123456789abcdef".into();
    fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(matches!(tokens.keys(&serial), Err(TokenError::Module(_))));

    // A KDF that would eat the machine.
    let mut json = original.clone();
    json["user_pin"]["kdf"]["log_n"] = 40.into();
    fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(matches!(tokens.keys(&serial), Err(TokenError::Module(_))));

    // A private key moved under another id does not decrypt.
    let mut json = original.clone();
    json["keys"][0]["id"] = hex::encode([7u8; 16]).into();
    fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(matches!(
        tokens.sign(&serial, &user(), &[7u8; 16], b"m"),
        Err(TokenError::Module(m)) if m.contains("damaged")
    ));

    fs::write(&path, serde_json::to_vec(&original).unwrap()).unwrap();
    assert_signs(&tokens, &serial, &user(), &key);
}

#[test]
fn no_clear_secrets_on_disk() {
    let (_dir, tokens, serial) = setup();
    for alg in [
        KeyAlgorithm::EcP256,
        KeyAlgorithm::Sm2,
        KeyAlgorithm::Rsa(2048),
    ] {
        tokens.generate_key(&serial, &user(), alg, "k").unwrap();
    }
    let path = tokens.path(&serial).unwrap();
    let disk = fs::read(&path).unwrap();
    let text = String::from_utf8(disk.clone()).unwrap();

    // Every string in the file, and what it decodes to.
    fn strings(v: &serde_json::Value, out: &mut Vec<Vec<u8>>) {
        match v {
            serde_json::Value::String(s) => {
                out.push(s.as_bytes().to_vec());
                if let Ok(b) = B64_ENGINE.decode(s) {
                    out.push(b);
                }
                if let Ok(b) = hex::decode(s) {
                    out.push(b);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            serde_json::Value::Object(o) => o.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut blobs = vec![disk];
    strings(&serde_json::from_str(&text).unwrap(), &mut blobs);

    let mut file = tokens.load(&serial).unwrap();
    let master = tokens.login(&mut file, Role::User, &user()).unwrap();
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for key in &file.keys {
        let pkcs8 = open_key(&master, &serial, key)
            .unwrap()
            .to_pkcs8_der()
            .unwrap();
        for blob in &blobs {
            assert!(!contains(blob, &pkcs8), "clear PKCS#8 on disk");
        }
        assert!(!text.contains(&B64_ENGINE.encode(&pkcs8[..])));
        assert!(!text.contains(&hex::encode(&pkcs8[..])));
    }
    for blob in &blobs {
        assert!(!contains(blob, &master[..]), "clear master key on disk");
    }
    assert!(!text.contains(USER) && !text.contains(SO));
}
