//! The counter console (柜台端), in-process, on SQLite and PostgreSQL:
//! operators added, login with password + SMS code, failures locking,
//! the review queue, returning with a reason, approving, two operators at
//! once, and an operator's own order refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::http::StatusCode;
use certhall_domain::audit::Actor;
use certhall_domain::order::{Authorization, OrderEvent, OrderKind, OrderState, Step};
use certhall_domain::{AccountId, Phone, Refusal};
use certhall_service::counter::{OperatorInfo, ReviewDecision};
use certhall_service::orders::OrderActor;
use certhall_service::{RequestMeta, ServiceError};
use certhall_store::orders::OrderRow;
use certhall_testkit::client::Client;
use certhall_testkit::TestApp;
use serde_json::json;

const PASSWORD: &str = "counter2026x";
const OP_PHONE: &str = "13700000001";
const OP2_PHONE: &str = "13700000002";
const APPLICANT: &str = "13600000009";

fn refusal(e: ServiceError) -> Refusal {
    e.refusal()
        .cloned()
        .unwrap_or_else(|| panic!("not a refusal: {e}"))
}

fn meta(ip: &str) -> RequestMeta {
    RequestMeta {
        ip: Some(ip.into()),
        user_agent: Some("counter-test".into()),
    }
}

/// Logs in at /counter with password and code.
async fn counter_login(c: &mut Client<'_>, username: &str, phone: &str) {
    c.counter_login(username, PASSWORD, phone).await;
}

async fn add_operator(app: &TestApp, username: &str, phone: &str) {
    app.services
        .add_operator(
            username,
            phone,
            "operator",
            PASSWORD,
            Actor::Cli("admin".into()),
        )
        .await
        .unwrap();
}

/// Logs an operator in through the services.
async fn operator(app: &TestApp, username: &str, phone: &str, ip: &str) -> OperatorInfo {
    let s = &app.services;
    let sent = s
        .counter_password(username, PASSWORD, &meta(ip))
        .await
        .unwrap();
    let code = app.latest_code(phone).await.unwrap();
    let token = s
        .counter_code(&sent.pending, &code, &meta(ip))
        .await
        .unwrap();
    // The half-done login and its code are used up.
    let again = s.counter_code(&sent.pending, &code, &meta(ip)).await;
    assert_eq!(refusal(again.unwrap_err()), Refusal::CounterLoginRestart);
    s.authenticate_operator(&token).await.unwrap()
}

