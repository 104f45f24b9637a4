//! 到期提醒: expiry reminders at 90, 30 and 7 days before a certificate
//! ends and on the day after, as an in-app message and an SMS, each once
//! per certificate however many processes run the job and however often
//! they restart.
//!
//! Which reminder is due is the domain's decision
//! (`certhall_domain::lifecycle::ReminderStage::due`). Once: the reminder's
//! record (certificate, stage) is inserted in the transaction that
//! delivers the message, and a second process's insert of the same key
//! does nothing (its transaction rolls back). The SMS follows the record
//! through compare-and-set state moves (`ReminderSms`), so it is sent by
//! one process at most, and a send a dead process left half-way is never
//! repeated.

use std::time::Duration;

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::lifecycle::{
    days_left, subject_common_name, ReminderSms, ReminderStage, RenewalTiming,
};
use certhall_domain::message::{MessageKind, NewMessage};
use certhall_domain::{AccountId, Timestamp};
use certhall_notify::{Sms, SmsTemplate};
use certhall_store::ca::{self as cadb, CertificateRow};
use certhall_store::reminders::{self as db, NewReminder, ReminderRow, SmsMove};
use certhall_store::{accounts, messages};
use serde_json::json;

use crate::certificates::lifecycle_facts;
use crate::{append_audit, RequestMeta, Result, Services};

/// The job's name in the lease table.
pub const REMINDER_JOB: &str = "expiry_reminders";

const DAY: Duration = Duration::from_secs(86_400);

/// SMS sent per run at most (the rest wait for the next tick).
const SMS_PER_RUN: u32 = 200;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReminderSweep {
    /// Certificates looked at.
    pub checked: u32,
    /// Reminders delivered (in-app message written).
    pub delivered: u32,
    /// SMS the provider accepted.
    pub sms_sent: u32,
    /// SMS the provider refused (tried again later, up to three times).
    pub sms_failed: u32,
    /// Sends a dead process left half-way, marked unknown.
    pub sms_abandoned: u32,
}

/// One reminder as 我的证书 lists it.
#[derive(Debug, Clone)]
pub struct ReminderView {
    /// Which one (到期前30天提醒).
    pub stage: &'static str,
    /// When it went out.
    pub sent_at: Timestamp,
    /// What became of its SMS.
    pub sms: &'static str,
}

/// A certificate the home page offers to renew.
#[derive(Debug, Clone)]
pub struct ExpiringCertificate {
    /// The certificate.
    pub certificate: CertificateRow,
    /// Its holder (the subject's common name).
    pub subject: String,
    /// Whole days left (negative once expired).
    pub days_left: i64,
}

impl Services {
    /// Delivers every reminder due now, then sends the SMS still pending.
    pub async fn send_due_reminders(&self) -> Result<ReminderSweep> {
        let now = self.clock.now();
        let mut sweep = ReminderSweep::default();
        // From the oldest whose day-after reminder may still be due, to
        // those whose 90-day reminder is.
        let from = now.minus(DAY + ReminderStage::EXPIRED_GRACE);
        let to = now.plus(DAY * 90);
        for c in cadb::unrevoked_ending_between(&self.store, from, to).await? {
            sweep.checked += 1;
            let sent: Vec<ReminderStage> = db::stages_sent(&self.store, &c.serial)
                .await?
                .iter()
                .filter_map(|s| ReminderStage::parse(s))
                .collect();
            let Some(stage) = ReminderStage::due(&lifecycle_facts(&c), now, &sent) else {
                continue;
            };
            if self.deliver_reminder(&c, stage, now).await? {
                sweep.delivered += 1;
            }
        }
        sweep.sms_abandoned = u32::try_from(
            db::abandon_stale_sends(&self.store, now.minus(ReminderSms::STALE_SEND), now).await?,
        )
        .unwrap_or(u32::MAX);
        for r in db::sms_pending(&self.store, SMS_PER_RUN).await? {
            match self.send_reminder_sms(&r).await? {
                Some(true) => sweep.sms_sent += 1,
                Some(false) => sweep.sms_failed += 1,
                None => {}
            }
        }
        Ok(sweep)
    }

    /// Runs [`Services::send_due_reminders`] for the current tick of
    /// `interval` unless another process has (a database lease).
    pub async fn run_reminder_job(
        &self,
        holder: &str,
        interval: Duration,
    ) -> Result<Option<ReminderSweep>> {
        self.run_leased(
            REMINDER_JOB,
            holder,
            interval,
            self.send_due_reminders(),
            |s| {
                format!(
                    "checked {} delivered {} sms_sent {} sms_failed {} sms_abandoned {}",
                    s.checked, s.delivered, s.sms_sent, s.sms_failed, s.sms_abandoned
                )
            },
        )
        .await
    }

