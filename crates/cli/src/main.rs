//! `certhall`: the composition root. It reads the configuration, builds the
//! store, the gateways, the clock and the services, and runs a subcommand.
//! It is the only place that reads the system clock.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use certhall_domain::otp::OtpPolicy;
use certhall_domain::session::SessionPolicy;
use certhall_domain::{Clock, Timestamp};
use certhall_notify::aliyun::AliyunSms;
use certhall_notify::demo::DemoOutbox;
use certhall_notify::SmsGateway;
use certhall_service::Services;
use certhall_store::Store;
use clap::{Parser, Subcommand};

mod app_cmd;
mod ca_cmd;
mod config;
mod demo_agent;
mod key_model_cmd;
mod operator_cmd;
mod payment_cmd;
mod platform_cmd;

use config::{Access, CommonArgs, RuntimeConfig, ServeArgs, SmsConfig};

/// CertHall, the online service hall of a certificate authority.
#[derive(Debug, Parser)]
#[command(name = "certhall", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web pages and the API.
    Serve {
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Run the database migrations and exit.
    Migrate,
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The certificate authority: hierarchies, issuance, revocation, CRLs, profiles.
    Ca {
        #[command(subcommand)]
        command: ca_cmd::CaCommand,
    },
    /// The 应用 catalogue (relying platforms) applicants choose from.
    App {
        #[command(subcommand)]
        command: app_cmd::AppCommand,
    },
    /// Counter operators (柜台人员) who log in at /counter.
    Operator {
        #[command(subcommand)]
        command: operator_cmd::OperatorCommand,
    },
    /// Relying platforms (公共资源交易平台) using /api/v1/relying: add, list.
    Platform {
        #[command(subcommand)]
        command: platform_cmd::PlatformCommand,
    },
    /// Payments: a CSV for reconciliation, a reconciliation run now.
    Payment {
        #[command(subcommand)]
        command: payment_cmd::PaymentCommand,
    },
    /// UKey models (介质), their stock and which applications offer them.
    #[command(name = "key-model")]
    KeyModel {
        #[command(subcommand)]
        command: key_model_cmd::KeyModelCommand,
    },
}

impl Command {
    /// Whether the command may create files and write to the database.
    fn access(&self) -> Access {
        use ca_cmd::{CaCommand, ProfileCommand};
        let read_only = match self {
            Self::Audit {
                command: AuditCommand::Verify,
            } => true,
            Self::Ca { command } => matches!(
                command,
                CaCommand::Chain { .. }
                    | CaCommand::Show { .. }
                    | CaCommand::List { .. }
                    | CaCommand::Profile {
                        command: ProfileCommand::List
                    }
            ),
            Self::App { command } => matches!(command, app_cmd::AppCommand::List),
            Self::Operator { command } => {
                matches!(command, operator_cmd::OperatorCommand::List)
            }
            Self::Payment { command } => {
                matches!(command, payment_cmd::PaymentCommand::Report { .. })
            }
            Self::Platform { command } => {
                matches!(command, platform_cmd::PlatformCommand::List)
            }
            Self::KeyModel { command } => {
                matches!(command, key_model_cmd::KeyModelCommand::List)
            }
            Self::Serve { .. } | Self::Migrate => false,
        };
        if read_only {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        }
    }
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the whole hash chain; exit 1 naming the first broken row.
    Verify,
}

