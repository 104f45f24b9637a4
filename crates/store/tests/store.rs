//! Storage tests, run on SQLite and (when configured, always in CI) PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use certhall_domain::audit::{verify_chain, Actor, AuditEvent, NewAuditEntry};
use certhall_domain::message::NewMessage;
use certhall_domain::{Phone, Timestamp};
use certhall_store::testing::TestDatabase;
use certhall_store::{accounts, audit, login_codes, messages, sessions, Backend, LockKey};
use serde_json::json;

const T0: Timestamp = Timestamp::from_millis(1_795_588_200_000);

fn phone() -> Phone {
    Phone::parse("13800138000").unwrap()
}

#[tokio::test]
async fn runs_on_both_backends() {
    let dbs = TestDatabase::each().await.unwrap();
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        assert!(
            dbs.iter().any(|d| d.backend() == Backend::Postgres),
            "CI must run PostgreSQL"
        );
    }
    for db in dbs {
        let name = db.backend().name();
        accounts_sessions_messages(&db).await;
        login_code_compare_and_swap(&db).await;
        audit_chain_appends_and_verifies(&db).await;
        migrations_are_idempotent(&db).await;
        eprintln!("store tests passed on {name}");
    }
}

async fn accounts_sessions_messages(db: &TestDatabase) {
    let s = &db.store;
    let mut tx = s.begin_write().await.unwrap();
    assert!(accounts::find_by_phone(&mut tx, &phone())
        .await
        .unwrap()
        .is_none());
    let id = accounts::create(&mut tx, &phone(), T0).await.unwrap();
    messages::insert(&mut tx, id, &NewMessage::welcome(), T0)
        .await
        .unwrap();
    let second = NewMessage {
        title: "第二条".into(),
        ..NewMessage::welcome()
    };
    let m2 = messages::insert(&mut tx, id, &second, T0).await.unwrap();
    sessions::create(
        &mut tx,
        &sessions::NewSession {
            key: "k1",
            account_id: id,
            kind: sessions::SessionKind::Browser,
            ip: Some("127.0.0.1"),
            user_agent: Some("test"),
        },
        T0,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // The same phone twice is refused by the unique constraint.
    let mut tx = s.begin_write().await.unwrap();
    let dup = accounts::create(&mut tx, &phone(), T0).await.unwrap_err();
    assert!(dup.is_unique_violation(), "{dup:?}");
    drop(tx);

    let view = sessions::view(s, "k1").await.unwrap().unwrap();
    assert_eq!((view.account_id, view.unread), (id, 2));
    assert_eq!(view.phone, phone());
    assert!(sessions::view(s, "nope").await.unwrap().is_none());

    let listed = messages::list(s, id, 10, 0).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, m2, "newest first");
    assert_eq!(listed[0].title, "第二条");

    let mut tx = s.begin_write().await.unwrap();
    assert!(messages::mark_read(&mut tx, id, m2, T0).await.unwrap());
    assert!(
        !messages::mark_read(&mut tx, id, m2, T0).await.unwrap(),
        "already read"
    );
    tx.commit().await.unwrap();
    assert_eq!(messages::counts(s, id).await.unwrap(), (2, 1));
    let (page, counts) = messages::page_with_counts(s, id, 1, 0).await.unwrap();
    assert_eq!((page.len(), counts), (1, Some((2, 1))));
    assert_eq!(page[0].id, m2);
    let (page, counts) = messages::page_with_counts(s, id, 1, 5).await.unwrap();
    assert_eq!((page.len(), counts), (0, None), "past the end");
    let mut tx = s.begin_write().await.unwrap();
    assert_eq!(messages::mark_all_read(&mut tx, id, T0).await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert_eq!(messages::counts(s, id).await.unwrap(), (2, 0));

    sessions::touch(s, "k1", T0.plus(std::time::Duration::from_secs(90)))
        .await
        .unwrap();
    let view = sessions::view(s, "k1").await.unwrap().unwrap();
    assert_eq!(
        view.last_seen_at,
        T0.plus(std::time::Duration::from_secs(90))
    );
    let mut tx = s.begin_write().await.unwrap();
    assert!(sessions::delete(&mut tx, "k1").await.unwrap());
    tx.commit().await.unwrap();
    assert!(!sessions::exists(s, "k1").await.unwrap());
}

async fn login_code_compare_and_swap(db: &TestDatabase) {
    let s = &db.store;
    let p = Phone::parse("13900139000").unwrap();
    let mut tx = s.begin_write().await.unwrap();
    tx.lock(LockKey::Phone(p.as_str())).await.unwrap();
    let h = login_codes::send_history(&mut tx, &p, login_codes::LOGIN, Some("10.0.0.1"), T0)
        .await
        .unwrap();
    assert_eq!(
        (
            h.last_sent_to_phone,
            h.sent_to_phone_in_window,
            h.sent_from_ip_in_window
        ),
        (None, 0, 0)
    );
    let id = login_codes::insert(&mut tx, &p, b"hash", Some("10.0.0.1"), T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = s.begin_write().await.unwrap();
    let h = login_codes::send_history(&mut tx, &p, login_codes::LOGIN, Some("10.0.0.1"), T0)
        .await
        .unwrap();
    assert_eq!(
        (
            h.last_sent_to_phone,
            h.sent_to_phone_in_window,
            h.sent_from_ip_in_window
        ),
        (Some(T0), 1, 1)
    );
    // The cooldown is per purpose; the counts are not.
    let h = login_codes::send_history(&mut tx, &p, "revoke:0a1b", Some("10.0.0.1"), T0)
        .await
        .unwrap();
    assert_eq!(
        (
            h.last_sent_to_phone,
            h.sent_to_phone_in_window,
            h.sent_from_ip_in_window
        ),
        (None, 1, 1)
    );
    let later = T0.plus(std::time::Duration::from_secs(1));
    let h = login_codes::send_history(&mut tx, &p, login_codes::LOGIN, Some("10.0.0.1"), later)
        .await
        .unwrap();
    assert_eq!(
        (h.sent_to_phone_in_window, h.sent_from_ip_in_window),
        (0, 0),
        "outside window"
    );
    let (lid, issued) = login_codes::latest(&mut tx, &p).await.unwrap().unwrap();
    assert_eq!(
        (lid, issued.code_hash.as_slice(), issued.attempts),
        (id, &b"hash"[..], 0)
    );
    assert!(login_codes::count_wrong_try(&mut tx, id, 0).await.unwrap());
    assert!(
        !login_codes::count_wrong_try(&mut tx, id, 0).await.unwrap(),
        "stale attempts"
    );
    assert!(
        !login_codes::consume(&mut tx, id, 0, T0).await.unwrap(),
        "stale attempts"
    );
    assert!(login_codes::consume(&mut tx, id, 1, T0).await.unwrap());
    assert!(
        !login_codes::consume(&mut tx, id, 1, T0).await.unwrap(),
        "single use"
    );
    tx.commit().await.unwrap();
}

async fn audit_chain_appends_and_verifies(db: &TestDatabase) {
    let s = &db.store;
    // Concurrent appenders must still form one unbroken chain.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = s.begin_write().await.unwrap();
            let e = NewAuditEntry::new(Actor::System, None, AuditEvent::Logout, json!({ "i": i }));
            audit::append(&mut tx, T0, &e).await.unwrap();
            tx.commit().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = audit::page(s, 0, 100).await.unwrap();
    assert_eq!(rows.len(), 8);
    assert_eq!(verify_chain(&rows), Ok(8));
    let recent = audit::recent(s, Some("logout"), 3).await.unwrap();
    assert_eq!(
        recent.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![8, 7, 6]
    );
}

async fn migrations_are_idempotent(db: &TestDatabase) {
    db.store.migrate().await.unwrap();
}

#[tokio::test]
async fn refuses_unknown_url_scheme() {
    let err = certhall_store::Store::connect("mysql://root@localhost/x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unsupported"), "{err}");
}
