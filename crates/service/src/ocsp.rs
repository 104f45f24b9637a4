//! The OCSP responder (RFC 6960, RFC 5019 profile) and its memory.
//!
//! Every process keeps, in memory: the issuing CAs it answers for (parsed
//! once, not per request), the current responder per family, the status
//! of the certificates it was asked about, and the pre-signed answers to
//! requests without a nonce. The database stays the truth: pre-signed
//! answers are also kept in `ocsp_responses` (shared by every process and
//! kept across restarts), and every change that makes an answer stale (a
//! revocation, a responder rotation, a new CA, in any process) bumps the
//! `ocsp_generation` row. A process reads that row at most every
//! `CaSettings::ocsp_poll` and forgets everything when it moved; the
//! process that made the change forgets at once. So a cached answer costs
//! no database round trip and no certificate parsing, and a request with
//! a nonce costs its signature and one status lookup at most.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use certhall_ca::crl::Reason;
use certhall_ca::ocsp::{self, Status};
use certhall_ca::{CaError, CaSigner};
use certhall_domain::Timestamp;
use certhall_store::ca::{self as db, AuthorityRow, OcspRow};
use x509_cert::Certificate;

use crate::ca::{backend_of, family_of, parse_cert, role, OcspAnswer};
use crate::{Result, ServiceError, Services};

/// Answers kept in memory at most (per process); past it the memory
/// starts again (the database cache still answers).
const MAX_ANSWERS: usize = 200_000;

/// What one process remembers; see the module documentation.
#[derive(Default)]
pub(crate) struct OcspMemory {
    state: Mutex<State>,
}

impl std::fmt::Debug for OcspMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspMemory").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// The generation the memory belongs to, and when it was last read.
    generation: Option<i64>,
    checked_at: Option<Timestamp>,
    /// The issuing CAs, parsed.
    issuers: Option<Arc<Vec<Issuer>>>,
    /// The responder per issuing CA id.
    responders: HashMap<i64, Arc<Responder>>,
    /// Pre-signed answers by (issuer id, serial hex).
    answers: HashMap<(i64, String), Arc<OcspRow>>,
    /// Statuses by (issuer id, serial hex).
    statuses: HashMap<(i64, String), Status>,
}

struct Issuer {
    row: AuthorityRow,
    /// Its `CertID` hashes, so a request is matched without hashing.
    hashes: ocsp::IssuerHashes,
}

struct Responder {
    row: AuthorityRow,
    cert: Certificate,
    signer: Arc<dyn CaSigner>,
}

