//! CertHall's application services: each user action is one method here.
//!
//! A service method validates input into domain types, asks the domain for
//! the decision, persists the result and its audit entry in one write
//! transaction, and talks to gateways (SMS). Handlers in `certhall-web`
//! extract and render; they call exactly one method of [`Services`].

use std::sync::Arc;

use certhall_domain::audit::{Actor, AuditEvent, NewAuditEntry};
use certhall_domain::otp::OtpPolicy;
use certhall_domain::secret::ServerSecret;
use certhall_domain::session::SessionPolicy;
use certhall_domain::{Clock, Refusal};
use certhall_notify::SmsGateway;
use certhall_store::{audit, Store, StoreError, WriteTx};

pub mod applications;
pub mod audit_log;
pub mod auth;
pub mod ca;
pub mod cert_login;
pub mod certificates;
pub mod change;
pub mod checkout;
pub mod counter;
pub mod demo_pay;
pub mod demo_platform;
pub mod inbox;
pub mod materials;
mod ocsp;
pub mod orders;
pub mod payments;
pub mod pin_unlock;
pub mod production;
pub mod relying;
pub mod reminders;
pub mod renewal;
pub mod revocation;
pub mod shipping;
pub mod sms_inbound;
mod steps;
pub mod views;
pub mod wizard;

