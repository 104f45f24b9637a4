//! The `certhall` binary as users and operators run it: serve, graceful
//! shutdown, `audit verify` (intact and tampered), and two processes
//! sharing one PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use certhall_store::testing::TestDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_certhall");

/// A `certhall serve` child process on a free port.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data_dir: &Path, database_url: Option<&str>) -> Self {
        Self::start_with(
            data_dir,
            database_url,
            "127.0.0.1:0",
            &[("CERTHALL_DEMO_AGENT", "false")],
        )
    }

    fn start_with(
        data_dir: &Path,
        database_url: Option<&str>,
        listen: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--demo", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .envs(env.iter().copied())
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = database_url {
            cmd.env("DATABASE_URL", url);
        }
        let mut child = cmd.spawn().expect("start certhall serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("a startup line").unwrap();
        let base = first
            .split("http://")
            .nth(1)
            .map(|rest| format!("http://{}", rest.trim_end_matches('/')))
            .unwrap_or_else(|| panic!("unexpected startup line {first:?}"));
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("certhall did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn csrf_of(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Logs in on `server` through its pages; returns the `Cookie` header value.
async fn login(server: &Server, phone: &str) -> String {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client
        .get(server.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let r = client
        .post(server.url("/login/code"))
        .form(&[("_csrf", csrf.as_str()), ("phone", phone)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let outbox: serde_json::Value = client
        .get(server.url("/dev/outbox.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body = outbox[0]["body"].as_str().unwrap();
    let code: String = body.chars().filter(char::is_ascii_digit).take(6).collect();
    let r = client
        .post(server.url("/login"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("phone", phone),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("ch_session=")),
        "session cookie set"
    );
    assert!(
        cookies.iter().any(|c| c.starts_with("ch_bid=")),
        "browser id rotated"
    );
    cookies.join("; ")
}

async fn home_status(server: &Server, cookie: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(server.url("/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_then_audit_verify_detects_an_edited_row() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let cookie = login(&server, "13800138000").await;
    let (status, html) = home_status(&server, &cookie).await;
    assert_eq!(status, 200);
    assert!(html.contains("演示模式") && html.contains("欢迎使用CertHall网上营业厅"));
    let status = server.stop();
    assert!(
        status.success(),
        "graceful shutdown on SIGTERM exits 0, got {status:?}"
    );
    assert!(
        dir.path().join("certhall.db").exists(),
        "SQLite file in the data dir"
    );

    let verify = |dir: &Path| {
        Command::new(BIN)
            .args(["audit", "verify", "--data-dir"])
            .arg(dir)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    let out = verify(dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("audit chain intact"), "{text}");

    // Edit a row behind CertHall's back: the login's "code sent" entry.
    let store = certhall_store::Store::open_sqlite_file(&dir.path().join("certhall.db"))
        .await
        .unwrap();
    let events: Vec<String> = certhall_store::audit::page(&store, 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.clone())
        .collect();
    for e in [
        "ca.initialized",
        "sms.code_sent",
        "account.created",
        "login.succeeded",
    ] {
        assert!(events.contains(&e.to_owned()), "{e} audited: {events:?}");
    }
    let seq = certhall_store::audit::recent(&store, Some("sms.code_sent"), 1)
        .await
        .unwrap()[0]
        .seq;
    sqlx_update(
        &store,
        &format!("UPDATE audit_log SET ip = '203.0.113.9' WHERE seq = {seq}"),
    )
    .await;
    store.close().await;
    let out = verify(dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("BROKEN at row {seq}")), "{text}");

    // `migrate` alone works on an existing database.
    let out = Command::new(BIN)
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("sqlite"));
}

async fn sqlx_update(store: &certhall_store::Store, sql: &str) {
    let mut tx = store.begin_write().await.unwrap();
    certhall_store::raw_execute(&mut tx, sql).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_sessions_through_postgresql() {
    let Some(db) = TestDatabase::postgres().await.unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Both processes of one deployment share the data dir's secret key.
    let a = Server::start(dir.path(), Some(&db.url));
    let b = Server::start(dir.path(), Some(&db.url));
    assert_ne!(a.base, b.base);
    // Both started in demo mode at once: still one hierarchy per family.
    let cas = certhall_store::ca::authorities(&db.store).await.unwrap();
    for family in ["sm2", "p256"] {
        for role in ["root", "issuing", "ocsp"] {
            let n = cas
                .iter()
                .filter(|r| r.family == family && r.role == role && r.retired_at.is_none())
                .count();
            assert_eq!(n, 1, "{family} {role}");
        }
    }
    let cookie = login(&a, "13900139000").await;
    let (status, html) = home_status(&b, &cookie).await;
    assert_eq!(status, 200, "the session made on A works on B");
    assert!(html.contains("您好，139****9000"));
    let ready: serde_json::Value = reqwest::get(b.url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["database"], "postgresql");

    // Logging out on B ends the session on A too.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(b.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("_csrf", csrf_of(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (status, _) = home_status(&a, &cookie).await;
    assert_eq!(status, 303, "logged out everywhere");
    a.stop();
    b.stop();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Demo mode runs a key agent with a software token holding an SM2
/// certificate bound to the demo phone: a newcomer can log in with it. The
/// token survives a restart (same certificate, no second one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_offers_a_certificate_login() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let site_port = free_port();
    let agent = format!("http://127.0.0.1:{}", free_port());
    let listen = format!("127.0.0.1:{site_port}");
    let site = format!("http://{listen}");
    let client = reqwest::Client::new();
    let mut fingerprint = None;
    for round in 0..2 {
        let server =
            Server::start_with(dir.path(), None, &listen, &[("CERTHALL_AGENT_URL", &agent)]);
        let tokens: serde_json::Value = client
            .get(format!("{agent}/v1/tokens"))
            .header("Origin", &site)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let list = tokens["tokens"].as_array().unwrap();
        let token = list
            .iter()
            .find(|t| t["label"] == "演示UKey")
            .unwrap_or_else(|| panic!("no 演示UKey: {tokens}"));
        // …and a blank key for the demo producer (制证), kept available.
        assert_eq!(
            list.iter().filter(|t| t["initialized"] == false).count(),
            1,
            "round {round}: {tokens}"
        );
        let certs = token["certificates"].as_array().unwrap();
        assert_eq!(certs.len(), 1, "round {round}: {tokens}");
        assert_eq!(certs[0]["key_algorithm"], "sm2");
        assert_eq!(certs[0]["common_name"], "枣庄演示科技有限公司");
        let fp = certs[0]["fingerprint_sha256"].as_str().unwrap().to_owned();
        match &fingerprint {
            None => fingerprint = Some(fp),
            Some(first) => assert_eq!(first, &fp, "the demo certificate changed on restart"),
        }

        // The whole login through the API, as the page does it.
        let challenge: serde_json::Value = client
            .post(server.url("/api/v1/auth/cert/challenge"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let signed: serde_json::Value = client
            .post(format!(
                "{agent}/v1/tokens/{}/keys/{}/sign",
                token["id"].as_str().unwrap(),
                certs[0]["key_id"].as_str().unwrap()
            ))
            .header("Origin", &site)
            .json(&serde_json::json!({ "pin": "123456", "challenge": challenge["challenge"] }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let signed_text = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(signed["signed_data"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert!(
            signed_text.contains(&format!("origin: {site}")),
            "{signed_text}"
        );
        let login = client
            .post(server.url("/api/v1/auth/cert/login"))
            .json(&serde_json::json!({
                "challenge": challenge["challenge"],
                "certificate": signed["certificate"],
                "signed_data": signed["signed_data"],
                "signature": signed["signature"],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200);
        let token: serde_json::Value = login.json().await.unwrap();
        let me: serde_json::Value = client
            .get(server.url("/api/v1/me"))
            .bearer_auth(token["token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["phone"], "13800138000", "{me}");
        if round == 1 {
            let bearer = token["token"].as_str().unwrap().to_owned();
            renew_the_demo_certificate(&server, &agent, &site, &bearer).await;
        }
        assert!(server.stop().success());
    }
}

/// 证书更新 of the demo certificate in demo mode, through the API as
/// `static/renew.js` does it with the demo agent: demo mode opens renewal
/// at once; the old SM2 key proves itself, a new SM2 key pair is made in the
/// same software token, and the new certificate replaces the old one there.
async fn renew_the_demo_certificate(server: &Server, agent: &str, site: &str, bearer: &str) {
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, url: String, body: serde_json::Value| {
        let client = client.clone();
        async move {
            let r = client
                .request(method, url)
                .header("Origin", site)
                .bearer_auth(bearer)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let (_, tokens) = call(
        reqwest::Method::GET,
        format!("{agent}/v1/tokens"),
        serde_json::json!({}),
    )
    .await;
    let token = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "演示UKey")
        .unwrap()
        .clone();
    let tid = token["id"].as_str().unwrap().to_owned();
    let old = token["certificates"][0].clone();
    let serial = old["serial"].as_str().unwrap().to_owned();
    let api = |rest: &str| server.url(&format!("/api/v1{rest}"));

    let (status, challenge) = call(
        reqwest::Method::POST,
        api(&format!("/certificates/{serial}/renewal/challenge")),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, 200, "demo mode opens renewal at once: {challenge}");
    let (_, signed) = call(
        reqwest::Method::POST,
        format!("{agent}/v1/tokens/{tid}/keys/{}/sign", old["key_id"].as_str().unwrap()),
        serde_json::json!({ "pin": "123456", "challenge": challenge["challenge"], "purpose": "renew" }),
    )
    .await;
    let (status, sent) = call(
        reqwest::Method::POST,
        api(&format!("/certificates/{serial}/renewal/code")),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let outbox: serde_json::Value = client
        .get(server.url("/dev/outbox.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body = outbox[0]["body"].as_str().unwrap();
    assert!(body.contains("证书更新"), "{body}");
    let at = body.find("验证码为").unwrap() + "验证码为".len();
    let code: String = body[at..].chars().take(6).collect();
    let (status, started) = call(
        reqwest::Method::POST,
        api(&format!("/certificates/{serial}/renewals")),
        serde_json::json!({
            "token_serial": token["serial"], "code": code, "challenge": challenge["challenge"],
            "signed_data": signed["signed_data"], "signature": signed["signature"],
        }),
    )
    .await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["algorithm"], "sm2");
    let id = started["renewal"]["id"].as_i64().unwrap();
    let (status, made) = call(
        reqwest::Method::POST,
        format!("{agent}/v1/tokens/{tid}/keys"),
        serde_json::json!({ "pin": "123456", "algorithm": "sm2", "label": started["key_label"] }),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let key_id = made["key"]["key_id"].as_str().unwrap().to_owned();
    let (status, issued) = call(
        reqwest::Method::POST,
        api(&format!("/renewals/{id}/csr")),
        serde_json::json!({ "csr": made["csr"], "key_id": key_id }),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let (status, stored) = call(
        reqwest::Method::POST,
        format!("{agent}/v1/tokens/{tid}/keys/{key_id}/certificate"),
        serde_json::json!({ "pin": "123456", "certificate": issued["certificate"], "chain": issued["chain"] }),
    )
    .await;
    assert!((200..300).contains(&status), "{stored}");
    let (_, tokens) = call(
        reqwest::Method::GET,
        format!("{agent}/v1/tokens"),
        serde_json::json!({}),
    )
    .await;
    let read_back = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == tid.as_str())
        .unwrap()["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key_id"] == key_id.as_str())
        .unwrap()["certificate"]
        .clone();
    let (status, done) = call(
        reqwest::Method::POST,
        api(&format!("/renewals/{id}/written")),
        serde_json::json!({ "certificate": read_back }),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["certificate"]["serial"], issued["serial"]);
}

/// `certhall app add|edit|list`: the catalogue from the command line, with
/// Demo mode is asked for, never inferred, and commands that only look
/// create nothing (issue 14): `serve` without an SMS provider refuses to
/// start, and `audit verify` on a production data folder leaves it as it
/// was.
#[test]
fn no_demo_by_accident_and_read_only_commands_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let certhall = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("DATABASE_URL")
            .env_remove("CERTHALL_DEMO")
            .env_remove("CERTHALL_CA_PASSPHRASE")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let files = || -> Vec<String> {
        let mut all = Vec::new();
        let mut stack = vec![data.clone()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p.clone());
                }
                let name = p.strip_prefix(&data).unwrap().display().to_string();
                // SQLite's own companions of a WAL database, which any
                // reader opens: not files CertHall creates.
                if !name.ends_with("-wal") && !name.ends_with("-shm") {
                    all.push(name);
                }
            }
        }
        all.sort();
        all
    };

    // No [sms] and no --demo: serve refuses, before creating anything.
    let (code, text) = certhall(&["serve", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("no SMS provider configured") && text.contains("--demo"),
        "{text}"
    );
    assert!(!data.exists(), "serve created {:?}", files());
    // A misspelt section is refused, not taken for demo mode.
    let conf = dir.path().join("certhall.toml");
    std::fs::write(&conf, "[smss]\nprovider = \"aliyun\"\n").unwrap();
    let (code, text) = certhall(&["serve", "--config", conf.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("unknown field"), "{text}");

    // Read-only commands on a folder with no database: a clear error,
    // and still nothing created.
    let (code, text) = certhall(&["audit", "verify"], &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no CertHall database"), "{text}");
    assert!(!data.exists(), "audit verify created {:?}", files());

    // A production folder (migrated, CA passphrase from the environment).
    let (code, text) = certhall(&["migrate"], &[]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = certhall(
        &[
            "app",
            "add",
            "--code",
            "zzggzy",
            "--name",
            "枣庄公共资源交易",
            "--price",
            "300",
        ],
        &[("CERTHALL_CA_PASSPHRASE", "production passphrase 2026")],
    );
    assert_eq!(code, Some(0), "{text}");
    let before = files();
    let db = std::fs::read(data.join("certhall.db")).unwrap();
    for args in [
        &["audit", "verify"][..],
        &["app", "list"],
        &["operator", "list"],
        &["key-model", "list"],
        &["ca", "list"],
        &["ca", "profile", "list"],
        &[
            "payment",
            "report",
            "--from",
            "2026-01-01",
            "--to",
            "2026-12-31",
        ],
    ] {
        let (code, text) = certhall(args, &[]);
        assert_eq!(code, Some(0), "{args:?}: {text}");
        assert_eq!(files(), before, "{args:?} created files");
    }
    assert!(!data.join("ca/passphrase").exists());
    assert!(!data.join("secret.key").exists() || before.contains(&"secret.key".to_owned()));
    assert_eq!(
        std::fs::read(data.join("certhall.db")).unwrap(),
        db,
        "the database is unchanged"
    );
}

/// Chinese refusals.
#[test]
fn the_application_catalogue_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = run(&[
        "app",
        "add",
        "--code",
        "zzggzy",
        "--name",
        "枣庄公共资源交易",
        "--price",
        "300",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = run(&[
        "app",
        "edit",
        "zzggzy",
        "--price",
        "280.50",
        "--validity-days",
        "730",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["app", "list"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("zzggzy\t枣庄公共资源交易\tenterprise\tsm2\t730 天\t280.50 元\t启用"),
        "{out}"
    );
    let (ok, out) = run(&[
        "app", "add", "--code", "zzggzy", "--name", "重复", "--price", "1",
    ]);
    assert!(!ok && out.contains("已存在"), "{out}");
    let (ok, out) = run(&["app", "edit", "zzggzy", "--price", "abc"]);
    assert!(!ok && out.contains("价格格式不正确"), "{out}");
    let (ok, out) = run(&["app", "edit", "nope", "--price", "1"]);
    assert!(!ok && out.contains("不存在"), "{out}");
}

/// The payment reconciliation runs once per tick across two `certhall
/// serve` processes on one PostgreSQL (a lease in the database): an
/// expired payment left `paying` is queried and closed — once — at the
/// demo WeChat Pay the processes talk to, and no tick runs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_run_the_payment_job_once_per_tick() {
    use certhall_domain::order::{OrderKind, OrderState};
    use certhall_domain::payment::{AttemptState, Channel};
    use certhall_domain::{Phone, Timestamp};
    let Some(db) = TestDatabase::postgres().await.unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    #[allow(clippy::disallowed_methods)]
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let now = Timestamp::from_millis(now_ms);
    // An order waiting for payment whose QR code expired a minute ago,
    // unpaid at the provider (the demo simulator's ledger).
    let mut tx = db.store.begin_write().await.unwrap();
    let account =
        certhall_store::accounts::create(&mut tx, &Phone::parse("13900139077").unwrap(), now)
            .await
            .unwrap();
    let order = certhall_store::orders::create(
        &mut tx,
        account,
        OrderKind::New,
        OrderState::AwaitingPayment,
        now,
    )
    .await
    .unwrap();
    let no = "CH00000001T001TWOPRC";
    let created = now.minus(Duration::from_secs(31 * 60));
    certhall_store::payments::insert_attempt(
        &mut tx,
        &certhall_store::payments::NewAttempt {
            order_id: order.id.0,
            seq: 1,
            channel: Channel::Wechat,
            out_trade_no: no,
            amount_fen: 38_000,
            description: "CertHall 证书新办",
            code_url: "http://127.0.0.1/dev/cashier/x",
            created_at: created,
            expires_at: created.plus(Duration::from_secs(30 * 60)),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    certhall_store::demo_pay::insert_trade(
        &db.store,
        &certhall_store::demo_pay::DemoTrade {
            out_trade_no: no.into(),
            description: "CertHall 证书新办".into(),
            amount_fen: 38_000,
            state: "NOTPAY".into(),
            transaction_id: None,
            notify_url: "http://127.0.0.1/notify".into(),
            created_at: created,
            expires_at: created.plus(Duration::from_secs(30 * 60)),
            paid_at: None,
        },
    )
    .await
    .unwrap();

    let env = [
        ("CERTHALL_DEMO_AGENT", "false"),
        ("CERTHALL_PAYMENT_JOB_INTERVAL_SECS", "1"),
    ];
    let a = Server::start_with(
        dir.path(),
        Some(&db.url),
        &format!("127.0.0.1:{}", free_port()),
        &env,
    );
    let b = Server::start_with(
        dir.path(),
        Some(&db.url),
        &format!("127.0.0.1:{}", free_port()),
        &env,
    );
    let started = std::time::Instant::now();
    // Let both run a few ticks.
    let mut closed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let att = certhall_store::payments::attempt_by_no(&db.store, no)
            .await
            .unwrap()
            .unwrap();
        if att.state == AttemptState::Closed {
            closed = true;
            break;
        }
    }
    assert!(closed, "the expired payment was not closed by the job");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Stop the process that has been running the ticks: the other takes
    // over within a tick or two (its lease claims succeed now).
    let runs = certhall_store::jobs::runs(&db.store, "payments")
        .await
        .unwrap();
    let last_holder = runs.last().unwrap().holder.clone();
    let pid_a = format!(":{}:", a.child.id());
    let (stopped, survivor) = if last_holder.contains(&pid_a) {
        (a, b)
    } else {
        (b, a)
    };
    let stopped_pid = format!(":{}:", stopped.child.id());
    stopped.stop();
    let handed_over = runs.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let elapsed = started.elapsed().as_secs_f64();
    survivor.stop();

    let trade = certhall_store::demo_pay::trade(&db.store, no)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(trade.state, "CLOSED", "closed at the provider too");
    let att = certhall_store::payments::attempt_by_no(&db.store, no)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(att.settled_by.as_deref(), Some("job"));
    let runs = certhall_store::jobs::runs(&db.store, "payments")
        .await
        .unwrap();
    let slots: std::collections::BTreeSet<i64> = runs.iter().map(|r| r.slot).collect();
    assert_eq!(slots.len(), runs.len(), "a tick ran twice");
    // Two processes ticking every second for `elapsed` seconds: about one
    // run per second in all, not two.
    assert!(
        (runs.len() as f64) <= elapsed + 2.0,
        "{} runs in {elapsed:.1} s",
        runs.len()
    );
    assert!(
        runs.len() >= 4,
        "only {} runs in {elapsed:.1} s",
        runs.len()
    );
    let closing: Vec<_> = runs
        .iter()
        .filter(|r| r.summary.as_deref().is_some_and(|s| s.contains("closed=1")))
        .collect();
    assert_eq!(
        closing.len(),
        1,
        "the attempt was closed in one run: {runs:?}"
    );
    let after: Vec<_> = runs[handed_over..].iter().collect();
    assert!(
        after.len() >= 2 && after.iter().all(|r| !r.holder.contains(&stopped_pid)),
        "the other process did not take over: {after:?}"
    );
    let holders: std::collections::BTreeSet<&str> =
        runs.iter().map(|r| r.holder.as_str()).collect();
    assert_eq!(holders.len(), 2, "{holders:?}");
    println!(
        "payment job: {} runs by {} processes in {elapsed:.1} s",
        runs.len(),
        holders.len()
    );
}

/// `certhall key-model …`: models, stock per colour with a record of every
/// move, which applications offer them; refusals in Chinese. And
/// `certhall payment report` on an empty period.
#[test]
fn key_models_and_their_stock_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = run(&[
        "key-model",
        "add",
        "--code",
        "ukey-a",
        "--name",
        "标准 UKey",
        "--price",
        "80",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = run(&[
        "key-model",
        "stock",
        "ukey-a",
        "--colour",
        "red",
        "--add",
        "30",
        "--reason",
        "入库",
    ]);
    assert!(ok && out.contains("库存合计 30"), "{out}");
    let (ok, out) = run(&[
        "key-model",
        "stock",
        "ukey-a",
        "--colour",
        "蓝",
        "--add",
        "5",
        "--reason",
        "入库",
    ]);
    assert!(ok && out.contains("库存合计 35"), "{out}");
    let (ok, out) = run(&[
        "key-model",
        "stock",
        "ukey-a",
        "--colour",
        "blue",
        "--add",
        "-6",
        "--reason",
        "损坏",
    ]);
    assert!(!ok && out.contains("蓝Key库存不足"), "{out}");
    let (ok, out) = run(&[
        "key-model",
        "stock",
        "ukey-a",
        "--colour",
        "green",
        "--add",
        "1",
        "--reason",
        "x",
    ]);
    assert!(!ok && out.contains("red 或 blue"), "{out}");
    let (ok, out) = run(&[
        "key-model",
        "edit",
        "ukey-a",
        "--price",
        "88.80",
        "--active",
        "false",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["key-model", "list"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("ukey-a\t标准 UKey\t88.80 元\t红Key 30 / 蓝Key 5\t已占用 0\t可用 35\t停用"),
        "{out}"
    );
    let (ok, out) = run(&[
        "key-model",
        "add",
        "--code",
        "ukey-a",
        "--name",
        "x",
        "--price",
        "1",
    ]);
    assert!(!ok && out.contains("已存在"), "{out}");
    let (ok, out) = run(&[
        "key-model",
        "add",
        "--code",
        "UKEY",
        "--name",
        "x",
        "--price",
        "1",
    ]);
    assert!(!ok && out.contains("小写字母"), "{out}");
    let (ok, out) = run(&[
        "app",
        "add",
        "--code",
        "zzggzy",
        "--name",
        "枣庄公共资源交易",
        "--price",
        "300",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = run(&[
        "key-model",
        "offer",
        "--app",
        "zzggzy",
        "--models",
        "ukey-a",
    ]);
    assert!(ok && out.contains("ukey-a"), "{out}");
    let (ok, out) = run(&["key-model", "offer", "--app", "zzggzy", "--models", "nope"]);
    assert!(!ok && out.contains("不存在"), "{out}");
    let (ok, out) = run(&[
        "payment",
        "report",
        "--from",
        "2026-12-01",
        "--to",
        "2026-12-05",
    ]);
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 1, "only the header: {out}");
    let (ok, out) = run(&["payment", "report", "--from", "12/01"]);
    assert!(!ok && out.contains("YYYY-MM-DD"), "{out}");
}
