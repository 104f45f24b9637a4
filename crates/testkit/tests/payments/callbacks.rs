//! Payment callbacks: the demo cashier's real WeChat v3 callback through
//! the real route (a duplicate changes nothing), forged, stale and wrong
//! WeChat callbacks refused and audited, Alipay notifications verified
//! before anything changes, and money that arrives late refunded.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use certhall_domain::order::OrderState;
use certhall_domain::payment::{AttemptState, Channel};
use certhall_domain::Clock;
use certhall_store::payments;
use certhall_testkit::client::Client;
use certhall_testkit::TestApp;
use serde_json::json;

use crate::{
    audit_events, awaiting_payment, m, post_wechat, post_wechat_from, refusal, wechat_callback,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_at_the_demo_cashier_and_a_second_callback_changes_nothing() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let s = &app.services;
        let (me, order) = awaiting_payment(&app, "13600000121").await;

        let attempt = s
            .start_payment(me, order.id, Channel::Wechat, &m())
            .await
            .unwrap();
        assert_eq!(attempt.state, AttemptState::Paying);
        assert_eq!(attempt.amount_fen, 38_000);
        let code_url = attempt.code_url.clone().unwrap();
        assert!(code_url.ends_with(&format!("/dev/cashier/{}", attempt.out_trade_no)));
        // Asking again gives the same QR code, not a new number.
        let again = s
            .start_payment(me, order.id, Channel::Wechat, &m())
            .await
            .unwrap();
        assert_eq!(again.out_trade_no, attempt.out_trade_no, "{be}");

        // 支付成功 at the cashier: a signed v3 callback through the route.
        let outcome = s
            .demo_cashier_pay(&attempt.out_trade_no, true)
            .await
            .unwrap();
        assert_eq!(
            outcome,
            certhall_service::demo_pay::CashierOutcome::Paid {
                callback_status: Some(200)
            },
            "{be}"
        );
        let paid = s.order_of(me, order.id).await.unwrap();
        assert_eq!(paid.state, OrderState::Paid, "{be}");
        let a = payments::attempt_by_no(&app.db.store, &attempt.out_trade_no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.state, AttemptState::Paid);
        assert_eq!(a.settled_by.as_deref(), Some("callback"));
        assert!(a.transaction_id.as_deref().unwrap().starts_with("4200"));
        let cbs = payments::recent_callbacks(&app.db.store, 10).await.unwrap();
        assert_eq!(cbs[0].outcome, "applied", "{be}");
        assert!(!cbs[0].body.is_empty(), "raw body kept");

        // The same payment notified again (a retry), and once more by a
        // second notification: nothing changes.
        let dup = wechat_callback(&app, &a, |t| {
            t["transaction_id"] = json!(a.transaction_id.clone().unwrap());
        });
        for _ in 0..2 {
            let r = post_wechat(&app, &dup.headers, &dup.body).await;
            assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        }
        let after = s.order_of(me, order.id).await.unwrap();
        assert_eq!(
            (after.state, after.version),
            (paid.state, paid.version),
            "{be}"
        );
        let cbs = payments::recent_callbacks(&app.db.store, 10).await.unwrap();
        assert_eq!(cbs[0].outcome, "duplicate");
        assert_eq!(cbs[1].outcome, "duplicate");
        assert!(payments::refunds_of_order(&app.db.store, order.id.0)
            .await
            .unwrap()
            .is_empty());

        // Paying again is refused.
        let err = s
            .start_payment(me, order.id, Channel::Wechat, &m())
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "order_already_paid", "{be}");
        let err = s
            .demo_cashier_pay(&attempt.out_trade_no, true)
            .await
            .unwrap_err();
        assert!(refusal(err).message_zh().contains("支付成功"), "{be}");

        // The applicant and the counter were told; the audit chain has it.
        let inbox = s.messages(me, 1, 50).await.unwrap();
        assert!(inbox
            .items
            .iter()
            .any(|m| m.title.starts_with("支付成功") && m.order_id == Some(order.id)));
        let notices = s.counter_notices(10).await.unwrap();
        assert!(notices
            .iter()
            .any(|n| n.order_id == Some(order.id.0) && n.title.contains("已支付")));
        let outcomes: Vec<String> = audit_events(&app, "payment.callback")
            .await
            .iter()
            .map(|d| d["outcome"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            outcomes.iter().any(|o| o == "applied"),
            "{be}: {outcomes:?}"
        );
        assert_eq!(outcomes.iter().filter(|o| *o == "duplicate").count(), 2);
        assert!(!audit_events(&app, "payment.created").await.is_empty());
        assert!(audit_events(&app, "order.transitioned")
            .await
            .iter()
            .any(|d| d["order"] == order.id.0 && d["to"] == "paid"));
        s.verify_audit_chain().await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_wrong_wechat_callbacks_are_refused_and_audited() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let s = &app.services;
        let (me, order) = awaiting_payment(&app, "13600000131").await;
        let attempt = s
            .start_payment(me, order.id, Channel::Wechat, &m())
            .await
            .unwrap();
        let version = s.order_of(me, order.id).await.unwrap().version;
        let good = wechat_callback(&app, &attempt, |_| {});
        let lower = |h: &[(String, String)]| -> Vec<(String, String)> {
            h.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        };

        // One changed byte in the body.
        let mut tampered = good.body.clone().into_bytes();
        let i = tampered.len() / 2;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        let r = post_wechat(&app, &good.headers, std::str::from_utf8(&tampered).unwrap()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}");
        assert_eq!(r.json()["code"], "FAIL");
        // An unknown serial.
        let mut h = lower(&good.headers);
        for (k, v) in h.iter_mut() {
            if k == "wechatpay-serial" {
                *v = "PUB_KEY_ID_0000000000000000000000000000000000".into();
            }
        }
        assert_eq!(
            post_wechat(&app, &h, &good.body).await.status,
            StatusCode::BAD_REQUEST
        );
        // WeChat Pay's signature probe.
        let mut h = lower(&good.headers);
        for (k, v) in h.iter_mut() {
            if k == "wechatpay-signature" {
                *v = "WECHATPAY/SIGNTEST/9UzR2gYY4y4DdJw9R3Hp0y2PF6T9mhxj".into();
            }
        }
        assert_eq!(
            post_wechat(&app, &h, &good.body).await.status,
            StatusCode::BAD_REQUEST
        );
        // Properly signed, but the wrong amount, or another merchant.
        let wrong_amount = wechat_callback(&app, &attempt, |t| t["amount"]["total"] = json!(1));
        assert_eq!(
            post_wechat(&app, &wrong_amount.headers, &wrong_amount.body)
                .await
                .status,
            StatusCode::BAD_REQUEST
        );
        let other_merchant = wechat_callback(&app, &attempt, |t| t["mchid"] = json!("1900000999"));
        assert_eq!(
            post_wechat(&app, &other_merchant.headers, &other_merchant.body)
                .await
                .status,
            StatusCode::BAD_REQUEST
        );
        let unknown_trade = wechat_callback(&app, &attempt, |t| {
            t["out_trade_no"] = json!("CH99999999T001ZZZZZZ")
        });
        assert_eq!(
            post_wechat(&app, &unknown_trade.headers, &unknown_trade.body)
                .await
                .status,
            StatusCode::BAD_REQUEST
        );
        // Six minutes old (the clock moved on since it was signed).
        app.clock.advance(Duration::from_secs(361));
        assert_eq!(
            post_wechat(&app, &good.headers, &good.body).await.status,
            StatusCode::BAD_REQUEST,
            "{be}: a stale callback was accepted"
        );

        // Nothing moved; every refusal is stored and audited.
        let now = s.order_of(me, order.id).await.unwrap();
        assert_eq!(
            (now.state, now.version),
            (OrderState::AwaitingPayment, version),
            "{be}"
        );
        let a = payments::attempt_by_no(&app.db.store, &attempt.out_trade_no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.state, AttemptState::Paying);
        let mut outcomes: Vec<String> = payments::recent_callbacks(&app.db.store, 20)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.outcome)
            .collect();
        outcomes.sort();
        assert_eq!(
            outcomes,
            [
                "refused_amount_mismatch",
                "refused_bad_signature",
                "refused_signature_probe",
                "refused_stale_timestamp",
                "refused_unknown_key",
                "refused_unknown_trade",
                "refused_wrong_merchant",
            ],
            "{be}"
        );
        let audited = audit_events(&app, "payment.callback").await;
        assert_eq!(audited.len(), 7, "{be}");
        assert!(audited
            .iter()
            .all(|d| d["outcome"].as_str().unwrap().starts_with("refused_")));

        // The genuine one, fresh, still pays.
        let fresh = wechat_callback(&app, &attempt, |_| {});
        assert_eq!(
            post_wechat(&app, &fresh.headers, &fresh.body).await.status,
            StatusCode::OK
        );
        assert_eq!(
            s.order_of(me, order.id).await.unwrap().state,
            OrderState::Paid,
            "{be}"
        );
    }
}

