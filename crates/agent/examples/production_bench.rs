//! Benchmark of 制证 (issue 11): the time to produce one UKey, per key
//! family, on real tokens — P-256 and RSA-2048 in SoftHSM2 through PKCS#11,
//! SM2 in a software token with the production KDF. Run by
//! `scripts/bench-production.sh`; results in `docs/benchmarks.md`.
//!
//! Each key goes through the flow of `docs/production.md` in process, as
//! `crates/testkit/tests/production.rs` drives it, with every stage timed:
//! list the tokens → `production_start` → `init_token` →
//! `production_token_initialized` → `generate_key` → the PKCS#10 request
//! signed in the token → `production_csr` → `store_certificate` → read
//! back (`keys`) → `production_written`. The page's HTTP round trips and the
//! agent's JSON layer are not included: this is the work behind them.
//! On SQLite, then on PostgreSQL when `TEST_DATABASE_URL` names one.
//!
//! Every key gets a desk of its own: a fresh SoftHSM2 token store (the
//! module is loaded again on it, outside the timing) or a fresh software
//! token directory, holding only the blank token, as when the producer
//! plugs one UKey in. `--shared-store` keeps one store for all keys
//! instead, to show what many tokens in one module cost.
//!
//! Orders are set up first (paid through the real flow, untimed). The
//! first key of each family is a warm-up, shown apart and left out of the
//! statistics; then the families take turns, key by key, so that noise
//! from the shared machine falls on all of them alike.
//!
//! The benchmark checks its own work after each key (untimed): the order
//! is 已制证, the certificate read back from the token is the issued one
//! byte for byte (and the one the CA recorded), it certifies the key made
//! in the token, the key record names the token, the applicant's SMS
//! carries the PIN; with OpenSC's `pkcs11-tool` installed, each SoftHSM2
//! token is also read through it; and at the end the stock fell by one
//! unit per key. Any failure stops the run with an error (exit 1): no
//! numbers are printed for a run that did not produce every key.

use certhall_domain::OrderId;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use certhall_agent::pkcs11::Pkcs11Tokens;
use certhall_agent::soft::SoftTokens;
use certhall_agent::token::{Pin, TokenBackend};
use certhall_ca::name::Subject;
use certhall_ca::KeyAlgorithm;
use certhall_domain::checkout::KeyColour;
use certhall_domain::order::OrderState;
use certhall_domain::AccountId;
use certhall_service::counter::OperatorInfo;
use certhall_service::production::TokenPresented;
use certhall_service::RequestMeta;
use certhall_testkit::{fixtures, TestApp};
use der::{DecodePem, Encode};

/// The stock model the fixtures' step 6 chooses.
const KEY_MODEL: &str = "ukey-standard";
/// The producer's phone (applicants are 136…, the fixtures' reviewers 137…).
const PRODUCER_PHONE: &str = "13500000001";
/// Debian's SoftHSM2 module.
const SOFTHSM2: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// One key family: the application that asks for it and the token it is
/// made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    P256,
    Rsa2048,
    Sm2,
}

impl Family {
    const ALL: [Self; 3] = [Self::P256, Self::Rsa2048, Self::Sm2];

    fn name(self) -> &'static str {
        match self {
            Self::P256 => "p256",
            Self::Rsa2048 => "rsa2048",
            Self::Sm2 => "sm2",
        }
    }

    /// A demo application whose catalogue entry asks for this key kind.
    fn application(self) -> &'static str {
        match self {
            Self::P256 => "sdzfcg",
            Self::Rsa2048 => "sdggzy",
            Self::Sm2 => "zzggzy",
        }
    }

    fn algorithm(self) -> KeyAlgorithm {
        match self {
            Self::P256 => KeyAlgorithm::EcP256,
            Self::Rsa2048 => KeyAlgorithm::Rsa(2048),
            Self::Sm2 => KeyAlgorithm::Sm2,
        }
    }

    /// PKCS#11 tokens generate P-256 and RSA-2048 only (the agent's rule);
    /// SM2 is made on a software token.
    fn on_pkcs11(self) -> bool {
        self != Self::Sm2
    }

    fn token_name(self) -> &'static str {
        if self.on_pkcs11() {
            "SoftHSM2"
        } else {
            "soft token"
        }
    }
}

