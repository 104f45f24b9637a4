//! Configuration in two layers (STYLE.md §9): what the file, the
//! environment and the command line say ([`FileConfig`], flags), then the
//! validated [`RuntimeConfig`] the server runs with, secrets masked.
//!
//! Precedence, highest first: command-line flag, `CERTHALL_*` environment
//! variable (clap reads both), TOML file given by `--config`, default.
//! `DATABASE_URL` selects PostgreSQL; without it the SQLite file
//! `<data-dir>/certhall.db` is used.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use certhall_domain::secret::ServerSecret;
use certhall_notify::aliyun::AliyunConfig;
use certhall_payment::alipay::AlipayConfig;
use certhall_payment::wechat::WechatConfig;
use serde::Deserialize;

/// `[renewal]`: the online renewal window (证书更新), in days around a
/// certificate's end of validity.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalConfig {
    /// Renewal opens this many days before expiry (default 90).
    pub days_before_expiry: Option<u64>,
    /// Renewal stays open this many days after expiry (default 365).
    pub days_after_expiry: Option<u64>,
    /// What a renewal costs, in fen (default 0: free). Above 0 the
    /// applicant pays through the payment flow before the key write.
    pub price_fen: Option<i64>,
}

/// The TOML file, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Directory for the SQLite file and the generated secret key.
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` or `sqlite://…`.
    pub database_url: Option<String>,
    /// Set `Secure` on cookies (serve over HTTPS).
    pub secure_cookies: Option<bool>,
    /// Trust `X-Forwarded-For` (behind a reverse proxy).
    pub trust_forwarded_for: Option<bool>,
    /// Idle minutes after which a session ends.
    pub session_idle_minutes: Option<u64>,
    /// File holding the server secret (≥ 32 bytes).
    pub secret_key_file: Option<PathBuf>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// Demo mode (demo CA, demo SMS outbox, demo cashier and courier, a
    /// demo operator with a published password). Never inferred: a
    /// production server with a typo in its config must not start as a
    /// demo.
    pub demo: Option<bool>,
    /// SMS provider; required by `serve` outside demo mode.
    pub sms: Option<SmsConfig>,
    /// Public base URL (CRL, OCSP and CA certificate links in certificates).
    pub public_url: Option<String>,
    /// `[renewal]`: when certificates may be renewed online.
    pub renewal: Option<RenewalConfig>,
    /// File holding the passphrase of the CA key files.
    pub ca_passphrase_file: Option<PathBuf>,
    /// File holding the PIN of the PKCS#11 token with CA keys.
    pub ca_pkcs11_pin_file: Option<PathBuf>,
    /// Where pages find the local key agent (证书助手).
    pub agent_url: Option<String>,
    /// Other origins CertHall's pages are served from (besides public_url).
    pub extra_origins: Option<Vec<String>>,
    /// In demo mode, run a key agent with a demo software token inside
    /// CertHall (default true).
    pub demo_agent: Option<bool>,
    /// Directory of the business-license OCR models (default models/ocr).
    pub ocr_models_dir: Option<PathBuf>,
    /// File holding the shared secret of the SMS provider's inbound push
    /// (`POST /hooks/sms/inbound`); without it the route is closed.
    pub sms_inbound_token_file: Option<PathBuf>,
    /// Online payment (第七步); see [`PaymentConfig`].
    pub payment: Option<PaymentConfig>,
    /// The courier shipping produced keys (第八步); absent: the demo
    /// courier in demo mode, no shipping otherwise.
    pub courier: Option<certhall_courier::CourierConfig>,
}

/// The `[payment]` section: the providers and the timing. Without a
/// provider, demo mode pays at the demo cashier and a production server
/// offers no online payment.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentConfig {
    /// Minutes a payment QR code is valid [default: 30].
    pub attempt_minutes: Option<u64>,
    /// Seconds before the job asks the provider about an unpaid attempt
    /// [default: 120].
    pub query_after_secs: Option<u64>,
    /// Seconds between runs of the reconciliation job [default: 60].
    pub job_interval_secs: Option<u64>,
    /// WeChat Pay API v3 (Native).
    pub wechat: Option<WechatConfig>,
    /// Alipay OpenAPI (当面付 precreate).
    pub alipay: Option<AlipayConfig>,
}

