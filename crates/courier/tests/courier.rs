//! The courier crate against SF's documented values, an independent digest
//! generator (`fixtures/gen.py` + the JDK), and a local HTTP server that
//! checks requests the way SF's gateway does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Form, Router};
use certhall_courier::protocol::{
    form_decode, java_url_encode, msg_digest, signed_form, FORM_CONTENT_TYPE,
};
use certhall_courier::sf::messages::{
    cancel_msg_data, create_order_msg_data, parse_cancel_response, parse_create_response,
    parse_routes_response, routes_msg_data,
};
use certhall_courier::sf::SfService;
use certhall_courier::{
    push, Courier, CourierConfig, CourierError, CourierKind, DemoCourier, Party, PushRefused,
    RouteEvent, RouteStage, SfConfig, SfExpress, ShipmentRequest,
};
use certhall_domain::clock::ManualClock;
use certhall_domain::Timestamp;
use serde_json::{json, Value};
use time::macros::datetime;

const VECTORS: &str = include_str!("fixtures/vectors.json");
const DOCUMENTED_CREATE_ANSWER: &str = include_str!("fixtures/create_order_answer_documented.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

fn check_word() -> String {
    vectors()["check_word"].as_str().unwrap().to_owned()
}

fn sender() -> Party {
    Party {
        name: "发货组".into(),
        company: Some("CertHall 数字证书服务".into()),
        mobile: "13800138000".into(),
        province: "广东省".into(),
        city: "深圳市".into(),
        county: "南山区".into(),
        address: "科技园路1号 A座".into(),
    }
}

fn recipient() -> Party {
    Party {
        name: "张三".into(),
        company: None,
        mobile: "13900139000".into(),
        province: "北京市".into(),
        city: "北京市".into(),
        county: "海淀区".into(),
        address: "中关村大街27号 3层*301~".into(),
    }
}

fn shipment() -> ShipmentRequest {
    ShipmentRequest {
        order_id: "CH-2026-000123-1".into(),
        sender: sender(),
        recipient: recipient(),
        cargo: "USB Key 数字证书介质".into(),
        declared_count: 1,
        id_check: false,
        remark: Some("本人签收".into()),
    }
}

fn gateway_answer(result: Value) -> String {
    json!({
        "apiErrorMsg": "",
        "apiResponseID": "0001A2B3C4D5E6F70000000000000000",
        "apiResultCode": "A1000",
        "apiResultData": result.to_string(),
    })
    .to_string()
}

fn success(msg_data: Value) -> String {
    gateway_answer(json!({
        "success": true, "errorCode": "S0000", "errorMsg": null, "msgData": msg_data
    }))
}

// ---- digest -------------------------------------------------------------

#[test]
fn digest_matches_sf_documented_example() {
    // SF's 数字签名认证说明, literally.
    assert_eq!(
        msg_digest(
            r#"{"language":"zh-CN","orderId":"QIAO-20200618-004"}"#,
            "12312334453453",
            "fjcg5PGKaNpPSHFAZ4QsCOkV71R3zVci"
        ),
        "IIKJtuLVzoFTu4kHI8M8vA=="
    );
}

#[test]
fn digest_and_encoding_match_the_independent_generator() {
    let v = vectors();
    assert!(v["checked_by"].as_str().unwrap().contains("JDK"));
    let list = v["digest_vectors"].as_array().unwrap();
    assert_eq!(list.len(), 5);
    for vector in list {
        let name = vector["name"].as_str().unwrap();
        let msg = vector["msg_data"].as_str().unwrap();
        let ts = vector["timestamp"].as_str().unwrap();
        let word = vector["check_word"].as_str().unwrap();
        let text = format!("{msg}{ts}{word}");
        assert_eq!(
            java_url_encode(&text),
            vector["encoded"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            msg_digest(msg, ts, word),
            vector["digest"].as_str().unwrap(),
            "{name}"
        );
        if let Some(doc) = vector.get("documented_digest") {
            assert_eq!(msg_digest(msg, ts, word), doc.as_str().unwrap());
        }
    }
    // Java's encoder, not Python's quote_plus: they differ on '*' and '~'.
    let specials = list
        .iter()
        .find(|v| v["name"] == "java_vs_python_specials")
        .unwrap();
    assert_eq!(specials["digest"], "477OKlXsVQ1EwblUnEQcDA==");
    assert_ne!(specials["digest"], specials["python_quote_plus_digest"]);
}

// ---- requests -----------------------------------------------------------

#[test]
fn create_order_form_body_is_exact() {
    let v = vectors();
    let expected_msg = v["digest_vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "create_order_msg_data")
        .unwrap()["msg_data"]
        .as_str()
        .unwrap()
        .to_owned();
    let msg = create_order_msg_data(&shipment(), Some("7551234567"), 1, None);
    assert_eq!(msg, expected_msg);
    let body = signed_form(
        "CERTHALL_TEST",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "EXP_RECE_CREATE_ORDER",
        1_767_225_600_000,
        &msg,
        &check_word(),
    );
    assert_eq!(body, v["create_order_form"].as_str().unwrap());
    assert!(body.starts_with(
        "partnerID=CERTHALL_TEST&requestID=0f8fad5b-d9cb-469f-a165-70867728950e\
         &serviceCode=EXP_RECE_CREATE_ORDER&timestamp=1767225600000&msgDigest=8hudLhUYKPIDzn6AEEESAg%3D%3D\
         &msgData=%7B%22language%22%3A%22zh-CN%22%2C%22orderId%22%3A%22CH-2026-000123-1%22"
    ));
    // The form reads back to the same fields.
    let fields: HashMap<String, String> =
        form_decode(body.as_bytes()).unwrap().into_iter().collect();
    assert_eq!(fields["msgData"], msg);
    assert_eq!(fields["msgDigest"], "8hudLhUYKPIDzn6AEEESAg==");
}

#[test]
fn create_order_without_monthly_card_company_or_county() {
    let mut s = shipment();
    s.recipient.county = String::new();
    s.sender.company = None;
    s.remark = None;
    let msg: Value = serde_json::from_str(&create_order_msg_data(&s, None, 2, None)).unwrap();
    assert!(msg.get("monthlyCard").is_none());
    assert!(msg.get("remark").is_none());
    assert!(msg.get("serviceList").is_none());
    assert_eq!(msg["expressTypeId"], 2);
    assert_eq!(msg["payMethod"], 2);
    assert!(msg["contactInfoList"][0].get("company").is_none());
    assert!(msg["contactInfoList"][1].get("county").is_none());
    assert_eq!(msg["contactInfoList"][1]["contactType"], 2);
}

#[test]
fn id_check_adds_the_configured_service_entry() {
    let service = SfService {
        name: "IDCHECK_CODE_FROM_SF".into(),
        value: Some("2".into()),
        value1: None,
        value2: None,
        value3: None,
        value4: None,
    };
    let mut s = shipment();
    s.id_check = true;
    let msg: Value =
        serde_json::from_str(&create_order_msg_data(&s, None, 1, Some(&service))).unwrap();
    assert_eq!(
        msg["serviceList"],
        json!([{"name": "IDCHECK_CODE_FROM_SF", "value": "2"}])
    );
}

#[tokio::test]
async fn id_check_without_configured_service_is_refused_before_sending() {
    let mut config = SfConfig::new("CERTHALL_TEST", check_word());
    // Nothing listens here; the refusal must come before any connection.
    config.endpoint = "http://127.0.0.1:9/std/service".into();
    let sf = SfExpress::new(config, clock()).unwrap();
    let mut s = shipment();
    s.id_check = true;
    let err = sf.create_order(&s).await.unwrap_err();
    assert!(matches!(err, CourierError::IdCheckUnavailable), "{err:?}");
    assert_eq!(err.code(), "id_check_unavailable");
}

#[test]
fn cancel_and_route_query_msg_data_are_exact() {
    assert_eq!(
        cancel_msg_data("CH-2026-000123-1"),
        r#"{"orderId":"CH-2026-000123-1","dealType":2}"#
    );
    assert_eq!(
        routes_msg_data(&["SF7444496931331".into(), "SF1234567890123".into()]),
        r#"{"language":"zh-CN","trackingType":"1","trackingNumber":["SF7444496931331","SF1234567890123"],"methodType":"1"}"#
    );
}

#[test]
fn shipment_checks_refuse_bad_fields() {
    let mut s = shipment();
    s.order_id = "CH 1".into();
    assert!(matches!(s.check(), Err(CourierError::Invalid(_))));
    let mut s = shipment();
    s.recipient.address = "   ".into();
    let err = s.check().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid shipment: recipient address is empty"
    );
    let mut s = shipment();
    s.remark = Some("备".repeat(101));
    assert!(s.check().is_err());
    let mut s = shipment();
    s.declared_count = 0;
    assert!(s.check().is_err());
    assert!(shipment().check().is_ok());
}

// ---- answers ------------------------------------------------------------

#[test]
fn reads_the_documented_create_answer() {
    // SF's example prints apiResultData as an object.
    let waybill = parse_create_response(DOCUMENTED_CREATE_ANSWER, "OrderNum20250523").unwrap();
    assert_eq!(waybill.waybill_no, "SF7444496931331");
    assert_eq!(waybill.raw, DOCUMENTED_CREATE_ANSWER);
    // The gateway sends it as a string: same result.
    let answer = success(json!({
        "orderId": "CH-2026-000123-1", "filterResult": 1,
        "waybillNoInfoList": [
            {"waybillType": 2, "waybillNo": "SF7444496931348"},
            {"waybillType": 1, "waybillNo": "SF7444496931331"}
        ]
    }));
    let waybill = parse_create_response(&answer, "CH-2026-000123-1").unwrap();
    assert_eq!(waybill.waybill_no, "SF7444496931331");
    // An answer about another order is not believed.
    let err = parse_create_response(DOCUMENTED_CREATE_ANSWER, "CH-2026-000123-1").unwrap_err();
    assert!(matches!(err, CourierError::Malformed(_)), "{err:?}");
}

#[test]
fn gateway_refusal_is_an_api_error() {
    // Constructed in the documented envelope; A1006 is the code integrators
    // report for a bad digest (数字签名无效).
    let answer = r#"{"apiErrorMsg":"数字签名无效","apiResponseID":"0001","apiResultCode":"A1006","apiResultData":null}"#;
    let err = parse_create_response(answer, "CH-1").unwrap_err();
    match &err {
        CourierError::Api { code, message } => {
            assert_eq!(code, "A1006");
            assert_eq!(message, "数字签名无效");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.to_string(), "courier gateway refused the call (A1006)");
    assert!(err.to_string().is_ascii());
    assert_eq!(err.code(), "courier_gateway_refused");
    assert!(!err.is_transient());
}

#[test]
fn service_refusals_are_business_errors() {
    // Constructed: errorCode 8016 (重复下单) as integrators list it.
    let answer = gateway_answer(json!({
        "success": false, "errorCode": "8016", "errorMsg": "重复下单", "msgData": null
    }));
    let err = parse_create_response(&answer, "CH-1").unwrap_err();
    assert!(
        matches!(&err, CourierError::Business { code, message } if code == "8016" && message == "重复下单")
    );
    assert_eq!(err.to_string(), "courier refused the request (8016)");

    // success given as the string "true" but errorCode not S0000.
    let answer = gateway_answer(json!({"success": "true", "errorCode": "1010", "errorMsg": "x"}));
    assert!(matches!(
        parse_create_response(&answer, "CH-1"),
        Err(CourierError::Business { code, .. }) if code == "1010"
    ));

    // Screening result 3: not served.
    let answer = success(json!({
        "orderId": "CH-1", "filterResult": 3, "remark": "1", "waybillNoInfoList": []
    }));
    assert!(matches!(
        parse_create_response(&answer, "CH-1"),
        Err(CourierError::NotDeliverable { reason }) if reason == "1"
    ));

    // Success without a waybill is malformed.
    let answer = success(json!({"orderId": "CH-1", "filterResult": 2, "waybillNoInfoList": []}));
    assert!(matches!(
        parse_create_response(&answer, "CH-1"),
        Err(CourierError::Malformed(_))
    ));
    assert!(matches!(
        parse_create_response("<html>502</html>", "CH-1"),
        Err(CourierError::Malformed(_))
    ));
}

#[test]
fn reads_cancel_answers() {
    let ok = success(
        json!({"orderId": "CH-1", "waybillNoInfoList": [{"waybillType": 1, "waybillNo": "SF7444496931331"}], "resStatus": 2}),
    );
    parse_cancel_response(&ok, "CH-1").unwrap();
    let refused = success(json!({"orderId": "CH-1", "resStatus": 1}));
    assert!(matches!(
        parse_cancel_response(&refused, "CH-1"),
        Err(CourierError::Business { code, .. }) if code == "resStatus_1"
    ));
}

fn route_answer() -> String {
    // The nodes of SF's sandbox pushes for one waybill, as a query answers.
    success(json!({"routeResps": [{
        "mailNo": "SF7444496931331",
        "routes": [
            {"acceptTime": "2025-05-26 09:55:52", "acceptAddress": "深圳市", "remark": "顺丰速运 已收取快件", "opCode": "50"},
            {"acceptTime": "2025-05-26 09:56:14", "acceptAddress": "深圳市", "remark": "快件在【深圳南山科技园中区营业部】完成分拣,准备发往下一站", "opCode": "30"},
            {"acceptTime": "2025-05-26 09:56:25", "acceptAddress": "郑州市", "remark": "快件到达 【郑州园博中转场】", "opCode": "31"},
            {"acceptTime": "2025-05-26 09:56:35", "acceptAddress": "深圳市", "remark": "我们正在为您的快件分配最合适的快递员，请您稍等。", "opCode": "44"},
            {"acceptTime": "2025-05-26 09:56:46", "acceptAddress": null, "remark": "您的快件已签收", "opCode": "80"}
        ]
    }]}))
}

#[test]
fn reads_route_query_answers() {
    let asked = vec!["SF7444496931331".to_owned()];
    let events = parse_routes_response(&route_answer(), &asked).unwrap();
    let stages: Vec<RouteStage> = events.iter().map(|e| e.stage).collect();
    assert_eq!(
        stages,
        [
            RouteStage::PickedUp,
            RouteStage::InTransit,
            RouteStage::InTransit,
            RouteStage::OutForDelivery,
            RouteStage::SignedFor
        ]
    );
    assert_eq!(events[0].accept_time, datetime!(2025-05-26 09:55:52));
    assert_eq!(events[0].address, "深圳市");
    assert_eq!(events[4].address, "");
    assert_eq!(events[4].remark, "您的快件已签收");
    assert!(events
        .iter()
        .all(|e| e.event_id.is_none() && e.order_id.is_none()));
    // A waybill nobody asked about is not believed.
    let err = parse_routes_response(&route_answer(), &["SF0000000000000".to_owned()]).unwrap_err();
    assert!(matches!(err, CourierError::Malformed(_)));
    // No routes yet.
    let none = success(json!({"routeResps": [{"mailNo": "SF7444496931331", "routes": null}]}));
    assert!(parse_routes_response(&none, &asked).unwrap().is_empty());
}

#[test]
fn op_codes_map_to_stages() {
    for (code, stage) in [
        ("50", RouteStage::PickedUp),
        ("54", RouteStage::PickedUp),
        ("30", RouteStage::InTransit),
        ("31", RouteStage::InTransit),
        ("36", RouteStage::InTransit),
        ("3036", RouteStage::InTransit),
        ("44", RouteStage::OutForDelivery),
        ("34", RouteStage::OutForDelivery),
        ("80", RouteStage::SignedFor),
        ("8000", RouteStage::SignedFor),
        ("33", RouteStage::Exception),
        ("70", RouteStage::Exception),
        ("99", RouteStage::Exception),
        ("648", RouteStage::Exception),
        ("125", RouteStage::Other),
        ("678", RouteStage::Other),
        ("", RouteStage::Other),
    ] {
        assert_eq!(RouteStage::from_op_code(code), stage, "opCode {code:?}");
    }
    assert_eq!(RouteStage::SignedFor.label_zh(), "已签收");
    assert_eq!(RouteStage::OutForDelivery.label_zh(), "派送中");
    assert_eq!(RouteStage::Exception.key(), "exception");
}

// ---- pushes -------------------------------------------------------------

fn push_fixture() -> (String, String, i64, String) {
    let v = vectors();
    let p = &v["push"];
    (
        p["partner_id"].as_str().unwrap().to_owned(),
        p["content_type"].as_str().unwrap().to_owned(),
        p["timestamp_ms"].as_i64().unwrap(),
        p["body"].as_str().unwrap().to_owned(),
    )
}

fn sf_for_pushes(partner: &str) -> SfExpress {
    SfExpress::new(SfConfig::new(partner, check_word()), clock()).unwrap()
}

#[test]
fn independently_signed_push_is_accepted_by_both_couriers() {
    let (partner, ct, ts, body) = push_fixture();
    let sf = sf_for_pushes(&partner);
    let demo = DemoCourier::new(&partner, check_word());
    for courier in [&sf as &dyn Courier, &demo] {
        let events = courier
            .verify_push(&ct, body.as_bytes(), ts + 3_000)
            .unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].waybill_no, "SF7444496931331");
        assert_eq!(events[0].order_id.as_deref(), Some("CH-2026-000123-1"));
        assert_eq!(events[0].stage, RouteStage::PickedUp);
        assert_eq!(events[0].event_id.as_deref(), Some("363636015985819"));
        assert_eq!(events[0].address, "深圳市");
        assert_eq!(events[1].stage, RouteStage::SignedFor);
        // Leading zeros of SF's node id survive.
        assert_eq!(events[1].event_id.as_deref(), Some("096882865300085"));
        assert_eq!(events[1].accept_time, datetime!(2025-05-26 09:56:46));
        assert_ne!(events[0].dedup_key(), events[1].dedup_key());
    }
    assert_eq!(
        sf.push_ack(),
        (
            "application/json;charset=UTF-8",
            r#"{"return_code":"0000","return_msg":"成功"}"#.to_owned()
        )
    );
    assert!(sf.push_nack().1.contains(r#""return_code":"1000""#));
}

#[test]
fn push_with_wrong_digest_is_refused() {
    let (partner, ct, ts, body) = push_fixture();
    let sf = sf_for_pushes(&partner);
    // The same push with its first node turned into a signature: the digest
    // no longer matches.
    let tampered = body.replacen("%22opCode%22%3A%2250%22", "%22opCode%22%3A%2280%22", 1);
    assert_ne!(tampered, body);
    assert_eq!(
        sf.verify_push(&ct, tampered.as_bytes(), ts),
        Err(PushRefused::BadDigest)
    );
    // Signed with another check word.
    let other = SfExpress::new(SfConfig::new(&partner, "another-check-word"), clock()).unwrap();
    assert_eq!(
        other.verify_push(&ct, body.as_bytes(), ts),
        Err(PushRefused::BadDigest)
    );
}

#[test]
fn push_for_another_partner_is_refused() {
    let (_, ct, ts, body) = push_fixture();
    let sf = sf_for_pushes("SOMEONE_ELSE");
    assert_eq!(
        sf.verify_push(&ct, body.as_bytes(), ts),
        Err(PushRefused::WrongPartner)
    );
}

#[test]
fn stale_or_future_push_is_refused() {
    let (partner, ct, ts, body) = push_fixture();
    let sf = sf_for_pushes(&partner);
    let window = push::WINDOW_MS;
    assert!(sf.verify_push(&ct, body.as_bytes(), ts + window).is_ok());
    assert!(sf.verify_push(&ct, body.as_bytes(), ts - window).is_ok());
    assert_eq!(
        sf.verify_push(&ct, body.as_bytes(), ts + window + 1),
        Err(PushRefused::Stale {
            skew_ms: window + 1
        })
    );
    assert_eq!(
        sf.verify_push(&ct, body.as_bytes(), ts - window - 1),
        Err(PushRefused::Stale {
            skew_ms: -window - 1
        })
    );
    assert_eq!(PushRefused::Stale { skew_ms: 1 }.code(), "stale_timestamp");
}

#[test]
fn malformed_pushes_are_refused() {
    let word = check_word();
    let demo = DemoCourier::new("CERTHALL_TEST", &word);
    let now = 1_767_225_600_000;
    // Correctly signed, but msgData is not the push JSON.
    let body = signed_form(
        "CERTHALL_TEST",
        "r1",
        push::SERVICE_CODE,
        now,
        "{\"Body\":",
        &word,
    );
    assert!(matches!(
        demo.verify_push(FORM_CONTENT_TYPE, body.as_bytes(), now),
        Err(PushRefused::Malformed(_))
    ));
    // Correctly signed, for another service.
    let body = signed_form(
        "CERTHALL_TEST",
        "r1",
        "EXP_RECE_CREATE_ORDER",
        now,
        "{}",
        &word,
    );
    assert_eq!(
        demo.verify_push(FORM_CONTENT_TYPE, body.as_bytes(), now),
        Err(PushRefused::WrongService("EXP_RECE_CREATE_ORDER".into()))
    );
    // Not a form.
    assert!(matches!(
        demo.verify_push("application/json", b"{}", now),
        Err(PushRefused::ContentType(_))
    ));
    assert!(matches!(
        demo.verify_push(FORM_CONTENT_TYPE, b"msgData=%ZZ", now),
        Err(PushRefused::Malformed(_))
    ));
    assert_eq!(
        demo.verify_push(
            FORM_CONTENT_TYPE,
            &vec![b'a'; push::MAX_BODY_BYTES + 1],
            now
        ),
        Err(PushRefused::TooLarge)
    );
}

#[test]
fn pushes_are_refused_when_disabled() {
    let (partner, ct, ts, body) = push_fixture();
    let mut config = SfConfig::new(&partner, check_word());
    config.push_digest = false;
    let sf = SfExpress::new(config, clock()).unwrap();
    assert_eq!(
        sf.verify_push(&ct, body.as_bytes(), ts),
        Err(PushRefused::Disabled)
    );
}

#[test]
fn sign_push_round_trips_through_verification() {
    let word = check_word();
    let now = 1_767_225_600_000;
    let mut signed = RouteEvent::new("SF1234567890123", "80", datetime!(2026-01-01 08:00:00));
    signed.order_id = Some("CH-2026-000123-1".into());
    signed.remark = "已签收，感谢使用顺丰".into();
    let mut picked = RouteEvent::new("SF1234567890123", "50", datetime!(2025-12-31 18:00:00));
    picked.event_id = Some("000000000000042".into());
    let (ct, body) = push::sign_push(
        "CERTHALL_TEST",
        &word,
        &[picked.clone(), signed.clone()],
        now,
    );
    assert_eq!(ct, FORM_CONTENT_TYPE);
    let fields: HashMap<String, String> =
        form_decode(body.as_bytes()).unwrap().into_iter().collect();
    assert_eq!(fields["serviceCode"], "RoutePushService");
    assert_eq!(fields["timestamp"], now.to_string());
    assert_eq!(
        fields["msgDigest"],
        msg_digest(&fields["msgData"], &now.to_string(), &word)
    );

    let demo = DemoCourier::new("CERTHALL_TEST", &word);
    let events = demo.verify_push(ct, body.as_bytes(), now + 60_000).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event_id.as_deref(), Some("000000000000042"));
    assert_eq!(events[0].stage, RouteStage::PickedUp);
    assert_eq!(events[1].stage, RouteStage::SignedFor);
    assert_eq!(events[1].remark, signed.remark);
    assert_eq!(events[1].order_id, signed.order_id);
    assert_eq!(events[1].dedup_key(), signed.dedup_key());
    // An event without an id gets a 15-digit one, as SF's nodes have.
    let id = events[1].event_id.clone().unwrap();
    assert_eq!(id.len(), 15);
    assert!(id.bytes().all(|b| b.is_ascii_digit()));

    // The demo's own push goes through the same verification.
    let (ct, body) = demo.demo_push(&[signed], now).unwrap();
    assert_eq!(demo.verify_push(ct, body.as_bytes(), now).unwrap().len(), 1);
    // Another demo process (another random key) refuses it.
    let other = DemoCourier::with_random_key();
    assert_eq!(
        other.verify_push(ct, body.as_bytes(), now),
        Err(PushRefused::WrongPartner)
    );
    let same_partner = DemoCourier::new("CERTHALL_TEST", "a-different-random-word");
    assert_eq!(
        same_partner.verify_push(ct, body.as_bytes(), now),
        Err(PushRefused::BadDigest)
    );
}

// ---- demo ---------------------------------------------------------------

#[tokio::test]
async fn demo_courier_makes_sf_like_waybills_without_network() {
    let demo = DemoCourier::with_random_key();
    assert!(demo.is_demo());
    assert_eq!(demo.name(), "demo");
    let a = demo.create_order(&shipment()).await.unwrap();
    let b = demo.create_order(&shipment()).await.unwrap();
    for w in [&a, &b] {
        assert_eq!(w.waybill_no.len(), 15);
        assert!(w.waybill_no.starts_with("SF"));
        assert!(w.waybill_no[2..].bytes().all(|c| c.is_ascii_digit()));
        assert!(w.raw.contains("\"apiResultCode\":\"A1000\""));
    }
    assert_ne!(a.waybill_no, b.waybill_no);
    demo.cancel_order("CH-2026-000123-1").await.unwrap();
    assert!(demo
        .routes(std::slice::from_ref(&a.waybill_no))
        .await
        .unwrap()
        .is_empty());
    let mut bad = shipment();
    bad.cargo = String::new();
    assert!(matches!(
        demo.create_order(&bad).await,
        Err(CourierError::Invalid(_))
    ));
    // Real couriers build no demo pushes.
    assert!(sf_for_pushes("CERTHALL_TEST").demo_push(&[], 0).is_none());
}

// ---- configuration ------------------------------------------------------

const SENDER_TOML: &str = r#"
[courier.sender]
name = "发货组"
company = "CertHall 数字证书服务"
mobile = "13800138000"
province = "广东省"
city = "深圳市"
county = "南山区"
address = "科技园路1号"
"#;

#[derive(serde::Deserialize)]
struct File {
    courier: CourierConfig,
}

fn parse_config(head: &str) -> Result<CourierConfig, toml::de::Error> {
    toml::from_str::<File>(&format!("{head}\n{SENDER_TOML}")).map(|f| f.courier)
}

#[test]
fn configuration_sections_are_read_and_checked() {
    let c = parse_config(
        r#"[courier]
kind = "sf"
partner_id = "YOUR_CODE"
check_word = "s3cret-check-word"
monthly_card = "7551234567"
id_check = true
[courier.id_check_service]
name = "IDCHECK"
value = "2"
"#,
    )
    .unwrap();
    assert_eq!(c.kind, CourierKind::Sf);
    assert!(c.push_digest);
    assert_eq!(c.sender.city, "深圳市");
    let sf = c.sf_config().unwrap();
    assert_eq!(sf.endpoint, "https://sfapi.sf-express.com/std/service");
    assert_eq!(sf.express_type, 1);
    assert!(sf.id_check);
    assert_eq!(sf.id_check_service.as_ref().unwrap().name, "IDCHECK");
    assert!(!format!("{c:?}").contains("s3cret"));
    assert!(!format!("{sf:?}").contains("s3cret"));
    assert!(!format!("{:?}", c.sender).contains("13800138000"));
    let courier = c.build(clock()).unwrap();
    assert_eq!(courier.name(), "sf");
    assert!(!courier.is_demo());
    assert!(!format!("{courier:?}").contains("s3cret"));

    let demo = parse_config("[courier]\nkind = \"demo\"\n").unwrap();
    let courier = demo.build(clock()).unwrap();
    assert!(courier.is_demo());

    assert!(parse_config("[courier]\nkind = \"sf\"\npartner_id = \"X\"\nsurprise = 1\n").is_err());
    assert!(parse_config("[courier]\nkind = \"ems\"\n").is_err());
    let no_word = parse_config("[courier]\nkind = \"sf\"\npartner_id = \"X\"\n").unwrap();
    assert!(matches!(
        no_word.build(clock()),
        Err(CourierError::Config(_))
    ));
    let bad_card = parse_config(
        "[courier]\nkind = \"sf\"\npartner_id = \"X\"\ncheck_word = \"w\"\nmonthly_card = \"75-51\"\n",
    )
    .unwrap();
    assert!(matches!(
        bad_card.build(clock()),
        Err(CourierError::Config(_))
    ));
    let demo_with_endpoint =
        parse_config("[courier]\nkind = \"demo\"\nendpoint = \"https://x\"\n").unwrap();
    assert!(matches!(
        demo_with_endpoint.build(clock()),
        Err(CourierError::Config(_))
    ));
}

// ---- HTTP ---------------------------------------------------------------

const T0: i64 = 1_767_225_600_000;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_millis(T0)))
}

