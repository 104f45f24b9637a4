//! Issuance throughput (issue 14): CSR in → certificate out, per family,
//! measured three ways in one run —
//!
//! 1. **engine**: `certhall_ca::issue::issue` alone (build the TBS, sign
//!    it with the issuing CA's software key), one core;
//! 2. **service, one at a time**: `Services::ca_issue` — verify the CSR,
//!    check the profile, build and sign, store the certificate and its
//!    audit entry in one durable transaction — sequentially;
//! 3. **service, 8 and 64 at once**: the same from 8 and 64 concurrent
//!    tasks (as many requests as the web server's connections); their
//!    certificates are committed together (group commit: one transaction
//!    for what queued up while the previous one committed).
//!
//! on SQLite (WAL, synchronous=NORMAL) and, when TEST_DATABASE_URL is
//! set, PostgreSQL. `scripts/bench-issue.sh` runs it (release build) next
//! to `openssl speed` for the same algorithms. Output: JSON lines.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use certhall_ca::issue::{self, random_serial, Issuer, Kind, Request};
use certhall_ca::name::Subject;
use certhall_ca::profile::Profile;
use certhall_ca::{CaSigner, Family, KeyAlgorithm, SoftwareKey};
use certhall_domain::audit::Actor;
use certhall_service::ca::{role, IssueInput, KeyBackend};
use certhall_testkit::TestApp;

const SUBJECT: &str = "C=CN,O=枣庄某某建设有限公司,USCC=91350100M000100Y43,CN=枣庄某某建设有限公司";

fn csr(alg: KeyAlgorithm) -> Vec<u8> {
    let key = SoftwareKey::generate(alg).unwrap();
    let spki = der::Encode::to_der(&key.public_key_info().unwrap()).unwrap();
    certhall_agent::csr::build(&Subject::parse("CN=ignored").unwrap(), alg, &spki, |tbs| {
        Ok(key.sign(tbs).unwrap())
    })
    .unwrap()
}

/// What every measured issuance asks for.
fn input(family: Family, csr: &[u8]) -> IssueInput<'_> {
    IssueInput {
        family,
        profile: "enterprise",
        csr,
        subject: SUBJECT,
        account: None,
        order_id: None,
        predecessor: None,
        ends_by: None,
    }
}

/// This process's CPU time (user + system) so far, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn p50(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

fn engine(family: Family, n: usize) {
    let key = SoftwareKey::generate(family.issuing_key()).unwrap();
    let subject = Subject::parse("C=CN,O=Bench,CN=Bench Issuing CA").unwrap();
    let now = certhall_domain::Timestamp::from_millis(1_795_568_400_000);
    let (ca, _) = issue::issue(
        Issuer {
            certificate: None,
            signer: &key,
        },
        Request {
            serial: &random_serial(),
            subject: subject.to_name().unwrap(),
            public_key: key.public_key_info().unwrap(),
            not_before: now,
            not_after: now.plus(Duration::from_secs(86_400 * 3650)),
            kind: Kind::Root,
        },
    )
    .unwrap();
    let ee_key = SoftwareKey::generate(match family {
        Family::Rsa => KeyAlgorithm::Rsa(2048),
        f => f.issuing_key(),
    })
    .unwrap();
    let profile = Profile::enterprise();
    let urls = issue::CaUrls {
        crl: "http://127.0.0.1/crl".into(),
        ocsp: "http://127.0.0.1/ocsp".into(),
        ca_issuers: "http://127.0.0.1/ca".into(),
    };
    let ee_subject = Subject::parse(SUBJECT).unwrap();
    let started = Instant::now();
    for _ in 0..n {
        issue::issue(
            Issuer {
                certificate: Some(&ca),
                signer: &key,
            },
            Request {
                serial: &random_serial(),
                subject: ee_subject.to_name().unwrap(),
                public_key: ee_key.public_key_info().unwrap(),
                not_before: now,
                not_after: now.plus(Duration::from_secs(86_400 * 365)),
                kind: Kind::EndEntity {
                    profile: &profile,
                    urls: &urls,
                },
            },
        )
        .unwrap();
    }
    let engine_s = started.elapsed();
    // Verifying the request, which the service does before building.
    let request = csr(ee_key.algorithm());
    let started = Instant::now();
    for _ in 0..n {
        certhall_ca::csr::verify(&request).unwrap();
    }
    println!(
        "{{\"family\":\"{family}\",\"how\":\"CSR verify\",\"backend\":\"-\",\"n\":{n},\"per_s\":{:.0}}}",
        per_second(n, started.elapsed())
    );
    println!(
        "{{\"family\":\"{family}\",\"how\":\"engine\",\"backend\":\"-\",\"n\":{n},\"per_s\":{:.0}}}",
        per_second(n, engine_s)
    );
}

async fn service(app: Arc<TestApp>, family: Family, n: usize, tasks: usize) {
    let s = &app.services;
    let alg = match family {
        Family::Sm2 => KeyAlgorithm::Sm2,
        Family::P256 => KeyAlgorithm::EcP256,
        Family::Rsa => KeyAlgorithm::Rsa(2048),
    };
    // A few distinct requests, reused (each issuance still verifies its CSR).
    let csrs: Arc<Vec<Vec<u8>>> = Arc::new((0..8).map(|_| csr(alg)).collect());
    // Warm up: keys loaded, statements prepared.
    for c in csrs.iter().take(2) {
        s.ca_issue(&input(family, c), Actor::System).await.unwrap();
    }
    let started = Instant::now();
    let cpu0 = cpu_seconds();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let app = app.clone();
        let csrs = csrs.clone();
        handles.push(tokio::spawn(async move {
            let mut times = Vec::new();
            for i in (t..n).step_by(tasks) {
                let t0 = Instant::now();
                app.services
                    .ca_issue(&input(family, &csrs[i % csrs.len()]), Actor::System)
                    .await
                    .unwrap();
                times.push(t0.elapsed());
            }
            times
        }));
    }
    let mut times = Vec::new();
    for h in handles {
        times.extend(h.await.unwrap());
    }
    let elapsed = started.elapsed();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{{\"family\":\"{family}\",\"how\":\"service x{tasks}\",\"backend\":\"{}\",\"n\":{n},\"per_s\":{:.0},\"p50_ms\":{:.2},\"cpu_us\":{:.0},\"cores\":{:.2}}}",
        app.backend(),
        per_second(n, elapsed),
        p50(times),
        cpu / n as f64 * 1e6,
        cpu / elapsed.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    // Optional: only these families (`issue_bench 2000 p256`).
    let only: Vec<Family> = std::env::args()
        .skip(2)
        .map(|f| f.parse().unwrap())
        .collect();
    let families: Vec<Family> = [Family::P256, Family::Sm2, Family::Rsa]
        .into_iter()
        .filter(|f| only.is_empty() || only.contains(f))
        .collect();
    for &family in &families {
        engine(family, n);
    }
    let mut apps = vec![TestApp::sqlite().await];
    apps.extend(TestApp::postgres().await);
    for app in apps {
        let app = Arc::new(app);
        for &family in &families {
            app.services
                .ca_init(family, &KeyBackend::File, Actor::System)
                .await
                .unwrap();
            let _ = app.services.ca_active(family, role::ISSUING).await.unwrap();
        }
        app.services.ca_seed_profiles().await.unwrap();
        for &family in &families {
            for tasks in [1, 8, 64, 256] {
                service(app.clone(), family, n, tasks).await;
            }
        }
    }
}
