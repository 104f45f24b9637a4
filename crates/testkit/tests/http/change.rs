//! 证书变更 through the services and the JSON API (issue 12): a change
//! order opens prefilled at step 3, refuses another application, another
//! enterprise, no change and a missing license (each saving nothing),
//! passes the counter, and writes its certificate onto the same key: the
//! new subject from the order, the old certificate revoked as
//! `affiliationChanged`, the order completed. The walk with a real token
//! and browser is `crates/agent/tests/lifecycle_e2e.rs`.

use axum::http::StatusCode;
use base64::Engine as _;
use certhall_domain::materials::MaterialKind;
use certhall_domain::order::{OrderKind, OrderState, Step};
use certhall_service::RequestMeta;
use certhall_testkit::client::Client;
use certhall_testkit::fixtures::{enterprise, letter_and_approve, openssl_p256_csr, png};
use certhall_testkit::TestApp;
use serde_json::json;

use crate::audit_events;
use crate::relying::sign;
use crate::reminders::{ca_ready, certificate_of};
use crate::renewal::on_token;

const MINE: &str = "13600000941";
const TOKEN: &str = "TK0941";
const ORIGIN: &str = "http://127.0.0.1:8080";
const NEW_NAME: &str = "枣庄市恒信建设集团有限公司";