/// A failure of a service call.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// An expected refusal, to be shown to the user.
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The SMS gateway failed.
    #[error(transparent)]
    Sms(#[from] certhall_notify::SmsError),
    /// The courier failed in a way that is not the producer's to fix.
    #[error(transparent)]
    Courier(#[from] certhall_courier::CourierError),
    /// A payment provider failed or answered something unusable.
    #[error(transparent)]
    Payment(#[from] certhall_payment::PaymentError),
    /// The CA engine failed (a fault, not a refused request).
    #[error("ca: {0}")]
    Ca(certhall_ca::CaError),
    /// Something else failed inside CertHall (a worker thread died).
    #[error("internal: {0}")]
    Internal(String),
}

/// Result of a service call.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// Facts about the request that the audit log records.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// The client's IP address.
    pub ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
}

/// Everything the services need, built once by the composition root.
#[derive(Debug, Clone)]
pub struct Services {
    /// The database.
    pub store: Store,
    /// Where SMS go.
    pub sms: Arc<dyn SmsGateway>,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// The deployment's secret.
    pub secret: ServerSecret,
    /// Login code rules.
    pub otp: OtpPolicy,
    /// Session rules.
    pub sessions: SessionPolicy,
    /// The certificate authority's settings and loaded keys.
    pub ca: Arc<ca::CaRuntime>,
    /// Step 1's identity check beyond the format (a third-party service
    /// plugs in here).
    pub identity_verifier: Arc<dyn wizard::IdentityVerifier>,
    /// Step 3's business-license OCR; `None` when no models are installed
    /// (the applicant types the fields).
    pub license_reader: Option<Arc<dyn materials::LicenseReader>>,
    /// Payment providers (第七步) and their timing.
    pub payments: Arc<payments::PaymentGateways>,
    /// The courier and the dispatch office (第八步).
    pub shipping: Arc<shipping::Shipping>,
    /// Delivers the relying platforms' webhook events.
    pub platform_notifier: Arc<dyn certhall_relying::PlatformNotifier>,
    /// Demo mode's relying platform (`/dev/platform`): a client of
    /// CertHall's own relying API; `None` outside demo mode.
    pub demo_platform: Option<certhall_relying::RelyingClient>,
    /// When certificates may be renewed online (`[renewal]`).
    pub renewal_window: certhall_domain::lifecycle::RenewalWindow,
    /// What a renewal costs, in fen (`[renewal] price_fen`; 0: free, no
    /// order). Above 0 a 证书更新 order is paid before the key write.
    pub renewal_price_fen: i64,
    /// Bounds the CPU-heavy image work (decoding and re-encoding uploads,
    /// OCR) running at once in this process: more waits its turn instead
    /// of starving every other request of CPU.
    pub image_work: Arc<tokio::sync::Semaphore>,
}

impl Services {
    /// True while the demo SMS outbox is in use (demo mode).
    pub fn demo_mode(&self) -> bool {
        self.sms.is_demo()
    }

    /// True while payments go to the demo cashier.
    pub fn demo_payments(&self) -> bool {
        self.payments.simulator().is_some()
    }

    /// Appends an audit entry in its own transaction (for events that change
    /// nothing else, such as a refusal).
    pub async fn audit_alone(&self, entry: NewAuditEntry) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        audit::append(&mut tx, self.clock.now(), &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that a browser form was refused for its CSRF token.
    pub async fn record_csrf_rejection(
        &self,
        actor: Actor,
        path: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        self.audit_alone(NewAuditEntry::new(
            actor,
            meta.ip.clone(),
            AuditEvent::CsrfRejected,
            serde_json::json!({ "path": path }),
        ))
        .await
    }
}

/// What an access refusal was about, for [`Services::audit_access_refused`].
#[derive(Debug, Clone)]
pub struct AccessRefusal {
    /// Who was refused.
    pub actor: Actor,
    /// Why, a stable code (`foreign_order`, `applicant_token_on_counter`,
    /// `stale_decision`, `foreign_origin`, …).
    pub reason: &'static str,
    /// What they reached for (`{"order": 12}`, `{"path": "…"}`).
    pub target: serde_json::Value,
}

impl Services {
    /// Records an access refusal in the audit chain, throttled per caller
    /// (`RefusalThrottle`): a scan is visible in the chain without
    /// flooding it, and the entry after a gap says how many were left out.
    pub async fn audit_access_refused(
        &self,
        refusal: AccessRefusal,
        meta: &RequestMeta,
    ) -> Result<()> {
        let caller = match &refusal.actor {
            Actor::Anonymous => format!("ip:{}", meta.ip.as_deref().unwrap_or("unknown")),
            other => other.to_string(),
        };
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        // The chain's lock serializes the throttle's read-modify-write.
        tx.lock(certhall_store::LockKey::AuditChain).await?;
        let stored = audit::throttle_window(&mut tx, &caller).await?;
        let decision = certhall_domain::audit::RefusalThrottle::default().count(stored, now);
        audit::set_throttle_window(&mut tx, &caller, &decision.window).await?;
        if let Some(left_out) = decision.record {
            let mut data = serde_json::json!({
                "reason": refusal.reason,
                "target": refusal.target,
            });
            if left_out > 0 {
                data["left_out_before"] = left_out.into();
            }
            audit::append(
                &mut tx,
                now,
                &NewAuditEntry::new(
                    refusal.actor,
                    meta.ip.clone(),
                    AuditEvent::AccessRefused,
                    data,
                ),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// [`Self::audit_access_refused`] for a refusal found inside a write
    /// transaction that will roll back: recorded once that transaction has
    /// ended (in the background; a failure to record is logged).
    pub(crate) fn audit_access_refused_later(&self, refusal: AccessRefusal, meta: &RequestMeta) {
        let services = self.clone();
        let meta = meta.clone();
        tokio::spawn(async move {
            if let Err(e) = services.audit_access_refused(refusal, &meta).await {
                tracing::warn!(error = %e, "could not record an access refusal");
            }
        });
    }

    /// Runs `job` for the current tick of `interval` unless another process
    /// has run it (a database lease, see `certhall_store::jobs`); `holder`
    /// names this process. `None` when another process had the tick. The
    /// run's `summary` is recorded with it. `job` is a future not yet
    /// polled: nothing of it runs without the lease.
    pub(crate) async fn run_leased<T>(
        &self,
        name: &str,
        holder: &str,
        interval: std::time::Duration,
        job: impl std::future::Future<Output = Result<T>>,
        summary: impl Fn(&T) -> String,
    ) -> Result<Option<T>> {
        let now = self.clock.now();
        let slot = now.millis() / i64::try_from(interval.as_millis().max(1)).unwrap_or(i64::MAX);
        let lease_until = now.plus(std::time::Duration::from_secs(300));
        if !certhall_store::jobs::claim(&self.store, name, slot, holder, lease_until, now).await? {
            return Ok(None);
        }
        let result = job.await;
        let text = match &result {
            Ok(t) => summary(t),
            Err(e) => format!("error: {e}"),
        };
        certhall_store::jobs::finish(&self.store, name, slot, holder, &text, self.clock.now())
            .await?;
        result.map(Some)
    }
}

pub(crate) async fn append_audit(
    tx: &mut WriteTx,
    clock: &dyn Clock,
    actor: Actor,
    meta: &RequestMeta,
    event: AuditEvent,
    data: serde_json::Value,
) -> Result<()> {
    audit::append(
        tx,
        clock.now(),
        &NewAuditEntry::new(actor, meta.ip.clone(), event, data),
    )
    .await?;
    Ok(())
}
