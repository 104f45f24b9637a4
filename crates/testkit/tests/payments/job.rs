//! The reconciliation job (lost payments found, expired QR codes closed),
//! refunds when a paid order is cancelled, and one attempt at a time per
//! order.

use std::time::Duration;

use certhall_domain::order::OrderState;
use certhall_domain::payment::{AttemptState, Channel, RefundState};
use certhall_domain::Clock;
use certhall_service::orders::OrderActor;
use certhall_store::payments;
use certhall_testkit::fixtures::checkout_input;
use certhall_testkit::TestApp;

use crate::{audit_events, awaiting_payment, m, refusal};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_finds_lost_payments_and_closes_expired_qr_codes() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let s = &app.services;
        let sim = s.payments.simulator().unwrap().clone();

        // A: paid at the provider, callback lost.
        let (me_a, a) = awaiting_payment(&app, "13600000151").await;
        let pa = s
            .start_payment(me_a, a.id, Channel::Wechat, &m())
            .await
            .unwrap();
        let cb = sim
            .pay(&pa.out_trade_no, true, app.clock.now())
            .await
            .unwrap();
        assert!(cb.is_some()); // …and never delivered.
                               // B: never paid.
        let (me_b, b) = awaiting_payment(&app, "13600000152").await;
        let pb = s
            .start_payment(me_b, b.id, Channel::Wechat, &m())
            .await
            .unwrap();

        // Too early: nothing asked.
        let early = s.reconcile_payments().await.unwrap();
        assert_eq!(early.queried, 0, "{be}");
        // After two minutes: A is found paid, B is asked about and left.
        app.clock.advance(Duration::from_secs(121));
        let run = s.reconcile_payments().await.unwrap();
        assert_eq!(
            (run.queried, run.paid, run.closed),
            (2, 1, 0),
            "{be}: {run:?}"
        );
        assert_eq!(
            s.order_of(me_a, a.id).await.unwrap().state,
            OrderState::Paid
        );
        let att = payments::attempt_by_no(&app.db.store, &pa.out_trade_no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(att.settled_by.as_deref(), Some("job"));
        // Asked again within a minute: not again.
        let again = s.reconcile_payments().await.unwrap();
        assert_eq!(again.queried, 0, "{be}");
        // After expiry: B is queried, then closed (at the provider too).
        app.clock.advance(Duration::from_secs(30 * 60));
        let run = s.reconcile_payments().await.unwrap();
        assert_eq!((run.queried, run.closed), (1, 1), "{be}: {run:?}");
        let att = payments::attempt_by_no(&app.db.store, &pb.out_trade_no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(att.state, AttemptState::Closed);
        let trade = sim.trade(&pb.out_trade_no).await.unwrap().unwrap();
        assert_eq!(trade.state.as_str(), "CLOSED", "{be}");
        assert_eq!(
            s.order_of(me_b, b.id).await.unwrap().state,
            OrderState::AwaitingPayment
        );
        // A new try gets a new number.
        let pb2 = s
            .start_payment(me_b, b.id, Channel::Wechat, &m())
            .await
            .unwrap();
        assert_ne!(pb2.out_trade_no, pb.out_trade_no);
        assert_eq!(pb2.seq, 2);

        // One run per tick across "processes" (lease holders).
        let interval = Duration::from_secs(60);
        let first = s.run_payment_job("host-a:1", interval).await.unwrap();
        let second = s.run_payment_job("host-b:2", interval).await.unwrap();
        assert!(first.is_some() && second.is_none(), "{be}");
        app.clock.advance(interval);
        let third = s.run_payment_job("host-b:2", interval).await.unwrap();
        assert!(third.is_some(), "{be}");
        let runs = certhall_store::jobs::runs(&app.db.store, "payments")
            .await
            .unwrap();
        assert_eq!(runs.len(), 2);
        assert!(runs.iter().all(|r| r.finished_at.is_some()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_cancelled_is_refunded_in_full() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let s = &app.services;
        let (me, order) = awaiting_payment(&app, "13600000161").await;
        let p = s
            .start_payment(me, order.id, Channel::Wechat, &m())
            .await
            .unwrap();
        s.demo_cashier_pay(&p.out_trade_no, true).await.unwrap();
        assert_eq!(
            s.order_of(me, order.id).await.unwrap().state,
            OrderState::Paid
        );

        let cancelled = s
            .cancel_order(OrderActor::Applicant(me), order.id, None, &m())
            .await
            .unwrap();
        assert_eq!(cancelled.state, OrderState::Cancelled, "{be}");
        let refunds = payments::refunds_of_order(&app.db.store, order.id.0)
            .await
            .unwrap();
        assert_eq!(refunds.len(), 1);
        let r = &refunds[0];
        assert_eq!(
            (r.amount_fen, r.state),
            (38_000, RefundState::Processing),
            "{be}"
        );
        assert!(r.out_refund_no.starts_with("RF"));
        assert_ne!(r.out_refund_no, p.out_trade_no);
        // The job asks until it is final.
        let run = s.reconcile_payments().await.unwrap();
        assert_eq!(run.refunds_final, 1, "{be}: {run:?}");
        let r = &payments::refunds_of_order(&app.db.store, order.id.0)
            .await
            .unwrap()[0];
        assert_eq!(r.state, RefundState::Succeeded);
        assert!(r.provider_refund_id.is_some());
        let inbox = s.messages(me, 1, 50).await.unwrap();
        assert!(
            inbox.items.iter().any(|m| m.title.starts_with("退款成功")),
            "{be}"
        );
        // The stock unit is free again.
        let stock = certhall_store::key_models::stock(&app.db.store, "ukey-standard")
            .await
            .unwrap();
        assert_eq!(stock.reserved, 0, "{be}");
        // A second cancel is refused; the refund is not repeated.
        assert!(s
            .cancel_order(OrderActor::Applicant(me), order.id, None, &m())
            .await
            .is_err());
        assert_eq!(
            payments::refunds_of_order(&app.db.store, order.id.0)
                .await
                .unwrap()
                .len(),
            1
        );
        let changes = audit_events(&app, "payment.refund_changed").await;
        assert!(changes.iter().any(|d| d["to"] == "requested"));
        assert!(changes.iter().any(|d| d["to"] == "succeeded"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_attempt_at_a_time_and_failures_can_be_retried() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let s = &app.services;
        let (me, order) = awaiting_payment(&app, "13600000181").await;
        let meta = m();
        let (x, y) = tokio::join!(
            s.start_payment(me, order.id, Channel::Wechat, &meta),
            s.start_payment(me, order.id, Channel::Wechat, &meta),
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.out_trade_no, y.out_trade_no, "{be}: two attempts at once");
        assert_eq!(
            payments::attempts_of_order(&app.db.store, order.id.0)
                .await
                .unwrap()
                .len(),
            1
        );
        // 支付失败: no callback; the applicant's check finds it.
        assert_eq!(
            s.demo_cashier_pay(&x.out_trade_no, false).await.unwrap(),
            certhall_service::demo_pay::CashierOutcome::Failed
        );
        let view = s.payment_view(me, order.id, true).await.unwrap();
        assert_eq!(view.attempts[0].state, AttemptState::Failed, "{be}");
        assert!(view.active().is_none());
        let inbox = s.messages(me, 1, 50).await.unwrap();
        assert!(inbox
            .items
            .iter()
            .any(|m| m.title.starts_with("支付未成功")));
        // A new attempt, a new number; then step 6 may be revised (the
        // attempt under way is closed first).
        let z = s
            .start_payment(me, order.id, Channel::Wechat, &m())
            .await
            .unwrap();
        assert_ne!(z.out_trade_no, x.out_trade_no);
        let revised = s.revise_checkout(me, order.id, &m()).await.unwrap();
        assert_eq!(revised.state, OrderState::Approved, "{be}");
        let z = payments::attempt_by_no(&app.db.store, &z.out_trade_no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(z.state, AttemptState::Closed);
        assert!(
            !certhall_store::checkouts::get(&app.db.store, order.id.0)
                .await
                .unwrap()
                .unwrap()
                .reserved
        );
        // Unknown channel: a clear refusal.
        s.save_checkout(me, order.id, &checkout_input(), false, &m())
            .await
            .unwrap();
        let err = s
            .start_payment(me, order.id, Channel::Alipay, &m())
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "payment_channel_unavailable", "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_reaching_a_closed_attempt_without_a_callback_is_found_and_applied() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let s = &app.services;
        let sim = s.payments.simulator().unwrap().clone();
        let (me, order) = awaiting_payment(&app, "13600000241").await;
        let p = s
            .start_payment(me, order.id, Channel::Wechat, &m())
            .await
            .unwrap();
        // Closed here (say, Alipay's "not scanned yet" close), while the
        // provider still takes the money — and the callback is lost.
        let mut tx = app.db.store.begin_write().await.unwrap();
        payments::settle_attempt(
            &mut tx,
            &payments::Settlement {
                id: p.id,
                to: AttemptState::Closed,
                by: "test",
                transaction_id: None,
                paid_at: None,
                failure: None,
            },
            app.clock.now(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert!(sim
            .pay(&p.out_trade_no, true, app.clock.now())
            .await
            .unwrap()
            .is_some());
        // Before the QR code expired (plus ten minutes): not asked yet.
        let run = s.reconcile_payments().await.unwrap();
        assert_eq!(run.late_checked, 0, "{be}");
        app.clock.advance(Duration::from_secs(41 * 60));
        let run = s.reconcile_payments().await.unwrap();
        assert_eq!((run.late_checked, run.late_paid), (1, 1), "{be}: {run:?}");
        // The order still owed exactly that: applied, not refunded.
        assert_eq!(
            s.order_of(me, order.id).await.unwrap().state,
            OrderState::Paid,
            "{be}"
        );
        assert!(payments::refunds_of_order(&app.db.store, order.id.0)
            .await
            .unwrap()
            .is_empty());
        let a = payments::attempt_by_no(&app.db.store, &p.out_trade_no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.state, a.settled_by.as_deref()),
            (AttemptState::Paid, Some("late"))
        );
        // Asked once only.
        let run = s.reconcile_payments().await.unwrap();
        assert_eq!(run.late_checked, 0, "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_qr_code_is_being_made_is_never_closed_under_it() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        let (me, order) = awaiting_payment(&app, "13600000251").await;
        // Another request is asking the provider right now (no code yet).
        let mut tx = app.db.store.begin_write().await.unwrap();
        payments::insert_attempt(
            &mut tx,
            &payments::NewAttempt {
                order_id: order.id.0,
                seq: 1,
                channel: Channel::Wechat,
                out_trade_no: "CH00000001T001MAKING",
                amount_fen: 38_000,
                description: "CertHall 证书新办",
                code_url: "",
                created_at: app.clock.now(),
                expires_at: app.clock.now().plus(Duration::from_secs(1800)),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        for result in [
            s.revise_checkout(me, order.id, &m()).await,
            s.cancel_order(OrderActor::Applicant(me), order.id, None, &m())
                .await,
        ] {
            assert_eq!(refusal(result.unwrap_err()).code(), "payment_busy", "{be}");
        }
        let a = payments::attempt_by_no(&app.db.store, "CH00000001T001MAKING")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.state, AttemptState::Paying, "{be}");
        assert_eq!(
            s.order_of(me, order.id).await.unwrap().state,
            OrderState::AwaitingPayment
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_the_provider_refuses_goes_to_a_person() {
    let app = TestApp::sqlite().await;
    let _server = app.serve().await;
    let s = &app.services;
    let (me, order) = awaiting_payment(&app, "13600000261").await;
    let p = s
        .start_payment(me, order.id, Channel::Wechat, &m())
        .await
        .unwrap();
    s.demo_cashier_pay(&p.out_trade_no, true).await.unwrap();
    // The provider's trade no longer matches (refused for good, not a
    // network error).
    let mut tx = app.db.store.begin_write().await.unwrap();
    certhall_store::raw_execute(
        &mut tx,
        &format!(
            "UPDATE demo_wechat_trades SET amount_fen = 1 WHERE out_trade_no = '{}'",
            p.out_trade_no
        ),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    s.cancel_order(OrderActor::Applicant(me), order.id, None, &m())
        .await
        .unwrap();
    let r = &payments::refunds_of_order(&app.db.store, order.id.0)
        .await
        .unwrap()[0];
    assert_eq!(r.state, RefundState::Abnormal);
    assert!(
        r.detail.as_deref().unwrap().contains("INVALID_REQUEST"),
        "{:?}",
        r.detail
    );
    // Not resubmitted every tick; the counter and the applicant are told.
    let run = s.reconcile_payments().await.unwrap();
    assert_eq!(run.refunds_checked, 0);
    assert!(s
        .counter_notices(10)
        .await
        .unwrap()
        .iter()
        .any(|n| n.kind == "refund_problem" && n.order_id == Some(order.id.0)));
    let inbox = s.messages(me, 1, 50).await.unwrap();
    assert!(inbox
        .items
        .iter()
        .any(|m| m.title.starts_with("退款需人工处理")));
    assert!(audit_events(&app, "payment.refund_changed")
        .await
        .iter()
        .any(|d| d["to"] == "abnormal"));
}
