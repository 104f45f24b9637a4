//! Steps 6 and 7 through the pages and the JSON API (with the address
//! book), and the applicant's actions while the legal representative is
//! silent.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use certhall_domain::order::OrderState;
use certhall_service::orders::OrderActor;
use certhall_store::payments;
use certhall_testkit::client::Client;
use certhall_testkit::fixtures::{self, approved_order};
use certhall_testkit::TestApp;
use serde_json::json;

use crate::{m, refusal};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_steps_six_and_seven_and_the_order_page() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        fixtures::key_models(&app).await;
        let phone = "13600000191";
        let (_, order) = approved_order(&app, phone).await;
        let mut c = Client::new(&app, "10.30.0.1");
        c.page_login(phone).await;
        let id = order.id;

        // The approved order's page leads to step 6.
        let page = c.get(&format!("/orders/{id}")).await;
        assert_eq!(page.status, StatusCode::OK, "{be}: {}", page.body);
        assert!(page.body.contains("data-testid=\"go-checkout\""), "{be}");
        assert!(page.body.contains("审核通过"));
        let page = c.get(&format!("/orders/{id}/checkout")).await;
        assert_eq!(page.status, StatusCode::OK, "{be}: {}", page.body);
        assert!(page.body.contains("标准 UKey"));
        assert!(
            page.body.contains("暂时缺货"),
            "{be}: out of stock not shown"
        );
        let csrf = page.csrf();

        // A bad mobile: explained, and everything typed comes back.
        let uscc: &'static str = Box::leak(fixtures::valid_uscc().into_boxed_str());
        let fields =
            |phone: &'static str, tax: &'static str| -> Vec<(&'static str, &'static str)> {
                vec![
                    ("key_model", "ukey-standard"),
                    ("address_choice", "new"),
                    ("recipient", "王五"),
                    ("phone", phone),
                    ("division", "370402"),
                    ("street", "光明路88号3号楼501室"),
                    ("remember", "1"),
                    ("invoice_kind", "ordinary"),
                    ("buyer_name", "枣庄市恒信建设工程有限公司"),
                    ("tax_id", tax),
                    ("email", "finance@example.com"),
                ]
            };
        let mut f = fields("1380013800", uscc);
        f.push(("_csrf", &csrf));
        let r = c.post_form(&format!("/orders/{id}/checkout"), &f).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}");
        assert!(r.body.contains("收货人手机号应为11位"), "{be}: {}", r.body);
        for kept in [
            "王五",
            "光明路88号3号楼501室",
            "finance@example.com",
            "1380013800",
        ] {
            assert!(r.body.contains(kept), "{be}: lost {kept}");
        }
        assert!(
            r.body
                .contains("<option value=\"370402\" selected>市中区</option>"),
            "{be}"
        );
        // Fixed: on to step 7 with the amount.
        let mut f = fields("13800138000", uscc);
        f.push(("_csrf", &csrf));
        let r = c.post_form(&format!("/orders/{id}/checkout"), &f).await;
        assert_eq!(
            r.location(),
            format!("/orders/{id}/pay"),
            "{be}: {}",
            r.body
        );
        let pay = c.get(&format!("/orders/{id}/pay")).await;
        assert!(pay.body.contains("380.00"), "{be}");
        assert!(pay.body.contains("data-testid=\"pay-wechat\""));
        let r = c
            .post_form(
                &format!("/orders/{id}/pay"),
                &[("_csrf", &pay.csrf()), ("channel", "wechat")],
            )
            .await;
        assert_eq!(r.location(), format!("/orders/{id}/pay"));
        let pay = c.get(&format!("/orders/{id}/pay")).await;
        assert!(pay.body.contains("<svg"), "{be}: no QR code");
        assert!(pay.body.contains("data-testid=\"open-cashier\""));
        let status = c.get(&format!("/orders/{id}/pay/status")).await;
        assert_eq!(status.json()["paid"], false);
        assert_eq!(status.json()["attempt"]["state"], "paying");

        // Paid at the cashier: the status says so, the order page shows it.
        let attempt = payments::attempts_of_order(&app.db.store, id.0)
            .await
            .unwrap()
            .remove(0);
        let cashier = c
            .get(&format!("/dev/cashier/{}", attempt.out_trade_no))
            .await;
        assert_eq!(cashier.status, StatusCode::OK);
        assert!(cashier.body.contains("¥380.00"));
        assert!(cashier.body.contains("data-testid=\"cashier-qr\""), "{be}");
        let r = c
            .post_form(
                &format!("/dev/cashier/{}", attempt.out_trade_no),
                &[("_csrf", &cashier.csrf()), ("result", "success")],
            )
            .await;
        assert!(r.body.contains("已验签并处理"), "{be}: {}", r.body);
        let status = c.get(&format!("/orders/{id}/pay/status")).await;
        assert_eq!(status.json()["paid"], true, "{be}");
        let page = c.get(&format!("/orders/{id}?paid=1")).await;
        assert!(page.body.contains("支付成功！"), "{be}");
        assert!(page.body.contains("已支付，等待制证"));
        assert!(page.body.contains("data-testid=\"timeline\""));
        for s in ["审核通过", "待支付", "已支付，等待制证", "柜台审核中"] {
            assert!(page.body.contains(s), "{be}: timeline lacks {s}");
        }
        assert!(
            page.body.contains("110105********002X"),
            "{be}: ID not masked"
        );
        assert!(
            !page.body.contains("11010519491231002X"),
            "{be}: full ID shown"
        );
        assert!(page.body.contains("数电普票"));

        // 我的订单: enterprise, application, amount; filters and search.
        let list = c.get("/orders?state=paid").await;
        assert!(list.body.contains("380.00 元"), "{be}");
        assert!(list.body.contains("枣庄市恒信建设工程有限公司"));
        let list = c.get("/orders?state=to_pay").await;
        assert!(list.body.contains("data-testid=\"no-orders\""), "{be}");
        let list = c.get(&format!("/orders?q={id}")).await;
        assert!(list.body.contains(&format!("data-order=\"{id}\"")), "{be}");
        let api = c.get("/api/v1/orders?state=paid").await;
        assert_eq!(api.json()["items"][0]["amount_fen"], 38_000);

        // Messages link to their order.
        let msgs = c.get("/messages").await;
        assert!(
            msgs.body.contains(&format!("href=\"/orders/{id}\"")),
            "{be}"
        );
        assert!(msgs.body.contains("支付成功（证书新办 订单"));

        // Cancelling a paid order asks first and says it is refunded.
        let confirm = c.get(&format!("/orders/{id}/cancel")).await;
        assert!(confirm.body.contains("全额退款"), "{be}");
        let r = c
            .post_form(
                &format!("/orders/{id}/cancel"),
                &[("_csrf", &confirm.csrf())],
            )
            .await;
        assert_eq!(r.location(), format!("/orders/{id}"));
        let page = c.get(&format!("/orders/{id}")).await;
        assert!(page.body.contains("已取消"));
        assert!(page.body.contains("data-testid=\"refund-row\""), "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_steps_six_and_seven_and_the_address_book() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        fixtures::key_models(&app).await;
        let phone = "13600000201";
        let (_, order) = approved_order(&app, phone).await;
        let mut c = Client::new(&app, "10.31.0.1");
        c.api_login(phone).await;
        let id = order.id;

        let r = c.get(&format!("/api/v1/orders/{id}/checkout")).await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let models = r.json()["key_models"].as_array().unwrap().clone();
        assert!(models
            .iter()
            .any(|m| m["code"] == "ukey-standard" && m["available"] == true));
        assert!(models
            .iter()
            .any(|m| m["code"] == "ukey-compact" && m["available"] == false));

        // The address book.
        let r = c
            .post_json(
                "/api/v1/addresses",
                json!({ "recipient": "赵六", "phone": "13900139000", "division": "441900", "street": "南城街道鸿福路1号" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{be}: {}", r.body);
        assert_eq!(r.json()["division_text"], "广东省 东莞市");
        assert_eq!(r.json()["is_default"], true);
        let addr = r.json()["id"].as_i64().unwrap();
        let r = c
            .post_json("/api/v1/addresses", json!({ "recipient": "赵六", "phone": "13900139000", "division": "110000", "street": "x路1号" }))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "unknown_division")
        );

        // Step 6 with a book address; step 7 by the API.
        let r = c
            .send(
                Method::PUT,
                &format!("/api/v1/orders/{id}/checkout"),
                Some("application/json"),
                json!({ "key_model": "ukey-standard", "address_id": addr }).to_string(),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        assert_eq!(r.json()["state"], "awaiting_payment");
        assert_eq!(r.json()["amount_fen"], 38_000);
        let r = c
            .post_json(
                &format!("/api/v1/orders/{id}/payments"),
                json!({ "channel": "wechat" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{be}: {}", r.body);
        let no = r.json()["out_trade_no"].as_str().unwrap().to_owned();
        assert!(r.json()["code_url"].as_str().unwrap().contains(&no));
        let r = c
            .post_json(
                &format!("/api/v1/orders/{id}/payments"),
                json!({ "channel": "paypal" }),
            )
            .await;
        assert_eq!(r.code(), "missing_field");
        app.services.demo_cashier_pay(&no, true).await.unwrap();
        let r = c.get(&format!("/api/v1/orders/{id}/payments")).await;
        assert_eq!(r.json()["order"]["state"], "paid", "{be}");
        assert_eq!(r.json()["attempts"][0]["state"], "paid");
        let r = c.get(&format!("/api/v1/orders/{id}/summary")).await;
        assert!(r.json()["timeline"].as_array().unwrap().len() >= 4);
        assert_eq!(
            r.json()["checkout"]["address"]["division_text"],
            "广东省 东莞市"
        );
        let r = c
            .post_json(
                &format!("/api/v1/orders/{id}/payments"),
                json!({ "channel": "wechat" }),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::CONFLICT, "order_already_paid"),
            "{be}"
        );

        // Another account sees none of it.
        let mut other = Client::new(&app, "10.31.0.2");
        other.api_login("13600000202").await;
        let r = other.get(&format!("/api/v1/orders/{id}/payments")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = other
            .send(
                Method::DELETE,
                &format!("/api/v1/addresses/{addr}"),
                None,
                String::new(),
                &[],
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::NOT_FOUND, "address_not_found")
        );
        let r = c
            .send(
                Method::DELETE,
                &format!("/api/v1/addresses/{addr}"),
                None,
                String::new(),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_legal_representative_is_silent_the_applicant_can_act() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        let (me, order) = fixtures::order_at_step_five(&app, "13600000211").await;
        for kind in [
            certhall_domain::materials::MaterialKind::CompanySeal,
            certhall_domain::materials::MaterialKind::LegalRepSeal,
            certhall_domain::materials::MaterialKind::LegalRepSignature,
        ] {
            s.upload_material(me, order.id, kind, "m.png", fixtures::png(480, 480), &m())
                .await
                .unwrap();
        }
        let sub = certhall_service::materials::MaterialsSubmission {
            authorization: "legal_rep_sms".into(),
            legal_rep_name: "张三".into(),
            legal_rep_id_number: fixtures::APPLICANT_ID.into(),
            legal_rep_phone: "13900139211".into(),
        };
        s.submit_materials(me, order.id, &sub, &m()).await.unwrap();
        let first = s.latest_authorization(order.id).await.unwrap().unwrap();
        // Resend: a new request, the old one withdrawn; the limit holds.
        app.clock.advance(Duration::from_secs(3600));
        let second = s.resend_authorization(me, order.id, &m()).await.unwrap();
        assert_ne!(first.id, second.id);
        assert!(second.expires_at > first.expires_at);
        let err = s.resend_authorization(me, order.id, &m()).await;
        let third_ok = err.is_ok();
        let err = s
            .resend_authorization(me, order.id, &m())
            .await
            .unwrap_err();
        assert!(third_ok, "{be}: the third SMS of the day should go");
        assert_eq!(refusal(err).code(), "authorization_sms_limit", "{be}");
        // A reply to the withdrawn first request is no longer ambiguous:
        // only the newest pending one counts.
        // Revise: back to step 5, uploads kept, request withdrawn.
        let back = s.revise_authorization(me, order.id, &m()).await.unwrap();
        assert_eq!(
            back.state,
            OrderState::Draft {
                reached: certhall_domain::order::Step::Materials
            },
            "{be}"
        );
        assert_eq!(
            s.materials_of(me, order.id).await.unwrap().len(),
            4,
            "{be}: uploads lost"
        );
        let latest = s.latest_authorization(order.id).await.unwrap().unwrap();
        assert_eq!(
            latest.outcome,
            certhall_domain::materials::AuthorizationOutcome::Withdrawn,
            "{be}"
        );
        let _ = s.receive_sms("13900139211", "同意", &m()).await;
        assert_eq!(
            s.order_of(me, order.id).await.unwrap().state,
            OrderState::Draft {
                reached: certhall_domain::order::Step::Materials
            },
            "{be}: a withdrawn request's reply moved the order"
        );
        // Then the letter route instead.
        s.upload_material(
            me,
            order.id,
            certhall_domain::materials::MaterialKind::AuthorizationLetter,
            "l.jpg",
            fixtures::jpeg(900, 1270),
            &m(),
        )
        .await
        .unwrap();
        let sub = certhall_service::materials::MaterialsSubmission {
            authorization: "letter".into(),
            ..sub
        };
        let o = s.submit_materials(me, order.id, &sub, &m()).await.unwrap();
        assert_eq!(o.state, OrderState::InReview, "{be}");
        // In review it can still be cancelled.
        let c = s
            .cancel_order(OrderActor::Applicant(me), order.id, None, &m())
            .await
            .unwrap();
        assert_eq!(c.state, OrderState::Cancelled);
    }
}
