//! The order state machine persisted, on SQLite and PostgreSQL: wizard steps
//! in order (out of order refused, nothing changed), data kept per step,
//! transitions audited with a message, and two simultaneous decisions on
//! one order — exactly one wins.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use certhall_domain::order::{Authorization, OrderEvent, OrderKind, OrderState, Step};
use certhall_domain::steps::StepData;
use certhall_domain::{Phone, Refusal};
use certhall_service::orders::OrderActor;
use certhall_service::RequestMeta;
use certhall_testkit::TestApp;
use serde_json::json;

/// Hand-made step data, read the way stored data is.
fn typed(step: Step, data: serde_json::Value) -> StepData {
    StepData::decode(step, data).unwrap()
}

fn refusal(e: certhall_service::ServiceError) -> Refusal {
    e.refusal()
        .cloned()
        .unwrap_or_else(|| panic!("not a refusal: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_move_only_as_the_state_machine_allows() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        let meta = RequestMeta::default();
        let me = s
            .ensure_account(&Phone::parse("13600000001").unwrap())
            .await
            .unwrap();
        let other = s
            .ensure_account(&Phone::parse("13600000002").unwrap())
            .await
            .unwrap();
        let order = s.start_order(me, OrderKind::New, &meta).await.unwrap();
        assert_eq!(
            order.state,
            OrderState::Draft {
                reached: Step::Identity
            }
        );

        // Out of order: refused, nothing saved, nothing moved.
        let err = s
            .save_order_step(
                me,
                order.id,
                &typed(Step::Enterprise, json!({"name": "x"})),
                &meta,
            )
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "order_step_out_of_order", "{be}");
        let same = s.order_of(me, order.id).await.unwrap();
        assert_eq!(same, order, "{be}: a refused step changed the order");
        assert_eq!(
            certhall_store::orders::step_data(&s.store, order.id, Step::Enterprise)
                .await
                .unwrap(),
            None
        );

        // Someone else's order does not exist for them.
        let err = s
            .save_order_step(other, order.id, &typed(Step::Identity, json!({})), &meta)
            .await
            .unwrap_err();
        assert_eq!(refusal(err), Refusal::NotFound);

        // Steps 1–4 in order; data kept per step; revisiting keeps progress.
        for (step, data) in [
            (
                Step::Identity,
                json!({"name": "张三", "id_number": "11010519491231002X"}),
            ),
            (Step::Application, json!({"application": "zzggzy"})),
            (Step::Enterprise, json!({"name": "枣庄测试建设有限公司"})),
            (
                Step::Identity,
                json!({"name": "张三丰", "id_number": "11010519491231002X"}),
            ),
            (Step::Handling, json!({"handling": "online"})),
        ] {
            s.save_order_step(me, order.id, &typed(step, data), &meta)
                .await
                .unwrap();
        }
        let order = s.order_of(me, order.id).await.unwrap();
        assert_eq!(
            order.state,
            OrderState::Draft {
                reached: Step::Materials
            },
            "{be}"
        );
        assert_eq!(
            certhall_store::orders::step_data(&s.store, order.id, Step::Identity)
                .await
                .unwrap()
                .unwrap()["name"],
            "张三丰"
        );

        // Materials with an authorization letter: the counter's queue.
        let order = s
            .order_event(
                OrderActor::Applicant(me),
                order.id,
                order.version,
                OrderEvent::SubmitMaterials(Authorization::Letter),
                None,
                &meta,
            )
            .await
            .unwrap();
        assert_eq!(order.state, OrderState::InReview);
        let queue = certhall_store::orders::in_state(&s.store, "in_review", 10)
            .await
            .unwrap();
        assert_eq!(queue.iter().map(|o| o.id).collect::<Vec<_>>(), [order.id]);

        // A stale version is refused with the current state.
        let err = s
            .order_event(
                OrderActor::System,
                order.id,
                order.version - 1,
                OrderEvent::Approve,
                None,
                &meta,
            )
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "order_state_conflict");

        // Two decisions at the same moment: exactly one wins.
        let (a, b) = tokio::join!(
            s.order_event(
                OrderActor::System,
                order.id,
                order.version,
                OrderEvent::Approve,
                None,
                &meta
            ),
            s.order_event(
                OrderActor::System,
                order.id,
                order.version,
                OrderEvent::Reject(Step::Materials),
                Some("授权委托书缺少公章"),
                &meta
            ),
        );
        let wins = [a.is_ok(), b.is_ok()];
        assert_eq!(
            wins.iter().filter(|w| **w).count(),
            1,
            "{be}: {a:?} / {b:?}"
        );
        let loser = match (a, b) {
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
            other => panic!("{be}: {other:?}"),
        };
        assert_eq!(refusal(loser).code(), "order_state_conflict", "{be}");

        // History, audit and the applicant's messages.
        let events = certhall_store::orders::events(&s.store, order.id)
            .await
            .unwrap();
        assert!(events.len() >= 3, "{be}: {events:?}");
        let inbox = s.messages(me, 1, 20).await.unwrap();
        assert!(
            inbox
                .items
                .iter()
                .any(|m| m.title.contains(&format!("订单 {}", order.id))),
            "{be}: no order message"
        );
        s.verify_audit_chain().await.unwrap().unwrap();
    }
}