/// The system clock: the one place CertHall reads the time.
#[derive(Debug)]
struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_millis(ms)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serve_args = match &cli.command {
        Command::Serve { args } => args.clone(),
        _ => ServeArgs::default(),
    };
    // Configuration first, so the log format can come from any layer
    // (flag, environment or file); resolving it logs nothing.
    let config = match RuntimeConfig::resolve(&cli.common, &serve_args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("certhall: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(config.json_logs);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("certhall: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("certhall: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli, config: RuntimeConfig) -> anyhow::Result<ExitCode> {
    tracing::debug!(?config, "configuration");
    if matches!(cli.command, Command::Serve { .. }) {
        // Before anything is created.
        config.check_serve()?;
    }
    let access = cli.command.access();
    let store = open_store(&config, access).await?;
    match cli.command {
        Command::Migrate => {
            println!("migrations applied ({})", store.backend().name());
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let services = build_services(&config, store, access)?;
            match services.verify_audit_chain().await? {
                Ok(rows) => {
                    println!("audit chain intact: {rows} rows verified");
                    Ok(ExitCode::SUCCESS)
                }
                Err(b) => {
                    println!("audit chain BROKEN at row {}: {}", b.seq, b.reason);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Ca { command } => {
            let services = build_services(&config, store, access)?;
            ca_cmd::run(&services, command).await
        }
        Command::App { command } => {
            let services = build_services(&config, store, access)?;
            if access == Access::ReadWrite {
                services.ca_seed_profiles().await?;
            }
            app_cmd::run(&services, command).await
        }
        Command::Operator { command } => {
            let services = build_services(&config, store, access)?;
            operator_cmd::run(&services, command).await
        }
        Command::Payment { command } => {
            let services = build_services(&config, store, access)?;
            payment_cmd::run(&services, command).await
        }
        Command::Platform { command } => {
            let services = build_services(&config, store, access)?;
            platform_cmd::run(&services, command).await
        }
        Command::KeyModel { command } => {
            let services = build_services(&config, store, access)?;
            key_model_cmd::run(&services, command).await
        }
        Command::Serve { .. } => {
            let services = build_services(&config, store, access)?;
            if config.demo() {
                // Demo mode: SM2 and P-256 hierarchies on first start.
                services
                    .ca_ensure_demo()
                    .await
                    .context("cannot create the demo CA")?;
                services
                    .ensure_demo_applications()
                    .await
                    .context("cannot create the demo applications")?;
                services
                    .ensure_demo_operator()
                    .await
                    .context("cannot create the demo counter operator")?;
                services
                    .ensure_demo_key_models()
                    .await
                    .context("cannot create the demo key models")?;
            } else {
                services.ca_seed_profiles().await?;
            }
            serve(&config, services).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn open_store(config: &RuntimeConfig, access: Access) -> anyhow::Result<Store> {
    if access == Access::ReadOnly {
        // Nothing created, nothing migrated: a command that only looks
        // must not change the data folder it looks at.
        if let Some(path) = config.sqlite_path() {
            if !path.exists() {
                anyhow::bail!(
                    "no CertHall database at {}: nothing to read (check --data-dir or DATABASE_URL)",
                    path.display()
                );
            }
        }
        return Store::connect_read_only(&config.database_url)
            .await
            .with_context(|| {
                format!(
                    "cannot open database {} for reading",
                    certhall_store::redact_url(&config.database_url)
                )
            });
    }
    if config.uses_sqlite() {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
    }
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open database {}",
                certhall_store::redact_url(&config.database_url)
            )
        })?;
    store.migrate().await.context("database migration failed")?;
    Ok(store)
}

fn build_services(
    config: &RuntimeConfig,
    store: Store,
    access: Access,
) -> anyhow::Result<Services> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sms: Arc<dyn SmsGateway> = match &config.sms {
        Some(SmsConfig::Demo) => Arc::new(DemoOutbox::new(store.clone(), clock.clone())),
        Some(SmsConfig::Aliyun(c)) => Arc::new(AliyunSms::new(c.clone(), clock.clone())),
        None => Arc::new(certhall_notify::Unconfigured),
    };
    let secret = config::load_or_create_secret(&config.secret_key_file, access)?;
    let mut ca = certhall_service::ca::CaSettings::new(
        config.data_dir.join("ca"),
        config::ca_passphrase(config, access)?,
        config.public_url.clone(),
    );
    ca.pkcs11_pin = config::ca_pkcs11_pin(config)?;
    let payments = payment_gateways(config, &store, clock.clone())?;
    let shipping = shipping(config, clock.clone())?;
    Ok(Services {
        payments: Arc::new(payments),
        shipping: Arc::new(shipping),
        platform_notifier: Arc::new(certhall_relying::HttpNotifier::new()?),
        renewal_window: config.renewal_window,
        renewal_price_fen: config.renewal_price_fen,
        demo_platform: if config.demo() {
            Some(certhall_relying::RelyingClient::new(&config.public_url)?)
        } else {
            None
        },
        store,
        sms,
        clock,
        secret,
        otp: OtpPolicy::default(),
        sessions: SessionPolicy {
            idle_timeout: config.session_idle,
            ..SessionPolicy::default()
        },
        ca: Arc::new(certhall_service::ca::CaRuntime::new(ca)),
        identity_verifier: Arc::new(certhall_service::wizard::FormatOnly),
        // Loaded by `serve` only (it takes a few seconds).
        license_reader: None,
        image_work: Arc::new(tokio::sync::Semaphore::new(Services::image_work_permits(
            std::thread::available_parallelism().map_or(1, usize::from),
        ))),
    })
}

/// The courier: `[courier]` when given; otherwise, in demo mode, the demo
/// courier (its pushes signed with a key made at start); otherwise none:
/// shipping then fails with a clear message and pushes are refused.
fn shipping(
    config: &RuntimeConfig,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<certhall_service::shipping::Shipping> {
    let push_url = format!(
        "{}{}",
        config.public_url.trim_end_matches('/'),
        certhall_web::paths::COURIER_PUSH
    );
    let Some(c) = &config.courier else {
        let mut shipping = certhall_service::shipping::Shipping::demo(push_url);
        if !config.demo() {
            shipping.courier = Arc::new(certhall_service::shipping::Unconfigured);
        }
        return Ok(shipping);
    };
    let courier = c
        .build(clock)
        .map_err(|e| anyhow::anyhow!("[courier]: {e}"))?;
    let mut shipping = certhall_service::shipping::Shipping::demo(push_url);
    shipping.courier = courier;
    shipping.sender = c.sender.clone();
    shipping.id_check = c.id_check;
    Ok(shipping)
}

/// The payment providers: those configured in `[payment]`; in demo mode
/// without any, the WeChat Pay adapter talking to the demo simulator at
/// `/dev/wechatpay` (whose cashier posts callbacks to the real route).
fn payment_gateways(
    config: &RuntimeConfig,
    store: &Store,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<certhall_service::payments::PaymentGateways> {
    use certhall_domain::payment::PaymentPolicy;
    use certhall_payment::PaymentProvider;
    let p = &config.payment;
    let defaults = PaymentPolicy::default();
    let policy = PaymentPolicy {
        attempt_ttl: p
            .attempt_minutes
            .map_or(defaults.attempt_ttl, |m| Duration::from_secs(m * 60)),
        query_after: p
            .query_after_secs
            .map_or(defaults.query_after, Duration::from_secs),
        ..defaults
    };
    let mut providers: Vec<Arc<dyn PaymentProvider>> = Vec::new();
    if let Some(w) = &p.wechat {
        let settings = w.load().context("[payment.wechat]")?;
        providers.push(Arc::new(
            certhall_payment::wechat::WechatPay::new(settings, clock.clone())
                .context("[payment.wechat]")?,
        ));
    }
    if let Some(a) = &p.alipay {
        providers.push(Arc::new(
            a.clone().load(clock.clone()).context("[payment.alipay]")?,
        ));
    }
    if providers.is_empty() && config.demo() {
        let base = config.public_url.trim_end_matches('/');
        let settings = certhall_payment::simulator::demo_settings(
            &format!("{base}/dev/wechatpay"),
            &format!("{base}{}", certhall_web::paths::NOTIFY_WECHAT),
        )?;
        let wechat = certhall_payment::wechat::WechatPay::new(settings, clock)?.into_demo();
        let simulator = certhall_payment::simulator::WechatSimulator::demo(
            &format!("{base}/dev/cashier"),
            &format!("{base}{}", certhall_web::paths::NOTIFY_WECHAT),
            Arc::new(certhall_service::demo_pay::StoreLedger(store.clone())),
        )?;
        return Ok(certhall_service::payments::PaymentGateways::demo(
            Arc::new(wechat),
            Arc::new(simulator),
            policy,
        ));
    }
    Ok(certhall_service::payments::PaymentGateways::new(
        providers, policy,
    ))
}

/// Loads the business-license OCR models and reads one blank page so the
/// first applicant does not wait for the warm-up. Without models CertHall
/// runs on, and step 3 says the fields must be typed.
async fn load_license_reader(
    dir: &std::path::Path,
) -> Option<Arc<dyn certhall_domain::wizard::LicenseReader>> {
    let dir = dir.to_owned();
    let started = std::time::Instant::now();
    let loaded = tokio::task::spawn_blocking(move || {
        let ocr = certhall_ocr::Ocr::load(&dir)?;
        let blank = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            320,
            64,
            image::Rgb([255, 255, 255]),
        ));
        ocr.read_lines(&blank)?;
        Ok::<_, certhall_ocr::OcrError>(ocr)
    })
    .await;
    match loaded {
        Ok(Ok(ocr)) => {
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "business-license OCR ready"
            );
            Some(Arc::new(ocr))
        }
        Ok(Err(certhall_ocr::OcrError::ModelsMissing(path))) => {
            tracing::warn!(
                path = %path.display(),
                "business-license OCR unavailable: models missing (run scripts/fetch-ocr-models.sh)"
            );
            None
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "business-license OCR unavailable");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "business-license OCR failed to load");
            None
        }
    }
}

async fn serve(config: &RuntimeConfig, mut services: Services) -> anyhow::Result<()> {
    services.license_reader = load_license_reader(&config.ocr_models_dir).await;
    let demo = services.demo_mode();
    let services_demo_payments = services.demo_payments();
    let store = services.store.clone();
    let housekeeping = tokio::spawn(housekeeping(services.clone()));
    let holder = job_holder();
    let (svc, h, interval) = (
        services.clone(),
        holder.clone(),
        config.payment_job_interval,
    );
    // The payment reconciliation (queries, closes, refunds).
    let payment_job = tokio::spawn(async move {
        leased_job("payment reconciliation", interval, || {
            svc.run_payment_job(&h, interval)
        })
        .await
    });
    let step_eight = tokio::spawn(step_eight_jobs(
        services.clone(),
        holder.clone(),
        config.payment_job_interval,
    ));
    // Expiry reminders: each once per certificate whatever runs it (its
    // record's key); the lease only saves work.
    let (svc, h) = (services.clone(), holder.clone());
    let reminders = tokio::spawn(async move {
        leased_job("expiry reminders", REMINDER_INTERVAL, || {
            svc.run_reminder_job(&h, REMINDER_INTERVAL)
        })
        .await
    });
    // The platforms' webhook deliveries.
    let (svc, h) = (services.clone(), holder);
    let webhooks = tokio::spawn(async move {
        leased_job("platform webhooks", WEBHOOK_INTERVAL, || {
            svc.run_webhook_job(&h, WEBHOOK_INTERVAL)
        })
        .await
    });
    let services_demo_courier = services.demo_courier();
    let agent_services = services.clone();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let mut extra_origins = config.extra_origins.clone();
    if demo {
        // A newcomer opens http://127.0.0.1:PORT or http://localhost:PORT.
        extra_origins.push(format!("http://127.0.0.1:{}", addr.port()));
        extra_origins.push(format!("http://localhost:{}", addr.port()));
    }
    let state = certhall_web::AppState::new(
        services,
        certhall_web::WebConfig {
            secure_cookies: config.secure_cookies,
            trust_forwarded_for: config.trust_forwarded_for,
            agent_url: config.agent_url.clone(),
            extra_origins,
            sms_inbound_token: config.sms_inbound_token.clone(),
        },
    );
    let app = certhall_web::app(state);
    let demo_agent = if demo && config.demo_agent {
        demo_agent::start(
            &config.data_dir,
            &config.agent_url,
            &config.public_url,
            &config.extra_origins,
            addr,
            &agent_services,
        )
        .await
    } else {
        None
    };
    tracing::info!(%addr, database = store.backend().name(), demo, "CertHall is serving");
    println!("CertHall 已启动：http://{addr}/");
    if demo {
        println!("演示模式：短信不会真实发送，验证码请在 http://{addr}/dev/outbox 查看。");
        if demo_agent.is_some() {
            println!(
                "演示证书助手：{}，“演示UKey”中的证书 PIN 码 {}，登录手机号 {}。",
                config.agent_url,
                demo_agent::DEMO_PIN,
                demo_agent::DEMO_PHONE
            );
        }
        if services_demo_payments {
            println!(
                "演示支付：第七步扫码页可打开演示收银台（{addr}/dev/cashier/…），点击“支付成功”即发送与微信支付相同格式的签名回调。"
            );
        }
        if services_demo_courier {
            println!(
                "演示快递：柜台“制证发货”下单后，在 http://{addr}/dev/courier 推进顺丰路由（揽收、运输、派送、签收）。"
            );
        }
        println!(
            "演示交易平台：http://{addr}/dev/platform 用 UKey 激活证书，并显示网上营业厅发来的注销、更新通知。"
        );
        println!(
            "演示柜台端：http://{addr}/counter，用户名 {}，密码 {}，短信验证码发往 {}（见发件箱）；制证发货在 /counter/production。",
            certhall_service::counter::DEMO_OPERATOR,
            certhall_service::counter::DEMO_OPERATOR_PASSWORD,
            certhall_service::counter::DEMO_OPERATOR_PHONE
        );
    }
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("server failed")?;
    housekeeping.abort();
    payment_job.abort();
    step_eight.abort();
    reminders.abort();
    webhooks.abort();
    if let Some(agent) = demo_agent {
        agent.abort();
    }
    store.close().await;
    tracing::info!("CertHall stopped");
    Ok(())
}

/// Every ten minutes (any process may do it): deletes expired sessions,
/// re-signs CRLs close to nextUpdate, rotates OCSP signers close to expiry.
async fn housekeeping(services: Services) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        if let Err(e) = services.ca_maintain().await {
            tracing::warn!(error = %e, "CA maintenance failed");
        }
        let now = services.clock.now();
        let p = &services.sessions;
        match certhall_store::sessions::purge(
            &services.store,
            now.minus(p.idle_timeout),
            now.minus(p.absolute_lifetime),
        )
        .await
        {
            Ok(n) if n > 0 => tracing::info!(purged = n, "expired sessions removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "session purge failed"),
        }
        if let Err(e) = certhall_store::operators::purge_sessions(
            &services.store,
            now.minus(p.idle_timeout),
            now.minus(p.absolute_lifetime),
        )
        .await
        {
            tracing::warn!(error = %e, "counter session purge failed");
        }
        // Kept an hour past expiry: the per-IP limit counts the last hour.
        if let Err(e) =
            certhall_store::challenges::purge(&services.store, now.minus(Duration::from_secs(3600)))
                .await
        {
            tracing::warn!(error = %e, "login challenge purge failed");
        }
        // Job runs are kept a month (the lease rows stay).
        if let Err(e) = certhall_store::jobs::purge_runs(
            &services.store,
            now.minus(Duration::from_secs(30 * 24 * 3600)),
        )
        .await
        {
            tracing::warn!(error = %e, "job run purge failed");
        }
        match services.expire_authorizations().await {
            Ok(n) if n > 0 => tracing::info!(expired = n, "legal-rep authorizations expired"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "authorization expiry failed"),
        }
    }
}

