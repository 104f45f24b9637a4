//! Browser sessions and API tokens: CSRF, rotation, logout, idle timeout, authorization.

use axum::http::{header, Method, StatusCode};
use certhall_testkit::client::Client;
use certhall_testkit::TestApp;
use serde_json::json;

use super::{audit_events, secs};

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
