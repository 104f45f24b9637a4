//! WeChat Pay API v3: known answers and refusals.
//!
//! - Request signatures are compared with what `openssl dgst -sha256 -sign`
//!   makes of the same message (RSASSA-PKCS1-v1_5 is deterministic).
//! - Callbacks come from `fixtures/wechat_callbacks.json`, made by Python's
//!   `cryptography` (OpenSSL) — an implementation independent of ours
//!   (`fixtures/make_wechat_vectors.py`): they must verify and decrypt to
//!   the known transaction, and every tampered variant must be refused.
//! - The adapter runs over real HTTP against the simulator demo mode uses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use certhall_domain::clock::ManualClock;
use certhall_domain::Timestamp;
use certhall_payment::simulator::{self, MemoryLedger, SimRequest, WechatSimulator};
use certhall_payment::wechat::{self, PlatformKey, WechatPay, WechatSettings};
use certhall_payment::{
    keys, Callback, CallbackError, NewPayment, NewRefund, Notice, PaymentError, PaymentProvider,
    RefundStatus, TradeState,
};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn vectors() -> Value {
    serde_json::from_str(&fixture("wechat_callbacks.json")).unwrap()
}

/// The settings the vectors were made for.
fn settings() -> WechatSettings {
    let v = vectors();
    let (serial, cert_key) = keys::certificate(&fixture("wechat_platform_cert.pem")).unwrap();
    assert_eq!(serial, v["certificate_serial"].as_str().unwrap());
    WechatSettings {
        mch_id: "1230000109".into(),
        app_id: "wxd678efh567hg6787".into(),
        merchant_serial_no: "3775B6A45ACD588826D15E583A95F5DD2FD8DA2F".into(),
        merchant_key: keys::private_key(&fixture("wechat_merchant_key.pem")).unwrap(),
        api_v3_key: wechat::api_v3_key(v["api_v3_key"].as_str().unwrap()).unwrap(),
        platform_keys: vec![
            PlatformKey {
                id: v["public_key_id"].as_str().unwrap().into(),
                key: keys::public_key(&fixture("wechat_platform_key.pub.pem")).unwrap(),
            },
            PlatformKey {
                id: serial,
                key: cert_key,
            },
        ],
        notify_url: "https://hall.example.cn/api/v1/payment/notify/wechat".into(),
        endpoint: wechat::DEFAULT_ENDPOINT.into(),
    }
}

fn adapter(settings: WechatSettings, now: Timestamp) -> (WechatPay, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(now));
    (WechatPay::new(settings, clock.clone()).unwrap(), clock)
}

fn vector_time() -> Timestamp {
    Timestamp::from_millis(vectors()["timestamp"].as_i64().unwrap() * 1000)
}

/// The headers and body of a vector, as the web layer hands them over.
fn callback_parts(v: &Value) -> (Vec<(String, String)>, Vec<u8>) {
    let headers = v["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    (headers, v["body"].as_str().unwrap().as_bytes().to_vec())
}

fn verify(
    pay: &WechatPay,
    headers: &[(String, String)],
    body: &[u8],
    now: Timestamp,
) -> Result<Notice, CallbackError> {
    pay.verify_callback(&Callback { headers, body }, now)
}

fn openssl_available() -> bool {
    let ok = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "openssl is required under CI"
        );
        certhall_store::testing::report_skip("openssl not installed");
    }
    ok
}

