//! The tamper-evident audit log (审计日志).
//!
//! Every security-relevant event — a code sent or refused, a login, a logout,
//! later every order transition and CA operation — is appended as one row.
//! Each row carries the SHA-256 of its own content and of the previous row's
//! hash, so editing, deleting or reordering any row breaks the chain from
//! that row on. [`verify_chain`] walks the rows in order and names the first
//! one that does not fit.
//!
//! The hash input is a length-prefixed encoding of the row's fields, so no
//! two different rows can produce the same input.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::{AccountId, OperatorId, Timestamp};

/// The hash the first row links to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Someone not (yet) logged in.
    Anonymous,
    /// A logged-in account.
    Account(AccountId),
    /// CertHall itself (schedulers, start-up).
    System,
    /// An operator at the command line (`certhall ca …`), with the OS user.
    Cli(String),
    /// A counter operator (柜台人员), by operator id.
    Operator(OperatorId),
    /// A relying platform (公共资源交易平台) calling the relying API, by id.
    Platform(i64),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("anonymous"),
            Self::Account(id) => write!(f, "account:{}", id.0),
            Self::System => f.write_str("system"),
            Self::Cli(user) => write!(f, "cli:{user}"),
            Self::Operator(id) => write!(f, "operator:{id}"),
            Self::Platform(id) => write!(f, "platform:{id}"),
        }
    }
}

/// The events the log knows. The names are stable: they are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    /// A login code was sent.
    SmsCodeSent,
    /// A request for a login code was refused.
    SmsCodeRefused,
    /// A login succeeded.
    LoginSucceeded,
    /// A login attempt failed.
    LoginFailed,
    /// An account was created at its first login.
    AccountCreated,
    /// A session was ended by the user.
    Logout,
    /// A request was refused for a bad or missing CSRF token.
    CsrfRejected,
    /// Messages were marked read.
    MessagesRead,
    /// An SMS was received from a phone (inbound).
    SmsInbound,
    /// A CA hierarchy (root + issuing CA) was created.
    CaInitialized,
    /// A delegated OCSP signing certificate was issued (first or rotation).
    CaOcspSignerIssued,
    /// A subscriber certificate was issued.
    CertificateIssued,
    /// A certificate was revoked.
    CertificateRevoked,
    /// A CRL was signed.
    CrlSigned,
    /// A certificate profile was added or changed.
    CaProfileSaved,
    /// An order was started.
    OrderCreated,
    /// An order's wizard data was saved at a step.
    OrderStepSaved,
    /// An order moved to another state.
    OrderTransitioned,
    /// An image was stored on an order (its kind and SHA-256).
    MaterialUploaded,
    /// The legal representative's authorization SMS was sent.
    AuthorizationRequested,
    /// A counter operator was added.
    OperatorAdded,
    /// A counter login step succeeded (password, or code: then logged in).
    CounterLoginSucceeded,
    /// A counter login step failed (counted towards the lock).
    CounterLoginFailed,
    /// A counter operator logged out.
    CounterLogout,
    /// An application (relying platform) was added or changed.
    ApplicationSaved,
    /// A key model was added or changed.
    KeyModelSaved,
    /// Key stock was counted in or out.
    KeyStockChanged,
    /// An address of an account's address book was saved or deleted.
    AddressSaved,
    /// Step 6 (key model, address, invoice) was saved on an order.
    CheckoutSaved,
    /// A payment attempt was created (QR code issued).
    PaymentCreated,
    /// A payment callback arrived (verified and applied, a duplicate, or
    /// refused: the outcome says which).
    PaymentCallback,
    /// A payment attempt was settled (paid, closed, failed) — by a
    /// callback, a query or the applicant.
    PaymentSettled,
    /// A refund was requested or changed state.
    RefundChanged,
    /// An operator's permissions changed (the 制证 permission).
    OperatorPermissionChanged,
    /// A production attempt started, moved or ended (制证).
    ProductionAttempt,
    /// A produced key was recorded (token serial, certificate, stock out).
    KeyProduced,
    /// A shipment was requested, accepted, refused or cancelled.
    ShipmentChanged,
    /// A courier route push arrived (applied, duplicate or refused).
    CourierPush,
    /// A certificate (or its chain) was downloaded by its owner.
    CertificateDownloaded,
    /// A request was refused access to something not its caller's
    /// (another applicant's order, an applicant token on the counter API,
    /// a stale decision, a foreign `Origin`); recorded at most
    /// [`RefusalThrottle::max_per_window`] times per caller and window.
    AccessRefused,
    /// An expiry reminder (到期提醒) went out for a certificate.
    ExpiryReminderSent,
    /// A certificate's owner turned its SMS reminders on or off.
    ReminderSmsChanged,
    /// A relying platform was registered.
    PlatformAdded,
    /// A certificate was activated for a relying platform (证书激活).
    CertificateActivated,
    /// A relying platform's activation was refused.
    ActivationRefused,
    /// A step of an online renewal (证书更新): started, issued, completed,
    /// failed or abandoned.
    RenewalStep,
    /// A step of an online PIN unlock (PIN 解锁): the SO PIN released to
    /// the agent, the unlock confirmed.
    PinUnlockStep,
}

