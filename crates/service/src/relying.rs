//! Relying platforms (公共资源交易平台) and 证书激活 (issue 12).
//!
//! A platform is registered by `certhall platform add`: a name, the
//! application code its certificates are issued for, the origins of its
//! pages, and a bearer token shown once (only its SHA-256 is kept).
//!
//! Activation, as the platform's page runs it:
//! 1. the platform asks CertHall for a challenge
//!    ([`Services::issue_activation_challenge`], bound to the platform);
//! 2. its page has the user's key agent sign a `SignedMessage` with purpose
//!    `activate`, the page's origin and the challenge;
//! 3. the platform sends certificate, signed message and signature
//!    ([`Services::activate_certificate`]). CertHall checks, in the order of
//!    certificate login: the challenge (unused, this platform's, fresh),
//!    the certificate (issued here: same DER on record and the issuing CA's
//!    signature), the signature (possession, purpose `activate`, one of the
//!    platform's origins), status (not revoked, re-read in the
//!    transaction; within validity), bound to an account; and then that
//!    the certificate was issued for the platform's application. It records
//!    the activation (once per certificate and platform), audits it and
//!    tells the applicant.
//!
//! [`Services::platform_certificate_status`] answers whether a certificate
//! is valid and activated for the asking platform.

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::cert_login::{check_certificate, PLATFORM_AUTH_FAILURES_PER_IP_PER_HOUR};
use certhall_domain::lifecycle::subject_common_name;
use certhall_domain::message::{MessageKind, NewMessage};
use certhall_domain::otp::RATE_WINDOW;
use certhall_domain::{OrderId, Refusal, Timestamp};
use certhall_store::relying::{self as db, PlatformRow};
use certhall_store::{ca as cadb, messages, WriteTx};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cert_login::{CertLogin, IssuedChallenge};
use crate::certificates::CertificateStatus;
use crate::{append_audit, RequestMeta, Result, Services};

/// A platform that presented a valid token.
#[derive(Debug, Clone)]
pub struct PlatformInfo {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The application code its certificates are issued for.
    pub application: String,
    /// The origins its pages sign from.
    pub origins: Vec<String>,
}

impl From<PlatformRow> for PlatformInfo {
    fn from(p: PlatformRow) -> Self {
        Self {
            id: p.id,
            name: p.name,
            application: p.application,
            origins: p.origins.lines().map(str::to_owned).collect(),
        }
    }
}

/// A platform just registered, with its token (shown once).
#[derive(Debug, Clone)]
pub struct NewPlatform {
    /// Its id.
    pub id: i64,
    /// The bearer token for `/api/v1/relying/…`.
    pub token: String,
    /// The secret its webhook deliveries are signed with, when it has a
    /// webhook.
    pub webhook_secret: Option<String>,
}

/// The webhook job's name in the lease table.
pub const WEBHOOK_JOB: &str = "platform_webhooks";

/// Deliveries tried before an event is given up (30 s doubling up to six
/// hours between tries: about a day and a half in all).
pub const MAX_DELIVERY_ATTEMPTS: i64 = 12;

/// What one run of the webhook job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookSweep {
    /// Deliveries tried.
    pub tried: u32,
    /// Taken by the platform (2xx).
    pub delivered: u32,
    /// Failed (tried again later, or given up after the last try).
    pub failed: u32,
}

/// The delay before try `attempts + 1`.
fn backoff(attempts: i64) -> std::time::Duration {
    let secs = 30u64.saturating_mul(1u64 << attempts.clamp(0, 20));
    std::time::Duration::from_secs(secs.min(6 * 3600))
}

/// What a platform sends to activate a certificate.
#[derive(Debug, Clone, Copy)]
pub struct Activation<'a> {
    /// The challenge it got from CertHall.
    pub challenge: &'a str,
    /// The DER certificate.
    pub certificate: &'a [u8],
    /// The bytes the key signed (a `SignedMessage`).
    pub signed_data: &'a [u8],
    /// The signature over them.
    pub signature: &'a [u8],
}

