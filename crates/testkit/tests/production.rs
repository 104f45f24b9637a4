//! Step 8 on SQLite and PostgreSQL: production onto a token (the agent's
//! software-token backend, in process: key pairs generated in the token,
//! requests signed by it), its faults (the agent gone mid-way, a full
//! token, two producers at once, a read-back that differs, a token of
//! another order), shipping through the demo courier with SF-format signed
//! pushes through the real route (a duplicate changes nothing, a forged one
//! is refused), a courier that fails, and 我的证书 with its downloads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use certhall_domain::OrderId;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use certhall_agent::soft::SoftTokens;
use certhall_agent::token::{Pin, TokenBackend, TokenError, TokenInfo};
use certhall_ca::name::Subject;
use certhall_ca::KeyAlgorithm;
use certhall_courier::Courier as _;
use certhall_domain::order::OrderState;
use certhall_domain::production::{AttemptState, FailedStage};
use certhall_domain::Refusal;
use certhall_service::counter::OperatorInfo;
use certhall_service::production::{StartedAttempt, TokenPresented};
use certhall_service::{RequestMeta, ServiceError};
use certhall_testkit::client::Client;
use certhall_testkit::fixtures::{self, paid_order, producer};
use certhall_testkit::TestApp;
use serde_json::Value;

fn m() -> RequestMeta {
    RequestMeta::default()
}

fn refusal(e: ServiceError) -> Refusal {
    e.refusal()
        .cloned()
        .unwrap_or_else(|| panic!("not a refusal: {e}"))
}

/// The producer's desk: a directory of software tokens (the agent's own
/// backend, with a fast key derivation for tests).
struct Desk {
    _dir: tempfile::TempDir,
    tokens: Arc<SoftTokens>,
}

impl Desk {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Arc::new(SoftTokens::open(dir.path()).unwrap().with_test_kdf());
        Self { _dir: dir, tokens }
    }

    fn blank(&self) -> TokenInfo {
        self.tokens.create_blank_token().unwrap()
    }
}

fn algorithm(kind: &str) -> KeyAlgorithm {
    match kind {
        "sm2" => KeyAlgorithm::Sm2,
        "p256" => KeyAlgorithm::EcP256,
        _ => KeyAlgorithm::Rsa(2048),
    }
}

/// What the page does between CertHall's calls, done with the token
/// backend in process.
struct Run {
    started: StartedAttempt,
    serial: String,
    key_id: Vec<u8>,
}

/// Stages 1–3: start, initialise the blank token, generate the key in it.
async fn start_and_keygen(
    app: &TestApp,
    desk: &Desk,
    who: &OperatorInfo,
    order: i64,
    token: &TokenInfo,
) -> Run {
    let s = &app.services;
    let started = s
        .production_start(
            who,
            OrderId(order),
            &TokenPresented {
                serial: token.serial.clone(),
                initialized: token.initialized,
            },
            &m(),
        )
        .await
        .unwrap();
    let pin = Pin::new(started.pin.clone());
    let mut serial = token.serial.clone();
    if started.needs_init {
        let so = Pin::new(started.so_pin.clone().unwrap());
        let now = desk
            .tokens
            .init_token(&serial, &started.attempt.token_label, &so, &pin)
            .unwrap();
        serial = now.serial;
        s.production_token_initialized(who, started.attempt.id, &serial, &m())
            .await
            .unwrap();
    }
    let key = desk
        .tokens
        .generate_key(
            &serial,
            &pin,
            algorithm(started.attempt.key_kind.as_str()),
            "签名密钥",
        )
        .unwrap();
    Run {
        started,
        serial,
        key_id: key.key_id,
    }
}

/// The request the token signs, with a subject CertHall must ignore.
fn csr(desk: &Desk, run: &Run) -> Vec<u8> {
    let key = desk
        .tokens
        .keys(&run.serial)
        .unwrap()
        .into_iter()
        .find(|k| k.key_id == run.key_id)
        .unwrap();
    let pin = Pin::new(run.started.pin.clone());
    let der = certhall_agent::csr::build(
        &Subject::parse("C=US,O=Mallory Inc,CN=Mallory").unwrap(),
        key.algorithm,
        &key.public_key,
        |tbs| desk.tokens.sign(&run.serial, &pin, &run.key_id, tbs),
    )
    .unwrap();
    certhall_agent::csr::to_pem(&der).unwrap().into_bytes()
}

