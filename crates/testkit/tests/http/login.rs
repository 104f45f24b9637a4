//! Logging in with an SMS code: refusals, send limits, the login page, one code under concurrency.

use axum::http::{header, Method, StatusCode};
use certhall_store::audit;
use certhall_testkit::client::Client;
use certhall_testkit::TestApp;
use serde_json::json;

use super::{audit_events, secs};

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