/// A certificate's standing for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformCertificateStatus {
    /// The serial (lower-case hex).
    pub serial: String,
    /// `valid`, `expiring`, `expired`, `revoked`, `superseded`.
    pub status: &'static str,
    /// Its end of validity.
    pub not_after: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// The RFC 5280 reason, if revoked.
    pub revocation_reason: Option<String>,
    /// When it was activated for this platform, if it was.
    pub activated_at: Option<Timestamp>,
    /// Issued for this platform's application.
    pub for_this_platform: bool,
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn binding(platform: &PlatformInfo) -> String {
    format!("platform:{}", platform.id)
}

/// The activation refusal for a certificate-login refusal.
fn activation_refusal(r: &Refusal) -> Refusal {
    Refusal::ActivationRefused(match r {
        Refusal::CertChallengeExpired => "activation_challenge_expired",
        Refusal::CertChallengeUsed => "activation_challenge_used",
        Refusal::CertUnknown => "activation_cert_unknown",
        Refusal::CertBadSignature => "activation_bad_signature",
        Refusal::CertRevoked => "activation_revoked",
        Refusal::CertNotForLogin => "activation_not_for_signing",
        Refusal::CertNotYetValid => "activation_not_yet_valid",
        Refusal::CertExpired(_) => "activation_expired",
        Refusal::CertNotBound => "activation_not_bound",
        _ => "activation_challenge_invalid",
    })
}