/// Stages 4–6: issue, write, read back, confirm.
async fn finish(
    app: &TestApp,
    desk: &Desk,
    who: &OperatorInfo,
    run: &Run,
) -> Result<(), ServiceError> {
    let s = &app.services;
    let issued = s
        .production_csr(
            who,
            run.started.attempt.id,
            &csr(desk, run),
            &hex::encode(&run.key_id),
            &m(),
        )
        .await?;
    let cert = pem_der(&issued.certificate_pem);
    let chain: Vec<Vec<u8>> = issued.chain_pem.iter().map(|p| pem_der(p)).collect();
    let pin = Pin::new(run.started.pin.clone());
    desk.tokens
        .store_certificate(&run.serial, &pin, &run.key_id, &cert, &chain)
        .unwrap();
    let read_back = desk
        .tokens
        .keys(&run.serial)
        .unwrap()
        .into_iter()
        .find(|k| k.key_id == run.key_id)
        .and_then(|k| k.certificate)
        .unwrap();
    s.production_written(who, run.started.attempt.id, &read_back, &m())
        .await?;
    Ok(())
}

fn pem_der(pem: &str) -> Vec<u8> {
    let (_, der) = der_pem(pem);
    der
}

fn der_pem(pem: &str) -> (String, Vec<u8>) {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    (
        "CERTIFICATE".into(),
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap(),
    )
}

