//! The CA's records on both backends: hierarchies, issuance, revocation, CRL and OCSP over HTTP.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use certhall_store::audit;
use certhall_testkit::client::Client;
use certhall_testkit::fixtures::{openssl, openssl_p256_csr};
use certhall_testkit::TestApp;
use std::time::Duration;
use tower::ServiceExt;

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
        let csr = openssl_p256_csr(d);
        let input = IssueInput {
            family: Family::P256,
            profile: "enterprise",
            csr: &csr,
            subject: "C=CN,O=某公司,USCC=91350100M000100Y43,CN=某公司",
            account: None,
            order_id: None,
            predecessor: None,
            ends_by: None,
        };
        let cert = s.ca_issue(&input, Actor::System).await.unwrap();
        let renewal = IssueInput {
            predecessor: Some(&cert.serial),
            ends_by: None,
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
        // Relying parties' software, not a browser: no browser-id cookie,
        // no Origin check (server to server), only nosniff of the page
        // headers (the responder is mounted outside the browser layers).
        let r = app
            .router
            .clone()
            .oneshot(
                Request::post("/ocsp")
                    .header(header::CONTENT_TYPE, "application/ocsp-request")
                    .header(header::ORIGIN, "https://relying.example")
                    .body(Body::from(req.clone()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{b}");
        assert!(r.headers().get(header::SET_COOKIE).is_none(), "{b}");
        assert!(
            r.headers().get(header::CONTENT_SECURITY_POLICY).is_none(),
            "{b}"
        );
        assert_eq!(
            r.headers().get(header::X_CONTENT_TYPE_OPTIONS).unwrap(),
            "nosniff",
            "{b}"
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