/// The timed stages of one key, in order.
const STAGES: [(&str, &str); 10] = [
    ("list", "list the tokens, pick the blank one (agent)"),
    ("start", "`production_start`: permission, PINs, attempt row"),
    (
        "init token",
        "`init_token`: label, SO PIN, user PIN (token)",
    ),
    ("record serial", "`production_token_initialized` (CertHall)"),
    ("keygen", "`generate_key`: key pair made in the token"),
    (
        "CSR",
        "PKCS#10 request signed in the token (`csr::build` + `sign`)",
    ),
    (
        "issue",
        "`production_csr`: CSR check, CA signature, DB, audit",
    ),
    (
        "write",
        "`store_certificate`: certificate and chain (token)",
    ),
    (
        "read back",
        "`keys`: the key's certificate as stored (token)",
    ),
    (
        "complete",
        "`production_written`: compare, PIN SMS, stock, ukey, order",
    ),
];

/// The times of one key.
#[derive(Debug, Clone)]
struct KeyTimes {
    stages: [Duration; STAGES.len()],
    total: Duration,
}

/// Times consecutive stages with one clock: each lap is the time since the
/// previous one.
#[derive(Debug)]
struct Stopwatch {
    start: Instant,
    last: Instant,
    stages: [Duration; STAGES.len()],
    next: usize,
}

impl Stopwatch {
    fn start() -> Self {
        let now = Instant::now();
        Self {
            start: now,
            last: now,
            stages: [Duration::ZERO; STAGES.len()],
            next: 0,
        }
    }

    fn lap(&mut self) {
        let now = Instant::now();
        self.stages[self.next] = now - self.last;
        self.last = now;
        self.next += 1;
    }

    fn finish(self) -> KeyTimes {
        debug_assert_eq!(self.next, STAGES.len(), "a stage was not timed");
        KeyTimes {
            stages: self.stages,
            total: self.last - self.start,
        }
    }
}

/// Command line.
#[derive(Debug, Clone)]
struct Plan {
    /// Measured keys per family (a warm-up key comes on top).
    n: [usize; 3],
    module: PathBuf,
    shared_store: bool,
    openssl: bool,
    /// OpenSC's `pkcs11-tool` is installed: each SoftHSM2 token is also
    /// read through it.
    pkcs11_tool: bool,
}

impl Plan {
    fn parse() -> Result<Self> {
        let mut plan = Self {
            n: [60, 30, 30],
            module: PathBuf::from(SOFTHSM2),
            shared_store: false,
            openssl: true,
            pkcs11_tool: Command::new("pkcs11-tool").arg("--help").output().is_ok(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| anyhow!("{arg} needs a value"));
            match arg.as_str() {
                "--p256" => plan.n[0] = value()?.parse()?,
                "--rsa2048" => plan.n[1] = value()?.parse()?,
                "--sm2" => plan.n[2] = value()?.parse()?,
                "--pkcs11-module" => plan.module = PathBuf::from(value()?),
                "--shared-store" => plan.shared_store = true,
                "--no-openssl" => plan.openssl = false,
                "-h" | "--help" => {
                    println!(
                        "production_bench [--p256 N] [--rsa2048 N] [--sm2 N] \
                         [--pkcs11-module PATH] [--shared-store] [--no-openssl]"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other} (see --help)"),
            }
        }
        Ok(plan)
    }

    fn count(&self, family: Family) -> usize {
        self.n[family as usize]
    }
}

/// Where each key is made: a desk with exactly one blank token (or, with
/// `--shared-store`, one store that keeps every token made).
#[derive(Debug)]
struct Desks {
    plan: Plan,
    root: tempfile::TempDir,
    /// The file `SOFTHSM2_CONF` names; rewritten for each new store.
    conf: PathBuf,
    pkcs11: Option<Arc<Pkcs11Tokens>>,
    soft: Option<Arc<SoftTokens>>,
    made: usize,
}

impl Desks {
    fn new(plan: &Plan, root: tempfile::TempDir, conf: PathBuf) -> Self {
        Self {
            plan: plan.clone(),
            root,
            conf,
            pkcs11: None,
            soft: None,
            made: 0,
        }
    }