#[test]
fn request_signature_is_what_openssl_computes() {
    let s = settings();
    let message = wechat::request_message(
        "POST",
        "/v3/pay/transactions/native",
        1_554_208_460,
        "593BEC0C930BF1AFEB40B4A08C8FB242",
        r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","description":"数字证书新办","out_trade_no":"CH00000012T001A7F3K9","amount":{"total":38000,"currency":"CNY"}}"#,
    );
    assert!(message.starts_with(
        "POST\n/v3/pay/transactions/native\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{"
    ));
    assert!(message.ends_with("}\n"));
    let ours = keys::sign(&s.merchant_key, message.as_bytes()).unwrap();
    if openssl_available() {
        let dir = tempfile::tempdir().unwrap();
        let msg = dir.path().join("msg");
        std::fs::write(&msg, message.as_bytes()).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/wechat_merchant_key.pem"),
            )
            .arg(&msg)
            .output()
            .unwrap();
        assert!(out.status.success());
        use base64::Engine as _;
        let theirs = base64::engine::general_purpose::STANDARD.encode(out.stdout);
        assert_eq!(ours, theirs);
    }
    // The header carries it with the merchant's id, nonce, time and serial.
    let header = wechat::authorization(
        &s,
        "GET",
        "/v3/certificates",
        1_554_208_460,
        "593BEC0C930BF1AFEB40B4A08C8FB242",
        "",
    )
    .unwrap();
    assert!(header.starts_with("WECHATPAY2-SHA256-RSA2048 mchid=\"1230000109\",nonce_str=\"593BEC0C930BF1AFEB40B4A08C8FB242\",signature=\""));
    let fields = wechat::parse_authorization(&header).unwrap();
    assert_eq!(fields.timestamp, 1_554_208_460);
    assert_eq!(fields.serial_no, s.merchant_serial_no);
    let merchant_public = keys::public_key(&fixture("wechat_merchant_key.pub.pem")).unwrap();
    assert!(keys::verify(
        &merchant_public,
        b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n",
        &fields.signature
    ));
}

