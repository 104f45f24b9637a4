//! Steps 6–7 on SQLite and PostgreSQL: the checkout's refusals (nothing
//! half-written), stock that is never oversold, payment through the demo
//! cashier (a real WeChat v3 callback through the real route), duplicate,
//! forged and wrong callbacks, Alipay notifications, the reconciliation
//! job, refunds, and the pages and API around them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use certhall_domain::audit::Actor;
use certhall_domain::checkout::{CheckoutInput, KeyColour};
use certhall_domain::order::OrderState;
use certhall_domain::payment::{AttemptState, Channel, RefundState};
use certhall_domain::{AccountId, Clock, Refusal, Timestamp};
use certhall_service::orders::OrderActor;
use certhall_service::{RequestMeta, ServiceError};
use certhall_store::orders::OrderRow;
use certhall_store::payments;
use certhall_testkit::client::{Client, Reply};
use certhall_testkit::fixtures::{self, approved_order, checkout_input};
use certhall_testkit::TestApp;
use serde_json::{json, Value};

fn refusal(e: ServiceError) -> Refusal {
    e.refusal()
        .cloned()
        .unwrap_or_else(|| panic!("not a refusal: {e}"))
}

fn m() -> RequestMeta {
    RequestMeta::default()
}

/// An approved order with step 6 confirmed: it waits for payment.
async fn awaiting_payment(app: &TestApp, phone: &str) -> (AccountId, OrderRow) {
    fixtures::key_models(app).await;
    let (me, order) = approved_order(app, phone).await;
    let order = app
        .services
        .save_checkout(me, order.id, &checkout_input(), true, &m())
        .await
        .unwrap();
    assert_eq!(order.state, OrderState::AwaitingPayment);
    (me, order)
}

