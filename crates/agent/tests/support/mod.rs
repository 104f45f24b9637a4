//! Test support: a private SoftHSM2 token store, software tokens and a
//! running `certhall-agent` process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

pub const DEBIAN_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const PIN: &str = "123456";
pub const SO_PIN: &str = "12345678";
pub const ORIGIN: &str = "http://portal.certhall.test";

/// Which token the agent serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SoftHSM2 token through PKCS#11.
    SoftHsm,
    /// A software token.
    Soft,
}

/// SoftHSM2 is needed; `None` (after printing SKIPPED) without it, except
/// under CI=true, where its absence fails the test.
pub fn softhsm_available() -> bool {
    let ok = Path::new(DEBIAN_MODULE).exists()
        && Command::new("softhsm2-util")
            .arg("--version")
            .output()
            .is_ok();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but softhsm2 is not installed: apt-get install -y softhsm2"
        );
        certhall_store::testing::report_skip(
            "softhsm2 not installed (scripts/test.sh installs it)",
        );
    }
    ok
}

/// A running agent with one token, in its own directories.
pub struct AgentUnderTest {
    pub dir: TempDir,
    pub url: String,
    pub token_id: String,
    pub backend: Backend,
    child: Child,
}

impl Drop for AgentUnderTest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_certhall-agent"))
}

impl AgentUnderTest {
    /// Starts an agent serving one fresh token labelled `label`, answering
    /// pages of `origins`.
    pub async fn start(backend: Backend, label: &str, origins: &[&str]) -> Self {
        Self::start_on(backend, label, origins, "127.0.0.1:0").await
    }

    /// The same, listening on `listen`.
    pub async fn start_on(backend: Backend, label: &str, origins: &[&str], listen: &str) -> Self {
        Self::start_with(backend, label, origins, listen, &[]).await
    }