/// Which SMS provider to use.
#[derive(Debug, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase", deny_unknown_fields)]
pub enum SmsConfig {
    /// The demo outbox (demo mode).
    Demo,
    /// Alibaba Cloud SMS.
    Aliyun(AliyunConfig),
}

/// Settings given on the command line or in `CERTHALL_*` variables.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "CERTHALL_LISTEN")]
    pub listen: Option<String>,
    /// Set `Secure` on cookies (when served over HTTPS).
    #[arg(long, env = "CERTHALL_SECURE_COOKIES")]
    pub secure_cookies: Option<bool>,
    /// Trust the `X-Forwarded-For` header for the client IP.
    #[arg(long, env = "CERTHALL_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: Option<bool>,
    /// Session idle timeout in minutes [default: 30].
    #[arg(long, env = "CERTHALL_SESSION_IDLE_MINUTES")]
    pub session_idle_minutes: Option<u64>,
    /// Where pages find the local key agent [default: http://127.0.0.1:17845].
    #[arg(long, env = "CERTHALL_AGENT_URL")]
    pub agent_url: Option<String>,
    /// In demo mode, run a key agent with a demo software token [default: true].
    #[arg(long, env = "CERTHALL_DEMO_AGENT")]
    pub demo_agent: Option<bool>,
    /// Directory of the business-license OCR models, as put there by
    /// scripts/fetch-ocr-models.sh [default: models/ocr]. Without them
    /// the applicant types the license's fields.
    #[arg(long, env = "CERTHALL_OCR_MODELS")]
    pub ocr_models_dir: Option<PathBuf>,
    /// Seconds between runs of the payment reconciliation job
    /// [default: 60, or [payment] job_interval_secs].
    #[arg(long, env = "CERTHALL_PAYMENT_JOB_INTERVAL_SECS")]
    pub payment_job_interval_secs: Option<u64>,
}

/// Settings every subcommand shares.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct CommonArgs {
    /// Demo mode: demo CA, SMS outbox, cashier and courier, demo
    /// applications and operator. Only for trying CertHall out.
    #[arg(long, global = true, env = "CERTHALL_DEMO")]
    pub demo: bool,
    /// TOML configuration file.
    #[arg(long, global = true, env = "CERTHALL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./data].
    #[arg(long, global = true, env = "CERTHALL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL; PostgreSQL when `postgres://…`.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// File holding the server secret.
    #[arg(long, global = true, env = "CERTHALL_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Log format: text or json [default: text].
    #[arg(long, global = true, env = "CERTHALL_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Public base URL written into certificates [default: http://<listen>].
    #[arg(long, global = true, env = "CERTHALL_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// File holding the CA key passphrase (or set CERTHALL_CA_PASSPHRASE).
    #[arg(long, global = true, env = "CERTHALL_CA_PASSPHRASE_FILE")]
    pub ca_passphrase_file: Option<PathBuf>,
    /// File holding the PKCS#11 PIN for CA keys (or set CERTHALL_CA_PKCS11_PIN).
    #[arg(long, global = true, env = "CERTHALL_CA_PKCS11_PIN_FILE")]
    pub ca_pkcs11_pin_file: Option<PathBuf>,
}

