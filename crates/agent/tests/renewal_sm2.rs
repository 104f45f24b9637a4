//! 证书更新 of an SM2 certificate on a software token (SoftHSM2 has no
//! SM2), on SQLite and PostgreSQL: the service's renewal stages driven with
//! the real agent as `static/renew.js` drives them — the old SM2 key signs
//! the challenge (purpose `renew`), a new SM2 key pair is made in the same
//! token, the certificate CertHall issues for it is written and read back,
//! and the old one ends `superseded`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use certhall_domain::audit::Actor;
use certhall_service::renewal::KeyProof;
use certhall_service::RequestMeta;
use certhall_testkit::TestApp;
use reqwest::StatusCode;
use serde_json::json;
use support::{AgentUnderTest, Backend, ORIGIN, PIN, SUBJECT};

const PHONE: &str = "13600000941";
const DAY: Duration = Duration::from_secs(86_400);

/// A new SM2 key pair in the token: (key id, CSR PEM).
async fn sm2_key(agent: &AgentUnderTest, label: &str) -> (String, String) {
    let (status, made) = agent
        .post(
            "/keys",
            json!({ "pin": PIN, "algorithm": "sm2", "label": label }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    (
        made["key"]["key_id"].as_str().unwrap().to_owned(),
        made["csr"].as_str().unwrap().to_owned(),
    )
}

async fn write(agent: &AgentUnderTest, key_id: &str, certificate: &str, chain: &[String]) {
    let (status, body) = agent
        .post(
            &format!("/keys/{key_id}/certificate"),
            json!({ "pin": PIN, "certificate": certificate, "chain": chain }),
        )
        .await;
    assert!(status.is_success(), "{body}");
}

async fn renew_sm2(app: &TestApp) {
    let be = app.backend();
    let s = &app.services;
    let meta = RequestMeta::default();
    s.ca_ensure_demo().await.unwrap();
    let me = support::account(app, PHONE).await;
    let agent = AgentUnderTest::start(Backend::Soft, "国密UKey", &[ORIGIN]).await;
    let t = agent.token().await;
    let token_serial = t["serial"].as_str().unwrap().to_owned();

    // An SM2 certificate of the account on the token.
    let (old_key, csr) = sm2_key(&agent, "签名密钥").await;
    let old = s
        .ca_issue(
            &certhall_service::ca::IssueInput {
                family: certhall_ca::Family::Sm2,
                profile: "enterprise",
                csr: csr.as_bytes(),
                subject: SUBJECT,
                account: Some(me),
                order_id: None,
                predecessor: None,
                ends_by: None,
            },
            Actor::Cli("test".into()),
        )
        .await
        .unwrap();
    let pem = certhall_ca::issue::to_pem(&old.der).unwrap();
    write(&agent, &old_key, &pem, &[]).await;

    // 60 days before expiry: the old key signs the challenge.
    app.clock.set(old.not_after.minus(DAY * 60));
    let challenge = s
        .issue_renewal_challenge(me, &old.serial, &meta)
        .await
        .unwrap()
        .challenge;
    let (status, signed) = agent
        .post(
            &format!("/keys/{old_key}/sign"),
            json!({ "pin": PIN, "challenge": challenge, "purpose": "renew" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let signed_data = B64.decode(signed["signed_data"].as_str().unwrap()).unwrap();
    let signature = B64.decode(signed["signature"].as_str().unwrap()).unwrap();
    s.send_renewal_code(me, &old.serial, &meta).await.unwrap();
    let code = app.latest_code(PHONE).await.unwrap();
    let origins = [ORIGIN.to_owned()];
    let started = s
        .start_renewal(
            me,
            &old.serial,
            &token_serial,
            &code,
            &KeyProof {
                challenge: &challenge,
                signed_data: &signed_data,
                signature: &signature,
                accepted_origins: &origins,
            },
            &meta,
        )
        .await
        .unwrap();
    assert_eq!(started.algorithm, "sm2", "{be}");
    let id = started.renewal.id;

    // The new key pair, its certificate, written and read back.
    let (new_key, new_csr) = sm2_key(&agent, &started.key_label).await;
    let issued = s
        .renewal_csr(me, id, new_csr.as_bytes(), &new_key, &meta)
        .await
        .unwrap();
    write(&agent, &new_key, &issued.certificate_pem, &issued.chain_pem).await;
    let t = agent.token().await;
    let read_back = t["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key_id"] == new_key.as_str())
        .unwrap()["certificate"]
        .as_str()
        .unwrap()
        .to_owned();
    let new = s
        .renewal_written(me, id, &B64.decode(read_back).unwrap(), &meta)
        .await
        .unwrap();
    assert_eq!(new.subject, old.subject, "{be}");
    assert_eq!(new.key_algorithm, old.key_algorithm, "{be}");
    assert_eq!(new.predecessor_serial.as_deref(), Some(old.serial.as_str()));
    let old_now = s.ca_certificate(&old.serial).await.unwrap();
    assert_eq!(
        old_now.revocation.map(|r| r.reason).as_deref(),
        Some("superseded"),
        "{be}"
    );
    let mine: Vec<String> = s
        .my_certificates(me)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.certificate.serial)
        .collect();
    assert!(mine.contains(&new.serial), "{be}: {mine:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sm2_certificate_is_renewed_on_a_software_token() {
    for app in TestApp::each().await {
        renew_sm2(&app).await;
    }
}
