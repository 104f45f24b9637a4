//! 数字证书登录 through the JSON API, on SQLite and PostgreSQL: every
//! refusal of the acceptance list, each with its audit entry. The key here
//! is a software key signing exactly what the agent signs; the browser test
//! (`login_e2e.rs`) drives the real agent and token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use certhall_agent::csr;
use certhall_ca::crl::Reason;
use certhall_ca::{CaSigner, KeyAlgorithm, SoftwareKey};
use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::cert_login::SignedMessage;
use certhall_testkit::TestApp;
use der::Encode;
use reqwest::Client;
use serde_json::{json, Value};

/// The origin TestApp's CertHall calls itself.
const SITE: &str = "http://127.0.0.1:8080";

struct Key {
    key: SoftwareKey,
    cert: Vec<u8>,
    serial: String,
}

async fn key_and_certificate(app: &TestApp, account: Option<certhall_domain::AccountId>) -> Key {
    key_and_certificate_under(app, "enterprise", account).await
}

async fn key_and_certificate_under(
    app: &TestApp,
    profile: &str,
    account: Option<certhall_domain::AccountId>,
) -> Key {
    let key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
    let spki = key.public_key_info().unwrap().to_der().unwrap();
    let subject = csr::subject_or_label(None, "login").unwrap();
    let der = csr::build(&subject, KeyAlgorithm::EcP256, &spki, |tbs| {
        Ok(key.sign(tbs).unwrap())
    })
    .unwrap();
    let row = support::issue_under(app, profile, &der, account).await;
    Key {
        key,
        cert: row.der,
        serial: row.serial,
    }
}

struct Api {
    base: String,
    client: Client,
    ip: String,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/api/v1{path}", self.base))
            .header("X-Forwarded-For", &self.ip)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn challenge(&self) -> String {
        let (status, body) = self.post("/auth/cert/challenge", json!({})).await;
        assert_eq!(status, 200, "{body}");
        body["challenge"].as_str().unwrap().to_owned()
    }

    /// Signs `challenge` for `origin` with `key` and logs in.
    async fn login(&self, key: &Key, challenge: &str, origin: &str, signed: &str) -> (u16, Value) {
        let message = SignedMessage {
            purpose: "login".into(),
            origin: origin.into(),
            challenge: signed.into(),
        }
        .to_bytes();
        let signature = key.key.sign(&message).unwrap();
        self.post(
            "/auth/cert/login",
            json!({
                "challenge": challenge,
                "certificate": B64.encode(&key.cert),
                "signed_data": B64.encode(&message),
                "signature": B64.encode(signature),
            }),
        )
        .await
    }
}

