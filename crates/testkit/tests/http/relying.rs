//! 证书激活 through the relying-platform API (issue 12): a platform
//! registered with a token gets a challenge, the user's key signs it
//! (OpenSSL with the certificate's key stands in for the agent), the
//! platform activates; every refusal is named; 我的证书 shows 已激活.

use axum::http::{header, Method, StatusCode};
use certhall_ca::Family;
use certhall_domain::audit::Actor;
use certhall_domain::cert_login::SignedMessage;
use certhall_domain::Clock;
use certhall_service::ca::IssueInput;
use certhall_store::production::UkeyRow;
use certhall_testkit::client::Client;
use certhall_testkit::fixtures::{openssl, openssl_p256_csr, order_at_step_five_for};
use certhall_testkit::TestApp;
use serde_json::{json, Value};

use crate::audit_events;
use crate::reminders::{ca_ready, certificate_for};

const ORIGIN: &str = "https://ggzy.zaozhuang.example.cn";

async fn call(
    c: &mut Client<'_>,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let r = c
        .send_bytes(
            method,
            path,
            Some("application/json"),
            body.to_string().into_bytes(),
            &[(header::AUTHORIZATION.as_str(), format!("Bearer {token}"))],
        )
        .await;
    (
        r.status,
        serde_json::from_slice(&r.raw).unwrap_or(Value::Null),
    )
}

