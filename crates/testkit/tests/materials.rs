//! Step 5 (materials and authorization) and step 3's license upload,
//! through the router, on SQLite and PostgreSQL: every refusal leaves the
//! order as it was; the letter route reaches the counter; the legal
//! representative's SMS reply decides the order, and nothing else does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use certhall_domain::OrderId;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use certhall_domain::materials::MaterialKind;
use certhall_domain::order::{OrderState, Step};
use certhall_service::RequestMeta;
use certhall_store::{audit, materials, orders};
use certhall_testkit::client::Client;
use certhall_testkit::fixtures::{self, order_at_step_five};
use certhall_testkit::TestApp;
use serde_json::{json, Value};

const APPLICANT: &str = "13500000021";
const LEGAL_REP_PHONE: &str = "13900000022";

async fn state_of(app: &TestApp, id: i64) -> OrderState {
    orders::get(&app.db.store, OrderId(id))
        .await
        .unwrap()
        .unwrap()
        .state
}

/// The step-5 images stored (the license is step 3's).
async fn stored_kinds(app: &TestApp, id: i64) -> Vec<MaterialKind> {
    materials::of_order(&app.db.store, id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.kind)
        .filter(|k| *k != MaterialKind::License)
        .collect()
}

async fn step5_csrf(c: &mut Client<'_>, id: i64) -> String {
    let page = c.get(&format!("/orders/{id}/step/5")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.csrf()
}

async fn inbound(c: &mut Client<'_>, from: &str, body: &str) -> Value {
    let r = c
        .post_json("/dev/sms/inbound", json!({ "from": from, "body": body }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_five_refusals_and_the_letter_route() {
    for app in TestApp::each().await {
        let be = app.backend();
        let (_, order) = order_at_step_five(&app, APPLICANT).await;
        let id = order.id;
        assert_eq!(
            order.state,
            OrderState::Draft {
                reached: Step::Materials
            }
        );
        let mut c = Client::new(&app, "10.30.0.1");
        c.page_login(APPLICANT).await;
        let csrf = step5_csrf(&mut c, id.0).await;
        let path = format!("/orders/{id}/materials");
        let before = state_of(&app, id.0).await;

        // Submitting with nothing uploaded: the first missing image named.
        let r = c
            .post_multipart(
                &path,
                &[
                    ("_csrf", &csrf),
                    ("authorization", "letter"),
                    ("action", "save"),
                ],
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}: {}", r.body);
        assert!(r.body.contains("请上传公章"), "{be}: {}", r.body);
        assert_eq!(state_of(&app, id.0).await, before);

        // A text file renamed .png: refused by content, nothing stored.
        let r = c
            .post_multipart(
                &path,
                &[("_csrf", &csrf), ("action", "upload")],
                &[(
                    "company_seal",
                    "seal.png",
                    b"just some text, not a picture\n",
                )],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}");
        assert!(r.body.contains("不是 PNG 或 JPEG"), "{be}: {}", r.body);
        assert!(stored_kinds(&app, id.0).await.is_empty(), "{be}");

        // A 20 MB image: refused with the limit named, nothing stored.
        let mut big = fixtures::png(400, 400);
        big.resize(20 * 1024 * 1024, 0x55);
        let r = c
            .post_multipart(
                &path,
                &[("_csrf", &csrf), ("action", "upload")],
                &[("company_seal", "big.png", &big)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}");
        assert!(r.body.contains("图片文件过大（20 MB）"), "{be}: {}", r.body);
        assert!(stored_kinds(&app, id.0).await.is_empty(), "{be}");
        // Over the whole form's limit: a message, not a bare 413.
        let mut huge = big.clone();
        huge.resize(30 * 1024 * 1024, 0x55);
        let r = c
            .post_multipart(
                &path,
                &[
                    ("_csrf", &csrf),
                    ("legal_rep_phone", "139"),
                    ("action", "upload"),
                ],
                &[("company_seal", "huge.png", &huge)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}: {}", r.body);
        assert!(r.body.contains("本次上传的内容过大"), "{be}: {}", r.body);
        assert!(stored_kinds(&app, id.0).await.is_empty(), "{be}");

        // A PNG with a payload after its end: stored without it.
        let mut trailing = fixtures::png(420, 360);
        trailing.extend_from_slice(b"<?php system($_GET['c']); ?> HIDDEN-PAYLOAD");
        // Together with a good JPEG and an image that is too small: the
        // good ones are kept, the small one named.
        let r = c
            .post_multipart(
                &path,
                &[("_csrf", &csrf), ("action", "upload")],
                &[
                    ("company_seal", "seal.png", &trailing),
                    ("legal_rep_seal", "rep-seal.jpg", &fixtures::jpeg(500, 400)),
                    ("legal_rep_signature", "tiny.png", &fixtures::png(200, 120)),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}");
        assert!(
            r.body.contains("较短的一边至少需要 300 像素"),
            "{be}: {}",
            r.body
        );
        assert!(r.body.contains("已保存：公章、法人章"), "{be}: {}", r.body);
        assert_eq!(
            stored_kinds(&app, id.0).await,
            vec![MaterialKind::CompanySeal, MaterialKind::LegalRepSeal],
            "{be}"
        );
        let (info, bytes) = materials::image(&app.db.store, id.0, MaterialKind::CompanySeal)
            .await
            .unwrap()
            .unwrap();
        assert!(
            !bytes.windows(14).any(|w| w == b"HIDDEN-PAYLOAD"),
            "{be}: the payload survived"
        );
        assert!(bytes.starts_with(b"\x89PNG"), "{be}");
        assert_eq!((info.width, info.height), (420, 360));
        assert_ne!(bytes, trailing, "{be}: stored as uploaded");
        // The preview is served to its owner only, as an image.
        let img = c.get(&format!("/orders/{id}/materials/company_seal")).await;
        assert_eq!(img.status, StatusCode::OK, "{be}");
        assert_eq!(img.headers["content-type"], "image/png");
        assert_eq!(img.raw, bytes, "{be}");
        let mut stranger = Client::new(&app, "10.30.0.2");
        stranger.page_login("13500000029").await;
        let r = stranger
            .get(&format!("/orders/{id}/materials/company_seal"))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{be}");
        let r = c.get(&format!("/orders/{id}/materials/passport")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{be}: not a material kind");
        // The letter to print comes filled in from steps 1–3, for the owner.
        let letter = c.get(&format!("/orders/{id}/letter")).await;
        assert_eq!(letter.status, StatusCode::OK, "{be}");
        for text in [
            "授权委托书",
            "枣庄市恒信建设工程有限公司",
            "李四",
            "枣庄公共资源交易",
        ] {
            assert!(
                letter.body.contains(text),
                "{be}: {text} missing from the letter"
            );
        }
        let r = stranger.get(&format!("/orders/{id}/letter")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{be}");

        // The letter route still lacks the signature and the letter.
        let r = c
            .post_multipart(
                &path,
                &[
                    ("_csrf", &csrf),
                    ("authorization", "letter"),
                    ("action", "save"),
                ],
                &[("legal_rep_signature", "sig.png", &fixtures::png(600, 300))],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}");
        assert!(r.body.contains("请上传授权委托书"), "{be}: {}", r.body);
        assert_eq!(state_of(&app, id.0).await, before, "{be}");

        // No route chosen: refused, the images stay.
        let r = c
            .post_multipart(
                &path,
                &[("_csrf", &csrf), ("action", "save")],
                &[(
                    "authorization_letter",
                    "letter.jpg",
                    &fixtures::jpeg(800, 1100),
                )],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}");
        assert!(r.body.contains("请填写授权方式"), "{be}: {}", r.body);
        assert_eq!(stored_kinds(&app, id.0).await.len(), 4, "{be}");

        // A forged form (no CSRF token) stores nothing.
        let r = c
            .post_multipart(
                &path,
                &[("action", "upload")],
                &[("company_seal", "x.png", &fixtures::png(400, 400))],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{be}");

        // Submitted: in the counter's queue.
        let r = c
            .post_multipart(
                &path,
                &[
                    ("_csrf", &csrf),
                    ("authorization", "letter"),
                    ("action", "save"),
                ],
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{be}: {}", r.body);
        assert_eq!(state_of(&app, id.0).await, OrderState::InReview, "{be}");
        // Past the wizard, images can no longer change.
        let r = c
            .post_multipart(
                &path,
                &[("_csrf", &csrf), ("action", "upload")],
                &[("company_seal", "x.png", &fixtures::png(400, 400))],
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{be}: {}", r.body);
        let uploads = audit::recent(&app.db.store, Some("order.material_uploaded"), 100)
            .await
            .unwrap();
        assert_eq!(
            uploads.len(),
            5,
            "{be}: one audit entry per stored image (the license and four)"
        );

        // A step submitted out of order: a new order at step 1 takes no
        // images and cannot be submitted.
        let page = c.get("/apply/new").await;
        let r = c.post_form("/orders/new", &[("_csrf", &page.csrf())]).await;
        let fresh: i64 = r.location().split('/').nth(2).unwrap().parse().unwrap();
        let r = c
            .post_multipart(
                &format!("/orders/{fresh}/materials"),
                &[
                    ("_csrf", &csrf),
                    ("authorization", "letter"),
                    ("action", "save"),
                ],
                &[("company_seal", "seal.png", &fixtures::png(400, 400))],
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{be}: {}", r.body);
        assert!(r.body.contains("请按顺序办理"), "{be}: {}", r.body);
        assert!(stored_kinds(&app, fresh).await.is_empty(), "{be}");
        assert_eq!(
            state_of(&app, fresh).await,
            OrderState::Draft {
                reached: Step::Identity
            }
        );
    }
}

/// Brings `id` to step 5 with its three images stored.
async fn upload_three(c: &mut Client<'_>, id: i64) {
    let csrf = step5_csrf(c, id).await;
    let r = c
        .post_multipart(
            &format!("/orders/{id}/materials"),
            &[("_csrf", &csrf), ("action", "upload")],
            &[
                ("company_seal", "a.png", &fixtures::png(400, 400)),
                ("legal_rep_seal", "b.png", &fixtures::png(400, 400)),
                ("legal_rep_signature", "c.jpg", &fixtures::jpeg(640, 320)),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn submit_sms(
    c: &mut Client<'_>,
    id: i64,
    name: &str,
    id_number: &str,
    phone: &str,
) -> (StatusCode, String) {
    let csrf = step5_csrf(c, id).await;
    let r = c
        .post_multipart(
            &format!("/orders/{id}/materials"),
            &[
                ("_csrf", &csrf),
                ("authorization", "legal_rep_sms"),
                ("legal_rep_name", name),
                ("legal_rep_id_number", id_number),
                ("legal_rep_phone", phone),
                ("action", "save"),
            ],
            &[],
        )
        .await;
    (r.status, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legal_representatives_reply_decides() {
    for app in TestApp::each().await {
        let be = app.backend();
        let (_, order) = order_at_step_five(&app, APPLICANT).await;
        let id = order.id;
        let mut c = Client::new(&app, "10.31.0.1");
        c.page_login(APPLICANT).await;
        upload_three(&mut c, id.0).await;

        // The legal representative must be the license's; ID checked.
        let (status, body) = submit_sms(
            &mut c,
            id.0,
            "王五",
            fixtures::APPLICANT_ID,
            LEGAL_REP_PHONE,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{be}");
        assert!(
            body.contains("法定代表人姓名须与营业执照一致"),
            "{be}: {body}"
        );
        let (status, body) =
            submit_sms(&mut c, id.0, "张三", "110105194912310021", LEGAL_REP_PHONE).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{be}");
        assert!(body.contains("校验位不正确"), "{be}: {body}");
        assert!(
            body.contains("value=\"110105194912310021\""),
            "{be}: typed ID lost"
        );
        assert!(
            certhall_store::sms::outbox_recent(&app.db.store, Some(LEGAL_REP_PHONE), 5)
                .await
                .unwrap()
                .is_empty(),
            "{be}: an SMS went out for a refused submission"
        );
        let (status, body) = submit_sms(
            &mut c,
            id.0,
            "张三",
            fixtures::APPLICANT_ID,
            LEGAL_REP_PHONE,
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{be}: {body}");
        assert_eq!(
            state_of(&app, id.0).await,
            OrderState::AwaitingAuthorization
        );
        let sms = certhall_store::sms::outbox_recent(&app.db.store, Some(LEGAL_REP_PHONE), 1)
            .await
            .unwrap();
        let text = &sms[0].body;
        assert!(
            text.contains("李四")
                && text.contains("枣庄市恒信建设工程有限公司")
                && text.contains("回复“同意”"),
            "{be}: {text}"
        );
        let status_page = c.get(&format!("/orders/{id}")).await;
        assert!(status_page.body.contains("等待法定代表人短信授权"), "{be}");
        assert!(
            status_page.body.contains("139****0022"),
            "{be}: {}",
            status_page.body
        );

        // Another number, or unclear text: recorded, nothing changes.
        let mut sim = Client::new(&app, "10.31.0.9");
        let out = inbound(&mut sim, "13900000099", "同意").await;
        assert!(
            out["outcome"].as_str().unwrap().contains("无待处理"),
            "{be}: {out}"
        );
        let out = inbound(&mut sim, LEGAL_REP_PHONE, "好的，没问题").await;
        assert!(
            out["outcome"].as_str().unwrap().contains("无法识别"),
            "{be}: {out}"
        );
        assert_eq!(
            state_of(&app, id.0).await,
            OrderState::AwaitingAuthorization
        );

        // 同意 from the legal representative: authorized, on to the counter
        // (which still checks the license and the images), the applicant
        // told.
        let out = inbound(&mut sim, LEGAL_REP_PHONE, " 同意。").await;
        assert_eq!(out["order"], json!(id), "{be}: {out}");
        assert_eq!(state_of(&app, id.0).await, OrderState::InReview, "{be}");
        let msgs = c.get("/messages").await;
        assert!(msgs.body.contains("法定代表人已同意授权"), "{be}");
        // A second reply changes nothing more.
        let out = inbound(&mut sim, LEGAL_REP_PHONE, "拒绝").await;
        assert!(
            out["outcome"].as_str().unwrap().contains("无待处理"),
            "{be}: {out}"
        );
        assert_eq!(state_of(&app, id.0).await, OrderState::InReview, "{be}");

        // 拒绝: refused; the applicant may switch to the letter.
        let (_, second) = order_at_step_five(&app, APPLICANT).await;
        upload_three(&mut c, second.id.0).await;
        let (status, _) = submit_sms(
            &mut c,
            second.id.0,
            "张三",
            fixtures::APPLICANT_ID,
            LEGAL_REP_PHONE,
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{be}");
        inbound(&mut sim, LEGAL_REP_PHONE, "拒绝").await;
        assert_eq!(
            state_of(&app, second.id.0).await,
            OrderState::AuthorizationRefused
        );
        let step5 = c.get(&format!("/orders/{}/step/5", second.id)).await;
        assert!(
            step5.body.contains("法定代表人回复拒绝"),
            "{be}: {}",
            step5.body
        );
        let csrf = step5.csrf();
        let r = c
            .post_multipart(
                &format!("/orders/{}/materials", second.id),
                &[
                    ("_csrf", &csrf),
                    ("authorization", "letter"),
                    ("action", "save"),
                ],
                &[(
                    "authorization_letter",
                    "letter.jpg",
                    &fixtures::jpeg(800, 1100),
                )],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{be}: {}", r.body);
        assert_eq!(state_of(&app, second.id.0).await, OrderState::InReview);

        // After 72 hours a reply counts no more; housekeeping closes it.
        let (_, third) = order_at_step_five(&app, APPLICANT).await;
        upload_three(&mut c, third.id.0).await;
        let (status, _) = submit_sms(
            &mut c,
            third.id.0,
            "张三",
            fixtures::APPLICANT_ID,
            LEGAL_REP_PHONE,
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{be}");
        app.clock.advance(Duration::from_secs(72 * 3600 + 60));
        let out = inbound(&mut sim, LEGAL_REP_PHONE, "同意").await;
        assert!(
            out["outcome"].as_str().unwrap().contains("超过72小时"),
            "{be}: {out}"
        );
        assert_eq!(
            state_of(&app, third.id.0).await,
            OrderState::AwaitingAuthorization
        );
        assert_eq!(
            app.services.expire_authorizations().await.unwrap(),
            1,
            "{be}"
        );
        assert_eq!(
            state_of(&app, third.id.0).await,
            OrderState::AuthorizationRefused
        );
        assert_eq!(
            app.services.expire_authorizations().await.unwrap(),
            0,
            "{be}"
        );

        // Every reply is recorded with what was done with it, and audited.
        let replies = certhall_store::sms::inbound_recent(&app.db.store, 50)
            .await
            .unwrap();
        assert_eq!(replies.len(), 6, "{be}");
        let audited = audit::recent(&app.db.store, Some("sms.inbound"), 50)
            .await
            .unwrap();
        assert_eq!(audited.len(), 6, "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_inbound_push_needs_its_secret() {
    for app in TestApp::each().await {
        let be = app.backend();
        let (_, order) = order_at_step_five(&app, APPLICANT).await;
        let mut c = Client::new(&app, "10.32.0.1");
        c.page_login(APPLICANT).await;
        upload_three(&mut c, order.id.0).await;
        let (status, _) = submit_sms(
            &mut c,
            order.id.0,
            "张三",
            fixtures::APPLICANT_ID,
            LEGAL_REP_PHONE,
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{be}");
        let push = json!([{
            "phone_number": LEGAL_REP_PHONE, "content": "同意", "send_time": "2026-11-25 10:00:00",
            "dest_code": "1234", "sequence_id": 1
        }]);
        let mut provider = Client::new(&app, "10.32.0.9");
        let r = provider.post_json("/hooks/sms/inbound", push.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{be}");
        let r = provider
            .post_json(
                "/hooks/sms/inbound?token=wrong-token-wrong-token",
                push.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{be}");
        assert_eq!(
            state_of(&app, order.id.0).await,
            OrderState::AwaitingAuthorization
        );
        let r = provider
            .send(
                Method::POST,
                "/hooks/sms/inbound",
                Some("application/json"),
                push.to_string(),
                &[(
                    "authorization",
                    format!("Bearer {}", certhall_web::TEST_INBOUND_TOKEN),
                )],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        assert_eq!(r.json()["code"], json!(0));
        assert_eq!(
            state_of(&app, order.id.0).await,
            OrderState::InReview,
            "{be}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wizard_through_the_json_api() {
    for app in TestApp::each().await {
        let be = app.backend();
        app.services.ca_seed_profiles().await.unwrap();
        app.services.ensure_demo_applications().await.unwrap();
        let mut c = Client::new(&app, "10.33.0.1");
        c.api_login("13500000031").await;
        let r = c
            .post_json("/api/v1/orders", json!({ "kind": "new" }))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{be}: {}", r.body);
        let id = r.json()["id"].as_i64().unwrap();
        let put = |n: u8, body: Value| (format!("/api/v1/orders/{id}/steps/{n}"), body);
        // Out of order.
        let (p, b) = put(3, json!({ "name": "x" }));
        let r = c
            .send(
                Method::PUT,
                &p,
                Some("application/json"),
                b.to_string(),
                &[],
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::CONFLICT, "order_step_out_of_order"),
            "{be}"
        );
        let ent = serde_json::to_value(fixtures::enterprise()).unwrap();
        for (n, body) in [
            (
                1,
                json!({ "name": "李四", "id_number": fixtures::APPLICANT_ID }),
            ),
            (2, json!({ "application": "zzggzy" })),
            (3, ent),
            (4, json!({ "handling": "online" })),
        ] {
            if n == 3 {
                // Step 3 needs the license first (refused, then uploaded).
                let (p, b) = put(3, body.clone());
                let r = c
                    .send(
                        Method::PUT,
                        &p,
                        Some("application/json"),
                        b.to_string(),
                        &[],
                    )
                    .await;
                assert_eq!(
                    (r.status, r.code().as_str()),
                    (StatusCode::BAD_REQUEST, "material_missing"),
                    "{be}: {}",
                    r.body
                );
                let r = c
                    .send_bytes(
                        Method::PUT,
                        &format!("/api/v1/orders/{id}/materials/license"),
                        Some("image/png"),
                        fixtures::png(900, 640),
                        &[],
                    )
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
            }
            let (p, b) = put(n, body);
            let r = c
                .send(
                    Method::PUT,
                    &p,
                    Some("application/json"),
                    b.to_string(),
                    &[],
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{be}: step {n}: {}", r.body);
        }
        // Images as bodies; a renamed text file refused with its code.
        let url = |k: &str| format!("/api/v1/orders/{id}/materials/{k}");
        let r = c
            .send_bytes(
                Method::PUT,
                &url("company_seal"),
                Some("image/png"),
                b"not an image".to_vec(),
                &[],
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "upload_not_image"),
            "{be}"
        );
        for k in [
            "license",
            "company_seal",
            "legal_rep_seal",
            "legal_rep_signature",
            "authorization_letter",
        ] {
            let r = c
                .send_bytes(
                    Method::PUT,
                    &url(k),
                    Some("image/png"),
                    fixtures::png(400, 400),
                    &[],
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{be}: {k}: {}", r.body);
            assert_eq!(r.json()["width"], json!(400));
        }
        let r = c.get(&format!("/api/v1/orders/{id}/materials")).await;
        assert_eq!(r.json()["items"].as_array().unwrap().len(), 5, "{be}");
        let (p, b) = put(5, json!({ "authorization": "letter" }));
        let r = c
            .send(
                Method::PUT,
                &p,
                Some("application/json"),
                b.to_string(),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        assert_eq!(r.json()["state"], json!("in_review"));
        // Another account sees none of it.
        let mut other = Client::new(&app, "10.33.0.2");
        other.api_login("13500000032").await;
        let r = other.get(&url("company_seal")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_license_photo_fills_step_three() {
    let Some(app) = TestApp::sqlite().await.with_ocr() else {
        return;
    };
    let (me, _) = order_at_step_five(&app, APPLICANT).await;
    let order = app
        .services
        .start_order(
            me,
            certhall_domain::order::OrderKind::New,
            &RequestMeta::default(),
        )
        .await
        .unwrap();
    let s = &app.services;
    let m = RequestMeta::default();
    let phone = certhall_domain::Phone::parse(APPLICANT).unwrap();
    s.wizard_identity(me, &phone, order.id, "李四", fixtures::APPLICANT_ID, &m)
        .await
        .unwrap();
    s.wizard_application(me, order.id, "zzggzy", &m)
        .await
        .unwrap();
    let mut c = Client::new(&app, "10.34.0.1");
    c.page_login(APPLICANT).await;
    let page = c.get(&format!("/orders/{}/step/3", order.id)).await;
    assert!(page.body.contains("识别营业执照"), "{}", page.body);
    let csrf = page.csrf();
    let (jpeg, printed) = fixtures::license_jpeg(20261125);
    let r = c
        .post_multipart(
            &format!("/orders/{}/enterprise", order.id),
            &[
                ("_csrf", &csrf),
                ("ent_nature", "私营企业"),
                ("action", "read"),
            ],
            &[("license", "执照.jpg", &jpeg)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("营业执照已上传并识别"), "{}", r.body);
    for (what, value) in [
        ("name", &printed.name),
        ("uscc", &printed.uscc),
        ("legal representative", &printed.legal_representative),
    ] {
        assert!(
            r.body.contains(&format!("value=\"{value}\"")),
            "{what} {value:?} not filled in"
        );
    }
    assert!(
        r.body.contains("value=\"私营企业\" selected"),
        "typed nature kept"
    );
    let stored = materials::of_order(&app.db.store, order.id.0)
        .await
        .unwrap();
    let ocr = stored[0]
        .ocr
        .as_ref()
        .expect("the reading is kept for the counter");
    assert_eq!(ocr.fields.uscc, printed.uscc);
    // The API reads the same way.
    app.clock.advance(Duration::from_secs(61));
    let mut api = Client::new(&app, "10.34.0.2");
    api.bearer = Some(
        c.api_login(APPLICANT).await["token"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let r = api
        .send_bytes(
            Method::PUT,
            &format!("/api/v1/orders/{}/materials/license", order.id),
            Some("image/jpeg"),
            jpeg,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["ocr"]["uscc"], json!(printed.uscc));
    assert_eq!(r.json()["ocr_available"], json!(true));

    // Demo mode's sample license (for newcomers without one) is read too.
    let sample = c.get("/dev/samples/license.jpg").await;
    assert_eq!(sample.status, StatusCode::OK);
    assert_eq!(sample.headers["content-type"], "image/jpeg");
    let r = api
        .send_bytes(
            Method::PUT,
            &format!("/api/v1/orders/{}/materials/license", order.id),
            Some("image/jpeg"),
            sample.raw,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let uscc = r.json()["ocr"]["uscc"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        certhall_domain::identity::Uscc::is_valid_canonical(&uscc),
        "the sample license reads as {uscc:?}"
    );
    let seal = c.get("/dev/samples/seal.png").await;
    assert!(
        certhall_upload::sanitize_image(&seal.raw, &certhall_upload::ImageRules::materials())
            .is_ok()
    );
    let kept = materials::of_order(&app.db.store, order.id.0)
        .await
        .unwrap()
        .remove(0);

    // A seal uploaded as the license: not a license, nothing filled, and
    // the license uploaded before stays the order's license.
    let r = api
        .send_bytes(
            Method::PUT,
            &format!("/api/v1/orders/{}/materials/license", order.id),
            Some("image/png"),
            seal.raw.clone(),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("not_a_license")),
        "{}",
        r.body
    );
    assert_eq!(
        r.json()["message"],
        "未识别到营业执照，请上传清晰的营业执照照片。"
    );
    let now = materials::of_order(&app.db.store, order.id.0)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(now.sha256, kept.sha256, "the seal replaced the license");
    // The page says the same and fills nothing.
    let page = c.get(&format!("/orders/{}/step/3", order.id)).await;
    let r = c
        .post_multipart(
            &format!("/orders/{}/enterprise", order.id),
            &[("_csrf", &page.csrf()), ("action", "read")],
            &[("license", "公章.png", &seal.raw)],
        )
        .await;
    assert!(
        r.body
            .contains("未识别到营业执照，请上传清晰的营业执照照片")
            && !r.body.contains("营业执照已上传并识别"),
        "{}",
        r.body
    );

    // A license whose code fails its GB 32100 check character: the code is
    // never filled as if right; the applicant is told to type it.
    let mut forged = fixtures::enterprise();
    let first17 = &forged.uscc[..17];
    let right = certhall_domain::identity::uscc_check_char(first17).unwrap();
    let wrong = "0123456789ABCDEFGHJKLMNPQRTUWXY"
        .chars()
        .find(|&ch| ch != right)
        .unwrap();
    forged.uscc = format!("{first17}{wrong}");
    let r = api
        .send_bytes(
            Method::PUT,
            &format!("/api/v1/orders/{}/materials/license", order.id),
            Some("image/jpeg"),
            fixtures::license_jpeg_for(&forged),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let filled = r.json()["ocr"]["uscc"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        filled.is_empty() || certhall_domain::identity::Uscc::is_valid_canonical(&filled),
        "a code failing its check filled in: {filled:?}"
    );
    assert_ne!(filled, forged.uscc);
    assert!(
        r.json()["ocr_warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("未通过校验")),
        "{}",
        r.body
    );
    assert_eq!(r.json()["ocr"]["name"], json!(forged.name));

    // The same enterprise applying again: step 3 of another order offers
    // this license instead of a new upload, and its reading fills the form
    // (with its warning: the code is still left to type).
    let again = s
        .start_order(me, certhall_domain::order::OrderKind::New, &m)
        .await
        .unwrap();
    s.wizard_identity(me, &phone, again.id, "李四", fixtures::APPLICANT_ID, &m)
        .await
        .unwrap();
    s.wizard_application(me, again.id, "zzggzy", &m)
        .await
        .unwrap();
    let page = c.get(&format!("/orders/{}/step/3", again.id)).await;
    assert!(
        page.body
            .contains(&format!("使用订单 {} 的营业执照", order.id)),
        "{}",
        page.body
    );
    let from = order.id.0.to_string();
    let r = c
        .post_multipart(
            &format!("/orders/{}/enterprise", again.id),
            &[("_csrf", &page.csrf()), ("reuse", &from)],
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains(&format!(
            "已使用订单 {} 中的营业执照，识别结果已填入下方",
            order.id
        )) && r.body.contains("未通过校验")
            && r.body.contains(&format!("value=\"{}\"", forged.name)),
        "{}",
        r.body
    );
    let reused = materials::of_order(&app.db.store, again.id.0)
        .await
        .unwrap();
    assert_eq!(reused.len(), 1);
    assert_eq!(
        reused[0].kind,
        certhall_domain::materials::MaterialKind::License
    );
    assert!(
        reused[0].ocr.is_some(),
        "the reading goes with it for the counter"
    );
    // Another account's license is not offered, nor taken.
    let (_, theirs) = order_at_step_five(&app, "13600000098").await;
    assert!(!page.body.contains(&format!("使用订单 {} 的", theirs.id)));
    let r = c
        .post_multipart(
            &format!("/orders/{}/enterprise", again.id),
            &[("_csrf", &page.csrf()), ("reuse", &theirs.id.0.to_string())],
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let after = materials::of_order(&app.db.store, again.id.0)
        .await
        .unwrap();
    assert_eq!(after[0].sha256, reused[0].sha256, "nothing replaced");
}

#[tokio::test]
async fn without_models_step_three_says_so() {
    let app = TestApp::sqlite().await;
    let (me, _) = order_at_step_five(&app, APPLICANT).await;
    let mut c = Client::new(&app, "10.35.0.1");
    c.page_login(APPLICANT).await;
    let order = orders::of_account(&app.db.store, me, 1)
        .await
        .unwrap()
        .remove(0);
    let page = c.get(&format!("/orders/{}/step/3", order.id)).await;
    assert!(
        page.body.contains("暂未启用营业执照自动识别"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let r = c
        .post_multipart(
            &format!("/orders/{}/enterprise", order.id),
            &[
                ("_csrf", &csrf),
                ("ent_name", "枣庄市恒信建设工程有限公司"),
                ("action", "read"),
            ],
            &[("license", "license.png", &fixtures::png(900, 640))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("本系统暂未启用自动识别"), "{}", r.body);
    // What was typed is kept.
    assert!(r.body.contains("枣庄市恒信建设工程有限公司"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_sms_are_limited_even_when_submitted_at_once() {
    use certhall_service::materials::MaterialsSubmission;
    for app in TestApp::each().await {
        let be = app.backend();
        let (me, order) = order_at_step_five(&app, APPLICANT).await;
        let mut c = Client::new(&app, "10.36.0.1");
        c.page_login(APPLICANT).await;
        upload_three(&mut c, order.id.0).await;
        let sms = MaterialsSubmission {
            authorization: "legal_rep_sms".into(),
            legal_rep_name: "张三".into(),
            legal_rep_id_number: fixtures::APPLICANT_ID.into(),
            legal_rep_phone: LEGAL_REP_PHONE.into(),
        };
        // Five submissions at the same moment (a script, a double click):
        // one moves the order; the limit of 3 per order and day holds.
        let m = RequestMeta::default();
        let s = &app.services;
        let results =
            futures::future::join_all((0..5).map(|_| s.submit_materials(me, order.id, &sms, &m)))
                .await;
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{be}");
        assert_eq!(
            state_of(&app, order.id.0).await,
            OrderState::AwaitingAuthorization
        );
        let sent = certhall_store::sms::outbox_recent(&app.db.store, Some(LEGAL_REP_PHONE), 50)
            .await
            .unwrap();
        assert!(sent.len() <= 3, "{be}: {} SMS went out", sent.len());
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            let code = r.refusal().map(|r| r.code()).unwrap_or_default();
            assert!(
                ["order_state_conflict", "authorization_sms_limit"].contains(&code),
                "{be}: {r}"
            );
        }
        // After 拒绝 the applicant may resend, until the third SMS of the
        // day; then the page says why no further SMS goes out.
        let mut sim = Client::new(&app, "10.36.0.9");
        let mut refused_at = None;
        for attempt in 0..4 {
            inbound(&mut sim, LEGAL_REP_PHONE, "拒绝").await;
            assert_eq!(
                state_of(&app, order.id.0).await,
                OrderState::AuthorizationRefused
            );
            let (status, body) = submit_sms(
                &mut c,
                order.id.0,
                "张三",
                fixtures::APPLICANT_ID,
                LEGAL_REP_PHONE,
            )
            .await;
            if status == StatusCode::TOO_MANY_REQUESTS {
                assert!(body.contains("已多次发送授权短信"), "{be}: {body}");
                refused_at = Some(attempt);
                break;
            }
            assert_eq!(status, StatusCode::SEE_OTHER, "{be}: {body}");
        }
        assert!(refused_at.is_some(), "{be}: no limit after four more SMS");
        let sent = certhall_store::sms::outbox_recent(&app.db.store, Some(LEGAL_REP_PHONE), 50)
            .await
            .unwrap();
        assert_eq!(sent.len(), 3, "{be}: exactly three SMS in 24 hours");
        assert_eq!(
            state_of(&app, order.id.0).await,
            OrderState::AuthorizationRefused
        );
        // The applicant may still switch to the letter.
        let csrf = step5_csrf(&mut c, order.id.0).await;
        let r = c
            .post_multipart(
                &format!("/orders/{}/materials", order.id),
                &[
                    ("_csrf", &csrf),
                    ("authorization", "letter"),
                    ("action", "save"),
                ],
                &[("authorization_letter", "l.jpg", &fixtures::jpeg(800, 1100))],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{be}: {}", r.body);
    }
}