impl OcspMemory {
    /// Forgets everything (this process changed something).
    pub(crate) fn forget(&self) {
        // The generation is read again on the next request.
        if let Ok(mut s) = self.state.lock() {
            *s = State::default();
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Option<T> {
        self.state.lock().ok().map(|mut s| f(&mut s))
    }
}

impl Services {
    /// Answers an OCSP request (RFC 6960, RFC 5019 profile). Requests
    /// without a nonce for one certificate are served from memory or from
    /// the shared cache of pre-signed responses, re-signed when close to
    /// nextUpdate (and dropped on revocation); requests with a nonce are
    /// signed fresh and echo it. Never fails: faults become
    /// `internalError` responses.
    pub async fn ca_ocsp(&self, request: &[u8]) -> OcspAnswer {
        match self.ca_ocsp_inner(request).await {
            Ok(a) => a,
            Err(ServiceError::Refused(_))
            | Err(ServiceError::Ca(CaError::MalformedOcspRequest(_))) => OcspAnswer {
                der: ocsp::error_response(x509_ocsp::OcspResponseStatus::MalformedRequest),
                cache: None,
            },
            Err(e) => {
                tracing::error!(error = %e, "ocsp responder failed");
                OcspAnswer {
                    der: ocsp::error_response(x509_ocsp::OcspResponseStatus::InternalError),
                    cache: None,
                }
            }
        }
    }

    async fn ca_ocsp_inner(&self, request: &[u8]) -> Result<OcspAnswer> {
        let parsed = ocsp::parse_request(request).map_err(ServiceError::Ca)?;
        let now = self.clock.now();
        self.ocsp_check_generation(now).await?;
        let memory = &self.ca().ocsp;

        // A CA created since (in any process) bumps the generation.
        let issuers = self.ocsp_issuers().await?;
        let issuer = issuers
            .iter()
            .find(|i| parsed.items.iter().all(|id| i.hashes.names(id)))
            .map(|i| &i.row);
        let Some(issuer) = issuer else {
            // RFC 5019 §2.2.3: not a CA this responder answers for.
            return Ok(OcspAnswer {
                der: ocsp::error_response(x509_ocsp::OcspResponseStatus::Unauthorized),
                cache: None,
            });
        };
        let fresh = |c: &OcspRow| {
            c.next_update.since(now) > self.ca().settings.ocsp_refresh_before
                && c.this_update <= now
        };
        let single = parsed.nonce.is_none() && parsed.items.len() == 1;
        let single_key =
            single.then(|| (issuer.id, hex::encode(ocsp::serial_of(&parsed.items[0]))));
        if let Some(key) = &single_key {
            let remembered = memory
                .with(|s| s.answers.get(key).cloned())
                .flatten()
                .filter(|c| fresh(c));
            if let Some(c) = remembered {
                return Ok(OcspAnswer {
                    der: c.der.clone(),
                    cache: Some((c.this_update, c.next_update)),
                });
            }
            if let Some(c) = db::cached_ocsp(&self.store, key.0, &key.1).await? {
                if fresh(&c) {
                    let answer = OcspAnswer {
                        der: c.der.clone(),
                        cache: Some((c.this_update, c.next_update)),
                    };
                    self.ocsp_remember(key.clone(), c);
                    return Ok(answer);
                }
            }
        }

        let mut items = Vec::with_capacity(parsed.items.len());
        for id in &parsed.items {
            let serial = hex::encode(ocsp::serial_of(id));
            items.push((id.clone(), self.ocsp_status(issuer.id, serial).await?));
        }
        let responder = self.ocsp_responder(issuer, now).await?;
        let next_update = now.plus(self.ca().settings.ocsp_validity);
        let der_bytes = ocsp::build_response(
            &responder.cert,
            responder.signer.as_ref(),
            &items,
            now,
            now,
            next_update,
            parsed.nonce.as_ref(),
        )
        .map_err(ServiceError::Ca)?;
        let Some(key) = single_key else {
            return Ok(OcspAnswer {
                der: der_bytes,
                cache: None,
            });
        };
        let row = OcspRow {
            this_update: now,
            next_update,
            der: der_bytes.clone(),
        };
        db::put_ocsp(&self.store, key.0, &key.1, &row).await?;
        self.ocsp_remember(key, row);
        Ok(OcspAnswer {
            der: der_bytes,
            cache: Some((now, next_update)),
        })
    }

    /// Forgets what this process remembers when another process has
    /// changed something since (read at most every `ocsp_poll`).
    async fn ocsp_check_generation(&self, now: Timestamp) -> Result<()> {
        let poll = self.ca().settings.ocsp_poll;
        let due = self
            .ca()
            .ocsp
            .with(|s| s.checked_at.is_none_or(|t| now.since(t) >= poll || t > now))
            .unwrap_or(true);
        if !due {
            return Ok(());
        }
        let generation = db::ocsp_generation(&self.store).await?;
        self.ca().ocsp.with(|s| {
            if s.generation != Some(generation) {
                *s = State::default();
                s.generation = Some(generation);
            }
            s.checked_at = Some(now);
        });
        Ok(())
    }

    async fn ocsp_issuers(&self) -> Result<Arc<Vec<Issuer>>> {
        if let Some(Some(i)) = self.ca().ocsp.with(|s| s.issuers.clone()) {
            return Ok(i);
        }
        let mut issuers = Vec::new();
        for row in db::authorities(&self.store).await? {
            if row.role == role::ISSUING {
                let hashes = ocsp::IssuerHashes::of(&parse_cert(&row.der)?).ok_or_else(|| {
                    ServiceError::Internal(format!(
                        "CA {} has a name that cannot be encoded",
                        row.id
                    ))
                })?;
                issuers.push(Issuer { row, hashes });
            }
        }
        let issuers = Arc::new(issuers);
        self.ca().ocsp.with(|s| s.issuers = Some(issuers.clone()));
        Ok(issuers)
    }

    async fn ocsp_status(&self, issuer_id: i64, serial: String) -> Result<Status> {
        let key = (issuer_id, serial);
        if let Some(Some(status)) = self.ca().ocsp.with(|s| s.statuses.get(&key).cloned()) {
            return Ok(status);
        }
        let status = match db::certificate(&self.store, &key.1).await? {
            Some(c) if c.issuer_id == issuer_id => match &c.revocation {
                Some(r) => Status::Revoked {
                    at: r.revoked_at,
                    reason: Reason::from_code(r.reason_code),
                },
                None => Status::Good,
            },
            _ => Status::Unknown,
        };
        // Not "unknown": a certificate issued later does not bump the
        // generation.
        if status != Status::Unknown {
            self.ca().ocsp.with(|s| {
                if s.statuses.len() >= MAX_ANSWERS {
                    s.statuses.clear();
                }
                s.statuses.insert(key, status);
            });
        }
        Ok(status)
    }

    /// The responder of `issuer`, rotated when close to its end.
    async fn ocsp_responder(
        &self,
        issuer: &AuthorityRow,
        now: Timestamp,
    ) -> Result<Arc<Responder>> {
        let rotate_before = self.ca().settings.ocsp_signer_rotate_before;
        let remembered = self
            .ca()
            .ocsp
            .with(|s| s.responders.get(&issuer.id).cloned())
            .flatten()
            .filter(|r| r.row.not_after.since(now) > rotate_before);
        if let Some(r) = remembered {
            return Ok(r);
        }
        let family = family_of(issuer)?;
        // A new responder key lives where the issuing CA's key lives.
        let row = self.ca_ocsp_signer(family, &backend_of(issuer)).await?;
        let responder = Arc::new(Responder {
            cert: parse_cert(&row.der)?,
            signer: self.ca_signer(&row)?,
            row,
        });
        self.ca()
            .ocsp
            .with(|s| s.responders.insert(issuer.id, responder.clone()));
        Ok(responder)
    }

    fn ocsp_remember(&self, key: (i64, String), row: OcspRow) {
        self.ca().ocsp.with(|s| {
            if s.answers.len() >= MAX_ANSWERS {
                s.answers.clear();
            }
            s.answers.insert(key, Arc::new(row));
        });
    }
}
