//! Browser end-to-end of step 8 on SQLite and PostgreSQL: a paid order
//! (approved by the counter, paid at the demo cashier) is produced by a
//! producer in headless Chromium onto a blank SoftHSM2 token through the
//! real `certhall-agent` — the token ends up with a key pair generated
//! inside it (never extractable) and a certificate that `openssl verify`
//! accepts, with the subject from the order; the PIN SMS is in the outbox
//! and opens the token — then shipped through the demo courier, whose
//! `/dev/courier` page pushes SF-signed routes to 已签收; the applicant sees
//! the route and the certificate on 我的证书.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

use certhall_testkit::browser::Browser;
use certhall_testkit::fixtures;
use certhall_testkit::TestApp;
use reqwest::Client;
use serde_json::json;
use support::{AgentUnderTest, Backend};

const APPLICANT: &str = "13600000901";
const PRODUCER: &str = "13500000901";
const PASSWORD: &str = "Producer-pass-2026";

async fn produce_ship_deliver(app: &TestApp, browser: &mut Browser) {
    let be = app.backend();
    browser.set_label(&format!("production-{be}"));
    let server = app.serve().await;
    let site = server.url("");
    let agent = AgentUnderTest::start_on(
        Backend::SoftHsm,
        "柜台旧UKey",
        &[site.trim_end_matches('/')],
        app.web.agent_url.trim_start_matches("http://"),
    )
    .await;
    let s = &app.services;
    let (me, order) = fixtures::paid_order(app, APPLICANT, "sdzfcg").await;

    // A producer, logging in at the counter like anyone else.
    let op = s
        .add_operator(
            "zhizheng",
            PRODUCER,
            "operator",
            PASSWORD,
            certhall_domain::audit::Actor::Cli("test".into()),
        )
        .await
        .unwrap();
    s.set_producer(
        &op.username,
        true,
        certhall_domain::audit::Actor::Cli("test".into()),
    )
    .await
    .unwrap();
    browser.goto(&server.url("/counter/login")).await;
    browser.fill("#username", "zhizheng").await;
    browser.fill("#password", PASSWORD).await;
    browser
        .click_and_wait_for_navigation("[data-testid=counter-login-submit]")
        .await;
    let code = app.latest_code(PRODUCER).await.unwrap();
    browser.fill("#code", &code).await;
    browser
        .click_and_wait_for_navigation("[data-testid=counter-code-submit]")
        .await;

    // The desk lists the order; its page lists the agent's tokens.
    browser.goto(&server.url("/counter/production")).await;
    browser
        .wait_for(&format!(
            "[data-testid=production-row][data-order='{}']",
            order.id
        ))
        .await;
    browser
        .screenshot(&format!("{be}-production-desk.png"))
        .await;
    browser
        .click_and_wait_for_navigation(&format!(
            "[data-testid=production-row][data-order='{}'] [data-testid=production-link]",
            order.id
        ))
        .await;
    browser
        .wait_until(
            "document.querySelectorAll('[data-testid=token-choice]').length >= 2",
            "the agent's tokens (the old key and the blank slot)",
        )
        .await;
    // The blank one (SoftHSM2's free slot).
    browser
        .eval(
            "(() => { const r = [...document.querySelectorAll('[data-testid=token-choice]')]
                 .find(x => x.parentElement.textContent.includes('空白'));
               r.click(); return true; })()",
        )
        .await;
    browser
        .screenshot(&format!("{be}-production-ready.png"))
        .await;
    browser.click("[data-testid=start-production]").await;
    browser
        .wait_until(
            "!!document.querySelector('[data-testid=produced-key]') || !document.querySelector('[data-testid=production-error]')?.hidden",
            "production to finish",
        )
        .await;
    assert!(
        browser.exists("[data-testid=produced-key]").await,
        "{be}: {}",
        browser.text_of("[data-testid=production-error]").await
    );
    browser
        .screenshot(&format!("{be}-production-done.png"))
        .await;
    let token_serial = browser.text_of("[data-testid=token-serial]").await;
    let cert_serial = browser.text_of("[data-testid=certificate-serial]").await;

    // The token: labelled for the order, a key pair made inside it, the
    // certificate and its chain.
    let token = agent
        .all_tokens()
        .await
        .into_iter()
        .find(|t| t["serial"] == token_serial.as_str())
        .unwrap_or_else(|| panic!("{be}: token {token_serial} not listed"));
    assert!(
        token["label"]
            .as_str()
            .unwrap()
            .ends_with(&format!("-{}", order.id)),
        "{token}"
    );
    assert_eq!(
        token["keys"].as_array().unwrap().len(),
        1,
        "{be}: one key pair: {token}"
    );
    let cert = &token["certificates"][0];
    assert_eq!(cert["key_algorithm"], "p256");
    let subject = cert["subject"].as_str().unwrap();
    assert!(subject.contains("O=枣庄"), "{be}: {subject}");
    assert!(subject.contains("USCC="), "{be}: {subject}");
    // The request the agent made said CN=签名密钥 (the key's label); the
    // certificate says what the counter verified.
    assert!(subject.contains("CN=枣庄"), "{be}: {subject}");
    assert!(!subject.contains("签名密钥"), "{be}: {subject}");

    // openssl accepts it under the chain written with it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("leaf.pem"),
        support::pem(cert["certificate"].as_str().unwrap()),
    )
    .unwrap();
    let chain = cert["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "{be}: issuing CA and root");
    std::fs::write(
        dir.path().join("issuing.pem"),
        support::pem(chain[0].as_str().unwrap()),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("root.pem"),
        support::pem(chain[1].as_str().unwrap()),
    )
    .unwrap();
    let (ok, out) = support::openssl(
        dir.path(),
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "leaf.pem",
        ],
    );
    assert!(ok, "{be}: openssl verify: {out}");
    let (_, text) = support::openssl(
        dir.path(),
        &["x509", "-in", "leaf.pem", "-noout", "-serial"],
    );
    assert!(
        text.to_lowercase()
            .contains(&cert_serial.trim_start_matches('0').to_lowercase()),
        "{text} vs {cert_serial}"
    );

    // The PIN: in the applicant's SMS, and it opens the token. SoftHSM2
    // says the private key is sensitive and was never extractable.
    let sms = certhall_store::sms::outbox_recent(&app.db.store, Some(APPLICANT), 5)
        .await
        .unwrap();
    let body = &sms.iter().find(|e| e.body.contains("PIN")).unwrap().body;
    let at = body.find("PIN 码为").unwrap() + "PIN 码为".len();
    let pin: String = body[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert_eq!(pin.len(), 6);
    let verified = Client::new()
        .post(format!(
            "{}/v1/tokens/{}/pin/verify",
            agent.url,
            token["id"].as_str().unwrap()
        ))
        .json(&json!({ "pin": pin }))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200, "{be}: the SMS PIN opens the token");
    if let Ok(out) = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", agent.dir.path().join("softhsm2.conf"))
        .args(["--module", support::DEBIAN_MODULE, "--token-label"])
        .arg(token["label"].as_str().unwrap())
        .args([
            "--login",
            "--pin",
            &pin,
            "--list-objects",
            "--type",
            "privkey",
        ])
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("never extractable") && text.contains("always sensitive"),
            "{be}: {text}"
        );
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but pkcs11-tool (opensc) is missing"
        );
        certhall_store::testing::report_skip(
            "the never-extractable check (pkcs11-tool not installed)",
        );
    }

    // 发货 (顺丰到付, the demo courier), then the route to 已签收.
    browser
        .click_and_wait_for_navigation("[data-testid=ship]")
        .await;
    let waybill = browser.text_of("[data-testid=waybill]").await;
    assert!(waybill.starts_with("SF"), "{be}: {waybill}");
    browser.goto(&server.url("/dev/courier")).await;
    for _ in 0..4 {
        browser
            .click_and_wait_for_navigation(&format!(
                "[data-testid=demo-shipment][data-waybill='{waybill}'] [data-testid=advance]"
            ))
            .await;
        assert!(
            browser.exists("[data-testid=notice]").await,
            "{be}: {}",
            browser.content().await
        );
    }
    browser.screenshot(&format!("{be}-courier.png")).await;
    let order_now = s.order_of(me, order.id).await.unwrap();
    assert_eq!(
        order_now.state,
        certhall_domain::order::OrderState::Delivered,
        "{be}"
    );

    // The applicant: the order page with the waybill and the route, and
    // the certificate on 我的证书.
    browser.goto(&server.url("/login")).await;
    browser.fill("#phone", APPLICANT).await;
    browser.click_and_wait_for_navigation("#send-code").await;
    let code = app.latest_code(APPLICANT).await.unwrap();
    browser.fill("#code", &code).await;
    browser.click_and_wait_for_navigation("#login-submit").await;
    browser
        .goto(&server.url(&format!("/orders/{}", order.id)))
        .await;
    assert_eq!(
        browser.text_of("[data-testid=order-state]").await,
        "已签收",
        "{be}"
    );
    assert_eq!(browser.text_of("[data-testid=waybill]").await, waybill);
    assert_eq!(
        browser.text_of("[data-testid=ukey-serial]").await,
        token_serial
    );
    assert_eq!(browser.count("[data-testid=route] li").await, 4, "{be}");
    assert!(browser.exists("[data-testid=activate-hint]").await);
    browser
        .screenshot(&format!("{be}-order-delivered.png"))
        .await;
    browser
        .click_and_wait_for_navigation("[data-testid=nav-certificates]")
        .await;
    assert_eq!(
        browser.count("[data-testid=certificate-row]").await,
        1,
        "{be}"
    );
    assert_eq!(
        browser.text_of("[data-testid=certificate-status]").await,
        "有效"
    );
    browser
        .screenshot(&format!("{be}-my-certificates.png"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_onto_a_softhsm2_token_ship_and_sign_for() {
    if !support::softhsm_available() {
        return;
    }
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    for app in support::apps_with_agent_port().await {
        produce_ship_deliver(&app, &mut browser).await;
    }
    browser.close().await;
}
