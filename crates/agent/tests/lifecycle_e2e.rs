//! Browser end-to-end of a certificate's life after production (issue 12),
//! on SQLite and PostgreSQL, with a SoftHSM2 token and the real
//! `certhall-agent`:
//!
//! 1. a key produced for a paid order (the service's production stages and
//!    the agent's HTTP API, exactly as the counter page drives them);
//! 2. 证书激活 on the demo relying platform (`/dev/platform`), which calls
//!    the relying API over HTTP with its own token;
//! 3. 证书更新 60 days before expiry (the clock injected), with a price:
//!    the renewal order paid at step 7 (demo cashier), then the old key
//!    signs CertHall's challenge: a new key pair
//!    and certificate on the same token, the old certificate `superseded`
//!    in OCSP (openssl asks), the activation carried over, the platform
//!    told by a signed webhook it verifies;
//! 4. the PIN locked by wrong tries (the page shows the tries left), then
//!    PIN 解锁 online — refused while another page's release may still
//!    run, then done after it: the new PIN opens the token and the old SO
//!    PIN no longer does;
//! 5. 证书变更 of the enterprise's name: the change order from 介质查询,
//!    the renamed license read by OCR at step 3, the counter's review at
//!    /counter, then the new certificate written onto the same token; the
//!    old one `affiliationChanged` in OCSP, the activation carried, the
//!    platform told (`certificate.changed`);
//! 6. 补办 for a lost key: the certificate revoked (keyCompromise) in
//!    OCSP and the CRL at once, as openssl reads them, and a 补办 order
//!    prefilled from the order of the certificate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use certhall_domain::order::{OrderId, Step};
use certhall_service::production::TokenPresented;
use certhall_service::RequestMeta;
use certhall_testkit::browser::Browser;
use certhall_testkit::fixtures;
use certhall_testkit::TestApp;
use reqwest::Client;
use serde_json::{json, Value};
use support::{AgentUnderTest, Backend};

const APPLICANT: &str = "13600000921";
const PRODUCER: &str = "13700000921";
const DAY: Duration = Duration::from_secs(86_400);
const NEW_PIN: &str = "802613";