#[test]
fn known_callbacks_verify_and_decrypt() {
    let v = vectors();
    let (pay, _) = adapter(settings(), vector_time());
    for name in ["payment", "payment_by_certificate"] {
        let (headers, body) = callback_parts(&v[name]);
        let notice =
            verify(&pay, &headers, &body, vector_time()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Notice::Payment(p) = notice else {
            panic!("{name}: not a payment notice")
        };
        assert_eq!(p.out_trade_no, "CH00000012T001A7F3K9");
        let TradeState::Paid(paid) = p.state else {
            panic!("{name}: not paid: {:?}", p.state)
        };
        assert_eq!(paid.transaction_id, "4200002026120512345678901234");
        assert_eq!(paid.amount_fen, 38_000);
        assert_eq!(
            paid.paid_at,
            Some(Timestamp::from_millis(1_796_437_801_000))
        );
    }
    let (headers, body) = callback_parts(&v["refund"]);
    match verify(&pay, &headers, &body, vector_time()).unwrap() {
        Notice::Refund(r) => {
            assert_eq!(r.out_refund_no, "RF00000012R001QW8E2R");
            assert!(
                matches!(r.status, RefundStatus::Succeeded { .. }),
                "{:?}",
                r.status
            );
        }
        other => panic!("{other:?}"),
    }
    // Five minutes either way is still accepted.
    let (headers, body) = callback_parts(&v["payment"]);
    for secs in [-300i64, 300] {
        let now = Timestamp::from_millis(vector_time().millis() + secs * 1000);
        assert!(verify(&pay, &headers, &body, now).is_ok(), "{secs}");
    }
}

fn set_header(headers: &mut [(String, String)], name: &str, value: &str) {
    for (k, v) in headers.iter_mut() {
        if k == name {
            *v = value.to_owned();
        }
    }
}

#[test]
fn tampered_callbacks_are_refused() {
    let v = vectors();
    let now = vector_time();
    let (pay, _) = adapter(settings(), now);
    let (headers, body) = callback_parts(&v["payment"]);
    let code = |h: &[(String, String)], b: &[u8], at: Timestamp| {
        verify(&pay, h, b, at).map(|_| ()).unwrap_err().code()
    };

    // One changed byte anywhere in the body.
    for i in [10, body.len() / 2, body.len() - 3] {
        let mut b = body.clone();
        b[i] ^= 0x01;
        assert_eq!(code(&headers, &b, now), "bad_signature", "byte {i}");
    }
    // Six minutes old, or from the future.
    for secs in [360i64, -360] {
        let at = Timestamp::from_millis(now.millis() + secs * 1000);
        assert_eq!(code(&headers, &body, at), "stale_timestamp", "{secs}");
    }
    // A serial we do not know.
    let mut h = headers.clone();
    set_header(
        &mut h,
        "wechatpay-serial",
        "PUB_KEY_ID_0000000000000000000000000000000000",
    );
    assert_eq!(code(&h, &body, now), "unknown_key");
    // Another key's signature under the known id.
    let other = keys::private_key(&fixture("other_key.pem")).unwrap();
    let forged = keys::sign(
        &other,
        &wechat::signed_message(
            h.iter()
                .find(|(k, _)| k == "wechatpay-timestamp")
                .unwrap()
                .1
                .as_str(),
            h.iter()
                .find(|(k, _)| k == "wechatpay-nonce")
                .unwrap()
                .1
                .as_str(),
            &body,
        ),
    )
    .unwrap();
    let mut h = headers.clone();
    set_header(&mut h, "wechatpay-signature", &forged);
    assert_eq!(code(&h, &body, now), "bad_signature");
    // WeChat Pay's probe.
    let mut h = headers.clone();
    set_header(
        &mut h,
        "wechatpay-signature",
        "WECHATPAY/SIGNTEST/9UzR2gYY4y4DdJw9R3Hp0y2PF6T9mhxj",
    );
    assert_eq!(code(&h, &body, now), "signature_probe");
    // A header missing.
    let h: Vec<_> = headers
        .iter()
        .filter(|(k, _)| k != "wechatpay-nonce")
        .cloned()
        .collect();
    assert_eq!(code(&h, &body, now), "missing_field");
    // Properly signed, but for another merchant or another app.
    for (name, field) in [("other_merchant", "mchid"), ("other_app", "appid")] {
        let (h, b) = callback_parts(&v[name]);
        assert_eq!(
            verify(&pay, &h, &b, now).map(|_| ()).unwrap_err(),
            CallbackError::WrongMerchant(field)
        );
    }
    // Properly signed, but encrypted under another APIv3 key.
    let mut other_key = settings();
    other_key.api_v3_key = *b"AnotherApiV3Key0123456789abcdefg";
    let (pay_other, _) = adapter(other_key, now);
    assert_eq!(
        verify(&pay_other, &headers, &body, now)
            .map(|_| ())
            .unwrap_err(),
        CallbackError::Decrypt
    );
}

#[test]
fn resources_round_trip_and_reject_tampering() {
    let key = *b"TestApiV3Key0123456789abcdefghij";
    let r = wechat::encrypt_resource(
        &key,
        "0123456789ab",
        "transaction",
        "transaction",
        b"{\"a\":1}",
    )
    .unwrap();
    assert_eq!(wechat::decrypt_resource(&key, &r).unwrap(), b"{\"a\":1}");
    let mut wrong_aad = r.clone();
    wrong_aad.associated_data = "refund".into();
    assert!(wechat::decrypt_resource(&key, &wrong_aad).is_err());
    let mut wrong_nonce = r.clone();
    wrong_nonce.nonce = "0123456789ac".into();
    assert!(wechat::decrypt_resource(&key, &wrong_nonce).is_err());
    let mut other_algorithm = r;
    other_algorithm.algorithm = "AES_128_CBC".into();
    assert!(matches!(
        wechat::decrypt_resource(&key, &other_algorithm),
        Err(CallbackError::Malformed(_))
    ));
}

// --- The adapter over HTTP against the simulator -------------------------

#[derive(Clone)]
struct Sim {
    sim: Arc<WechatSimulator>,
    clock: Arc<ManualClock>,
}

async fn sim_route(
    State(s): State<Sim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use certhall_domain::Clock;
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("")
        .trim_start_matches("/dev/wechatpay")
        .to_owned();
    let answer = s
        .sim
        .handle(
            SimRequest {
                method: method.as_str(),
                path_and_query: &path,
                authorization: headers.get("authorization").and_then(|v| v.to_str().ok()),
                body: &body,
            },
            s.clock.now(),
        )
        .await;
    let mut res = (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
    for (k, v) in answer.headers {
        res.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    res
}

async fn start_simulator(clock: Arc<ManualClock>) -> (String, Arc<WechatSimulator>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sim = Arc::new(
        WechatSimulator::demo(
            &format!("{base}/dev/cashier"),
            &format!("{base}/api/v1/payment/notify/wechat"),
            Arc::new(MemoryLedger::default()),
        )
        .unwrap(),
    );
    let app = axum::Router::new()
        .route("/dev/wechatpay/{*rest}", axum::routing::any(sim_route))
        .with_state(Sim {
            sim: sim.clone(),
            clock,
        });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, sim)
}

fn payment<'a>(no: &'a str, now: Timestamp) -> NewPayment<'a> {
    NewPayment {
        out_trade_no: no,
        amount_fen: 38_000,
        description: "数字证书新办-订单12",
        expires_at: now.plus(Duration::from_secs(1800)),
        payer_ip: Some("127.0.0.1"),
    }
}

