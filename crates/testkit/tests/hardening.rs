//! The outside review's findings (issue 14), through the whole router on
//! SQLite and PostgreSQL: the `Origin` check and HSTS, and access
//! refusals in the audit chain (throttled).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::http::{Method, StatusCode};
use certhall_store::audit;
use certhall_store::testing::TestDatabase;
use certhall_testkit::client::Client;
use certhall_testkit::fixtures::{openssl, openssl_p256_csr};
use certhall_testkit::TestApp;
use certhall_web::WebConfig;
use serde_json::{json, Value};

/// The `access.refused` entries, newest first, as (actor, data).
async fn access_refusals(app: &TestApp) -> Vec<(String, Value)> {
    audit::recent(&app.db.store, Some("access.refused"), 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.actor.clone(), serde_json::from_str(&e.data).unwrap()))
        .collect()
}

/// Waits (up to 10 s) until `n` entries with `reason` are in the chain:
/// a refusal found inside a transaction is recorded after it ends.
async fn wait_for_refusals(app: &TestApp, reason: &str, n: usize) -> Vec<(String, Value)> {
    for _ in 0..200 {
        let found: Vec<_> = access_refusals(app)
            .await
            .into_iter()
            .filter(|(_, d)| d["reason"] == reason)
            .collect();
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} {reason} refusals in the audit chain");
}

