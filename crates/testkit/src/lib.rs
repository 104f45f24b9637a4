//! CertHall's test kit: a fresh application per test, on SQLite or
//! PostgreSQL, with a hand-moved clock, usable in-process
//! (`tower::ServiceExt::oneshot`) or over a real listener on port 0, and a
//! headless Chromium for end-to-end tests ([`browser`]).

// Test support: failing loudly on a broken fixture is the point.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use certhall_domain::clock::ManualClock;
use certhall_domain::otp::OtpPolicy;
use certhall_domain::secret::ServerSecret;
use certhall_domain::session::SessionPolicy;
use certhall_domain::Timestamp;
use certhall_notify::demo::DemoOutbox;
use certhall_notify::SmsGateway;
use certhall_service::Services;
use certhall_store::testing::TestDatabase;
use certhall_web::{AppState, WebConfig};

pub mod browser;
pub mod client;
pub mod fixtures;

/// 2026-11-25 09:00 China Standard Time: where test clocks start.
pub const TEST_START: Timestamp = Timestamp::from_millis(1_795_568_400_000);

/// A fresh CertHall for one test.
#[derive(Debug)]
pub struct TestApp {
    /// The database (kept alive with the app).
    pub db: TestDatabase,
    /// The services, sharing the clock below.
    pub services: Services,
    /// The clock; move it with `advance`.
    pub clock: Arc<ManualClock>,
    /// The whole router.
    pub router: Router,
    /// The web settings the router was built with.
    pub web: WebConfig,
    /// `http://127.0.0.1:PORT` that [`TestApp::serve`] listens on first:
    /// the demo payment adapter and cashier are configured with it (the
    /// callback URL must be known before the server starts).
    pub base_url: String,
    reserved: std::sync::Mutex<Option<std::net::TcpListener>>,
}

/// The demo payment gateway for an app served at `base` (the WeChat Pay
/// adapter against the simulator, callbacks to the real route).
pub fn demo_payments(
    store: &certhall_store::Store,
    clock: Arc<dyn certhall_domain::Clock>,
    base: &str,
) -> certhall_service::payments::PaymentGateways {
    let settings = certhall_payment::simulator::demo_settings(
        &format!("{base}/dev/wechatpay"),
        &format!("{base}{}", certhall_web::paths::NOTIFY_WECHAT),
    )
    .expect("demo payment settings");
    let wechat = certhall_payment::wechat::WechatPay::new(settings, clock)
        .expect("demo WeChat Pay adapter")
        .into_demo();
    let simulator = certhall_payment::simulator::WechatSimulator::demo(
        &format!("{base}/dev/cashier"),
        &format!("{base}{}", certhall_web::paths::NOTIFY_WECHAT),
        Arc::new(certhall_service::demo_pay::StoreLedger(store.clone())),
    )
    .expect("demo simulator");
    certhall_service::payments::PaymentGateways::demo(
        Arc::new(wechat),
        Arc::new(simulator),
        certhall_domain::payment::PaymentPolicy::default(),
    )
}

/// The services a test app runs on: demo payments and courier (their
/// callbacks to `base_url`), a file-key CA with the test passphrase, SMS
/// through `sms`. A second "process" on the same database (a worker
/// binary, a restarted server) builds its own with this.
pub fn test_services(
    store: &certhall_store::Store,
    clock: Arc<dyn certhall_domain::Clock>,
    base_url: &str,
    sms: Arc<dyn SmsGateway>,
) -> Services {
    Services {
        payments: Arc::new(demo_payments(store, clock.clone(), base_url)),
        shipping: Arc::new(certhall_service::shipping::Shipping::demo(format!(
            "{base_url}{}",
            certhall_web::paths::COURIER_PUSH
        ))),
        platform_notifier: Arc::new(certhall_relying::HttpNotifier::new().expect("webhook client")),
        renewal_window: certhall_domain::lifecycle::RenewalWindow::default(),
        renewal_price_fen: 0,
        demo_platform: Some(
            certhall_relying::RelyingClient::new(base_url).expect("demo platform client"),
        ),
        store: store.clone(),
        sms,
        clock,
        secret: ServerSecret::for_tests(),
        otp: OtpPolicy::default(),
        sessions: SessionPolicy::default(),
        ca: Arc::new(certhall_service::ca::CaRuntime::new(
            certhall_service::ca::CaSettings::new(
                db_key_dir(),
                Some(b"certhall test passphrase".to_vec()),
                "http://127.0.0.1:8080".into(),
            ),
        )),
        identity_verifier: Arc::new(certhall_service::wizard::FormatOnly),
        license_reader: None,
        image_work: Arc::new(tokio::sync::Semaphore::new(2)),
    }
}

