//! Step 6: its refusals leave nothing half-written, the last key in stock
//! goes to exactly one order, and the counter sees what was confirmed (and
//! may cancel a paid order).

use certhall_domain::audit::Actor;
use certhall_domain::checkout::{CheckoutInput, KeyColour};
use certhall_domain::order::OrderState;
use certhall_domain::payment::Channel;
use certhall_service::orders::OrderActor;
use certhall_store::payments;
use certhall_testkit::fixtures::{self, approved_order, checkout_input};
use certhall_testkit::TestApp;

use crate::{audit_events, awaiting_payment, m, refusal};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_six_refusals_leave_the_order_as_it_was() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        fixtures::key_models(&app).await;
        // Before the counter approved: refused, nothing written.
        let (me, early) = fixtures::order_at_step_five(&app, "13600000101").await;
        let err = s
            .save_checkout(me, early.id, &checkout_input(), true, &m())
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "checkout_not_open", "{be}");
        assert_eq!(
            refusal(s.checkout_view(me, early.id).await.unwrap_err()).code(),
            "checkout_not_open"
        );

        let (me, order) = approved_order(&app, "13600000102").await;
        type Change = Box<dyn Fn(&mut CheckoutInput)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "invalid_field",
                Box::new(|c| c.address.phone = "1380013800".into()),
            ),
            (
                "invalid_field",
                Box::new(|c| c.address.phone = "0632-3311111".into()),
            ),
            (
                "unknown_division",
                Box::new(|c| c.address.division = "370400".into()),
            ),
            (
                "unknown_division",
                Box::new(|c| c.address.division = "990101".into()),
            ),
            ("missing_field", Box::new(|c| c.address.street = " ".into())),
            (
                "invalid_tax_id",
                Box::new(|c| {
                    c.invoice.kind = "ordinary".into();
                    c.invoice.buyer_name = "枣庄市恒信建设工程有限公司".into();
                    c.invoice.tax_id = "91370400MA3C8XFH20".into();
                    c.invoice.email = "a@b.cn".into();
                }),
            ),
            (
                "missing_field",
                Box::new(|c| {
                    c.invoice.kind = "special".into();
                    c.invoice.buyer_name = "枣庄市恒信建设工程有限公司".into();
                    c.invoice.tax_id = fixtures::valid_uscc();
                    c.invoice.email = "a@b.cn".into();
                }),
            ),
            (
                "key_model_out_of_stock",
                Box::new(|c| c.key_model = "ukey-compact".into()),
            ),
            (
                "key_model_not_offered",
                Box::new(|c| c.key_model = "no-such-key".into()),
            ),
        ];
        let audit_before = audit_events(&app, "order.checkout_saved").await.len();
        for (code, change) in &cases {
            let mut input = checkout_input();
            change(&mut input);
            let err = s
                .save_checkout(me, order.id, &input, true, &m())
                .await
                .unwrap_err();
            let r = refusal(err);
            assert_eq!(r.code(), *code, "{be}: {input:?}");
            assert!(r
                .message_zh()
                .chars()
                .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)));
            let now = s.order_of(me, order.id).await.unwrap();
            assert_eq!(
                (now.state, now.version),
                (order.state, order.version),
                "{be}"
            );
            assert!(certhall_store::checkouts::get(&app.db.store, order.id.0)
                .await
                .unwrap()
                .is_none());
        }
        assert_eq!(
            audit_events(&app, "order.checkout_saved").await.len(),
            audit_before,
            "{be}: a refused step 6 was audited as saved"
        );
        assert!(
            s.addresses(me).await.unwrap().is_empty(),
            "{be}: address saved"
        );

        // A good one: amount in fen, stock held, address remembered.
        let mut input = checkout_input();
        input.invoice = certhall_domain::checkout::InvoiceInput {
            kind: "special".into(),
            buyer_name: "枣庄市恒信建设工程有限公司".into(),
            tax_id: fixtures::valid_uscc(),
            address: "山东省枣庄市市中区光明路88号".into(),
            phone: "0632-3311111".into(),
            bank: "中国工商银行枣庄分行".into(),
            account: "1606020109200123456".into(),
            email: "finance@example.com".into(),
        };
        let paid_for = s
            .save_checkout(me, order.id, &input, true, &m())
            .await
            .unwrap();
        assert_eq!(paid_for.state, OrderState::AwaitingPayment, "{be}");
        assert_eq!(paid_for.amount_fen, Some(38_000), "{be}");
        let c = certhall_store::checkouts::get(&app.db.store, order.id.0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.application_fen, c.key_fen, c.total_fen),
            (30_000, 8_000, 38_000)
        );
        assert!(c.reserved);
        assert_eq!(c.division_text, "山东省 枣庄市 市中区");
        assert_eq!(
            c.invoice.unwrap().special.unwrap().bank,
            "中国工商银行枣庄分行"
        );
        let stock = certhall_store::key_models::stock(&app.db.store, "ukey-standard")
            .await
            .unwrap();
        assert_eq!(
            (stock.total(), stock.reserved, stock.available()),
            (100, 1, 99)
        );
        let book = s.addresses(me).await.unwrap();
        assert_eq!(book.len(), 1);
        assert!(book[0].row.is_default);
        // Confirming twice is refused.
        let err = s
            .save_checkout(me, order.id, &checkout_input(), true, &m())
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "order_state_conflict", "{be}");
        let inbox = s.messages(me, 1, 20).await.unwrap();
        assert!(
            inbox
                .items
                .iter()
                .any(|m| m.title.starts_with("待支付") && m.order_id == Some(order.id)),
            "{be}: {:?}",
            inbox.items.iter().map(|m| &m.title).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_key_goes_to_exactly_one_order() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        fixtures::key_models(&app).await;
        // Leave one blue key of the compact model.
        s.adjust_stock("ukey-compact", KeyColour::Blue, 1, "入库", Actor::System)
            .await
            .unwrap();
        let a = approved_order(&app, "13600000111").await;
        let b = approved_order(&app, "13600000112").await;
        let mut input = checkout_input();
        input.key_model = "ukey-compact".into();
        let meta = m();
        let (ra, rb) = tokio::join!(
            s.save_checkout(a.0, a.1.id, &input, false, &meta),
            s.save_checkout(b.0, b.1.id, &input, false, &meta),
        );
        let won = [ra.is_ok(), rb.is_ok()];
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{be}: {won:?}");
        let loser = if ra.is_ok() { rb } else { ra };
        assert_eq!(refusal(loser.unwrap_err()).code(), "key_model_out_of_stock");
        // Counting it out below what is left is refused; cancelling the
        // winner frees the unit.
        let err = s
            .adjust_stock("ukey-compact", KeyColour::Blue, -2, "损坏", Actor::System)
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "invalid_key_model");
        let (who, id) = if won[0] { (a.0, a.1.id) } else { (b.0, b.1.id) };
        s.cancel_order(OrderActor::Applicant(who), id, None, &m())
            .await
            .unwrap();
        let stock = certhall_store::key_models::stock(&app.db.store, "ukey-compact")
            .await
            .unwrap();
        assert_eq!(stock.available(), 1, "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_sees_step_six_and_may_cancel_a_paid_order() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let s = &app.services;
        let (me, order) = awaiting_payment(&app, "13600000221").await;
        let p = s
            .start_payment(me, order.id, Channel::Wechat, &m())
            .await
            .unwrap();
        s.demo_cashier_pay(&p.out_trade_no, true).await.unwrap();
        let op = fixtures::operator(&app).await;
        let d = s.review_detail(&op, order.id).await.unwrap();
        let c = d.checkout.unwrap();
        assert_eq!(
            (c.total_fen, c.phone.as_str()),
            (38_000, "13800138000"),
            "{be}"
        );
        assert_eq!(d.attempts.len(), 1);
        // The paid queue shows it.
        let q = s
            .review_queue(&certhall_service::counter::QueueFilter {
                state: Some("paid".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(q.items.iter().any(|i| i.order.id == order.id), "{be}");
        // Its paid unit cannot be counted out from under it (100 on hand,
        // 1 held: 99 may go).
        s.adjust_stock("ukey-standard", KeyColour::Blue, -50, "盘点", Actor::System)
            .await
            .unwrap();
        let err = s
            .adjust_stock("ukey-standard", KeyColour::Red, -50, "盘点", Actor::System)
            .await
            .unwrap_err();
        assert!(refusal(err).message_zh().contains("已被订单占用"), "{be}");
        s.adjust_stock("ukey-standard", KeyColour::Red, -49, "盘点", Actor::System)
            .await
            .unwrap();
        // A reason is required; then it is cancelled and refunded.
        let err = s
            .counter_cancel(&op, order.id, " ", &m())
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "missing_field");
        let done = s
            .counter_cancel(&op, order.id, "申请人电话要求取消", &m())
            .await
            .unwrap();
        assert_eq!(done.state, OrderState::Cancelled, "{be}");
        assert_eq!(done.return_reason.as_deref(), Some("申请人电话要求取消"));
        let refunds = payments::refunds_of_order(&app.db.store, order.id.0)
            .await
            .unwrap();
        assert_eq!(refunds[0].reason, "柜台取消订单，全额退款");
    }
}