async fn agent_call(
    agent: &AgentUnderTest,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let r = Client::new()
        .request(method, format!("{}{path}", agent.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The produced token as the agent lists it now.
async fn token(agent: &AgentUnderTest, serial: &str) -> Value {
    agent
        .all_tokens()
        .await
        .into_iter()
        .find(|t| t["serial"] == serial)
        .unwrap_or_else(|| panic!("token {serial} not listed"))
}

/// 制证 of `order` onto the agent's blank SoftHSM2 slot, through the
/// service's stages and the agent's API as `static/production.js` does.
/// Returns (token id, token serial, user PIN, SO PIN).
async fn produce(
    app: &TestApp,
    agent: &AgentUnderTest,
    order: OrderId,
) -> (String, String, String, String) {
    let s = &app.services;
    let meta = RequestMeta::default();
    // Clear of the code cooldown the fixtures' logins started.
    app.clock.advance(Duration::from_secs(120));
    let mut who = fixtures::operator_named(app, PRODUCER).await;
    s.set_producer(
        &who.username,
        true,
        certhall_domain::audit::Actor::Cli("test".into()),
    )
    .await
    .unwrap();
    who.producer = true;
    let blank = agent
        .all_tokens()
        .await
        .into_iter()
        .find(|t| t["initialized"] == false)
        .expect("SoftHSM2's free slot");
    let started = s
        .production_start(
            &who,
            order,
            &TokenPresented {
                serial: blank["serial"].as_str().unwrap().to_owned(),
                initialized: false,
            },
            &meta,
        )
        .await
        .unwrap();
    let so_pin = started
        .so_pin
        .clone()
        .expect("a blank token gets an SO PIN");
    let (st, init) = agent_call(
        agent,
        reqwest::Method::POST,
        &format!("/v1/tokens/{}/init", blank["id"].as_str().unwrap()),
        json!({ "label": started.attempt.token_label, "so_pin": so_pin, "pin": started.pin }),
    )
    .await;
    assert!((200..300).contains(&st), "init: {init}");
    let t = if init["token"].is_object() {
        &init["token"]
    } else {
        &init
    };
    let (token_id, serial) = (
        t["id"].as_str().unwrap().to_owned(),
        t["serial"].as_str().unwrap().to_owned(),
    );
    s.production_token_initialized(&who, started.attempt.id, &serial, &meta)
        .await
        .unwrap();
    let (st, made) = agent_call(
        agent,
        reqwest::Method::POST,
        &format!("/v1/tokens/{token_id}/keys"),
        json!({ "pin": started.pin, "algorithm": started.attempt.key_kind.as_str(), "label": "签名密钥" }),
    )
    .await;
    assert!((200..300).contains(&st), "keygen: {made}");
    let key_id = made["key"]["key_id"].as_str().unwrap().to_owned();
    let issued = s
        .production_csr(
            &who,
            started.attempt.id,
            made["csr"].as_str().unwrap().as_bytes(),
            &key_id,
            &meta,
        )
        .await
        .unwrap();
    let (st, stored) = agent_call(
        agent,
        reqwest::Method::POST,
        &format!("/v1/tokens/{token_id}/keys/{key_id}/certificate"),
        json!({ "pin": started.pin, "certificate": issued.certificate_pem, "chain": issued.chain_pem }),
    )
    .await;
    assert!((200..300).contains(&st), "write: {stored}");
    let listed = token(agent, &serial).await;
    let read_back = base64::engine::general_purpose::STANDARD
        .decode(listed["certificates"][0]["certificate"].as_str().unwrap())
        .unwrap();
    s.production_written(&who, started.attempt.id, &read_back, &meta)
        .await
        .unwrap();
    (token_id, serial, started.pin.clone(), so_pin)
}

async fn login(app: &TestApp, browser: &Browser, site: &str) {
    browser.goto(&format!("{site}/login")).await;
    browser.fill("#phone", APPLICANT).await;
    browser.click_and_wait_for_navigation("#send-code").await;
    let code = app.latest_code(APPLICANT).await.unwrap();
    browser.fill("#code", &code).await;
    browser.click_and_wait_for_navigation("#login-submit").await;
}

/// Asks CertHall's OCSP responder about `leaf_b64` with `openssl ocsp`.
fn ocsp_says(dir: &std::path::Path, site: &str, leaf_b64: &str, issuing_b64: &str) -> String {
    std::fs::write(dir.join("leaf.pem"), support::pem(leaf_b64)).unwrap();
    std::fs::write(dir.join("issuing.pem"), support::pem(issuing_b64)).unwrap();
    let url = format!("{site}/ocsp");
    let (_, out) = support::openssl(
        dir,
        &[
            "ocsp",
            "-issuer",
            "issuing.pem",
            "-cert",
            "leaf.pem",
            "-url",
            &url,
            "-no_nonce",
            "-noverify",
        ],
    );
    out
}

/// OpenSSL prints the status after `leaf.pem: `, or on a line of its own
/// after a warning (the injected clock is ahead of the machine's).
fn said_status(said: &str, status: &str) -> bool {
    said.lines()
        .any(|l| l.trim() == status || l.trim_end().ends_with(&format!(": {status}")))
}

async fn walk(app: &TestApp, browser: &mut Browser) {
    let be = app.backend();
    browser.set_label(&format!("lifecycle-{be}"));
    let server = app.serve().await;
    let site = server.url("").trim_end_matches('/').to_owned();
    let agent = AgentUnderTest::start_on(
        Backend::SoftHsm,
        "柜台旧UKey",
        &[&site],
        app.web.agent_url.trim_start_matches("http://"),
    )
    .await;
    let s = &app.services;
    let (me, order) = fixtures::paid_order(app, APPLICANT, "sdzfcg").await;
    let (token_id, token_serial, pin, so_pin) = produce(app, &agent, order.id).await;
    let old = token(&agent, &token_serial).await["certificates"][0].clone();
    let old_serial = s.my_certificates(me).await.unwrap()[0]
        .certificate
        .serial
        .clone();

    // 1. 证书激活 on the demo platform of the certificate's application.
    app.clock.advance(Duration::from_secs(120));
    login(app, browser, &site).await;
    browser
        .goto(&format!("{site}/dev/platform?app=sdzfcg"))
        .await;
    browser
        .wait_until(
            "document.querySelectorAll('[data-testid=platform-cert] input:not([disabled])').length === 1",
            "the token's certificate offered for activation",
        )
        .await;
    browser
        .eval("document.querySelector('[data-testid=platform-cert] input').click()")
        .await;
    browser.fill("[data-testid=pin]", &pin).await;
    browser.click("[data-testid=activate]").await;
    browser
        .wait_until(
            "!document.querySelector('[data-testid=activation-result]').hidden || !document.querySelector('[data-testid=activation-error]').hidden",
            "the platform's answer",
        )
        .await;
    assert!(
        browser.is_visible("[data-testid=activation-result]").await,
        "{be}: {}",
        browser.text_of("[data-testid=activation-error]").await
    );
    browser
        .screenshot(&format!("{be}-platform-activated.png"))
        .await;
    let mine = s.my_certificates(me).await.unwrap();
    assert_eq!(
        mine[0].activations.len(),
        1,
        "{be}: {:?}",
        mine[0].activations
    );
    browser.goto(&format!("{site}/certificates")).await;
    assert_eq!(
        browser.text_of("[data-testid=certificate-status]").await,
        "已激活",
        "{be}"
    );

    // 2. 证书更新, 60 days before expiry: a new session months later.
    let not_after = mine[0].certificate.not_after;
    app.clock.set(not_after.minus(DAY * 60));
    login(app, browser, &site).await;
    browser
        .goto(&format!("{site}/certificates/renew?serial={old_serial}"))
        .await;
    assert!(
        browser
            .text_of("[data-testid=renewal-timing]")
            .await
            .contains("该证书现在可以更新"),
        "{be}"
    );
    browser
        .wait_until(
            "document.querySelector('[data-testid=media-choice]')?.checked === true",
            "the token's certificate chosen",
        )
        .await;
    // Renewal carries a price here: paid first, through step 7.
    pay_for_renewal(app, browser).await;
    browser
        .click_and_wait_for_navigation("[data-testid=go-key-write]")
        .await;
    assert!(
        browser
            .current_url()
            .await
            .ends_with(&format!("/certificates/renew?serial={old_serial}")),
        "{be}"
    );
    browser
        .wait_until(
            "document.querySelector('[data-testid=media-choice]')?.checked === true",
            "the token's certificate chosen again",
        )
        .await;
    // A wrong PIN first: the agent says how many tries are left.
    browser.fill("#pin", "000000").await;
    browser.fill("#code", "000000").await;
    browser.click("[data-testid=start-renewal]").await;
    browser
        .wait_until(
            "!document.querySelector('[data-testid=renewal-error]').hidden",
            "the wrong PIN refused",
        )
        .await;
    let refused = browser.text_of("[data-testid=renewal-error]").await;
    assert!(refused.contains("还可尝试 9 次"), "{be}: {refused}");
    assert_eq!(
        s.my_certificates(me).await.unwrap().len(),
        1,
        "{be}: nothing started"
    );
    browser.fill("#pin", &pin).await;
    // Right after the login code: the resend cooldown is per purpose.
    browser.click("[data-testid=send-code]").await;
    browser
        .wait_for_text("[data-testid=code-status]", "验证码已发送至")
        .await;
    let code = app.latest_code(APPLICANT).await.unwrap();
    browser.fill("#code", &code).await;
    browser.click("[data-testid=start-renewal]").await;
    browser
        .wait_until(
            "!document.querySelector('[data-testid=renewal-done]').hidden || document.querySelector('[data-testid=renewal-progress] [data-state=failed]')",
            "the renewal to finish",
        )
        .await;
    assert!(
        browser.is_visible("[data-testid=renewal-done]").await,
        "{be}: {}",
        browser.text_of("[data-testid=renewal-error]").await
    );
    browser.screenshot(&format!("{be}-renewed.png")).await;
    let new_serial = browser.text_of("[data-testid=renewed-serial]").await;
    assert_ne!(new_serial, old_serial);

    // The token holds the new certificate alone (the old key pair is gone),
    // same subject, later expiry; the PIN is unchanged.
    let t = token(&agent, &token_serial).await;
    let certs = t["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 1, "{be}: {t}");
    assert_eq!(t["keys"].as_array().unwrap().len(), 1, "{be}: {t}");
    assert_eq!(certs[0]["subject"], old["subject"], "{be}");
    assert!(
        certs[0]["not_after"].as_str().unwrap() > old["not_after"].as_str().unwrap(),
        "{be}: {t}"
    );
    let dir = tempfile::tempdir().unwrap();
    let issuing = old["chain"][0].as_str().unwrap();
    let said = ocsp_says(
        dir.path(),
        &site,
        old["certificate"].as_str().unwrap(),
        issuing,
    );
    assert!(
        said_status(&said, "revoked") && said.contains("Reason: superseded"),
        "{be}: OCSP on the old certificate: {said}"
    );
    let said = ocsp_says(
        dir.path(),
        &site,
        certs[0]["certificate"].as_str().unwrap(),
        issuing,
    );
    assert!(
        said_status(&said, "good"),
        "{be}: OCSP on the new certificate: {said}"
    );
    // The activation carried over; the platform is told.
    let mine = s.my_certificates(me).await.unwrap();
    let renewed = mine
        .iter()
        .find(|c| c.certificate.serial == new_serial)
        .unwrap_or_else(|| panic!("{be}: the new certificate on 我的证书"));
    assert_eq!(renewed.activations.len(), 1, "{be}");
    let sweep = s.deliver_platform_events().await.unwrap();
    assert!(sweep.delivered >= 1 && sweep.failed == 0, "{be}: {sweep:?}");
    browser
        .goto(&format!("{site}/dev/platform?app=sdzfcg"))
        .await;
    let kinds = browser
        .eval(&format!(
            "[...document.querySelectorAll('[data-testid=platform-event][data-serial=\"{old_serial}\"]')].map(e => e.dataset.kind)"
        ))
        .await;
    assert!(
        kinds
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "certificate.renewed"),
        "{be}: {kinds}"
    );
    browser.screenshot(&format!("{be}-platform-told.png")).await;

    // 3. The PIN locked by ten wrong tries in a row (the renewal's good
    // PIN reset the count).
    for _ in 0..10 {
        agent_call(
            &agent,
            reqwest::Method::POST,
            &format!("/v1/tokens/{token_id}/pin/verify"),
            json!({ "pin": "000000" }),
        )
        .await;
    }
    let (st, locked) = agent_call(
        &agent,
        reqwest::Method::POST,
        &format!("/v1/tokens/{token_id}/pin/verify"),
        json!({ "pin": pin }),
    )
    .await;
    assert_eq!(
        (st, locked["code"].as_str()),
        (423, Some("pin_locked")),
        "{be}: {locked}"
    );

    // An unlock released to another page (here: straight through the
    // service) and never reported.
    let meta = RequestMeta::default();
    let (_, key) = agent_call(
        &agent,
        reqwest::Method::POST,
        &format!("/v1/tokens/{token_id}/unlock/key"),
        json!({}),
    )
    .await;
    s.send_unlock_code(me, &token_serial, &meta).await.unwrap();
    let code = app.latest_code(APPLICANT).await.unwrap();
    s.release_so_pin(
        me,
        &token_serial,
        key["public_key"].as_str().unwrap(),
        &code,
        &meta,
    )
    .await
    .unwrap();

    // PIN 解锁 online: refused while that one may still run, then done.
    app.clock.advance(Duration::from_secs(61));
    browser.goto(&format!("{site}/ukeys/unlock")).await;
    browser
        .wait_until(
            "document.querySelector('[data-testid=unlock-choice]')?.checked === true",
            "the locked token chosen",
        )
        .await;
    browser.fill("#new-pin", NEW_PIN).await;
    browser.fill("#new-pin-again", NEW_PIN).await;
    for attempt in 0..2 {
        if attempt == 1 {
            // Ten minutes on, the other page's release is over.
            app.clock.advance(Duration::from_secs(11 * 60));
        }
        browser.click("[data-testid=send-code]").await;
        browser
            .wait_for_text("[data-testid=code-status]", "验证码已发送至")
            .await;
        let code = app.latest_code(APPLICANT).await.unwrap();
        browser.fill("#code", &code).await;
        browser.click("[data-testid=start-unlock]").await;
        browser
            .wait_until(
                "!document.querySelector('[data-testid=unlock-done]').hidden || !document.querySelector('[data-testid=unlock-error]').hidden",
                "the unlock to finish",
            )
            .await;
        if attempt == 0 {
            let busy = browser.text_of("[data-testid=unlock-error]").await;
            assert!(busy.contains("正在解锁中"), "{be}: {busy}");
        }
    }
    assert!(
        browser.is_visible("[data-testid=unlock-done]").await,
        "{be}: {}",
        browser.text_of("[data-testid=unlock-error]").await
    );
    browser.screenshot(&format!("{be}-unlocked.png")).await;
    let (st, v) = agent_call(
        &agent,
        reqwest::Method::POST,
        &format!("/v1/tokens/{token_id}/pin/verify"),
        json!({ "pin": NEW_PIN }),
    )
    .await;
    assert_eq!(st, 200, "{be}: the new PIN opens the token: {v}");
    // CertHall holds the new SO PIN (nothing pending) and the token no
    // longer takes the old one.
    let ukey = certhall_store::production::ukeys_of_account(&app.db.store, me)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.token_serial == token_serial)
        .unwrap();
    assert!(ukey.so_pin_pending.is_none(), "{be}");
    assert_eq!(ukey.certificate_serial, new_serial, "{be}");
    so_login_fails(&agent, &t["label"], &so_pin);

    // 5. 证书变更: the enterprise's new name, through the counter's review,
    // onto the same token.
    let renewed_b64 = certs[0]["certificate"].as_str().unwrap().to_owned();
    let (change_id, new_serial) = change_name(app, browser, &site, NEW_PIN).await;
    let t = token(&agent, &token_serial).await;
    let certs = t["certificates"].as_array().unwrap().clone();
    assert_eq!(certs.len(), 1, "{be}: the changed certificate alone: {t}");
    assert_eq!(t["keys"].as_array().unwrap().len(), 1, "{be}: {t}");
    assert!(
        certs[0]["subject"].as_str().unwrap().contains(NEW_NAME),
        "{be}: {t}"
    );
    let said = ocsp_says(dir.path(), &site, &renewed_b64, issuing);
    assert!(
        said_status(&said, "revoked") && said.contains("Reason: affiliationChanged"),
        "{be}: OCSP on the certificate changed: {said}"
    );
    let said = ocsp_says(
        dir.path(),
        &site,
        certs[0]["certificate"].as_str().unwrap(),
        issuing,
    );
    assert!(
        said_status(&said, "good"),
        "{be}: OCSP on the new one: {said}"
    );
    let mine = s.my_certificate(me, &new_serial).await.unwrap();
    assert_eq!(mine.activations.len(), 1, "{be}: the activation carried");
    assert_eq!(
        mine.ukey.map(|k| k.token_serial),
        Some(token_serial.clone()),
        "{be}"
    );
    let sweep = s.deliver_platform_events().await.unwrap();
    assert!(sweep.delivered >= 1 && sweep.failed == 0, "{be}: {sweep:?}");
    browser
        .goto(&format!("{site}/dev/platform?app=sdzfcg"))
        .await;
    browser
        .wait_for("[data-testid=platform-event][data-kind=\"certificate.changed\"]")
        .await;

    // 6. 补办 (the key lost): the changed certificate is revoked at once —
    // OCSP and the CRL say so — and a 补办 order opens, prefilled.
    browser
        .goto(&format!("{site}/certificates/{new_serial}/replace"))
        .await;
    browser.click("[data-testid=reason-lost]").await;
    browser
        .click_and_wait_for_navigation("[data-testid=send-code]")
        .await;
    browser
        .wait_for_text("[data-testid=notice]", "验证码已发送至")
        .await;
    let code = app.latest_code(APPLICANT).await.unwrap();
    browser.fill("#code", &code).await;
    browser.click("[data-testid=understood]").await;
    browser
        .click_and_wait_for_navigation("[data-testid=confirm-replace]")
        .await;
    browser
        .screenshot(&format!("{be}-replacement-order.png"))
        .await;
    let said = ocsp_says(
        dir.path(),
        &site,
        certs[0]["certificate"].as_str().unwrap(),
        issuing,
    );
    assert!(
        said_status(&said, "revoked") && said.contains("Reason: keyCompromise"),
        "{be}: OCSP after 补办: {said}"
    );
    let crl = Client::new()
        .get(format!("{site}/crl/p256-issuing.crl"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    std::fs::write(dir.path().join("now.crl"), &crl).unwrap();
    let (ok, text) = support::openssl(
        dir.path(),
        &["crl", "-inform", "DER", "-in", "now.crl", "-noout", "-text"],
    );
    assert!(ok, "{be}: {text}");
    assert!(
        text.contains(&new_serial.to_uppercase()) && text.contains("Key Compromise"),
        "{be}: the CRL: {text}"
    );
    let orders = s
        .orders_of(me, certhall_store::orders::OrderFilter::All, None)
        .await
        .unwrap();
    let replacement = orders
        .iter()
        .find(|o| o.kind == certhall_domain::order::OrderKind::Replacement)
        .unwrap_or_else(|| panic!("{be}: a 补办 order"));
    for step in [Step::Identity, Step::Application, Step::Enterprise] {
        let was = certhall_store::orders::step_data(&app.db.store, change_id, step)
            .await
            .unwrap();
        let now = certhall_store::orders::step_data(&app.db.store, replacement.id, step)
            .await
            .unwrap();
        assert!(was.is_some() && was == now, "{be}: {step:?} prefilled");
    }
}

/// The renewal's price here (`[renewal] price_fen`).
const RENEWAL_PRICE_FEN: i64 = 20_000;

/// On the renewal page, the certificate chosen and not paid for: the
/// button leads to the 证书更新 order's payment (step 7), paid at the demo
/// cashier (a signed WeChat Pay callback); the page notices it and shows
/// the order, now waiting for the key write.
async fn pay_for_renewal(app: &TestApp, browser: &Browser) {
    let be = app.backend();
    let button = browser.text_of("[data-testid=start-renewal]").await;
    assert_eq!(button, "支付更新费用（200.00 元）", "{be}");
    assert!(
        browser
            .text_of("[data-testid=media-status]")
            .await
            .contains("需先支付更新费用"),
        "{be}"
    );
    browser
        .click_and_wait_for_navigation("[data-testid=start-renewal]")
        .await;
    assert!(
        browser.current_path().await.ends_with("/pay"),
        "{be}: {}",
        browser.current_path().await
    );
    assert_eq!(browser.text_of("[data-testid=total]").await, "200.00");
    assert!(
        browser.exists("[data-testid=renewal-summary]").await,
        "{be}"
    );
    browser
        .click_and_wait_for_navigation("[data-testid=pay-wechat]")
        .await;
    let cashier = browser
        .attribute("[data-testid=open-cashier]", "href")
        .await
        .unwrap();
    let pay_page = browser.current_url().await;
    browser.goto(&cashier).await;
    assert_eq!(
        browser.text_of("[data-testid=cashier-amount]").await,
        "¥200.00"
    );
    browser
        .click_and_wait_for_navigation("[data-testid=cashier-pay]")
        .await;
    browser.goto(&pay_page).await;
    browser
        .wait_until(
            "location.search === '?paid=1'",
            "the order page after payment",
        )
        .await;
    browser.wait_for("[data-testid=order-state]").await;
    assert_eq!(
        browser.text_of("[data-testid=order-state]").await,
        "待写入：请将新证书写入 UKey",
        "{be}"
    );
    assert!(
        browser
            .text_of("[data-testid=notice]")
            .await
            .contains("支付成功"),
        "{be}"
    );
    browser.screenshot(&format!("{be}-renewal-paid.png")).await;
}

/// The enterprise's new name (证书变更).
const NEW_NAME: &str = "枣庄市恒信建设集团有限公司";
/// The counter operator who reviews the change.
const REVIEWER: &str = "13700000922";

/// 证书变更 in the browser: 介质查询 opens the change order; at step 3 the
/// unchanged data is refused, then the renamed license is uploaded and
/// read by OCR; steps 4 and 5 (authorization letter); an operator
/// approves at /counter, seeing the change; the applicant writes the new
/// certificate onto the token (PIN, SMS code). Returns (the change order,
/// the new certificate's serial).
async fn change_name(app: &TestApp, browser: &Browser, site: &str, pin: &str) -> (OrderId, String) {
    let be = app.backend();
    browser.goto(&format!("{site}/certificates/change")).await;
    browser
        .wait_until(
            "document.querySelector('[data-testid=media-choice]')?.checked === true",
            "the token's certificate chosen for the change",
        )
        .await;
    browser
        .click_and_wait_for_navigation("[data-testid=start-change]")
        .await;
    assert_eq!(
        browser.text_of("[data-testid=step-title]").await,
        "第3步：企业实名认证",
        "{be}: {}",
        browser.current_path().await
    );
    let change_id = OrderId(
        browser
            .current_path()
            .await
            .split('/')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap(),
    );
    assert_eq!(
        browser.value_of("#ent_name").await,
        fixtures::enterprise().name,
        "{be}: step 3 carried over"
    );
    // Saved as it was: there is nothing to change.
    browser
        .click_and_wait_for_navigation("[data-testid=next]")
        .await;
    let refused = browser.text_of("[data-testid=error]").await;
    assert!(refused.contains("无需办理证书变更"), "{be}: {refused}");
    // The renamed license, read by OCR; the applicant checks each field.
    let mut renamed = fixtures::enterprise();
    renamed.name = NEW_NAME.into();
    let dir = tempfile::tempdir().unwrap();
    let files = [
        (
            "license",
            "变更后营业执照.jpg",
            fixtures::license_jpeg_for(&renamed),
        ),
        ("company_seal", "公章.png", fixtures::png(480, 480)),
        ("legal_rep_seal", "法人章.png", fixtures::png(400, 400)),
        ("legal_rep_signature", "签名.jpg", fixtures::jpeg(720, 360)),
        (
            "authorization_letter",
            "授权委托书.jpg",
            fixtures::jpeg(900, 1270),
        ),
    ]
    .map(|(kind, name, bytes)| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (kind, path)
    });
    browser.choose_file("#license", &files[0].1).await;
    browser
        .click_and_wait_for_navigation("[data-testid=read-license]")
        .await;
    assert_eq!(
        browser.value_of("#ent_name").await,
        NEW_NAME,
        "{be}: OCR read the new name"
    );
    for (sel, value) in [
        ("#ent_name", &renamed.name),
        ("#ent_uscc", &renamed.uscc),
        ("#ent_kind", &renamed.kind),
        ("#ent_legal_representative", &renamed.legal_representative),
        ("#ent_address", &renamed.address),
        ("#ent_registered_capital", &renamed.registered_capital),
        ("#ent_established", &renamed.established),
        ("#ent_registered_place", &renamed.registered_place),
    ] {
        if browser.value_of(sel).await != *value {
            browser.fill(sel, value).await;
        }
    }
    browser
        .eval("document.getElementById('ent_nature').value = '私营企业'")
        .await;
    browser
        .click_and_wait_for_navigation("[data-testid=next]")
        .await;
    assert_eq!(
        browser.text_of("[data-testid=step-title]").await,
        "第4步：办理方式",
        "{be}: {}",
        browser.content().await
    );
    browser.click("input[name=handling][value=online]").await;
    browser
        .click_and_wait_for_navigation("[data-testid=next]")
        .await;
    for (kind, path) in &files[1..] {
        browser.choose_file(&format!("#{kind}"), path).await;
    }
    browser
        .click("input[name=authorization][value=letter]")
        .await;
    browser
        .click_and_wait_for_navigation("[data-testid=next]")
        .await;
    assert_eq!(
        browser.text_of("[data-testid=order-state]").await,
        "柜台审核中",
        "{be}"
    );
    assert!(browser
        .text_of("[data-testid=change-fields]")
        .await
        .contains(NEW_NAME));

    // The counter sees the change beside what it was, and approves.
    let op = fixtures::operator_named(app, REVIEWER).await;
    app.clock.advance(Duration::from_secs(120));
    browser.goto(&format!("{site}/counter/login")).await;
    browser.fill("#username", &op.username).await;
    browser.fill("#password", fixtures::OPERATOR_PASSWORD).await;
    browser
        .click_and_wait_for_navigation("[data-testid=counter-login-submit]")
        .await;
    let code = app.latest_code(REVIEWER).await.unwrap();
    browser.fill("#code", &code).await;
    browser
        .click_and_wait_for_navigation("[data-testid=counter-code-submit]")
        .await;
    browser
        .goto(&format!("{site}/counter/orders/{change_id}"))
        .await;
    let fields = browser.text_of("[data-testid=change-fields]").await;
    assert!(
        fields.contains(NEW_NAME) && fields.contains(&fixtures::enterprise().name),
        "{be}: {fields}"
    );
    browser.screenshot(&format!("{be}-change-review.png")).await;
    browser
        .click_and_wait_for_navigation("[data-testid=approve]")
        .await;
    if browser.exists("[data-testid=confirm-approve-yes]").await {
        browser
            .click_and_wait_for_navigation("[data-testid=confirm-approve-yes]")
            .await;
    }

    // The applicant (still logged in) writes the new certificate onto the
    // same token.
    browser.goto(&format!("{site}/orders/{change_id}")).await;
    assert_eq!(
        browser.text_of("[data-testid=order-state]").await,
        "待写入：请将新证书写入 UKey",
        "{be}"
    );
    browser
        .click_and_wait_for_navigation("[data-testid=go-key-write]")
        .await;
    browser
        .wait_until(
            "document.querySelector('[data-testid=media-choice]')?.checked === true",
            "the certificate to change chosen",
        )
        .await;
    browser.fill("#pin", pin).await;
    browser.click("[data-testid=send-code]").await;
    browser
        .wait_for_text("[data-testid=code-status]", "验证码已发送至")
        .await;
    let code = app.latest_code(APPLICANT).await.unwrap();
    browser.fill("#code", &code).await;
    browser.click("[data-testid=start-renewal]").await;
    browser
        .wait_until(
            "!document.querySelector('[data-testid=renewal-done]').hidden || document.querySelector('[data-testid=renewal-progress] [data-state=failed]')",
            "the key write to finish",
        )
        .await;
    assert!(
        browser.is_visible("[data-testid=renewal-done]").await,
        "{be}: {}",
        browser.text_of("[data-testid=renewal-error]").await
    );
    browser.screenshot(&format!("{be}-changed.png")).await;
    let new_serial = browser.text_of("[data-testid=renewed-serial]").await;
    browser.goto(&format!("{site}/orders/{change_id}")).await;
    assert_eq!(
        browser.text_of("[data-testid=order-state]").await,
        "已完成",
        "{be}"
    );
    (change_id, new_serial)
}

/// SoftHSM2 (through OpenSC's pkcs11-tool) refuses `so_pin` for the token.
fn so_login_fails(agent: &AgentUnderTest, label: &Value, so_pin: &str) {
    let out = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", agent.dir.path().join("softhsm2.conf"))
        .args(["--module", support::DEBIAN_MODULE, "--token-label"])
        .arg(label.as_str().unwrap())
        .args([
            "--session-rw",
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            so_pin,
            "--list-objects",
        ])
        .output();
    match out {
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !out.status.success() && text.contains("CKR_PIN_INCORRECT"),
                "the old SO PIN still opens the token: {text}"
            );
        }
        Err(_) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but pkcs11-tool (opensc) is missing"
            );
            certhall_store::testing::report_skip(
                "the old-SO-PIN check (pkcs11-tool not installed)",
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activate_renew_lock_and_unlock_a_softhsm2_token() {
    if !support::softhsm_available() {
        return;
    }
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    for app in support::apps_with_agent_port().await {
        // 证书变更 reads the changed license with the real OCR models.
        let Some(app) = app.with_ocr() else {
            return;
        };
        let app = app.with_renewal_price(RENEWAL_PRICE_FEN);
        walk(&app, &mut browser).await;
    }
    browser.close().await;
}
