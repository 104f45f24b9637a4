//! 证书更新 and PIN 解锁 through the JSON API (issue 12): every refusal has
//! its code and Chinese message and changes nothing; a renewal whose write
//! fails, or whose page is closed half-way (the sweep), revokes the new
//! certificate and keeps the old one. The whole walk
//! with a real token and browser is `crates/agent/tests/lifecycle_e2e.rs`.

use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use certhall_ca::Family;
use certhall_domain::audit::Actor;
use certhall_service::ca::IssueInput;
use certhall_store::production::UkeyRow;
use certhall_testkit::client::{Client, Reply};
use certhall_testkit::fixtures::{openssl, openssl_p256_csr, order_at_step_five_for};
use certhall_testkit::TestApp;
use serde_json::json;

use crate::audit_events;
use crate::relying::sign;
use crate::reminders::{ca_ready, certificate_for};

const DAY: Duration = Duration::from_secs(86_400);
const MINE: &str = "13600000931";
const THEIRS: &str = "13600000932";
const TOKEN: &str = "TK0931";

/// CertHall's own origin in the tests' settings.
const ORIGIN: &str = "http://127.0.0.1:8080";

/// Starts the renewal of `serial` as the page does: a challenge, signed
/// for `purpose` by the key in `key_dir/k.pem`, with `body`.
async fn start(
    c: &mut Client<'_>,
    serial: &str,
    key_dir: &std::path::Path,
    purpose: &str,
    mut body: serde_json::Value,
) -> Reply {
    let r = c
        .post_json(
            &format!("/api/v1/certificates/{serial}/renewal/challenge"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let challenge = r.json()["challenge"].as_str().unwrap().to_owned();
    let (signed, signature) = sign(key_dir, purpose, ORIGIN, &challenge);
    body["challenge"] = json!(challenge);
    body["signed_data"] = json!(signed);
    body["signature"] = json!(signature);
    c.post_json(&format!("/api/v1/certificates/{serial}/renewals"), body)
        .await
}

/// A certificate of `phone`'s issued for an order of theirs (application
/// `sdzfcg`) with `subject`, produced onto the key `token`: (account, the
/// order, the certificate, the directory holding its key `k.pem`).
pub(crate) async fn on_token(
    app: &TestApp,
    phone: &str,
    token: &str,
    subject: &str,
) -> (
    certhall_domain::AccountId,
    certhall_store::orders::OrderRow,
    certhall_store::ca::CertificateRow,
    tempfile::TempDir,
) {
    let (me, order) = order_at_step_five_for(app, phone, "sdzfcg").await;
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_p256_csr(dir.path());
    let x = app
        .services
        .ca_issue(
            &IssueInput {
                family: Family::P256,
                profile: "enterprise",
                csr: &csr,
                subject,
                account: Some(me),
                order_id: Some(order.id.0),
                predecessor: None,
                ends_by: None,
            },
            Actor::System,
        )
        .await
        .unwrap();
    let mut tx = app.db.store.begin_write().await.unwrap();
    certhall_store::production::insert_ukey(
        &mut tx,
        &UkeyRow {
            token_serial: token.into(),
            order_id: order.id.0,
            account_id: me,
            key_model: "demo".into(),
            key_model_name: "演示 UKey".into(),
            colour: "blue".into(),
            certificate_serial: x.serial.clone(),
            so_pin_sealed: String::new(),
            so_pin_pending: None,
            attempt_id: 0,
            produced_at: x.issued_at,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (me, order, x, dir)
}

/// Opens a renewal of `serial` (code, the old key's signature in
/// `key_dir`) and has a certificate issued for a fresh key: (renewal id,
/// new serial).
async fn open_and_issue(
    c: &mut Client<'_>,
    app: &TestApp,
    phone: &str,
    serial: &str,
    key_dir: &std::path::Path,
) -> (i64, String) {
    c.post_json(
        &format!("/api/v1/certificates/{serial}/renewal/code"),
        json!({}),
    )
    .await;
    let code = app.latest_code(phone).await.unwrap();
    let ukey = certhall_store::production::ukeys_of_account(
        &app.db.store,
        app.services
            .ensure_account(&certhall_domain::Phone::parse(phone).unwrap())
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let token = ukey[0].token_serial.clone();
    let r = start(
        c,
        serial,
        key_dir,
        "renew",
        json!({ "token_serial": token, "code": code }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let id = r.json()["renewal"]["id"].as_i64().unwrap();
    let new_key = tempfile::tempdir().unwrap();
    let csr = String::from_utf8(openssl_p256_csr(new_key.path())).unwrap();
    let r = c
        .post_json(
            &format!("/api/v1/renewals/{id}/csr"),
            json!({ "csr": csr, "key_id": "0c1d" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    (id, r.json()["serial"].as_str().unwrap().to_owned())
}

fn refused(r: &Reply, status: StatusCode, code: &str) -> String {
    let v = r.json();
    assert_eq!(
        (r.status, v["code"].as_str()),
        (status, Some(code)),
        "{}",
        r.body
    );
    let message = v["message"].as_str().unwrap().to_owned();
    assert!(
        message
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "a Chinese message: {message}"
    );
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_refusals_change_nothing_and_a_failed_write_keeps_the_old_certificate() {
    for app in TestApp::each().await {
        let be = app.backend();
        ca_ready(&app).await;
        let s = &app.services;
        // Mine, issued for an order and produced onto the key TOKEN.
        let (me, _, x, dir) = on_token(
            &app,
            MINE,
            TOKEN,
            "C=CN,O=枣庄更新甲有限公司,USCC=91350100M000100Y43,CN=枣庄更新甲有限公司",
        )
        .await;
        // Another account's certificate.
        let (_, y) = certificate_for(&app, THEIRS, "枣庄更新乙有限公司").await;

        let mut c = Client::new(&app, "10.25.0.1");
        c.api_login(MINE).await;
        let code_path = format!("/api/v1/certificates/{}/renewal/code", x.serial);

        // A year before expiry: not yet, and the message says from when.
        let r = c.post_json(&code_path, json!({})).await;
        let why = refused(&r, StatusCode::CONFLICT, "renewal_not_open");
        assert!(why.contains("起可以在线更新"), "{be}: {why}");

        // 60 days before expiry, a new session.
        app.clock.set(x.not_after.minus(DAY * 60));
        let mut c = Client::new(&app, "10.25.0.1");
        c.api_login(MINE).await;
        app.clock.advance(Duration::from_secs(61));
        // Another account's certificate (on the key all the same): named.
        let r = c
            .post_json(
                &format!("/api/v1/certificates/{}/renewal/code", y.serial),
                json!({}),
            )
            .await;
        refused(&r, StatusCode::FORBIDDEN, "not_own_certificate");
        let r = c
            .post_json(
                &format!("/api/v1/certificates/{}/renewals", y.serial),
                json!({ "token_serial": TOKEN, "code": "123456" }),
            )
            .await;
        refused(&r, StatusCode::FORBIDDEN, "not_own_certificate");
        // No code asked for yet.
        let r = start(
            &mut c,
            &x.serial,
            dir.path(),
            "renew",
            json!({ "token_serial": TOKEN, "code": "123456" }),
        )
        .await;
        refused(&r, StatusCode::UNAUTHORIZED, "sms_code_not_requested");

        let r = c.post_json(&code_path, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        assert_eq!(r.json()["phone"], "136****0931");
        let code = app.latest_code(MINE).await.unwrap();
        // Another key plugged in: refused before the code is spent.
        let r = start(
            &mut c,
            &x.serial,
            dir.path(),
            "renew",
            json!({ "token_serial": "OTHER1", "code": code }),
        )
        .await;
        refused(&r, StatusCode::BAD_REQUEST, "wrong_token");
        // Without the certificate's key (a session and the phone are not
        // enough), or its signature for another purpose, or no signature:
        // refused before the code is spent.
        let stranger = tempfile::tempdir().unwrap();
        openssl_p256_csr(stranger.path());
        let body = json!({ "token_serial": TOKEN, "code": code });
        for (key, purpose) in [(stranger.path(), "renew"), (dir.path(), "login")] {
            let r = start(&mut c, &x.serial, key, purpose, body.clone()).await;
            let why = refused(&r, StatusCode::BAD_REQUEST, "renewal_proof_failed");
            assert!(why.contains("存放该证书的 UKey"), "{be}: {why}");
        }
        let r = c
            .post_json(
                &format!("/api/v1/certificates/{}/renewals", x.serial),
                body.clone(),
            )
            .await;
        refused(&r, StatusCode::BAD_REQUEST, "renewal_proof_failed");
        // A wrong code counts a try.
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let r = start(
            &mut c,
            &x.serial,
            dir.path(),
            "renew",
            json!({ "token_serial": TOKEN, "code": wrong }),
        )
        .await;
        let why = refused(&r, StatusCode::UNAUTHORIZED, "sms_code_wrong");
        assert!(why.contains("还可"), "{be}: {why}");
        // Expired after its minutes.
        app.clock.advance(Duration::from_secs(6 * 60));
        let r = start(
            &mut c,
            &x.serial,
            dir.path(),
            "renew",
            json!({ "token_serial": TOKEN, "code": code }),
        )
        .await;
        refused(&r, StatusCode::UNAUTHORIZED, "sms_code_expired");
        assert!(
            audit_events(&app, "certificate.renewal").await.is_empty(),
            "{be}: nothing opened"
        );

        // A fresh code opens the renewal; a second one is refused.
        c.post_json(&code_path, json!({})).await;
        let code = app.latest_code(MINE).await.unwrap();
        let r = start(
            &mut c,
            &x.serial,
            dir.path(),
            "renew",
            json!({ "token_serial": TOKEN, "code": code }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let started = r.json();
        assert_eq!(started["algorithm"], "p256", "{be}");
        let id = started["renewal"]["id"].as_i64().unwrap();
        assert_eq!(started["renewal"]["state"], "started");
        app.clock.advance(Duration::from_secs(61));
        c.post_json(&code_path, json!({})).await;
        let code = app.latest_code(MINE).await.unwrap();
        let r = start(
            &mut c,
            &x.serial,
            dir.path(),
            "renew",
            json!({ "token_serial": TOKEN, "code": code }),
        )
        .await;
        refused(&r, StatusCode::CONFLICT, "renewal_busy");
        // Nobody else sees it.
        let mut other = Client::new(&app, "10.25.0.2");
        other.api_login(THEIRS).await;
        let r = other.get(&format!("/api/v1/renewals/{id}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{be}");

        // A request that is not a CSR: refused, the renewal still open.
        let r = c
            .post_json(
                &format!("/api/v1/renewals/{id}/csr"),
                json!({ "csr": "not a request", "key_id": "0a1b" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}: {}", r.body);
        // A request for the old key: a renewal needs a new key pair.
        openssl(
            dir.path(),
            &[
                "req", "-new", "-key", "k.pem", "-subj", "/CN=x", "-out", "same.csr",
            ],
        );
        let r = c
            .post_json(
                &format!("/api/v1/renewals/{id}/csr"),
                json!({ "csr": std::fs::read_to_string(dir.path().join("same.csr")).unwrap(), "key_id": "0a1b" }),
            )
            .await;
        let why = refused(&r, StatusCode::BAD_REQUEST, "ca_request_refused");
        assert!(why.contains("不能沿用"), "{be}: {why}");
        // The new key's request: a certificate with the old subject.
        let new_dir = tempfile::tempdir().unwrap();
        let new_csr = openssl_p256_csr(new_dir.path());
        let r = c
            .post_json(
                &format!("/api/v1/renewals/{id}/csr"),
                json!({ "csr": String::from_utf8(new_csr).unwrap(), "key_id": "0a1b" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let new_serial = r.json()["serial"].as_str().unwrap().to_owned();
        let issued = s.ca_certificate(&new_serial).await.unwrap();
        assert_eq!(issued.subject, x.subject, "{be}");
        assert_eq!(
            issued.predecessor_serial.as_deref(),
            Some(x.serial.as_str())
        );

        // The write failed (the page says so): the new certificate is
        // revoked, the old one stays valid and may be renewed again.
        let r = c
            .post_json(
                &format!("/api/v1/renewals/{id}/failed"),
                json!({ "message": "写入新证书失败" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        assert_eq!(r.json()["renewal"]["state"], "failed", "{be}");
        let issued = s.ca_certificate(&new_serial).await.unwrap();
        assert!(issued.revocation.is_some(), "{be}: the new one is revoked");
        assert!(
            s.ca_certificate(&x.serial)
                .await
                .unwrap()
                .revocation
                .is_none(),
            "{be}: the old one keeps working"
        );
        let mine = s.my_certificates(me).await.unwrap();
        assert_eq!(mine.len(), 1, "{be}");
        assert_eq!(mine[0].certificate.serial, x.serial, "{be}");
        assert_eq!(
            mine[0].ukey.as_ref().unwrap().certificate_serial,
            x.serial,
            "{be}: the key still holds the old one"
        );
        // A failed renewal takes no more reports.
        let r = c
            .post_json(
                &format!("/api/v1/renewals/{id}/written"),
                json!({ "certificate": "AAAA" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{be}: {}", r.body);
        let events: Vec<String> = audit_events(&app, "certificate.renewal")
            .await
            .iter()
            .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert!(
            events.contains(&"started".to_owned()) && events.contains(&"failed".to_owned()),
            "{be}: {events:?}"
        );

        // PIN 解锁 of a key CertHall did not make for this account.
        let r = other
            .post_json(&format!("/api/v1/ukeys/{TOKEN}/unlock/code"), json!({}))
            .await;
        refused(&r, StatusCode::FORBIDDEN, "token_not_ours");
        let r = other
            .post_json(
                &format!("/api/v1/ukeys/{TOKEN}/unlocks"),
                json!({ "agent_key": "x", "code": "123456" }),
            )
            .await;
        refused(&r, StatusCode::FORBIDDEN, "token_not_ours");
        assert!(
            audit_events(&app, "ukey.pin_unlock").await.is_empty(),
            "{be}"
        );

        // A renewal whose page was closed after its certificate was
        // issued: the production job's sweep ends it after 30 minutes and
        // revokes that certificate; the old one stays valid.
        app.clock.advance(Duration::from_secs(61));
        let (id, left) = open_and_issue(&mut c, &app, MINE, &x.serial, dir.path()).await;
        app.clock.advance(Duration::from_secs(29 * 60));
        assert_eq!(s.sweep_production().await.unwrap().renewals_abandoned, 0);
        app.clock.advance(Duration::from_secs(2 * 60));
        assert_eq!(s.sweep_production().await.unwrap().renewals_abandoned, 1);
        assert_eq!(s.sweep_production().await.unwrap().renewals_abandoned, 0);
        assert!(
            s.ca_certificate(&left).await.unwrap().revocation.is_some(),
            "{be}"
        );
        assert!(
            s.ca_certificate(&x.serial)
                .await
                .unwrap()
                .revocation
                .is_none(),
            "{be}"
        );
        assert_eq!(
            s.own_renewal(me, id).await.unwrap().state.as_str(),
            "abandoned",
            "{be}"
        );

        // The old certificate revoked (here by the CA) while a renewal is
        // under way: the read-back does not complete it; the new one is
        // revoked too and the renewal failed.
        let mut c = Client::new(&app, "10.25.0.1");
        c.api_login(MINE).await;
        let (id, late) = open_and_issue(&mut c, &app, MINE, &x.serial, dir.path()).await;
        s.ca_revoke(
            &x.serial,
            certhall_ca::crl::Reason::KeyCompromise,
            Actor::System,
            None,
        )
        .await
        .unwrap();
        let der = s.ca_certificate(&late).await.unwrap().der;
        let r = c
            .post_json(
                &format!("/api/v1/renewals/{id}/written"),
                json!({ "certificate": base64::engine::general_purpose::STANDARD.encode(der) }),
            )
            .await;
        let why = refused(&r, StatusCode::CONFLICT, "renewal_not_open");
        assert!(why.contains("原证书已注销"), "{be}: {why}");
        assert!(
            s.ca_certificate(&late).await.unwrap().revocation.is_some(),
            "{be}: no successor for a revoked certificate"
        );
        assert_eq!(
            s.own_renewal(me, id).await.unwrap().state.as_str(),
            "failed",
            "{be}"
        );
    }
}

/// A priced renewal (`[renewal] price_fen`): refused until paid, with the
/// price named; the 证书更新 order is paid through the payment flow (the
/// demo cashier's signed WeChat Pay callback), after which a cancellation
/// would refund it in full; the renewal then completes the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priced_renewal_is_paid_before_the_key_write() {
    const PAYER: &str = "13600000933";
    for app in TestApp::each().await {
        let app = app.with_renewal_price(20_000);
        let be = app.backend();
        ca_ready(&app).await;
        // The payment callback comes over HTTP.
        let _server = app.serve().await;
        let s = &app.services;
        let m = certhall_service::RequestMeta::default();
        let (me, _, x, dir) = on_token(
            &app,
            PAYER,
            "TK0933",
            "C=CN,O=枣庄更新丙有限公司,USCC=91350100M000100Y43,CN=枣庄更新丙有限公司",
        )
        .await;
        app.clock.set(x.not_after.minus(DAY * 60));
        let mut c = Client::new(&app, "10.25.0.3");
        c.api_login(PAYER).await;
        // Not paid: no code is sent, and the page's message names the price.
        let r = c
            .post_json(
                &format!("/api/v1/certificates/{}/renewal/code", x.serial),
                json!({}),
            )
            .await;
        let why = refused(&r, StatusCode::CONFLICT, "renewal_unpaid");
        assert!(why.contains("200.00 元"), "{be}: {why}");
        // The order that pays for it; asked twice, the same one.
        let order_path = format!("/api/v1/certificates/{}/renewal/order", x.serial);
        let r = c.post_json(&order_path, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let id = certhall_domain::OrderId(r.json()["order"]["id"].as_i64().unwrap());
        assert_eq!(r.json()["next"], format!("/orders/{id}/pay"), "{be}");
        assert_eq!(r.json()["order"]["amount_fen"], 20_000, "{be}");
        let again = c.post_json(&order_path, json!({})).await;
        assert_eq!(again.json()["order"]["id"], json!(id.0), "{be}");
        let order = s.order_of(me, id).await.unwrap();
        assert_eq!(
            (order.kind, order.state),
            (
                certhall_domain::order::OrderKind::Renewal,
                certhall_domain::order::OrderState::AwaitingPayment
            ),
            "{be}"
        );
        // Paid through WeChat Pay's flow.
        let attempt = s
            .start_payment(me, id, certhall_domain::payment::Channel::Wechat, &m)
            .await
            .unwrap();
        assert_eq!(attempt.amount_fen, 20_000, "{be}");
        s.demo_cashier_pay(&attempt.out_trade_no, true)
            .await
            .unwrap();
        let order = s.order_of(me, id).await.unwrap();
        assert_eq!(
            order.state,
            certhall_domain::order::OrderState::AwaitingKeyWrite,
            "{be}"
        );
        // Given up now, it would be refunded in full.
        assert_eq!(
            s.cancel_preview(me, id).await.unwrap().refund_fen,
            Some(20_000),
            "{be}"
        );
        // The renewal, as when it is free; it completes the order.
        let (renewal, new_serial) =
            open_and_issue(&mut c, &app, PAYER, &x.serial, dir.path()).await;
        let der = s.ca_certificate(&new_serial).await.unwrap().der;
        let r = c
            .post_json(
                &format!("/api/v1/renewals/{renewal}/written"),
                json!({ "certificate": base64::engine::general_purpose::STANDARD.encode(der) }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let order = s.order_of(me, id).await.unwrap();
        assert_eq!(
            order.state,
            certhall_domain::order::OrderState::Completed,
            "{be}"
        );
        let old = s.ca_certificate(&x.serial).await.unwrap();
        assert_eq!(
            old.revocation.map(|r| r.reason_code),
            Some(i64::from(certhall_ca::crl::Reason::Superseded.code())),
            "{be}"
        );
        let new = s.ca_certificate(&new_serial).await.unwrap();
        assert_eq!(new.subject, x.subject, "{be}");
        // The renewed certificate's next renewal is due again (a new
        // order): nothing paid is left over.
        assert!(s
            .renewal_unpaid(&s.my_certificate(me, &new_serial).await.unwrap())
            .await
            .unwrap());
    }
}