/// The app with Alipay configured (test keys; its gateway is never
/// called: the attempt is recorded directly).
fn with_alipay(mut app: TestApp) -> TestApp {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../payment/tests/fixtures");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let settings = certhall_payment::alipay::AlipaySettings {
        app_id: "2021000000000001".into(),
        seller_id: "2088000000000001".into(),
        app_private_key: certhall_payment::keys::private_key(&read("alipay_app_key.pem")).unwrap(),
        alipay_public_key: certhall_payment::keys::public_key(&read("alipay_platform_key.pub.pem"))
            .unwrap(),
        notify_url: "https://hall.example.cn/api/v1/payment/notify/alipay".into(),
        gateway: "https://openapi.alipay.com/gateway.do".into(),
    };
    let alipay = certhall_payment::alipay::Alipay::new(settings, app.clock.clone()).unwrap();
    app.services.payments = Arc::new(certhall_service::payments::PaymentGateways::new(
        vec![Arc::new(alipay)],
        Default::default(),
    ));
    app.router = certhall_web::app(certhall_web::AppState::new(
        app.services.clone(),
        app.web.clone(),
    ));
    app
}

/// A signed Alipay notification (form body) for `fields`, with Alipay's
/// stand-in key (or another).
fn alipay_notify(fields: &[(&str, &str)], key_file: &str) -> String {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../payment/tests/fixtures");
    let key =
        certhall_payment::keys::private_key(&std::fs::read_to_string(dir.join(key_file)).unwrap())
            .unwrap();
    let map: std::collections::BTreeMap<String, String> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let content = certhall_payment::alipay::notify_check_content(&map);
    let sign = certhall_payment::keys::sign(&key, content.as_bytes()).unwrap();
    let mut all: Vec<(&str, &str)> = fields.to_vec();
    all.push(("sign_type", "RSA2"));
    all.push(("sign", &sign));
    serde_urlencoded::to_string(&all).unwrap()
}