/// What the fake gateway saw.
#[derive(Default)]
struct Seen {
    request_ids: Vec<String>,
    services: Vec<String>,
}

#[derive(Clone)]
struct Gateway {
    partner_id: &'static str,
    check_word: String,
    seen: Arc<Mutex<Seen>>,
}

fn answer(v: String) -> axum::response::Response {
    ([("content-type", "application/json;charset=UTF-8")], v).into_response()
}

/// Checks a call the way SF's gateway does (partner, digest over the
/// received `msgData` and `timestamp`) and answers per `serviceCode`.
async fn gateway(
    State(g): State<Gateway>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> axum::response::Response {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(ct, FORM_CONTENT_TYPE);
    for field in [
        "partnerID",
        "requestID",
        "serviceCode",
        "timestamp",
        "msgDigest",
        "msgData",
    ] {
        assert!(f.contains_key(field), "missing {field}");
    }
    assert_eq!(f["timestamp"], T0.to_string());
    {
        let mut seen = g.seen.lock().unwrap();
        seen.request_ids.push(f["requestID"].clone());
        seen.services.push(f["serviceCode"].clone());
    }
    if f["partnerID"] != g.partner_id
        || f["msgDigest"] != msg_digest(&f["msgData"], &f["timestamp"], &g.check_word)
    {
        return answer(
            json!({"apiErrorMsg": "数字签名无效", "apiResponseID": "E1", "apiResultCode": "A1006", "apiResultData": null})
                .to_string(),
        );
    }
    let msg: Value = serde_json::from_str(&f["msgData"]).unwrap();
    match f["serviceCode"].as_str() {
        "EXP_RECE_CREATE_ORDER" => {
            assert_eq!(msg["payMethod"], 2);
            assert_eq!(msg["contactInfoList"][1]["contact"], "张三");
            answer(success(json!({
                "orderId": msg["orderId"], "filterResult": 2,
                "waybillNoInfoList": [{"waybillType": 1, "waybillNo": "SF1234567890123"}]
            })))
        }
        "EXP_RECE_UPDATE_ORDER" => {
            assert_eq!(msg["dealType"], 2);
            answer(success(json!({"orderId": msg["orderId"], "resStatus": 2})))
        }
        "EXP_RECE_SEARCH_ROUTES" => {
            assert_eq!(msg["trackingType"], "1");
            let numbers = msg["trackingNumber"].as_array().unwrap();
            assert!(numbers.len() <= 10);
            let resps: Vec<Value> = numbers
                .iter()
                .map(|n| json!({"mailNo": n, "routes": [
                    {"acceptTime": "2026-01-01 09:00:00", "acceptAddress": "深圳市", "remark": "顺丰速运 已收取快件", "opCode": "50"}
                ]}))
                .collect();
            answer(success(json!({"routeResps": resps})))
        }
        other => panic!("unexpected service {other}"),
    }
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}/std/service")
}