/// An applicant's order, steps 1–4 saved and materials submitted with a
/// letter: in the counter's queue.
async fn order_in_review(app: &TestApp, phone: &str) -> (AccountId, OrderRow) {
    let s = &app.services;
    let m = RequestMeta::default();
    let me = s
        .ensure_account(&Phone::parse(phone).unwrap())
        .await
        .unwrap();
    let order = s.start_order(me, OrderKind::New, &m).await.unwrap();
    for (step, data) in [
        (
            Step::Identity,
            json!({"name": "张三", "id_number": "11010519491231002X", "phone": phone}),
        ),
        (Step::Application, json!({"application": "zzggzy"})),
        (
            Step::Enterprise,
            json!({"name": "枣庄测试建设有限公司", "uscc": "91370400MA3C8XXX1X"}),
        ),
        (Step::Handling, json!({"handling": "online"})),
    ] {
        let data = certhall_domain::steps::StepData::decode(step, data).unwrap();
        s.save_order_step(me, order.id, &data, &m).await.unwrap();
    }
    let order = s.order_of(me, order.id).await.unwrap();
    let order = s
        .order_event(
            OrderActor::Applicant(me),
            order.id,
            order.version,
            OrderEvent::SubmitMaterials(Authorization::Letter),
            None,
            &m,
        )
        .await
        .unwrap();
    assert_eq!(order.state, OrderState::InReview);
    (me, order)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_are_added_and_log_in_with_password_and_code() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        add_operator(&app, "wang", OP_PHONE).await;
        // Same username again, a weak password, a bad role: refused.
        let err = s
            .add_operator("Wang", OP2_PHONE, "operator", PASSWORD, Actor::System)
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "operator_exists", "{be}");
        let err = s
            .add_operator("li", OP2_PHONE, "operator", "short", Actor::System)
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "invalid_operator", "{be}");
        let err = s
            .add_operator("li", OP2_PHONE, "root", PASSWORD, Actor::System)
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "invalid_operator", "{be}");
        let list = s.operators().await.unwrap();
        assert_eq!(list.len(), 1, "{be}");
        assert!(list[0].password_hash.starts_with("$argon2id$"), "{be}");

        let mut c = Client::new(&app, "10.9.0.1");
        // Not logged in: to the counter login.
        let r = c.get("/counter").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{be}");
        assert_eq!(r.location(), "/counter/login");
        let page = c.get("/counter/login").await;
        let csrf = page.csrf();

        // Unknown user and wrong password read the same.
        let unknown = c
            .post_form(
                "/counter/login",
                &[
                    ("_csrf", &csrf),
                    ("username", "nobody"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        let wrong = c
            .post_form(
                "/counter/login",
                &[
                    ("_csrf", &csrf),
                    ("username", "wang"),
                    ("password", "nope2026nope"),
                ],
            )
            .await;
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED, "{be}");
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{be}");
        for r in [&unknown, &wrong] {
            assert!(r.body.contains("用户名或密码不正确"), "{be}: {}", r.body);
        }
        // Without CSRF: refused before anything is checked.
        let r = c
            .post_form(
                "/counter/login",
                &[("username", "wang"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{be}");

        // Right password: a code to the operator's phone; a wrong code is
        // counted; the right one logs in.
        let r = c
            .post_form(
                "/counter/login",
                &[
                    ("_csrf", &csrf),
                    ("username", "wang"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        assert!(r.body.contains("验证码已发送至 137****0001"), "{be}");
        assert!(c.cookies.contains_key("ch_counter"), "{be}");
        // The pending login is not a session yet.
        assert_eq!(c.get("/counter").await.status, StatusCode::SEE_OTHER);
        let code = app.latest_code(OP_PHONE).await.unwrap();
        let wrong_code = if code == "000000" { "111111" } else { "000000" };
        let r = c
            .post_form(
                "/counter/login/code",
                &[("_csrf", &csrf), ("code", wrong_code)],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{be}");
        assert!(r.body.contains("验证码不正确"), "{be}: {}", r.body);
        // The counter code does not open an applicant session.
        let err = s
            .verify_login_code(
                OP_PHONE,
                &code,
                certhall_store::sessions::SessionKind::Browser,
                None,
                &RequestMeta::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "sms_code_wrong", "{be}");
        let r = c
            .post_form("/counter/login/code", &[("_csrf", &csrf), ("code", &code)])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{be}: {}", r.body);
        let r = c.get("/counter").await;
        assert_eq!(r.status, StatusCode::OK, "{be}");
        assert!(r.body.contains("wang（柜台审核员）"), "{be}");
        assert!(r.body.contains("待审核 0 单"), "{be}");
        // A second submit while logged in changes nothing.
        let r = c
            .post_form("/counter/login/code", &[("_csrf", &csrf), ("code", &code)])
            .await;
        assert_eq!(r.location(), "/counter", "{be}");
        assert_eq!(c.get("/counter").await.status, StatusCode::OK, "{be}");

        // An applicant's session is no operator session.
        let mut applicant = Client::new(&app, "10.9.0.2");
        let token = s
            .verify_login_code(
                APPLICANT,
                "000000",
                certhall_store::sessions::SessionKind::Browser,
                None,
                &RequestMeta::default(),
            )
            .await;
        assert!(token.is_err());
        s.send_login_code(APPLICANT, &RequestMeta::default())
            .await
            .unwrap();
        let code = app.latest_code(APPLICANT).await.unwrap();
        let logged = s
            .verify_login_code(
                APPLICANT,
                &code,
                certhall_store::sessions::SessionKind::Browser,
                None,
                &RequestMeta::default(),
            )
            .await
            .unwrap();
        applicant
            .cookies
            .insert("ch_counter".into(), logged.token.as_str().to_owned());
        assert_eq!(
            applicant.get("/counter").await.status,
            StatusCode::SEE_OTHER
        );

        // Logout ends the session.
        let page = c.get("/counter").await;
        let r = c
            .post_form("/counter/logout", &[("_csrf", &page.csrf())])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{be}");
        assert_eq!(c.get("/counter").await.status, StatusCode::SEE_OTHER);

        // Every attempt is in the audit chain.
        let failed = certhall_store::audit::recent(&s.store, Some("counter.login_failed"), 100)
            .await
            .unwrap();
        assert!(failed.len() >= 3, "{be}: {failed:?}");
        let ok = certhall_store::audit::recent(&s.store, Some("counter.login_succeeded"), 100)
            .await
            .unwrap();
        assert_eq!(ok.len(), 2, "{be}: {ok:?}");
        assert!(ok.iter().all(|e| e.actor.starts_with("operator:")), "{be}");
        s.verify_audit_chain().await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_the_operator() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        add_operator(&app, "zhao", OP_PHONE).await;
        for i in 1..=4 {
            let err = s
                .counter_password("zhao", "wrong2026pass", &meta("10.9.1.1"))
                .await
                .unwrap_err();
            assert_eq!(
                refusal(err),
                Refusal::CounterBadCredentials,
                "{be}: try {i}"
            );
        }
        let err = s
            .counter_password("zhao", "wrong2026pass", &meta("10.9.1.1"))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(err),
            Refusal::OperatorLocked { minutes: 30 },
            "{be}"
        );
        // Locked: even the right password is refused, and no code is sent.
        let err = s
            .counter_password("zhao", PASSWORD, &meta("10.9.1.1"))
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "operator_locked", "{be}");
        assert_eq!(app.latest_code(OP_PHONE).await, None, "{be}");
        assert!(Refusal::OperatorLocked { minutes: 30 }
            .message_zh()
            .contains("锁定"),);
        // After 30 minutes: the right password works again.
        app.clock.advance(Duration::from_secs(30 * 60));
        let who = operator(&app, "zhao", OP_PHONE, "10.9.1.1").await;
        assert_eq!(who.username, "zhao");
        let list = s.operators().await.unwrap();
        assert_eq!(list[0].failed_logins, 0, "{be}");

        // Wrong SMS codes count towards the lock too.
        add_operator(&app, "qian", OP2_PHONE).await;
        let mut last = None;
        for _ in 0..5 {
            app.clock.advance(Duration::from_secs(61));
            let sent = s
                .counter_password("qian", PASSWORD, &meta("10.9.1.2"))
                .await
                .unwrap();
            let code = app.latest_code(OP2_PHONE).await.unwrap();
            let wrong = if code == "000000" { "111111" } else { "000000" };
            last = Some(
                s.counter_code(&sent.pending, wrong, &meta("10.9.1.2"))
                    .await
                    .unwrap_err(),
            );
        }
        assert_eq!(refusal(last.unwrap()).code(), "operator_locked", "{be}");
        let locked = certhall_store::audit::recent(&s.store, Some("counter.login_failed"), 100)
            .await
            .unwrap();
        assert!(locked.len() >= 10, "{be}");
        s.verify_audit_chain().await.unwrap().unwrap();
    }
}

/// Eleven wrong passwords and the right one at the same moment: the
/// password is counted before it is checked, so at most five tries (the
/// lock) reach a verdict and the right one is accepted only if it was
/// among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_password_tries_cannot_outrun_the_lock() {
    for app in TestApp::each().await {
        let be = app.backend();
        let app = std::sync::Arc::new(app);
        add_operator(&app, "zhou", OP_PHONE).await;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(12));
        let mut tasks = Vec::new();
        for i in 0..12 {
            let app = app.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let password = if i == 11 { PASSWORD } else { "wrong2026pass" };
                barrier.wait().await;
                app.services
                    .counter_password("zhou", password, &meta("10.9.7.1"))
                    .await
            }));
        }
        let mut verdicts = 0;
        let mut accepted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => {
                    verdicts += 1;
                    accepted += 1;
                }
                Err(e) => match refusal(e) {
                    Refusal::CounterBadCredentials => verdicts += 1,
                    Refusal::OperatorLocked { .. } => {}
                    other => panic!("{be}: {other:?}"),
                },
            }
        }
        // The try that reaches the lock is checked and answers "locked":
        // count the checks themselves in the audit chain.
        let checked =
            certhall_store::audit::recent(&app.services.store, Some("counter.login_failed"), 100)
                .await
                .unwrap()
                .iter()
                .filter(|e| {
                    let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
                    let r = data["reason"].as_str().unwrap_or_default();
                    r == "wrong_password" || r == "locked"
                })
                .count();
        assert!(verdicts <= 5, "{be}: {verdicts} verdicts");
        assert!(
            checked + accepted <= 5,
            "{be}: {checked} checked, {accepted} accepted"
        );
        assert!(accepted <= 1, "{be}");
        // Afterwards the name is locked from that address, whatever the
        // order of the race was, unless the right password came early.
        if accepted == 0 {
            let err = app
                .services
                .counter_password("zhou", PASSWORD, &meta("10.9.7.1"))
                .await
                .unwrap_err();
            assert_eq!(refusal(err).code(), "operator_locked", "{be}");
        }
        app.services.verify_audit_chain().await.unwrap().unwrap();
    }
}