/// The validated configuration.
pub struct RuntimeConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The database URL (may hold a password).
    pub database_url: String,
    /// `Secure` cookies.
    pub secure_cookies: bool,
    /// Trust `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// Session idle timeout.
    pub session_idle: Duration,
    /// Where the secret key lives.
    pub secret_key_file: PathBuf,
    /// JSON logs.
    pub json_logs: bool,
    /// Demo mode, asked for by `--demo` or `demo = true`.
    pub demo: bool,
    /// The SMS provider: the demo outbox in demo mode, `None` when no
    /// provider is configured (then `serve` refuses to start).
    pub sms: Option<SmsConfig>,
    /// Public base URL, no trailing slash.
    pub public_url: String,
    /// CA key passphrase file, if configured.
    pub ca_passphrase_file: Option<PathBuf>,
    /// PKCS#11 PIN file, if configured.
    pub ca_pkcs11_pin_file: Option<PathBuf>,
    /// Where pages find the local key agent.
    pub agent_url: String,
    /// Other origins of CertHall's pages.
    pub extra_origins: Vec<String>,
    /// Run the demo key agent (demo mode only).
    pub demo_agent: bool,
    /// Where the OCR models are.
    pub ocr_models_dir: PathBuf,
    /// The inbound-SMS push secret, if configured.
    pub sms_inbound_token: Option<String>,
    /// Payment providers and timing.
    pub payment: PaymentConfig,
    /// `[courier]`, if given.
    pub courier: Option<certhall_courier::CourierConfig>,
    /// Seconds between runs of the payment job.
    pub payment_job_interval: Duration,
    /// When certificates may be renewed online.
    pub renewal_window: certhall_domain::lifecycle::RenewalWindow,
    /// `[renewal] price_fen`: what a renewal costs (0: free).
    pub renewal_price_fen: i64,
}

impl fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &certhall_store::redact_url(&self.database_url),
            )
            .field("secure_cookies", &self.secure_cookies)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("session_idle", &self.session_idle)
            .field("secret_key_file", &self.secret_key_file)
            .field("json_logs", &self.json_logs)
            .field("demo", &self.demo)
            .field("sms", &self.sms)
            .field("public_url", &self.public_url)
            .field("agent_url", &self.agent_url)
            .field("extra_origins", &self.extra_origins)
            .field("demo_agent", &self.demo_agent)
            .field("ocr_models_dir", &self.ocr_models_dir)
            .field(
                "sms_inbound_token",
                &self.sms_inbound_token.as_ref().map(|_| "***"),
            )
            .field("ca_passphrase_file", &self.ca_passphrase_file)
            .field("ca_pkcs11_pin_file", &self.ca_pkcs11_pin_file)
            .field("payment", &self.payment)
            .field("courier", &self.courier)
            .field("payment_job_interval", &self.payment_job_interval)
            .finish()
    }
}

