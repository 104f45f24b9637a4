//! Browser end-to-end: CertHall + the real agent + a SoftHSM2 token holding
//! a certificate issued by the CA engine. Headless Chromium logs in with the
//! certificate and lands on the home page; a wrong PIN, a revoked
//! certificate and a replayed challenge are refused with the right message.
//! Screenshots go to `target/e2e-artifacts/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use certhall_ca::crl::Reason;
use certhall_domain::audit::{Actor, AuditEvent};
use certhall_testkit::browser::Browser;
use certhall_testkit::TestApp;
use certhall_web::WebConfig;
use reqwest::Client;
use serde_json::{json, Value};
use support::{AgentUnderTest, Backend, PIN};

const PHONE: &str = "13700000007";

/// Waits until the certificate list shows `n` certificates.
async fn certificates_listed(browser: &Browser, n: usize) {
    browser
        .wait_until(
            &format!("document.querySelectorAll('[data-testid=cert-option]').length === {n}"),
            "the agent's certificates on the login page",
        )
        .await;
}

/// On the login page's certificate tab: picks the only certificate, types
/// `pin` and clicks 登录 (no wait).
async fn submit_pin(browser: &Browser, pin: &str) {
    certificates_listed(browser, 1).await;
    browser.fill("#cert-pin", pin).await;
    browser.click("#cert-submit").await;
}

async fn cert_error(browser: &Browser, needle: &str) -> String {
    browser
        .wait_for_text("[data-testid=cert-error]", needle)
        .await;
    browser.text_of("[data-testid=cert-error]").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_with_the_certificate_on_a_softhsm2_token() {
    if !support::softhsm_available() {
        return;
    }
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    browser.set_label("cert-login");

    // CertHall, told where the agent will listen; the agent, told to
    // answer CertHall's pages.
    let agent_port = support::free_port();
    let site_port = support::free_port();
    let agent_url = format!("http://127.0.0.1:{agent_port}");
    let site = format!("http://127.0.0.1:{site_port}");
    let db = certhall_store::testing::TestDatabase::sqlite()
        .await
        .unwrap();
    let app = TestApp::with_web(
        db,
        WebConfig {
            agent_url: agent_url.clone(),
            extra_origins: vec![site.clone()],
            ..WebConfig::for_tests()
        },
    );
    let server = app.serve_on(site_port).await;
    assert_eq!(server.url(""), site);
    let agent = AgentUnderTest::start_on(
        Backend::SoftHsm,
        "企业UKey",
        &[&site],
        &format!("127.0.0.1:{agent_port}"),
    )
    .await;

    // The counter's part, through the agent: a key in the token, its CSR
    // certified by the CA engine for the applicant's account, the
    // certificate written back.
    let account = support::account(&app, PHONE).await;
    let client = Client::new();
    let generated: Value = client
        .post(agent.path("/keys"))
        .header("Origin", &site)
        .json(&json!({ "pin": PIN, "algorithm": "p256", "label": "企业证书" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key_id = generated["key"]["key_id"].as_str().unwrap().to_owned();
    let row = support::issue(
        &app,
        generated["csr"].as_str().unwrap().as_bytes(),
        Some(account),
    )
    .await;
    let stored = client
        .post(agent.path(&format!("/keys/{key_id}/certificate")))
        .header("Origin", &site)
        .json(&json!({ "pin": PIN, "certificate": certhall_ca::issue::to_pem(&row.der).unwrap() }))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200);

    // The login page lists the certificate from the token.
    browser.goto(&server.url("/login")).await;
    browser.click("[data-testid=tab-cert]").await;
    certificates_listed(&browser, 1).await;
    let option = browser.text_of("[data-testid=cert-option]").await;
    assert!(option.contains("枣庄测试建设有限公司"), "{option}");
    assert!(option.contains("企业UKey"), "{option}");
    browser.screenshot("cert-login-list.png").await;

    // A wrong PIN: the key's count is shown, and the server audits it.
    submit_pin(&browser, "999999").await;
    let message = cert_error(&browser, "PIN").await;
    assert_eq!(message, "UKey PIN 码错误，还可尝试 9 次。");
    assert_eq!(browser.current_path().await, "/login");
    browser.screenshot("cert-login-wrong-pin.png").await;
    let failures =
        certhall_store::audit::recent(&app.db.store, Some(AuditEvent::LoginFailed.as_str()), 10)
            .await
            .unwrap();
    assert!(
        failures.iter().any(|e| e.data.contains("key_wrong_pin")),
        "{failures:?}"
    );

    // The right PIN: home page, logged in as the certificate's account.
    // (Keep what was posted, to replay it afterwards.)
    browser
        .eval(
            "(() => { const f = document.getElementById('cert-form'); const orig = f.submit.bind(f);
               f.submit = () => { sessionStorage.setItem('posted', JSON.stringify(Object.fromEntries(new FormData(f)))); orig(); };
               return true; })()",
        )
        .await;
    submit_pin(&browser, PIN).await;
    browser
        .wait_until(
            "location.pathname === '/'",
            "the home page after certificate login",
        )
        .await;
    assert_eq!(browser.text_of("main h1").await, "您好，137****0007");
    browser.screenshot("cert-login-home.png").await;

    // Replaying the same signed challenge (after logging out) is refused.
    browser
        .click_and_wait_for_navigation("[data-testid=logout]")
        .await;
    browser
        .eval(
            "(() => { const posted = JSON.parse(sessionStorage.getItem('posted'));
               const f = document.getElementById('cert-form');
               for (const k of ['challenge', 'certificate', 'signed_data', 'signature']) { f.elements[k].value = posted[k]; }
               HTMLFormElement.prototype.submit.call(f); return true; })()",
        )
        .await;
    let message = cert_error(&browser, "已经使用过").await;
    assert!(message.contains("不能重复提交"), "{message}");
    assert!(
        !browser.exists("[data-testid=logout]").await,
        "logged in by a replay"
    );
    browser.screenshot("cert-login-replay.png").await;

    // Revoked: refused with the reason.
    app.services
        .ca_revoke(
            &row.serial,
            Reason::KeyCompromise,
            Actor::Cli("test".into()),
            None,
        )
        .await
        .unwrap();
    browser.goto(&server.url("/login?method=cert")).await;
    submit_pin(&browser, PIN).await;
    let message = cert_error(&browser, "吊销").await;
    assert_eq!(message, "该证书已注销（吊销），不能用于登录。");
    assert!(!browser.exists("[data-testid=logout]").await);
    browser.screenshot("cert-login-revoked.png").await;

    // Without the agent, the page says so and how to start it.
    drop(agent);
    browser.goto(&server.url("/login?method=cert")).await;
    browser
        .wait_for("[data-testid=agent-missing]:not([hidden])")
        .await;
    let help = browser.text_of("[data-testid=agent-missing]").await;
    assert!(help.contains("未检测到证书助手"), "{help}");
    assert!(
        help.contains(&format!(
            "certhall-agent --allow-origin {}",
            "http://127.0.0.1:8080"
        )),
        "{help}"
    );
    browser.screenshot("cert-login-no-agent.png").await;
    browser.close().await;
}
