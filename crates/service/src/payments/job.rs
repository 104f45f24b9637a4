//! The reconciliation job, once per tick across processes (a lease):
//! attempts still `paying` are asked about, or closed once expired; closed
//! and failed attempts are asked about once more after their QR code
//! expired (money may have reached them with its callback lost — applied
//! if the order still owes it, else refunded); open refunds are driven
//! until final.

use std::time::Duration;

use certhall_store::payments;

use super::Applied;
use crate::{Result, Services};

/// What one run of the reconciliation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileSummary {
    /// Attempts asked about.
    pub queried: u32,
    /// Found paid.
    pub paid: u32,
    /// Closed (expired or closed by the provider).
    pub closed: u32,
    /// Found failed.
    pub failed: u32,
    /// Closed or failed attempts asked about after expiry.
    pub late_checked: u32,
    /// …of which money had reached (applied or refunded).
    pub late_paid: u32,
    /// Refunds submitted or asked about.
    pub refunds_checked: u32,
    /// Refunds now final.
    pub refunds_final: u32,
    /// Provider errors (retried next time).
    pub errors: u32,
}

impl ReconcileSummary {
    fn text(&self) -> String {
        format!(
            "queried={} paid={} closed={} failed={} late_checked={} late_paid={} refunds_checked={} refunds_final={} errors={}",
            self.queried,
            self.paid,
            self.closed,
            self.failed,
            self.late_checked,
            self.late_paid,
            self.refunds_checked,
            self.refunds_final,
            self.errors
        )
    }
}

/// The name of the payment job's lease.
pub const PAYMENT_JOB: &str = "payments";

/// How long after a closed or failed attempt's QR code expired the job asks
/// about it once more (a payment in progress at the expiry finishes).
pub const LATE_CHECK_AFTER: Duration = Duration::from_secs(10 * 60);

impl Services {
    /// The reconciliation: attempts still `paying` after a while are asked
    /// about (and closed once expired); open refunds are submitted or
    /// asked about. Safe to run from several processes (each attempt is
    /// claimed before it is asked about); [`Services::run_payment_job`]
    /// runs it once per tick.
    pub async fn reconcile_payments(&self) -> Result<ReconcileSummary> {
        let policy = self.payments.policy;
        let now = self.clock.now();
        let mut s = ReconcileSummary::default();
        for a in payments::paying_before(&self.store, now.minus(policy.query_after), 200).await? {
            if !payments::claim_query(&self.store, a.id, now.minus(policy.query_every), now).await?
            {
                continue;
            }
            s.queried += 1;
            let result = if now >= a.expires_at {
                self.close_attempt(&a, "job").await
            } else {
                self.check_attempt(&a, "job").await
            };
            match result {
                Ok(Applied::Paid | Applied::Refunding) => s.paid += 1,
                Ok(Applied::Closed) => s.closed += 1,
                Ok(Applied::Failed) => s.failed += 1,
                Ok(_) => {}
                Err(e) => {
                    s.errors += 1;
                    tracing::warn!(error = %e, attempt = a.id, "payment reconciliation failed");
                }
            }
        }
        for a in payments::late_unchecked(&self.store, now.minus(LATE_CHECK_AFTER), 200).await? {
            if !payments::claim_late_check(&self.store, a.id, now).await? {
                continue;
            }
            s.late_checked += 1;
            match self.check_attempt(&a, "late_check").await {
                Ok(Applied::Paid | Applied::Refunding) => s.late_paid += 1,
                Ok(_) => {}
                Err(e) => {
                    s.errors += 1;
                    tracing::warn!(error = %e, attempt = a.id, "late payment check failed");
                }
            }
        }
        for r in payments::open_refunds(&self.store, 200).await? {
            s.refunds_checked += 1;
            match self.drive_refund(&r).await {
                Ok(true) => s.refunds_final += 1,
                Ok(false) => {}
                Err(e) => {
                    s.errors += 1;
                    tracing::warn!(error = %e, refund = r.id, "refund step failed");
                }
            }
        }
        Ok(s)
    }

    /// Runs the reconciliation for the current tick of `interval` if no
    /// other process has (a database lease); `holder` names this process.
    /// `None` when another process had the tick.
    pub async fn run_payment_job(
        &self,
        holder: &str,
        interval: Duration,
    ) -> Result<Option<ReconcileSummary>> {
        self.run_leased(
            PAYMENT_JOB,
            holder,
            interval,
            self.reconcile_payments(),
            ReconcileSummary::text,
        )
        .await
    }
}
