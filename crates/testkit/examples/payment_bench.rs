//! Benchmark of payment callbacks and the order page (issue 10). Run by
//! `scripts/bench-payment.sh`; results in `docs/benchmarks.md`. A
//! benchmark, not a test: it measures and prints markdown. It fails only
//! when the measurement is invalid (a callback not verified or not applied,
//! a duplicate that changed an order, a setup step that does not work).
//!
//! ```text
//! payment_bench callbacks [--n 2000] [--rounds 3] [--no-openssl]
//! payment_bench serve [--backend sqlite|postgres]
//! ```
//!
//! `callbacks` (run it as `taskset -c 0 target/release/examples/payment_bench
//! callbacks`: one core, a tokio current-thread runtime) measures, on
//! SQLite and — when `TEST_DATABASE_URL` is set — PostgreSQL, each round
//! on a fresh database with N orders waiting for payment (inserted with
//! the store functions) and N distinct WeChat Pay v3 callbacks signed by
//! the demo platform key:
//!
//! 1. verification only (`PaymentProvider::verify_callback`: RSA-SHA256
//!    over the headers and body, AES-256-GCM decryption, parsing), no
//!    database; and each of its parts alone;
//! 2. `Services::payment_callback` for each callback once: the raw row,
//!    verification, the compare-and-swap on the attempt, the order to
//!    paid, audit entries, the applicant's message, the counter's notice;
//! 3. the same N callbacks again: every stored outcome must be
//!    `duplicate` and no order or attempt may have changed.
//!
//! Alongside, `openssl speed -seconds 3 rsa2048` on the same core as a
//! reference for the cost of one RSA-2048 verification.
//!
//! `serve` starts the test app (the router of `certhall serve`,
//! `certhall_web::app`) on a multi-thread runtime like the binary's, brings
//! an order through the real flow to paid (wizard, counter approval,
//! step 6, the demo cashier's signed callback through the HTTP route), logs
//! its applicant in over HTTP like a browser, prints `URL`, `COOKIE`,
//! `METRICS`, `BYTES` and `EVENTS` lines, and serves until stdin closes or
//! a signal arrives, for wrk to load `GET /orders/{id}`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use certhall_domain::OrderId;
use std::io::Write as _;
use std::time::{Duration, Instant};

use certhall_domain::order::{OrderKind, OrderState};
use certhall_domain::payment::{AttemptState, Channel};
use certhall_domain::{Clock, Phone, Timestamp};
use certhall_payment::simulator::{SignedCallback, DEMO_APP_ID, DEMO_MCH_ID};
use certhall_payment::wechat::{
    decrypt_resource, signed_message, verify_signed, Notification, Transaction, WechatSettings,
};
use certhall_payment::{Callback, Notice, TradeState};
use certhall_service::RequestMeta;
use certhall_store::payments::{self, NewAttempt};
use certhall_testkit::{fixtures, TestApp, TEST_START};
use serde_json::json;

/// What every benchmark order costs (the standard key's application).
const AMOUNT_FEN: i64 = 38_000;

/// The address the callbacks come from (one of WeChat Pay's senders), as
/// the web route would pass it on.
const CALLBACK_IP: &str = "101.226.103.1";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn main() {
    let mode = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "callbacks".into());
    match mode.as_str() {
        "callbacks" => {
            let n: usize = arg("--n").map_or(2000, |v| v.parse().expect("--n takes a number"));
            let rounds: usize =
                arg("--rounds").map_or(3, |v| v.parse().expect("--rounds takes a number"));
            assert!(n > 0 && rounds > 0, "--n and --rounds must be positive");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(callbacks(n, rounds, !flag("--no-openssl")));
        }
        "serve" => {
            let backend = arg("--backend").unwrap_or_else(|| "sqlite".into());
            // Like `certhall serve`: tokio's multi-thread runtime, one
            // worker per core.
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(serve(&backend));
        }
        other => panic!("unknown mode {other:?}: callbacks or serve"),
    }
}

// --- CPU accounting ------------------------------------------------------------

/// user + system CPU of this process (all threads: SQLite's worker
/// threads too), in seconds. /proc counts in ticks of 1/100 s.
fn process_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Busy CPU seconds of the whole machine (all cores), from /proc/stat.
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: f64 = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| v.get(i).copied().unwrap_or(0.0))
        .sum();
    busy / 100.0
}