impl AuditEvent {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SmsCodeSent => "sms.code_sent",
            Self::SmsCodeRefused => "sms.code_refused",
            Self::LoginSucceeded => "login.succeeded",
            Self::LoginFailed => "login.failed",
            Self::AccountCreated => "account.created",
            Self::Logout => "logout",
            Self::CsrfRejected => "csrf.rejected",
            Self::MessagesRead => "messages.read",
            Self::SmsInbound => "sms.inbound",
            Self::CaInitialized => "ca.initialized",
            Self::CaOcspSignerIssued => "ca.ocsp_signer_issued",
            Self::CertificateIssued => "ca.certificate_issued",
            Self::CertificateRevoked => "ca.certificate_revoked",
            Self::CrlSigned => "ca.crl_signed",
            Self::CaProfileSaved => "ca.profile_saved",
            Self::OrderCreated => "order.created",
            Self::OrderStepSaved => "order.step_saved",
            Self::OrderTransitioned => "order.transitioned",
            Self::MaterialUploaded => "order.material_uploaded",
            Self::AuthorizationRequested => "order.authorization_requested",
            Self::OperatorAdded => "operator.added",
            Self::CounterLoginSucceeded => "counter.login_succeeded",
            Self::CounterLoginFailed => "counter.login_failed",
            Self::CounterLogout => "counter.logout",
            Self::ApplicationSaved => "application.saved",
            Self::KeyModelSaved => "key_model.saved",
            Self::KeyStockChanged => "key_model.stock_changed",
            Self::AddressSaved => "address.saved",
            Self::CheckoutSaved => "order.checkout_saved",
            Self::PaymentCreated => "payment.created",
            Self::PaymentCallback => "payment.callback",
            Self::PaymentSettled => "payment.settled",
            Self::RefundChanged => "payment.refund_changed",
            Self::OperatorPermissionChanged => "operator.permission_changed",
            Self::ProductionAttempt => "production.attempt",
            Self::KeyProduced => "production.key_produced",
            Self::ShipmentChanged => "shipping.shipment_changed",
            Self::CourierPush => "shipping.push",
            Self::CertificateDownloaded => "certificate.downloaded",
            Self::AccessRefused => "access.refused",
            Self::ExpiryReminderSent => "certificate.expiry_reminder",
            Self::ReminderSmsChanged => "certificate.reminder_sms",
            Self::PlatformAdded => "platform.added",
            Self::CertificateActivated => "certificate.activated",
            Self::ActivationRefused => "certificate.activation_refused",
            Self::RenewalStep => "certificate.renewal",
            Self::PinUnlockStep => "ukey.pin_unlock",
        }
    }
}

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    /// Who.
    pub actor: Actor,
    /// From where (client IP), when known.
    pub ip: Option<String>,
    /// What.
    pub event: AuditEvent,
    /// Details, as a JSON object.
    pub data: serde_json::Value,
}

impl NewAuditEntry {
    /// A new entry with the given details.
    pub fn new(
        actor: Actor,
        ip: Option<String>,
        event: AuditEvent,
        data: serde_json::Value,
    ) -> Self {
        Self {
            actor,
            ip,
            event,
            data,
        }
    }
}