    /// The same, with more agent flags.
    pub async fn start_with(
        backend: Backend,
        label: &str,
        origins: &[&str],
        listen: &str,
        extra: &[&str],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let soft_dir = dir.path().join("soft");
        let conf = dir.path().join("softhsm2.conf");
        let mut args: Vec<String> = vec![
            "--listen".into(),
            listen.into(),
            "--soft-token-dir".into(),
            soft_dir.display().to_string(),
            "--state-dir".into(),
            dir.path().join("state").display().to_string(),
        ];
        for o in origins {
            args.push("--allow-origin".into());
            args.push((*o).into());
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        match backend {
            Backend::SoftHsm => {
                let tokens = dir.path().join("tokens");
                std::fs::create_dir(&tokens).unwrap();
                std::fs::write(
                    &conf,
                    format!(
                        "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                        tokens.display()
                    ),
                )
                .unwrap();
                let out = Command::new("softhsm2-util")
                    .env("SOFTHSM2_CONF", &conf)
                    .args([
                        "--init-token",
                        "--free",
                        "--label",
                        label,
                        "--so-pin",
                        SO_PIN,
                        "--pin",
                        PIN,
                    ])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "softhsm2-util: {out:?}");
                args.push("--pkcs11-module".into());
                args.push(DEBIAN_MODULE.into());
            }
            Backend::Soft => {
                let mut child = Command::new(agent_exe())
                    .args(["--soft-token-dir", &soft_dir.display().to_string()])
                    .args(["init-soft-token", "--label", label])
                    // The user PIN from the environment, the SO PIN from
                    // standard input: both ways a PIN may come.
                    .env("CERTHALL_AGENT_PIN", PIN)
                    .env_remove("CERTHALL_AGENT_SO_PIN")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                {
                    use std::io::Write;
                    let mut stdin = child.stdin.take().unwrap();
                    writeln!(stdin, "{SO_PIN}").unwrap();
                }
                let out = child.wait_with_output().unwrap();
                assert!(out.status.success(), "init-soft-token: {out:?}");
                args.push("--no-pkcs11".into());
            }
        }
        let mut child = Command::new(agent_exe())
            .args(&args)
            .env("SOFTHSM2_CONF", &conf)
            .env("RUST_LOG", "certhall_agent=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("certhall-agent listening on ")
            .unwrap_or_else(|| panic!("unexpected agent output {line:?}"))
            .to_owned();
        let mut agent = Self {
            dir,
            url,
            token_id: String::new(),
            backend,
            child,
        };
        agent.token_id = agent.find_token(label).await;
        agent
    }

    async fn find_token(&self, label: &str) -> String {
        let url = format!("{}/v1/tokens", self.url);
        let body: serde_json::Value = reqwest::Client::new()
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["label"] == label)
            .unwrap_or_else(|| panic!("token {label} not listed: {body}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a blank software token in the agent's software-token
    /// directory with `certhall-agent new-blank-soft-token`; its token id.
    pub fn new_blank_soft_token(&self) -> String {
        let out = Command::new(agent_exe())
            .args(["new-blank-soft-token", "--soft-token-dir"])
            .arg(self.dir.path().join("soft"))
            .output()
            .unwrap();
        assert!(out.status.success(), "new-blank-soft-token: {out:?}");
        let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(id.starts_with("soft-") && id.len() == 21, "{id:?}");
        id
    }

    pub fn path(&self, rest: &str) -> String {
        format!("{}/v1/tokens/{}{rest}", self.url, self.token_id)
    }

    /// POSTs `body` to the token's `rest` as a page of [`ORIGIN`] does:
    /// the status and the JSON answer (`Null` when there is none).
    pub async fn post(
        &self,
        rest: &str,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let r = reqwest::Client::new()
            .post(self.path(rest))
            .header("Origin", ORIGIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Every token the agent lists now (asked as a local program, without
    /// an `Origin`, so it works whatever pages the agent answers).
    pub async fn all_tokens(&self) -> Vec<serde_json::Value> {
        let body: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/v1/tokens", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["tokens"].as_array().unwrap().clone()
    }

    /// The token as the agent lists it now.
    pub async fn token(&self) -> serde_json::Value {
        self.all_tokens()
            .await
            .into_iter()
            .find(|t| t["id"] == self.token_id.as_str())
            .unwrap_or_else(|| panic!("token {} not listed", self.token_id))
    }
}

/// Runs openssl in `dir`; (success, output).
pub fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A port that was free a moment ago (for a process that must know its
/// peer's address before either starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The subject CertHall certifies in these tests (verified data).
pub const SUBJECT: &str =
    "C=CN,ST=山东省,L=枣庄市,O=枣庄测试建设有限公司,USCC=91350100M000100Y43,CN=枣庄测试建设有限公司";

/// Logs `phone` in once by SMS so its account exists; returns the account.
pub async fn account(app: &certhall_testkit::TestApp, phone: &str) -> certhall_domain::AccountId {
    let meta = certhall_service::RequestMeta::default();
    app.services.send_login_code(phone, &meta).await.unwrap();
    let code = app.latest_code(phone).await.unwrap();
    app.services
        .verify_login_code(
            phone,
            &code,
            certhall_store::sessions::SessionKind::Api,
            None,
            &meta,
        )
        .await
        .unwrap()
        .account_id
}

/// Issues an enterprise P-256 certificate for `csr` (PEM), bound to
/// `account` when given.
pub async fn issue(
    app: &certhall_testkit::TestApp,
    csr: &[u8],
    account: Option<certhall_domain::AccountId>,
) -> certhall_store::ca::CertificateRow {
    issue_under(app, "enterprise", csr, account).await
}

/// The same under another profile.
pub async fn issue_under(
    app: &certhall_testkit::TestApp,
    profile: &str,
    csr: &[u8],
    account: Option<certhall_domain::AccountId>,
) -> certhall_store::ca::CertificateRow {
    app.services.ca_ensure_demo().await.unwrap();
    app.services
        .ca_issue(
            &certhall_service::ca::IssueInput {
                family: certhall_ca::Family::P256,
                profile,
                csr,
                subject: SUBJECT,
                account,
                order_id: None,
                predecessor: None,
                ends_by: None,
            },
            certhall_domain::audit::Actor::Cli("test".into()),
        )
        .await
        .unwrap()
}

/// One app per database (SQLite, and PostgreSQL when it answers; under
/// CI=true always), each with its web pages pointing at an agent on a
/// free local port (start it with [`AgentUnderTest::start_on`]).
pub async fn apps_with_agent_port() -> Vec<certhall_testkit::TestApp> {
    use certhall_store::testing::TestDatabase;
    let mut dbs = vec![TestDatabase::sqlite().await.unwrap()];
    dbs.extend(TestDatabase::postgres().await.unwrap());
    dbs.into_iter()
        .map(|db| {
            certhall_testkit::TestApp::with_web(
                db,
                certhall_web::WebConfig {
                    agent_url: format!("http://127.0.0.1:{}", free_port()),
                    ..certhall_web::WebConfig::for_tests()
                },
            )
        })
        .collect()
}

/// PEM of a certificate the agent lists (base64 DER).
pub fn pem(der_b64: &str) -> String {
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(der_b64)
        .unwrap();
    certhall_ca::issue::to_pem(&der).unwrap()
}
