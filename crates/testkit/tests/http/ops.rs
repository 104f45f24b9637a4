//! Operations endpoints, the OpenAPI document, a real SMS provider and its failures.

use axum::http::{header, StatusCode};
use certhall_testkit::client::Client;
use certhall_testkit::TestApp;
use serde_json::json;

use super::audit_events;

#[tokio::test]
async fn operations_endpoints_and_openapi() {
    let app = TestApp::sqlite().await;
    let mut c = Client::new(&app, "10.9.0.1");
    assert_eq!(c.get("/healthz").await.json()["status"], "ok");
    let ready = c.get("/readyz").await;
    assert_eq!(
        (ready.status, ready.json()["database"].as_str()),
        (StatusCode::OK, Some("sqlite"))
    );
    c.get("/login").await;
    let m = c.get("/metrics").await;
    assert!(
        m.body.contains("certhall_http_requests_total") && m.body.contains("route=\"/login\""),
        "{}",
        m.body
    );
    let doc = c.get("/api/v1/openapi.json").await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/auth/sms/verify"]["post"]["responses"]["200"].is_object());
    for asset in ["/static/app.css", "/static/app.js", "/static/logo.svg"] {
        assert_eq!(c.get(asset).await.status, StatusCode::OK, "{asset}");
    }
    let r = c.get("/login").await;
    assert!(r.headers.get(header::CONTENT_SECURITY_POLICY).is_some());
    assert_eq!(r.headers.get(header::X_FRAME_OPTIONS).unwrap(), "DENY");
    app.db.store.close().await;
    let down = c.get("/readyz").await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
}

/// With a real provider configured (here Alibaba Cloud's adapter pointed at
/// a closed local port, so delivery fails): no demo banner, no /dev routes,
/// a clear message when the SMS cannot be sent, and the undelivered code
/// neither works nor counts against the limits.
#[tokio::test]
async fn real_provider_mode_and_gateway_failure() {
    let db = certhall_store::testing::TestDatabase::sqlite()
        .await
        .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let config: certhall_notify::aliyun::AliyunConfig = serde_json::from_value(json!({
        "access_key_id": "testId",
        "access_key_secret": "testSecret",
        "sign_name": "CertHall",
        "templates": { "login_code": "SMS_1" },
        "endpoint": endpoint,
    }))
    .unwrap();
    let mut web = certhall_web::WebConfig::for_tests();
    web.secure_cookies = true;
    let app = TestApp::with_gateway(db, web, |_, clock| {
        std::sync::Arc::new(certhall_notify::aliyun::AliyunSms::new(config, clock))
    });
    let mut c = Client::new(&app, "10.10.0.1");
    let r = c.get("/login").await;
    assert!(!r.body.contains("演示模式"));
    let bid = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(bid.contains("Secure"), "{bid}");
    assert_eq!(c.get("/dev/outbox").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        c.get("/dev/outbox.json").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.post_json(
            "/dev/sms/inbound",
            json!({ "from": "13100000009", "body": "同意" })
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );

    let r = c
        .post_json("/api/v1/auth/sms/send", json!({ "phone": "13200000011" }))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "sms_unavailable")
    );
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("短信发送失败"));
    // Not counted: an immediate retry is not refused by the cooldown.
    let r = c
        .post_json("/api/v1/auth/sms/send", json!({ "phone": "13200000011" }))
        .await;
    assert_eq!(r.code(), "sms_unavailable");
    let r = c
        .post_json(
            "/api/v1/auth/sms/verify",
            json!({ "phone": "13200000011", "code": "123456" }),
        )
        .await;
    assert_eq!(r.code(), "sms_code_not_requested");
    let reasons: Vec<String> = audit_events(&app, "sms.code_refused")
        .await
        .iter()
        .map(|d| d["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons, vec!["gateway_failed", "gateway_failed"]);
}