/// A stored row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When.
    pub at: Timestamp,
    /// Who (the [`Actor`]'s stored form).
    pub actor: String,
    /// From where.
    pub ip: Option<String>,
    /// What (an [`AuditEvent`]'s stored name).
    pub event: String,
    /// Details, JSON text exactly as stored.
    pub data: String,
    /// The previous row's hash ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// This row's hash.
    pub hash: String,
}

/// Computes the hash of a row from its fields and the previous row's hash.
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    at: Timestamp,
    actor: &str,
    ip: Option<&str>,
    event: &str,
    data: &str,
) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(b"certhall-audit-v1");
    field(prev_hash.as_bytes());
    field(&seq.to_be_bytes());
    field(&at.millis().to_be_bytes());
    field(actor.as_bytes());
    match ip {
        Some(ip) => {
            field(b"1");
            field(ip.as_bytes());
        }
        None => field(b"0"),
    }
    field(event.as_bytes());
    field(data.as_bytes());
    hex::encode(h.finalize())
}

impl AuditEntry {
    /// Builds the next row of the chain.
    pub fn seal(prev: Option<(&str, i64)>, at: Timestamp, new: &NewAuditEntry) -> Self {
        let (prev_hash, seq) = match prev {
            Some((hash, seq)) => (hash.to_owned(), seq + 1),
            None => (GENESIS_HASH.to_owned(), 1),
        };
        let actor = new.actor.to_string();
        let event = new.event.as_str().to_owned();
        let data = new.data.to_string();
        let hash = entry_hash(
            &prev_hash,
            seq,
            at,
            &actor,
            new.ip.as_deref(),
            &event,
            &data,
        );
        Self {
            seq,
            at,
            actor,
            ip: new.ip.clone(),
            event,
            data,
            prev_hash,
            hash,
        }
    }

    fn recomputed_hash(&self) -> String {
        entry_hash(
            &self.prev_hash,
            self.seq,
            self.at,
            &self.actor,
            self.ip.as_deref(),
            &self.event,
            &self.data,
        )
    }
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at row {seq}: {reason}")]
pub struct ChainBreak {
    /// The first row that does not fit.
    pub seq: i64,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Walks rows in `seq` order and accumulates the verification.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    last: Option<(i64, String)>,
    count: u64,
}

impl ChainVerifier {
    /// Starts at the beginning of the chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next row.
    pub fn push(&mut self, e: &AuditEntry) -> Result<(), ChainBreak> {
        let (want_seq, want_prev) = match &self.last {
            Some((seq, hash)) => (seq + 1, hash.as_str()),
            None => (1, GENESIS_HASH),
        };
        if e.seq != want_seq {
            return Err(ChainBreak {
                seq: want_seq.min(e.seq),
                reason: "row missing or out of order",
            });
        }
        if e.prev_hash != want_prev {
            return Err(ChainBreak {
                seq: e.seq,
                reason: "does not link to the previous row",
            });
        }
        if e.recomputed_hash() != e.hash {
            return Err(ChainBreak {
                seq: e.seq,
                reason: "content does not match its hash (row edited)",
            });
        }
        self.last = Some((e.seq, e.hash.clone()));
        self.count += 1;
        Ok(())
    }

    /// Rows verified so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Verifies a whole chain given in `seq` order; returns the number of rows.
pub fn verify_chain<'a>(rows: impl IntoIterator<Item = &'a AuditEntry>) -> Result<u64, ChainBreak> {
    let mut v = ChainVerifier::new();
    for r in rows {
        v.push(r)?;
    }
    Ok(v.count())
}

/// How often refusals of one caller are written to the audit chain: the
/// first [`Self::max_per_window`] of each window, so that a scan is
/// visible but cannot flood the chain; the next recorded entry says how
/// many were left out before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalThrottle {
    /// Entries per caller and window.
    pub max_per_window: u32,
    /// The window.
    pub window: std::time::Duration,
}

impl Default for RefusalThrottle {
    fn default() -> Self {
        Self {
            max_per_window: 10,
            window: std::time::Duration::from_secs(10 * 60),
        }
    }
}

/// The throttle's count for one caller (stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleWindow {
    /// When the window began.
    pub start: Timestamp,
    /// Refusals in the window (recorded or not).
    pub count: u32,
    /// Refusals left out of the chain and not yet reported.
    pub unreported: u32,
}