/// Signs what the agent would sign, with the key in `dir/k.pem`.
pub(crate) fn sign(
    dir: &std::path::Path,
    purpose: &str,
    origin: &str,
    challenge: &str,
) -> (String, String) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let msg = SignedMessage {
        purpose: purpose.into(),
        origin: origin.into(),
        challenge: challenge.into(),
    }
    .to_bytes();
    std::fs::write(dir.join("msg.bin"), &msg).unwrap();
    openssl(
        dir,
        &[
            "dgst", "-sha256", "-sign", "k.pem", "-out", "sig.der", "msg.bin",
        ],
    );
    (
        b64.encode(&msg),
        b64.encode(std::fs::read(dir.join("sig.der")).unwrap()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_activates_a_certificate_issued_for_its_application() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    for app in TestApp::each().await {
        let be = app.backend();
        ca_ready(&app).await;
        let s = &app.services;
        // A certificate issued for 山东政府采购 (sdzfcg), on a key.
        let phone = "13600000971";
        let (me, order) = order_at_step_five_for(&app, phone, "sdzfcg").await;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let csr = openssl_p256_csr(d);
        let cert = s
            .ca_issue(
                &IssueInput {
                    family: Family::P256,
                    profile: "enterprise",
                    csr: &csr,
                    subject: "C=CN,O=枣庄癸有限公司,USCC=91350100M000100Y43,CN=枣庄癸有限公司",
                    account: Some(me),
                    order_id: Some(order.id.0),
                    predecessor: None,
                    ends_by: None,
                },
                Actor::System,
            )
            .await
            .unwrap();
        let mut tx = app.db.store.begin_write().await.unwrap();
        certhall_store::production::insert_ukey(
            &mut tx,
            &UkeyRow {
                token_serial: format!("T{}", cert.serial),
                order_id: order.id.0,
                account_id: me,
                key_model: "demo".into(),
                key_model_name: "演示 UKey".into(),
                colour: "blue".into(),
                certificate_serial: cert.serial.clone(),
                so_pin_sealed: String::new(),
                so_pin_pending: None,
                attempt_id: 0,
                produced_at: cert.issued_at,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let cert_b64 = b64.encode(&cert.der);

        // Registered for its application, with its page's origin; another
        // platform for another application.
        let ours = s
            .add_platform(
                "山东政府采购平台",
                "sdzfcg",
                &[ORIGIN.to_owned()],
                None,
                Actor::Cli("t".into()),
            )
            .await
            .unwrap();
        let theirs = s
            .add_platform(
                "枣庄公共资源交易平台",
                "zzggzy",
                &["https://zz.example.cn".to_owned()],
                None,
                Actor::Cli("t".into()),
            )
            .await
            .unwrap();
        assert!(
            s.add_platform(
                "山东政府采购平台",
                "sdzfcg",
                &[ORIGIN.to_owned()],
                None,
                Actor::Cli("t".into())
            )
            .await
            .is_err(),
            "{be}: a name is registered once"
        );

        let mut c = Client::new(&app, "10.24.0.1");
        // No token, a wrong token: 401.
        let (st, v) = call(
            &mut c,
            "chp_nope",
            Method::POST,
            "/api/v1/relying/challenges",
            json!({}),
        )
        .await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("platform_unauthorized")),
            "{be}"
        );
        // Status before: valid, for this platform, not activated.
        let status_path = format!("/api/v1/relying/certificates/{}", cert.serial);
        let (st, v) = call(&mut c, &ours.token, Method::GET, &status_path, Value::Null).await;
        assert_eq!(st, StatusCode::OK, "{be}: {v}");
        assert_eq!(
            (
                v["valid"].as_bool(),
                v["for_this_platform"].as_bool(),
                v["activated"].as_bool()
            ),
            (Some(true), Some(true), Some(false)),
            "{be}: {v}"
        );

        let activate = |challenge: String, purpose: &'static str, origin: &'static str| {
            let (signed, sig) = sign(d, purpose, origin, &challenge);
            json!({ "challenge": challenge, "certificate": cert_b64, "signed_data": signed, "signature": sig })
        };
        let challenge = |c: Value| c["challenge"].as_str().unwrap().to_owned();

        // Another application's platform: refused, named.
        let (_, ch) = call(
            &mut c,
            &theirs.token,
            Method::POST,
            "/api/v1/relying/challenges",
            json!({}),
        )
        .await;
        let body = activate(challenge(ch), "activate", "https://zz.example.cn");
        let (st, v) = call(
            &mut c,
            &theirs.token,
            Method::POST,
            "/api/v1/relying/activations",
            body,
        )
        .await;
        assert_eq!(
            (st, v["code"].as_str()),
            (
                StatusCode::BAD_REQUEST,
                Some("activation_other_application")
            ),
            "{be}: {v}"
        );
        assert!(
            v["message"].as_str().unwrap().contains("不是为本平台办理"),
            "{be}"
        );
        // A login signature is not an activation; a foreign origin neither;
        // another platform's challenge neither.
        let (_, ch) = call(
            &mut c,
            &ours.token,
            Method::POST,
            "/api/v1/relying/challenges",
            json!({}),
        )
        .await;
        let (st, v) = call(
            &mut c,
            &ours.token,
            Method::POST,
            "/api/v1/relying/activations",
            activate(challenge(ch), "login", ORIGIN),
        )
        .await;
        assert_eq!(
            v["code"].as_str(),
            Some("activation_bad_signature"),
            "{be}: {st} {v}"
        );
        let (_, ch) = call(
            &mut c,
            &ours.token,
            Method::POST,
            "/api/v1/relying/challenges",
            json!({}),
        )
        .await;
        let (_, v) = call(
            &mut c,
            &ours.token,
            Method::POST,
            "/api/v1/relying/activations",
            activate(challenge(ch), "activate", "https://evil.example"),
        )
        .await;
        assert_eq!(
            v["code"].as_str(),
            Some("activation_bad_signature"),
            "{be}: {v}"
        );
        let (_, ch) = call(
            &mut c,
            &theirs.token,
            Method::POST,
            "/api/v1/relying/challenges",
            json!({}),
        )
        .await;
        let (_, v) = call(
            &mut c,
            &ours.token,
            Method::POST,
            "/api/v1/relying/activations",
            activate(challenge(ch), "activate", ORIGIN),
        )
        .await;
        assert_eq!(
            v["code"].as_str(),
            Some("activation_challenge_invalid"),
            "{be}: {v}"
        );
        assert_eq!(
            call(&mut c, &ours.token, Method::GET, &status_path, Value::Null)
                .await
                .1["activated"],
            false
        );

        // Activated.
        let (_, ch) = call(
            &mut c,
            &ours.token,
            Method::POST,
            "/api/v1/relying/challenges",
            json!({}),
        )
        .await;
        let ch = challenge(ch);
        let body = activate(ch.clone(), "activate", ORIGIN);
        let (st, v) = call(
            &mut c,
            &ours.token,
            Method::POST,
            "/api/v1/relying/activations",
            body.clone(),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{be}: {v}");
        assert_eq!(
            (v["activated"].as_bool(), v["status"].as_str()),
            (Some(true), Some("valid")),
            "{be}: {v}"
        );
        // The same answer again: the challenge is used up.
        let (_, v) = call(
            &mut c,
            &ours.token,
            Method::POST,
            "/api/v1/relying/activations",
            body,
        )
        .await;
        assert_eq!(
            v["code"].as_str(),
            Some("activation_challenge_used"),
            "{be}: {v}"
        );
        assert_eq!(
            audit_events(&app, "certificate.activated").await.len(),
            1,
            "{be}"
        );
        assert_eq!(
            audit_events(&app, "certificate.activation_refused")
                .await
                .len(),
            5,
            "{be}"
        );

        // The applicant sees 已激活.
        let mut web = Client::new(&app, "10.24.0.2");
        web.page_login(phone).await;
        let list = web.get("/certificates").await.body;
        assert!(list.contains("已激活"), "{be}");
        let detail = web
            .get(&format!("/certificates/{}", cert.serial))
            .await
            .body;
        assert!(detail.contains("已在山东政府采购平台激活"), "{be}");
        let page = web.get("/certificates/activate").await.body;
        assert!(
            page.contains("山东政府采购平台（"),
            "{be}: the 证书激活 page lists it"
        );

        // Revoked: the platform's status says so, and a new activation is refused.
        s.ca_revoke(
            &cert.serial,
            certhall_ca::crl::Reason::KeyCompromise,
            Actor::System,
            None,
        )
        .await
        .unwrap();
        let (_, v) = call(&mut c, &ours.token, Method::GET, &status_path, Value::Null).await;
        assert_eq!(
            (
                v["status"].as_str(),
                v["valid"].as_bool(),
                v["revocation_reason"].as_str()
            ),
            (Some("revoked"), Some(false), Some("keyCompromise")),
            "{be}: {v}"
        );
        let (_, ch) = call(
            &mut c,
            &ours.token,
            Method::POST,
            "/api/v1/relying/challenges",
            json!({}),
        )
        .await;
        let (_, v) = call(
            &mut c,
            &ours.token,
            Method::POST,
            "/api/v1/relying/activations",
            activate(challenge(ch), "activate", ORIGIN),
        )
        .await;
        assert_eq!(v["code"].as_str(), Some("activation_revoked"), "{be}: {v}");
        // A certificate without an order (not issued for any platform).
        let (_, other) = certificate_for(&app, "13600000972", "枣庄子有限公司").await;
        let (_, v) = call(
            &mut c,
            &ours.token,
            Method::GET,
            &format!("/api/v1/relying/certificates/{}", other.serial),
            Value::Null,
        )
        .await;
        assert_eq!(v["for_this_platform"].as_bool(), Some(false), "{be}");
        let (st, _) = call(
            &mut c,
            &ours.token,
            Method::GET,
            "/api/v1/relying/certificates/00ff",
            Value::Null,
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{be}");
    }
}

/// What the test platform's webhook receiver saw: (event id header,
/// signature valid, body).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, bool, Value)>>>;

/// A platform's webhook receiver on a real port: verifies each delivery
/// with `certhall_relying::verify` (as a platform would), answers 503 to
/// the first and 200 after.
async fn receiver(
    secret: std::sync::Arc<std::sync::Mutex<String>>,
    clock: std::sync::Arc<certhall_domain::clock::ManualClock>,
) -> (String, Seen) {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    let seen: Seen = Default::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            let secret = secret.clone();
            let clock = clock.clone();
            async move {
                let sig = headers
                    .get(certhall_relying::SIGNATURE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let key = secret.lock().unwrap().clone();
                let valid =
                    certhall_relying::verify(&key, sig, &body, clock.now().millis() / 1000).is_ok();
                let id = headers
                    .get(certhall_relying::EVENT_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let mut log = log.lock().unwrap();
                log.push((
                    id,
                    valid,
                    serde_json::from_slice(&body).unwrap_or(Value::Null),
                ));
                if log.len() == 1 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_the_platforms_it_was_activated_for_signed_and_retried() {
    for app in TestApp::each().await {
        let be = app.backend();
        ca_ready(&app).await;
        let s = &app.services;
        s.ensure_demo_applications().await.unwrap();
        let (me, cert) = certificate_for(&app, "13600000981", "枣庄丑有限公司").await;
        // The platform's receiver learns its secret from the registration.
        let secret = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (url, seen) = receiver(secret.clone(), app.clock.clone()).await;
        let with_hook = s
            .add_platform(
                "山东政府采购平台",
                "sdzfcg",
                &[ORIGIN.to_owned()],
                Some(&url),
                Actor::Cli("t".into()),
            )
            .await
            .unwrap();
        *secret.lock().unwrap() = with_hook.webhook_secret.clone().unwrap();
        assert_eq!(
            with_hook.webhook_secret.as_deref(),
            Some(s.webhook_secret(with_hook.id).as_str())
        );
        let without = s
            .add_platform(
                "枣庄公共资源交易平台",
                "zzggzy",
                &["https://zz.example.cn".to_owned()],
                None,
                Actor::Cli("t".into()),
            )
            .await
            .unwrap();
        assert!(without.webhook_secret.is_none());
        // Activated for both.
        let mut tx = app.db.store.begin_write().await.unwrap();
        for p in [with_hook.id, without.id] {
            certhall_store::relying::activate(&mut tx, &cert.serial, p, me, app.clock.now())
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();

        s.ca_revoke(
            &cert.serial,
            certhall_ca::crl::Reason::KeyCompromise,
            Actor::System,
            None,
        )
        .await
        .unwrap();
        let events = certhall_store::relying::events(&app.db.store)
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "{be}: one platform has a webhook");
        assert_eq!(
            (events[0].platform_id, events[0].kind.as_str()),
            (with_hook.id, "certificate.revoked")
        );

        // First try: the platform answers 503; not again before the delay.
        let run = s.deliver_platform_events().await.unwrap();
        assert_eq!((run.tried, run.delivered, run.failed), (1, 0, 1), "{be}");
        assert_eq!(s.deliver_platform_events().await.unwrap().tried, 0, "{be}");
        let e = &certhall_store::relying::events(&app.db.store)
            .await
            .unwrap()[0];
        assert_eq!(e.attempts, 1);
        assert!(
            e.last_error.as_deref().unwrap().contains("503"),
            "{be}: {e:?}"
        );
        // After it, through the lease: delivered.
        app.clock.advance(std::time::Duration::from_secs(31));
        let run = s
            .run_webhook_job("host-a", std::time::Duration::from_secs(15))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run.delivered, 1, "{be}: {run:?}");
        assert!(s
            .run_webhook_job("host-b", std::time::Duration::from_secs(15))
            .await
            .unwrap()
            .is_none());
        let e = &certhall_store::relying::events(&app.db.store)
            .await
            .unwrap()[0];
        assert!(e.delivered_at.is_some(), "{be}");
        assert_eq!(
            s.deliver_platform_events().await.unwrap().tried,
            0,
            "{be}: delivered once"
        );

        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{be}");
        for (id, valid, body) in &seen {
            assert!(*valid, "{be}: the signature verifies");
            assert_eq!(id, &e.id.to_string());
            assert_eq!(body["kind"], "certificate.revoked");
            assert_eq!(body["serial"], cert.serial.as_str());
            assert_eq!(body["data"]["reason"], "keyCompromise");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_platform_tokens_are_limited_per_address() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        s.ca_seed_profiles().await.unwrap();
        s.ensure_demo_applications().await.unwrap();
        let ours = s
            .add_platform(
                "枣庄公共资源交易平台",
                "zzggzy",
                &[ORIGIN.to_owned()],
                None,
                Actor::Cli("t".into()),
            )
            .await
            .unwrap();
        let status_path = "/api/v1/relying/certificates/0a1b2c";
        let mut guesser = Client::new(&app, "10.24.9.9");
        for i in 0..20 {
            let (st, v) = call(
                &mut guesser,
                &format!("chp_guess{i}"),
                Method::GET,
                status_path,
                Value::Null,
            )
            .await;
            assert_eq!(
                (st, v["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("platform_unauthorized")),
                "{be}: guess {i}"
            );
        }
        // The 21st call from there is refused, even with the right token.
        let (st, v) = call(
            &mut guesser,
            &ours.token,
            Method::GET,
            status_path,
            Value::Null,
        )
        .await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("platform_auth_limit")),
            "{be}: {v}"
        );
        assert!(v["message"].as_str().unwrap().contains("一小时"), "{be}");
        // Another address is not affected; an hour later neither is this one.
        let mut platform = Client::new(&app, "10.24.9.10");
        let (st, _) = call(
            &mut platform,
            &ours.token,
            Method::GET,
            status_path,
            Value::Null,
        )
        .await;
        assert_ne!(st, StatusCode::TOO_MANY_REQUESTS, "{be}");
        assert_ne!(st, StatusCode::UNAUTHORIZED, "{be}");
        app.clock.advance(std::time::Duration::from_secs(3601));
        let (st, _) = call(
            &mut guesser,
            &ours.token,
            Method::GET,
            status_path,
            Value::Null,
        )
        .await;
        assert_ne!(
            st,
            StatusCode::TOO_MANY_REQUESTS,
            "{be}: the hour has passed"
        );
        assert_ne!(st, StatusCode::UNAUTHORIZED, "{be}");
    }
}
