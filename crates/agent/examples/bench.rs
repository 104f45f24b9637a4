//! Benchmark of 数字证书登录's moving parts (run by `scripts/bench-agent.sh`;
//! results in `docs/benchmarks.md`). A benchmark, not a test: it measures
//! and prints a markdown table; it fails only if an operation fails.
//!
//! 1. The agent's HTTP API, in-process, on real tokens: a SoftHSM2 token
//!    (when installed) and a software token with the production KDF
//!    (scrypt N = 2^15, r = 8): media query, PIN check, signing with each
//!    key algorithm.
//! 2. CertHall's certificate login through the JSON API (challenge → sign
//!    with a software key → login), SQLite, in-process server on a real
//!    port: sequential latency, then throughput with concurrent clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use certhall_agent::soft::SoftTokens;
use certhall_agent::token::Pin;
use certhall_ca::{CaSigner, Family, KeyAlgorithm, SoftwareKey};
use certhall_domain::audit::Actor;
use certhall_domain::cert_login::SignedMessage;
use certhall_service::ca::IssueInput;
use certhall_testkit::TestApp;
use der::Encode;
use reqwest::Client;
use serde_json::{json, Value};

const ORIGIN: &str = "http://bench.certhall.test";
const PIN: &str = "123456";
const SO_PIN: &str = "12345678";
const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// p50, p95, max in milliseconds.
fn summary(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (ms(at(0.5)), ms(at(0.95)), ms(*samples.last().unwrap()))
}

fn row(what: &str, samples: Vec<Duration>) {
    let n = samples.len();
    let (p50, p95, max) = summary(samples);
    println!("| {what} | {n} | {p50:.1} | {p95:.1} | {max:.1} |");
}

async fn time<F, Fut>(n: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        out.push(t.elapsed());
    }
    out
}

