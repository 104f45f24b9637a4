//! Group commit of issuances. Callers verify the CSR, build and sign the
//! certificate on their own task (the CPU work, in parallel), then hand
//! the certificate row and its audit entry to one writer task per
//! process, which stores everything that queued up meanwhile in one
//! transaction: one multi-row INSERT of certificates, the audit entries
//! chained in order, one commit. Every caller is answered only after the
//! commit that holds its certificate, so an issuance that returned is as
//! durable as before; the transaction per certificate (and the audit
//! chain's lock per certificate) is what capped issuance at about 1,500/s.
//!
//! A batch is checked against the database before it is written: each
//! certificate must have been signed by the issuing CA that is still
//! active and built from the profile as it is now stored. A certificate
//! built from a stale view (another process rotated the CA or edited the
//! profile) is answered [`Verdict::Stale`]; the caller rebuilds it from a
//! fresh view. So the in-memory [`IssuingView`] cache never issues from an
//! outdated CA or profile.
//!
//! Several processes each run their own writer; they serialize on the
//! audit chain's lock, as single transactions did.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use certhall_domain::audit::NewAuditEntry;
use certhall_domain::clock::Clock;
use certhall_domain::Refusal;
use certhall_store::ca::{self as db, CertificateRow};
use certhall_store::{audit, Store};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::{Result, ServiceError};

/// How long the writer waits at most for issuances still being built
/// (see [`run`]).
const GATHER: Duration = Duration::from_millis(1);

/// At most this many issuances per transaction (a power of two).
const MAX_BATCH: usize = 512;

/// One issuance waiting for its commit.
#[derive(Debug)]
pub(crate) struct Job {
    pub row: CertificateRow,
    pub audit: NewAuditEntry,
    /// The view it was built from, checked in the transaction.
    pub built_from: BuiltFrom,
}

/// What a certificate was built from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct BuiltFrom {
    pub family: String,
    pub authority_id: i64,
    pub profile: String,
    pub profile_body: String,
}

/// How a job ended.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Committed.
    Stored,
    /// Built from a CA or profile that changed since: rebuild.
    Stale,
}

type Reply = oneshot::Sender<Result<Verdict>>;

/// The per-process queue in front of the writer task.
#[derive(Debug, Default)]
pub(crate) struct IssueQueue {
    sender: RwLock<Option<mpsc::UnboundedSender<(Job, Reply)>>>,
    /// Issuances of this process being verified, built and signed, not
    /// yet queued: the writer waits a moment for them (see [`run`]).
    building: Arc<InFlight>,
}

/// The count of issuances being built, and the writer's wake-up for when
/// it falls to zero.
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    none_left: Notify,
}

/// One issuance being built; counted in [`IssueQueue::building`] until it
/// is queued or dropped (refused before reaching the queue).
#[derive(Debug)]
pub(crate) struct Building(Arc<InFlight>);

impl Drop for Building {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: a writer gathering need not wait any longer.
            self.0.none_left.notify_one();
        }
    }
}

impl IssueQueue {
    /// Counts an issuance from its start (before the CSR is verified).
    pub fn building(&self) -> Building {
        self.building.count.fetch_add(1, Ordering::AcqRel);
        Building(self.building.clone())
    }

    /// Queues `job` and waits for the commit that stores it (or refuses it).
    /// Starts the writer on first use, and again if it stopped.
    pub async fn submit(
        &self,
        store: &Store,
        clock: &Arc<dyn Clock>,
        building: Building,
        job: Job,
    ) -> Result<Verdict> {
        let (reply, answer) = oneshot::channel();
        let mut item = (job, reply);
        for _ in 0..2 {
            let sender = self.sender(store, clock, false);
            match sender.send(item) {
                Ok(()) => {
                    // Queued: no longer being built (counted down only
                    // now, so a writer woken by the count reaching zero
                    // finds this job in the queue).
                    drop(building);
                    return answer
                        .await
                        .map_err(|_| internal("the issuance writer stopped before committing"))?;
                }
                // The writer stopped (it could not start, or panicked):
                // start another.
                Err(mpsc::error::SendError(back)) => {
                    item = back;
                    self.sender(store, clock, true);
                }
            }
        }
        Err(internal("the issuance writer cannot be started"))
    }

    fn sender(
        &self,
        store: &Store,
        clock: &Arc<dyn Clock>,
        restart: bool,
    ) -> mpsc::UnboundedSender<(Job, Reply)> {
        if !restart {
            let guard = self.sender.read().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = guard.as_ref().filter(|s| !s.is_closed()) {
                return s.clone();
            }
        }
        let mut guard = self.sender.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = guard.as_ref().filter(|s| !restart && !s.is_closed()) {
            return s.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        spawn_writer(store.clone(), clock.clone(), self.building.clone(), rx);
        *guard = Some(tx.clone());
        tx
    }
}

/// Starts the writer on a thread of its own with a single-threaded
/// runtime. On the shared runtime its wake-ups (each answer from the
/// database) waited behind the issuing tasks' CPU work: a task woken from
/// outside the runtime's workers is queued globally, and busy workers look
/// there only every few dozen polls. On its own thread the operating
/// system runs it as soon as the database answers. The thread ends when
/// the queue is dropped.
fn spawn_writer(
    store: Store,
    clock: Arc<dyn Clock>,
    building: Arc<InFlight>,
    rx: mpsc::UnboundedReceiver<(Job, Reply)>,
) {
    let started = std::thread::Builder::new()
        .name("issue-writer".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(run(store, clock, building, rx)),
                // Dropping `rx` answers every caller with an error.
                Err(e) => tracing::error!(error = %e, "cannot start the issuance writer"),
            }
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot start the issuance writer's thread");
    }
}

