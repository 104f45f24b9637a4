//! In-process tests of the whole router (pages + API), on SQLite and
//! PostgreSQL: every refusal of the login flow, sessions, CSRF, messages,
//! the audit trail and the operations endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use certhall_store::audit;
use certhall_testkit::client::Client;
use certhall_testkit::TestApp;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn audit_events(app: &TestApp, event: &str) -> Vec<Value> {
    audit::recent(&app.db.store, Some(event), 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test]
async fn login_refusals() {
    for app in TestApp::each().await {
        let b = app.backend();
        let mut c = Client::new(&app, "10.1.0.1");

        // Invalid phone.
        let r = c
            .post_json("/api/v1/auth/sms/send", json!({ "phone": "1234" }))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_phone"),
            "{b}"
        );
        assert!(
            r.json()["message"].as_str().unwrap().contains("手机号"),
            "{b}"
        );
        // Not JSON.
        let r = c
            .send(
                Method::POST,
                "/api/v1/auth/sms/send",
                Some("text/plain"),
                "x".into(),
                &[],
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "missing_field"),
            "{b}"
        );

        // Verify before any code was sent.
        let r = c
            .post_json(
                "/api/v1/auth/sms/verify",
                json!({ "phone": "13800000001", "code": "123456" }),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "sms_code_not_requested"),
            "{b}"
        );

        // Send, then resend within 60 s.
        let r = c
            .post_json("/api/v1/auth/sms/send", json!({ "phone": "13800000001" }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{b}: {}", r.body);
        assert_eq!(r.json()["resend_after_secs"], 60);
        app.clock.advance(secs(30));
        let r = c
            .post_json("/api/v1/auth/sms/send", json!({ "phone": "13800000001" }))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::TOO_MANY_REQUESTS, "sms_resend_too_soon"),
            "{b}"
        );
        assert_eq!(r.headers.get(header::RETRY_AFTER).unwrap(), "30");
        assert!(
            r.json()["message"].as_str().unwrap().contains("30秒"),
            "{b}"
        );

        // Malformed code, then wrong codes counting down, 5th voids it, 6th refused even if right.
        let code = app.latest_code("13800000001").await.unwrap();
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let r = c
            .post_json(
                "/api/v1/auth/sms/verify",
                json!({ "phone": "13800000001", "code": "12ab" }),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_code_format"),
            "{b}"
        );
        for left in [4, 3, 2, 1] {
            let r = c
                .post_json(
                    "/api/v1/auth/sms/verify",
                    json!({ "phone": "13800000001", "code": wrong }),
                )
                .await;
            assert_eq!(
                (r.status, r.code().as_str()),
                (StatusCode::UNAUTHORIZED, "sms_code_wrong"),
                "{b}"
            );
            assert!(
                r.json()["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("还可尝试{left}次")),
                "{b}"
            );
        }
        let r = c
            .post_json(
                "/api/v1/auth/sms/verify",
                json!({ "phone": "13800000001", "code": wrong }),
            )
            .await;
        assert_eq!(
            r.code(),
            "sms_code_exhausted",
            "{b}: 5th wrong try voids the code"
        );
        let r = c
            .post_json(
                "/api/v1/auth/sms/verify",
                json!({ "phone": "13800000001", "code": code }),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "sms_code_exhausted"),
            "{b}: 6th try"
        );

        // Expired code (time injected, no sleeping).
        app.clock.advance(secs(60));
        c.post_json("/api/v1/auth/sms/send", json!({ "phone": "13800000001" }))
            .await;
        let code = app.latest_code("13800000001").await.unwrap();
        app.clock.advance(secs(5 * 60));
        let r = c
            .post_json(
                "/api/v1/auth/sms/verify",
                json!({ "phone": "13800000001", "code": code }),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "sms_code_expired"),
            "{b}"
        );

        // A good code works once; reuse is refused.
        c.post_json("/api/v1/auth/sms/send", json!({ "phone": "13800000001" }))
            .await;
        let code = app.latest_code("13800000001").await.unwrap();
        app.clock.advance(secs(299));
        let r = c
            .post_json(
                "/api/v1/auth/sms/verify",
                json!({ "phone": "13800000001", "code": code }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{b}: {}", r.body);
        assert_eq!(r.json()["new_account"], true);
        let r = c
            .post_json(
                "/api/v1/auth/sms/verify",
                json!({ "phone": "13800000001", "code": code }),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::CONFLICT, "sms_code_used"),
            "{b}"
        );

        // Every refusal left an audit entry.
        let refused: Vec<String> = audit_events(&app, "sms.code_refused")
            .await
            .iter()
            .map(|d| d["reason"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            refused.contains(&"invalid_phone".to_owned())
                && refused.contains(&"sms_resend_too_soon".to_owned()),
            "{b}: {refused:?}"
        );
        let failed: Vec<String> = audit_events(&app, "login.failed")
            .await
            .iter()
            .map(|d| d["reason"].as_str().unwrap().to_owned())
            .collect();
        for reason in [
            "sms_code_not_requested",
            "invalid_code_format",
            "sms_code_wrong",
            "sms_code_exhausted",
            "sms_code_expired",
            "sms_code_used",
        ] {
            assert!(
                failed.contains(&reason.to_owned()),
                "{b}: no audit for {reason}: {failed:?}"
            );
        }
        assert_eq!(
            app.services.verify_audit_chain().await.unwrap(),
            Ok(audit::page(&app.db.store, 0, 10_000).await.unwrap().len() as u64)
        );
    }
}