#[tokio::test]
async fn http_round_trip_against_a_digest_checking_gateway() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = Gateway {
        partner_id: "CERTHALL_TEST",
        check_word: check_word(),
        seen: seen.clone(),
    };
    let endpoint = serve(
        Router::new()
            .route("/std/service", post(gateway))
            .with_state(state),
    )
    .await;

    let mut config = SfConfig::new("CERTHALL_TEST", check_word());
    config.endpoint = endpoint.clone();
    config.monthly_card = Some("7551234567".into());
    let sf = SfExpress::new(config, clock()).unwrap();

    let waybill = sf.create_order(&shipment()).await.unwrap();
    assert_eq!(waybill.waybill_no, "SF1234567890123");
    assert!(waybill.raw.contains("A1000"));
    sf.cancel_order("CH-2026-000123-1").await.unwrap();
    let waybills: Vec<String> = (0..12).map(|i| format!("SF10000000000{i:02}")).collect();
    let events = sf.routes(&waybills).await.unwrap();
    assert_eq!(events.len(), 12);
    assert_eq!(events[11].waybill_no, "SF1000000000011");
    assert!(events.iter().all(|e| e.stage == RouteStage::PickedUp));

    // The wrong check word: the gateway refuses, as SF does.
    let mut wrong = SfConfig::new("CERTHALL_TEST", "not-the-check-word");
    wrong.endpoint = endpoint;
    let wrong = SfExpress::new(wrong, clock()).unwrap();
    let err = wrong.create_order(&shipment()).await.unwrap_err();
    assert!(
        matches!(&err, CourierError::Api { code, .. } if code == "A1006"),
        "{err:?}"
    );

    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.services,
        [
            "EXP_RECE_CREATE_ORDER",
            "EXP_RECE_UPDATE_ORDER",
            "EXP_RECE_SEARCH_ROUTES",
            "EXP_RECE_SEARCH_ROUTES",
            "EXP_RECE_CREATE_ORDER"
        ]
    );
    // Every call carries a new request id.
    let mut ids = seen.request_ids.clone();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5);
}

#[tokio::test]
async fn http_failures_are_transport_errors() {
    let endpoint = serve(Router::new().route(
        "/std/service",
        post(|| async { (StatusCode::BAD_GATEWAY, "bad gateway") }),
    ))
    .await;
    let mut config = SfConfig::new("CERTHALL_TEST", check_word());
    config.endpoint = endpoint;
    let sf = SfExpress::new(config, clock()).unwrap();
    let err = sf.cancel_order("CH-1").await.unwrap_err();
    assert!(
        matches!(&err, CourierError::Transport(m) if m == "HTTP 502"),
        "{err:?}"
    );
    assert!(err.is_transient());

    // Nothing listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut config = SfConfig::new("CERTHALL_TEST", check_word());
    config.endpoint = format!("http://127.0.0.1:{port}/std/service");
    let sf = SfExpress::new(config, clock()).unwrap();
    assert!(matches!(
        sf.routes(&["SF1234567890123".into()]).await,
        Err(CourierError::Transport(_))
    ));
}