fn refused(answer: (u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    assert!(
        answer.1["message"]
            .as_str()
            .unwrap()
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "{}",
        answer.1
    );
}

async fn failed_logins(app: &TestApp) -> Vec<Value> {
    certhall_store::audit::recent(&app.db.store, Some(AuditEvent::LoginFailed.as_str()), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .filter(|d: &Value| d["method"] == "certificate")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_login_and_its_refusals() {
    for app in TestApp::each().await {
        let backend = app.backend();
        let server = app.serve().await;
        let api = Api {
            base: server.url(""),
            client: Client::new(),
            ip: "198.51.100.7".into(),
        };
        let account = support::account(&app, "13900000001").await;
        let key = key_and_certificate(&app, Some(account)).await;

        // Success: the same kind of session as SMS login.
        let c = api.challenge().await;
        let (status, body) = api.login(&key, &c, SITE, &c).await;
        assert_eq!(status, 200, "{backend}: {body}");
        assert_eq!(body["account_id"], account.0);
        let me = api
            .client
            .get(server.url("/api/v1/me"))
            .bearer_auth(body["token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["account_id"], account.0);

        // Replay of the same challenge.
        refused(
            api.login(&key, &c, SITE, &c).await,
            409,
            "cert_challenge_used",
        );
        // A challenge nobody issued.
        refused(
            api.login(
                &key,
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                SITE,
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            )
            .await,
            401,
            "cert_challenge_invalid",
        );
        // Expired challenge (2 minutes).
        let c = api.challenge().await;
        app.clock.advance(Duration::from_secs(121));
        refused(
            api.login(&key, &c, SITE, &c).await,
            401,
            "cert_challenge_expired",
        );
        // Signature for another site, for another challenge, or forged.
        let c = api.challenge().await;
        refused(
            api.login(&key, &c, "https://evil.example", &c).await,
            401,
            "cert_bad_signature",
        );
        let c = api.challenge().await;
        let other = api.challenge().await;
        refused(
            api.login(&key, &c, SITE, &other).await,
            401,
            "cert_bad_signature",
        );
        let stranger = Key {
            key: SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap(),
            cert: key.cert.clone(),
            serial: key.serial.clone(),
        };
        let c = api.challenge().await;
        refused(
            api.login(&stranger, &c, SITE, &c).await,
            401,
            "cert_bad_signature",
        );
        // ...and the challenge of a refused login is used up.
        refused(
            api.login(&key, &c, SITE, &c).await,
            409,
            "cert_challenge_used",
        );

        // A certificate CertHall did not issue (a tampered copy of ours).
        let mut tampered = Key {
            key: SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap(),
            cert: key.cert.clone(),
            serial: key.serial.clone(),
        };
        let last = tampered.cert.len() - 1;
        tampered.cert[last] ^= 0x55;
        let c = api.challenge().await;
        refused(
            api.login(&tampered, &c, SITE, &c).await,
            401,
            "cert_unknown",
        );
        tampered.cert = b"not a certificate".to_vec();
        let c = api.challenge().await;
        refused(
            api.login(&tampered, &c, SITE, &c).await,
            401,
            "cert_unknown",
        );

        // A certificate bound to no account.
        let unbound = key_and_certificate(&app, None).await;
        let c = api.challenge().await;
        refused(
            api.login(&unbound, &c, SITE, &c).await,
            401,
            "cert_not_bound",
        );

        // A certificate whose key usage excludes signatures (an
        // encryption certificate) does not log in.
        let mut encryption = certhall_ca::profile::Profile::enterprise();
        encryption.name = "encryption".into();
        encryption.key_usage = vec![certhall_ca::profile::KeyUsageName::KeyEncipherment];
        app.services
            .ca_save_profile(&encryption, false, Actor::Cli("test".into()))
            .await
            .unwrap();
        let enc = key_and_certificate_under(&app, "encryption", Some(account)).await;
        let c = api.challenge().await;
        refused(
            api.login(&enc, &c, SITE, &c).await,
            401,
            "cert_not_for_login",
        );

        // The key refused the PIN (reported by the page): audited, the
        // challenge is used up.
        let c = api.challenge().await;
        let (status, body) = api
            .post(
                "/auth/cert/failure",
                json!({ "challenge": c, "code": "wrong_pin", "retries_left": 7 }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["code"], "key_wrong_pin");
        assert_eq!(body["message"], "UKey PIN 码错误，还可尝试 7 次。");
        // The same challenge cannot be reported twice.
        refused(
            api.post(
                "/auth/cert/failure",
                json!({ "challenge": c, "code": "wrong_pin" }),
            )
            .await,
            409,
            "cert_challenge_used",
        );
        refused(
            api.login(&key, &c, SITE, &c).await,
            409,
            "cert_challenge_used",
        );

        // A relay that presents a signature made for its own site, with
        // Host and Origin headers naming that site, is refused: accepted
        // origins come from configuration only.
        let c = api.challenge().await;
        let message = SignedMessage {
            purpose: "login".into(),
            origin: "https://relay.example".into(),
            challenge: c.clone(),
        }
        .to_bytes();
        let r = api
            .client
            .post(server.url("/api/v1/auth/cert/login"))
            .header("Host", "relay.example")
            .header("Origin", "https://relay.example")
            .header("X-Forwarded-For", &api.ip)
            .json(&json!({
                "challenge": c,
                "certificate": B64.encode(&key.cert),
                "signed_data": B64.encode(&message),
                "signature": B64.encode(key.key.sign(&message).unwrap()),
            }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        refused((status, r.json().await.unwrap()), 401, "cert_bad_signature");

        // Another site cannot make browsers ask for challenges with a plain
        // form post (no JSON body: refused before any row is written).
        let r = api
            .client
            .post(server.url("/api/v1/auth/cert/challenge"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Forwarded-For", &api.ip)
            .body("a=1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);

        // Revoked.
        app.services
            .ca_revoke(
                &unbound.serial,
                Reason::KeyCompromise,
                Actor::Cli("test".into()),
                None,
            )
            .await
            .unwrap();
        let c = api.challenge().await;
        refused(api.login(&unbound, &c, SITE, &c).await, 401, "cert_revoked");

        // Expired (the profile gives 365 days).
        app.clock.advance(Duration::from_secs(366 * 86_400));
        let c = api.challenge().await;
        let answer = api.login(&key, &c, SITE, &c).await;
        refused(answer.clone(), 401, "cert_expired");
        assert!(answer.1["message"].as_str().unwrap().contains("过期"));

        // Every refusal left an audit entry with its reason.
        let reasons: Vec<String> = failed_logins(&app)
            .await
            .iter()
            .map(|d| d["reason"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            !reasons.iter().any(|r| r == "cert_challenge_invalid"),
            "{backend}: unknown challenges are logged, not audited"
        );
        for code in [
            "cert_challenge_used",
            "cert_challenge_expired",
            "cert_bad_signature",
            "cert_unknown",
            "cert_not_bound",
            "cert_not_for_login",
            "key_wrong_pin",
            "cert_revoked",
            "cert_expired",
        ] {
            assert!(
                reasons.iter().any(|r| r == code),
                "{backend}: no audit for {code}: {reasons:?}"
            );
        }
        certhall_store::audit::recent(&app.db.store, Some(AuditEvent::LoginSucceeded.as_str()), 10)
            .await
            .unwrap()
            .iter()
            .find(|e| e.data.contains("\"certificate\"") && e.data.contains(&key.serial))
            .unwrap_or_else(|| panic!("{backend}: no audited certificate login"));
        app.services.verify_audit_chain().await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_are_rate_limited_per_ip() {
    for app in TestApp::each().await {
        let server = app.serve().await;
        let api = Api {
            base: server.url(""),
            client: Client::new(),
            ip: "203.0.113.9".into(),
        };
        for _ in 0..certhall_domain::cert_login::CHALLENGES_PER_IP_PER_HOUR {
            api.challenge().await;
        }
        refused(
            api.post("/auth/cert/challenge", json!({})).await,
            429,
            "cert_challenge_limit",
        );
        // Another address is not affected; an hour later this one isn't either.
        let other = Api {
            ip: "203.0.113.10".into(),
            ..api
        };
        other.challenge().await;
        app.clock.advance(Duration::from_secs(3601));
        let again = Api {
            ip: "203.0.113.9".into(),
            ..other
        };
        again.challenge().await;
    }
}