#[tokio::test]
async fn send_limits_per_phone_and_per_ip() {
    for app in TestApp::each().await {
        let b = app.backend();
        // Per phone: 10 an hour, even from different addresses.
        for i in 0..10 {
            let mut c = Client::new(&app, &format!("10.2.0.{i}"));
            let r = c
                .post_json("/api/v1/auth/sms/send", json!({ "phone": "13900000002" }))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{b}: send {i}: {}", r.body);
            app.clock.advance(secs(61));
        }
        let mut c = Client::new(&app, "10.2.1.1");
        let r = c
            .post_json("/api/v1/auth/sms/send", json!({ "phone": "13900000002" }))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::TOO_MANY_REQUESTS, "sms_phone_limit"),
            "{b}"
        );
        // An hour after the first send, one more is allowed.
        app.clock.advance(secs(3600 - 10 * 61 + 1));
        let r = c
            .post_json("/api/v1/auth/sms/send", json!({ "phone": "13900000002" }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{b}: window slides: {}", r.body);

        // Per IP: 30 an hour, whatever the phones.
        let mut c = Client::new(&app, "10.3.0.1");
        for i in 0..30 {
            let r = c
                .post_json(
                    "/api/v1/auth/sms/send",
                    json!({ "phone": format!("137{:08}", i) }),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{b}: ip send {i}: {}", r.body);
        }
        let r = c
            .post_json("/api/v1/auth/sms/send", json!({ "phone": "13799999999" }))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::TOO_MANY_REQUESTS, "sms_ip_limit"),
            "{b}"
        );
        let mut other = Client::new(&app, "10.3.0.2");
        let r = other
            .post_json("/api/v1/auth/sms/send", json!({ "phone": "13799999999" }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{b}: another IP is not limited");
        let reasons: Vec<String> = audit_events(&app, "sms.code_refused")
            .await
            .iter()
            .map(|d| d["reason"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            reasons.contains(&"sms_phone_limit".to_owned())
                && reasons.contains(&"sms_ip_limit".to_owned()),
            "{b}"
        );
    }
}

#[tokio::test]
async fn browser_session_csrf_rotation_logout_and_idle_timeout() {
    for app in TestApp::each().await {
        let b = app.backend();
        let mut c = Client::new(&app, "10.4.0.1");

        // Home needs a login.
        let r = c.get("/").await;
        assert_eq!(
            (r.status, r.location()),
            (StatusCode::SEE_OTHER, "/login?next=%2F"),
            "{b}"
        );
        let r = c.get("/login").await;
        assert!(
            r.body.contains("手机号登录") && r.body.contains("演示模式"),
            "{b}"
        );
        let bid_before = c.cookies.get("ch_bid").cloned().expect("browser id cookie");

        // POST without / with a wrong CSRF token is refused and audited; nothing is sent.
        let r = c
            .post_form("/login/code", &[("phone", "13600000003")])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{b}");
        assert!(r.body.contains("页面已过期"), "{b}: {}", r.body);
        let r = c
            .post_form(
                "/login/code",
                &[("_csrf", "forged"), ("phone", "13600000003")],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{b}");
        assert!(
            app.latest_code("13600000003").await.is_none(),
            "{b}: no SMS for a forged form"
        );
        assert_eq!(audit_events(&app, "csrf.rejected").await.len(), 2, "{b}");

        // A planted session cookie does not survive login: the id changes.
        c.cookies.insert("ch_session".into(), "A".repeat(43));
        c.page_login("13600000003").await;
        let session = c
            .cookies
            .get("ch_session")
            .cloned()
            .expect("session cookie");
        assert_ne!(session, "A".repeat(43), "{b}");
        assert_ne!(
            c.cookies.get("ch_bid").unwrap(),
            &bid_before,
            "{b}: browser id rotated at login"
        );
        let r = c.get("/").await;
        assert_eq!(r.status, StatusCode::OK, "{b}");
        assert!(
            r.body.contains("您好，136****0003") && r.body.contains("欢迎使用CertHall网上营业厅"),
            "{b}"
        );
        assert!(r.body.contains("data-testid=\"unread-count\""), "{b}");

        // Logging in again in the same browser gives yet another id and ends the first.
        let first = session.clone();
        app.clock.advance(secs(61));
        c.page_login("13600000003").await;
        let second = c.cookies.get("ch_session").cloned().unwrap();
        assert_ne!(first, second, "{b}");
        let mut stale = Client::new(&app, "10.4.0.2");
        stale.cookies.insert("ch_session".into(), first);
        assert_eq!(
            stale.get("/").await.status,
            StatusCode::SEE_OTHER,
            "{b}: old session ended"
        );

        // The cookie attributes.
        let mut fresh = Client::new(&app, "10.4.0.9");
        let csrf = fresh.get("/login").await.csrf();
        fresh
            .post_form("/login/code", &[("_csrf", &csrf), ("phone", "13600000099")])
            .await;
        let code = app.latest_code("13600000099").await.unwrap();
        let r = fresh
            .post_form(
                "/login",
                &[("_csrf", &csrf), ("phone", "13600000099"), ("code", &code)],
            )
            .await;
        let set: Vec<String> = r
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let sc = set.iter().find(|s| s.starts_with("ch_session=")).unwrap();
        assert!(
            sc.contains("HttpOnly") && sc.contains("SameSite=Lax") && sc.contains("Path=/"),
            "{b}: {sc}"
        );

        // Logout ends the session server-side.
        let csrf = c.get("/").await.csrf();
        let r = c.post_form("/logout", &[("_csrf", &csrf)]).await;
        assert_eq!(
            (r.status, r.location()),
            (StatusCode::SEE_OTHER, "/login?bye=1"),
            "{b}"
        );
        assert!(!c.cookies.contains_key("ch_session"), "{b}: cookie cleared");
        let key = certhall_domain::session::SessionToken::from_client(&second)
            .unwrap()
            .storage_key();
        assert!(
            !certhall_store::sessions::exists(&app.db.store, &key)
                .await
                .unwrap(),
            "{b}: session row gone"
        );
        stale.cookies.insert("ch_session".into(), second);
        assert_eq!(
            stale.get("/").await.status,
            StatusCode::SEE_OTHER,
            "{b}: logged-out id no longer works"
        );

        // Idle timeout: 30 minutes without a request.
        app.clock.advance(secs(61));
        c.page_login("13600000003").await;
        app.clock.advance(secs(29 * 60));
        assert_eq!(
            c.get("/").await.status,
            StatusCode::OK,
            "{b}: 29 minutes idle is fine"
        );
        app.clock.advance(secs(30 * 60));
        let r = c.get("/messages").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{b}");
        assert_eq!(r.location(), "/login?next=%2Fmessages&expired=1", "{b}");
        let r = c.get("/login?expired=1").await;
        assert!(r.body.contains("登录已超时"), "{b}");
    }
}

#[tokio::test]
async fn login_page_keeps_input_and_explains_errors() {
    for app in TestApp::each().await {
        let b = app.backend();
        let mut c = Client::new(&app, "10.5.0.1");
        let csrf = c.get("/login").await.csrf();
        let r = c
            .post_form(
                "/login/code",
                &[("_csrf", &csrf), ("phone", "12345"), ("next", "/messages")],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{b}");
        assert!(
            r.body.contains("请输入正确的11位中国大陆手机号码")
                && r.body.contains("value=\"12345\""),
            "{b}"
        );
        assert!(r.body.contains("value=\"/messages\""), "{b}: next kept");
        let r = c
            .post_form(
                "/login/code",
                &[("_csrf", &csrf), ("phone", "135 0000 0004")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{b}");
        let r = c.get(r.location()).await;
        assert!(
            r.body.contains("验证码已发送至 135****0004")
                && r.body.contains("data-resend-after=\"60\""),
            "{b}"
        );
        let r = c
            .post_form(
                "/login",
                &[
                    ("_csrf", &csrf),
                    ("phone", "13500000004"),
                    ("code", "999999"),
                ],
            )
            .await;
        let wrong = app.latest_code("13500000004").await.unwrap() != "999999";
        if wrong {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{b}");
            assert!(
                r.body.contains("data-resend-after=\"60\""),
                "{b}: the countdown survives a wrong code"
            );
            assert!(
                r.body.contains("验证码不正确，还可尝试4次")
                    && r.body.contains("value=\"13500000004\""),
                "{b}"
            );
        }
        // A login with next= lands there; an outside next= is ignored.
        let code = app.latest_code("13500000004").await.unwrap();
        let r = c
            .post_form(
                "/login",
                &[
                    ("_csrf", &csrf),
                    ("phone", "13500000004"),
                    ("code", &code),
                    ("next", "//evil.example/"),
                ],
            )
            .await;
        assert_eq!(r.location(), "/", "{b}");
    }
}

#[tokio::test]
async fn api_tokens_messages_and_authorization() {
    for app in TestApp::each().await {
        let b = app.backend();
        let mut anon = Client::new(&app, "10.6.0.1");
        let r = anon.get("/api/v1/me").await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "not_logged_in"),
            "{b}"
        );
        anon.bearer = Some("not-a-token".into());
        let r = anon.get("/api/v1/me").await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "bad_token"),
            "{b}"
        );
        anon.bearer = Some("B".repeat(43));
        let r = anon.get("/api/v1/messages").await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "bad_token"),
            "{b}"
        );

        let mut alice = Client::new(&app, "10.6.0.2");
        let login = alice.api_login("13700000005").await;
        assert_eq!(login["token_type"], "Bearer");
        let me = alice.get("/api/v1/me").await.json();
        assert_eq!(
            (me["phone"].as_str(), me["unread_messages"].as_u64()),
            (Some("13700000005"), Some(1)),
            "{b}"
        );
        let list = alice.get("/api/v1/messages").await.json();
        assert_eq!(list["total"], 1);
        let msg = &list["items"][0];
        assert_eq!(
            (
                msg["kind"].as_str(),
                msg["kind_label"].as_str(),
                msg["read"].as_bool()
            ),
            (Some("system"), Some("系统通知"), Some(false)),
            "{b}"
        );
        let id = msg["id"].as_i64().unwrap();

        // Bob cannot read-mark Alice's message.
        let mut bob = Client::new(&app, "10.6.0.3");
        bob.api_login("13700000006").await;
        let r = bob
            .post_json(&format!("/api/v1/messages/{id}/read"), json!({}))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::NOT_FOUND, "message_not_found"),
            "{b}"
        );
        assert_eq!(
            alice.get("/api/v1/me").await.json()["unread_messages"],
            1,
            "{b}"
        );

        let r = alice
            .post_json(&format!("/api/v1/messages/{id}/read"), json!({}))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{b}");
        let r = alice
            .post_json(&format!("/api/v1/messages/{id}/read"), json!({}))
            .await;
        assert_eq!(
            r.status,
            StatusCode::NO_CONTENT,
            "{b}: marking twice is harmless"
        );
        assert_eq!(
            alice.get("/api/v1/me").await.json()["unread_messages"],
            0,
            "{b}"
        );
        let past = alice.get("/api/v1/messages?page=9&per_page=1").await.json();
        assert_eq!(
            (
                past["page"].as_u64(),
                past["pages"].as_u64(),
                past["items"].as_array().map(Vec::len)
            ),
            (Some(1), Some(1), Some(1)),
            "{b}: past the end shows the last page"
        );
        let r = alice
            .post_json("/api/v1/messages/read-all", json!({}))
            .await;
        assert_eq!(r.json()["marked"], 0, "{b}");

        // Browser session on the API: reads work, writes need X-CSRF-Token.
        let mut carol = Client::new(&app, "10.6.0.4");
        carol.page_login("13700000007").await;
        assert_eq!(carol.get("/api/v1/me").await.status, StatusCode::OK, "{b}");
        let r = carol
            .post_json("/api/v1/messages/read-all", json!({}))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::FORBIDDEN, "csrf_mismatch"),
            "{b}"
        );
        let csrf = carol.get("/messages").await.csrf();
        let r = carol
            .send(
                Method::POST,
                "/api/v1/messages/read-all",
                Some("application/json"),
                "{}".into(),
                &[("x-csrf-token", csrf)],
            )
            .await;
        assert_eq!(
            (r.status, r.json()["marked"].as_u64()),
            (StatusCode::OK, Some(1)),
            "{b}"
        );

        // Logout ends the token.
        let r = alice.post_json("/api/v1/auth/logout", json!({})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{b}");
        let r = alice.get("/api/v1/me").await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "bad_token"),
            "{b}"
        );
        let r = alice.get("/api/v1/nope").await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{b}"
        );
    }
}

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
    // Workbench buttons not yet live lead to a page saying so.
    for path in [
        "/certificates/renew",
        "/certificates/change",
        "/certificates/activate",
    ] {
        let r = c.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.body.contains("即将开放"), "{path}");
    }
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