/// The OCR models' directory: `OCR_MODELS_DIR`, else the repository's
/// `models/ocr` (scripts/fetch-ocr-models.sh).
pub fn ocr_models_dir() -> std::path::PathBuf {
    std::env::var_os("OCR_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/ocr")
        })
}

/// The business-license OCR, loaded once per test binary; `None` (with a
/// `SKIPPED:` line) when the models are missing outside CI.
pub fn ocr() -> Option<Arc<dyn certhall_domain::wizard::LicenseReader>> {
    static OCR: std::sync::OnceLock<Option<Arc<certhall_ocr::Ocr>>> = std::sync::OnceLock::new();
    let ocr = OCR.get_or_init(|| match certhall_ocr::Ocr::load(ocr_models_dir()) {
        Ok(ocr) => Some(Arc::new(ocr)),
        Err(certhall_ocr::OcrError::ModelsMissing(p))
            if std::env::var("CI").as_deref() != Ok("true") =>
        {
            certhall_store::testing::report_skip(&format!(
                "OCR models not found ({}); run scripts/fetch-ocr-models.sh",
                p.display()
            ));
            None
        }
        Err(e) => panic!("OCR models: {e}"),
    });
    ocr.clone()
        .map(|o| o as Arc<dyn certhall_domain::wizard::LicenseReader>)
}

impl TestApp {
    /// On a fresh SQLite file.
    pub async fn sqlite() -> Self {
        Self::on(TestDatabase::sqlite().await.expect("sqlite test database"))
    }

    /// On a fresh PostgreSQL schema, or `None` when PostgreSQL is skipped.
    pub async fn postgres() -> Option<Self> {
        TestDatabase::postgres()
            .await
            .expect("postgres test database")
            .map(Self::on)
    }

    /// SQLite, then PostgreSQL when configured (always under `CI=true`).
    pub async fn each() -> Vec<Self> {
        let mut all = vec![Self::sqlite().await];
        all.extend(Self::postgres().await);
        all
    }

    /// On the given database, in demo mode (SMS go to the outbox).
    pub fn on(db: TestDatabase) -> Self {
        Self::with_gateway(db, WebConfig::for_tests(), |store, clock| {
            Arc::new(DemoOutbox::new(store.clone(), clock))
        })
    }

    /// On the given database, in demo mode, with these web settings.
    pub fn with_web(db: TestDatabase, web: WebConfig) -> Self {
        Self::with_gateway(db, web, |store, clock| {
            Arc::new(DemoOutbox::new(store.clone(), clock))
        })
    }