fn internal(what: &str) -> ServiceError {
    ServiceError::Internal(what.to_owned())
}

/// The writer: takes what queued up, commits it as one batch, answers.
///
/// While other issuances of this process are still being built, the
/// writer waits for them, [`GATHER`] at most, before it commits: a commit
/// costs about the same for one certificate as for dozens (the same pages
/// written, the same round trips), and under load the writer otherwise
/// committed as soon as one had arrived — mostly batches of one to four.
/// It commits at once when nothing more is being built (a single
/// issuance, or the last of a few).
///
/// A batch is a power of two (the largest not above what waits, at most
/// [`MAX_BATCH`]); the rest goes first into the next one. So the batch's
/// multi-row INSERTs have one of a few texts, which the connection keeps
/// prepared, instead of a new statement to parse for every batch size.
async fn run(
    store: Store,
    clock: Arc<dyn Clock>,
    building: Arc<InFlight>,
    mut rx: mpsc::UnboundedReceiver<(Job, Reply)>,
) {
    let mut waiting: VecDeque<(Job, Reply)> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match rx.recv().await {
                Some(item) => waiting.push_back(item),
                None => return,
            }
        }
        // Not woken by each arrival (every wake-up of this thread is a
        // context switch on a core the issuing tasks need): it sleeps
        // until the last issuance being built is queued, or GATHER.
        if building.count.load(Ordering::Acquire) > 0 {
            let deadline = tokio::time::Instant::now() + GATHER;
            tokio::select! {
                () = building.none_left.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
        while waiting.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => waiting.push_back(item),
                Err(_) => break,
            }
        }
        let size = 1 << waiting.len().min(MAX_BATCH).ilog2();
        let (jobs, replies): (Vec<Job>, Vec<Reply>) = waiting.drain(..size).unzip();
        match commit(&store, clock.as_ref(), &jobs).await {
            Ok(verdicts) => {
                for (reply, v) in replies.into_iter().zip(verdicts) {
                    let _ = reply.send(Ok(v));
                }
            }
            Err(e) if jobs.len() == 1 => {
                let _ = replies.into_iter().next().map(|r| r.send(Err(e)));
            }
            // One bad job (a duplicate serial, say) must not fail the
            // others: write them one by one, each with its own answer.
            Err(e) => {
                tracing::warn!(error = %e, jobs = jobs.len(), "issuance batch failed; committing one by one");
                for (job, reply) in jobs.into_iter().zip(replies) {
                    let one = commit(&store, clock.as_ref(), std::slice::from_ref(&job)).await;
                    let _ = reply.send(one.map(|mut v| v.remove(0)));
                }
            }
        }
    }
}

/// One transaction: check what each job was built from and its
/// predecessor, insert the fresh ones with their audit entries, commit.
async fn commit(store: &Store, clock: &dyn Clock, jobs: &[Job]) -> Result<Vec<Verdict>> {
    let mut tx = store.begin_write().await?;
    let mut current: HashMap<&BuiltFrom, bool> = HashMap::new();
    for job in jobs {
        let b = &job.built_from;
        if current.contains_key(b) {
            continue;
        }
        let (authority, body) =
            db::issuing_basis_tx(&mut tx, &b.family, super::role::ISSUING, &b.profile).await?;
        let fresh =
            authority == Some(b.authority_id) && body.as_deref() == Some(b.profile_body.as_str());
        current.insert(b, fresh);
    }
    for job in jobs {
        if let Some(p) = &job.row.predecessor_serial {
            if db::certificate_tx(&mut tx, p).await?.is_none() {
                // Refused before anything is written; the batch falls
                // back to one by one and only this job gets the refusal.
                return Err(Refusal::CertificateNotFound.into());
            }
        }
    }
    let fresh: Vec<&Job> = jobs.iter().filter(|j| current[&j.built_from]).collect();
    let rows: Vec<&CertificateRow> = fresh.iter().map(|j| &j.row).collect();
    let entries: Vec<&NewAuditEntry> = fresh.iter().map(|j| &j.audit).collect();
    db::insert_certificates(&mut tx, &rows).await?;
    audit::append_many(&mut tx, clock.now(), &entries).await?;
    tx.commit().await?;
    Ok(jobs
        .iter()
        .map(|j| {
            if current[&j.built_from] {
                Verdict::Stored
            } else {
                Verdict::Stale
            }
        })
        .collect())
}