/// Two requests presenting the same right code at once: exactly one logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_logs_in_once_under_concurrency() {
    for app in TestApp::each().await {
        let b = app.backend();
        let mut c = Client::new(&app, "10.11.0.1");
        c.post_json("/api/v1/auth/sms/send", json!({ "phone": "13400000012" }))
            .await;
        let code = app.latest_code("13400000012").await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let services = app.services.clone();
            let code = code.clone();
            tasks.push(tokio::spawn(async move {
                services
                    .verify_login_code(
                        "13400000012",
                        &code,
                        certhall_store::sessions::SessionKind::Api,
                        None,
                        &certhall_service::RequestMeta::default(),
                    )
                    .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(e) => assert_eq!(
                    e.refusal().map(|r| r.code()),
                    Some("sms_code_used"),
                    "{b}: {e:?}"
                ),
            }
        }
        assert_eq!(ok, 1, "{b}");
        assert_eq!(audit_events(&app, "account.created").await.len(), 1, "{b}");
    }
}

/// The CA's records on both backends: hierarchy, publication routes,
/// issuance, revocation (once, even when raced), CRL numbers and the OCSP
/// cache through the router.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_records_on_both_backends() {
    use certhall_ca::crl::Reason;
    use certhall_ca::Family;
    use certhall_domain::audit::Actor;
    use certhall_service::ca::{role, IssueInput, KeyBackend};

    for app in TestApp::each().await {
        let b = app.backend();
        let s = &app.services;
        s.ca_seed_profiles().await.unwrap();
        s.ca_init(Family::P256, &KeyBackend::File, Actor::System)
            .await
            .unwrap();
        let again = s
            .ca_init(Family::P256, &KeyBackend::File, Actor::System)
            .await
            .unwrap_err();
        assert_eq!(
            again.refusal().map(|r| r.code()),
            Some("ca_already_initialized"),
            "{b}"
        );

        let mut c = Client::new(&app, "10.12.0.1");
        let page = c.get("/ca").await;
        assert!(
            page.body.contains("ECDSA P-256")
                && page.body.contains("签发CA")
                && page.body.contains("OCSP响应器"),
            "{b}"
        );
        let der = c.get("/ca/p256-issuing.der").await;
        assert_eq!(
            (
                der.status,
                der.headers[header::CONTENT_TYPE].to_str().unwrap()
            ),
            (StatusCode::OK, "application/pkix-cert")
        );
        assert_eq!(
            c.get("/ca/sm2-issuing.der").await.status,
            StatusCode::NOT_FOUND,
            "{b}: no SM2 hierarchy here"
        );
        assert_eq!(
            c.get("/crl/p256-ocsp.crl").await.status,
            StatusCode::NOT_FOUND
        );
        let crl = c.get("/crl/p256-issuing.crl").await;
        assert_eq!(crl.headers[header::CONTENT_TYPE], "application/pkix-crl");

        // A CSR from OpenSSL, a certificate from the CA.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let sh = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        sh(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
            "k.pem",
        ]);
        sh(&[
            "req", "-new", "-key", "k.pem", "-out", "r.csr", "-subj", "/CN=x",
        ]);
        let csr = std::fs::read(d.join("r.csr")).unwrap();
        let input = IssueInput {
            family: Family::P256,
            profile: "enterprise",
            csr: &csr,
            subject: "C=CN,O=某公司,USCC=91350100M000100Y43,CN=某公司",
            account: None,
            order_id: None,
            predecessor: None,
        };
        let cert = s.ca_issue(&input, Actor::System).await.unwrap();
        let renewal = IssueInput {
            predecessor: Some(&cert.serial),
            ..input.clone()
        };
        let renewed = s.ca_issue(&renewal, Actor::System).await.unwrap();
        assert_eq!(
            s.ca_certificate(&renewed.serial)
                .await
                .unwrap()
                .predecessor_serial
                .as_deref(),
            Some(cert.serial.as_str())
        );
        let bad = IssueInput {
            subject: "C=CN,CN=x",
            ..input.clone()
        };
        assert_eq!(
            s.ca_issue(&bad, Actor::System)
                .await
                .unwrap_err()
                .refusal()
                .map(|r| r.code()),
            Some("ca_request_refused")
        );

        // OCSP through the router: no nonce, cached until revocation.
        std::fs::write(
            d.join("ee.pem"),
            certhall_ca::issue::to_pem(&cert.der).unwrap(),
        )
        .unwrap();
        std::fs::write(
            d.join("issuing.pem"),
            certhall_ca::issue::to_pem(
                &s.ca_active(Family::P256, role::ISSUING).await.unwrap().der,
            )
            .unwrap(),
        )
        .unwrap();
        sh(&[
            "ocsp",
            "-issuer",
            "issuing.pem",
            "-cert",
            "ee.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ]);
        let req = std::fs::read(d.join("req.der")).unwrap();
        let post = |body: Vec<u8>| {
            let router = app.router.clone();
            async move {
                let r = router
                    .oneshot(
                        Request::post("/ocsp")
                            .header(header::CONTENT_TYPE, "application/ocsp-request")
                            .body(Body::from(body))
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let cache = r
                    .headers()
                    .get(header::CACHE_CONTROL)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                (
                    axum::body::to_bytes(r.into_body(), 1 << 20)
                        .await
                        .unwrap()
                        .to_vec(),
                    cache,
                )
            }
        };
        let (first, cache) = post(req.clone()).await;
        assert!(
            cache.starts_with("max-age=") && cache.contains("public"),
            "{b}: {cache}"
        );
        app.clock.advance(Duration::from_secs(60));
        let (second, _) = post(req.clone()).await;
        assert_eq!(first, second, "{b}: served from the pre-signed cache");
        // An oversized body (past the site-wide 256 KiB limit too) gets an
        // OCSP answer, malformedRequest, not a bare 413.
        for size in [9 * 1024, 300 * 1024] {
            let (answer, _) = post(vec![0x30; size]).await;
            assert_eq!(answer, [0x30, 0x03, 0x0a, 0x01, 0x01], "{b}: {size} bytes");
        }

        // Two operators revoking at once: exactly one revocation.
        let (r1, r2) = tokio::join!(
            s.ca_revoke(&cert.serial, Reason::KeyCompromise, Actor::System, None),
            s.ca_revoke(&cert.serial, Reason::Superseded, Actor::System, None)
        );
        assert_eq!(
            [r1.is_ok(), r2.is_ok()].iter().filter(|ok| **ok).count(),
            1,
            "{b}"
        );
        let loser = match (r1, r2) {
            (Err(e), _) | (_, Err(e)) => e,
            _ => unreachable!("one revocation must lose"),
        };
        assert_eq!(
            loser.refusal().map(|r| r.code()),
            Some("certificate_already_revoked"),
            "{b}"
        );
        let (third, _) = post(req).await;
        assert_ne!(third, first, "{b}: cache dropped on revocation");
        std::fs::write(d.join("resp.der"), &third).unwrap();
        let out = std::process::Command::new("openssl")
            .args([
                "ocsp",
                "-respin",
                "resp.der",
                "-issuer",
                "issuing.pem",
                "-cert",
                "ee.pem",
                "-no_nonce",
                "-noverify",
                // The responses are dated by the test's manual clock, not
                // the wall clock openssl compares them with: tolerate any
                // age so the test does not expire a day after TEST_START.
                "-validity_period",
                "1000000000",
            ])
            .current_dir(d)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("ee.pem: revoked"), "{b}: {text}");

        let issuing = s.ca_active(Family::P256, role::ISSUING).await.unwrap();
        let ocsp_signer = s.ca_active(Family::P256, role::OCSP).await.unwrap();

        // The scheduler: nothing to do today; five days on, CRLs are
        // re-signed (less than 3 of 7 days left); 24 days on, the OCSP
        // signer (30 days) is replaced and the old one retired.
        s.ca_maintain().await.unwrap();
        assert_eq!(s.ca_crl(&issuing, false).await.unwrap().number, 2, "{b}");
        app.clock.advance(Duration::from_secs(5 * 86_400));
        s.ca_maintain().await.unwrap();
        assert_eq!(
            s.ca_crl(&issuing, false).await.unwrap().number,
            3,
            "{b}: re-signed before nextUpdate"
        );
        app.clock.advance(Duration::from_secs(19 * 86_400));
        s.ca_maintain().await.unwrap();
        let rotated = s.ca_active(Family::P256, role::OCSP).await.unwrap();
        assert_ne!(rotated.id, ocsp_signer.id, "{b}: OCSP signer rotated");
        assert!(rotated.not_after > ocsp_signer.not_after, "{b}");
        let (after_rotation, _) = post(std::fs::read(d.join("req.der")).unwrap()).await;
        assert!(
            after_rotation
                .windows(rotated.der.len())
                .any(|w| w == rotated.der.as_slice()),
            "{b}: answered by the new signer"
        );
        assert_eq!(
            s.ca_crl(&issuing, false).await.unwrap().number,
            4,
            "{b}: initial CRL, the revocation's, the scheduler's on days 5 and 24"
        );
        assert!(s.verify_audit_chain().await.unwrap().is_ok(), "{b}");
        let issued = audit::recent(&app.db.store, Some("ca.certificate_issued"), 10)
            .await
            .unwrap();
        assert_eq!(issued.len(), 2, "{b}");
    }
}

