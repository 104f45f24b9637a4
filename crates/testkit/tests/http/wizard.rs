//! 证书新办 steps one to four through the pages and the API.

use axum::http::StatusCode;
use certhall_testkit::client::Client;
use certhall_testkit::fixtures;
use certhall_testkit::TestApp;

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
            home.body.contains("<a class=\"tile\" href=\"/apply/new\""),
            "{be}: 证书新办 is not live on the home page"
        );
        assert!(home.body.contains("<a class=\"tile\" href=\"/orders\""));
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
        // Right data, but no license yet: refused at once (not at step 5),
        // with what was typed kept.
        let r = c
            .post_form(&format!("/orders/{order_id}/step/3"), &ent)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}");
        assert!(r.body.contains("请上传营业执照"), "{be}: {}", r.body);
        assert!(
            r.body.contains("91350100M000100Y43"),
            "{be}: typed data lost"
        );
        let order = certhall_domain::OrderId(order_id);
        let owner = app
            .services
            .ensure_account(&certhall_domain::Phone::parse("13500000001").unwrap())
            .await
            .unwrap();
        app.services
            .upload_material(
                owner,
                order,
                certhall_domain::materials::MaterialKind::License,
                "营业执照.png",
                fixtures::png(900, 640),
                &certhall_service::RequestMeta::default(),
            )
            .await
            .unwrap();
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
