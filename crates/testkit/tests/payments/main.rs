//! Steps 6–7 on SQLite and PostgreSQL: the checkout's refusals (nothing
//! half-written), stock that is never oversold, payment through the demo
//! cashier (a real WeChat v3 callback through the real route), duplicate,
//! forged and wrong callbacks, Alipay notifications, the reconciliation
//! job, refunds, and the pages and API around them.
//!
//! The helpers every module shares are here; the tests are grouped by
//! seam: `checkout` (step 6), `callbacks`, `job` (reconciliation and
//! refunds) and `pages` (pages, API, the legal representative).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod callbacks;
mod checkout;
mod job;
mod pages;

use axum::http::Method;
use certhall_domain::order::OrderState;
use certhall_domain::{AccountId, Clock, Refusal};
use certhall_service::{RequestMeta, ServiceError};
use certhall_store::orders::OrderRow;
use certhall_store::payments;
use certhall_testkit::client::{Client, Reply};
use certhall_testkit::fixtures::{self, approved_order, checkout_input};
use certhall_testkit::TestApp;
use serde_json::{json, Value};

fn refusal(e: ServiceError) -> Refusal {
    e.refusal()
        .cloned()
        .unwrap_or_else(|| panic!("not a refusal: {e}"))
}

fn m() -> RequestMeta {
    RequestMeta::default()
}

/// An approved order with step 6 confirmed: it waits for payment.
async fn awaiting_payment(app: &TestApp, phone: &str) -> (AccountId, OrderRow) {
    fixtures::key_models(app).await;
    let (me, order) = approved_order(app, phone).await;
    let order = app
        .services
        .save_checkout(me, order.id, &checkout_input(), true, &m())
        .await
        .unwrap();
    assert_eq!(order.state, OrderState::AwaitingPayment);
    (me, order)
}

async fn audit_events(app: &TestApp, event: &str) -> Vec<Value> {
    certhall_store::audit::recent(&app.db.store, Some(event), 200)
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

/// Posts a callback to the WeChat route as WeChat Pay would.
async fn post_wechat(app: &TestApp, headers: &[(String, String)], body: &str) -> Reply {
    post_wechat_from(app, "101.226.103.1", headers, body).await
}

/// The same from a given sender address.
async fn post_wechat_from(
    app: &TestApp,
    ip: &str,
    headers: &[(String, String)],
    body: &str,
) -> Reply {
    let mut c = Client::new(app, ip);
    let extra: Vec<(&str, String)> = headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    c.send(
        Method::POST,
        certhall_web::paths::NOTIFY_WECHAT,
        Some("application/json"),
        body.to_owned(),
        &extra,
    )
    .await
}

/// A WeChat v3 callback for `attempt` built by the demo platform (signed
/// with its key, the transaction encrypted with the demo APIv3 key), with
/// the transaction's fields changed by `edit`.
fn wechat_callback(
    app: &TestApp,
    attempt: &payments::AttemptRow,
    edit: impl FnOnce(&mut Value),
) -> certhall_payment::simulator::SignedCallback {
    let sim = app.services.payments.simulator().unwrap();
    let mut tx = json!({
        "appid": certhall_payment::simulator::DEMO_APP_ID,
        "mchid": certhall_payment::simulator::DEMO_MCH_ID,
        "out_trade_no": attempt.out_trade_no,
        "transaction_id": "4200009999202612050000000001",
        "trade_type": "NATIVE", "trade_state": "SUCCESS", "trade_state_desc": "支付成功",
        "bank_type": "OTHERS", "success_time": "2026-11-25T09:05:00+08:00",
        "payer": { "openid": "oTest" },
        "amount": { "total": attempt.amount_fen, "payer_total": attempt.amount_fen, "currency": "CNY" },
    });
    edit(&mut tx);
    sim.sign_callback(
        "unused",
        "TRANSACTION.SUCCESS",
        "支付成功",
        "transaction",
        tx.to_string().as_bytes(),
        app.clock.now(),
    )
    .unwrap()
}