/// 证书新办 steps 1–4 through the pages, on both backends: the tile is
/// live, refusals keep what was typed and change nothing, the wizard
/// resumes where it was left, counter handling ends with the counter's
/// address and materials, and 我的订单 lists the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_certificate_wizard_steps_one_to_four() {
    for app in TestApp::each().await {
        let be = app.backend();
        app.services.ca_seed_profiles().await.unwrap();
        app.services.ensure_demo_applications().await.unwrap();
        let mut c = Client::new(&app, "10.20.0.1");
        c.page_login("13500000001").await;
        let home = c.get("/").await;
        assert!(
            home.body.contains("<a class=\"tile \" href=\"/apply/new\""),
            "{be}: 证书新办 is not live on the home page"
        );
        assert!(home.body.contains("<a class=\"tile \" href=\"/orders\""));
        let page = c.get("/apply/new").await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = page.csrf();
        let r = c.post_form("/orders/new", &[("_csrf", &csrf)]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{be}: {}", r.body);
        let step1 = r.location().to_owned();
        assert!(step1.ends_with("/step/1"), "{step1}");
        let order_id: i64 = step1.split('/').nth(2).unwrap().parse().unwrap();

        // Step 1: a wrong check digit is refused, the typed name kept.
        let page = c.get(&step1).await;
        assert!(
            page.body.contains("13500000001"),
            "{be}: the account's phone is shown"
        );
        let r = c
            .post_form(
                &step1,
                &[
                    ("_csrf", &csrf),
                    ("name", "张三"),
                    ("id_number", "110105194912310021"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}");
        assert!(r.body.contains("校验位不正确"), "{}", r.body);
        assert!(
            r.body.contains("value=\"张三\""),
            "{be}: the typed name was lost"
        );
        // Out of order: step 3 before step 2 — refused, nothing stored.
        let r = c
            .post_form(
                &format!("/orders/{order_id}/step/3"),
                &[("_csrf", &csrf), ("ent_name", "某公司")],
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{be}: {}", r.body);
        assert!(r.body.contains("请按顺序办理"), "{}", r.body);
        let r = c
            .post_form(
                &step1,
                &[
                    ("_csrf", &csrf),
                    ("name", "张三"),
                    ("id_number", "11010519491231002X"),
                ],
            )
            .await;
        assert_eq!(
            r.location(),
            format!("/orders/{order_id}/step/2"),
            "{be}: {}",
            r.body
        );

        // Step 2: the demo catalogue.
        let page = c.get(&format!("/orders/{order_id}/step/2")).await;
        assert!(page.body.contains("枣庄公共资源交易"), "{be}");
        let r = c
            .post_form(
                &format!("/orders/{order_id}/step/2"),
                &[("_csrf", &csrf), ("application", "zzggzy")],
            )
            .await;
        assert_eq!(r.location(), format!("/orders/{order_id}/step/3"));

        // Step 3: a wrong USCC check character is refused, fields kept.
        let mut ent = vec![
            ("_csrf", csrf.as_str()),
            ("ent_name", "枣庄测试建设有限公司"),
            ("ent_uscc", "91350100M000100Y44"),
            ("ent_kind", "有限责任公司"),
            ("ent_legal_representative", "李四"),
            ("ent_address", "山东省枣庄市市中区光明路1号"),
            ("ent_registered_capital", "壹仟万元整"),
            ("ent_established", "2015-06-30"),
            ("ent_registered_place", "山东省枣庄市"),
            ("ent_nature", "私营企业"),
        ];
        let r = c
            .post_form(&format!("/orders/{order_id}/step/3"), &ent)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(
            r.body.contains("统一社会信用代码校验位不正确"),
            "{}",
            r.body
        );
        assert!(
            r.body.contains("枣庄测试建设有限公司"),
            "{be}: typed data lost"
        );
        ent[2] = ("ent_uscc", "91350100M000100Y43");
        let r = c
            .post_form(&format!("/orders/{order_id}/step/3"), &ent)
            .await;
        assert_eq!(
            r.location(),
            format!("/orders/{order_id}/step/4"),
            "{}",
            r.body
        );

        // Leaving and coming back: the order opens at step 4, step 3 prefilled.
        let r = c.get(&format!("/orders/{order_id}")).await;
        assert_eq!(r.location(), format!("/orders/{order_id}/step/4"));
        let page = c.get(&format!("/orders/{order_id}/step/3")).await;
        assert!(
            page.body.contains("91350100M000100Y43"),
            "{be}: step 3 not prefilled"
        );

        // Step 4 at the counter asks first (it ends the online flow):
        // nothing changes until confirmed.
        let r = c
            .post_form(
                &format!("/orders/{order_id}/step/4"),
                &[("_csrf", &csrf), ("handling", "counter")],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}");
        assert!(
            r.body.contains("data-testid=\"confirm-counter\""),
            "{be}: {}",
            r.body
        );
        let r = c.get(&format!("/orders/{order_id}")).await;
        assert_eq!(r.location(), format!("/orders/{order_id}/step/4"), "{be}");
        // Confirmed: the wizard ends with where to go.
        let r = c
            .post_form(
                &format!("/orders/{order_id}/step/4"),
                &[("_csrf", &csrf), ("handling", "counter"), ("confirm", "1")],
            )
            .await;
        assert_eq!(r.location(), format!("/orders/{order_id}"));
        let page = c.get(&format!("/orders/{order_id}")).await;
        assert!(page.body.contains("请携带以下材料"), "{}", page.body);
        assert!(page.body.contains("营业执照副本原件"));
        let list = c.get("/orders").await;
        assert!(list.body.contains("请到柜台办理"), "{be}: {}", list.body);

        // A second order starts with step 1 prefilled from the first.
        let r = c.post_form("/orders/new", &[("_csrf", &csrf)]).await;
        let page = c.get(r.location()).await;
        assert!(
            page.body.contains("11010519491231002X"),
            "{be}: step 1 not prefilled"
        );

        // The same through the JSON API.
        let r = c.get("/api/v1/orders").await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let items = r.json()["items"].as_array().unwrap().clone();
        let first = items.iter().find(|o| o["id"] == order_id).unwrap();
        assert_eq!(first["state"], "counter_visit");
        assert_eq!(first["state_label"], "请到柜台办理");
        let r = c.get(&format!("/api/v1/orders/{order_id}")).await;
        assert_eq!(r.json()["kind"], "new");
        let r = c.get("/api/v1/applications").await;
        assert_eq!(r.json()["items"].as_array().unwrap().len(), 3, "{be}");

        // Someone else's order does not exist for them.
        let mut other = Client::new(&app, "10.20.0.2");
        other.page_login("13500000002").await;
        let r = other.get(&format!("/orders/{order_id}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{be}");
        let r = other.get(&format!("/api/v1/orders/{order_id}")).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "not_found".to_owned())
        );
    }
}