/// This process's name in job leases: host, process id and a random tag
/// (a restarted process is a new holder).
fn job_holder() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Step 8's jobs, each once per tick across processes (a database lease):
/// production (abandon attempts left open, revoke certificates that ended
/// on no key) and shipping (poll the courier for routes, give up courier
/// requests that never got an answer).
async fn step_eight_jobs(services: Services, holder: String, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match services.run_production_job(&holder, interval).await {
            Ok(Some(s)) if s != Default::default() => tracing::info!(?s, "production sweep ran"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "production sweep failed"),
        }
        match services.run_shipping_job(&holder, interval).await {
            Ok(Some(s)) if s != Default::default() => tracing::info!(?s, "shipping poll ran"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "shipping poll failed"),
        }
    }
}

/// Runs one leased job every `interval` (each tick is taken by one process
/// sharing the database: see `Services::run_leased`); a run that did
/// something is logged as `job`, a failure is logged and the next tick
/// tries again.
async fn leased_job<T, F, Fut>(job: &'static str, interval: Duration, run: F)
where
    T: std::fmt::Debug + Default + PartialEq,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = certhall_service::Result<Option<T>>>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match run().await {
            Ok(Some(s)) if s != T::default() => tracing::info!(job, ?s, "job ran"),
            Ok(_) => {}
            Err(e) => tracing::warn!(job, error = %e, "job failed"),
        }
    }
}

/// How often the expiry reminders (到期提醒) are looked for. A reminder's
/// moment is a day; ten minutes keeps it on time without asking often.
const REMINDER_INTERVAL: Duration = Duration::from_secs(600);

/// How often the relying platforms' webhook events are delivered (a
/// revocation reaches a platform within this, or its retry's delay).
const WEBHOOK_INTERVAL: Duration = Duration::from_secs(15);

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}