async fn post(client: &Client, url: &str, body: Value) -> Value {
    let r = client
        .post(url)
        .header("Origin", ORIGIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

fn softhsm_token(dir: &Path) -> Option<PathBuf> {
    if !Path::new(SOFTHSM).exists() {
        return None;
    }
    let tokens = dir.join("softhsm");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let ok = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(conf)
}

async fn agent_part(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let conf = softhsm_token(dir.path());
    if let Some(conf) = &conf {
        // Read by C_Initialize; set before any thread touches the module.
        std::env::set_var("SOFTHSM2_CONF", conf);
    }
    let soft = SoftTokens::open(dir.path().join("soft")).unwrap();
    soft.create_token("bench", &Pin::new(PIN), &Pin::new(SO_PIN))
        .unwrap();
    drop(soft);
    let options = certhall_agent::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        allow_origins: vec![ORIGIN.into()],
        pkcs11_module: conf.as_ref().map(|_| PathBuf::from(SOFTHSM)),
        pkcs11_optional: false,
        soft_token_dir: Some(dir.path().join("soft")),
        keep_blank_soft_token: false,
        state_dir: dir.path().join("state"),
    };
    let (listener, agent) = certhall_agent::bind(&options).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(certhall_agent::serve(
        listener,
        agent,
        std::future::pending(),
    ));
    let client = Client::new();

    println!("| agent operation | n | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|---|");
    let tokens: Value = client
        .get(format!("{base}/v1/tokens"))
        .header("Origin", ORIGIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for token in tokens["tokens"].as_array().unwrap() {
        let id = token["id"].as_str().unwrap().to_owned();
        let backend = token["backend"].as_str().unwrap().to_owned();
        let algorithms: &[&str] = if backend == "soft" {
            &["p256", "sm2", "rsa2048"]
        } else {
            &["p256", "rsa2048"]
        };
        let verify = format!("{base}/v1/tokens/{id}/pin/verify");
        let samples = time(n, || async {
            post(&client, &verify, json!({ "pin": PIN })).await;
        })
        .await;
        row(&format!("{backend}: verify PIN"), samples);
        for alg in algorithms {
            let generated = post(
                &client,
                &format!("{base}/v1/tokens/{id}/keys"),
                json!({ "pin": PIN, "algorithm": alg, "label": alg }),
            )
            .await;
            let key = generated["key"]["key_id"].as_str().unwrap().to_owned();
            // Signing needs a certificate for the key; the agent checks only
            // that it is for this key, so a throwaway CA will do.
            let cert = throwaway_certificate(generated["csr"].as_str().unwrap());
            post(
                &client,
                &format!("{base}/v1/tokens/{id}/keys/{key}/certificate"),
                json!({ "pin": PIN, "certificate": B64.encode(cert) }),
            )
            .await;
            let sign = format!("{base}/v1/tokens/{id}/keys/{key}/sign");
            let samples = time(n, || async {
                post(
                    &client,
                    &sign,
                    json!({ "pin": PIN, "challenge": "YmVuY2htYXJrLWNoYWxsZW5nZS0wMDAwMDAwMDAw" }),
                )
                .await;
            })
            .await;
            row(&format!("{backend}: sign ({alg})"), samples);
        }
        let listing = format!("{base}/v1/tokens");
        let samples = time(n, || async {
            let r = client
                .get(&listing)
                .header("Origin", ORIGIN)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            let _: Value = r.json().await.unwrap();
        })
        .await;
        row(
            &format!("media query (all tokens, after {backend})"),
            samples,
        );
    }
}

/// A certificate for the CSR's key, signed by a fresh software CA (the
/// agent does not check who issued it).
fn throwaway_certificate(csr_pem: &str) -> Vec<u8> {
    use certhall_ca::issue::{self, Issuer, Kind, Request};
    use certhall_ca::name::Subject;
    let verified = certhall_ca::csr::verify(csr_pem.as_bytes()).unwrap();
    let ca_key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
    let ca_subject = Subject::parse("CN=Bench CA").unwrap();
    let now = certhall_domain::Timestamp::from_millis(1_795_568_400_000);
    let serial = issue::random_serial();
    let (ca_cert, _) = issue::issue(
        Issuer {
            certificate: None,
            signer: &ca_key,
        },
        Request {
            serial: &serial,
            subject: ca_subject.to_name().unwrap(),
            public_key: ca_key.public_key_info().unwrap(),
            not_before: now,
            not_after: now.plus(Duration::from_secs(86_400 * 30)),
            kind: Kind::Root,
        },
    )
    .unwrap();
    let profile = certhall_ca::profile::Profile::enterprise();
    let urls = issue::CaUrls {
        crl: "http://bench/crl".into(),
        ocsp: "http://bench/ocsp".into(),
        ca_issuers: "http://bench/ca".into(),
    };
    let serial = issue::random_serial();
    let (_, der) = issue::issue(
        Issuer {
            certificate: Some(&ca_cert),
            signer: &ca_key,
        },
        Request {
            serial: &serial,
            subject: Subject::parse("CN=bench").unwrap().to_name().unwrap(),
            public_key: verified.public_key,
            not_before: now,
            not_after: now.plus(Duration::from_secs(86_400 * 30)),
            kind: Kind::EndEntity {
                profile: &profile,
                urls: &urls,
            },
        },
    )
    .unwrap();
    der
}

struct LoginKey {
    key: SoftwareKey,
    cert: Vec<u8>,
}

async fn login_once(client: &Client, base: &str, key: &LoginKey, site: &str) {
    let c = post(
        client,
        &format!("{base}/api/v1/auth/cert/challenge"),
        json!({}),
    )
    .await;
    let challenge = c["challenge"].as_str().unwrap();
    let message = SignedMessage {
        purpose: "login".into(),
        origin: site.into(),
        challenge: challenge.into(),
    }
    .to_bytes();
    let signature = key.key.sign(&message).unwrap();
    post(
        client,
        &format!("{base}/api/v1/auth/cert/login"),
        json!({
            "challenge": challenge,
            "certificate": B64.encode(&key.cert),
            "signed_data": B64.encode(&message),
            "signature": B64.encode(signature),
        }),
    )
    .await;
}

async fn server_part(n: usize, clients: usize) {
    let app = TestApp::sqlite().await;
    app.services.ca_ensure_demo().await.unwrap();
    let phone = certhall_domain::Phone::parse("13800138000").unwrap();
    let account = app.services.ensure_account(&phone).await.unwrap();
    let server = app.serve().await;
    let base = server.url("");
    println!();
    println!("| CertHall certificate login (API, SQLite) | n | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (family, alg) in [
        (Family::P256, KeyAlgorithm::EcP256),
        (Family::Sm2, KeyAlgorithm::Sm2),
    ] {
        let key = SoftwareKey::generate(alg).unwrap();
        let spki = key.public_key_info().unwrap().to_der().unwrap();
        let subject = certhall_agent::csr::subject_or_label(None, "bench").unwrap();
        let csr =
            certhall_agent::csr::build(&subject, alg, &spki, |tbs| Ok(key.sign(tbs).unwrap()))
                .unwrap();
        let row_ = app
            .services
            .ca_issue(
                &IssueInput {
                    family,
                    profile: "enterprise",
                    csr: &csr,
                    subject: "C=CN,O=基准测试有限公司,USCC=91350100M000100Y43,CN=基准测试有限公司",
                    account: Some(account),
                    order_id: None,
                    predecessor: None,
                    ends_by: None,
                },
                Actor::System,
            )
            .await
            .unwrap();
        let key = Arc::new(LoginKey {
            key,
            cert: row_.der,
        });
        let client = Client::new();
        let site = "http://127.0.0.1:8080";
        let samples = time(n, || {
            let (client, base, key) = (client.clone(), base.clone(), key.clone());
            async move { login_once(&client, &base, &key, site).await }
        })
        .await;
        row(&format!("{family}: challenge + login, sequential"), samples);

        // Throughput: `clients` concurrent clients, each from its own IP
        // (the per-IP challenge limit is 120/h).
        let per = n;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (base, key) = (base.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let client = Client::builder()
                    .default_headers(
                        [(
                            reqwest::header::HeaderName::from_static("x-forwarded-for"),
                            reqwest::header::HeaderValue::from_str(&format!(
                                "10.1.{}.{}",
                                family as u8,
                                c + 1
                            ))
                            .unwrap(),
                        )]
                        .into_iter()
                        .collect(),
                    )
                    .build()
                    .unwrap();
                for _ in 0..per.min(110) {
                    login_once(&client, &base, &key, site).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let total = clients * per.min(110);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "| {family}: {clients} concurrent clients, {total} logins | — | {:.1} logins/s | — | — |",
            total as f64 / secs
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = arg("--n", 50);
    let clients = arg("--clients", 8);
    agent_part(n).await;
    server_part(n, clients).await;
}
