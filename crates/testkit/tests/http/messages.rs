//! 消息提醒 pages and the demo outbox with its simulated replies.

use axum::http::StatusCode;
use certhall_testkit::client::Client;
use certhall_testkit::TestApp;
use serde_json::json;

use super::{audit_events, secs};

#[tokio::test]
async fn messages_pages_mark_one_and_all() {
    let app = TestApp::sqlite().await;
    let mut c = Client::new(&app, "10.7.0.1");
    c.page_login("13300000008").await;
    let r = c.get("/messages").await;
    assert!(r.body.contains("共 1 条，未读 1 条"));
    let csrf = r.csrf();
    let id = r
        .body
        .split("data-message-id=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let r = c
        .post_form(
            &format!("/messages/{id}/read"),
            &[("_csrf", &csrf), ("back", "/")],
        )
        .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/"));
    let r = c.get("/messages").await;
    assert!(
        r.body.contains("共 1 条，未读 0 条") && !r.body.contains("data-testid=\"unread-count\"")
    );
    let r = c
        .post_form("/messages/99999/read", &[("_csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("找不到这条消息"));
    let r = c.post_form("/messages/read-all", &[("_csrf", &csrf)]).await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/messages")
    );
    // 证书变更 is live: 介质查询 chooses the certificate to change.
    let r = c.get("/certificates/change").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("介质查询")
            && r.body.contains("data-testid=\"start-change\"")
            && !r.body.contains("即将开放")
    );
    // 证书更新 is live: the page drives the key agent.
    let r = c.get("/certificates/renew").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("介质查询") && !r.body.contains("即将开放"));
    // 证书激活 is done on the platform's page: this one says how.
    let r = c.get("/certificates/activate").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("activation-steps") && !r.body.contains("即将开放"));
    // In demo mode it leads to the demo trading platform.
    assert!(r.body.contains("demo-platform-link") && r.body.contains("/dev/platform"));
    assert!(r.body.contains("您还没有数字证书"));
    // 证书新办 and 我的订单 are live.
    let r = c.get("/apply/new").await;
    assert!(r.body.contains("开始新的申请") && !r.body.contains("tag-soon"));
    let r = c.get("/orders").await;
    assert!(r.body.contains("您还没有订单"));
    let r = c.get("/no-such-page").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("您访问的页面不存在") && r.body.contains("演示模式"));
}

#[tokio::test]
async fn demo_outbox_and_inbound_simulation() {
    let app = TestApp::sqlite().await;
    let mut c = Client::new(&app, "10.8.0.1");
    c.post_json("/api/v1/auth/sms/send", json!({ "phone": "13100000009" }))
        .await;
    app.clock.advance(secs(61));
    c.post_json("/api/v1/auth/sms/send", json!({ "phone": "13100000010" }))
        .await;
    let out = c.get("/dev/outbox.json").await.json();
    let arr = out.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["to"], "13100000010", "newest first");
    assert!(arr[0]["body"].as_str().unwrap().contains("验证码") && arr[0]["sent_at"].is_string());
    let page = c.get("/dev/outbox").await;
    assert!(page.body.contains("13100000009") && page.body.contains("模拟手机回复短信"));

    let r = c
        .post_json(
            "/dev/sms/inbound",
            json!({ "from": "13100000009", "body": "同意" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = c
        .post_json("/dev/sms/inbound", json!({ "from": "bad", "body": "同意" }))
        .await;
    assert_eq!(r.code(), "invalid_phone");
    let csrf = page.csrf();
    let r = c
        .post_form(
            "/dev/outbox/reply",
            &[("_csrf", &csrf), ("from", "13100000010"), ("body", "拒绝")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = c.get("/dev/outbox").await;
    assert!(page.body.contains("拒绝") && page.body.contains("无待处理的授权请求"));
    assert_eq!(audit_events(&app, "sms.inbound").await.len(), 2);
}