async fn audit_events(app: &TestApp, event: &str) -> Vec<Value> {
    certhall_store::audit::recent(&app.db.store, Some(event), 200)
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

async fn stock_on_hand(app: &TestApp) -> i64 {
    certhall_store::key_models::stock(&app.db.store, "ukey-standard")
        .await
        .unwrap()
        .on_hand
        .iter()
        .map(|(_, n)| n)
        .sum()
}

/// The PIN in the latest SMS to the applicant's phone.
async fn pin_sms(app: &TestApp, phone: &str) -> String {
    let sent = certhall_store::sms::outbox_recent(&app.db.store, Some(phone), 5)
        .await
        .unwrap();
    let body = sent
        .iter()
        .find(|e| e.body.contains("PIN"))
        .map(|e| e.body.clone())
        .unwrap_or_else(|| panic!("no PIN SMS to {phone}: {sent:?}"));
    let at = body.find("PIN 码为").unwrap() + "PIN 码为".len();
    body[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_becomes_a_key_with_the_certificate_from_the_order() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let s = &app.services;
        let phone = "13600000801";
        let (me, order) = paid_order(&app, phone, "zzggzy").await;
        let who = producer(&app, "13500000801").await;
        let desk = Desk::new();
        let before = stock_on_hand(&app).await;

        // The desk lists it, with what to make.
        let queue = s.production_queue(&who).await.unwrap();
        let item = queue.iter().find(|i| i.order.id == order.id).unwrap();
        assert_eq!(
            item.facts.key_kind.as_str(),
            "sm2",
            "{be}: 国密 application"
        );

        let token = desk.blank();
        let run = start_and_keygen(&app, &desk, &who, order.id.0, &token).await;
        assert!(run.started.needs_init);
        assert_eq!(run.started.pin.len(), 6);
        assert!(s.order_of(me, order.id).await.unwrap().state == OrderState::InProduction);
        finish(&app, &desk, &who, &run).await.unwrap();

        let order = s.order_of(me, order.id).await.unwrap();
        assert_eq!(order.state, OrderState::Produced, "{be}");
        // The certificate: from the order, not from the request.
        let mine = s.my_certificates(me).await.unwrap();
        assert_eq!(mine.len(), 1, "{be}");
        let cert = &mine[0].certificate;
        assert!(cert.subject.contains("O=枣庄"), "{be}: {}", cert.subject);
        assert!(!cert.subject.contains("Mallory"), "{be}: {}", cert.subject);
        assert!(cert.subject.contains("OU=李四"), "{be}: {}", cert.subject);
        assert_eq!(mine[0].ukey.as_ref().unwrap().token_serial, run.serial);
        // The PIN reached the applicant and opens the token; the token's
        // label names the order.
        let pin = pin_sms(&app, phone).await;
        assert_eq!(pin, run.started.pin, "{be}");
        desk.tokens.verify_pin(&run.serial, &Pin::new(pin)).unwrap();
        let info = desk
            .tokens
            .tokens()
            .unwrap()
            .into_iter()
            .find(|t| t.serial == run.serial)
            .unwrap();
        assert!(
            info.label.ends_with(&format!("-{}", order.id)),
            "{}",
            info.label
        );
        // The SO PIN is sealed with the deployment's secret and unblocks
        // the token (for online unlock later).
        let ukey = certhall_store::production::ukey_of_order(&app.db.store, order.id.0)
            .await
            .unwrap()
            .unwrap();
        let so = s.secret.open("token-so-pin", &ukey.so_pin_sealed).unwrap();
        desk.tokens
            .unblock_pin(
                &run.serial,
                &Pin::new(String::from_utf8(so).unwrap()),
                &Pin::new("654321"),
            )
            .unwrap();
        // One unit left stock; the reservation is released; the user PIN is
        // no longer kept.
        assert_eq!(stock_on_hand(&app).await, before - 1, "{be}");
        let checkout = certhall_store::checkouts::get(&app.db.store, order.id.0)
            .await
            .unwrap()
            .unwrap();
        assert!(!checkout.reserved);
        let attempts = certhall_store::production::of_order(&app.db.store, order.id.0)
            .await
            .unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].state, AttemptState::Completed);
        assert!(attempts[0].pin_sealed.is_empty(), "the user PIN is wiped");
        // Audited: each stage, the key, the stock move.
        let stages: Vec<String> = audit_events(&app, "production.attempt")
            .await
            .iter()
            .filter(|e| e["order"] == order.id.0)
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect();
        for want in ["started", "token_initialized", "issued"] {
            assert!(stages.iter().any(|s| s == want), "{be}: {stages:?}");
        }
        assert_eq!(audit_events(&app, "production.key_produced").await.len(), 1);
        // The applicant was told.
        let msgs = certhall_store::messages::list(&app.db.store, me, 20, 0)
            .await
            .unwrap();
        assert!(msgs.iter().any(|m| m.title.starts_with("已制证")), "{be}");
        // A second production of the same order is refused.
        let again = s
            .production_start(
                &who,
                order.id,
                &TokenPresented {
                    serial: desk.blank().serial,
                    initialized: false,
                },
                &m(),
            )
            .await
            .unwrap_err();
        assert_eq!(refusal(again).code(), "order_state_conflict");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_leave_the_order_in_production_and_no_certificate_behind() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let s = &app.services;
        let (me, order) = paid_order(&app, "13600000802", "sdzfcg").await;
        let who = producer(&app, "13500000802").await;
        let other = producer(&app, "13500000803").await;
        let desk = Desk::new();

        // Not a producer: refused.
        let reviewer = fixtures::operator_named(&app, "13500000804").await;
        let e = s
            .production_start(
                &reviewer,
                order.id,
                &TokenPresented {
                    serial: desk.blank().serial,
                    initialized: false,
                },
                &m(),
            )
            .await
            .unwrap_err();
        assert_eq!(refusal(e).code(), "not_producer");

        // Two producers at the same moment: exactly one attempt.
        let (t1, t2) = (desk.blank(), desk.blank());
        let p1 = TokenPresented {
            serial: t1.serial.clone(),
            initialized: false,
        };
        let p2 = TokenPresented {
            serial: t2.serial.clone(),
            initialized: false,
        };
        let meta = m();
        let (a, b) = tokio::join!(
            s.production_start(&who, order.id, &p1, &meta),
            s.production_start(&other, order.id, &p2, &meta),
        );
        let oks = [a.is_ok(), b.is_ok()].iter().filter(|x| **x).count();
        assert_eq!(oks, 1, "{be}: exactly one producer wins");
        let loser = if a.is_ok() { b } else { a };
        assert_eq!(refusal(loser.unwrap_err()).code(), "production_busy");
        let winner_is_who = certhall_store::production::of_order(&app.db.store, order.id.0)
            .await
            .unwrap()[0]
            .operator_id
            == who.id;
        let (win, lose) = if winner_is_who {
            (&who, &other)
        } else {
            (&other, &who)
        };
        let open = certhall_store::production::of_order(&app.db.store, order.id.0)
            .await
            .unwrap()
            .remove(0);
        // The loser cannot touch the winner's attempt.
        let e = s
            .production_failed(lose, open.id, FailedStage::Init, "x", &m())
            .await
            .unwrap_err();
        assert_eq!(refusal(e).code(), "not_found");
        // The winner's page went away before initialising: report it.
        s.production_failed(win, open.id, FailedStage::Init, "证书助手无响应", &m())
            .await
            .unwrap();

        // The agent disappears after the certificate was issued (never
        // written): the page reports it; the certificate is revoked.
        let token = desk.blank();
        let run = start_and_keygen(&app, &desk, &who, order.id.0, &token).await;
        let issued = s
            .production_csr(
                &who,
                run.started.attempt.id,
                &csr(&desk, &run),
                &hex::encode(&run.key_id),
                &m(),
            )
            .await
            .unwrap();
        let failed = s
            .production_failed(
                &who,
                run.started.attempt.id,
                FailedStage::Write,
                "未检测到证书助手",
                &m(),
            )
            .await
            .unwrap();
        assert_eq!(failed.state, AttemptState::Failed);
        let c = s.ca_certificate(&issued.serial).await.unwrap();
        assert_eq!(c.revocation.unwrap().reason, "cessationOfOperation", "{be}");
        assert_eq!(
            s.order_of(me, order.id).await.unwrap().state,
            OrderState::InProduction
        );
        // Closed is closed.
        let e = s
            .production_written(&who, run.started.attempt.id, &c.der, &m())
            .await
            .unwrap_err();
        assert_eq!(refusal(e).code(), "production_attempt_closed");

        // The same token again (initialised by this order): its PINs are
        // reused, no initialisation; a read-back that differs fails the
        // attempt and revokes the certificate.
        let again = desk
            .tokens
            .tokens()
            .unwrap()
            .into_iter()
            .find(|t| t.serial == run.serial)
            .unwrap();
        assert!(again.initialized);
        let run2 = start_and_keygen(&app, &desk, &who, order.id.0, &again).await;
        assert!(!run2.started.needs_init, "{be}");
        assert_eq!(run2.started.pin, run.started.pin, "same token, same PIN");
        let issued2 = s
            .production_csr(
                &who,
                run2.started.attempt.id,
                &csr(&desk, &run2),
                &hex::encode(&run2.key_id),
                &m(),
            )
            .await
            .unwrap();
        let e = s
            .production_written(&who, run2.started.attempt.id, b"not the certificate", &m())
            .await
            .unwrap_err();
        assert_eq!(refusal(e).code(), "read_back_mismatch");
        assert!(s
            .ca_certificate(&issued2.serial)
            .await
            .unwrap()
            .revocation
            .is_some());

        // A request whose key is not the application's kind is refused
        // before anything is issued.
        let run3 = start_and_keygen(&app, &desk, &who, order.id.0, &again).await;
        let pin = Pin::new(run3.started.pin.clone());
        let rsa = desk
            .tokens
            .generate_key(&run3.serial, &pin, KeyAlgorithm::Rsa(2048), "错的密钥")
            .unwrap();
        let wrong = Run {
            started: run3.started.clone(),
            serial: run3.serial.clone(),
            key_id: rsa.key_id,
        };
        let e = s
            .production_csr(
                &who,
                run3.started.attempt.id,
                &csr(&desk, &wrong),
                &hex::encode(&wrong.key_id),
                &m(),
            )
            .await
            .unwrap_err();
        assert_eq!(refusal(e).code(), "wrong_key_algorithm");

        // Nobody finishes it: 15 minutes later the job abandons it.
        let issued3 = s
            .production_csr(
                &who,
                run3.started.attempt.id,
                &csr(&desk, &run3),
                &hex::encode(&run3.key_id),
                &m(),
            )
            .await
            .unwrap();
        app.clock.advance(Duration::from_secs(16 * 60));
        let sweep = s.sweep_production().await.unwrap();
        assert_eq!(sweep.abandoned, 1, "{be}");
        assert!(s
            .ca_certificate(&issued3.serial)
            .await
            .unwrap()
            .revocation
            .is_some());
        let attempts = certhall_store::production::of_order(&app.db.store, order.id.0)
            .await
            .unwrap();
        assert_eq!(attempts.last().unwrap().state, AttemptState::Abandoned);

        // The order's token has filled up with the keys of failed
        // attempts (pages that died before deleting them): the key cannot
        // be made, the page reports it, nothing is issued.
        let pin = Pin::new(run.started.pin.clone());
        let mut i = 0;
        loop {
            match desk.tokens.generate_key(
                &run.serial,
                &pin,
                KeyAlgorithm::EcP256,
                &format!("留下的密钥{i}"),
            ) {
                Ok(_) => i += 1,
                Err(TokenError::TokenFull) => break,
                Err(e) => panic!("{e}"),
            }
        }
        let issued_before = certhall_store::ca::certificates_of_account(&app.db.store, me)
            .await
            .unwrap()
            .len();
        let full_token = TokenPresented {
            serial: run.serial.clone(),
            initialized: true,
        };
        let started = s
            .production_start(&who, order.id, &full_token, &m())
            .await
            .unwrap();
        let keygen = desk
            .tokens
            .generate_key(&run.serial, &pin, KeyAlgorithm::EcP256, "签名密钥");
        assert_eq!(keygen.unwrap_err(), TokenError::TokenFull);
        let failed = s
            .production_failed(
                &who,
                started.attempt.id,
                FailedStage::Keygen,
                "UKey 存储空间已满",
                &m(),
            )
            .await
            .unwrap();
        assert_eq!(
            failed.failure.as_deref(),
            Some("在 UKey 内生成密钥：UKey 存储空间已满")
        );
        assert_eq!(
            certhall_store::ca::certificates_of_account(&app.db.store, me)
                .await
                .unwrap()
                .len(),
            issued_before,
            "{be}: nothing issued for a full token"
        );
        // A token CertHall did not initialise is refused outright.
        let foreign = desk
            .tokens
            .create_token("别人的UKey", &Pin::new("111222"), &Pin::new("11112222"))
            .unwrap();
        let e = s
            .production_start(
                &who,
                order.id,
                &TokenPresented {
                    serial: foreign.serial,
                    initialized: true,
                },
                &m(),
            )
            .await
            .unwrap_err();
        assert_eq!(refusal(e).code(), "token_not_blank");
        // Every attempt's end is in the audit log, with its stage.
        let ends: Vec<(String, String)> = audit_events(&app, "production.attempt")
            .await
            .iter()
            .filter(|e| e["order"] == order.id.0 && e["stage"].is_string())
            .map(|e| {
                (
                    e["event"].as_str().unwrap().to_owned(),
                    e["stage"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for want in [
            ("failed", "init"),
            ("failed", "write"),
            ("failed", "read_back"),
            ("abandoned", "write"),
            ("failed", "keygen"),
        ] {
            assert!(
                ends.iter().any(|(e, s)| e == want.0 && s == want.1),
                "{be}: {want:?} not audited: {ends:?}"
            );
        }

        // Through all this: no certificate of the order is left unrevoked,
        // the order is still in production, stock untouched, and the
        // production job finds nothing more to do.
        for c in certhall_store::ca::certificates_of_account(&app.db.store, me)
            .await
            .unwrap()
        {
            assert!(c.revocation.is_some(), "{be}: {} left valid", c.serial);
        }
        assert_eq!(
            s.order_of(me, order.id).await.unwrap().state,
            OrderState::InProduction
        );
        assert_eq!(s.sweep_production().await.unwrap().revoked, 0);
        assert!(
            s.my_certificates(me).await.unwrap().is_empty(),
            "{be}: failed attempts are not listed"
        );

        // The producer's page lost the answer to 开始制证: starting again
        // ends their own open attempt and opens a new one.
        let lost = s
            .production_start(
                &who,
                order.id,
                &TokenPresented {
                    serial: desk.blank().serial,
                    initialized: false,
                },
                &m(),
            )
            .await
            .unwrap();
        // Finally a good key on a fresh token.
        let run4 = start_and_keygen(&app, &desk, &who, order.id.0, &desk.blank()).await;
        let replaced = certhall_store::production::of_order(&app.db.store, order.id.0)
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.id == lost.attempt.id)
            .unwrap();
        assert_eq!(replaced.state, AttemptState::Failed, "{be}");
        assert!(replaced.failure.unwrap().contains("重新开始"));
        finish(&app, &desk, &who, &run4).await.unwrap();
        assert_eq!(
            s.order_of(me, order.id).await.unwrap().state,
            OrderState::Produced,
            "{be}"
        );
        // No PIN of the order is kept on any attempt any more.
        for a in certhall_store::production::of_order(&app.db.store, order.id.0)
            .await
            .unwrap()
        {
            assert!(
                a.pin_sealed.is_empty() && a.so_pin_sealed.is_empty(),
                "{be}: attempt {}",
                a.id
            );
        }
        // The token of another order is refused for this one.
        let (_, order_b) = paid_order(&app, "13600000805", "sdzfcg").await;
        let used = desk
            .tokens
            .tokens()
            .unwrap()
            .into_iter()
            .find(|t| t.serial == run4.serial)
            .unwrap();
        let e = s
            .production_start(
                &who,
                order_b.id,
                &TokenPresented {
                    serial: used.serial,
                    initialized: true,
                },
                &m(),
            )
            .await
            .unwrap_err();
        assert_eq!(refusal(e), Refusal::TokenInUse(order.id.0));
    }
}

/// A produced order (P-256) of `phone`.
async fn produced(
    app: &TestApp,
    desk: &Desk,
    phone: &str,
    producer_phone: &str,
) -> (certhall_domain::AccountId, i64, OperatorInfo) {
    let (me, order) = paid_order(app, phone, "sdzfcg").await;
    let who = producer(app, producer_phone).await;
    let run = start_and_keygen(app, desk, &who, order.id.0, &desk.blank()).await;
    finish(app, desk, &who, &run).await.unwrap();
    (me, order.id.0, who)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_by_the_demo_courier_and_signed_for_through_signed_pushes() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let s = &app.services;
        let desk = Desk::new();
        let (me, order, who) = produced(&app, &desk, "13600000811", "13500000811").await;

        let shipped = s.ship_order(&who, OrderId(order), &m()).await.unwrap();
        assert_eq!(shipped.state, OrderState::Shipped, "{be}");
        let views = s.shipment_views(OrderId(order)).await.unwrap();
        let waybill = views[0].shipment.waybill_no.clone().unwrap();
        assert!(waybill.starts_with("SF"), "{waybill}");
        let msgs = certhall_store::messages::list(&app.db.store, me, 20, 0)
            .await
            .unwrap();
        assert!(
            msgs.iter().any(|m| m.body.contains(&waybill)),
            "{be}: the applicant has the waybill"
        );

        // The demo courier pushes each node, signed, to the real route.
        for _ in 0..3 {
            assert_eq!(
                s.demo_courier_advance(views[0].shipment.id).await.unwrap(),
                200
            );
        }
        assert_eq!(
            s.order_of(me, OrderId(order)).await.unwrap().state,
            OrderState::Shipped
        );
        assert_eq!(
            s.demo_courier_advance(views[0].shipment.id).await.unwrap(),
            200
        );
        let delivered = s.order_of(me, OrderId(order)).await.unwrap();
        assert_eq!(delivered.state, OrderState::Delivered, "{be}");
        let routes = &s.shipment_views(OrderId(order)).await.unwrap()[0].routes;
        let stages: Vec<&str> = routes.iter().map(|r| r.stage.as_str()).collect();
        assert_eq!(
            stages,
            ["picked_up", "in_transit", "out_for_delivery", "signed_for"],
            "{be}"
        );
        let msgs = certhall_store::messages::list(&app.db.store, me, 20, 0)
            .await
            .unwrap();
        assert!(
            msgs.iter()
                .any(|m| m.body.contains("《CA数字证书自助激活流程》")),
            "{be}"
        );

        // The signed-for push again (a courier retry): accepted, nothing
        // changes.
        let last = certhall_store::shipments::routes(&app.db.store, views[0].shipment.id)
            .await
            .unwrap();
        let event = {
            let r = last.last().unwrap();
            let t = time::OffsetDateTime::from_unix_timestamp(r.accept_time.millis() / 1000)
                .unwrap()
                .to_offset(certhall_courier::route::CHINA_TIME);
            let mut e = certhall_courier::RouteEvent::new(
                &waybill,
                "80",
                time::PrimitiveDateTime::new(t.date(), t.time()),
            );
            e.remark = "快件已签收（重推）".into();
            e
        };
        let (ct, body) = s
            .shipping
            .courier
            .demo_push(&[event], s.clock.now().millis())
            .unwrap();
        let mut c = Client::new(&app, "58.40.1.1");
        let reply = c
            .send_bytes(
                Method::POST,
                certhall_web::paths::COURIER_PUSH,
                Some(ct),
                body.into_bytes(),
                &[],
            )
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{be}: {}", reply.body);
        assert!(reply.body.contains("0000"), "{}", reply.body);
        assert_eq!(
            certhall_store::shipments::routes(&app.db.store, views[0].shipment.id)
                .await
                .unwrap()
                .len(),
            4,
            "{be}: the duplicate is not recorded twice"
        );
        let pushes = audit_events(&app, "shipping.push").await;
        assert_eq!(pushes[0]["outcome"], "duplicate", "{be}");

        // A push with a wrong digest (signed with another key) is refused
        // and recorded, and nothing in it is believed.
        let forged_courier =
            certhall_courier::DemoCourier::new("CERTHALL_DEMO", "another check word");
        let mut e = certhall_courier::RouteEvent::new(
            &waybill,
            "33",
            time::macros::datetime!(2026-12-06 10:00:00),
        );
        e.remark = "派件异常".into();
        let (ct, body) = forged_courier
            .demo_push(&[e], s.clock.now().millis())
            .unwrap();
        let reply = c
            .send_bytes(
                Method::POST,
                certhall_web::paths::COURIER_PUSH,
                Some(ct),
                body.into_bytes(),
                &[],
            )
            .await;
        assert_eq!(reply.status.as_u16(), 400, "{be}");
        assert_eq!(
            certhall_store::shipments::routes(&app.db.store, views[0].shipment.id)
                .await
                .unwrap()
                .len(),
            4
        );
        let pushes = audit_events(&app, "shipping.push").await;
        assert_eq!(pushes[0]["outcome"], "refused", "{be}");
        assert_eq!(pushes[0]["reason"], "bad_digest", "{be}");
        assert_eq!(
            s.order_of(me, OrderId(order)).await.unwrap().state,
            OrderState::Delivered
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_courier_that_fails_leaves_the_order_produced_and_the_retry_gets_a_new_number() {
    for mut app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let desk = Desk::new();
        let (me, order, who) = produced(&app, &desk, "13600000821", "13500000821").await;

        // The real SF adapter, pointed at a port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let sf = certhall_courier::SfExpress::new(
            certhall_courier::SfConfig {
                endpoint: format!("http://127.0.0.1:{port}/std/service"),
                ..certhall_courier::SfConfig::new("CERTHALL_TEST", "check-word-for-tests")
            },
            app.services.clock.clone(),
        )
        .unwrap();
        let demo = app.services.shipping.clone();
        let mut failing = (*demo).clone();
        failing.courier = Arc::new(sf);
        app.services.shipping = Arc::new(failing);
        let s = &app.services;

        // SF cannot be reached: whether it took the order is unknown, so
        // the shipment stays `requesting` and is asked again with the same
        // number (SF answers a repeated orderId with the first waybill).
        let e = s.ship_order(&who, OrderId(order), &m()).await.unwrap_err();
        assert_eq!(refusal(e).code(), "courier_unsure", "{be}");
        assert_eq!(
            s.order_of(me, OrderId(order)).await.unwrap().state,
            OrderState::Produced
        );
        let views = s.shipment_views(OrderId(order)).await.unwrap();
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].shipment.state, "requesting");
        let first_number = views[0].shipment.courier_order_id.clone();
        let audit = audit_events(&app, "shipping.shipment_changed").await;
        assert_eq!(audit[0]["event"], "unsure", "{be}");
        assert_eq!(audit[0]["code"], "courier_unreachable", "{be}");
        assert_eq!(audit[1]["event"], "requested", "{be}");

        // A courier that refuses outright (no [courier] configured): the
        // shipment fails, the order stays 已制证.
        let mut refusing = (*demo).clone();
        refusing.courier = Arc::new(certhall_service::shipping::Unconfigured);
        app.services.shipping = Arc::new(refusing);
        let s = &app.services;
        let e = s.ship_order(&who, OrderId(order), &m()).await.unwrap_err();
        assert_eq!(refusal(e).code(), "courier_failed", "{be}");
        let views = s.shipment_views(OrderId(order)).await.unwrap();
        assert_eq!(views.len(), 1, "{be}: the same request, asked again");
        assert_eq!(views[0].shipment.courier_order_id, first_number);
        assert_eq!(views[0].shipment.state, "failed");
        assert!(views[0]
            .shipment
            .error
            .as_deref()
            .unwrap()
            .starts_with("courier_config"));

        // The courier is back: a new courier order number, shipped.
        app.services.shipping = demo;
        let s = &app.services;
        s.ship_order(&who, OrderId(order), &m()).await.unwrap();
        let views = s.shipment_views(OrderId(order)).await.unwrap();
        assert_eq!(views.len(), 2);
        assert_ne!(views[1].shipment.courier_order_id, first_number);
        assert_eq!(views[1].shipment.state, "shipped");
        // Not picked up yet: the producer may cancel and ship again.
        let back = s.cancel_shipment(&who, OrderId(order), &m()).await.unwrap();
        assert_eq!(back.state, OrderState::Produced, "{be}");
        // The applicant was told once that the key is made, not again.
        let made = certhall_store::messages::list(&app.db.store, me, 50, 0)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.body.contains("已制作完成"))
            .count();
        assert_eq!(made, 1, "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_certificates_lists_and_downloads_only_mine() {
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let desk = Desk::new();
        let phone = "13600000831";
        let (_me, _order, _who) = produced(&app, &desk, phone, "13500000831").await;

        let mut c = Client::new(&app, "10.9.0.1");
        c.page_login(phone).await;
        let page = c.get("/certificates").await;
        assert_eq!(page.status.as_u16(), 200, "{be}");
        assert!(page.body.contains("有效"), "{be}");
        let serial = {
            let at = page.body.find("data-serial=\"").unwrap() + "data-serial=\"".len();
            page.body[at..].split('"').next().unwrap().to_owned()
        };
        let detail = c.get(&format!("/certificates/{serial}")).await;
        assert!(detail.body.contains("USCC="), "{be}");
        let pem = c.get(&format!("/certificates/{serial}/download/pem")).await;
        assert!(pem.body.starts_with("-----BEGIN CERTIFICATE-----"), "{be}");
        let chain = c
            .get(&format!("/certificates/{serial}/download/chain"))
            .await;
        assert_eq!(chain.body.matches("BEGIN CERTIFICATE").count(), 2, "{be}");
        let der = c.get(&format!("/certificates/{serial}/download/der")).await;
        assert_eq!(der.status.as_u16(), 200);
        let json = c.get("/api/v1/certificates").await.json();
        assert_eq!(json["certificates"][0]["serial"], serial.as_str());
        assert_eq!(json["certificates"][0]["status"], "valid");
        assert!(!audit_events(&app, "certificate.downloaded")
            .await
            .is_empty());

        // Another applicant sees none of it.
        let mut other = Client::new(&app, "10.9.0.2");
        other.page_login("13600000832").await;
        assert_eq!(
            other
                .get(&format!("/certificates/{serial}"))
                .await
                .status
                .as_u16(),
            404,
            "{be}"
        );
        assert_eq!(
            other
                .get(&format!("/certificates/{serial}/download/pem"))
                .await
                .status
                .as_u16(),
            404
        );
        let none = other.get("/certificates").await;
        assert!(none.body.contains("no-certificates"), "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_key_is_replaced_by_a_prefilled_order_and_its_certificate_revoked() {
    use certhall_domain::order::{OrderKind, Step};
    for app in TestApp::each().await {
        let be = app.backend();
        let _server = app.serve().await;
        let s = &app.services;
        let desk = Desk::new();
        let phone = "13600000851";
        let (me, original, _) = produced(&app, &desk, phone, "13500000851").await;
        let serial = s.my_certificates(me).await.unwrap()[0]
            .certificate
            .serial
            .clone();
        let path = format!("/certificates/{serial}/replace");

        let mut c = Client::new(&app, "10.23.0.1");
        c.page_login(phone).await;
        assert!(c
            .get(&format!("/certificates/{serial}"))
            .await
            .body
            .contains(&path));
        let page = c.get(&path).await;
        assert_eq!(page.status.as_u16(), 200, "{be}");
        assert!(page.body.contains("UKey 丢失"), "{be}");
        let csrf = page.csrf();
        app.clock.advance(Duration::from_secs(61));
        let r = c
            .post_form(
                &path,
                &[("_csrf", &csrf), ("action", "code"), ("reason", "lost")],
            )
            .await;
        assert!(r.body.contains("验证码已发送至"), "{be}: {}", r.body);
        let code = app.latest_code(phone).await.unwrap();
        // Without the tick: refused, nothing changed.
        let r = c
            .post_form(
                &path,
                &[
                    ("_csrf", &csrf),
                    ("action", "replace"),
                    ("reason", "lost"),
                    ("code", &code),
                ],
            )
            .await;
        assert!(r.body.contains("请勾选"), "{be}");
        assert!(s
            .ca_certificate(&serial)
            .await
            .unwrap()
            .revocation
            .is_none());
        let r = c
            .post_form(
                &path,
                &[
                    ("_csrf", &csrf),
                    ("action", "replace"),
                    ("reason", "lost"),
                    ("code", &code),
                    ("understood", "1"),
                ],
            )
            .await;
        assert_eq!(r.status.as_u16(), 303, "{be}: {}", r.body);
        let new_id: i64 = r.location().trim_start_matches("/orders/").parse().unwrap();

        // The old certificate is revoked as keyCompromise, at once.
        let rev = s.ca_certificate(&serial).await.unwrap().revocation.unwrap();
        assert_eq!(rev.reason, "keyCompromise", "{be}");
        // The new order: a 补办, prefilled from the order that made the key.
        let order = s.order_of(me, OrderId(new_id)).await.unwrap();
        assert_eq!(order.kind, OrderKind::Replacement, "{be}");
        for step in [Step::Identity, Step::Application, Step::Enterprise] {
            let was = certhall_store::orders::step_data(&app.db.store, OrderId(original), step)
                .await
                .unwrap();
            let now = certhall_store::orders::step_data(&app.db.store, OrderId(new_id), step)
                .await
                .unwrap();
            assert!(was.is_some() && was == now, "{be}: {step:?} prefilled");
        }
        assert_eq!(
            certhall_store::orders::replaced_by(&app.db.store, OrderId(new_id))
                .await
                .unwrap()
                .as_deref(),
            Some(serial.as_str())
        );
        // The order opens at step 1, with what was typed for the old key.
        let page = c.get(&format!("/orders/{new_id}")).await;
        assert_eq!(page.status.as_u16(), 303, "{be}");
        let step = c.get(page.location()).await;
        assert!(step.body.contains("李四"), "{be}: {}", step.body);
        let titles: Vec<String> = certhall_store::messages::list(&app.db.store, me, 20, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.title)
            .collect();
        assert!(titles.contains(&"补办订单已创建".to_owned()), "{be}");

        // A second 补办 of the same certificate finds the first.
        app.clock.advance(Duration::from_secs(61));
        c.post_form(&path, &[("_csrf", &csrf), ("action", "code")])
            .await;
        let code = app.latest_code(phone).await.unwrap();
        let r = c
            .post_form(
                &path,
                &[
                    ("_csrf", &csrf),
                    ("action", "replace"),
                    ("reason", "broken"),
                    ("code", &code),
                    ("understood", "1"),
                ],
            )
            .await;
        assert!(
            r.body
                .contains(&format!("该证书已有补办订单（订单 {new_id}）")),
            "{be}: {}",
            r.body
        );
    }
}