#[tokio::test]
async fn the_adapter_pays_closes_and_refunds_through_the_simulator() {
    let now = Timestamp::from_millis(1_796_437_805_000);
    let clock = Arc::new(ManualClock::new(now));
    let (base, sim) = start_simulator(clock.clone()).await;
    let notify = format!("{base}/api/v1/payment/notify/wechat");
    let settings = simulator::demo_settings(&format!("{base}/dev/wechatpay"), &notify).unwrap();
    let pay = WechatPay::new(settings, clock.clone()).unwrap();

    // Create: the QR code points at the cashier; asking again is harmless.
    let qr = pay
        .create(&payment("CH00000012T001AAAAAA", now))
        .await
        .unwrap();
    assert_eq!(
        qr.code_url,
        format!("{base}/dev/cashier/CH00000012T001AAAAAA")
    );
    assert_eq!(
        pay.create(&payment("CH00000012T001AAAAAA", now))
            .await
            .unwrap(),
        qr
    );
    assert_eq!(
        pay.query("CH00000012T001AAAAAA").await.unwrap(),
        TradeState::NotPaid
    );
    assert_eq!(
        pay.query("CH00000099T001ZZZZZZ").await.unwrap(),
        TradeState::NotFound
    );

    // 支付成功: the callback verifies with the real code.
    let cb = sim
        .pay("CH00000012T001AAAAAA", true, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cb.url, notify);
    let headers: Vec<(String, String)> = cb
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let Notice::Payment(n) = verify(&pay, &headers, cb.body.as_bytes(), now).unwrap() else {
        panic!("not a payment")
    };
    let TradeState::Paid(paid) = n.state else {
        panic!()
    };
    assert_eq!(paid.amount_fen, 38_000);
    assert!(matches!(
        pay.query("CH00000012T001AAAAAA").await.unwrap(),
        TradeState::Paid(_)
    ));
    assert!(
        sim.pay("CH00000012T001AAAAAA", true, now).await.is_err(),
        "paid twice"
    );
    // A paid trade does not close; its number cannot be reused for another amount.
    assert!(matches!(
        pay.close("CH00000012T001AAAAAA").await,
        Err(PaymentError::AlreadyPaid)
    ));
    let mut other = payment("CH00000012T001AAAAAA", now);
    other.amount_fen = 1;
    assert!(
        matches!(pay.create(&other).await, Err(PaymentError::Provider { code, .. }) if code == "OUT_TRADE_NO_USED")
    );

    // Refund: processing, then succeeded on the next query; idempotent.
    let refund = NewRefund {
        out_trade_no: "CH00000012T001AAAAAA",
        out_refund_no: "RF00000012R001AAAAAA",
        refund_fen: 38_000,
        total_fen: 38_000,
        reason: "订单取消",
    };
    assert_eq!(pay.refund(&refund).await.unwrap(), RefundStatus::Processing);
    assert_eq!(pay.refund(&refund).await.unwrap(), RefundStatus::Processing);
    assert!(matches!(
        pay.query_refund("CH00000012T001AAAAAA", "RF00000012R001AAAAAA")
            .await
            .unwrap(),
        RefundStatus::Succeeded {
            refund_id: Some(_),
            ..
        }
    ));
    assert_eq!(
        pay.query_refund("CH00000012T001AAAAAA", "RF00000012R001ZZZZZZ")
            .await
            .unwrap(),
        RefundStatus::NotFound
    );

    // An unpaid trade closes; then it can be neither paid nor reused.
    pay.create(&payment("CH00000012T002BBBBBB", now))
        .await
        .unwrap();
    pay.close("CH00000012T002BBBBBB").await.unwrap();
    assert_eq!(
        pay.query("CH00000012T002BBBBBB").await.unwrap(),
        TradeState::Closed
    );
    assert!(sim.pay("CH00000012T002BBBBBB", true, now).await.is_err());
    assert!(pay
        .create(&payment("CH00000012T002BBBBBB", now))
        .await
        .is_err());

    // 支付失败 sends nothing; the query finds it.
    pay.create(&payment("CH00000012T003CCCCCC", now))
        .await
        .unwrap();
    assert!(sim
        .pay("CH00000012T003CCCCCC", false, now)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        pay.query("CH00000012T003CCCCCC").await.unwrap(),
        TradeState::Failed(_)
    ));

    // An expired QR code cannot be paid.
    pay.create(&payment("CH00000012T004DDDDDD", now))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1801));
    assert!(sim
        .pay("CH00000012T004DDDDDD", true, clock_now(&clock))
        .await
        .is_err());
}