/// Guessing an operator's username from one address locks it there, not
/// at the operator's own desk; many addresses lock it everywhere (more
/// slowly); one address may not try without end across usernames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_limits_per_address_per_user_and_per_ip() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        add_operator(&app, "sun", OP_PHONE).await;
        for _ in 0..5 {
            let _ = s
                .counter_password("sun", "wrong2026pass", &meta("203.0.113.9"))
                .await
                .unwrap_err();
        }
        let err = s
            .counter_password("sun", PASSWORD, &meta("203.0.113.9"))
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "operator_locked", "{be}");
        // The operator's own desk still logs in.
        let who = operator(&app, "sun", OP_PHONE, "10.9.8.1").await;
        assert_eq!(who.username, "sun", "{be}");

        // Twenty failures from five addresses lock the name everywhere.
        add_operator(&app, "wu", OP2_PHONE).await;
        for i in 0..20 {
            let ip = format!("198.51.100.{}", i % 5);
            let _ = s
                .counter_password("wu", "wrong2026pass", &meta(&ip))
                .await
                .unwrap_err();
        }
        let err = s
            .counter_password("wu", PASSWORD, &meta("10.9.8.2"))
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "operator_locked", "{be}");
        app.clock.advance(Duration::from_secs(30 * 60));
        assert_eq!(
            operator(&app, "wu", OP2_PHONE, "10.9.8.2").await.username,
            "wu",
            "{be}"
        );

        // One address scanning usernames: 30 failures per 15 minutes, then
        // refused without a check; the refusals are audited once. Logins
        // from the same address (an office) do not count.
        for _ in 0..2 {
            app.clock.advance(Duration::from_secs(120));
            operator(&app, "sun", OP_PHONE, "192.0.2.7").await;
        }
        let before = certhall_store::audit::recent(&s.store, Some("counter.login_failed"), 500)
            .await
            .unwrap()
            .len();
        for i in 0..30 {
            let err = s
                .counter_password(&format!("user{i}"), "wrong2026pass", &meta("192.0.2.7"))
                .await
                .unwrap_err();
            assert_eq!(refusal(err), Refusal::CounterBadCredentials, "{be}: {i}");
        }
        for _ in 0..5 {
            let err = s
                .counter_password("sun", PASSWORD, &meta("192.0.2.7"))
                .await
                .unwrap_err();
            assert_eq!(
                refusal(err),
                Refusal::CounterTooManyTries { minutes: 15 },
                "{be}"
            );
        }
        let after = certhall_store::audit::recent(&s.store, Some("counter.login_failed"), 500)
            .await
            .unwrap();
        assert_eq!(
            after.len() - before,
            31,
            "{be}: 30 failures and one refusal"
        );
        assert!(Refusal::CounterTooManyTries { minutes: 15 }
            .message_zh()
            .contains("15分钟"));
        s.verify_audit_chain().await.unwrap().unwrap();
    }
}