impl RuntimeConfig {
    /// Merges the layers and validates.
    pub fn resolve(common: &CommonArgs, serve: &ServeArgs) -> anyhow::Result<Self> {
        let file = match &common.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = common
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let listen_text = serve
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("--listen {listen_text:?} is not an address like 127.0.0.1:8080")
        })?;
        let database_url = match common.database_url.clone().or(file.database_url) {
            Some(u) if !u.is_empty() => u,
            _ => certhall_store::sqlite_url(&data_dir.join("certhall.db")),
        };
        let idle_minutes = serve
            .session_idle_minutes
            .or(file.session_idle_minutes)
            .unwrap_or(30);
        if !(1..=24 * 60).contains(&idle_minutes) {
            bail!("session idle timeout must be between 1 and 1440 minutes, got {idle_minutes}");
        }
        let log_format = common
            .log_format
            .clone()
            .or(file.log_format)
            .unwrap_or_else(|| "text".into());
        let json_logs = match log_format.as_str() {
            "text" => false,
            "json" => true,
            other => bail!("log format must be text or json, got {other:?}"),
        };
        let payment = file.payment.unwrap_or_default();
        let job_secs = serve
            .payment_job_interval_secs
            .or(payment.job_interval_secs)
            .unwrap_or(60);
        if !(1..=3600).contains(&job_secs) {
            bail!("the payment job interval must be 1–3600 seconds, got {job_secs}");
        }
        if payment
            .attempt_minutes
            .is_some_and(|m| !(5..=120).contains(&m))
        {
            bail!("[payment] attempt_minutes must be 5–120");
        }
        let renewal = file.renewal.clone().unwrap_or_default();
        // Demo certificates are a year old at most: demo mode opens renewal
        // at once unless the file says otherwise, so a newcomer can try it.
        let demo = common.demo || file.demo.unwrap_or(false);
        let before = renewal
            .days_before_expiry
            .unwrap_or(if demo { 366 } else { 90 });
        let after = renewal.days_after_expiry.unwrap_or(365);
        if !(1..=366).contains(&before) || after > 3660 {
            bail!("[renewal] days_before_expiry must be 1–366 and days_after_expiry 0–3660");
        }
        let renewal_price_fen = renewal.price_fen.unwrap_or(0);
        if !(0..=10_000_000).contains(&renewal_price_fen) {
            bail!("[renewal] price_fen must be 0–10000000 (0 is free)");
        }
        let renewal_window = certhall_domain::lifecycle::RenewalWindow {
            before_expiry: Duration::from_secs(86_400 * before),
            after_expiry: Duration::from_secs(86_400 * after),
        };
        let sms = match (demo, file.sms) {
            (true, None | Some(SmsConfig::Demo)) => Some(SmsConfig::Demo),
            (true, Some(_)) => bail!(
                "demo mode sends SMS to the demo outbox only: remove the [sms] provider or run without --demo / demo = true"
            ),
            (false, Some(SmsConfig::Demo)) => bail!(
                "[sms] provider = \"demo\" is the demo outbox: only in demo mode (--demo or demo = true)"
            ),
            (false, other) => other,
        };
        Ok(Self {
            demo,
            payment,
            courier: file.courier,
            payment_job_interval: Duration::from_secs(job_secs),
            renewal_window,
            renewal_price_fen,
            listen,
            secret_key_file: common
                .secret_key_file
                .clone()
                .or(file.secret_key_file)
                .unwrap_or_else(|| data_dir.join("secret.key")),
            data_dir,
            database_url,
            secure_cookies: serve
                .secure_cookies
                .or(file.secure_cookies)
                .unwrap_or(false),
            trust_forwarded_for: serve
                .trust_forwarded_for
                .or(file.trust_forwarded_for)
                .unwrap_or(false),
            session_idle: Duration::from_secs(idle_minutes * 60),
            json_logs,
            sms,
            public_url: common
                .public_url
                .clone()
                .or(file.public_url)
                .unwrap_or_else(|| format!("http://{listen}"))
                .trim_end_matches('/')
                .to_owned(),
            ca_passphrase_file: common
                .ca_passphrase_file
                .clone()
                .or(file.ca_passphrase_file),
            ca_pkcs11_pin_file: common
                .ca_pkcs11_pin_file
                .clone()
                .or(file.ca_pkcs11_pin_file),
            agent_url: serve
                .agent_url
                .clone()
                .or(file.agent_url)
                .unwrap_or_else(|| certhall_web::DEFAULT_AGENT_URL.to_owned())
                .trim_end_matches('/')
                .to_owned(),
            extra_origins: file
                .extra_origins
                .unwrap_or_default()
                .iter()
                .map(|o| {
                    certhall_domain::cert_login::origin_of(o)
                        .filter(|_| !o.trim_end_matches('/').split_once("://").is_some_and(|(_, r)| r.contains('/')))
                        .ok_or_else(|| anyhow::anyhow!("extra_origins: {o:?} is not an origin like https://hall.example.cn"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            demo_agent: serve.demo_agent.or(file.demo_agent).unwrap_or(true),
            ocr_models_dir: serve
                .ocr_models_dir
                .clone()
                .or(file.ocr_models_dir)
                .unwrap_or_else(|| PathBuf::from("models/ocr")),
            sms_inbound_token: match std::env::var("CERTHALL_SMS_INBOUND_TOKEN") {
                Ok(t) if t.trim().chars().count() >= 16 => Some(t.trim().to_owned()),
                Ok(t) if !t.trim().is_empty() => {
                    anyhow::bail!("CERTHALL_SMS_INBOUND_TOKEN: the secret must be at least 16 characters")
                }
                _ => match &file.sms_inbound_token_file {
                    Some(path) => Some(
                        std::fs::read_to_string(path)
                            .map_err(|e| anyhow::anyhow!("sms_inbound_token_file {}: {e}", path.display()))?
                            .trim()
                            .to_owned(),
                    )
                    .filter(|t| t.len() >= 16)
                    .map_or_else(
                        || Err(anyhow::anyhow!("sms_inbound_token_file: the secret must be at least 16 characters")),
                        |t| Ok(Some(t)),
                    )?,
                    None => None,
                },
            },
        })
    }

    /// Demo mode, as asked for.
    pub fn demo(&self) -> bool {
        self.demo
    }

    /// What `serve` needs beyond the other commands: an SMS provider
    /// outside demo mode.
    pub fn check_serve(&self) -> anyhow::Result<()> {
        if self.sms.is_none() {
            bail!(
                "no SMS provider configured: add an [sms] section (provider = \"aliyun\", see README) \
                 to the file given by --config, or try CertHall out with `certhall serve --demo`"
            );
        }
        Ok(())
    }

    /// True when the database is the embedded SQLite file.
    pub fn uses_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// The SQLite file, when the database is one.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or(rest);
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }
}

/// Whether a command may create files and change the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `serve`, `migrate` and the commands that change something.
    ReadWrite,
    /// Commands that only look (`audit verify`, `… list`, `ca show`):
    /// they create no file and write nothing to the database.
    ReadOnly,
}