async fn audit_events(app: &TestApp, event: &str) -> Vec<Value> {
    certhall_store::audit::recent(&app.db.store, Some(event), 200)
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

/// Posts a callback to the WeChat route as WeChat Pay would.
async fn post_wechat(app: &TestApp, headers: &[(String, String)], body: &str) -> Reply {
    let mut c = Client::new(app, "101.226.103.1");
    let extra: Vec<(&str, String)> = headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    c.send(
        Method::POST,
        certhall_web::paths::NOTIFY_WECHAT,
        Some("application/json"),
        body.to_owned(),
        &extra,
    )
    .await
}

/// A WeChat v3 callback for `attempt` built by the demo platform (signed
/// with its key, the transaction encrypted with the demo APIv3 key), with
/// the transaction's fields changed by `edit`.
fn wechat_callback(
    app: &TestApp,
    attempt: &payments::AttemptRow,
    edit: impl FnOnce(&mut Value),
) -> certhall_payment::simulator::SignedCallback {
    let sim = app.services.payments.simulator().unwrap();
    let mut tx = json!({
        "appid": certhall_payment::simulator::DEMO_APP_ID,
        "mchid": certhall_payment::simulator::DEMO_MCH_ID,
        "out_trade_no": attempt.out_trade_no,
        "transaction_id": "4200009999202612050000000001",
        "trade_type": "NATIVE", "trade_state": "SUCCESS", "trade_state_desc": "支付成功",
        "bank_type": "OTHERS", "success_time": "2026-11-25T09:05:00+08:00",
        "payer": { "openid": "oTest" },
        "amount": { "total": attempt.amount_fen, "payer_total": attempt.amount_fen, "currency": "CNY" },
    });
    edit(&mut tx);
    sim.sign_callback(
        "unused",
        "TRANSACTION.SUCCESS",
        "支付成功",
        "transaction",
        tx.to_string().as_bytes(),
        app.clock.now(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_six_refusals_leave_the_order_as_it_was() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        fixtures::key_models(&app).await;
        // Before the counter approved: refused, nothing written.
        let (me, early) = fixtures::order_at_step_five(&app, "13600000101").await;
        let err = s
            .save_checkout(me, early.id, &checkout_input(), true, &m())
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "checkout_not_open", "{be}");
        assert_eq!(
            refusal(s.checkout_view(me, early.id).await.unwrap_err()).code(),
            "checkout_not_open"
        );

        let (me, order) = approved_order(&app, "13600000102").await;
        type Change = Box<dyn Fn(&mut CheckoutInput)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "invalid_field",
                Box::new(|c| c.address.phone = "1380013800".into()),
            ),
            (
                "invalid_field",
                Box::new(|c| c.address.phone = "0632-3311111".into()),
            ),
            (
                "unknown_division",
                Box::new(|c| c.address.division = "370400".into()),
            ),
            (
                "unknown_division",
                Box::new(|c| c.address.division = "990101".into()),
            ),
            ("missing_field", Box::new(|c| c.address.street = " ".into())),
            (
                "invalid_tax_id",
                Box::new(|c| {
                    c.invoice.kind = "ordinary".into();
                    c.invoice.buyer_name = "枣庄市恒信建设工程有限公司".into();
                    c.invoice.tax_id = "91370400MA3C8XFH20".into();
                    c.invoice.email = "a@b.cn".into();
                }),
            ),
            (
                "missing_field",
                Box::new(|c| {
                    c.invoice.kind = "special".into();
                    c.invoice.buyer_name = "枣庄市恒信建设工程有限公司".into();
                    c.invoice.tax_id = fixtures::valid_uscc();
                    c.invoice.email = "a@b.cn".into();
                }),
            ),
            (
                "key_model_out_of_stock",
                Box::new(|c| c.key_model = "ukey-compact".into()),
            ),
            (
                "key_model_not_offered",
                Box::new(|c| c.key_model = "no-such-key".into()),
            ),
        ];
        let audit_before = audit_events(&app, "order.checkout_saved").await.len();
        for (code, change) in &cases {
            let mut input = checkout_input();
            change(&mut input);
            let err = s
                .save_checkout(me, order.id, &input, true, &m())
                .await
                .unwrap_err();
            let r = refusal(err);
            assert_eq!(r.code(), *code, "{be}: {input:?}");
            assert!(r
                .message_zh()
                .chars()
                .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)));
            let now = s.order_of(me, order.id).await.unwrap();
            assert_eq!(
                (now.state, now.version),
                (order.state, order.version),
                "{be}"
            );
            assert!(certhall_store::checkouts::get(&app.db.store, order.id)
                .await
                .unwrap()
                .is_none());
        }
        assert_eq!(
            audit_events(&app, "order.checkout_saved").await.len(),
            audit_before,
            "{be}: a refused step 6 was audited as saved"
        );
        assert!(
            s.addresses(me).await.unwrap().is_empty(),
            "{be}: address saved"
        );

        // A good one: amount in fen, stock held, address remembered.
        let mut input = checkout_input();
        input.invoice = certhall_domain::checkout::InvoiceInput {
            kind: "special".into(),
            buyer_name: "枣庄市恒信建设工程有限公司".into(),
            tax_id: fixtures::valid_uscc(),
            address: "山东省枣庄市市中区光明路88号".into(),
            phone: "0632-3311111".into(),
            bank: "中国工商银行枣庄分行".into(),
            account: "1606020109200123456".into(),
            email: "finance@example.com".into(),
        };
        let paid_for = s
            .save_checkout(me, order.id, &input, true, &m())
            .await
            .unwrap();
        assert_eq!(paid_for.state, OrderState::AwaitingPayment, "{be}");
        assert_eq!(paid_for.amount_fen, Some(38_000), "{be}");
        let c = certhall_store::checkouts::get(&app.db.store, order.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.application_fen, c.key_fen, c.total_fen),
            (30_000, 8_000, 38_000)
        );
        assert!(c.reserved);
        assert_eq!(c.division_text, "山东省 枣庄市 市中区");
        assert_eq!(
            c.invoice.unwrap().special.unwrap().bank,
            "中国工商银行枣庄分行"
        );
        let stock = certhall_store::key_models::stock(&app.db.store, "ukey-standard")
            .await
            .unwrap();
        assert_eq!(
            (stock.total(), stock.reserved, stock.available()),
            (100, 1, 99)
        );
        let book = s.addresses(me).await.unwrap();
        assert_eq!(book.len(), 1);
        assert!(book[0].row.is_default);
        // Confirming twice is refused.
        let err = s
            .save_checkout(me, order.id, &checkout_input(), true, &m())
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "order_state_conflict", "{be}");
        let inbox = s.messages(me, 1, 20).await.unwrap();
        assert!(
            inbox
                .items
                .iter()
                .any(|m| m.title.starts_with("待支付") && m.order_id == Some(order.id)),
            "{be}: {:?}",
            inbox.items.iter().map(|m| &m.title).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_key_goes_to_exactly_one_order() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        fixtures::key_models(&app).await;
        // Leave one blue key of the compact model.
        s.adjust_stock("ukey-compact", KeyColour::Blue, 1, "入库", Actor::System)
            .await
            .unwrap();
        let a = approved_order(&app, "13600000111").await;
        let b = approved_order(&app, "13600000112").await;
        let mut input = checkout_input();
        input.key_model = "ukey-compact".into();
        let meta = m();
        let (ra, rb) = tokio::join!(
            s.save_checkout(a.0, a.1.id, &input, false, &meta),
            s.save_checkout(b.0, b.1.id, &input, false, &meta),
        );
        let won = [ra.is_ok(), rb.is_ok()];
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{be}: {won:?}");
        let loser = if ra.is_ok() { rb } else { ra };
        assert_eq!(refusal(loser.unwrap_err()).code(), "key_model_out_of_stock");
        // Counting it out below what is left is refused; cancelling the
        // winner frees the unit.
        let err = s
            .adjust_stock("ukey-compact", KeyColour::Blue, -2, "损坏", Actor::System)
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "invalid_key_model");
        let (who, id) = if won[0] { (a.0, a.1.id) } else { (b.0, b.1.id) };
        s.cancel_order(OrderActor::Applicant(who), id, None, &m())
            .await
            .unwrap();
        let stock = certhall_store::key_models::stock(&app.db.store, "ukey-compact")
            .await
            .unwrap();
        assert_eq!(stock.available(), 1, "{be}");
    }
}

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
        assert!(payments::refunds_of_order(&app.db.store, order.id)
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
            .any(|n| n.order_id == Some(order.id) && n.title.contains("已支付")));
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
            .any(|d| d["order"] == order.id && d["to"] == "paid"));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alipay_notifications_are_verified_before_anything_changes() {
    for app in TestApp::each().await {
        let app = with_alipay(app);
        let be = app.backend();
        let s = &app.services;
        let (me, order) = awaiting_payment(&app, "13600000141").await;
        // The attempt as start_payment records it (Alipay's gateway is not
        // reachable from the tests; its client is tested in the crate).
        let mut tx = app.db.store.begin_write().await.unwrap();
        let no = "CH00000001T001ALIPAY";
        payments::insert_attempt(
            &mut tx,
            &payments::NewAttempt {
                order_id: order.id,
                seq: 1,
                channel: Channel::Alipay,
                out_trade_no: no,
                amount_fen: 38_000,
                description: "CertHall 证书新办",
                code_url: "https://qr.alipay.com/bax00000",
                created_at: app.clock.now(),
                expires_at: app.clock.now().plus(Duration::from_secs(1800)),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
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
    let mut tx = app.db.store.begin_write().await.unwrap();
    let no = "CH00000001T001ALIPAX";
    payments::insert_attempt(
        &mut tx,
        &payments::NewAttempt {
            order_id: order.id,
            seq: 1,
            channel: Channel::Alipay,
            out_trade_no: no,
            amount_fen: 38_000,
            description: "CertHall 证书新办",
            code_url: "https://qr.alipay.com/bax00001",
            created_at: app.clock.now(),
            expires_at: app.clock.now().plus(Duration::from_secs(1800)),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
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
async fn the_job_finds_lost_payments_and_closes_expired_qr_codes() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let s = &app.services;
        let sim = s.payments.simulator().unwrap().clone();

        // A: paid at the provider, callback lost.
        let (me_a, a) = awaiting_payment(&app, "13600000151").await;
        let pa = s
            .start_payment(me_a, a.id, Channel::Wechat, &m())
            .await
            .unwrap();
        let cb = sim
            .pay(&pa.out_trade_no, true, app.clock.now())
            .await
            .unwrap();
        assert!(cb.is_some()); // …and never delivered.
                               // B: never paid.
        let (me_b, b) = awaiting_payment(&app, "13600000152").await;
        let pb = s
            .start_payment(me_b, b.id, Channel::Wechat, &m())
            .await
            .unwrap();

        // Too early: nothing asked.
        let early = s.reconcile_payments().await.unwrap();
        assert_eq!(early.queried, 0, "{be}");
        // After two minutes: A is found paid, B is asked about and left.
        app.clock.advance(Duration::from_secs(121));
        let run = s.reconcile_payments().await.unwrap();
        assert_eq!(
            (run.queried, run.paid, run.closed),
            (2, 1, 0),
            "{be}: {run:?}"
        );
        assert_eq!(
            s.order_of(me_a, a.id).await.unwrap().state,
            OrderState::Paid
        );
        let att = payments::attempt_by_no(&app.db.store, &pa.out_trade_no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(att.settled_by.as_deref(), Some("job"));
        // Asked again within a minute: not again.
        let again = s.reconcile_payments().await.unwrap();
        assert_eq!(again.queried, 0, "{be}");
        // After expiry: B is queried, then closed (at the provider too).
        app.clock.advance(Duration::from_secs(30 * 60));
        let run = s.reconcile_payments().await.unwrap();
        assert_eq!((run.queried, run.closed), (1, 1), "{be}: {run:?}");
        let att = payments::attempt_by_no(&app.db.store, &pb.out_trade_no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(att.state, AttemptState::Closed);
        let trade = sim.trade(&pb.out_trade_no).await.unwrap().unwrap();
        assert_eq!(trade.state.as_str(), "CLOSED", "{be}");
        assert_eq!(
            s.order_of(me_b, b.id).await.unwrap().state,
            OrderState::AwaitingPayment
        );
        // A new try gets a new number.
        let pb2 = s
            .start_payment(me_b, b.id, Channel::Wechat, &m())
            .await
            .unwrap();
        assert_ne!(pb2.out_trade_no, pb.out_trade_no);
        assert_eq!(pb2.seq, 2);

        // One run per tick across "processes" (lease holders).
        let interval = Duration::from_secs(60);
        let first = s.run_payment_job("host-a:1", interval).await.unwrap();
        let second = s.run_payment_job("host-b:2", interval).await.unwrap();
        assert!(first.is_some() && second.is_none(), "{be}");
        app.clock.advance(interval);
        let third = s.run_payment_job("host-b:2", interval).await.unwrap();
        assert!(third.is_some(), "{be}");
        let runs = certhall_store::jobs::runs(&app.db.store, "payments")
            .await
            .unwrap();
        assert_eq!(runs.len(), 2);
        assert!(runs.iter().all(|r| r.finished_at.is_some()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_cancelled_is_refunded_in_full() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let s = &app.services;
        let (me, order) = awaiting_payment(&app, "13600000161").await;
        let p = s
            .start_payment(me, order.id, Channel::Wechat, &m())
            .await
            .unwrap();
        s.demo_cashier_pay(&p.out_trade_no, true).await.unwrap();
        assert_eq!(
            s.order_of(me, order.id).await.unwrap().state,
            OrderState::Paid
        );

        let cancelled = s
            .cancel_order(OrderActor::Applicant(me), order.id, None, &m())
            .await
            .unwrap();
        assert_eq!(cancelled.state, OrderState::Cancelled, "{be}");
        let refunds = payments::refunds_of_order(&app.db.store, order.id)
            .await
            .unwrap();
        assert_eq!(refunds.len(), 1);
        let r = &refunds[0];
        assert_eq!(
            (r.amount_fen, r.state),
            (38_000, RefundState::Processing),
            "{be}"
        );
        assert!(r.out_refund_no.starts_with("RF"));
        assert_ne!(r.out_refund_no, p.out_trade_no);
        // The job asks until it is final.
        let run = s.reconcile_payments().await.unwrap();
        assert_eq!(run.refunds_final, 1, "{be}: {run:?}");
        let r = &payments::refunds_of_order(&app.db.store, order.id)
            .await
            .unwrap()[0];
        assert_eq!(r.state, RefundState::Succeeded);
        assert!(r.provider_refund_id.is_some());
        let inbox = s.messages(me, 1, 50).await.unwrap();
        assert!(
            inbox.items.iter().any(|m| m.title.starts_with("退款成功")),
            "{be}"
        );
        // The stock unit is free again.
        let stock = certhall_store::key_models::stock(&app.db.store, "ukey-standard")
            .await
            .unwrap();
        assert_eq!(stock.reserved, 0, "{be}");
        // A second cancel is refused; the refund is not repeated.
        assert!(s
            .cancel_order(OrderActor::Applicant(me), order.id, None, &m())
            .await
            .is_err());
        assert_eq!(
            payments::refunds_of_order(&app.db.store, order.id)
                .await
                .unwrap()
                .len(),
            1
        );
        let changes = audit_events(&app, "payment.refund_changed").await;
        assert!(changes.iter().any(|d| d["to"] == "requested"));
        assert!(changes.iter().any(|d| d["to"] == "succeeded"));
    }
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
    let refunds = payments::refunds_of_order(&app.db.store, order.id)
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
async fn one_attempt_at_a_time_and_failures_can_be_retried() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let s = &app.services;
        let (me, order) = awaiting_payment(&app, "13600000181").await;
        let meta = m();
        let (x, y) = tokio::join!(
            s.start_payment(me, order.id, Channel::Wechat, &meta),
            s.start_payment(me, order.id, Channel::Wechat, &meta),
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.out_trade_no, y.out_trade_no, "{be}: two attempts at once");
        assert_eq!(
            payments::attempts_of_order(&app.db.store, order.id)
                .await
                .unwrap()
                .len(),
            1
        );
        // 支付失败: no callback; the applicant's check finds it.
        assert_eq!(
            s.demo_cashier_pay(&x.out_trade_no, false).await.unwrap(),
            certhall_service::demo_pay::CashierOutcome::Failed
        );
        let view = s.payment_view(me, order.id, true).await.unwrap();
        assert_eq!(view.attempts[0].state, AttemptState::Failed, "{be}");
        assert!(view.active().is_none());
        let inbox = s.messages(me, 1, 50).await.unwrap();
        assert!(inbox
            .items
            .iter()
            .any(|m| m.title.starts_with("支付未成功")));
        // A new attempt, a new number; then step 6 may be revised (the
        // attempt under way is closed first).
        let z = s
            .start_payment(me, order.id, Channel::Wechat, &m())
            .await
            .unwrap();
        assert_ne!(z.out_trade_no, x.out_trade_no);
        let revised = s.revise_checkout(me, order.id, &m()).await.unwrap();
        assert_eq!(revised.state, OrderState::Approved, "{be}");
        let z = payments::attempt_by_no(&app.db.store, &z.out_trade_no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(z.state, AttemptState::Closed);
        assert!(
            !certhall_store::checkouts::get(&app.db.store, order.id)
                .await
                .unwrap()
                .unwrap()
                .reserved
        );
        // Unknown channel: a clear refusal.
        s.save_checkout(me, order.id, &checkout_input(), false, &m())
            .await
            .unwrap();
        let err = s
            .start_payment(me, order.id, Channel::Alipay, &m())
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "payment_channel_unavailable", "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_steps_six_and_seven_and_the_order_page() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        fixtures::key_models(&app).await;
        let phone = "13600000191";
        let (_, order) = approved_order(&app, phone).await;
        let mut c = Client::new(&app, "10.30.0.1");
        c.page_login(phone).await;
        let id = order.id;

        // The approved order's page leads to step 6.
        let page = c.get(&format!("/orders/{id}")).await;
        assert_eq!(page.status, StatusCode::OK, "{be}: {}", page.body);
        assert!(page.body.contains("data-testid=\"go-checkout\""), "{be}");
        assert!(page.body.contains("审核通过"));
        let page = c.get(&format!("/orders/{id}/checkout")).await;
        assert_eq!(page.status, StatusCode::OK, "{be}: {}", page.body);
        assert!(page.body.contains("标准 UKey"));
        assert!(
            page.body.contains("暂时缺货"),
            "{be}: out of stock not shown"
        );
        let csrf = page.csrf();

        // A bad mobile: explained, and everything typed comes back.
        let uscc: &'static str = Box::leak(fixtures::valid_uscc().into_boxed_str());
        let fields =
            |phone: &'static str, tax: &'static str| -> Vec<(&'static str, &'static str)> {
                vec![
                    ("key_model", "ukey-standard"),
                    ("address_choice", "new"),
                    ("recipient", "王五"),
                    ("phone", phone),
                    ("division", "370402"),
                    ("street", "光明路88号3号楼501室"),
                    ("remember", "1"),
                    ("invoice_kind", "ordinary"),
                    ("buyer_name", "枣庄市恒信建设工程有限公司"),
                    ("tax_id", tax),
                    ("email", "finance@example.com"),
                ]
            };
        let mut f = fields("1380013800", uscc);
        f.push(("_csrf", &csrf));
        let r = c.post_form(&format!("/orders/{id}/checkout"), &f).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}");
        assert!(r.body.contains("收货人手机号应为11位"), "{be}: {}", r.body);
        for kept in [
            "王五",
            "光明路88号3号楼501室",
            "finance@example.com",
            "1380013800",
        ] {
            assert!(r.body.contains(kept), "{be}: lost {kept}");
        }
        assert!(
            r.body
                .contains("<option value=\"370402\" selected>市中区</option>"),
            "{be}"
        );
        // Fixed: on to step 7 with the amount.
        let mut f = fields("13800138000", uscc);
        f.push(("_csrf", &csrf));
        let r = c.post_form(&format!("/orders/{id}/checkout"), &f).await;
        assert_eq!(
            r.location(),
            format!("/orders/{id}/pay"),
            "{be}: {}",
            r.body
        );
        let pay = c.get(&format!("/orders/{id}/pay")).await;
        assert!(pay.body.contains("380.00"), "{be}");
        assert!(pay.body.contains("data-testid=\"pay-wechat\""));
        let r = c
            .post_form(
                &format!("/orders/{id}/pay"),
                &[("_csrf", &pay.csrf()), ("channel", "wechat")],
            )
            .await;
        assert_eq!(r.location(), format!("/orders/{id}/pay"));
        let pay = c.get(&format!("/orders/{id}/pay")).await;
        assert!(pay.body.contains("<svg"), "{be}: no QR code");
        assert!(pay.body.contains("data-testid=\"open-cashier\""));
        let status = c.get(&format!("/orders/{id}/pay/status")).await;
        assert_eq!(status.json()["paid"], false);
        assert_eq!(status.json()["attempt"]["state"], "paying");

        // Paid at the cashier: the status says so, the order page shows it.
        let attempt = payments::attempts_of_order(&app.db.store, id)
            .await
            .unwrap()
            .remove(0);
        let cashier = c
            .get(&format!("/dev/cashier/{}", attempt.out_trade_no))
            .await;
        assert_eq!(cashier.status, StatusCode::OK);
        assert!(cashier.body.contains("¥380.00"));
        let r = c
            .post_form(
                &format!("/dev/cashier/{}", attempt.out_trade_no),
                &[("_csrf", &cashier.csrf()), ("result", "success")],
            )
            .await;
        assert!(r.body.contains("已验签并处理"), "{be}: {}", r.body);
        let status = c.get(&format!("/orders/{id}/pay/status")).await;
        assert_eq!(status.json()["paid"], true, "{be}");
        let page = c.get(&format!("/orders/{id}?paid=1")).await;
        assert!(page.body.contains("支付成功！"), "{be}");
        assert!(page.body.contains("已支付，等待制证"));
        assert!(page.body.contains("data-testid=\"timeline\""));
        for s in ["审核通过", "待支付", "已支付，等待制证", "柜台审核中"] {
            assert!(page.body.contains(s), "{be}: timeline lacks {s}");
        }
        assert!(
            page.body.contains("110105********002X"),
            "{be}: ID not masked"
        );
        assert!(
            !page.body.contains("11010519491231002X"),
            "{be}: full ID shown"
        );
        assert!(page.body.contains("数电普票"));

        // 我的订单: enterprise, application, amount; filters and search.
        let list = c.get("/orders?state=paid").await;
        assert!(list.body.contains("380.00 元"), "{be}");
        assert!(list.body.contains("枣庄市恒信建设工程有限公司"));
        let list = c.get("/orders?state=to_pay").await;
        assert!(list.body.contains("data-testid=\"no-orders\""), "{be}");
        let list = c.get(&format!("/orders?q={id}")).await;
        assert!(list.body.contains(&format!("data-order=\"{id}\"")), "{be}");
        let api = c.get("/api/v1/orders?state=paid").await;
        assert_eq!(api.json()["items"][0]["amount_fen"], 38_000);

        // Messages link to their order.
        let msgs = c.get("/messages").await;
        assert!(
            msgs.body.contains(&format!("href=\"/orders/{id}\"")),
            "{be}"
        );
        assert!(msgs.body.contains("支付成功（证书新办 订单"));

        // Cancelling a paid order asks first and says it is refunded.
        let confirm = c.get(&format!("/orders/{id}/cancel")).await;
        assert!(confirm.body.contains("全额退款"), "{be}");
        let r = c
            .post_form(
                &format!("/orders/{id}/cancel"),
                &[("_csrf", &confirm.csrf())],
            )
            .await;
        assert_eq!(r.location(), format!("/orders/{id}"));
        let page = c.get(&format!("/orders/{id}")).await;
        assert!(page.body.contains("已取消"));
        assert!(page.body.contains("data-testid=\"refund-row\""), "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_steps_six_and_seven_and_the_address_book() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        fixtures::key_models(&app).await;
        let phone = "13600000201";
        let (_, order) = approved_order(&app, phone).await;
        let mut c = Client::new(&app, "10.31.0.1");
        c.api_login(phone).await;
        let id = order.id;

        let r = c.get(&format!("/api/v1/orders/{id}/checkout")).await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let models = r.json()["key_models"].as_array().unwrap().clone();
        assert!(models
            .iter()
            .any(|m| m["code"] == "ukey-standard" && m["available"] == true));
        assert!(models
            .iter()
            .any(|m| m["code"] == "ukey-compact" && m["available"] == false));

        // The address book.
        let r = c
            .post_json(
                "/api/v1/addresses",
                json!({ "recipient": "赵六", "phone": "13900139000", "division": "441900", "street": "南城街道鸿福路1号" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{be}: {}", r.body);
        assert_eq!(r.json()["division_text"], "广东省 东莞市");
        assert_eq!(r.json()["is_default"], true);
        let addr = r.json()["id"].as_i64().unwrap();
        let r = c
            .post_json("/api/v1/addresses", json!({ "recipient": "赵六", "phone": "13900139000", "division": "110000", "street": "x路1号" }))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "unknown_division")
        );

        // Step 6 with a book address; step 7 by the API.
        let r = c
            .send(
                Method::PUT,
                &format!("/api/v1/orders/{id}/checkout"),
                Some("application/json"),
                json!({ "key_model": "ukey-standard", "address_id": addr }).to_string(),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        assert_eq!(r.json()["state"], "awaiting_payment");
        assert_eq!(r.json()["amount_fen"], 38_000);
        let r = c
            .post_json(
                &format!("/api/v1/orders/{id}/payments"),
                json!({ "channel": "wechat" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{be}: {}", r.body);
        let no = r.json()["out_trade_no"].as_str().unwrap().to_owned();
        assert!(r.json()["code_url"].as_str().unwrap().contains(&no));
        let r = c
            .post_json(
                &format!("/api/v1/orders/{id}/payments"),
                json!({ "channel": "paypal" }),
            )
            .await;
        assert_eq!(r.code(), "missing_field");
        app.services.demo_cashier_pay(&no, true).await.unwrap();
        let r = c.get(&format!("/api/v1/orders/{id}/payments")).await;
        assert_eq!(r.json()["order"]["state"], "paid", "{be}");
        assert_eq!(r.json()["attempts"][0]["state"], "paid");
        let r = c.get(&format!("/api/v1/orders/{id}/summary")).await;
        assert!(r.json()["timeline"].as_array().unwrap().len() >= 4);
        assert_eq!(
            r.json()["checkout"]["address"]["division_text"],
            "广东省 东莞市"
        );
        let r = c
            .post_json(
                &format!("/api/v1/orders/{id}/payments"),
                json!({ "channel": "wechat" }),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::CONFLICT, "order_already_paid"),
            "{be}"
        );

        // Another account sees none of it.
        let mut other = Client::new(&app, "10.31.0.2");
        other.api_login("13600000202").await;
        let r = other.get(&format!("/api/v1/orders/{id}/payments")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = other
            .send(
                Method::DELETE,
                &format!("/api/v1/addresses/{addr}"),
                None,
                String::new(),
                &[],
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::NOT_FOUND, "address_not_found")
        );
        let r = c
            .send(
                Method::DELETE,
                &format!("/api/v1/addresses/{addr}"),
                None,
                String::new(),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_legal_representative_is_silent_the_applicant_can_act() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        let (me, order) = fixtures::order_at_step_five(&app, "13600000211").await;
        for kind in [
            certhall_domain::materials::MaterialKind::CompanySeal,
            certhall_domain::materials::MaterialKind::LegalRepSeal,
            certhall_domain::materials::MaterialKind::LegalRepSignature,
        ] {
            s.upload_material(me, order.id, kind, "m.png", fixtures::png(480, 480), &m())
                .await
                .unwrap();
        }
        let sub = certhall_service::materials::MaterialsSubmission {
            authorization: "legal_rep_sms".into(),
            legal_rep_name: "张三".into(),
            legal_rep_id_number: fixtures::APPLICANT_ID.into(),
            legal_rep_phone: "13900139211".into(),
        };
        s.submit_materials(me, order.id, &sub, &m()).await.unwrap();
        let first = s.latest_authorization(order.id).await.unwrap().unwrap();
        // Resend: a new request, the old one withdrawn; the limit holds.
        app.clock.advance(Duration::from_secs(3600));
        let second = s.resend_authorization(me, order.id, &m()).await.unwrap();
        assert_ne!(first.id, second.id);
        assert!(second.expires_at > first.expires_at);
        let err = s.resend_authorization(me, order.id, &m()).await;
        let third_ok = err.is_ok();
        let err = s
            .resend_authorization(me, order.id, &m())
            .await
            .unwrap_err();
        assert!(third_ok, "{be}: the third SMS of the day should go");
        assert_eq!(refusal(err).code(), "authorization_sms_limit", "{be}");
        // A reply to the withdrawn first request is no longer ambiguous:
        // only the newest pending one counts.
        // Revise: back to step 5, uploads kept, request withdrawn.
        let back = s.revise_authorization(me, order.id, &m()).await.unwrap();
        assert_eq!(
            back.state,
            OrderState::Draft {
                reached: certhall_domain::order::Step::Materials
            },
            "{be}"
        );
        assert_eq!(
            s.materials_of(me, order.id).await.unwrap().len(),
            4,
            "{be}: uploads lost"
        );
        let latest = s.latest_authorization(order.id).await.unwrap().unwrap();
        assert_eq!(latest.outcome, "withdrawn", "{be}");
        let _ = s.receive_sms("13900139211", "同意", &m()).await;
        assert_eq!(
            s.order_of(me, order.id).await.unwrap().state,
            OrderState::Draft {
                reached: certhall_domain::order::Step::Materials
            },
            "{be}: a withdrawn request's reply moved the order"
        );
        // Then the letter route instead.
        s.upload_material(
            me,
            order.id,
            certhall_domain::materials::MaterialKind::AuthorizationLetter,
            "l.jpg",
            fixtures::jpeg(900, 1270),
            &m(),
        )
        .await
        .unwrap();
        let sub = certhall_service::materials::MaterialsSubmission {
            authorization: "letter".into(),
            ..sub
        };
        let o = s.submit_materials(me, order.id, &sub, &m()).await.unwrap();
        assert_eq!(o.state, OrderState::InReview, "{be}");
        // In review it can still be cancelled.
        let c = s
            .cancel_order(OrderActor::Applicant(me), order.id, None, &m())
            .await
            .unwrap();
        assert_eq!(c.state, OrderState::Cancelled);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_sees_step_six_and_may_cancel_a_paid_order() {
    let app = TestApp::sqlite().await;
    let _server = app.serve().await;
    let s = &app.services;
    let (me, order) = awaiting_payment(&app, "13600000221").await;
    let p = s
        .start_payment(me, order.id, Channel::Wechat, &m())
        .await
        .unwrap();
    s.demo_cashier_pay(&p.out_trade_no, true).await.unwrap();
    let op = fixtures::operator(&app).await;
    let d = s.review_detail(&op, order.id).await.unwrap();
    let c = d.checkout.unwrap();
    assert_eq!((c.total_fen, c.phone.as_str()), (38_000, "13800138000"));
    assert_eq!(d.attempts.len(), 1);
    // The paid queue shows it.
    let q = s
        .review_queue(&certhall_service::counter::QueueFilter {
            state: Some("paid".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(q.items.iter().any(|i| i.order.id == order.id));
    // A reason is required; then it is cancelled and refunded.
    let err = s
        .counter_cancel(&op, order.id, " ", &m())
        .await
        .unwrap_err();
    assert_eq!(refusal(err).code(), "missing_field");
    let done = s
        .counter_cancel(&op, order.id, "申请人电话要求取消", &m())
        .await
        .unwrap();
    assert_eq!(done.state, OrderState::Cancelled);
    assert_eq!(done.return_reason.as_deref(), Some("申请人电话要求取消"));
    let refunds = payments::refunds_of_order(&app.db.store, order.id)
        .await
        .unwrap();
    assert_eq!(refunds[0].reason, "柜台取消订单，全额退款");
    let _ = Timestamp::from_millis(0);
}
