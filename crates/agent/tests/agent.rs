//! The agent against real tokens: a SoftHSM2 token through PKCS#11 and a
//! software token, driven through the agent's HTTP API exactly as a page
//! (or a key vendor's test) would. Requests, certificates and signatures
//! are checked by OpenSSL and by the CA engine's parser.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use certhall_domain::cert_login::SignedMessage;
use der::Decode;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use support::{openssl, AgentUnderTest, Backend, ORIGIN, PIN, SO_PIN};

const CHALLENGE: &str = "c2VydmVyLWNoYWxsZW5nZS0xMjM0NTY3ODkwYWJj";

async fn post(agent: &AgentUnderTest, path: &str, body: Value) -> (StatusCode, Value) {
    let r = Client::new()
        .post(agent.path(path))
        .header("Origin", ORIGIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

async fn tokens(agent: &AgentUnderTest) -> Value {
    let r = Client::new()
        .get(format!("{}/v1/tokens", agent.url))
        .header("Origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], ORIGIN);
    let body: Value = r.json().await.unwrap();
    body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == agent.token_id.as_str())
        .cloned()
        .unwrap()
}

/// Generates a key, checks its CSR with OpenSSL, has OpenSSL's test CA
/// certify it and writes the certificate back. Returns the key id.
async fn key_with_certificate(agent: &AgentUnderTest, algorithm: &str, label: &str) -> String {
    let (status, body) = post(
        agent,
        "/keys",
        json!({ "pin": PIN, "algorithm": algorithm, "label": label, "subject": format!("C=CN,O=测试单位,CN={label}") }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let key_id = body["key"]["key_id"].as_str().unwrap().to_owned();
    assert_eq!(body["key"]["algorithm"], algorithm);
    let dir = agent.dir.path();
    std::fs::write(
        dir.join(format!("{label}.csr")),
        body["csr"].as_str().unwrap(),
    )
    .unwrap();
    let (ok, out) = openssl(
        dir,
        &["req", "-verify", "-noout", "-in", &format!("{label}.csr")],
    );
    assert!(ok, "openssl req -verify: {out}");
    certhall_ca::csr::verify(body["csr"].as_str().unwrap().as_bytes()).unwrap();

    if !dir.join("ca.pem").exists() {
        let (ok, out) = openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=Agent Test CA",
                "-days",
                "30",
            ],
        );
        assert!(ok, "{out}");
    }
    let (ok, out) = openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{label}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "10",
            "-out",
            &format!("{label}.pem"),
        ],
    );
    assert!(ok, "{out}");
    let cert = std::fs::read_to_string(dir.join(format!("{label}.pem"))).unwrap();
    let ca = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    let (status, body) = post(
        agent,
        &format!("/keys/{key_id}/certificate"),
        json!({ "pin": PIN, "certificate": cert, "chain": [ca] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    key_id
}

async fn sign(agent: &AgentUnderTest, key_id: &str, pin: &str) -> (StatusCode, Value) {
    post(
        agent,
        &format!("/keys/{key_id}/sign"),
        json!({ "pin": pin, "challenge": CHALLENGE }),
    )
    .await
}

/// Checks a signature answer: the signed data names our origin and
/// challenge, and the signature verifies with the certificate's key.
fn assert_signature(body: &Value) {
    let signed = B64.decode(body["signed_data"].as_str().unwrap()).unwrap();
    let message = SignedMessage::parse(&signed).unwrap();
    assert_eq!(message.origin, ORIGIN);
    assert_eq!(message.challenge, CHALLENGE);
    assert_eq!(message.purpose, "login");
    let cert = x509_cert::Certificate::from_der(
        &B64.decode(body["certificate"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let sig = B64.decode(body["signature"].as_str().unwrap()).unwrap();
    certhall_ca::csr::verify_signature(
        &cert.tbs_certificate.subject_public_key_info,
        &signed,
        &sig,
    )
    .unwrap();
}

async fn token_suite(backend: Backend) {
    let agent = AgentUnderTest::start(backend, "测试UKey", &[ORIGIN]).await;
    let token = tokens(&agent).await;
    assert_eq!(token["label"], "测试UKey");
    assert_eq!(token["pin"]["locked"], false);
    assert_eq!(token["pin"]["retries_left"], 10);
    assert_eq!(token["certificates"].as_array().unwrap().len(), 0);

    // Key generation, CSR, certificate import, listing, signing.
    let p256 = key_with_certificate(&agent, "p256", "ec-key").await;
    let rsa = key_with_certificate(&agent, "rsa2048", "rsa-key").await;
    let token = tokens(&agent).await;
    let certs = token["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2, "{token}");
    let ec = certs.iter().find(|c| c["key_id"] == p256.as_str()).unwrap();
    assert_eq!(ec["common_name"], "ec-key");
    assert!(ec["subject"].as_str().unwrap().contains("测试单位"), "{ec}");
    assert_eq!(ec["issuer"], "CN=Agent Test CA");
    assert_eq!(ec["key_algorithm"], "p256");
    assert_eq!(ec["chain"].as_array().unwrap().len(), 1);
    for key in [&p256, &rsa] {
        let (status, body) = sign(&agent, key, PIN).await;
        assert_eq!(status, 200, "{body}");
        assert_signature(&body);
    }
    // Writing a certificate again replaces it (one certificate, one chain).
    let cert = std::fs::read_to_string(agent.dir.path().join("ec-key.pem")).unwrap();
    let ca = std::fs::read_to_string(agent.dir.path().join("ca.pem")).unwrap();
    let (status, body) = post(
        &agent,
        &format!("/keys/{p256}/certificate"),
        json!({ "pin": PIN, "certificate": cert, "chain": [ca] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = tokens(&agent).await;
    let ec = token["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["key_id"] == p256.as_str())
        .collect::<Vec<_>>();
    assert_eq!(ec.len(), 1, "{token}");
    assert_eq!(ec[0]["chain"].as_array().unwrap().len(), 1, "{token}");

    if backend == Backend::SoftHsm {
        // Many vendor UKeys keep no public-key object: the certificate is
        // then the key pair's only public trace. Remove ours and the key
        // is still listed and still signs.
        remove_public_key_object(&agent, &p256);
        let token = tokens(&agent).await;
        assert!(
            token["certificates"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["key_id"] == p256.as_str()),
            "{token}"
        );
        let (status, body) = sign(&agent, &p256, PIN).await;
        assert_eq!(status, 200, "{body}");
        assert_signature(&body);
    }

    if backend == Backend::Soft {
        // SM2 lives on the software token (PKCS#11 has no SM2 mechanism).
        let (status, body) = post(
            &agent,
            "/keys",
            json!({ "pin": PIN, "algorithm": "sm2", "label": "sm2-key" }),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let verified = certhall_ca::csr::verify(body["csr"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(verified.key, certhall_ca::KeyAlgorithm::Sm2);
    } else {
        let (status, body) = post(
            &agent,
            "/keys",
            json!({ "pin": PIN, "algorithm": "sm2", "label": "sm2-key" }),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("unsupported"))
        );
    }

    // A certificate for another key is refused; nothing changes.
    let wrong = std::fs::read_to_string(agent.dir.path().join("ec-key.pem")).unwrap();
    let (status, body) = post(
        &agent,
        &format!("/keys/{rsa}/certificate"),
        json!({ "pin": PIN, "certificate": wrong }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("不属于该密钥"),
        "{body}"
    );

    // Private-key operations without a PIN are refused.
    for (path, body) in [
        (
            format!("/keys/{p256}/sign"),
            json!({ "challenge": CHALLENGE }),
        ),
        (
            format!("/keys/{p256}/sign"),
            json!({ "pin": "", "challenge": CHALLENGE }),
        ),
        ("/keys".to_owned(), json!({ "algorithm": "p256" })),
        (format!("/keys/{p256}/delete"), json!({})),
        (
            format!("/keys/{p256}/certificate"),
            json!({ "certificate": wrong }),
        ),
    ] {
        let (status, answer) = post(&agent, &path, body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("pin_required")),
            "{path}"
        );
    }

    // PIN change: the old PIN stops working, the new one works.
    let (status, body) = post(
        &agent,
        "/pin/change",
        json!({ "pin": PIN, "new_pin": "654321" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = sign(&agent, &p256, PIN).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("wrong_pin"))
    );
    assert_eq!(body["retries_left"], 9);
    let (status, body) = sign(&agent, &p256, "654321").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &agent,
        "/pin/change",
        json!({ "pin": "654321", "new_pin": "12" }),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("pin_policy"))
    );

    // Wrong PINs count down to the lock; then even the right PIN fails.
    for left in (1..=9).rev() {
        let (status, body) = post(&agent, "/pin/verify", json!({ "pin": "000000" })).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("wrong_pin")),
            "{body}"
        );
        assert_eq!(body["retries_left"], left, "{body}");
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains(&format!("还可尝试 {left} 次")));
        assert_eq!(tokens(&agent).await["pin"]["retries_left"], left);
    }
    let (status, body) = post(&agent, "/pin/verify", json!({ "pin": "000000" })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::LOCKED, Some("pin_locked")),
        "{body}"
    );
    let (status, body) = sign(&agent, &p256, "654321").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::LOCKED, Some("pin_locked"))
    );
    let token = tokens(&agent).await;
    assert_eq!(token["pin"]["locked"], true);
    assert_eq!(token["pin"]["retries_left"], 0);

    // The counter unblocks with the SO PIN; a wrong SO PIN is counted.
    let (status, body) = post(
        &agent,
        "/pin/unblock",
        json!({ "so_pin": "87654321", "new_pin": "111111" }),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("wrong_so_pin")),
        "{body}"
    );
    let (status, body) = post(
        &agent,
        "/pin/unblock",
        json!({ "so_pin": SO_PIN, "new_pin": "111111" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = tokens(&agent).await;
    assert_eq!(token["pin"]["locked"], false);
    assert_eq!(token["pin"]["retries_left"], 10);
    let (status, body) = sign(&agent, &p256, "111111").await;
    assert_eq!(status, 200, "{body}");
    assert_signature(&body);

    // Deleting a key removes it and its certificate.
    let (status, body) = post(
        &agent,
        &format!("/keys/{rsa}/delete"),
        json!({ "pin": "111111" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = tokens(&agent).await;
    assert!(token["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["key_id"] != rsa.as_str()));
    let (status, body) = sign(&agent, &rsa, "111111").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_such_certificate"))
    );

    // An unknown token.
    let r = Client::new()
        .post(format!("{}/v1/tokens/pkcs11-nope/pin/verify", agent.url))
        .header("Origin", ORIGIN)
        .json(&json!({ "pin": "111111" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "token_absent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softhsm2_token_through_pkcs11() {
    if support::softhsm_available() {
        token_suite(Backend::SoftHsm).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn software_token() {
    token_suite(Backend::Soft).await;
}

/// Every token the agent lists.
async fn all_tokens(agent: &AgentUnderTest) -> Vec<Value> {
    let body: Value = Client::new()
        .get(format!("{}/v1/tokens", agent.url))
        .header("Origin", ORIGIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["tokens"].as_array().unwrap().clone()
}

/// POSTs to `rest` under token `id` (not the agent's own token).
async fn post_to(agent: &AgentUnderTest, id: &str, rest: &str, body: Value) -> (StatusCode, Value) {
    let r = Client::new()
        .post(format!("{}/v1/tokens/{id}{rest}", agent.url))
        .header("Origin", ORIGIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

/// The SO PIN CertHall gives a blank token (not the suite's default, so
/// that only the initialisation can have set it).
const NEW_SO_PIN: &str = "Zq7-4410xY";

/// Production at the counter (制证): a blank token is listed, refuses every
/// operation, is initialised through the API with a label and both PINs,
/// and then takes a key, its certificate and a signature with the new user
/// PIN; the SO PIN set at initialisation counts and unblocks.
async fn init_suite(backend: Backend) {
    let mut agent = AgentUnderTest::start(backend, "已有UKey", &[ORIGIN]).await;
    let blank_id = match backend {
        Backend::Soft => agent.new_blank_soft_token(),
        // SoftHSM2 always offers one free slot, with no serial number.
        Backend::SoftHsm => all_tokens(&agent)
            .await
            .iter()
            .find(|t| t["initialized"] == false)
            .unwrap_or_else(|| panic!("no blank SoftHSM2 token listed"))["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    if backend == Backend::SoftHsm {
        assert!(blank_id.starts_with("pkcs11-slot"), "{blank_id}");
    }
    let listed = all_tokens(&agent).await;
    let existing = listed
        .iter()
        .find(|t| t["id"] == agent.token_id.as_str())
        .unwrap();
    assert_eq!(existing["initialized"], true);
    let blank = listed
        .iter()
        .find(|t| t["id"] == blank_id.as_str())
        .unwrap();
    assert_eq!(blank["initialized"], false, "{blank}");
    assert_eq!(blank["keys"], json!([]));
    assert_eq!(blank["certificates"], json!([]));
    assert_eq!(
        blank["pin"],
        json!({ "locked": false, "retries_left": null })
    );

    // Nothing but init on a blank token.
    let key = "00112233445566778899aabbccddeeff";
    for (rest, body) in [
        ("/pin/verify", json!({ "pin": PIN })),
        ("/pin/change", json!({ "pin": PIN, "new_pin": "654321" })),
        (
            "/pin/unblock",
            json!({ "so_pin": SO_PIN, "new_pin": "654321" }),
        ),
        ("/keys", json!({ "pin": PIN, "algorithm": "p256" })),
        (&format!("/keys/{key}/delete"), json!({ "pin": PIN })),
        (
            &format!("/keys/{key}/sign"),
            json!({ "pin": PIN, "challenge": CHALLENGE }),
        ),
    ] {
        let (status, answer) = post_to(&agent, &blank_id, rest, body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::CONFLICT, Some("token_not_initialized")),
            "{rest}: {answer}"
        );
        assert_eq!(answer["message"], "这把 UKey 尚未初始化。");
    }

    // Refused requests leave the token blank.
    let too_long = "长".repeat(11); // 33 bytes
    for (body, code) in [
        (
            json!({ "label": "制证", "so_pin": NEW_SO_PIN, "pin": "12" }),
            "pin_policy",
        ),
        (
            json!({ "label": "制证", "so_pin": "短", "pin": PIN }),
            "pin_policy",
        ),
        (json!({ "label": "制证", "pin": PIN }), "pin_policy"),
        (
            json!({ "label": too_long, "so_pin": NEW_SO_PIN, "pin": PIN }),
            "invalid_request",
        ),
        (
            json!({ "label": "  ", "so_pin": NEW_SO_PIN, "pin": PIN }),
            "invalid_request",
        ),
        (
            json!({ "label": "制证", "so_pin": NEW_SO_PIN, "pin": PIN, "algorithm": "p256" }),
            "invalid_request",
        ),
    ] {
        let (status, answer) = post_to(&agent, &blank_id, "/init", body.clone()).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{body}: {answer}"
        );
        if body["label"] == too_long.as_str() {
            assert_eq!(answer["message"], "标签过长（最多 32 字节）");
        }
    }
    let still = all_tokens(&agent).await;
    let blank = still.iter().find(|t| t["id"] == blank_id.as_str()).unwrap();
    assert_eq!(blank["initialized"], false, "{blank}");

    // An initialised token is never initialised again.
    let (status, answer) = post_to(
        &agent,
        &agent.token_id,
        "/init",
        json!({ "label": "覆盖", "so_pin": SO_PIN, "pin": PIN }),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::CONFLICT, Some("token_initialized")),
        "{answer}"
    );
    assert_eq!(
        answer["message"],
        "这把 UKey 已初始化，不能再次初始化；请换一把空白 UKey。"
    );
    assert_eq!(tokens(&agent).await["label"], "已有UKey");

    // Initialise: 10 CJK characters and 2 letters are exactly 32 bytes.
    let label = format!("{}ab", "制".repeat(10));
    let (status, answer) = post_to(
        &agent,
        &blank_id,
        "/init",
        json!({ "label": label, "so_pin": NEW_SO_PIN, "pin": PIN }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let token = &answer["token"];
    assert_eq!(token["initialized"], true, "{token}");
    assert_eq!(token["label"], label.as_str());
    assert_eq!(token["pin"], json!({ "locked": false, "retries_left": 10 }));
    assert_eq!(token["keys"], json!([]));
    let id = token["id"].as_str().unwrap().to_owned();
    match backend {
        // The serial stays.
        Backend::Soft => assert_eq!(id, blank_id),
        // SoftHSM2 gives the token its serial at C_InitToken.
        Backend::SoftHsm => {
            assert_ne!(id, blank_id);
            assert_eq!(token["serial"].as_str().unwrap().len(), 16, "{token}");
            // The old name is gone (it named the slot while it was blank).
            let (status, answer) = post_to(
                &agent,
                &blank_id,
                "/init",
                json!({ "label": "再来", "so_pin": NEW_SO_PIN, "pin": PIN }),
            )
            .await;
            assert_eq!(
                (status, answer["code"].as_str()),
                (StatusCode::NOT_FOUND, Some("token_absent")),
                "{answer}"
            );
            // …and a new free slot is offered.
            let after = all_tokens(&agent).await;
            assert!(after.iter().any(|t| t["initialized"] == false), "{after:?}");
        }
    }
    let (status, answer) = post_to(
        &agent,
        &id,
        "/init",
        json!({ "label": "再来", "so_pin": NEW_SO_PIN, "pin": PIN }),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::CONFLICT, Some("token_initialized")),
        "{answer}"
    );

    // Produce onto it: key, request, certificate, signature.
    agent.token_id = id;
    let p256 = key_with_certificate(&agent, "p256", "produced").await;
    let (status, body) = sign(&agent, &p256, PIN).await;
    assert_eq!(status, 200, "{body}");
    assert_signature(&body);
    if backend == Backend::Soft {
        let (status, body) = post(
            &agent,
            "/keys",
            json!({ "pin": PIN, "algorithm": "sm2", "label": "sm2-key" }),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let verified = certhall_ca::csr::verify(body["csr"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(verified.key, certhall_ca::KeyAlgorithm::Sm2);
    }

    // The SO PIN is the one given at initialisation: a wrong one counts,
    // the right one unblocks; the user PIN still works.
    let (status, body) = post(
        &agent,
        "/pin/unblock",
        json!({ "so_pin": SO_PIN, "new_pin": "111111" }),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("wrong_so_pin")),
        "{body}"
    );
    assert_eq!(body["retries_left"], 9);
    let (status, body) = post(
        &agent,
        "/pin/unblock",
        json!({ "so_pin": SO_PIN, "new_pin": "111111" }),
    )
    .await;
    assert_eq!(body["retries_left"], 8, "{body}");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = post(&agent, "/pin/verify", json!({ "pin": PIN })).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &agent,
        "/pin/unblock",
        json!({ "so_pin": NEW_SO_PIN, "new_pin": "111111" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = sign(&agent, &p256, "111111").await;
    assert_eq!(status, 200, "{body}");
    assert_signature(&body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softhsm2_blank_token_is_initialised_through_the_api() {
    if support::softhsm_available() {
        init_suite(Backend::SoftHsm).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blank_software_token_is_initialised_through_the_api() {
    init_suite(Backend::Soft).await;
}

/// `--keep-blank-soft-token` (demo mode): there is always one blank
/// software token to produce onto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blank_software_token_is_kept() {
    let agent = AgentUnderTest::start_with(
        Backend::Soft,
        "演示UKey",
        &[ORIGIN],
        "127.0.0.1:0",
        &["--keep-blank-soft-token"],
    )
    .await;
    let blanks = |list: Vec<Value>| -> Vec<Value> {
        list.into_iter()
            .filter(|t| t["initialized"] == false)
            .collect()
    };
    let first = blanks(all_tokens(&agent).await);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["label"], "空白UKey");
    assert_eq!(first[0]["backend"], "soft");
    assert_eq!(blanks(all_tokens(&agent).await), first);
    let id = first[0]["id"].as_str().unwrap();
    let (status, answer) = post_to(
        &agent,
        id,
        "/init",
        json!({ "label": "张三的UKey", "so_pin": NEW_SO_PIN, "pin": PIN }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["token"]["id"], id);
    let all = all_tokens(&agent).await;
    assert_eq!(all.len(), 3, "{all:?}");
    let second = blanks(all);
    assert_eq!(second.len(), 1);
    assert_ne!(second[0]["id"], id);
}

/// Origin, Host and size checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_pages_reach_the_agent() {
    let agent = AgentUnderTest::start(Backend::Soft, "origin-test", &[ORIGIN]).await;
    let client = Client::new();
    let tokens_url = format!("{}/v1/tokens", agent.url);

    let r = client
        .get(&tokens_url)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "origin_forbidden");
    assert!(body["message"].as_str().unwrap().contains("不接受"));

    // A browser request without Origin (a link, an image) is refused.
    let r = client
        .get(&tokens_url)
        .header("Sec-Fetch-Mode", "no-cors")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A DNS-rebinding name is refused.
    let r = client
        .get(&tokens_url)
        .header("Host", "attacker.example:17845")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "host_forbidden");
    // A non-browser program (no Origin, no browser headers) may list.
    let r = client.get(&tokens_url).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // Preflight, with Private Network Access.
    let r = client
        .request(reqwest::Method::OPTIONS, agent.path("/pin/verify"))
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .header("Access-Control-Request-Private-Network", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(r.headers()["access-control-allow-private-network"], "true");
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let r = client
        .request(reqwest::Method::OPTIONS, agent.path("/pin/verify"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r
        .headers()
        .get("access-control-allow-private-network")
        .is_none());

    // A forbidden origin cannot even try a PIN (nothing is counted).
    let r = client
        .post(agent.path("/pin/verify"))
        .header("Origin", "https://evil.example")
        .json(&json!({ "pin": "000000" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(tokens(&agent).await["pin"]["retries_left"], 10);

    // Size limit and bad bodies.
    let huge = "A".repeat(100 * 1024);
    let (status, body) = post(&agent, "/pin/verify", json!({ "pin": huge })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    let r = client
        .post(agent.path("/pin/verify"))
        .header("Origin", ORIGIN)
        .body("pin=123456")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_request");
    let (status, body) = post(
        &agent,
        "/keys/00/sign",
        json!({ "pin": PIN, "challenge": "x" }),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

/// Deletes the public-key object of `key_id` from the agent's SoftHSM2
/// token, as a vendor's initialisation tool might never have created it.
fn remove_public_key_object(agent: &AgentUnderTest, key_id: &str) {
    use cryptoki::context::{CInitializeArgs, Pkcs11};
    use cryptoki::object::{Attribute, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    // Read by C_Initialize; this is the only test of this binary that loads
    // the module in-process.
    std::env::set_var("SOFTHSM2_CONF", agent.dir.path().join("softhsm2.conf"));
    let ctx = Pkcs11::new(support::DEBIAN_MODULE).unwrap();
    ctx.initialize(CInitializeArgs::OsThreads).unwrap();
    let slot = ctx.get_slots_with_token().unwrap()[0];
    let session = ctx.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::new(PIN.into())))
        .unwrap();
    let id = hex::decode(key_id).unwrap();
    let found = session
        .find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY), Attribute::Id(id)])
        .unwrap();
    assert_eq!(found.len(), 1);
    session.destroy_object(found[0]).unwrap();
    session.logout().unwrap();
}