/// Reads the server secret, creating it (random, mode 0600) on first
/// start. A read-only command never creates it: without one it works with
/// a throw-away secret (nothing it does is kept).
pub fn load_or_create_secret(path: &Path, access: Access) -> anyhow::Result<ServerSecret> {
    if access == Access::ReadOnly && !path.exists() {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        return Ok(ServerSecret::new(hex::encode(bytes).into_bytes()));
    }
    if path.exists() {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read secret key {}", path.display()))?;
        if bytes.len() < 32 {
            bail!("secret key {} is shorter than 32 bytes", path.display());
        }
        return Ok(ServerSecret::new(bytes));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let text = hex::encode(bytes);
    write_private(path, text.as_bytes())
        .with_context(|| format!("cannot write secret key {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a new server secret key");
    Ok(ServerSecret::new(text.into_bytes()))
}

/// The CA key passphrase: `CERTHALL_CA_PASSPHRASE`, else the configured
/// file; in demo mode a random one is kept in `<data-dir>/ca/passphrase`
/// (demo only: a real deployment supplies it from its secret store).
pub fn ca_passphrase(config: &RuntimeConfig, access: Access) -> anyhow::Result<Option<Vec<u8>>> {
    if let Ok(p) = std::env::var("CERTHALL_CA_PASSPHRASE") {
        if !p.is_empty() {
            return Ok(Some(p.into_bytes()));
        }
    }
    if let Some(path) = &config.ca_passphrase_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read CA passphrase file {}", path.display()))?;
        let p = text.trim_end_matches(['\r', '\n']).to_owned();
        if p.len() < 12 {
            bail!(
                "the CA passphrase in {} is shorter than 12 characters",
                path.display()
            );
        }
        return Ok(Some(p.into_bytes()));
    }
    if config.demo() {
        let path = config.data_dir.join("ca").join("passphrase");
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            return Ok(Some(text.trim().as_bytes().to_vec()));
        }
        if access == Access::ReadOnly {
            return Ok(None);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut bytes = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let text = hex::encode(bytes);
        write_private(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        tracing::warn!(path = %path.display(), "demo mode: generated a CA key passphrase file next to the data (never do this in production)");
        return Ok(Some(text.into_bytes()));
    }
    Ok(None)
}

/// The PKCS#11 PIN for CA keys, if configured.
pub fn ca_pkcs11_pin(config: &RuntimeConfig) -> anyhow::Result<Option<String>> {
    if let Ok(p) = std::env::var("CERTHALL_CA_PKCS11_PIN") {
        if !p.is_empty() {
            return Ok(Some(p));
        }
    }
    match &config.ca_pkcs11_pin_file {
        Some(path) => Ok(Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read PKCS#11 PIN file {}", path.display()))?
                .trim()
                .to_owned(),
        )),
        None => Ok(None),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = RuntimeConfig::resolve(&CommonArgs::default(), &ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.uses_sqlite());
        assert!(
            c.database_url.ends_with("data/certhall.db?mode=rwc"),
            "{}",
            c.database_url
        );
        assert_eq!(c.session_idle, Duration::from_secs(1800));
        // Demo mode is never inferred: no [sms] is no provider, and serve
        // refuses to start.
        assert!(!c.demo());
        assert!(c.sms.is_none());
        assert!(format!("{:#}", c.check_serve().unwrap_err()).contains("--demo"));
        let demo = CommonArgs {
            demo: true,
            ..Default::default()
        };
        let c = RuntimeConfig::resolve(&demo, &ServeArgs::default()).unwrap();
        assert!(c.demo() && matches!(c.sms, Some(SmsConfig::Demo)));
        c.check_serve().unwrap();
    }

    #[test]
    fn demo_only_when_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let common = CommonArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        std::fs::write(&path, "demo = true\n").unwrap();
        assert!(RuntimeConfig::resolve(&common, &ServeArgs::default())
            .unwrap()
            .demo());
        // The demo outbox is not a provider a production server may use.
        std::fs::write(&path, "[sms]\nprovider = \"demo\"\n").unwrap();
        let err = RuntimeConfig::resolve(&common, &ServeArgs::default()).unwrap_err();
        assert!(format!("{err:#}").contains("demo mode"), "{err:#}");
        // A misspelt section is refused, never taken for demo mode.
        std::fs::write(&path, "[smss]\nprovider = \"aliyun\"\n").unwrap();
        assert!(RuntimeConfig::resolve(&common, &ServeArgs::default()).is_err());
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nsession_idle_minutes = 15\ndatabase_url = \"postgres://u:pw@db/x\"\n",
        )
        .unwrap();
        let common = CommonArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let c = RuntimeConfig::resolve(&common, &ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.session_idle, Duration::from_secs(900));
        assert!(!format!("{c:?}").contains("pw"), "password masked in Debug");
        let flags = ServeArgs {
            listen: Some("127.0.0.1:1234".into()),
            ..Default::default()
        };
        let c = RuntimeConfig::resolve(&common, &flags).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:1234");
    }

    #[test]
    fn refuses_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let common = CommonArgs {
            config: Some(path),
            ..Default::default()
        };
        let err = RuntimeConfig::resolve(&common, &ServeArgs::default()).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
        let bad = ServeArgs {
            listen: Some("localhost".into()),
            ..Default::default()
        };
        assert!(RuntimeConfig::resolve(&CommonArgs::default(), &bad).is_err());
    }

    #[test]
    fn payment_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            r#"