    fn fresh_dir(&mut self) -> Result<PathBuf> {
        self.made += 1;
        let dir = self.root.path().join(format!("desk-{:04}", self.made));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// The backend holding a blank token for a key of `family` (untimed:
    /// this is the producer plugging a new UKey in).
    fn blank_for(&mut self, family: Family) -> Result<Arc<dyn TokenBackend>> {
        if family.on_pkcs11() {
            if !self.plan.shared_store || self.pkcs11.is_none() {
                // One PKCS#11 context at a time: the old one is finalised
                // before the module is initialised on the new store.
                self.pkcs11 = None;
                let dir = self.fresh_dir()?;
                let store = dir.join("softhsm");
                std::fs::create_dir(&store)?;
                std::fs::write(
                    &self.conf,
                    format!(
                        "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                        store.display()
                    ),
                )?;
                let tokens = Pkcs11Tokens::open(&self.plan.module, dir.join("pin-counts.json"))
                    .context("loading the PKCS#11 module")?;
                self.pkcs11 = Some(Arc::new(tokens));
            }
            let tokens = self.pkcs11.clone().ok_or_else(|| anyhow!("no module"))?;
            Ok(tokens)
        } else {
            if !self.plan.shared_store || self.soft.is_none() {
                let dir = self.fresh_dir()?.join("soft");
                // The production KDF (scrypt N = 2^15, r = 8, p = 1), not
                // the tests' cheap one.
                self.soft = Some(Arc::new(SoftTokens::open(dir)?));
            }
            let tokens = self.soft.clone().ok_or_else(|| anyhow!("no soft tokens"))?;
            tokens.create_blank_token()?;
            Ok(tokens)
        }
    }

    /// Ends the desk of the key just made (per-key stores only).
    fn done(&mut self) {
        if !self.plan.shared_store {
            self.pkcs11 = None;
            self.soft = None;
        }
    }
}

/// A paid order waiting for its key.
#[derive(Debug, Clone)]
struct Order {
    id: i64,
    account: AccountId,
    phone: String,
    family: Family,
}

fn meta() -> RequestMeta {
    RequestMeta::default()
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    let cert = x509_cert::Certificate::from_pem(pem).context("certificate PEM")?;
    Ok(cert.to_der()?)
}

/// Produces the key of `order` on a blank token of `tokens`, timing each
/// stage, then checks the result (untimed).
async fn produce(
    app: &TestApp,
    who: &OperatorInfo,
    tokens: &dyn TokenBackend,
    order: &Order,
    pkcs11_tool: Option<&Path>,
) -> Result<KeyTimes> {
    let s = &app.services;
    let m = meta();
    let mut watch = Stopwatch::start();

    let blank = tokens
        .tokens()?
        .into_iter()
        .find(|t| !t.initialized)
        .ok_or_else(|| anyhow!("no blank token on the desk"))?;
    watch.lap();

    let started = s
        .production_start(
            who,
            OrderId(order.id),
            &TokenPresented {
                serial: blank.serial.clone(),
                initialized: false,
            },
            &m,
        )
        .await
        .context("production_start")?;
    ensure!(started.needs_init, "a blank token must be initialised");
    let pin = Pin::new(started.pin.clone());
    let so_pin = Pin::new(
        started
            .so_pin
            .clone()
            .ok_or_else(|| anyhow!("no SO PIN for a blank token"))?,
    );
    watch.lap();

    let serial = tokens
        .init_token(&blank.serial, &started.attempt.token_label, &so_pin, &pin)
        .context("init_token")?
        .serial;
    watch.lap();

    s.production_token_initialized(who, started.attempt.id, &serial, &m)
        .await
        .context("production_token_initialized")?;
    watch.lap();

    let key = tokens
        .generate_key(&serial, &pin, order.family.algorithm(), "签名密钥")
        .context("generate_key")?;
    watch.lap();

    // A subject CertHall must ignore (it certifies the order's).
    let subject = Subject::parse("C=CN,O=bench,CN=bench").map_err(|e| anyhow!("{e}"))?;
    let csr = certhall_agent::csr::build(&subject, key.algorithm, &key.public_key, |tbs| {
        tokens.sign(&serial, &pin, &key.key_id, tbs)
    })
    .context("CSR signed in the token")?;
    let csr_pem = certhall_agent::csr::to_pem(&csr)?;
    watch.lap();

    let issued = s
        .production_csr(
            who,
            started.attempt.id,
            csr_pem.as_bytes(),
            &hex::encode(&key.key_id),
            &m,
        )
        .await
        .context("production_csr")?;
    watch.lap();

    let cert = pem_to_der(&issued.certificate_pem)?;
    let chain = issued
        .chain_pem
        .iter()
        .map(|p| pem_to_der(p))
        .collect::<Result<Vec<_>>>()?;
    tokens
        .store_certificate(&serial, &pin, &key.key_id, &cert, &chain)
        .context("store_certificate")?;
    watch.lap();

    let read_back = tokens
        .keys(&serial)?
        .into_iter()
        .find(|k| k.key_id == key.key_id)
        .and_then(|k| k.certificate)
        .ok_or_else(|| anyhow!("the certificate is not on the token"))?;
    watch.lap();

    let produced = s
        .production_written(who, started.attempt.id, &read_back, &m)
        .await
        .context("production_written")?;
    watch.lap();
    let times = watch.finish();

    // Did it do what it claims? None of this is timed.
    ensure!(
        produced.state == OrderState::Produced,
        "order {} ended {:?}, not Produced",
        order.id,
        produced.state
    );
    let stored = s.order_of(order.account, OrderId(order.id)).await?;
    ensure!(
        stored.state == OrderState::Produced,
        "order {} is {:?} in the database",
        order.id,
        stored.state
    );
    ensure!(
        read_back == cert,
        "order {}: the token's certificate differs from the issued one",
        order.id
    );
    let recorded = s.ca_certificate(&issued.serial).await?;
    ensure!(
        recorded.der == cert,
        "order {}: the CA recorded another certificate",
        order.id
    );
    let parsed = <x509_cert::Certificate as der::Decode>::from_der(&read_back)?;
    ensure!(
        parsed.tbs_certificate.subject_public_key_info.to_der()? == key.public_key,
        "order {}: the certificate is not for the key made in the token",
        order.id
    );
    let ukey = certhall_store::production::ukey_of_order(&app.db.store, order.id)
        .await?
        .ok_or_else(|| anyhow!("order {}: no key recorded", order.id))?;
    ensure!(
        ukey.token_serial == serial && ukey.certificate_serial == issued.serial,
        "order {}: the key record names token {} / certificate {}, not {serial} / {}",
        order.id,
        ukey.token_serial,
        ukey.certificate_serial,
        issued.serial
    );
    let sms = certhall_store::sms::outbox_recent(&app.db.store, Some(&order.phone), 5).await?;
    ensure!(
        sms.iter()
            .any(|e| e.body.contains(&format!("PIN 码为{}", started.pin))),
        "order {}: no PIN SMS to the applicant",
        order.id
    );
    if let Some(module) = pkcs11_tool {
        look_with_pkcs11_tool(
            module,
            &started.attempt.token_label,
            &started.pin,
            &key.key_id,
            &cert,
        )
        .with_context(|| format!("order {}: pkcs11-tool", order.id))?;
    }
    Ok(times)
}

/// An independent look at a SoftHSM2 token with OpenSC's `pkcs11-tool`:
/// one key pair and three certificates (the key's, the issuing CA's, the
/// root's), and the key's certificate, read by its id, is the issued one.
fn look_with_pkcs11_tool(
    module: &Path,
    label: &str,
    pin: &str,
    key_id: &[u8],
    cert: &[u8],
) -> Result<()> {
    let run = |extra: &[&str]| -> Result<String> {
        let out = Command::new("pkcs11-tool")
            .arg("--module")
            .arg(module)
            .args(["--token-label", label, "--login", "--pin", pin])
            .args(extra)
            .output()?;
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let objects = run(&["--list-objects"])?;
    let count = |what: &str| objects.matches(what).count();
    ensure!(
        count("Private Key Object") == 1
            && count("Public Key Object") == 1
            && count("Certificate Object") == 3,
        "unexpected objects on the token:\n{objects}"
    );
    let file = tempfile::NamedTempFile::new()?;
    let path = file.path().to_string_lossy().into_owned();
    run(&[
        "--read-object",
        "--type",
        "cert",
        "--id",
        &hex::encode(key_id),
        "--output-file",
        &path,
    ])?;
    ensure!(
        std::fs::read(file.path())? == cert,
        "the certificate pkcs11-tool reads differs from the issued one"
    );
    Ok(())
}

/// Units of the model on hand, all colours.
async fn on_hand(app: &TestApp) -> Result<i64> {
    Ok(certhall_store::key_models::stock(&app.db.store, KEY_MODEL)
        .await?
        .on_hand
        .iter()
        .map(|(_, n)| n)
        .sum())
}

/// Busy and total ticks of the machine (`cpu` line of /proc/stat), and
/// the user + system ticks of this process and of the children it waited
/// for.
#[derive(Debug, Clone, Copy)]
struct Ticks {
    busy: u64,
    all: u64,
    own: u64,
}

impl Ticks {
    fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let at = |i: usize| cpu.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal
        let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
        let all = busy + at(3) + at(4);
        let me = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // After the command name: state is field 3, utime 14, stime 15,
        // cutime 16 and cstime 17 (children waited for: pkcs11-tool).
        let own = me
            .rsplit_once(") ")
            .map(|(_, rest)| {
                let f: Vec<&str> = rest.split_whitespace().collect();
                (11..=14)
                    .filter_map(|i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
                    .sum()
            })
            .unwrap_or(0);
        Self { busy, all, own }
    }

    /// (this process, everything else) in percent of one core, from
    /// `self` to `later`.
    fn usage(self, later: Self) -> (f64, f64) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let all = later.all.saturating_sub(self.all).max(1) as f64;
        let busy = later.busy.saturating_sub(self.busy) as f64;
        let own = later.own.saturating_sub(self.own) as f64;
        (
            own / all * cores * 100.0,
            (busy - own).max(0.0) / all * cores * 100.0,
        )
    }
}

/// What one database run measured.
#[derive(Debug)]
struct BackendRun {
    backend: &'static str,
    setup: Duration,
    warmup: Vec<(Family, KeyTimes)>,
    keys: Vec<(Family, KeyTimes)>,
    wall: Duration,
    own_cpu: f64,
    other_cpu: f64,
}

async fn run_backend(app: TestApp, plan: &Plan, desks: &mut Desks) -> Result<BackendRun> {
    let backend = app.backend();
    let _server = app.serve().await; // payment callbacks come over HTTP
    let s = &app.services;
    let families: Vec<Family> = Family::ALL
        .into_iter()
        .filter(|f| plan.count(*f) > 0)
        .collect();
    let keys: usize = families.iter().map(|f| plan.count(*f) + 1).sum();

    // Setup, untimed: enough stock, the paid orders, the producer.
    let setup = Instant::now();
    fixtures::key_models(&app).await;
    s.adjust_stock(
        KEY_MODEL,
        KeyColour::Red,
        i64::try_from(keys)?,
        "基准测试入库",
        certhall_domain::audit::Actor::Cli("bench".into()),
    )
    .await?;
    let mut queues: Vec<Vec<Order>> = Vec::new();
    let mut next_phone = 0u32;
    for &family in &families {
        let mut queue = Vec::new();
        for _ in 0..=plan.count(family) {
            next_phone += 1;
            let phone = format!("136{next_phone:08}");
            let (account, order) = fixtures::paid_order(&app, &phone, family.application()).await;
            queue.push(Order {
                id: order.id.0,
                account,
                phone,
                family,
            });
        }
        queue.reverse(); // popped from the end: oldest first
        queues.push(queue);
    }
    let who = fixtures::producer(&app, PRODUCER_PHONE).await;
    let setup = setup.elapsed();
    let stock_before = on_hand(&app).await?;
    eprintln!(
        "{backend}: {keys} paid orders set up in {:.1} s; producing",
        setup.as_secs_f64()
    );

    let tool =
        |family: Family| (plan.pkcs11_tool && family.on_pkcs11()).then_some(plan.module.as_path());
    let mut warmup = Vec::new();
    for (queue, &family) in queues.iter_mut().zip(&families) {
        let order = queue.pop().ok_or_else(|| anyhow!("no order"))?;
        let tokens = desks.blank_for(family)?;
        let times = produce(&app, &who, tokens.as_ref(), &order, tool(family))
            .await
            .with_context(|| format!("{backend} {} warm-up key", family.name()))?;
        desks.done();
        warmup.push((family, times));
    }

    let mut measured = Vec::new();
    let before = Ticks::now();
    let wall = Instant::now();
    let mut round = 0;
    while queues.iter().any(|q| !q.is_empty()) {
        round += 1;
        for (queue, &family) in queues.iter_mut().zip(&families) {
            let Some(order) = queue.pop() else { continue };
            let tokens = desks.blank_for(family)?;
            let times = produce(&app, &who, tokens.as_ref(), &order, tool(family))
                .await
                .with_context(|| format!("{backend} {} key {round}", family.name()))?;
            desks.done();
            measured.push((family, times));
        }
    }
    let wall = wall.elapsed();
    let (own_cpu, other_cpu) = before.usage(Ticks::now());

    let stock_after = on_hand(&app).await?;
    let made = i64::try_from(warmup.len() + measured.len())?;
    ensure!(
        stock_before - stock_after == made,
        "{backend}: stock fell by {} for {made} keys",
        stock_before - stock_after
    );
    Ok(BackendRun {
        backend,
        setup,
        warmup,
        keys: measured,
        wall,
        own_cpu,
        other_cpu,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn fmt_ms(d: Duration) -> String {
    let v = ms(d);
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn report(run: &BackendRun, plan: &Plan) {
    let families: Vec<Family> = Family::ALL
        .into_iter()
        .filter(|f| plan.count(*f) > 0)
        .collect();
    let of = |f: Family| -> Vec<&KeyTimes> {
        run.keys
            .iter()
            .filter(|(g, _)| *g == f)
            .map(|(_, t)| t)
            .collect()
    };
    println!("#### {}", run.backend);
    println!();
    let mut head = String::from("| stage |");
    let mut rule = String::from("|---|");
    for f in &families {
        head += &format!(
            " {} ({}) p50 ms | p95 ms | share |",
            f.name(),
            f.token_name()
        );
        rule += "---:|---:|---:|";
    }
    println!("{head}");
    println!("{rule}");
    let cell = |samples: Vec<Duration>, totals: Duration| -> String {
        let sum: Duration = samples.iter().sum();
        let mut sorted = samples;
        sorted.sort();
        format!(
            " {} | {} | {:.0}% |",
            fmt_ms(percentile(&sorted, 0.5)),
            fmt_ms(percentile(&sorted, 0.95)),
            sum.as_secs_f64() / totals.as_secs_f64().max(f64::MIN_POSITIVE) * 100.0
        )
    };
    for (i, (name, what)) in STAGES.iter().enumerate() {
        let mut line = format!("| {name}: {what} |");
        for &f in &families {
            let keys = of(f);
            let total: Duration = keys.iter().map(|t| t.total).sum();
            line += &cell(keys.iter().map(|t| t.stages[i]).collect(), total);
        }
        println!("{line}");
    }
    let mut line = String::from("| **total per key** |");
    for &f in &families {
        let mut sorted: Vec<Duration> = of(f).iter().map(|t| t.total).collect();
        sorted.sort();
        line += &format!(
            " **{}** | **{}** | 100% |",
            fmt_ms(percentile(&sorted, 0.5)),
            fmt_ms(percentile(&sorted, 0.95))
        );
    }
    println!("{line}");
    let mut line = String::from("| keys per minute (one desk, one key after the other) |");
    for &f in &families {
        let keys = of(f);
        let total: Duration = keys.iter().map(|t| t.total).sum();
        line += &format!(
            " **{:.1}** | n = {} | |",
            keys.len() as f64 / total.as_secs_f64().max(f64::MIN_POSITIVE) * 60.0,
            keys.len()
        );
    }
    println!("{line}");
    let mut line = String::from("| first key (warm-up, not in the statistics), total |");
    for &f in &families {
        let first = run
            .warmup
            .iter()
            .find(|(g, _)| *g == f)
            .map_or(Duration::ZERO, |(_, t)| t.total);
        line += &format!(" {} | | |", fmt_ms(first));
    }
    println!("{line}");
    println!();
    println!(
        "{}: {} keys in {:.1} s of production ({} orders set up beforehand in {:.1} s, untimed); \
         during production this process (and its children) used {:.0}% of a core and everything else on the machine {:.0}%.",
        run.backend,
        run.keys.len(),
        run.wall.as_secs_f64(),
        run.keys.len() + run.warmup.len(),
        run.setup.as_secs_f64(),
        run.own_cpu,
        run.other_cpu
    );
    println!();
}

/// One scrypt derivation with the software tokens' parameters (N = 2^15,
/// r = 8, p = 1), through the crate the agent uses: the unit of an SM2
/// key's cost. Median of 10.
fn scrypt_reference() -> Result<Duration> {
    let params = scrypt::Params::new(15, 8, 1, 32).map_err(|e| anyhow!("{e}"))?;
    let mut out = [0u8; 32];
    let mut samples = Vec::with_capacity(10);
    for _ in 0..10 {
        let t = Instant::now();
        scrypt::scrypt(b"123456", b"0123456789abcdef", &params, &mut out)
            .map_err(|e| anyhow!("{e}"))?;
        samples.push(t.elapsed());
    }
    samples.sort();
    Ok(percentile(&samples, 0.5))
}

/// The mount point and file system type holding `path` (from
/// /proc/mounts): where the token stores and the database live decides
/// what a flush costs.
fn file_system_of(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((*f.get(1)?, *f.get(2)?))
        })
        .filter(|(mount, _)| path.starts_with(mount))
        .max_by_key(|(mount, _)| mount.len())
        .map_or_else(|| "?".into(), |(mount, fs)| format!("{mount}, {fs}"))
}

/// Runs `openssl` with `args`; its standard output.
fn openssl(args: &[&str]) -> Result<String> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .context("running openssl")?;
    ensure!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Median wall time of `runs` runs of `openssl args` (process start
/// included).
fn openssl_time(args: &[&str], runs: usize) -> Result<Duration> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        openssl(args)?;
        samples.push(t.elapsed());
    }
    samples.sort();
    Ok(percentile(&samples, 0.5))
}

/// OpenSSL on the same machine in the same run: the raw cost of the
/// algorithms (key generation with `genpkey`, sign and verify with
/// `speed`).
fn openssl_reference() -> Result<()> {
    let version = openssl(&["version"])?;
    let speed = openssl(&[
        "speed",
        "-elapsed",
        "-seconds",
        "3",
        "ecdsap256",
        "rsa2048",
        "sm2",
    ])?;
    let startup = openssl_time(&["version"], 20)?;
    let p256 = openssl_time(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
        20,
    )?;
    let sm2 = openssl_time(&["genpkey", "-algorithm", "SM2"], 20)?;
    let rsa = openssl_time(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
        30,
    )?;
    let scrypt = openssl_time(
        &[
            "kdf",
            "-keylen",
            "32",
            "-kdfopt",
            "pass:123456",
            "-kdfopt",
            "salt:0123456789abcdef",
            "-kdfopt",
            "n:32768",
            "-kdfopt",
            "r:8",
            "-kdfopt",
            "p:1",
            "SCRYPT",
        ],
        10,
    )?;
    let version = version.split(" (").next().unwrap_or_default().trim();
    println!("#### Reference: OpenSSL on the same machine ({version})");
    println!();
    println!(
        "Key generation with `openssl genpkey`, and the software tokens' KDF (median wall time of one process, start-up included):"
    );
    println!();
    println!("| | ms |");
    println!("|---|---:|");
    println!(
        "| process start-up alone (`openssl version`, 20 runs) | {} |",
        fmt_ms(startup)
    );
    println!("| P-256 (20 runs) | {} |", fmt_ms(p256));
    println!("| SM2 (20 runs) | {} |", fmt_ms(sm2));
    println!(
        "| RSA-2048 (30 runs; the time to find primes varies) | {} |",
        fmt_ms(rsa)
    );
    println!(
        "| scrypt N = 2^15, r = 8, p = 1 (`openssl kdf … SCRYPT`, 10 runs) | {} |",
        fmt_ms(scrypt)
    );
    println!();
    println!("`openssl speed -elapsed -seconds 3 ecdsap256 rsa2048 sm2`:");
    println!();
    println!("```text");
    for line in speed
        .lines()
        .filter(|l| l.contains("sign") || l.contains("bits"))
    {
        println!("{}", line.trim_end());
    }
    println!("```");
    println!();
    Ok(())
}

fn main() -> Result<()> {
    let plan = Plan::parse()?;
    let root = tempfile::tempdir()?;
    let conf = root.path().join("softhsm2.conf");
    if plan.n[0] + plan.n[1] > 0 {
        ensure!(
            plan.module.exists(),
            "{} not found: install softhsm2 (or give --pkcs11-module)",
            plan.module.display()
        );
        // Read by C_Initialize; set before any other thread exists.
        std::env::set_var("SOFTHSM2_CONF", &conf);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut desks = Desks::new(&plan, root, conf);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "Keys per family (after one warm-up key each): {}; {cores} CPUs; {}; \
         software tokens with scrypt N = 2^15, r = 8, p = 1; SoftHSM2 module {}.",
        Family::ALL
            .iter()
            .map(|f| format!("{} {} on {}", plan.count(*f), f.name(), f.token_name()))
            .collect::<Vec<_>>()
            .join(", "),
        if plan.shared_store {
            "one token store for all keys (--shared-store)"
        } else {
            "a fresh token store per key (one blank token on the desk)"
        },
        plan.module.display()
    );
    println!();
    println!(
        "Token stores, software tokens and the SQLite database under {} ({}). \
         One scrypt derivation (the agent's `scrypt` crate, this process, median of 10): {} ms.",
        std::env::temp_dir().display(),
        file_system_of(&std::env::temp_dir()),
        fmt_ms(scrypt_reference()?)
    );
    println!();
    println!(
        "Checked after each key, untimed: the order is Produced; the certificate read back equals \
         the issued one and the CA's record, and certifies the key made in the token; the key \
         record names the token; the applicant's SMS carries the PIN; at the end the stock fell \
         by one per key. {}",
        if plan.pkcs11_tool {
            "Each SoftHSM2 token was also read with OpenSC's pkcs11-tool (one key pair, three \
             certificates, the key's certificate equal to the issued one)."
        } else {
            "pkcs11-tool (opensc) is not installed: the SoftHSM2 tokens were not read independently."
        }
    );
    println!();
    runtime.block_on(async {
        let run = run_backend(TestApp::sqlite().await, &plan, &mut desks).await?;
        report(&run, &plan);
        // PostgreSQL when TEST_DATABASE_URL names one.
        if let Some(app) = TestApp::postgres().await {
            let run = run_backend(app, &plan, &mut desks).await?;
            report(&run, &plan);
        }
        Ok::<_, anyhow::Error>(())
    })?;
    if plan.openssl {
        openssl_reference()?;
    }
    Ok(())
}