/// user + system CPU of every process named `postgres` (the database
/// server's backends), in seconds. Backends that exit meanwhile are
/// missed; the pool keeps this process's connections open.
fn postgres_cpu() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat.contains("(postgres)"))
        .map(|stat| {
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            (ticks(11) + ticks(12)) / 100.0
        })
        .sum()
}

/// Wall time, this process's CPU, the PostgreSQL server's, and everything
/// else the machine did.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    wall: f64,
    cpu: f64,
    db: f64,
    other: f64,
}

impl Span {
    fn start() -> (Instant, f64, f64, f64) {
        (
            Instant::now(),
            process_cpu(),
            postgres_cpu(),
            machine_busy(),
        )
    }

    fn end(s: (Instant, f64, f64, f64)) -> Self {
        let wall = s.0.elapsed().as_secs_f64();
        let cpu = process_cpu() - s.1;
        let db = (postgres_cpu() - s.2).max(0.0);
        let other = (machine_busy() - s.3 - cpu - db).max(0.0);
        Self {
            wall,
            cpu,
            db,
            other,
        }
    }
}

/// A measured loop over n callbacks: totals and per-call latencies.
#[derive(Debug, Clone)]
struct Run {
    n: usize,
    span: Span,
    each: Vec<Duration>,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.n as f64 / self.span.wall
    }

    fn us_each(&self) -> f64 {
        self.span.wall / self.n as f64 * 1e6
    }

    fn pct(&self, q: f64) -> f64 {
        let mut s = self.each.clone();
        s.sort();
        if s.is_empty() {
            return 0.0;
        }
        s[((s.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The run whose rate is the median of the rounds.
fn median_run(runs: &[Run]) -> &Run {
    let mut idx: Vec<usize> = (0..runs.len()).collect();
    idx.sort_by(|&a, &b| runs[a].per_sec().total_cmp(&runs[b].per_sec()));
    &runs[idx[idx.len() / 2]]
}

// --- Callbacks -----------------------------------------------------------------

/// One signed callback, with its headers lower-cased as the web layer
/// passes them on.
struct Prepared {
    out_trade_no: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn out_trade_no(i: usize) -> String {
    format!("BENCH{i:010}")
}

/// N callbacks signed by the demo platform key at `now` (the test clock,
/// which the benchmark never moves), each for its own attempt.
fn sign_all(app: &TestApp, n: usize, now: Timestamp) -> Vec<Prepared> {
    let sim = app.services.payments.simulator().expect("demo simulator");
    (0..n)
        .map(|i| {
            let no = out_trade_no(i);
            let tx = json!({
                "appid": DEMO_APP_ID, "mchid": DEMO_MCH_ID,
                "out_trade_no": no,
                "transaction_id": format!("42000{i:023}"),
                "trade_type": "NATIVE", "trade_state": "SUCCESS", "trade_state_desc": "支付成功",
                "bank_type": "OTHERS", "success_time": "2026-11-25T09:05:00+08:00",
                "payer": { "openid": "oBench" },
                "amount": { "total": AMOUNT_FEN, "payer_total": AMOUNT_FEN, "currency": "CNY" },
            });
            let SignedCallback { headers, body, .. } = sim
                .sign_callback(
                    "unused",
                    "TRANSACTION.SUCCESS",
                    "支付成功",
                    "transaction",
                    tx.to_string().as_bytes(),
                    now,
                )
                .expect("sign callback");
            Prepared {
                out_trade_no: no,
                headers: headers
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect(),
                body: body.into_bytes(),
            }
        })
        .collect()
}

/// N accounts, each with an order waiting for payment (step 6 confirmed,
/// 380 元 owed) and a `paying` WeChat Pay attempt for the callback
/// `out_trade_no(i)`, in one transaction. Returns the order ids.
async fn seed(app: &TestApp, n: usize) -> Vec<OrderId> {
    let now = app.clock.now();
    let mut tx = app.db.store.begin_write().await.expect("begin");
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let phone = Phone::parse(&format!("135{i:08}")).expect("phone");
        let account = certhall_store::accounts::create(&mut tx, &phone, now)
            .await
            .expect("account");
        let order = certhall_store::orders::create(
            &mut tx,
            account,
            OrderKind::New,
            OrderState::AwaitingPayment,
            now,
        )
        .await
        .expect("order");
        certhall_store::orders::set_names(
            &mut tx,
            order.id,
            Some("枣庄市公共资源交易平台"),
            Some("枣庄市恒信建设工程有限公司"),
        )
        .await
        .expect("names");
        certhall_store::orders::set_amount(&mut tx, order.id, Some(AMOUNT_FEN))
            .await
            .expect("amount");
        // Step 6 as confirmed: what the order owes.
        certhall_store::checkouts::upsert(
            &mut tx,
            &certhall_store::checkouts::CheckoutRow {
                order_id: order.id.0,
                key_model: "ukey-standard".into(),
                key_model_name: "标准 UKey".into(),
                application_fen: 30_000,
                key_fen: 8_000,
                total_fen: AMOUNT_FEN,
                recipient: "李四".into(),
                phone: "13800138000".into(),
                division_code: 370402,
                division_text: "山东省 枣庄市 市中区".into(),
                street: "光明路88号3号楼501室".into(),
                invoice: None,
                reserved: false,
                updated_at: now,
            },
        )
        .await
        .expect("checkout");
        let no = out_trade_no(i);
        payments::insert_attempt(
            &mut tx,
            &NewAttempt {
                order_id: order.id.0,
                seq: 1,
                channel: Channel::Wechat,
                out_trade_no: &no,
                amount_fen: AMOUNT_FEN,
                description: "CertHall-单位数字证书新办",
                code_url: &format!("weixin://wxpay/bizpayurl?pr={i:07}"),
                created_at: now,
                expires_at: Timestamp::from_millis(now.millis() + 2 * 3_600_000),
            },
        )
        .await
        .expect("attempt");
        ids.push(order.id);
    }
    tx.commit().await.expect("commit");
    ids
}

/// (state, version) of each order and the state of its attempt.
async fn snapshot(
    app: &TestApp,
    orders: &[OrderId],
    cbs: &[Prepared],
) -> Vec<(String, i64, String)> {
    let mut out = Vec::with_capacity(orders.len());
    for (id, cb) in orders.iter().zip(cbs) {
        let o = certhall_store::orders::get(&app.db.store, *id)
            .await
            .expect("order")
            .expect("order exists");
        let a = payments::attempt_by_no(&app.db.store, &cb.out_trade_no)
            .await
            .expect("attempt")
            .expect("attempt exists");
        out.push((o.state.to_string(), o.version, a.state.as_str().to_owned()));
    }
    out
}

/// The outcomes of the newest n stored callbacks, and how many are not
/// `expected`.
async fn outcomes_not(app: &TestApp, n: usize, expected: &str) -> (usize, Vec<String>) {
    let rows = payments::recent_callbacks(&app.db.store, u32::try_from(n).expect("n"))
        .await
        .expect("callbacks");
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| r.outcome != expected)
        .map(|r| r.outcome.clone())
        .collect();
    (rows.len(), bad)
}

fn verify_all(app: &TestApp, cbs: &[Prepared], now: Timestamp) -> Run {
    let provider = app
        .services
        .payments
        .provider(Channel::Wechat)
        .expect("WeChat Pay provider")
        .clone();
    let mut each = Vec::with_capacity(cbs.len());
    let mut wrong = 0usize;
    let s = Span::start();
    for cb in cbs {
        let t = Instant::now();
        let notice = provider.verify_callback(
            &Callback {
                headers: &cb.headers,
                body: &cb.body,
            },
            now,
        );
        each.push(t.elapsed());
        match notice {
            Ok(Notice::Payment(p))
                if p.out_trade_no == cb.out_trade_no
                    && matches!(&p.state, TradeState::Paid(t) if t.amount_fen == AMOUNT_FEN) => {}
            _ => wrong += 1,
        }
    }
    let span = Span::end(s);
    assert_eq!(
        wrong, 0,
        "{wrong} callbacks did not verify to their payment"
    );
    Run {
        n: cbs.len(),
        span,
        each,
    }
}

/// The parts of verification, each alone over all callbacks: µs per
/// callback for (signature check, notification JSON, AES-GCM decryption,
/// transaction JSON, and — inside the signature check — `keys::verify`
/// alone: base64, SHA-256 and the RSA public-key operation).
fn verify_parts(settings: &WechatSettings, cbs: &[Prepared], now: Timestamp) -> [f64; 5] {
    let n = cbs.len() as f64;
    let header = |cb: &Prepared, name: &str| {
        cb.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let t = Instant::now();
    for cb in cbs {
        verify_signed(
            |name| header(cb, name),
            &cb.body,
            now,
            &settings.platform_keys,
        )
        .expect("signature");
    }
    let sig = t.elapsed().as_secs_f64() / n * 1e6;

    let signed: Vec<(Vec<u8>, String)> = cbs
        .iter()
        .map(|cb| {
            let h = |name: &str| header(cb, name).expect("header");
            (
                signed_message(&h("wechatpay-timestamp"), &h("wechatpay-nonce"), &cb.body),
                h("wechatpay-signature"),
            )
        })
        .collect();
    let key = &settings.platform_keys[0].key;
    let t = Instant::now();
    for (message, signature) in &signed {
        assert!(certhall_payment::keys::verify(key, message, signature));
    }
    let rsa = t.elapsed().as_secs_f64() / n * 1e6;

    let t = Instant::now();
    let parsed: Vec<Notification> = cbs
        .iter()
        .map(|cb| serde_json::from_slice(&cb.body).expect("notification"))
        .collect();
    let notification = t.elapsed().as_secs_f64() / n * 1e6;

    let t = Instant::now();
    let plain: Vec<Vec<u8>> = parsed
        .iter()
        .map(|p| decrypt_resource(&settings.api_v3_key, &p.resource).expect("decrypt"))
        .collect();
    let decrypt = t.elapsed().as_secs_f64() / n * 1e6;

    let t = Instant::now();
    for p in &plain {
        let tx: Transaction = serde_json::from_slice(p).expect("transaction");
        assert!(tx.mchid == settings.mch_id && tx.appid == settings.app_id);
        tx.state().expect("state");
    }
    let transaction = t.elapsed().as_secs_f64() / n * 1e6;
    [sig, notification, decrypt, transaction, rsa]
}

/// Every callback through `Services::payment_callback`, as if sent from
/// `ip` (the web route always knows it; without one the flood check is
/// skipped); each must be answered 200. The first is an untimed canary
/// whose stored outcome must be `expected`.
async fn apply_all(app: &TestApp, cbs: &[Prepared], ip: Option<&str>, expected: &str) -> Run {
    let meta = RequestMeta {
        ip: ip.map(str::to_owned),
        user_agent: Some("Mozilla/4.0".into()),
    };
    // The first callback is a canary, not timed: if the path does not
    // end as expected, stop here rather than measure something else.
    let (canary, cbs) = cbs.split_first().expect("callbacks");
    app.services
        .payment_callback(Channel::Wechat, &canary.headers, &canary.body, &meta)
        .await
        .expect("payment_callback");
    let (_, outcome) = outcomes_not(app, 1, expected).await;
    assert!(
        outcome.is_empty(),
        "the first callback ended {outcome:?}, expected {expected}: the benchmark's setup no longer \
         matches the payment code"
    );
    let mut each = Vec::with_capacity(cbs.len());
    let mut not_ok = 0usize;
    let s = Span::start();
    for cb in cbs {
        let t = Instant::now();
        let answer = app
            .services
            .payment_callback(Channel::Wechat, &cb.headers, &cb.body, &meta)
            .await
            .expect("payment_callback");
        each.push(t.elapsed());
        if answer.status != 200 {
            not_ok += 1;
        }
    }
    let span = Span::end(s);
    assert_eq!(not_ok, 0, "{not_ok} callbacks were not answered 200");
    Run {
        n: cbs.len(),
        span,
        each,
    }
}

/// One backend's rounds.
struct Backend {
    name: &'static str,
    verify: Vec<Run>,
    parts: Vec<[f64; 5]>,
    applied: Vec<Run>,
    duplicate: Vec<Run>,
    /// Other N callbacks applied without a sender address: no flood check.
    applied_no_ip: Vec<Run>,
    /// µs per (write transaction with a one-row UPDATE and its commit,
    /// one `SELECT 1` round trip).
    probes: Vec<(f64, f64)>,
    /// µs per flood check (`refused_from_ip_since`) with N and with 2N
    /// callbacks from the sender in the last minute.
    flood: Vec<(f64, f64)>,
}

async fn fresh(backend: &str) -> Option<TestApp> {
    match backend {
        "sqlite" => Some(TestApp::sqlite().await),
        _ => TestApp::postgres().await,
    }
}

async fn run_backend(
    backend: &'static str,
    all: &[Prepared],
    rounds: usize,
    settings: &WechatSettings,
) -> Option<Backend> {
    let mut out = Backend {
        name: backend,
        verify: Vec::new(),
        parts: Vec::new(),
        applied: Vec::new(),
        duplicate: Vec::new(),
        applied_no_ip: Vec::new(),
        probes: Vec::new(),
        flood: Vec::new(),
    };
    for round in 1..=rounds {
        let app = fresh(backend).await?;
        let now = app.clock.now();
        assert_eq!(now, TEST_START, "the callbacks were signed at TEST_START");
        let all_orders = seed(&app, all.len()).await;
        eprintln!(
            "payment_bench: {backend} round {round}/{rounds}: {} orders waiting for payment",
            all_orders.len()
        );
        // The first half for measurements 1–3, the second for 2b.
        let (cbs, others) = all.split_at(all.len() / 2);
        let orders = &all_orders[..cbs.len()];

        out.verify.push(verify_all(&app, cbs, now));
        out.parts.push(verify_parts(settings, cbs, now));

        let applied = apply_all(&app, cbs, Some(CALLBACK_IP), "applied").await;
        let (seen, bad) = outcomes_not(&app, cbs.len(), "applied").await;
        assert!(
            seen == cbs.len() && bad.is_empty(),
            "{backend}: {seen} callbacks stored, {} not applied: {:?}",
            bad.len(),
            bad.iter().take(5).collect::<Vec<_>>()
        );
        let after_apply = snapshot(&app, orders, cbs).await;
        let unpaid = after_apply
            .iter()
            .filter(|(s, _, a)| {
                s != &OrderState::Paid.to_string() || a != AttemptState::Paid.as_str()
            })
            .count();
        assert_eq!(unpaid, 0, "{backend}: {unpaid} orders or attempts not paid");
        out.applied.push(applied);
        let flood_n = flood_check(&app, 200).await;

        let duplicate = apply_all(&app, cbs, Some(CALLBACK_IP), "duplicate").await;
        let (seen, bad) = outcomes_not(&app, cbs.len(), "duplicate").await;
        assert!(
            seen == cbs.len() && bad.is_empty(),
            "{backend}: {} of {seen} repeated callbacks not stored as duplicate: {:?}",
            bad.len(),
            bad.iter().take(5).collect::<Vec<_>>()
        );
        let after_dup = snapshot(&app, orders, cbs).await;
        let changed = after_apply
            .iter()
            .zip(&after_dup)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            changed, 0,
            "{backend}: {changed} orders changed on a duplicate"
        );
        out.duplicate.push(duplicate);
        out.flood.push((flood_n, flood_check(&app, 200).await));
        out.probes.push(probe(&app, orders[0].0, 500).await);

        let applied_no_ip = apply_all(&app, others, None, "applied").await;
        let (seen, bad) = outcomes_not(&app, others.len(), "applied").await;
        assert!(
            seen == others.len() && bad.is_empty(),
            "{backend}: {} of {seen} callbacks without an address not applied",
            bad.len()
        );
        out.applied_no_ip.push(applied_no_ip);
    }
    Some(out)
}

/// µs per call of the flood check every callback starts with: how many
/// callbacks from the sender's address in the last minute were refused.
/// The test clock does not move, so every callback of the benchmark is
/// "in the last minute".
async fn flood_check(app: &TestApp, m: usize) -> f64 {
    let since = app.clock.now().minus(Duration::from_secs(60));
    let t = Instant::now();
    for _ in 0..m {
        let refused = payments::refused_from_ip_since(&app.db.store, CALLBACK_IP, since)
            .await
            .expect("flood check");
        assert_eq!(refused, 0);
    }
    t.elapsed().as_secs_f64() / m as f64 * 1e6
}

/// What the database costs alone, on the same connection pool: µs per
/// write transaction (`BEGIN`, a one-row `UPDATE`, `COMMIT`) and per
/// `SELECT 1` round trip, m of each.
async fn probe(app: &TestApp, order: i64, m: usize) -> (f64, f64) {
    let store = &app.db.store;
    let t = Instant::now();
    for _ in 0..m {
        let mut tx = store.begin_write().await.expect("begin");
        let changed = certhall_store::raw_execute(
            &mut tx,
            &format!("UPDATE orders SET updated_at = updated_at WHERE id = {order}"),
        )
        .await
        .expect("update");
        assert_eq!(changed, 1);
        tx.commit().await.expect("commit");
    }
    let commit = t.elapsed().as_secs_f64() / m as f64 * 1e6;
    let t = Instant::now();
    for _ in 0..m {
        store.ping().await.expect("ping");
    }
    let round_trip = t.elapsed().as_secs_f64() / m as f64 * 1e6;
    (commit, round_trip)
}

/// `openssl speed -seconds 3 rsa2048` on this process's CPUs: (sign/s,
/// verify/s, version).
fn openssl_rsa() -> Option<(f64, f64, String)> {
    let version = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .ok()?;
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "3", "rsa2048"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let header = lines.iter().find(|l| l.contains("verify/s"))?;
    let row = lines
        .iter()
        .find(|l| l.trim_start().starts_with("rsa") && l.contains("2048"))?;
    let cols: Vec<&str> = header.split_whitespace().collect();
    let vals: Vec<&str> = row.split("bits").nth(1)?.split_whitespace().collect();
    let at = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .and_then(|i| vals.get(i))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let version = String::from_utf8_lossy(&version.stdout);
    Some((
        at("sign/s")?,
        at("verify/s")?,
        version
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
    ))
}

fn fmt_rate(v: f64) -> String {
    let v = v.round() as i64;
    if v >= 1000 {
        format!("{},{:03}", v / 1000, v % 1000)
    } else {
        v.to_string()
    }
}

fn pct_core(x: f64, wall: f64) -> String {
    format!("{:.0}%", x / wall * 100.0)
}

async fn callbacks(n: usize, rounds: usize, openssl: bool) {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    eprintln!(
        "payment_bench: signing {} callbacks (RSA-2048, demo platform key)",
        2 * n
    );
    let signer = TestApp::sqlite().await;
    let t = Instant::now();
    // N for measurements 1–3, another N for 2b.
    let cbs = sign_all(&signer, 2 * n, signer.clock.now());
    let sign_us = t.elapsed().as_secs_f64() / (2 * n) as f64 * 1e6;
    drop(signer);
    let settings = certhall_payment::simulator::demo_settings(
        "http://127.0.0.1:9/dev/wechatpay",
        "http://127.0.0.1:9/api/v1/payment/notify/wechat",
    )
    .expect("demo settings");
    let body_bytes = cbs.iter().map(|c| c.body.len()).sum::<usize>() / cbs.len();

    let reference = if openssl {
        eprintln!("payment_bench: openssl speed -seconds 3 rsa2048");
        openssl_rsa()
    } else {
        None
    };

    let mut results = Vec::new();
    for backend in ["sqlite", "postgres"] {
        match run_backend(backend, &cbs, rounds, &settings).await {
            Some(b) => results.push(b),
            None => eprintln!("payment_bench: {backend} skipped (set TEST_DATABASE_URL)"),
        }
    }

    println!(
        "N = {n} distinct callbacks per round (one per order, {body_bytes} B body each; 2b uses another N), \
         {rounds} rounds, each on a fresh database; {cpus} CPU(s) visible to the process; tokio current-thread \
         runtime. Callbacks 1–3 come from one sender address, as the web route passes it on. The first callback of \
         2, 3 and 2b is an untimed canary whose stored outcome is checked before the others are timed."
    );
    for b in &results {
        println!();
        println!("#### {}", b.name);
        println!();
        println!(
            "| measurement | per round (callbacks/s) | median /s | µs per callback | p50 µs | p99 µs | process CPU | PostgreSQL CPU | other CPU |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for (what, runs) in [
            (
                "1. verify only (RSA + AES-GCM + parse, no database)",
                &b.verify,
            ),
            (
                "2. verify and apply (`payment_callback`, each once)",
                &b.applied,
            ),
            (
                "3. duplicates (the same N again: all `duplicate`, no order changed)",
                &b.duplicate,
            ),
            (
                "2b. as 2, other N callbacks without a sender address (no flood check)",
                &b.applied_no_ip,
            ),
        ] {
            let m = median_run(runs);
            let rates: Vec<String> = runs.iter().map(|r| fmt_rate(r.per_sec())).collect();
            println!(
                "| {what} | {} | **{}** | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
                rates.join(" / "),
                fmt_rate(median(runs.iter().map(Run::per_sec).collect())),
                m.us_each(),
                m.pct(0.5),
                m.pct(0.99),
                pct_core(m.span.cpu, m.span.wall),
                pct_core(m.span.db, m.span.wall),
                pct_core(m.span.other, m.span.wall),
            );
        }
        let part = |i: usize| median(b.parts.iter().map(|p| p[i]).collect());
        let verify = median_run(&b.verify).us_each();
        let applied = median_run(&b.applied).us_each();
        let duplicate = median_run(&b.duplicate).us_each();
        let no_ip = median_run(&b.applied_no_ip).us_each();
        println!();
        println!("Where the time goes (µs per callback, medians of the rounds):");
        println!();
        println!("| phase | µs | share of an applied callback | share of a duplicate |");
        println!("|---|---:|---:|---:|");
        let share = |x: f64, of: f64| format!("{:.0}%", x / of * 100.0);
        for (what, us) in [
            (
                "RSA-2048 signature check (`verify_signed`: headers, timestamp, message, verify)",
                part(0),
            ),
            (
                "… of which `keys::verify` (base64, SHA-256, `rsa` crate public-key operation)",
                part(4),
            ),
            ("notification JSON parse", part(1)),
            ("AES-256-GCM decrypt (base64 + GCM)", part(2)),
            ("transaction JSON parse and checks", part(3)),
            (
                "= verification (`verify_callback`, measured as one)",
                verify,
            ),
        ] {
            println!(
                "| {what} | {us:.1} | {} | {} |",
                share(us, applied),
                share(us, duplicate)
            );
        }
        println!(
            "| database and bookkeeping (applied: flood check, raw row, CAS, order, 2 audit entries, message, notice, outcome; 3 commits) = 2 − 1 | {:.1} | {} | — |",
            applied - verify,
            share(applied - verify, applied)
        );
        println!(
            "| database and bookkeeping (duplicate: flood check, raw row, locked re-read, outcome, audit entry; 2 commits + 1 rollback) = 3 − 1 | {:.1} | — | {} |",
            duplicate - verify,
            share(duplicate - verify, duplicate)
        );
        let flood = applied - no_ip;
        if flood > 0.0 {
            println!(
                "| … of which the flood check, applied (0 to N rows from the sender) = 2 − 2b | {flood:.1} | {} | — |",
                share(flood, applied)
            );
        } else {
            println!(
                "| … of which the flood check, applied = 2 − 2b | {flood:.1}: 2b was slower, the difference is noise here | — | — |"
            );
        }
        println!();
        println!(
            "The database alone, same pool (median of the rounds, 500 each): a write transaction with a one-row \
             `UPDATE` and its commit {:.0} µs; a `SELECT 1` round trip {:.0} µs.",
            median(b.probes.iter().map(|p| p.0).collect()),
            median(b.probes.iter().map(|p| p.1).collect()),
        );
        println!(
            "The flood check every callback starts with (`refused_from_ip_since`: callbacks from the sender's \
             address in the last minute; the test clock does not move, so all of this run's are): {:.0} µs with \
             {n} rows from that address, {:.0} µs with {}.",
            median(b.flood.iter().map(|p| p.0).collect()),
            median(b.flood.iter().map(|p| p.1).collect()),
            2 * n,
        );
    }
    println!();
    let rsa_us = median(
        results
            .iter()
            .flat_map(|b| b.parts.iter().map(|p| p[4]))
            .collect(),
    );
    match reference {
        Some((sign, verify, version)) => println!(
            "Reference, same core: `openssl speed -seconds 3 rsa2048` ({version}): {} verify/s ({:.1} µs), {} sign/s. \
             CertHall's `keys::verify` (`rsa` crate, with base64 and SHA-256): {:.1} µs, {} /s. \
             Signing the callbacks for the benchmark (the simulator, `rsa` crate): {:.0} µs each.",
            fmt_rate(verify),
            1e6 / verify,
            fmt_rate(sign),
            rsa_us,
            fmt_rate(1e6 / rsa_us),
            sign_us
        ),
        None => println!(
            "Reference: openssl speed not run. Signing the callbacks (simulator, `rsa` crate): {sign_us:.0} µs each."
        ),
    }
    println!(
        "CPU columns are percent of one core over the phase's wall time, the median round. Process CPU: this process \
         (with SQLite's worker threads), pinned to one core; PostgreSQL CPU: the `postgres` server processes (not \
         pinned; any other client's work on that server counts too); other CPU: everything else on the machine, the \
         noise indicator."
    );
}

// --- Serve ---------------------------------------------------------------------

/// The value of `name="_csrf"` on a page.
fn csrf(page: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = page.find(marker).expect("a _csrf field") + marker.len();
    let end = page[start..].find('"').expect("end of _csrf") + start;
    page[start..end].to_owned()
}

async fn serve(backend: &str) {
    let Some(app) = fresh(backend).await else {
        panic!("backend {backend} not available (set TEST_DATABASE_URL for postgres)");
    };
    let server = app.serve().await;
    let base = app.base_url.clone();
    let s = &app.services;
    let m = RequestMeta::default();
    let phone = "13600000201";

    // The real flow: wizard steps 1–5, the counter's approval, step 6, a
    // payment attempt, and 支付成功 at the demo cashier (a signed v3
    // callback posted to the HTTP route).
    fixtures::key_models(&app).await;
    let (me, order) = fixtures::approved_order(&app, phone).await;
    s.save_checkout(me, order.id, &fixtures::checkout_input(), true, &m)
        .await
        .expect("step 6");
    let attempt = s
        .start_payment(me, order.id, Channel::Wechat, &m)
        .await
        .expect("payment attempt");
    let paid = s
        .demo_cashier_pay(&attempt.out_trade_no, true)
        .await
        .expect("demo cashier");
    assert_eq!(
        paid,
        certhall_service::demo_pay::CashierOutcome::Paid {
            callback_status: Some(200)
        }
    );
    let order = s.order_of(me, order.id).await.expect("order");
    assert_eq!(order.state, OrderState::Paid, "the order was not paid");
    let summary = s.order_summary(me, order.id).await.expect("summary");

    // Log in over HTTP like a browser.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = format!("{base}/login");
    let page = client
        .get(&login)
        .send()
        .await
        .expect("GET /login")
        .text()
        .await
        .expect("body");
    let r = client
        .post(format!("{base}/login/code"))
        .form(&[
            ("_csrf", csrf(&page).as_str()),
            ("phone", phone),
            ("next", "/"),
        ])
        .send()
        .await
        .expect("POST /login/code");
    assert_eq!(r.status(), 303, "POST /login/code");
    let code = app.latest_code(phone).await.expect("login code");
    let page = client
        .get(&login)
        .send()
        .await
        .expect("GET /login")
        .text()
        .await
        .expect("body");
    let r = client
        .post(&login)
        .form(&[
            ("_csrf", csrf(&page).as_str()),
            ("phone", phone),
            ("code", code.as_str()),
            ("next", "/"),
        ])
        .send()
        .await
        .expect("POST /login");
    assert_eq!(r.status(), 303, "POST /login");
    let url: reqwest::Url = base.parse().expect("base URL");
    let all = reqwest::cookie::CookieStore::cookies(jar.as_ref(), &url).expect("cookies");
    let cookie: Vec<&str> = all
        .to_str()
        .expect("cookie text")
        .split("; ")
        .filter(|c| c.starts_with("ch_session=") || c.starts_with("ch_bid="))
        .collect();
    assert_eq!(cookie.len(), 2, "ch_session and ch_bid after login");
    let cookie = cookie.join("; ");

    // The page answers 200 with this cookie (no cookie jar from here on).
    let page_url = format!("{base}{}", certhall_web::paths::order(order.id));
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(&page_url)
        .header("Cookie", &cookie)
        .send()
        .await
        .expect("GET order page");
    assert_eq!(r.status(), 200, "GET {page_url}");
    let body = r.text().await.expect("page");
    assert!(
        body.contains("已支付"),
        "the order page does not say 已支付"
    );

    println!("BACKEND {}", app.backend());
    println!("URL {page_url}");
    println!("COOKIE {cookie}");
    println!("METRICS {base}/metrics");
    println!("BYTES {}", body.len());
    println!("EVENTS {}", summary.events.len());
    println!("ATTEMPTS {}", summary.attempts.len());
    println!("MATERIALS {}", summary.materials.len());
    println!("READY");
    std::io::stdout().flush().expect("flush");

    // Serve until stdin closes or a signal arrives.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = rx => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(server);
    drop(app);
}