async fn databases() -> Vec<TestDatabase> {
    let mut all = vec![TestDatabase::sqlite().await.unwrap()];
    all.extend(TestDatabase::postgres().await.unwrap());
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_are_refused_and_https_is_pinned() {
    for db in databases().await {
        let app = TestApp::with_web(
            db,
            WebConfig {
                secure_cookies: true,
                ..WebConfig::for_tests()
            },
        );
        let be = app.backend();
        let mut c = Client::new(&app, "10.61.0.1");

        // HSTS on every answer when served over HTTPS.
        let r = c.get("/login").await;
        assert_eq!(
            r.headers.get("strict-transport-security").unwrap(),
            "max-age=31536000",
            "{be}"
        );
        let csrf = r.csrf();

        // A form posted from another site's page: refused before anything
        // happens, with a page that says why, and audited.
        let evil = [("origin", "https://evil.example".to_owned())];
        let body =
            serde_urlencoded::to_string([("_csrf", csrf.as_str()), ("phone", "13600000061")])
                .unwrap();
        let r = c
            .send(
                Method::POST,
                "/login/code",
                Some("application/x-www-form-urlencoded"),
                body.clone(),
                &evil,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{be}");
        assert!(r.body.contains("来自其他网站"), "{be}: {}", r.body);
        assert!(app.latest_code("13600000061").await.is_none(), "{be}");
        let refusals = wait_for_refusals(&app, "foreign_origin", 1).await;
        assert_eq!(
            refusals[0].1["target"]["origin"], "https://evil.example",
            "{be}"
        );
        assert_eq!(refusals[0].1["target"]["path"], "/login/code", "{be}");

        // The API answers JSON; "null" is refused too.
        for origin in [
            "https://evil.example",
            "null",
            "http://127.0.0.1:8080.evil.example",
        ] {
            let r = c
                .send(
                    Method::POST,
                    "/api/v1/auth/sms/send",
                    Some("application/json"),
                    json!({ "phone": "13600000062" }).to_string(),
                    &[("origin", origin.to_owned())],
                )
                .await;
            assert_eq!(
                (r.status, r.code().as_str()),
                (StatusCode::FORBIDDEN, "foreign_origin"),
                "{be}: {origin}"
            );
        }
        assert!(app.latest_code("13600000062").await.is_none(), "{be}");

        // CertHall's own origin (the public URL), the origin the request
        // was addressed to, and no Origin at all pass.
        let r = c
            .send(
                Method::POST,
                "/login/code",
                Some("application/x-www-form-urlencoded"),
                body,
                &[("origin", "http://127.0.0.1:8080".to_owned())],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{be}: {}", r.body);
        assert!(app.latest_code("13600000061").await.is_some(), "{be}");
        let r = c
            .send(
                Method::POST,
                "/api/v1/auth/sms/send",
                Some("application/json"),
                json!({ "phone": "13600000063" }).to_string(),
                &[
                    ("host", "hall.example.cn".to_owned()),
                    ("origin", "https://hall.example.cn".to_owned()),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let r = c
            .post_json("/api/v1/auth/sms/send", json!({ "phone": "13600000064" }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);

        // Providers' server-to-server routes are not judged by Origin
        // (their own signature or token check answers).
        let r = c
            .send(
                Method::POST,
                "/hooks/courier/push",
                Some("application/x-www-form-urlencoded"),
                "content=x".into(),
                &evil,
            )
            .await;
        assert_ne!(r.code(), "foreign_origin", "{be}: {}", r.body);

        app.services.verify_audit_chain().await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn no_hsts_over_plain_http() {
    let app = TestApp::sqlite().await;
    let mut c = Client::new(&app, "10.61.0.2");
    let r = c.get("/login").await;
    assert!(r.headers.get("strict-transport-security").is_none());
}

/// Another applicant's order: not found, and the probe audited with the
/// account and the order — ten per window, then a count of the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_other_orders_is_audited_without_flooding_the_chain() {
    for app in TestApp::each().await {
        let be = app.backend();
        let (_, order) = certhall_testkit::fixtures::order_at_step_five(&app, "13600000071").await;
        let mut prober = Client::new(&app, "10.62.0.1");
        let me = prober.api_login("13600000072").await;
        let my_id = me["account"]["id"].as_i64();
        for _ in 0..25 {
            let r = prober.get(&format!("/api/v1/orders/{}", order.id)).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{be}");
            // A write is refused the same way (inside its transaction).
            let r = prober
                .send(
                    Method::PUT,
                    &format!("/api/v1/orders/{}/steps/4", order.id),
                    Some("application/json"),
                    json!({ "handling": "online" }).to_string(),
                    &[],
                )
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{be}: {}", r.body);
        }
        // A nonexistent order is just not found: nothing to audit.
        let r = prober.get("/api/v1/orders/987654").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{be}");

        let found = wait_for_refusals(&app, "foreign_order", 10).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(access_refusals(&app).await.len(), 10, "{be}: throttled");
        for (actor, data) in &found {
            assert!(actor.starts_with("account:"), "{be}: {actor}");
            if let Some(id) = my_id {
                assert_eq!(actor, &format!("account:{id}"), "{be}");
            }
            assert_eq!(data["target"]["order"], order.id.0, "{be}");
        }

        // The next window records again and says how many were left out.
        app.clock.advance(Duration::from_secs(10 * 60));
        let r = prober.get(&format!("/api/v1/orders/{}", order.id)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{be}");
        let found = wait_for_refusals(&app, "foreign_order", 11).await;
        assert_eq!(found[0].1["left_out_before"], 40, "{be}: {:?}", found[0]);
        app.services.verify_audit_chain().await.unwrap().unwrap();
    }
}

/// An applicant's token on the counter API is refused like any bad token,
/// and audited with the applicant and the path.
#[tokio::test]
async fn applicant_token_on_the_counter_api_is_audited() {
    for app in TestApp::each().await {
        let be = app.backend();
        let mut c = Client::new(&app, "10.63.0.1");
        c.api_login("13600000081").await;
        let r = c.get("/api/v1/counter/orders").await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "bad_token"),
            "{be}: {}",
            r.body
        );
        let found = wait_for_refusals(&app, "applicant_token_on_counter", 1).await;
        assert!(found[0].0.starts_with("account:"), "{be}");
        assert_eq!(
            found[0].1["target"]["path"], "/api/v1/counter/orders",
            "{be}"
        );
        // A token that is nobody's is not an access refusal.
        c.bearer = Some("x".repeat(43));
        let r = c.get("/api/v1/counter/orders").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{be}");
        assert_eq!(
            wait_for_refusals(&app, "applicant_token_on_counter", 1)
                .await
                .len(),
            1,
            "{be}"
        );
    }
}

/// The OpenAPI document lists exactly what the router answers: every
/// path the API routers are built from is asked, with a method no route
/// takes, for its `405 Allow` header — the router itself says which
/// methods it serves — and the result must equal the document's
/// operations. A documented route the router lacks, or a route the
/// document forgets, fails.
#[tokio::test]
async fn openapi_lists_exactly_the_routes_the_router_answers() {
    use tower::ServiceExt;
    let app = TestApp::sqlite().await;
    let mut routed: Vec<(String, String)> = Vec::new();
    for path in certhall_web::api::paths() {
        let uri = format!("/api/v1{path}").replace('{', "").replace('}', "");
        let res = app
            .router
            .clone()
            .oneshot(
                axum::http::Request::builder()
                    .method("PROBE")
                    .uri(&uri)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let allow = res.headers()["allow"].to_str().unwrap().to_owned();
        for m in allow.split(',').map(str::trim) {
            if m != "HEAD" {
                routed.push((m.to_lowercase(), path.to_owned()));
            }
        }
    }
    routed.sort();

    let mut c = Client::new(&app, "10.64.0.1");
    let doc = c.get("/api/v1/openapi.json").await.json();
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    documented.sort();
    assert_eq!(documented, routed);
    assert!(routed.len() > 50, "{}", routed.len());
}

/// OCSP answers are kept in each process's memory; a revocation shows at
/// once in the process that made it and, in another process on the same
/// database, within `ocsp_poll` (it reads the database's OCSP generation
/// no more often than that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsp_memory_follows_revocations_in_every_process() {
    use certhall_ca::crl::Reason;
    use certhall_ca::Family;
    use certhall_domain::audit::Actor;
    use certhall_service::ca::{role, CaRuntime, IssueInput, KeyBackend};
    for app in TestApp::each().await {
        let be = app.backend();
        let a = &app.services;
        // A second process on the same database: its own CA runtime.
        let b = certhall_service::Services {
            ca: std::sync::Arc::new(CaRuntime::new(a.ca.settings.clone())),
            ..a.clone()
        };
        a.ca_init(Family::P256, &KeyBackend::File, Actor::System)
            .await
            .unwrap();
        a.ca_seed_profiles().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let csr = openssl_p256_csr(d);
        let cert = a
            .ca_issue(
                &IssueInput {
                    family: Family::P256,
                    profile: "enterprise",
                    csr: &csr,
                    subject: "C=CN,O=某公司,USCC=91350100M000100Y43,CN=某公司",
                    account: None,
                    order_id: None,
                    predecessor: None,
                    ends_by: None,
                },
                Actor::System,
            )
            .await
            .unwrap();
        std::fs::write(
            d.join("ee.pem"),
            certhall_ca::issue::to_pem(&cert.der).unwrap(),
        )
        .unwrap();
        let issuing = a.ca_active(Family::P256, role::ISSUING).await.unwrap();
        std::fs::write(
            d.join("issuing.pem"),
            certhall_ca::issue::to_pem(&issuing.der).unwrap(),
        )
        .unwrap();
        openssl(
            d,
            &[
                "ocsp",
                "-issuer",
                "issuing.pem",
                "-cert",
                "ee.pem",
                "-no_nonce",
                "-reqout",
                "req.der",
            ],
        );
        let req = std::fs::read(d.join("req.der")).unwrap();
        let status = |der: Vec<u8>| {
            std::fs::write(d.join("resp.der"), der).unwrap();
            openssl(
                d,
                &[
                    "ocsp",
                    "-respin",
                    "resp.der",
                    "-issuer",
                    "issuing.pem",
                    "-cert",
                    "ee.pem",
                    "-noverify",
                    // The test clock is not today's.
                    "-validity_period",
                    "100000000",
                ],
            )
        };

        let first_b = b.ca_ocsp(&req).await.der;
        let t = status(first_b.clone());
        assert!(t.contains("ee.pem: good"), "{be}: {t}");
        assert!(
            status(a.ca_ocsp(&req).await.der).contains("ee.pem: good"),
            "{be}"
        );
        a.ca_revoke(&cert.serial, Reason::KeyCompromise, Actor::System, None)
            .await
            .unwrap();
        // The process that revoked: at once.
        assert!(
            status(a.ca_ocsp(&req).await.der).contains("ee.pem: revoked"),
            "{be}"
        );
        // The other: its memory until the poll is due...
        assert_eq!(b.ca_ocsp(&req).await.der, first_b, "{be}");
        // ...then the database's answer.
        app.clock.advance(Duration::from_millis(300));
        let text = status(b.ca_ocsp(&req).await.der);
        assert!(
            text.contains("ee.pem: revoked") && text.contains("keyCompromise"),
            "{be}: {text}"
        );
    }
}

/// Group commit of issuances: many issuances at once from two processes
/// all commit, each with its audit entry in one valid chain; one with a
/// missing predecessor is refused alone; a process whose view of the
/// profile went stale (another process changed it) issues from the
/// profile as it is now, never from its memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuance_group_commit_keeps_every_certificate_and_the_chain() {
    use certhall_ca::profile::Profile;
    use certhall_ca::Family;
    use certhall_domain::audit::Actor;
    use certhall_service::ca::{CaRuntime, IssueInput, KeyBackend};
    use certhall_service::ServiceError;
    use std::sync::Arc;
    const SUBJECT: &str = "C=CN,O=某公司,USCC=91350100M000100Y43,CN=某公司";
    for app in TestApp::each().await {
        let be = app.backend();
        let a = app.services.clone();
        let b = certhall_service::Services {
            ca: Arc::new(CaRuntime::new(a.ca.settings.clone())),
            ..a.clone()
        };
        a.ca_init(Family::P256, &KeyBackend::File, Actor::System)
            .await
            .unwrap();
        a.ca_seed_profiles().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csr = Arc::new(openssl_p256_csr(dir.path()));
        let issue = |s: certhall_service::Services, predecessor: Option<&'static str>| {
            let csr = csr.clone();
            tokio::spawn(async move {
                s.ca_issue(
                    &IssueInput {
                        family: Family::P256,
                        profile: "enterprise",
                        csr: &csr,
                        subject: SUBJECT,
                        account: None,
                        order_id: None,
                        predecessor,
                        ends_by: None,
                    },
                    Actor::System,
                )
                .await
            })
        };
        let mut tasks = Vec::new();
        for i in 0..60 {
            tasks.push(issue(if i % 2 == 0 { a.clone() } else { b.clone() }, None));
        }
        let orphan = issue(a.clone(), Some("0BADC0FFEE"));
        let mut serials = std::collections::BTreeSet::new();
        for t in tasks {
            serials.insert(t.await.unwrap().unwrap().serial);
        }
        assert_eq!(serials.len(), 60, "{be}");
        match orphan.await.unwrap() {
            Err(ServiceError::Refused(r)) => {
                assert_eq!(r, certhall_domain::Refusal::CertificateNotFound, "{be}")
            }
            other => panic!("{be}: {other:?}"),
        }
        let stored = a.ca_certificates(Some(Family::P256), 1000).await.unwrap();
        assert_eq!(stored.len(), 60, "{be}");
        assert!(stored.iter().all(|c| serials.contains(&c.serial)), "{be}");
        let entries = certhall_store::audit::recent(&a.store, Some("ca.certificate_issued"), 1000)
            .await
            .unwrap();
        assert_eq!(entries.len(), 60, "{be}");
        assert!(a.verify_audit_chain().await.unwrap().is_ok(), "{be}");

        // `a` remembers the profile (365 days); `b` shortens it to 30.
        let before = issue(a.clone(), None).await.unwrap().unwrap();
        let mut short = Profile::enterprise();
        short.validity_days = 30;
        b.ca_save_profile(&short, true, Actor::System)
            .await
            .unwrap();
        let after = issue(a.clone(), None).await.unwrap().unwrap();
        let days = |c: &certhall_store::ca::CertificateRow| {
            (c.not_after.millis() - c.not_before.millis()) / 86_400_000
        };
        assert!(days(&before) > 300, "{be}: {}", days(&before));
        assert_eq!(days(&after), 30, "{be}");
    }
}