[payment]
attempt_minutes = 15
job_interval_secs = 30
[payment.wechat]
mch_id = "1900000109"
app_id = "wxd930ea5d5a258f4f"
merchant_serial_no = "5DEF0DE7"
merchant_key_file = "/etc/k.pem"
api_v3_key_file = "/etc/v3"
platform_public_key_id = "PUB_KEY_ID_01"
platform_public_key_file = "/etc/pub.pem"
notify_url = "https://hall.example.cn/api/v1/payment/notify/wechat"
[payment.alipay]
app_id = "2021000000000001"
seller_id = "2088000000000001"
app_private_key_file = "/etc/a.pem"
alipay_public_key_file = "/etc/b.pem"
notify_url = "https://hall.example.cn/api/v1/payment/notify/alipay"
"#,
        )
        .unwrap();
        let common = CommonArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let c = RuntimeConfig::resolve(&common, &ServeArgs::default()).unwrap();
        assert_eq!(c.payment_job_interval, Duration::from_secs(30));
        assert_eq!(c.payment.attempt_minutes, Some(15));
        assert_eq!(c.payment.wechat.as_ref().unwrap().mch_id, "1900000109");
        assert!(c.payment.alipay.is_some());
        // A typo is refused, not ignored.
        std::fs::write(&path, "[payment.wechat]\nmchid = \"1\"\n").unwrap();
        let err = RuntimeConfig::resolve(&common, &ServeArgs::default()).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
        std::fs::write(&path, "[payment]\nattempt_minutes = 1\n").unwrap();
        assert!(RuntimeConfig::resolve(&common, &ServeArgs::default()).is_err());
    }

    #[test]
    fn secret_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/secret.key");
        load_or_create_secret(&path, Access::ReadOnly).unwrap();
        assert!(!path.exists(), "a read-only command creates nothing");
        load_or_create_secret(&path, Access::ReadWrite).unwrap();
        let first = std::fs::read(&path).unwrap();
        load_or_create_secret(&path, Access::ReadWrite).unwrap();
        load_or_create_secret(&path, Access::ReadOnly).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first);
        assert_eq!(first.len(), 64);
    }
}