/// Each operator has a phone of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_cannot_share_a_phone() {
    for app in TestApp::each().await {
        let be = app.backend();
        add_operator(&app, "zheng", OP_PHONE).await;
        let err = app
            .services
            .add_operator("feng", OP_PHONE, "operator", PASSWORD, Actor::System)
            .await
            .unwrap_err();
        let r = refusal(err);
        assert_eq!(r, Refusal::OperatorPhoneTaken("zheng".into()), "{be}");
        assert!(r.message_zh().contains("zheng"), "{be}");
        assert_eq!(app.services.operators().await.unwrap().len(), 1, "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_returns_with_a_reason_then_approves() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        add_operator(&app, "wang", OP_PHONE).await;
        let (me, order) = order_in_review(&app, APPLICANT).await;
        // An order still in the wizard is not in the queue.
        let draft = s
            .start_order(me, OrderKind::New, &RequestMeta::default())
            .await
            .unwrap();

        let mut c = Client::new(&app, "10.9.2.1");
        counter_login(&mut c, "wang", OP_PHONE).await;
        let q = c.get("/counter").await;
        assert_eq!(q.status, StatusCode::OK, "{be}");
        assert!(q.body.contains("待审核 1 单"), "{be}: {}", q.body);
        assert!(
            q.body.contains(&format!("data-order=\"{}\"", order.id)),
            "{be}"
        );
        assert!(
            !q.body.contains(&format!("data-order=\"{}\"", draft.id)),
            "{be}"
        );
        assert!(q.body.contains("枣庄测试建设有限公司"), "{be}");
        // Filters: application and date.
        let q = c.get("/counter?application=zzggzy").await;
        assert!(
            q.body.contains(&format!("data-order=\"{}\"", order.id)),
            "{be}"
        );
        let q = c.get("/counter?application=other").await;
        assert!(q.body.contains("queue-empty"), "{be}");
        let q = c.get("/counter?from=2026-11-25&to=2026-11-25").await;
        assert!(
            q.body.contains(&format!("data-order=\"{}\"", order.id)),
            "{be}"
        );
        let q = c.get("/counter?from=2026-11-26").await;
        assert!(q.body.contains("queue-empty"), "{be}");

        // The detail shows what was typed.
        let path = format!("/counter/orders/{}", order.id);
        let d = c.get(&path).await;
        assert_eq!(d.status, StatusCode::OK, "{be}");
        for text in [
            "张三",
            "11010519491231002X",
            "zzggzy",
            "统一社会信用代码",
            "授权委托书不清晰",
        ] {
            assert!(d.body.contains(text), "{be}: {text} missing");
        }
        let csrf = d.csrf();
        let version = order.version.to_string();

        // Returning needs a reason.
        let r = c
            .post_form(
                &format!("{path}/reject"),
                &[
                    ("_csrf", &csrf),
                    ("version", &version),
                    ("reason", "其他"),
                    ("step", "5"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{be}");
        assert!(r.body.contains("请填写退回原因"), "{be}");
        assert_eq!(
            s.order_of(me, order.id).await.unwrap().state,
            OrderState::InReview
        );

        let r = c
            .post_form(
                &format!("{path}/reject"),
                &[
                    ("_csrf", &csrf),
                    ("version", &version),
                    ("reason", "公章不清晰"),
                    ("reason_text", ""),
                    ("step", "5"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{be}: {}", r.body);
        let returned = s.order_of(me, order.id).await.unwrap();
        assert_eq!(
            returned.state,
            OrderState::Returned {
                step: Step::Materials
            },
            "{be}"
        );
        assert_eq!(returned.return_reason.as_deref(), Some("公章不清晰"));
        let inbox = s.messages(me, 1, 20).await.unwrap();
        assert!(
            inbox.items.iter().any(|m| m.body.contains("公章不清晰")),
            "{be}: {:?}",
            inbox.items
        );
        let events = certhall_store::orders::events(&s.store, order.id)
            .await
            .unwrap();
        let last = events.last().unwrap();
        assert!(last.actor.starts_with("operator:"), "{be}: {last:?}");

        // The applicant resubmits; the counter approves.
        let again = s
            .order_event(
                OrderActor::Applicant(me),
                order.id,
                returned.version,
                OrderEvent::SubmitMaterials(Authorization::Letter),
                None,
                &RequestMeta::default(),
            )
            .await
            .unwrap();
        let d = c.get(&path).await;
        assert!(d.body.contains("上次退回原因：公章不清晰"), "{be}");
        // 审核通过 asks for confirmation first; nothing changes yet.
        let r = c
            .post_form(
                &format!("{path}/approve"),
                &[
                    ("_csrf", &d.csrf()),
                    ("version", &again.version.to_string()),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        assert!(r.body.contains("data-testid=\"confirm-approve\""), "{be}");
        assert_eq!(
            s.order_of(me, order.id).await.unwrap().state,
            OrderState::InReview,
            "{be}: approved without confirmation"
        );
        let r = c
            .post_form(
                &format!("{path}/approve"),
                &[
                    ("_csrf", &d.csrf()),
                    ("version", &again.version.to_string()),
                    ("confirmed", "1"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{be}: {}", r.body);
        let q = c.get(r.location()).await;
        assert!(q.body.contains("已审核通过"), "{be}");
        assert!(q.body.contains("待审核 0 单"), "{be}");
        assert_eq!(
            s.order_of(me, order.id).await.unwrap().state,
            OrderState::Approved,
            "{be}"
        );
        let inbox = s.messages(me, 1, 20).await.unwrap();
        assert!(
            inbox.items.iter().any(|m| m.body.contains("审核通过")),
            "{be}"
        );
        let sms = certhall_store::sms::outbox_recent(&s.store, Some(APPLICANT), 10)
            .await
            .unwrap();
        assert!(
            sms.iter().any(|m| m.body.contains("审核通过")),
            "{be}: {sms:?}"
        );
        assert!(sms.iter().any(|m| m.body.contains("未通过")), "{be}");
        // The approved filter shows it.
        let q = c.get("/counter?state=approved").await;
        assert!(
            q.body.contains(&format!("data-order=\"{}\"", order.id)),
            "{be}"
        );
        s.verify_audit_chain().await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_at_once_one_wins() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        add_operator(&app, "wang", OP_PHONE).await;
        add_operator(&app, "li", OP2_PHONE).await;
        let a = operator(&app, "wang", OP_PHONE, "10.9.3.1").await;
        let b = operator(&app, "li", OP2_PHONE, "10.9.3.2").await;
        let (me, order) = order_in_review(&app, APPLICANT).await;
        let m = RequestMeta::default();
        let (ra, rb) = tokio::join!(
            s.review_decide(&a, order.id, order.version, &ReviewDecision::Approve, &m),
            s.review_decide(&b, order.id, order.version, &ReviewDecision::Approve, &m),
        );
        let loser = match (ra, rb) {
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
            other => panic!("{be}: exactly one must win: {other:?}"),
        };
        let r = refusal(loser);
        assert_eq!(r.code(), "review_already_decided", "{be}");
        assert!(r.message_zh().contains("已被其他柜台人员处理"), "{be}");
        assert_eq!(
            s.order_of(me, order.id).await.unwrap().state,
            OrderState::Approved
        );
        let events = certhall_store::orders::events(&s.store, order.id)
            .await
            .unwrap();
        assert_eq!(
            events.iter().filter(|e| e.to_state == "approved").count(),
            1,
            "{be}"
        );

        // The same through the pages: a stale form says so.
        let (_, order2) = order_in_review(&app, "13600000010").await;
        app.clock.advance(Duration::from_secs(61));
        let mut c = Client::new(&app, "10.9.3.3");
        counter_login(&mut c, "li", OP2_PHONE).await;
        let path = format!("/counter/orders/{}", order2.id);
        let d = c.get(&path).await;
        s.review_decide(&a, order2.id, order2.version, &ReviewDecision::Approve, &m)
            .await
            .unwrap();
        let r = c
            .post_form(
                &format!("{path}/reject"),
                &[
                    ("_csrf", &d.csrf()),
                    ("version", &order2.version.to_string()),
                    ("reason", "公章不清晰"),
                    ("step", "5"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{be}");
        assert!(r.body.contains("已被其他柜台人员处理"), "{be}: {}", r.body);
        // 审核通过 asked for on the stale page is refused the same way.
        let r = c
            .post_form(
                &format!("{path}/approve"),
                &[
                    ("_csrf", &d.csrf()),
                    ("version", &order2.version.to_string()),
                ],
            )
            .await;
        assert!(r.body.contains("已被其他柜台人员处理"), "{be}: {}", r.body);

        // Each stale decision is in the audit chain, with who and what.
        let stale: Vec<(String, serde_json::Value)> =
            certhall_store::audit::recent(&s.store, Some("access.refused"), 100)
                .await
                .unwrap()
                .iter()
                .map(|e| (e.actor.clone(), serde_json::from_str(&e.data).unwrap()))
                .filter(|(_, d): &(String, serde_json::Value)| d["reason"] == "stale_decision")
                .collect();
        assert_eq!(stale.len(), 3, "{be}: {stale:?}");
        assert_eq!(stale[0].0, format!("operator:{}", b.id), "{be}");
        assert_eq!(stale[0].1["target"]["order"], order2.id.0, "{be}");
        assert!(stale[2].1["target"]["order"] == order.id.0, "{be}");
        s.verify_audit_chain().await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_cannot_review_their_own_order() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        add_operator(&app, "wang", OP_PHONE).await;
        let me = operator(&app, "wang", OP_PHONE, "10.9.4.1").await;
        // The operator applies with the same phone as an applicant.
        let (account, order) = order_in_review(&app, OP_PHONE).await;
        let err = s
            .review_decide(
                &me,
                order.id,
                order.version,
                &ReviewDecision::Approve,
                &RequestMeta::default(),
            )
            .await
            .unwrap_err();
        let r = refusal(err);
        assert_eq!(r, Refusal::OwnOrderReview, "{be}");
        assert!(r.message_zh().contains("不能审核本人账户"), "{be}");
        assert_eq!(
            s.order_of(account, order.id).await.unwrap().state,
            OrderState::InReview
        );
        let mut c = Client::new(&app, "10.9.4.2");
        app.clock.advance(Duration::from_secs(61));
        counter_login(&mut c, "wang", OP_PHONE).await;
        let d = c.get(&format!("/counter/orders/{}", order.id)).await;
        assert!(d.body.contains("data-testid=\"own-order\""), "{be}");
        assert!(!d.body.contains("data-testid=\"approve\""), "{be}");
        let r = c
            .post_form(
                &format!("/counter/orders/{}/approve", order.id),
                &[
                    ("_csrf", &d.csrf()),
                    ("version", &order.version.to_string()),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{be}");
        // An applicant can never decide, not even their own order.
        let err = s
            .order_event(
                OrderActor::Applicant(account),
                order.id,
                order.version,
                OrderEvent::Approve,
                None,
                &RequestMeta::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "order_state_conflict", "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_through_the_json_api() {
    for app in TestApp::each().await {
        let be = app.backend();
        add_operator(&app, "zhao", OP_PHONE).await;
        let (_, order) = certhall_testkit::fixtures::order_at_step_five(&app, APPLICANT).await;
        // Materials and the letter through the applicant's API.
        let mut applicant = Client::new(&app, "10.40.0.1");
        applicant.api_login(APPLICANT).await;
        for k in [
            "company_seal",
            "legal_rep_seal",
            "legal_rep_signature",
            "authorization_letter",
        ] {
            let r = applicant
                .send_bytes(
                    axum::http::Method::PUT,
                    &format!("/api/v1/orders/{}/materials/{k}", order.id),
                    Some("image/png"),
                    certhall_testkit::fixtures::png(400, 400),
                    &[],
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        }
        let r = applicant
            .send(
                axum::http::Method::PUT,
                &format!("/api/v1/orders/{}/steps/5", order.id),
                Some("application/json"),
                json!({ "authorization": "letter" }).to_string(),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let version = r.json()["version"].as_i64().unwrap();

        // An applicant's token is no operator's.
        let r = applicant.get("/api/v1/counter/orders").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{be}");

        // Login: password, then the code.
        let mut op = Client::new(&app, "10.40.0.2");
        let r = op
            .post_json(
                "/api/v1/counter/login",
                json!({ "username": "zhao", "password": "wrong-password-1" }),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "counter_bad_credentials"),
            "{be}"
        );
        let r = op
            .post_json(
                "/api/v1/counter/login",
                json!({ "username": "zhao", "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let login_token = r.json()["login_token"].as_str().unwrap().to_owned();
        // The half-done login is not a session.
        op.bearer = Some(login_token.clone());
        assert_eq!(
            op.get("/api/v1/counter/orders").await.status,
            StatusCode::UNAUTHORIZED
        );
        op.bearer = None;
        let code = app.latest_code(OP_PHONE).await.unwrap();
        let r = op
            .post_json(
                "/api/v1/counter/login/code",
                json!({ "login_token": login_token, "code": code }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        op.bearer = Some(r.json()["token"].as_str().unwrap().to_owned());

        let r = op.get("/api/v1/counter/orders").await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        assert_eq!(r.json()["waiting"], json!(1));
        assert_eq!(r.json()["items"][0]["order"]["id"], json!(order.id));
        let r = op
            .get(&format!("/api/v1/counter/orders/{}", order.id))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        let d = r.json();
        assert_eq!(
            d["materials"].as_array().unwrap().len(),
            5,
            "{be}: the license and four"
        );
        assert_eq!(d["own_order"], json!(false));
        let img = op.get(d["materials"][0]["url"].as_str().unwrap()).await;
        assert_eq!(img.status, StatusCode::OK, "{be}");
        assert!(img.raw.starts_with(b"\x89PNG"));

        // A return needs a reason; a stale version loses.
        let url = |what: &str| format!("/api/v1/counter/orders/{}/{what}", order.id);
        let r = op
            .post_json(
                &url("reject"),
                json!({ "version": version, "step": 5, "reason": " " }),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "missing_field"),
            "{be}"
        );
        let r = op
            .post_json(&url("approve"), json!({ "version": version - 1 }))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::CONFLICT, "review_already_decided"),
            "{be}"
        );
        let r = op
            .post_json(&url("approve"), json!({ "version": version }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{be}: {}", r.body);
        assert_eq!(r.json()["state"], json!("approved"));
        let r = op.post_json("/api/v1/counter/logout", json!({})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{be}");
        assert_eq!(
            op.get("/api/v1/counter/orders").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

/// A return or cancel reason over 200 characters is refused with a clear
/// message, never silently cut; the order is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_reasons_are_refused_not_cut() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        add_operator(&app, "qian", OP_PHONE).await;
        let who = operator(&app, "qian", OP_PHONE, "10.9.12.1").await;
        let (me, order) = order_in_review(&app, APPLICANT).await;
        let long = "公章模糊".repeat(51);
        let err = s
            .review_decide(
                &who,
                order.id,
                order.version,
                &ReviewDecision::Reject {
                    step: Step::Materials,
                    reason: long.clone(),
                },
                &meta("10.9.12.1"),
            )
            .await
            .unwrap_err();
        let r = refusal(err);
        assert_eq!(r.code(), "invalid_field", "{be}");
        assert!(
            r.message_zh().contains("不能超过200字（现为204字）"),
            "{be}"
        );
        let same = s.order_of(me, order.id).await.unwrap();
        assert_eq!(
            (same.state, same.version),
            (order.state, order.version),
            "{be}"
        );
        // Exactly 200 is kept whole.
        let exact = "字".repeat(200);
        s.review_decide(
            &who,
            order.id,
            order.version,
            &ReviewDecision::Reject {
                step: Step::Materials,
                reason: exact.clone(),
            },
            &meta("10.9.12.1"),
        )
        .await
        .unwrap();
        let events = certhall_store::orders::events(&s.store, order.id)
            .await
            .unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.reason.as_deref() == Some(exact.as_str())),
            "{be}"
        );
        let err = s
            .counter_cancel(&who, order.id, &long, &meta("10.9.12.1"))
            .await
            .unwrap_err();
        assert_eq!(refusal(err).code(), "invalid_field", "{be}");
    }
}