/// What the throttle decided for one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleDecision {
    /// The window to store.
    pub window: ThrottleWindow,
    /// `Some(n)`: write the entry, saying `n` earlier refusals were left
    /// out; `None`: leave it out.
    pub record: Option<u32>,
}

impl RefusalThrottle {
    /// Counts one more refusal at `now` against the stored window.
    pub fn count(&self, stored: Option<ThrottleWindow>, now: Timestamp) -> ThrottleDecision {
        let current = stored.filter(|w| now.since(w.start) < self.window);
        let unreported = stored.map_or(0, |w| w.unreported);
        let (start, count) = match current {
            Some(w) => (w.start, w.count.saturating_add(1)),
            None => (now, 1),
        };
        if count <= self.max_per_window {
            ThrottleDecision {
                window: ThrottleWindow {
                    start,
                    count,
                    unreported: 0,
                },
                record: Some(unreported),
            }
        } else {
            ThrottleDecision {
                window: ThrottleWindow {
                    start,
                    count,
                    unreported: unreported.saturating_add(1),
                },
                record: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: usize) -> Vec<AuditEntry> {
        let mut rows: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let new = NewAuditEntry::new(
                Actor::Account(AccountId(i as i64)),
                Some("127.0.0.1".into()),
                AuditEvent::LoginSucceeded,
                json!({ "i": i }),
            );
            let prev = rows.last().map(|r| (r.hash.as_str(), r.seq));
            let row = AuditEntry::seal(prev, Timestamp::from_millis(1000 + i as i64), &new);
            rows.push(row);
        }
        rows
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify_chain(&chain(5)), Ok(5));
        assert_eq!(verify_chain(&chain(0)), Ok(0));
    }

    #[test]
    fn edited_row_is_named() {
        let mut rows = chain(5);
        rows[2].data = r#"{"i":99}"#.into();
        assert_eq!(verify_chain(&rows).unwrap_err().seq, 3);
        let mut rows = chain(5);
        rows[3].actor = "account:0".into();
        assert_eq!(verify_chain(&rows).unwrap_err().seq, 4);
    }

    #[test]
    fn deleted_or_rehashed_row_is_named() {
        let mut rows = chain(5);
        rows.remove(1);
        assert_eq!(verify_chain(&rows).unwrap_err().seq, 2);

        // Editing a row and fixing its own hash still breaks the next link.
        let mut rows = chain(5);
        rows[1].event = "logout".into();
        rows[1].hash = rows[1].recomputed_hash();
        let err = verify_chain(&rows).unwrap_err();
        assert_eq!(
            (err.seq, err.reason),
            (3, "does not link to the previous row")
        );
    }

    #[test]
    fn ip_absent_differs_from_empty() {
        let a = entry_hash(
            GENESIS_HASH,
            1,
            Timestamp::from_millis(0),
            "x",
            None,
            "e",
            "{}",
        );
        let b = entry_hash(
            GENESIS_HASH,
            1,
            Timestamp::from_millis(0),
            "x",
            Some(""),
            "e",
            "{}",
        );
        assert_ne!(a, b);
    }

    #[test]
    fn refusals_are_recorded_up_to_the_limit_then_summed_up() {
        let t = RefusalThrottle::default();
        let t0 = Timestamp::from_millis(1_800_000_000_000);
        let mut w = None;
        let mut recorded = 0;
        for _ in 0..25 {
            let d = t.count(w, t0);
            if d.record.is_some() {
                assert_eq!(d.record, Some(0));
                recorded += 1;
            }
            w = Some(d.window);
        }
        assert_eq!(recorded, 10);
        assert_eq!(w.unwrap().unreported, 15);
        // Within the window: still left out.
        let later = t0.plus(std::time::Duration::from_secs(9 * 60));
        let d = t.count(w, later);
        assert_eq!(d.record, None);
        // A new window: recorded, with the count of those left out.
        let next = t0.plus(std::time::Duration::from_secs(10 * 60));
        let d = t.count(Some(d.window), next);
        assert_eq!(d.record, Some(16));
        assert_eq!(d.window.count, 1);
        assert_eq!(d.window.unreported, 0);
    }
}