/// The Alipay attempt `start_payment` would record for `order` (Alipay's
/// gateway is not reachable from the tests; its client is tested in the
/// crate): 380 元, 30 minutes.
async fn alipay_attempt(app: &TestApp, order: i64, no: &str, code_url: &str) {
    let mut tx = app.db.store.begin_write().await.unwrap();
    payments::insert_attempt(
        &mut tx,
        &payments::NewAttempt {
            order_id: order,
            seq: 1,
            channel: Channel::Alipay,
            out_trade_no: no,
            amount_fen: 38_000,
            description: "CertHall 证书新办",
            code_url,
            created_at: app.clock.now(),
            expires_at: app.clock.now().plus(Duration::from_secs(1800)),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alipay_notifications_are_verified_before_anything_changes() {
    for app in TestApp::each().await {
        let app = with_alipay(app);
        let be = app.backend();
        let s = &app.services;
        let (me, order) = awaiting_payment(&app, "13600000141").await;
        let no = "CH00000001T001ALIPAY";
        alipay_attempt(&app, order.id.0, no, "https://qr.alipay.com/bax00000").await;
        let version = s.order_of(me, order.id).await.unwrap().version;
        let base = |status: &'static str, amount: &'static str, seller: &'static str| {
            vec![
                ("notify_time", "2026-11-25 09:05:00"),
                ("notify_type", "trade_status_sync"),
                ("notify_id", "ac05099524730693a8b330c5ecf72da9786"),
                ("app_id", "2021000000000001"),
                ("charset", "utf-8"),
                ("version", "1.0"),
                ("trade_no", "2026112522001400000000000001"),
                ("out_trade_no", no),
                ("total_amount", amount),
                ("seller_id", seller),
                ("trade_status", status),
                ("subject", "CertHall 证书新办"),
                ("gmt_payment", "2026-11-25 09:04:58"),
            ]
        };
        let mut c = Client::new(&app, "110.75.143.1");
        for (fields, key) in [
            (
                base("TRADE_SUCCESS", "380.00", "2088000000000001"),
                "other_key.pem",
            ),
            (
                base("TRADE_SUCCESS", "380.00", "2088000000000999"),
                "alipay_platform_key.pem",
            ),
            (
                base("TRADE_SUCCESS", "0.01", "2088000000000001"),
                "alipay_platform_key.pem",
            ),
            (
                base("TRADE_CLOSED", "380.00", "2088000000000001"),
                "alipay_platform_key.pem",
            ),
        ] {
            let r = c
                .send(
                    Method::POST,
                    certhall_web::paths::NOTIFY_ALIPAY,
                    Some("application/x-www-form-urlencoded; charset=utf-8"),
                    alipay_notify(&fields, key),
                    &[],
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{be}");
            let now = s.order_of(me, order.id).await.unwrap();
            assert_eq!(now.state, OrderState::AwaitingPayment, "{be}: {fields:?}");
            let _ = version;
        }
        let outcomes: Vec<String> = payments::recent_callbacks(&app.db.store, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.outcome)
            .collect();
        // Newest first: closed (the attempt closes), amount, seller, key.
        assert_eq!(
            outcomes,
            [
                "closed",
                "refused_amount_mismatch",
                "refused_wrong_merchant",
                "refused_bad_signature"
            ],
            "{be}"
        );
        assert_eq!(audit_events(&app, "payment.callback").await.len(), 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alipay_success_pays_the_order_once() {
    let app = with_alipay(TestApp::sqlite().await);
    let s = &app.services;
    let (me, order) = awaiting_payment(&app, "13600000142").await;
    let no = "CH00000001T001ALIPAX";
    alipay_attempt(&app, order.id.0, no, "https://qr.alipay.com/bax00001").await;
    let body = alipay_notify(
        &[
            ("app_id", "2021000000000001"),
            ("notify_id", "n-1"),
            ("notify_time", "2026-11-25 09:05:00"),
            ("out_trade_no", no),
            ("seller_id", "2088000000000001"),
            ("total_amount", "380.00"),
            ("trade_no", "2026112522001400000000000002"),
            ("trade_status", "TRADE_FINISHED"),
        ],
        "alipay_platform_key.pem",
    );
    let mut c = Client::new(&app, "110.75.143.2");
    for expected in ["applied", "duplicate"] {
        let r = c
            .send(
                Method::POST,
                certhall_web::paths::NOTIFY_ALIPAY,
                Some("application/x-www-form-urlencoded"),
                body.clone(),
                &[],
            )
            .await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "success"));
        let cb = &payments::recent_callbacks(&app.db.store, 1).await.unwrap()[0];
        assert_eq!(cb.outcome, expected);
    }
    assert_eq!(
        s.order_of(me, order.id).await.unwrap().state,
        OrderState::Paid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_for_a_closed_attempt_is_refunded_and_does_not_pay_twice() {
    let app = TestApp::sqlite().await;
    let _server = app.serve().await;
    let s = &app.services;
    let sim = s.payments.simulator().unwrap().clone();
    let (me, order) = awaiting_payment(&app, "13600000171").await;
    let first = s
        .start_payment(me, order.id, Channel::Wechat, &m())
        .await
        .unwrap();
    // We closed it here; the provider still took the money later.
    let mut tx = app.db.store.begin_write().await.unwrap();
    payments::settle_attempt(
        &mut tx,
        &payments::Settlement {
            id: first.id,
            to: AttemptState::Closed,
            by: "test",
            transaction_id: None,
            paid_at: None,
            failure: None,
        },
        app.clock.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let second = s
        .start_payment(me, order.id, Channel::Wechat, &m())
        .await
        .unwrap();
    s.demo_cashier_pay(&second.out_trade_no, true)
        .await
        .unwrap();
    assert_eq!(
        s.order_of(me, order.id).await.unwrap().state,
        OrderState::Paid
    );
    // The late money for the first attempt: paid, then refunded in full.
    let cb = sim
        .pay(&first.out_trade_no, true, app.clock.now())
        .await
        .unwrap()
        .unwrap();
    let headers: Vec<(String, String)> = cb
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let r = post_wechat(&app, &headers, &cb.body).await;
    assert_eq!(r.status, StatusCode::OK);
    let a = payments::attempt_by_no(&app.db.store, &first.out_trade_no)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.state, a.settled_by.as_deref()),
        (AttemptState::Paid, Some("late"))
    );
    let refunds = payments::refunds_of_order(&app.db.store, order.id.0)
        .await
        .unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].attempt_id, first.id);
    assert_eq!(
        s.order_of(me, order.id).await.unwrap().state,
        OrderState::Paid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_junk_callbacks_is_not_stored_and_cannot_block_a_genuine_one() {
    let app = TestApp::sqlite().await;
    let _server = app.serve().await;
    let s = &app.services;
    let (me, order) = awaiting_payment(&app, "13600000231").await;
    let attempt = s
        .start_payment(me, order.id, Channel::Wechat, &m())
        .await
        .unwrap();
    let junk = [("wechatpay-signature".to_owned(), "AAAA".to_owned())];
    for _ in 0..40 {
        let r = post_wechat_from(&app, "203.0.113.9", &junk, "{}").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let stored = payments::recent_callbacks(&app.db.store, 100)
        .await
        .unwrap();
    assert_eq!(stored.len(), 30, "refusals beyond the limit were stored");
    assert_eq!(audit_events(&app, "payment.callback").await.len(), 30);
    // Another sender is not affected; a genuine callback from the flooding
    // address still goes through.
    let r = post_wechat_from(&app, "203.0.113.10", &junk, "{}").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        payments::recent_callbacks(&app.db.store, 100)
            .await
            .unwrap()
            .len(),
        31
    );
    let genuine = wechat_callback(&app, &attempt, |_| {});
    let headers: Vec<(String, String)> = genuine
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let r = post_wechat_from(&app, "203.0.113.9", &headers, &genuine.body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        s.order_of(me, order.id).await.unwrap().state,
        OrderState::Paid
    );
    assert_eq!(
        payments::recent_callbacks(&app.db.store, 1).await.unwrap()[0].outcome,
        "applied"
    );
}