impl Services {
    /// Registers a relying platform (`certhall platform add`).
    pub async fn add_platform(
        &self,
        name: &str,
        application: &str,
        origins: &[String],
        webhook: Option<&str>,
        actor: Actor,
    ) -> Result<NewPlatform> {
        if let Some(url) = webhook {
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 500 {
                return Err(
                    Refusal::InvalidField("回调地址须为 http(s):// 开头的完整地址".into()).into(),
                );
            }
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 60 {
            return Err(Refusal::InvalidField("平台名称为1–60个字".into()).into());
        }
        if origins.is_empty()
            || !origins
                .iter()
                .all(|o| certhall_domain::cert_login::origin_well_formed(o))
        {
            return Err(Refusal::InvalidField(
                "请给出平台页面的来源（如 https://ggzy.example.cn），可给多个".into(),
            )
            .into());
        }
        if certhall_store::applications::get(&self.store, application)
            .await?
            .is_none()
        {
            return Err(Refusal::ApplicationNotFound(application.to_owned()).into());
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = format!("chp_{}", hex::encode(bytes));
        let id = self
            .register_platform(name, application, origins, webhook, &token, actor)
            .await?
            .ok_or_else(|| Refusal::InvalidField(format!("平台“{name}”已登记")))?;
        Ok(NewPlatform {
            id,
            token,
            webhook_secret: webhook.map(|_| self.webhook_secret(id)),
        })
    }

    /// Records a platform with the hash of `token`, audited; `None` when
    /// the name is registered already (the caller decides what that means).
    pub(crate) async fn register_platform(
        &self,
        name: &str,
        application: &str,
        origins: &[String],
        webhook: Option<&str>,
        token: &str,
        actor: Actor,
    ) -> Result<Option<i64>> {
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        let Some(id) = db::insert(
            &mut tx,
            name,
            application,
            &origins.join("\n"),
            webhook,
            &token_hash(token),
            now,
        )
        .await?
        else {
            return Ok(None);
        };
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor,
            &RequestMeta::default(),
            AuditEvent::PlatformAdded,
            json!({ "platform": id, "name": name, "application": application,
                    "origins": origins, "webhook": webhook }),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// The secret platform `id`'s webhook deliveries are signed with:
    /// derived from the deployment's secret, so it is never stored.
    pub fn webhook_secret(&self, id: i64) -> String {
        format!(
            "whsec_{}",
            hex::encode(self.secret.mac("platform-webhook", &[&id.to_be_bytes()]))
        )
    }

    /// Delivers the platform events that are due (each once across
    /// processes: a claim before the try), retrying failures later.
    pub async fn deliver_platform_events(&self) -> Result<WebhookSweep> {
        let now = self.clock.now();
        let mut sweep = WebhookSweep::default();
        for e in db::due_events(&self.store, now, MAX_DELIVERY_ATTEMPTS, 100).await? {
            // Taken for a minute: a second runner skips it meanwhile.
            let until = now.plus(std::time::Duration::from_secs(60));
            if !db::claim_event(&self.store, e.id, e.attempts, until, now).await? {
                continue;
            }
            let Some(platform) = db::get(&self.store, e.platform_id).await? else {
                continue;
            };
            let Some(url) = platform.webhook_url else {
                continue;
            };
            let hook = certhall_relying::Webhook {
                url,
                secret: self.webhook_secret(platform.id),
            };
            let event = certhall_relying::PlatformEvent {
                id: e.id,
                kind: e.kind.clone(),
                serial: e.serial.clone(),
                occurred_at: e.created_at.rfc3339(),
                data: serde_json::from_str(&e.data).unwrap_or_default(),
            };
            sweep.tried += 1;
            let sent = self
                .platform_notifier
                .deliver(&hook, &event, now.millis() / 1000)
                .await;
            let done = self.clock.now();
            let outcome = match &sent {
                Ok(()) => {
                    sweep.delivered += 1;
                    Ok(())
                }
                Err(err) => {
                    sweep.failed += 1;
                    tracing::warn!(event = e.id, platform = platform.id, error = %err, "webhook not delivered");
                    Err(err.to_string())
                }
            };
            let outcome = match &outcome {
                Ok(()) => Ok(()),
                Err(m) => Err((m.as_str(), done.plus(backoff(e.attempts)))),
            };
            db::record_try(&self.store, e.id, e.attempts, outcome, done).await?;
        }
        Ok(sweep)
    }

    /// Runs [`Services::deliver_platform_events`] for the current tick of
    /// `interval` unless another process has (a database lease).
    pub async fn run_webhook_job(
        &self,
        holder: &str,
        interval: std::time::Duration,
    ) -> Result<Option<WebhookSweep>> {
        self.run_leased(
            WEBHOOK_JOB,
            holder,
            interval,
            self.deliver_platform_events(),
            |s| {
                format!(
                    "tried {} delivered {} failed {}",
                    s.tried, s.delivered, s.failed
                )
            },
        )
        .await
    }

    /// Every registered platform, by name.
    pub async fn platforms(&self) -> Result<Vec<PlatformInfo>> {
        Ok(db::all(&self.store)
            .await?
            .into_iter()
            .map(PlatformInfo::from)
            .collect())
    }

    /// The platform presenting `token`. Wrong tokens are counted per
    /// client address; past [`PLATFORM_AUTH_FAILURES_PER_IP_PER_HOUR`] in
    /// an hour the address is refused, right token or not, until the hour
    /// has passed.
    pub async fn authenticate_platform(
        &self,
        token: &str,
        meta: &RequestMeta,
    ) -> Result<PlatformInfo> {
        let now = self.clock.now();
        if let Some(ip) = meta.ip.as_deref() {
            let failures = db::auth_failures_since(&self.store, ip, now.minus(RATE_WINDOW)).await?;
            if failures >= PLATFORM_AUTH_FAILURES_PER_IP_PER_HOUR {
                return Err(Refusal::PlatformAuthLimit.into());
            }
        }
        if let Some(row) = db::by_token_hash(&self.store, &token_hash(token)).await? {
            return Ok(PlatformInfo::from(row));
        }
        if let Some(ip) = meta.ip.as_deref() {
            // Not audited: a wrong token changes nothing, and an audit row
            // per guess would turn the limit into a lever.
            tracing::warn!(ip, "relying API: wrong platform token");
            let mut tx = self.store.begin_write().await?;
            db::record_auth_failure(&mut tx, ip, now, now.minus(RATE_WINDOW * 24)).await?;
            tx.commit().await?;
        }
        Err(Refusal::PlatformUnauthorized.into())
    }

    /// A challenge for the platform's page to have the user's key sign.
    pub async fn issue_activation_challenge(
        &self,
        platform: &PlatformInfo,
        meta: &RequestMeta,
    ) -> Result<IssuedChallenge> {
        self.issue_login_challenge(&binding(platform), meta).await
    }

    /// Activates a certificate for the platform (see the module's steps).
    /// Activating one already active for it answers as before.
    pub async fn activate_certificate(
        &self,
        platform: &PlatformInfo,
        input: Activation<'_>,
        meta: &RequestMeta,
    ) -> Result<PlatformCertificateStatus> {
        let login = CertLogin {
            challenge: input.challenge,
            binding: &binding(platform),
            certificate: input.certificate,
            signed_data: input.signed_data,
            signature: input.signature,
            accepted_origins: &platform.origins,
        };
        let facts = self.certificate_facts(&login, "activate").await?;
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        if let Err(r) = self
            .use_up_challenge(&mut tx, input.challenge, &binding(platform), now)
            .await?
        {
            return self
                .refuse_activation(tx, platform, activation_refusal(&r), meta)
                .await;
        }
        let (serial, account) = match facts {
            Some((serial, mut f)) => {
                f.revoked |= cadb::certificate_tx(&mut tx, &serial)
                    .await?
                    .is_none_or(|row| row.revocation.is_some());
                match check_certificate(&f, now) {
                    Ok(a) => (serial, a),
                    Err(r) => {
                        return self
                            .refuse_activation(tx, platform, activation_refusal(&r), meta)
                            .await
                    }
                }
            }
            None => {
                return self
                    .refuse_activation(
                        tx,
                        platform,
                        activation_refusal(&Refusal::CertUnknown),
                        meta,
                    )
                    .await
            }
        };
        let row = cadb::certificate_tx(&mut tx, &serial)
            .await?
            .ok_or(Refusal::CertificateNotFound)?;
        if !self.issued_for(&row, &platform.application).await? {
            let r = Refusal::ActivationRefused("activation_other_application");
            return self.refuse_activation(tx, platform, r, meta).await;
        }
        if db::activate(&mut tx, &serial, platform.id, account, now).await? {
            append_audit(
                &mut tx,
                self.clock.as_ref(),
                Actor::Platform(platform.id),
                meta,
                AuditEvent::CertificateActivated,
                json!({ "platform": platform.id, "serial": serial, "account": account.0 }),
            )
            .await?;
            messages::insert(
                &mut tx,
                account,
                &NewMessage {
                    kind: MessageKind::System,
                    title: "证书已激活".to_owned(),
                    body: format!(
                        "您的证书（{}，序列号{serial}）已于{}在{}激活，可以在该平台使用。",
                        subject_common_name(&row.subject),
                        now.display_cst(),
                        platform.name
                    ),
                    order_id: None,
                },
                now,
            )
            .await?;
        }
        tx.commit().await?;
        self.platform_certificate_status(platform, &serial).await
    }

    /// Ends a refused activation: the challenge stays used (`tx` holds
    /// only that), the refusal is audited.
    async fn refuse_activation(
        &self,
        tx: WriteTx,
        platform: &PlatformInfo,
        r: Refusal,
        meta: &RequestMeta,
    ) -> Result<PlatformCertificateStatus> {
        tx.commit().await?;
        self.audit_alone(certhall_domain::audit::NewAuditEntry::new(
            Actor::Platform(platform.id),
            meta.ip.clone(),
            AuditEvent::ActivationRefused,
            json!({ "platform": platform.id, "reason": r.code() }),
        ))
        .await?;
        Err(r.into())
    }

    /// Whether the certificate was issued for `application` (the
    /// application chosen at step 2 of the order that produced it).
    async fn issued_for(&self, c: &cadb::CertificateRow, application: &str) -> Result<bool> {
        let Some(order) = c.order_id else {
            return Ok(false);
        };
        let Some(certhall_domain::steps::StepData::Application(a)) = self
            .step_of(OrderId(order), certhall_domain::order::Step::Application)
            .await?
        else {
            return Ok(false);
        };
        Ok(a.code == application)
    }

    /// A certificate's standing for the asking platform. Any certificate
    /// CertHall issued can be asked about; one it did not is 404.
    pub async fn platform_certificate_status(
        &self,
        platform: &PlatformInfo,
        serial: &str,
    ) -> Result<PlatformCertificateStatus> {
        let serial = crate::ca::normalize_serial(serial);
        let c = cadb::certificate(&self.store, &serial)
            .await?
            .ok_or(Refusal::CertificateNotFound)?;
        let activated_at = db::activated_at(&self.store, &serial, platform.id).await?;
        let status = CertificateStatus::of(&c, self.clock.now(), false);
        Ok(PlatformCertificateStatus {
            for_this_platform: self.issued_for(&c, &platform.application).await?,
            status: status.key(),
            not_after: c.not_after,
            revoked_at: c.revocation.as_ref().map(|r| r.revoked_at),
            revocation_reason: c.revocation.as_ref().map(|r| r.reason.clone()),
            activated_at,
            serial,
        })
    }
}
