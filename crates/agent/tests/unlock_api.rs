//! Online PIN 解锁 at the agent, on a SoftHSM2 token (PKCS#11) and on a
//! software token: the PIN locked by ten wrong tries; the SO PINs arrive
//! sealed to the agent's one-time key (`certhall_ca::sealed`, as CertHall
//! seals them); a box for another token or without a key is refused; the
//! right one unblocks the PIN with the new PIN and rotates the SO PIN, so
//! the old SO PIN stops working and the new one works.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use certhall_domain::renewal::SoPinRelease;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{AgentUnderTest, Backend, ORIGIN, PIN, SO_PIN};

const NEW_PIN: &str = "246813";
const NEW_SO_PIN: &str = "Nso-4455aa";

/// A one-time key from the agent, and a release sealed to it for `token`.
async fn sealed_release(agent: &AgentUnderTest, token: &str, so_pins: &[&str]) -> String {
    let (status, key) = agent.post("/unlock/key", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{key}");
    let release = SoPinRelease {
        token: token.to_owned(),
        so_pins: so_pins.iter().map(|p| (*p).to_owned()).collect(),
        new_so_pin: NEW_SO_PIN.to_owned(),
    };
    certhall_ca::sealed::seal(
        key["public_key"].as_str().unwrap(),
        token.as_bytes(),
        &serde_json::to_vec(&release).unwrap(),
    )
    .unwrap()
}

async fn unlock_suite(backend: Backend) {
    let agent = AgentUnderTest::start(backend, "解锁测试", &[ORIGIN]).await;
    let token = agent.token().await["serial"].as_str().unwrap().to_owned();

    // Ten wrong PINs lock it; then even the right one is refused.
    let mut last = Value::Null;
    for _ in 0..10 {
        last = agent
            .post("/pin/verify", json!({ "pin": "000000" }))
            .await
            .1;
    }
    assert_eq!(last["code"], "pin_locked", "{backend:?}: {last}");
    let (status, body) = agent.post("/pin/verify", json!({ "pin": PIN })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::LOCKED, Some("pin_locked"))
    );

    // No one-time key yet: nothing to open with.
    let (status, body) = agent
        .post("/unlock", json!({ "sealed": "AAAA", "new_pin": NEW_PIN }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("解锁密钥已失效"));
    // A box sealed for another token does not open here (and the key is
    // used up by the try).
    let other = sealed_release(&agent, "another-token", &[SO_PIN]).await;
    let (status, body) = agent
        .post("/unlock", json!({ "sealed": other, "new_pin": NEW_PIN }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("不是发给这把 UKey"),
        "{body}"
    );
    let (status, _) = agent.post("/pin/verify", json!({ "pin": PIN })).await;
    assert_eq!(status, StatusCode::LOCKED, "{backend:?}: still locked");

    // The right box: the first SO PIN offered is stale, the second is the
    // token's (as after a rotation CertHall never heard of).
    let sealed = sealed_release(&agent, &token, &["Stale-so-99", SO_PIN]).await;
    let (status, body) = agent
        .post("/unlock", json!({ "sealed": sealed, "new_pin": NEW_PIN }))
        .await;
    assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
    assert_eq!(body, json!({ "ok": true, "so_pin_rotated": true }));
    // Used once.
    let (status, _) = agent
        .post("/unlock", json!({ "sealed": sealed, "new_pin": NEW_PIN }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = agent.post("/pin/verify", json!({ "pin": NEW_PIN })).await;
    assert_eq!(status, StatusCode::OK, "{backend:?}: the new PIN: {body}");
    let (status, body) = agent
        .post(
            "/pin/unblock",
            json!({ "so_pin": SO_PIN, "new_pin": "135792" }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("wrong_so_pin")),
        "{backend:?}: the old SO PIN is no longer the token's"
    );
    let (status, body) = agent
        .post(
            "/pin/unblock",
            json!({ "so_pin": NEW_SO_PIN, "new_pin": "135792" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{backend:?}: the new SO PIN: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softhsm2_token_is_unlocked_online() {
    if support::softhsm_available() {
        unlock_suite(Backend::SoftHsm).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn software_token_is_unlocked_online() {
    unlock_suite(Backend::Soft).await;
}