    /// Writes the reminder's record, its in-app message and its audit entry
    /// in one transaction; false when another process recorded it first.
    async fn deliver_reminder(
        &self,
        c: &CertificateRow,
        stage: ReminderStage,
        now: Timestamp,
    ) -> Result<bool> {
        let Some(account) = c.account_id else {
            return Ok(false);
        };
        let text = stage.text_zh(&subject_common_name(&c.subject), c.not_after, now);
        let mut tx = self.store.begin_write().await?;
        let message = messages::insert(
            &mut tx,
            account,
            &NewMessage {
                kind: MessageKind::Expiry,
                title: text.title,
                body: text.body,
                order_id: None,
            },
            now,
        )
        .await?;
        let sms = if db::sms_enabled_tx(&mut tx, &c.serial).await? {
            ReminderSms::Pending
        } else {
            ReminderSms::Off
        };
        let first = db::record(
            &mut tx,
            &NewReminder {
                serial: &c.serial,
                stage: stage.as_str(),
                account_id: account,
                message_id: message.0,
                sms_state: sms.as_str(),
            },
            now,
        )
        .await?;
        if !first {
            // Dropped uncommitted: the message goes with it.
            drop(tx);
            return Ok(false);
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::System,
            &RequestMeta::default(),
            AuditEvent::ExpiryReminderSent,
            json!({
                "serial": c.serial,
                "stage": stage.as_str(),
                "account": account.0,
                "sms": sms.as_str(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sends one pending reminder SMS. `Some(true)`: accepted by the
    /// provider; `Some(false)`: refused (tried again later or given up);
    /// `None`: another process took it, or its owner turned SMS off.
    async fn send_reminder_sms(&self, r: &ReminderRow) -> Result<Option<bool>> {
        let now = self.clock.now();
        let pending = ReminderSms::Pending.as_str();
        if !db::sms_enabled(&self.store, &r.serial).await? {
            let m = SmsMove {
                from: pending,
                to: ReminderSms::Off.as_str(),
                error: None,
                tried: false,
            };
            db::move_sms(&self.store, &r.serial, &r.stage, m, now).await?;
            return Ok(None);
        }
        let claim = SmsMove {
            from: pending,
            to: ReminderSms::Sending.as_str(),
            error: None,
            tried: false,
        };
        if !db::move_sms(&self.store, &r.serial, &r.stage, claim, now).await? {
            return Ok(None);
        }
        let stage = ReminderStage::parse(&r.stage);
        let certificate = cadb::certificate(&self.store, &r.serial).await?;
        let account = accounts::get(&self.store, r.account_id).await?;
        let (Some(stage), Some(c), Some(account)) = (stage, certificate, account) else {
            let m = SmsMove {
                from: ReminderSms::Sending.as_str(),
                to: ReminderSms::Failed.as_str(),
                error: Some("certificate, account or stage not found"),
                tried: false,
            };
            db::move_sms(&self.store, &r.serial, &r.stage, m, now).await?;
            return Ok(Some(false));
        };
        let subject = subject_common_name(&c.subject);
        let sms = Sms {
            to: account.phone,
            template: SmsTemplate::ExpiryReminder {
                status: stage.text_zh(&subject, c.not_after, now).sms_status,
                subject,
            },
        };
        let sending = ReminderSms::Sending.as_str();
        let done = self.clock.now();
        match self.sms.send(&sms).await {
            Ok(()) => {
                let m = SmsMove {
                    from: sending,
                    to: ReminderSms::Sent.as_str(),
                    error: None,
                    tried: true,
                };
                db::move_sms(&self.store, &r.serial, &r.stage, m, done).await?;
                Ok(Some(true))
            }
            Err(e) => {
                tracing::warn!(serial = %r.serial, stage = %r.stage, error = %e, "expiry reminder SMS not sent");
                let error = e.to_string();
                let m = SmsMove {
                    from: sending,
                    to: ReminderSms::after_failure(r.sms_tries + 1).as_str(),
                    error: Some(&error),
                    tried: true,
                };
                db::move_sms(&self.store, &r.serial, &r.stage, m, done).await?;
                Ok(Some(false))
            }
        }
    }

    /// The reminders sent for one of the account's certificates, and
    /// whether SMS reminders are on for it.
    pub async fn certificate_reminders(
        &self,
        account: AccountId,
        serial: &str,
    ) -> Result<(Vec<ReminderView>, bool)> {
        let mine = self.my_certificate(account, serial).await?;
        let serial = &mine.certificate.serial;
        let views = db::of_certificate(&self.store, serial)
            .await?
            .into_iter()
            .map(|r| ReminderView {
                stage: ReminderStage::parse(&r.stage).map_or("到期提醒", ReminderStage::label_zh),
                sent_at: r.sent_at,
                sms: ReminderSms::parse(&r.sms_state).map_or("", ReminderSms::label_zh),
            })
            .collect();
        Ok((views, db::sms_enabled(&self.store, serial).await?))
    }

    /// Turns SMS expiry reminders on or off for one of the account's
    /// certificates (the in-app message always goes out).
    pub async fn set_reminder_sms(
        &self,
        account: AccountId,
        serial: &str,
        enabled: bool,
        meta: &RequestMeta,
    ) -> Result<()> {
        let mine = self.my_certificate(account, serial).await?;
        let serial = &mine.certificate.serial;
        let mut tx = self.store.begin_write().await?;
        let changed =
            db::set_sms_enabled(&mut tx, serial, account, enabled, self.clock.now()).await?;
        if changed {
            append_audit(
                &mut tx,
                self.clock.as_ref(),
                Actor::Account(account),
                meta,
                AuditEvent::ReminderSmsChanged,
                json!({ "serial": serial, "sms": enabled }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The account's certificates that may be renewed online now (from 90
    /// days before expiry until the renewal window closes), soonest end
    /// first: the home page offers 立即更新 for each.
    pub async fn expiring_certificates(
        &self,
        account: AccountId,
    ) -> Result<Vec<ExpiringCertificate>> {
        let now = self.clock.now();
        let window = self.renewal_window;
        // The home page's: the certificate rows only (no order or
        // activation lookups per certificate, as 我的证书 needs).
        let mut out: Vec<ExpiringCertificate> = self
            .owned_certificates(account)
            .await?
            .into_iter()
            .map(|(c, _)| c)
            .filter(|c| window.check(&lifecycle_facts(c), now) == RenewalTiming::Open)
            .map(|c| ExpiringCertificate {
                subject: subject_common_name(&c.subject),
                days_left: days_left(c.not_after, now),
                certificate: c,
            })
            .collect();
        out.sort_by_key(|e| e.certificate.not_after);
        Ok(out)
    }
}
