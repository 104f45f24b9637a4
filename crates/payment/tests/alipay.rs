//! The Alipay adapter: request signing against openssl, notification
//! verification, and the whole adapter against a fake Alipay gateway on
//! 127.0.0.1 that checks our request signatures with the app's public key
//! and signs its answers with a stand-in for Alipay's key.
//!
//! Fixture keys: `alipay_app_key.pem` is our app key,
//! `alipay_platform_key.pem` stands in for Alipay's key, `other_key.pem`
//! is an attacker's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use certhall_domain::clock::ManualClock;
use certhall_domain::Timestamp;
use certhall_payment::alipay::{self, Alipay, AlipayConfig, AlipaySettings};
use certhall_payment::{
    keys, Callback, CallbackError, Channel, NewPayment, NewRefund, Notice, PaidTrade, PaymentError,
    PaymentNotice, PaymentProvider, RefundNotice, RefundStatus, TradeState,
};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rsa::{RsaPrivateKey, RsaPublicKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const APP_ID: &str = "2021004123456789";
const SELLER_ID: &str = "2088621987654321";
const NOTIFY_URL: &str = "https://certhall.example.cn/api/v1/payment/notify/alipay";
/// 2026-11-25T06:30:00Z: 14:30:00 in Beijing.
const NOW_MS: i64 = 1_795_588_200_000;
const OUT_TRADE_NO: &str = "CH20261125000012";
const TRADE_NO: &str = "2026112522001412345678901234";

fn now() -> Timestamp {
    Timestamp::from_millis(NOW_MS)
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn private(name: &str) -> RsaPrivateKey {
    keys::private_key(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn public(name: &str) -> RsaPublicKey {
    keys::public_key(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn settings(gateway: &str) -> AlipaySettings {
    AlipaySettings {
        app_id: APP_ID.to_owned(),
        seller_id: SELLER_ID.to_owned(),
        app_private_key: private("alipay_app_key.pem"),
        alipay_public_key: public("alipay_platform_key.pub.pem"),
        notify_url: NOTIFY_URL.to_owned(),
        gateway: gateway.to_owned(),
    }
}

fn adapter(gateway: &str) -> Alipay {
    Alipay::new(settings(gateway), Arc::new(ManualClock::new(now()))).unwrap()
}

// ---------------------------------------------------------------------
// 1. Request signing: known answers.
// ---------------------------------------------------------------------

/// `openssl dgst -sha256 -sign <key>` over `content`, Base64. `None` (with
/// a `SKIPPED:` line) only when openssl is missing outside CI.
fn openssl_sign(key: &str, content: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("content.txt");
    std::fs::write(&file, content).unwrap();
    let out = match Command::new("openssl")
        .arg("dgst")
        .arg("-sha256")
        .arg("-sign")
        .arg(fixture(key))
        .arg(&file)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("openssl is required under CI=true");
            }
            certhall_store::testing::report_skip(
                "openssl not found; the signature is not checked against it",
            );
            return None;
        }
        Err(e) => panic!("openssl: {e}"),
    };
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(STANDARD.encode(out.stdout))
}

const PRECREATE_BIZ: &str = r#"{"out_trade_no":"CH20261125000012","subject":"数字证书新办-订单12","time_expire":"2026-11-25 15:00:00","timeout_express":"30m","total_amount":"88.88"}"#;

#[test]
fn request_sign_content_and_signature_are_known_answers() {
    let s = settings(alipay::DEFAULT_GATEWAY);
    let params = alipay::signed_params(
        &s,
        "alipay.trade.precreate",
        PRECREATE_BIZ,
        Some(NOTIFY_URL),
        now(),
    )
    .unwrap();
    let names: Vec<&str> = params.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "app_id",
            "biz_content",
            "charset",
            "format",
            "method",
            "notify_url",
            "sign",
            "sign_type",
            "timestamp",
            "version"
        ]
    );
    let content = alipay::sign_content(&params);
    assert_eq!(
        content,
        "app_id=2021004123456789\
         &biz_content={\"out_trade_no\":\"CH20261125000012\",\"subject\":\"数字证书新办-订单12\",\
         \"time_expire\":\"2026-11-25 15:00:00\",\"timeout_express\":\"30m\",\"total_amount\":\"88.88\"}\
         &charset=utf-8&format=JSON&method=alipay.trade.precreate\
         &notify_url=https://certhall.example.cn/api/v1/payment/notify/alipay\
         &sign_type=RSA2&timestamp=2026-11-25 14:30:00&version=1.0"
    );
    // Our own verification, then openssl's signature byte for byte
    // (PKCS#1 v1.5 is deterministic).
    assert!(keys::verify(
        &public("alipay_app_key.pub.pem"),
        content.as_bytes(),
        &params["sign"]
    ));
    if let Some(expected) = openssl_sign("alipay_app_key.pem", &content) {
        assert_eq!(params["sign"], expected);
    }
}

#[test]
fn query_request_has_no_notify_url() {
    let s = settings(alipay::DEFAULT_GATEWAY);
    let biz = r#"{"out_trade_no":"CH20261125000012"}"#;
    let params = alipay::signed_params(&s, "alipay.trade.query", biz, None, now()).unwrap();
    let content = alipay::sign_content(&params);
    assert_eq!(
        content,
        "app_id=2021004123456789&biz_content={\"out_trade_no\":\"CH20261125000012\"}\
         &charset=utf-8&format=JSON&method=alipay.trade.query&sign_type=RSA2\
         &timestamp=2026-11-25 14:30:00&version=1.0"
    );
    if let Some(expected) = openssl_sign("alipay_app_key.pem", &content) {
        assert_eq!(params["sign"], expected);
    }
}

#[test]
fn sign_content_skips_sign_and_empty_values_and_does_not_encode() {
    let params: BTreeMap<String, String> = [
        ("b", "x y&z=1+2"),
        ("a", "1"),
        ("app_auth_token", ""),
        ("sign", "ignored"),
        ("c", "数字"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(alipay::sign_content(&params), "a=1&b=x y&z=1+2&c=数字");
}

#[test]
fn form_body_is_percent_encoded_utf8() {
    let params: BTreeMap<String, String> = [
        ("biz_content", r#"{"a":"数 字+&="}"#),
        ("timestamp", "2026-11-25 14:30:00"),
        ("sign", "ab+/cd=="),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(
        alipay::form_encode(&params),
        "biz_content=%7B%22a%22%3A%22%E6%95%B0%20%E5%AD%97%2B%26%3D%22%7D\
         &sign=ab%2B%2Fcd%3D%3D&timestamp=2026-11-25%2014%3A30%3A00"
    );
}

#[test]
fn times_are_china_time() {
    assert_eq!(alipay::alipay_time(now()), "2026-11-25 14:30:00");
    assert_eq!(
        alipay::parse_alipay_time("2026-11-25 14:30:00"),
        Some(now())
    );
    assert_eq!(
        alipay::parse_alipay_time("2026-11-25 14:30:00.320"),
        Some(Timestamp::from_millis(NOW_MS + 320))
    );
    for bad in [
        "",
        "2026-11-25",
        "2026-11-25T14:30:00",
        "2026-13-01 00:00:00",
    ] {
        assert_eq!(alipay::parse_alipay_time(bad), None, "{bad:?}");
    }
    let at = |secs: i64| Timestamp::from_millis(NOW_MS + secs * 1000);
    assert_eq!(alipay::timeout_express(now(), at(30 * 60)), "30m");
    assert_eq!(alipay::timeout_express(now(), at(30 * 60 - 1)), "29m");
    assert_eq!(alipay::timeout_express(now(), at(20)), "1m");
    assert_eq!(alipay::timeout_express(now(), at(-600)), "1m");
    assert_eq!(alipay::timeout_express(now(), at(30 * 86_400)), "21600m");
    assert_eq!(
        alipay::response_node("alipay.trade.fastpay.refund.query"),
        "alipay_trade_fastpay_refund_query_response"
    );
}

#[test]
fn answer_signature_covers_the_raw_node_text() {
    let key = public("alipay_platform_key.pub.pem");
    // Spacing and a \u escape: the signature is over these exact bytes.
    let node = r#"{"code": "10000","msg":"Success", "out_trade_no":"CH1","subject":"\u6570"}"#;
    let sign = keys::sign(&private("alipay_platform_key.pem"), node.as_bytes()).unwrap();
    let body = format!(r#"{{"alipay_trade_query_response":{node},"sign":"{sign}"}}"#);
    let answer = alipay::verify_answer(&key, "alipay.trade.query", &body).unwrap();
    assert_eq!(answer.node, node);
    assert!(answer.signed);
    // The same content re-serialized is not what was signed.
    let compact = r#"{"code":"10000","msg":"Success","out_trade_no":"CH1","subject":"数"}"#;
    let body = format!(r#"{{"alipay_trade_query_response":{compact},"sign":"{sign}"}}"#);
    assert!(matches!(
        alipay::verify_answer(&key, "alipay.trade.query", &body),
        Err(PaymentError::BadAnswer(_))
    ));
    // An answer for another method is not taken.
    let body = format!(r#"{{"alipay_trade_close_response":{node},"sign":"{sign}"}}"#);
    assert!(matches!(
        alipay::verify_answer(&key, "alipay.trade.query", &body),
        Err(PaymentError::BadAnswer(_))
    ));
}

// ---------------------------------------------------------------------
// 2. Notifications.
// ---------------------------------------------------------------------

type Pairs = Vec<(String, String)>;

/// The content Alipay signs, computed here independently of the adapter:
/// all but `sign` and `sign_type`, sorted, decoded values, empty included.
fn canonical(pairs: &Pairs) -> String {
    let mut sorted: Vec<&(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "sign" && k != "sign_type")
        .collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Form-encodes as Java's `URLEncoder` does: `A-Z a-z 0-9 . - * _` kept,
/// spaces as `+`, everything else `%XY` of the UTF-8 bytes.
fn encode_pairs(pairs: &Pairs) -> String {
    const JAVA_URL_ENCODER: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'.')
        .remove(b'-')
        .remove(b'*')
        .remove(b'_');
    let enc = |s: &str| {
        utf8_percent_encode(s, JAVA_URL_ENCODER)
            .to_string()
            .replace("%20", "+")
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A `TRADE_SUCCESS` notification as Alipay sends it (in its own order).
fn paid_pairs() -> Pairs {
    [
        ("gmt_create", "2026-11-25 14:31:02"),
        ("charset", "utf-8"),
        ("seller_email", "finance@certhall.example.cn"),
        ("subject", "数字证书新办-订单12"),
        ("body", "证书 1 年 + 介质 & 快递=顺丰"),
        ("buyer_id", "2088102177846875"),
        ("invoice_amount", "88.88"),
        ("notify_id", "2026112500222143110012345678"),
        (
            "fund_bill_list",
            r#"[{"amount":"88.88","fundChannel":"ALIPAYACCOUNT"}]"#,
        ),
        ("notify_type", "trade_status_sync"),
        ("trade_status", "TRADE_SUCCESS"),
        ("receipt_amount", "88.88"),
        ("app_id", APP_ID),
        ("buyer_pay_amount", "88.88"),
        ("sign_type", "RSA2"),
        ("seller_id", SELLER_ID),
        ("gmt_payment", "2026-11-25 14:31:10"),
        ("notify_time", "2026-11-25 14:31:11"),
        ("passback_params", ""),
        ("version", "1.0"),
        ("out_trade_no", OUT_TRADE_NO),
        ("total_amount", "88.88"),
        ("trade_no", TRADE_NO),
        ("auth_app_id", APP_ID),
        ("buyer_logon_id", "159****5620"),
        ("point_amount", "0.00"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with(mut pairs: Pairs, name: &str, value: &str) -> Pairs {
    match pairs.iter_mut().find(|(k, _)| k == name) {
        Some(pair) => pair.1 = value.to_owned(),
        None => pairs.push((name.to_owned(), value.to_owned())),
    }
    pairs
}

fn without(mut pairs: Pairs, name: &str) -> Pairs {
    pairs.retain(|(k, _)| k != name);
    pairs
}

/// The body of `pairs` signed with `key` (a fixture), `sign` last.
fn signed_body(pairs: &Pairs, key: &str) -> String {
    let sign = keys::sign(&private(key), canonical(pairs).as_bytes()).unwrap();
    let mut all = pairs.clone();
    all.push(("sign".to_owned(), sign));
    encode_pairs(&all)
}

fn verify(alipay: &Alipay, body: &str) -> Result<Notice, CallbackError> {
    let headers = vec![(
        "content-type".to_owned(),
        "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
    )];
    alipay.verify_callback(
        &Callback {
            headers: &headers,
            body: body.as_bytes(),
        },
        now(),
    )
}

#[test]
fn notification_check_content_is_known() {
    let pairs: Pairs = [
        ("b", "x y"),
        ("sign", "s"),
        ("a", ""),
        ("sign_type", "RSA2"),
        ("c", "1+1&2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let map: BTreeMap<String, String> = pairs.iter().cloned().collect();
    assert_eq!(alipay::notify_check_content(&map), "a=&b=x y&c=1+1&2");
    assert_eq!(canonical(&pairs), "a=&b=x y&c=1+1&2");
    // The form decoder: '+' is a space, %2B a plus.
    let parsed = alipay::parse_form(b"b=x+y&c=1%2B1%262&a=&sign=s").unwrap();
    assert_eq!(parsed["b"], "x y");
    assert_eq!(parsed["c"], "1+1&2");
    assert_eq!(parsed["a"], "");
}

#[test]
fn paid_notification_is_verified_and_read() {
    let alipay = adapter(alipay::DEFAULT_GATEWAY);
    let body = signed_body(&paid_pairs(), "alipay_platform_key.pem");
    // The encoding really exercises '+', '%2B', '%26' and UTF-8.
    assert!(body.contains("+%2B+"), "{body}");
    assert!(body.contains("%26"));
    assert!(body.contains("%E6%95%B0"));
    let notice = verify(&alipay, &body).unwrap();
    assert_eq!(
        notice,
        Notice::Payment(PaymentNotice {
            notification_id: "2026112500222143110012345678".into(),
            out_trade_no: OUT_TRADE_NO.into(),
            state: TradeState::Paid(PaidTrade {
                transaction_id: TRADE_NO.into(),
                amount_fen: 8888,
                paid_at: Some(Timestamp::from_millis(NOW_MS + 70_000)),
            }),
        })
    );
    // TRADE_FINISHED is paid too.
    let body = signed_body(
        &with(paid_pairs(), "trade_status", "TRADE_FINISHED"),
        "alipay_platform_key.pem",
    );
    assert!(matches!(
        verify(&alipay, &body),
        Ok(Notice::Payment(PaymentNotice {
            state: TradeState::Paid(_),
            ..
        }))
    ));
}

#[test]
fn forged_or_altered_notifications_are_refused() {
    let alipay = adapter(alipay::DEFAULT_GATEWAY);
    let expect = |body: &str, code: &str| {
        let err = verify(&alipay, body).unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        err
    };

    // Signed by someone else.
    expect(
        &signed_body(&paid_pairs(), "other_key.pem"),
        "bad_signature",
    );

    // One byte of the amount changed after signing.
    let body = signed_body(&paid_pairs(), "alipay_platform_key.pem");
    let altered = body.replace("total_amount=88.88", "total_amount=88.89");
    assert_ne!(altered, body);
    expect(&altered, "bad_signature");
    // A changed byte of the Chinese subject.
    let altered = body.replacen("%E6%95%B0", "%E6%95%B1", 1);
    assert_ne!(altered, body);
    expect(&altered, "bad_signature");

    // Genuinely signed, but for another merchant or app.
    let err = expect(
        &signed_body(
            &with(paid_pairs(), "seller_id", "2088000000000001"),
            "alipay_platform_key.pem",
        ),
        "wrong_merchant",
    );
    assert_eq!(err, CallbackError::WrongMerchant("seller_id"));
    let err = expect(
        &signed_body(
            &with(paid_pairs(), "app_id", "2021009999999999"),
            "alipay_platform_key.pem",
        ),
        "wrong_merchant",
    );
    assert_eq!(err, CallbackError::WrongMerchant("app_id"));
    let err = expect(
        &signed_body(
            &without(paid_pairs(), "seller_id"),
            "alipay_platform_key.pem",
        ),
        "wrong_merchant",
    );
    assert_eq!(err, CallbackError::WrongMerchant("seller_id"));

    // Amounts that do not read exactly.
    for bad in ["88.888", "-1", "-1.00", "88,88", "1e3", ""] {
        let err = expect(
            &signed_body(
                &with(paid_pairs(), "total_amount", bad),
                "alipay_platform_key.pem",
            ),
            if bad.is_empty() {
                "missing_field"
            } else {
                "malformed"
            },
        );
        if !bad.is_empty() {
            assert_eq!(err, CallbackError::Malformed("total_amount".into()));
        }
    }

    // No signature; no or another signature type.
    let err = expect(&encode_pairs(&paid_pairs()), "missing_field");
    assert_eq!(err, CallbackError::Missing("sign"));
    let err = expect(
        &signed_body(
            &without(paid_pairs(), "sign_type"),
            "alipay_platform_key.pem",
        ),
        "missing_field",
    );
    assert_eq!(err, CallbackError::Missing("sign_type"));
    // sign_type is outside the signed content: a valid RSA2 signature
    // relabelled "RSA" (SHA1withRSA) is still refused.
    expect(
        &signed_body(
            &with(paid_pairs(), "sign_type", "RSA"),
            "alipay_platform_key.pem",
        ),
        "malformed",
    );

    // A repeated parameter (what is verified must be what is read).
    let body = signed_body(&paid_pairs(), "alipay_platform_key.pem");
    expect(&format!("{body}&total_amount=0.01"), "malformed");
    // Not UTF-8.
    expect("subject=%FF%FE&sign=x&sign_type=RSA2", "malformed");

    // Verified, but missing what it must name.
    expect(
        &signed_body(
            &without(paid_pairs(), "notify_id"),
            "alipay_platform_key.pem",
        ),
        "missing_field",
    );
    expect(
        &signed_body(
            &without(paid_pairs(), "trade_no"),
            "alipay_platform_key.pem",
        ),
        "missing_field",
    );
    expect(
        &signed_body(
            &with(paid_pairs(), "trade_status", "TRADE_PENDING"),
            "alipay_platform_key.pem",
        ),
        "malformed",
    );
}

#[test]
fn closed_and_waiting_notifications_are_not_paid() {
    let alipay = adapter(alipay::DEFAULT_GATEWAY);
    let body = signed_body(
        &with(
            without(without(paid_pairs(), "gmt_payment"), "trade_no"),
            "trade_status",
            "TRADE_CLOSED",
        ),
        "alipay_platform_key.pem",
    );
    assert_eq!(
        verify(&alipay, &body).unwrap(),
        Notice::Payment(PaymentNotice {
            notification_id: "2026112500222143110012345678".into(),
            out_trade_no: OUT_TRADE_NO.into(),
            state: TradeState::Closed,
        })
    );
    let body = signed_body(
        &with(paid_pairs(), "trade_status", "WAIT_BUYER_PAY"),
        "alipay_platform_key.pem",
    );
    assert!(matches!(
        verify(&alipay, &body).unwrap(),
        Notice::Payment(PaymentNotice {
            state: TradeState::UserPaying,
            ..
        })
    ));
}

#[test]
fn refund_notification_is_read_as_a_refund() {
    let alipay = adapter(alipay::DEFAULT_GATEWAY);
    // A partial refund: the trade stays TRADE_SUCCESS; out_biz_no is our
    // out_request_no, refund_fee the total refunded so far.
    let pairs = with(
        with(
            with(paid_pairs(), "out_biz_no", "RF20261126000003"),
            "refund_fee",
            "10.00",
        ),
        "gmt_refund",
        "2026-11-26 10:00:00.320",
    );
    let body = signed_body(&pairs, "alipay_platform_key.pem");
    assert_eq!(
        verify(&alipay, &body).unwrap(),
        Notice::Refund(RefundNotice {
            notification_id: "2026112500222143110012345678".into(),
            out_trade_no: OUT_TRADE_NO.into(),
            out_refund_no: "RF20261126000003".into(),
            status: RefundStatus::Succeeded {
                refund_id: None,
                // 2026-11-26 02:00:00.320 UTC
                at: Some(Timestamp::from_millis(NOW_MS + 70_200_000 + 320)),
            },
        })
    );
    // A full refund closes the trade; it is still a refund notice.
    let body = signed_body(
        &with(pairs.clone(), "trade_status", "TRADE_CLOSED"),
        "alipay_platform_key.pem",
    );
    assert!(matches!(verify(&alipay, &body).unwrap(), Notice::Refund(_)));
    // The refunded amount must read exactly too.
    let body = signed_body(
        &with(pairs, "refund_fee", "10.001"),
        "alipay_platform_key.pem",
    );
    assert_eq!(verify(&alipay, &body).unwrap_err().code(), "malformed");
}

#[test]
fn answers_to_alipay() {
    let alipay = adapter(alipay::DEFAULT_GATEWAY);
    assert_eq!(alipay.channel(), Channel::Alipay);
    let yes = alipay.answer(true);
    assert_eq!((yes.status, yes.body.as_str()), (200, "success"));
    assert!(yes.content_type.starts_with("text/plain"));
    let no = alipay.answer(false);
    assert_eq!((no.status, no.body.as_str()), (200, "failure"));
}

// ---------------------------------------------------------------------
// Configuration.
// ---------------------------------------------------------------------

fn bare_base64(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
}

#[test]
fn config_loads_pem_and_bare_base64_keys_and_masks_them() {
    let dir = tempfile::tempdir().unwrap();
    let app_pem = std::fs::read_to_string(fixture("alipay_app_key.pem")).unwrap();
    let bare_app = dir.path().join("app_private_key.txt");
    std::fs::write(&bare_app, bare_base64(&app_pem)).unwrap();
    let bare_alipay = dir.path().join("alipay_public_key.txt");
    std::fs::write(
        &bare_alipay,
        bare_base64(&std::fs::read_to_string(fixture("alipay_platform_key.pub.pem")).unwrap()),
    )
    .unwrap();

    for (app, platform) in [
        (
            fixture("alipay_app_key.pem"),
            fixture("alipay_platform_key.pub.pem"),
        ),
        (bare_app.clone(), bare_alipay.clone()),
    ] {
        let text = serde_json::json!({
            "app_id": APP_ID,
            "seller_id": SELLER_ID,
            "app_private_key_file": app,
            "alipay_public_key_file": platform,
            "notify_url": NOTIFY_URL,
        });
        let config: AlipayConfig = serde_json::from_value(text).unwrap();
        assert_eq!(config.gateway, alipay::DEFAULT_GATEWAY);
        let alipay = config
            .clone()
            .load(Arc::new(ManualClock::new(now())))
            .unwrap();
        // The loaded key signs what our public key verifies.
        let params =
            alipay::signed_params(alipay.settings(), "alipay.trade.query", "{}", None, now())
                .unwrap();
        assert!(keys::verify(
            &public("alipay_app_key.pub.pem"),
            alipay::sign_content(&params).as_bytes(),
            &params["sign"]
        ));
        let shown = format!("{alipay:?} {config:?}");
        assert!(shown.contains(APP_ID));
        assert!(shown.contains("***"));
        let key_line = app_pem.lines().nth(3).unwrap();
        assert!(!shown.contains(key_line), "the key leaks into Debug");
    }

    let unknown = serde_json::from_value::<AlipayConfig>(serde_json::json!({
        "app_id": APP_ID, "seller_id": SELLER_ID,
        "app_private_key_file": "a", "alipay_public_key_file": "b",
        "notify_url": NOTIFY_URL, "app_cert_file": "c",
    }));
    assert!(unknown.is_err());

    let mut bad = settings(alipay::DEFAULT_GATEWAY);
    bad.seller_id = "1234".into();
    assert!(matches!(
        Alipay::new(bad, Arc::new(ManualClock::new(now()))),
        Err(PaymentError::Config(_))
    ));
    let missing = AlipayConfig {
        app_id: APP_ID.into(),
        seller_id: SELLER_ID.into(),
        app_private_key_file: dir.path().join("nope.pem"),
        alipay_public_key_file: bare_alipay,
        notify_url: NOTIFY_URL.into(),
        gateway: alipay::DEFAULT_GATEWAY.into(),
    };
    assert!(matches!(
        missing.load(Arc::new(ManualClock::new(now()))),
        Err(PaymentError::Config(_))
    ));
}

// ---------------------------------------------------------------------
// 3. The adapter against a fake Alipay gateway.
// ---------------------------------------------------------------------

/// How the fake signs an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    /// The stand-in Alipay key (genuine).
    Alipay,
    /// The attacker's key.
    Other,
    /// No `sign`.
    Unsigned,
    /// The genuine key, over other content than sent.
    Tampered,
}

/// One answer of the fake: the node name, its JSON text, how it is signed.
struct Reply {
    node: String,
    json: String,
    signer: Signer,
}

fn reply(method: &str, json: &str) -> Reply {
    Reply {
        node: alipay::response_node(method),
        json: json.to_owned(),
        signer: Signer::Alipay,
    }
}

impl Reply {
    fn signed_by(mut self, signer: Signer) -> Self {
        self.signer = signer;
        self
    }

    fn body(&self) -> String {
        let sign = |key: &str, text: &str| keys::sign(&private(key), text.as_bytes()).unwrap();
        let sign = match self.signer {
            Signer::Alipay => Some(sign("alipay_platform_key.pem", &self.json)),
            Signer::Other => Some(sign("other_key.pem", &self.json)),
            Signer::Tampered => Some(sign(
                "alipay_platform_key.pem",
                &self.json.replacen("10000", "10001", 1),
            )),
            Signer::Unsigned => None,
        };
        match sign {
            Some(sign) => format!(r#"{{"{}":{},"sign":"{sign}"}}"#, self.node, self.json),
            None => format!(r#"{{"{}":{}}}"#, self.node, self.json),
        }
    }
}

/// A request the fake received (signature already checked).
#[derive(Debug, Clone)]
struct Received {
    content_type: String,
    params: BTreeMap<String, String>,
    biz: serde_json::Value,
}

type Responder = Arc<dyn Fn(&str, &serde_json::Value) -> Reply + Send + Sync>;

struct FakeAlipay {
    gateway: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeAlipay {
    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Decodes a form body independently of the adapter.
fn decode_form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .unwrap()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// Checks a request as Alipay does: the app's signature over the sorted
/// non-empty parameters, and the common parameters.
fn check_request(params: &BTreeMap<String, String>) -> Result<(), &'static str> {
    let content = params
        .iter()
        .filter(|(k, v)| k.as_str() != "sign" && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let sign = params.get("sign").ok_or("no sign")?;
    if !keys::verify(&public("alipay_app_key.pub.pem"), content.as_bytes(), sign) {
        return Err("isv.invalid-signature");
    }
    let expect = [
        ("app_id", APP_ID),
        ("charset", "utf-8"),
        ("format", "JSON"),
        ("sign_type", "RSA2"),
        ("version", "1.0"),
        ("timestamp", "2026-11-25 14:30:00"),
    ];
    for (k, v) in expect {
        if params.get(k).map(String::as_str) != Some(v) {
            return Err("isv.invalid-arguments");
        }
    }
    Ok(())
}

async fn fake_alipay(
    responder: impl Fn(&str, &serde_json::Value) -> Reply + Send + Sync + 'static,
) -> FakeAlipay {
    let responder: Responder = Arc::new(responder);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}/gateway.do", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let responder = responder.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0_u8; 8192];
                let head_end = loop {
                    let n = stream.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i;
                    }
                };
                let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
                let header = |name: &str| {
                    head.lines().find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.trim()
                            .eq_ignore_ascii_case(name)
                            .then(|| v.trim().to_owned())
                    })
                };
                let length: usize = header("content-length").unwrap().parse().unwrap();
                while buf.len() < head_end + 4 + length {
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "connection closed before the body ended");
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = std::str::from_utf8(&buf[head_end + 4..head_end + 4 + length])
                    .unwrap()
                    .to_owned();
                let params = decode_form(&body);
                let answer = match check_request(&params) {
                    Ok(()) => {
                        let method = params["method"].clone();
                        let biz: serde_json::Value =
                            serde_json::from_str(&params["biz_content"]).unwrap();
                        log.lock().unwrap().push(Received {
                            content_type: header("content-type").unwrap_or_default(),
                            params,
                            biz: biz.clone(),
                        });
                        responder(&method, &biz).body()
                    }
                    // Alipay cannot sign for a request it cannot trust.
                    Err(sub_code) => format!(
                        r#"{{"error_response":{{"code":"40002","msg":"Invalid Arguments","sub_code":"{sub_code}","sub_msg":"验签出错"}}}}"#
                    ),
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html;charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                stream.write_all(response.as_bytes()).await.unwrap();
                stream.shutdown().await.ok();
            });
        }
    });
    FakeAlipay { gateway, received }
}

fn payment(expires_in: Duration) -> NewPayment<'static> {
    NewPayment {
        out_trade_no: OUT_TRADE_NO,
        amount_fen: 8888,
        description: "数字证书新办-订单12",
        expires_at: now().plus(expires_in),
        payer_ip: Some("203.0.113.9"),
    }
}

#[tokio::test]
async fn create_returns_the_qr_code() {
    let fake = fake_alipay(|method, biz| {
        assert_eq!(method, "alipay.trade.precreate");
        reply(
            method,
            &format!(
                r#"{{"code":"10000","msg":"Success","out_trade_no":{},"qr_code":"https:\/\/qr.alipay.com\/bax03431ljhokirwl38f00a7"}}"#,
                biz["out_trade_no"]
            ),
        )
    })
    .await;
    let alipay = adapter(&fake.gateway);
    let qr = alipay
        .create(&payment(Duration::from_secs(30 * 60)))
        .await
        .unwrap();
    assert_eq!(
        qr.code_url,
        "https://qr.alipay.com/bax03431ljhokirwl38f00a7"
    );

    let received = fake.received();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert!(r
        .content_type
        .starts_with("application/x-www-form-urlencoded"));
    assert!(r.content_type.contains("charset=utf-8"));
    assert_eq!(r.params["method"], "alipay.trade.precreate");
    assert_eq!(r.params["notify_url"], NOTIFY_URL);
    assert_eq!(
        r.biz,
        serde_json::json!({
            "out_trade_no": OUT_TRADE_NO,
            "total_amount": "88.88",
            "subject": "数字证书新办-订单12",
            "timeout_express": "30m",
            "time_expire": "2026-11-25 15:00:00",
        })
    );

    // A QR code that expires in 20 s still asks for the 1-minute minimum.
    alipay
        .create(&payment(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(fake.received()[1].biz["timeout_express"], "1m");
}

const QUERY: &str = "alipay.trade.query";

fn query_answer(biz: &serde_json::Value) -> Reply {
    let no = biz["out_trade_no"].as_str().unwrap();
    let trade = |status: &str, extra: &str| {
        reply(
            QUERY,
            &format!(
                r#"{{"code":"10000","msg":"Success","buyer_logon_id":"159******20","buyer_pay_amount":"0.00","out_trade_no":"{no}","total_amount":"88.88","trade_no":"{TRADE_NO}","trade_status":"{status}"{extra}}}"#
            ),
        )
    };
    match no {
        "T_WAIT" => trade("WAIT_BUYER_PAY", ""),
        "T_PAID" | "C_PAID" => trade(
            "TRADE_SUCCESS",
            r#","buyer_user_id":"2088102177846875","send_pay_date":"2026-11-25 14:31:10""#,
        ),
        "T_DONE" => trade("TRADE_FINISHED", ""),
        "T_CLOSED" | "C_CLOSED" => trade("TRADE_CLOSED", ""),
        "C_WAIT" => trade("WAIT_BUYER_PAY", ""),
        "T_ODD" => trade("TRADE_PENDING", ""),
        "T_OTHER" => reply(
            QUERY,
            r#"{"code":"10000","msg":"Success","out_trade_no":"SOMEONE_ELSE","total_amount":"88.88","trade_no":"1","trade_status":"TRADE_SUCCESS"}"#,
        ),
        "T_NOAMOUNT" => reply(
            QUERY,
            r#"{"code":"10000","msg":"Success","out_trade_no":"T_NOAMOUNT","total_amount":"88.888","trade_no":"1","trade_status":"TRADE_SUCCESS"}"#,
        ),
        _ => reply(
            QUERY,
            &format!(
                r#"{{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在","out_trade_no":"{no}"}}"#
            ),
        ),
    }
}

#[tokio::test]
async fn query_maps_each_trade_status() {
    let fake = fake_alipay(|method, biz| {
        assert_eq!(method, QUERY);
        query_answer(biz)
    })
    .await;
    let alipay = adapter(&fake.gateway);
    assert_eq!(
        alipay.query("T_WAIT").await.unwrap(),
        TradeState::UserPaying
    );
    assert_eq!(
        alipay.query("T_PAID").await.unwrap(),
        TradeState::Paid(PaidTrade {
            transaction_id: TRADE_NO.into(),
            amount_fen: 8888,
            paid_at: Some(Timestamp::from_millis(NOW_MS + 70_000)),
        })
    );
    assert_eq!(
        alipay.query("T_DONE").await.unwrap(),
        TradeState::Paid(PaidTrade {
            transaction_id: TRADE_NO.into(),
            amount_fen: 8888,
            paid_at: None,
        })
    );
    assert_eq!(alipay.query("T_CLOSED").await.unwrap(), TradeState::Closed);
    assert_eq!(alipay.query("T_NONE").await.unwrap(), TradeState::NotFound);
    for odd in ["T_ODD", "T_OTHER", "T_NOAMOUNT"] {
        let err = alipay.query(odd).await.unwrap_err();
        assert!(matches!(err, PaymentError::BadAnswer(_)), "{odd}: {err:?}");
    }
    let r = &fake.received()[0];
    assert_eq!(r.biz, serde_json::json!({ "out_trade_no": "T_WAIT" }));
    assert!(!r.params.contains_key("notify_url"));
}

#[tokio::test]
async fn close_maps_not_exist_and_status_error() {
    let fake = fake_alipay(|method, biz| {
        let no = biz["out_trade_no"].as_str().unwrap();
        if method == QUERY {
            return query_answer(biz);
        }
        assert_eq!(method, "alipay.trade.close");
        let refused = |sub_code: &str, sub_msg: &str| {
            reply(
                method,
                &format!(
                    r#"{{"code":"40004","msg":"Business Failed","sub_code":"{sub_code}","sub_msg":"{sub_msg}"}}"#
                ),
            )
        };
        match no {
            "C_OPEN" => reply(
                method,
                &format!(
                    r#"{{"code":"10000","msg":"Success","out_trade_no":"{no}","trade_no":"{TRADE_NO}"}}"#
                ),
            ),
            "C_NONE" => refused("ACQ.TRADE_NOT_EXIST", "交易不存在"),
            "C_NONE_UNSIGNED" => {
                refused("ACQ.TRADE_NOT_EXIST", "交易不存在").signed_by(Signer::Unsigned)
            }
            "C_BUSY" => refused("ACQ.SYSTEM_ERROR", "系统错误"),
            _ => refused("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"),
        }
    })
    .await;
    let alipay = adapter(&fake.gateway);
    alipay.close("C_OPEN").await.unwrap();
    // Never scanned: nothing to close.
    alipay.close("C_NONE").await.unwrap();
    // Not open any more: the query tells paid from closed.
    assert!(matches!(
        alipay.close("C_PAID").await,
        Err(PaymentError::AlreadyPaid)
    ));
    alipay.close("C_CLOSED").await.unwrap();
    let err = alipay.close("C_WAIT").await.unwrap_err();
    assert!(
        matches!(&err, PaymentError::Provider { code, .. } if code == "ACQ.TRADE_STATUS_ERROR"),
        "{err:?}"
    );
    // An unsigned "does not exist" is reported, never believed.
    let err = alipay.close("C_NONE_UNSIGNED").await.unwrap_err();
    assert!(
        matches!(&err, PaymentError::Provider { code, .. } if code == "ACQ.TRADE_NOT_EXIST"),
        "{err:?}"
    );
    let err = alipay.close("C_BUSY").await.unwrap_err();
    assert!(
        matches!(&err, PaymentError::Provider { code, message } if code == "ACQ.SYSTEM_ERROR" && message == "系统错误"),
        "{err:?}"
    );
    let methods: Vec<String> = fake
        .received()
        .iter()
        .map(|r| r.params["method"].clone())
        .collect();
    assert_eq!(
        methods,
        [
            "alipay.trade.close",
            "alipay.trade.close",
            "alipay.trade.close",
            QUERY,
            "alipay.trade.close",
            QUERY,
            "alipay.trade.close",
            QUERY,
            "alipay.trade.close",
            "alipay.trade.close",
        ]
    );
}

fn new_refund(out_refund_no: &str) -> NewRefund<'_> {
    NewRefund {
        out_trade_no: OUT_TRADE_NO,
        out_refund_no,
        refund_fen: 1000,
        total_fen: 8888,
        reason: "用户取消订单",
    }
}

#[tokio::test]
async fn refund_maps_fund_change() {
    let fake = fake_alipay(|method, biz| {
        assert_eq!(method, "alipay.trade.refund");
        let change = if biz["out_request_no"] == "R_Y" { "Y" } else { "N" };
        reply(
            method,
            &format!(
                r#"{{"code":"10000","msg":"Success","buyer_logon_id":"159******20","fund_change":"{change}","gmt_refund_pay":"2026-11-26 10:00:00","out_trade_no":"{OUT_TRADE_NO}","refund_fee":"10.00","send_back_fee":"0.00","trade_no":"{TRADE_NO}"}}"#
            ),
        )
    })
    .await;
    let alipay = adapter(&fake.gateway);
    assert_eq!(
        alipay.refund(&new_refund("R_Y")).await.unwrap(),
        RefundStatus::Succeeded {
            refund_id: None,
            at: Some(Timestamp::from_millis(NOW_MS + 70_200_000)),
        }
    );
    assert_eq!(
        alipay.refund(&new_refund("R_N")).await.unwrap(),
        RefundStatus::Processing
    );
    let r = &fake.received()[0];
    assert_eq!(
        r.biz,
        serde_json::json!({
            "out_trade_no": OUT_TRADE_NO,
            "refund_amount": "10.00",
            "out_request_no": "R_Y",
            "refund_reason": "用户取消订单",
        })
    );
}

#[tokio::test]
async fn refund_query_maps_refund_status() {
    let fake = fake_alipay(|method, biz| {
        assert_eq!(method, "alipay.trade.fastpay.refund.query");
        let no = biz["out_request_no"].as_str().unwrap();
        let json = match no {
            "Q_OK" => format!(
                r#"{{"code":"10000","msg":"Success","gmt_refund_pay":"2026-11-26 10:00:00","out_request_no":"{no}","out_trade_no":"{OUT_TRADE_NO}","refund_amount":"10.00","refund_status":"REFUND_SUCCESS","total_amount":"88.88","trade_no":"{TRADE_NO}"}}"#
            ),
            "Q_PENDING" => format!(
                r#"{{"code":"10000","msg":"Success","out_request_no":"{no}","out_trade_no":"{OUT_TRADE_NO}","refund_amount":"10.00","total_amount":"88.88","trade_no":"{TRADE_NO}"}}"#
            ),
            "Q_OTHER" => format!(
                r#"{{"code":"10000","msg":"Success","out_request_no":"SOMEONE_ELSE","out_trade_no":"{OUT_TRADE_NO}","refund_amount":"10.00","refund_status":"REFUND_SUCCESS"}}"#
            ),
            _ => r#"{"code":"10000","msg":"Success"}"#.to_owned(),
        };
        reply(method, &json)
    })
    .await;
    let alipay = adapter(&fake.gateway);
    assert_eq!(
        alipay.query_refund(OUT_TRADE_NO, "Q_OK").await.unwrap(),
        RefundStatus::Succeeded {
            refund_id: None,
            at: Some(Timestamp::from_millis(NOW_MS + 70_200_000)),
        }
    );
    assert_eq!(
        alipay
            .query_refund(OUT_TRADE_NO, "Q_PENDING")
            .await
            .unwrap(),
        RefundStatus::Processing
    );
    assert_eq!(
        alipay.query_refund(OUT_TRADE_NO, "Q_NONE").await.unwrap(),
        RefundStatus::NotFound
    );
    assert!(matches!(
        alipay.query_refund(OUT_TRADE_NO, "Q_OTHER").await,
        Err(PaymentError::BadAnswer(_))
    ));
    assert_eq!(
        fake.received()[0].biz,
        serde_json::json!({
            "out_trade_no": OUT_TRADE_NO,
            "out_request_no": "Q_OK",
            "query_options": ["gmt_refund_pay"],
        })
    );
}

#[tokio::test]
async fn answers_not_signed_by_alipay_are_refused() {
    let fake = fake_alipay(|method, biz| {
        let signer = match biz["out_trade_no"].as_str().unwrap() {
            "S_OTHER" => Signer::Other,
            "S_UNSIGNED" => Signer::Unsigned,
            _ => Signer::Tampered,
        };
        assert_eq!(method, QUERY);
        query_answer(&serde_json::json!({ "out_trade_no": "T_PAID" })).signed_by(signer)
    })
    .await;
    let alipay = adapter(&fake.gateway);
    for no in ["S_OTHER", "S_UNSIGNED", "S_TAMPERED"] {
        let err = alipay.query(no).await.unwrap_err();
        assert!(matches!(err, PaymentError::BadAnswer(_)), "{no}: {err:?}");
    }
    assert_eq!(fake.received().len(), 3);
}

#[tokio::test]
async fn error_answers_map_to_provider_errors() {
    let fake = fake_alipay(|method, biz| match biz["out_trade_no"].as_str().unwrap() {
        "E_PAID" => reply(
            method,
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_HAS_SUCCESS","sub_msg":"交易已被支付"}"#,
        ),
        "E_BUSY" => reply(method, r#"{"code":"20000","msg":"Service Currently Unavailable"}"#),
        _ => Reply {
            node: "error_response".into(),
            json: r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id","sub_msg":"无效的AppID参数"}"#.into(),
            signer: Signer::Unsigned,
        },
    })
    .await;
    let alipay = adapter(&fake.gateway);
    let mut p = payment(Duration::from_secs(1800));
    p.out_trade_no = "E_PAID";
    let err = alipay.create(&p).await.unwrap_err();
    assert!(
        matches!(&err, PaymentError::Provider { code, message } if code == "ACQ.TRADE_HAS_SUCCESS" && message == "交易已被支付"),
        "{err:?}"
    );
    let err = alipay.query("E_BUSY").await.unwrap_err();
    assert!(
        matches!(&err, PaymentError::Provider { code, .. } if code == "20000"),
        "{err:?}"
    );
    let err = alipay.query("E_APP").await.unwrap_err();
    assert!(
        matches!(&err, PaymentError::Provider { code, .. } if code == "isv.invalid-app-id"),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_fake_gateway_checks_our_signature() {
    let fake = fake_alipay(|method, _| reply(method, r#"{"code":"10000","msg":"Success"}"#)).await;
    let mut s = settings(&fake.gateway);
    s.app_private_key = private("other_key.pem");
    let alipay = Alipay::new(s, Arc::new(ManualClock::new(now()))).unwrap();
    let err = alipay.query(OUT_TRADE_NO).await.unwrap_err();
    assert!(
        matches!(&err, PaymentError::Provider { code, .. } if code == "isv.invalid-signature"),
        "{err:?}"
    );
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn unreachable_gateway_is_a_transport_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}/gateway.do", listener.local_addr().unwrap());
    drop(listener);
    let err = adapter(&gateway).query(OUT_TRADE_NO).await.unwrap_err();
    assert!(matches!(err, PaymentError::Transport(_)), "{err:?}");
}

#[tokio::test]
async fn bad_numbers_and_amounts_are_refused_before_sending() {
    // Nothing listens on port 9: a request would be a transport error.
    let alipay = adapter("http://127.0.0.1:9/gateway.do");
    let mut p = payment(Duration::from_secs(1800));
    p.amount_fen = 0;
    assert!(matches!(
        alipay.create(&p).await,
        Err(PaymentError::Config(_))
    ));
    for bad in ["", "CH-1", "CH 1", "订单1", &"9".repeat(65)] {
        let err = alipay.query(bad).await.unwrap_err();
        assert!(matches!(err, PaymentError::Config(_)), "{bad:?}: {err:?}");
    }
    let mut r = new_refund("RF1");
    r.refund_fen = -100;
    assert!(matches!(
        alipay.refund(&r).await,
        Err(PaymentError::Config(_))
    ));
}