/// A challenge for the key write of the change order `id`.
async fn challenge(c: &mut Client<'_>, id: certhall_domain::OrderId) -> String {
    let r = c
        .post_json(&format!("/api/v1/orders/{id}/change/challenge"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()["challenge"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_name_passes_review_and_is_written_onto_the_same_key() {
    for app in TestApp::each().await {
        let be = app.backend();
        ca_ready(&app).await;
        let s = &app.services;
        let m = RequestMeta::default();
        // A certificate issued for a reviewed order, on the key TOKEN.
        let (me, _, x, old_key) = on_token(
            &app,
            MINE,
            TOKEN,
            &certhall_domain::production::certificate_subject(
                &enterprise().name,
                &enterprise().uscc,
                "李四",
            ),
        )
        .await;

        let mut c = Client::new(&app, "10.26.0.1");
        c.api_login(MINE).await;
        // 申请变更: an order at step 3 with steps 1–3 carried over.
        let r = c
            .post_json(
                &format!("/api/v1/certificates/{}/changes", x.serial),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let id = certhall_domain::OrderId(r.json()["order"]["id"].as_i64().unwrap());
        assert_eq!(r.json()["next"], format!("/orders/{id}"));
        let change = s.order_of(me, id).await.unwrap();
        assert_eq!(change.kind, OrderKind::Change);
        assert_eq!(
            change.state,
            OrderState::Draft {
                reached: Step::Enterprise
            }
        );
        let steps = s.order_summary(me, id).await.unwrap();
        assert!(steps.materials.is_empty(), "{be}: the old license stays");
        assert_eq!(steps.change.as_ref().unwrap().old_serial, x.serial);
        // A second change of the same certificate names the open one.
        let r = c
            .post_json(
                &format!("/api/v1/certificates/{}/changes", x.serial),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}: {}", r.body);
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains(&format!("订单 {id}")),
            "{be}: {}",
            r.body
        );

        // The change rules, each refusal saving nothing.
        let refused = |r: Result<_, certhall_service::ServiceError>| match r {
            Err(certhall_service::ServiceError::Refused(why)) => why.message_zh(),
            other => panic!("{be}: refused expected, got {other:?}"),
        };
        let why = refused(s.wizard_application(me, id, "zzggzy", &m).await);
        assert!(why.contains("不能更换应用"), "{be}: {why}");
        let why = refused(s.wizard_enterprise(me, id, &enterprise(), &m).await);
        assert!(why.contains("无需办理证书变更"), "{be}: {why}");
        let mut renamed = enterprise();
        renamed.name = NEW_NAME.into();
        let why = refused(s.wizard_enterprise(me, id, &renamed, &m).await);
        assert!(why.contains("上传变更后的营业执照"), "{be}: {why}");
        let mut other = renamed.clone();
        other.uscc = "91350100M000100Y43".into();
        let why = refused(s.wizard_enterprise(me, id, &other, &m).await);
        assert!(
            why.contains("统一社会信用代码与原证书不一致"),
            "{be}: {why}"
        );
        // A counter visit has nothing to produce for a change.
        let why = refused(
            s.wizard_handling(me, id, certhall_domain::wizard::Handling::Counter, &m)
                .await,
        );
        assert!(why.contains("证书变更请选择在线办理"), "{be}: {why}");
        let unchanged = s.order_of(me, id).await.unwrap();
        assert_eq!(
            (unchanged.state, unchanged.version),
            (change.state, change.version),
            "{be}"
        );
        // The new license, the new name: on through step 4 and 5.
        s.upload_material(
            me,
            id,
            MaterialKind::License,
            "new-license.png",
            png(900, 640),
            &m,
        )
        .await
        .unwrap();
        s.wizard_enterprise(me, id, &renamed, &m).await.unwrap();
        s.wizard_handling(me, id, certhall_domain::wizard::Handling::Online, &m)
            .await
            .unwrap();
        // Nothing to write before the counter approves.
        let r = c
            .post_json(&format!("/api/v1/orders/{id}/change/code"), json!({}))
            .await;
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (StatusCode::CONFLICT, Some("order_state_conflict")),
            "{be}: {}",
            r.body
        );
        let approved = letter_and_approve(&app, MINE, me, id).await;
        assert_eq!(approved.state, OrderState::AwaitingKeyWrite, "{be}");
        let detail = s
            .review_detail(&certhall_testkit::fixtures::operator(&app).await, id)
            .await
            .unwrap();
        let changes = detail.change.unwrap().changes;
        assert_eq!(changes.len(), 1, "{be}: {changes:?}");
        assert_eq!(
            (changes[0].label, changes[0].after.as_str()),
            ("企业名称", NEW_NAME)
        );
        // No step 6 for a change.
        assert!(s
            .order_summary(me, id)
            .await
            .unwrap()
            .next
            .contains("写入新证书"));

        // The key write: the code, the old key's signature, a new key.
        let r = c
            .post_json(&format!("/api/v1/orders/{id}/change/code"), json!({}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let code = app.latest_code(MINE).await.unwrap();
        // Signed by another key: refused, nothing opened.
        let stranger = tempfile::tempdir().unwrap();
        openssl_p256_csr(stranger.path());
        let ch = challenge(&mut c, id).await;
        let (signed, signature) = sign(stranger.path(), "renew", ORIGIN, &ch);
        let r = c
            .post_json(
                &format!("/api/v1/orders/{id}/change/writes"),
                json!({ "token_serial": TOKEN, "code": code, "challenge": ch,
                        "signed_data": signed, "signature": signature }),
            )
            .await;
        assert_eq!(
            r.json()["code"].as_str(),
            Some("renewal_proof_failed"),
            "{be}: {}",
            r.body
        );
        let ch = challenge(&mut c, id).await;
        let (signed, signature) = sign(old_key.path(), "renew", ORIGIN, &ch);
        let r = c
            .post_json(
                &format!("/api/v1/orders/{id}/change/writes"),
                json!({ "token_serial": TOKEN, "code": code, "challenge": ch,
                        "signed_data": signed, "signature": signature }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let write = r.json()["renewal"]["id"].as_i64().unwrap();
        assert_eq!(r.json()["renewal"]["order_id"], json!(id.0), "{be}");
        let new_key = tempfile::tempdir().unwrap();
        let csr = String::from_utf8(openssl_p256_csr(new_key.path())).unwrap();
        let r = c
            .post_json(
                &format!("/api/v1/renewals/{write}/csr"),
                json!({ "csr": csr, "key_id": "0d1e" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let new_serial = r.json()["serial"].as_str().unwrap().to_owned();
        let new = s.ca_certificate(&new_serial).await.unwrap();
        assert!(new.subject.contains(NEW_NAME), "{be}: {}", new.subject);
        assert_eq!(new.order_id, Some(id.0), "{be}");
        // A change changes the data, not the term: the old end is kept.
        assert_eq!(new.not_after, x.not_after, "{be}");
        // Read back: the order completes and the old certificate ends.
        let r = c
            .post_json(
                &format!("/api/v1/renewals/{write}/written"),
                json!({ "certificate": base64::engine::general_purpose::STANDARD.encode(&new.der) }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let done = s.order_of(me, id).await.unwrap();
        assert_eq!(done.state, OrderState::Completed, "{be}");
        let old = s.ca_certificate(&x.serial).await.unwrap();
        let revoked = old.revocation.expect("the old certificate revoked");
        assert_eq!(
            revoked.reason_code,
            i64::from(certhall_ca::crl::Reason::AffiliationChanged.code()),
            "{be}"
        );
        // 我的证书: the new one on the same key, the old one replaced (not
        // 补办-able under its old name).
        let old_mine = s.my_certificate(me, &x.serial).await.unwrap();
        assert_eq!(
            old_mine.status,
            certhall_service::certificates::CertificateStatus::Superseded,
            "{be}"
        );
        assert!(!old_mine.status.replaceable(), "{be}");
        let mine = s.my_certificate(me, &new_serial).await.unwrap();
        assert_eq!(
            mine.ukey.map(|k| k.token_serial),
            Some(TOKEN.to_owned()),
            "{be}"
        );
        let completed = audit_events(&app, "certificate.renewal")
            .await
            .into_iter()
            .filter(|e| e["event"] == "completed" && e["order"] == json!(id.0))
            .count();
        assert_eq!(completed, 1, "{be}");
        // Done once: no second write, no second change order of it.
        let r = c
            .post_json(&format!("/api/v1/orders/{id}/change/code"), json!({}))
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{be}: {}", r.body);
        let r = c
            .post_json(
                &format!("/api/v1/certificates/{}/changes", x.serial),
                json!({}),
            )
            .await;
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("已被新证书替换"),
            "{be}: {}",
            r.body
        );
        // A certificate issued without an order has nothing to check a
        // change against: the counter handles it.
        let (_, bare) =
            certificate_of(&app, MINE, "枣庄无订单有限公司", "91350100M000100Y43").await;
        let r = c
            .post_json(
                &format!("/api/v1/certificates/{}/changes", bare.serial),
                json!({}),
            )
            .await;
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("到柜台办理变更"),
            "{be}: {}",
            r.body
        );
    }
}