    /// On the given database with another SMS gateway and web settings.
    pub fn with_gateway(
        db: TestDatabase,
        mut web: WebConfig,
        gateway: impl FnOnce(
            &certhall_store::Store,
            Arc<dyn certhall_domain::Clock>,
        ) -> Arc<dyn SmsGateway>,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(TEST_START));
        let reserved = std::net::TcpListener::bind("127.0.0.1:0").expect("reserve a port");
        let base_url = format!("http://{}", reserved.local_addr().expect("addr"));
        let sms = gateway(&db.store, clock.clone());
        let services = test_services(&db.store, clock.clone(), &base_url, sms);
        // Pages served by `serve` come from base_url: CertHall's own origin,
        // as the public URL is in production.
        if !web.extra_origins.contains(&base_url) {
            web.extra_origins.push(base_url.clone());
        }
        let router = certhall_web::app(AppState::new(services.clone(), web.clone()));
        Self {
            db,
            services,
            clock,
            router,
            web,
            base_url,
            reserved: std::sync::Mutex::new(Some(reserved)),
        }
    }

    /// The same application with business-license OCR (the real models,
    /// loaded once per test binary). `None` when the models are missing
    /// and this is not CI (the caller skips); under `CI=true` missing
    /// models fail.
    pub fn with_ocr(mut self) -> Option<Self> {
        let reader = ocr()?;
        self.services.license_reader = Some(reader);
        self.router = certhall_web::app(AppState::new(self.services.clone(), self.web.clone()));
        Some(self)
    }

    /// The same application with a price on renewal (`[renewal]
    /// price_fen`).
    pub fn with_renewal_price(mut self, fen: i64) -> Self {
        self.services.renewal_price_fen = fen;
        self.router = certhall_web::app(AppState::new(self.services.clone(), self.web.clone()));
        self
    }

    /// The backend's name, for assertion messages.
    pub fn backend(&self) -> &'static str {
        self.db.backend().name()
    }

    /// The code in the latest SMS sent to `phone` (from the demo outbox).
    pub async fn latest_code(&self, phone: &str) -> Option<String> {
        let sent = certhall_store::sms::outbox_recent(&self.db.store, Some(phone), 1)
            .await
            .expect("outbox");
        sent.first().and_then(|e| extract_code(&e.body))
    }

    /// Serves the app on 127.0.0.1 until the returned server is dropped:
    /// the first time on [`TestApp::base_url`] (where payment callbacks
    /// go), later on a free port.
    pub async fn serve(&self) -> RunningServer {
        let reserved = self.reserved.lock().expect("lock").take();
        match reserved {
            Some(std_listener) => {
                std_listener.set_nonblocking(true).expect("nonblocking");
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                self.serve_listener(listener)
            }
            None => self.serve_on(0).await,
        }
    }

    /// The same on a given port (for a peer that must know the address in
    /// advance, like the key agent's allowed origin).
    pub async fn serve_on(&self, port: u16) -> RunningServer {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        self.serve_listener(listener)
    }

    fn serve_listener(&self, listener: tokio::net::TcpListener) -> RunningServer {
        let addr = listener.local_addr().expect("addr");
        let app = self.router.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        RunningServer { addr, task }
    }
}

/// A fresh directory for one test app's CA key files (removed with the
/// temp dir at reboot; tests never reuse it).
fn db_key_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "certhall-test-ca-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ))
}

/// Finds the six-digit code in an SMS text.
pub fn extract_code(body: &str) -> Option<String> {
    // A confirmation SMS names what it confirms (a token serial may hold six
    // digits in a row): the code is the one after 验证码为.
    if let Some(at) = body.find("验证码为") {
        return extract_code_anywhere(&body[at + "验证码为".len()..]);
    }
    extract_code_anywhere(body)
}

fn extract_code_anywhere(body: &str) -> Option<String> {
    let digits: Vec<char> = body.chars().collect();
    digits
        .windows(6)
        .enumerate()
        .find(|(i, w)| {
            w.iter().all(char::is_ascii_digit)
                && (*i == 0 || !digits[i - 1].is_ascii_digit())
                && digits.get(i + 6).is_none_or(|c| !c.is_ascii_digit())
        })
        .map(|(_, w)| w.iter().collect())
}

/// A server on a real port; stops when dropped.
#[derive(Debug)]
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_code() {
        assert_eq!(
            extract_code("【CertHall】您的登录验证码为042913，5分钟内有效。").as_deref(),
            Some("042913")
        );
        assert_eq!(extract_code("no code 12345 here"), None);
        assert_eq!(extract_code("1234567"), None);
        assert_eq!(TEST_START.display_cst(), "2026-11-25 09:00");
    }
}