fn clock_now(clock: &ManualClock) -> Timestamp {
    use certhall_domain::Clock;
    clock.now()
}

#[tokio::test]
async fn bad_keys_are_found_out_both_ways() {
    let now = Timestamp::from_millis(1_796_437_805_000);
    let clock = Arc::new(ManualClock::new(now));
    let (base, _sim) = start_simulator(clock.clone()).await;
    let endpoint = format!("{base}/dev/wechatpay");
    let notify = format!("{base}/api/v1/payment/notify/wechat");

    // Signed with a key WeChat Pay does not know for this merchant.
    let mut wrong_merchant = simulator::demo_settings(&endpoint, &notify).unwrap();
    wrong_merchant.merchant_key = keys::private_key(&fixture("other_key.pem")).unwrap();
    let pay = WechatPay::new(wrong_merchant, clock.clone()).unwrap();
    assert!(matches!(
        pay.create(&payment("CH00000013T001AAAAAA", now)).await,
        Err(PaymentError::Provider { code, .. }) if code == "SIGN_ERROR"
    ));

    // An answer signed by a key we do not trust under that id.
    let mut wrong_platform = simulator::demo_settings(&endpoint, &notify).unwrap();
    wrong_platform.platform_keys[0].key = keys::public_key(&fixture("other_key.pub.pem")).unwrap();
    let pay = WechatPay::new(wrong_platform, clock.clone()).unwrap();
    assert!(matches!(
        pay.create(&payment("CH00000013T002AAAAAA", now)).await,
        Err(PaymentError::BadAnswer(_))
    ));

    // A payment whose callback would go elsewhere is refused (the public
    // demo keys must not make the server post to another host).
    let elsewhere = WechatPay::new(
        simulator::demo_settings(&endpoint, "http://10.0.0.1/internal").unwrap(),
        clock.clone(),
    )
    .unwrap();
    assert!(matches!(
        elsewhere.create(&payment("CH00000013T004AAAAAA", now)).await,
        Err(PaymentError::Provider { code, .. }) if code == "PARAM_ERROR"
    ));

    // Our clock six minutes off: the simulator refuses our request.
    let pay = WechatPay::new(
        simulator::demo_settings(&endpoint, &notify).unwrap(),
        Arc::new(ManualClock::new(now.minus(Duration::from_secs(360)))),
    )
    .unwrap();
    assert!(matches!(
        pay.query("CH00000013T003AAAAAA").await,
        Err(PaymentError::Provider { code, .. }) if code == "SIGN_ERROR"
    ));
}

#[test]
fn config_refuses_half_a_public_key_and_short_v3_keys() {
    assert!(wechat::api_v3_key("short").is_err());
    assert!(wechat::api_v3_key("CertHallDemoApiV3Key0123456789ab").is_ok());
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cfg = wechat::WechatConfig {
        mch_id: "1230000109".into(),
        app_id: "wxd678efh567hg6787".into(),
        merchant_serial_no: "3775B6A45ACD588826D15E583A95F5DD2FD8DA2F".into(),
        merchant_key_file: write("k.pem", &fixture("wechat_merchant_key.pem")),
        api_v3_key_file: write("v3", "TestApiV3Key0123456789abcdefghij\n"),
        platform_public_key_id: Some("PUB_KEY_ID_0112300001092026120500000000000001".into()),
        platform_public_key_file: None,
        platform_certificate_files: vec![],
        notify_url: "https://hall.example.cn/api/v1/payment/notify/wechat".into(),
        endpoint: wechat::DEFAULT_ENDPOINT.into(),
    };
    assert!(cfg.load().is_err(), "id without key file");
    let mut ok = cfg.clone();
    ok.platform_public_key_file = Some(write("pub.pem", &fixture("wechat_platform_key.pub.pem")));
    let loaded = ok.load().unwrap();
    assert!(
        !format!("{loaded:?}").contains("TestApiV3Key"),
        "APIv3 key in Debug"
    );
    let mut cert = cfg.clone();
    cert.platform_public_key_id = None;
    cert.platform_certificate_files = vec![write("cert.pem", &fixture("wechat_platform_cert.pem"))];
    assert_eq!(
        cert.load().unwrap().platform_keys[0].id,
        "5157F09EFDC096DE15EBE81A47057A7232F19832"
    );
}
