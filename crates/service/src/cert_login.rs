//! 数字证书登录 (manual 2.1): login with the certificate on the user's key.
//!
//! 1. [`Services::issue_login_challenge`] hands out a random challenge,
//!    bound to the browser (or `api`), valid two minutes, rate-limited per
//!    IP address;
//! 2. the page has the local key agent sign it (the agent signs a
//!    [`SignedMessage`] naming purpose, page origin and challenge);
//! 3. [`Services::login_with_certificate`] checks the challenge (unused —
//!    a used one is a replay —, bound to this browser, fresh; and uses it
//!    up), then the certificate and signature in the order of
//!    [`check_certificate`]: issued by CertHall (same DER on record, issuing
//!    CA's signature), the signature over purpose `login` + one of
//!    CertHall's configured origins + the challenge (possession before
//!    status), not revoked (re-read inside the transaction), key usage
//!    allowing signatures, within validity, bound to an account; then it
//!    opens the same session as SMS login, naming the certificate in the
//!    audit entry.
//!
//! A failure the key reports (wrong PIN, PIN locked) reaches the server
//! through [`Services::report_key_failure`], which uses up the challenge and
//! audits it like any other refused login.

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::cert_login::{
    challenge_expiry, check_certificate, check_challenge, new_challenge, CertificateFacts,
    SignedMessage, CHALLENGES_PER_IP_PER_HOUR,
};
use certhall_domain::otp::RATE_WINDOW;
use certhall_domain::session::SessionKind;
use certhall_domain::{Refusal, Timestamp};
use certhall_store::challenges::{self, NewChallenge};
use certhall_store::{ca as db, WriteTx};
use der::Decode;
use rand::rngs::OsRng;
use serde_json::json;
use x509_cert::Certificate;

use crate::auth::{LoggedIn, LoginMethod};
use crate::{append_audit, RequestMeta, Result, Services};

/// A challenge handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedChallenge {
    /// The text the key signs.
    pub challenge: String,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
}

/// What a page or API client presents to log in.
#[derive(Debug, Clone, Copy)]
pub struct CertLogin<'a> {
    /// The challenge answered.
    pub challenge: &'a str,
    /// Who answers it (the browser's binding, or `api`).
    pub binding: &'a str,
    /// The DER certificate.
    pub certificate: &'a [u8],
    /// The bytes the key signed (a [`SignedMessage`]).
    pub signed_data: &'a [u8],
    /// The signature over them.
    pub signature: &'a [u8],
    /// Origins a signature may name: CertHall's own.
    pub accepted_origins: &'a [String],
}

impl Services {
    /// Hands out a login challenge bound to `binding`.
    pub async fn issue_login_challenge(
        &self,
        binding: &str,
        meta: &RequestMeta,
    ) -> Result<IssuedChallenge> {
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        if let Some(ip) = meta.ip.as_deref() {
            let recent =
                challenges::issued_to_ip_since(&mut tx, ip, now.minus(RATE_WINDOW)).await?;
            if recent >= CHALLENGES_PER_IP_PER_HOUR {
                // Not audited: nothing changed, and an audit write per
                // refused request would turn the limit into a lever.
                tracing::warn!(ip, "certificate login: challenge limit reached");
                return Err(Refusal::CertChallengeLimit.into());
            }
        }
        let challenge = new_challenge(&mut OsRng);
        let expires_at = challenge_expiry(now);
        challenges::insert(
            &mut tx,
            &NewChallenge {
                challenge: &challenge,
                binding,
                ip: meta.ip.as_deref(),
                issued_at: now,
                expires_at,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(IssuedChallenge {
            challenge,
            expires_at,
        })
    }

    /// Logs in with a certificate whose key signed a challenge.
    pub async fn login_with_certificate(
        &self,
        input: CertLogin<'_>,
        kind: SessionKind,
        replacing: Option<&certhall_domain::session::SessionToken>,
        meta: &RequestMeta,
    ) -> Result<LoggedIn> {
        // Reads and signature checks first, outside the write transaction.
        let facts = self.certificate_facts(&input, "login").await?;
        let serial = facts.as_ref().map(|(serial, _)| serial.clone());
        let now = self.clock.now();

        let mut tx = self.store.begin_write().await?;
        if let Err(r) = self
            .use_up_challenge(&mut tx, input.challenge, input.binding, now)
            .await?
        {
            return self.refuse_cert_login(tx, r, serial.as_deref(), meta).await;
        }
        let account_id = match facts {
            Some((serial, mut facts)) => {
                // Revoked since the facts were read? (Revocation commits in
                // its own transaction; this read is inside ours.)
                facts.revoked |= db::certificate_tx(&mut tx, &serial)
                    .await?
                    .is_none_or(|row| row.revocation.is_some());
                check_certificate(&facts, now)
            }
            None => Err(Refusal::CertUnknown),
        };
        let account_id = match account_id {
            Ok(a) => a,
            Err(r) => return self.refuse_cert_login(tx, r, serial.as_deref(), meta).await,
        };
        let token = self
            .open_session(
                &mut tx,
                account_id,
                kind,
                replacing,
                meta,
                LoginMethod::Certificate {
                    serial: serial.as_deref().unwrap_or_default(),
                },
            )
            .await?;
        tx.commit().await?;
        tracing::info!(
            serial = serial.as_deref().unwrap_or("-"),
            "certificate login"
        );
        Ok(LoggedIn {
            token,
            account_id,
            new_account: false,
        })
    }

    /// Records that the key refused (wrong PIN, PIN locked) while answering
    /// `challenge`; uses the challenge up and returns the refusal to show.
    pub async fn report_key_failure(
        &self,
        challenge: &str,
        binding: &str,
        failure: Refusal,
        meta: &RequestMeta,
    ) -> Result<Refusal> {
        let failure = match failure {
            Refusal::KeyWrongPin { .. } | Refusal::KeyPinLocked => failure,
            _ => Refusal::CertChallengeInvalid,
        };
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        let refusal = match self
            .use_up_challenge(&mut tx, challenge, binding, now)
            .await?
        {
            Ok(()) => failure,
            Err(r) => r,
        };
        self.audit_cert_refusal(tx, &refusal, None, meta).await?;
        Ok(refusal)
    }

    /// Checks a challenge and marks it used: `Ok(Err(refusal))` when it
    /// cannot be answered.
    pub(crate) async fn use_up_challenge(
        &self,
        tx: &mut WriteTx,
        challenge: &str,
        binding: &str,
        now: Timestamp,
    ) -> Result<Result<(), Refusal>> {
        let state = challenges::state(tx, challenge).await?;
        if let Err(r) = check_challenge(state.as_ref(), binding, now) {
            return Ok(Err(r));
        }
        if !challenges::consume(tx, challenge, now).await? {
            return Ok(Err(Refusal::CertChallengeUsed));
        }
        Ok(Ok(()))
    }

    /// The facts about the presented certificate (`None` when it is not a
    /// certificate CertHall issued) and its serial; the signature must be
    /// over a message for `purpose` (`login`, `activate`).
    pub(crate) async fn certificate_facts(
        &self,
        input: &CertLogin<'_>,
        purpose: &str,
    ) -> Result<Option<(String, CertificateFacts)>> {
        let Ok(cert) = Certificate::from_der(input.certificate) else {
            return Ok(None);
        };
        let serial = hex::encode(cert.tbs_certificate.serial_number.as_bytes());
        let Some(row) = db::certificate(&self.store, &serial).await? else {
            return Ok(None);
        };
        let issuer = db::authority(&self.store, row.issuer_id)
            .await?
            .and_then(|a| Certificate::from_der(&a.der).ok());
        let issued_here = row.der == input.certificate
            && issuer.is_some_and(|issuer| certhall_ca::chain::signed_by(&cert, &issuer));
        let signature_valid = SignedMessage::parse(input.signed_data).is_some_and(|m| {
            m.purpose == purpose
                && m.challenge == input.challenge
                && input.accepted_origins.contains(&m.origin)
        }) && certhall_ca::csr::verify_signature(
            &cert.tbs_certificate.subject_public_key_info,
            input.signed_data,
            input.signature,
        )
        .is_ok();
        Ok(Some((
            serial,
            CertificateFacts {
                issued_here,
                signature_valid,
                signing: signs(&cert),
                revoked: row.revocation.is_some(),
                not_before: row.not_before,
                not_after: row.not_after,
                account: row.account_id,
            },
        )))
    }

    /// Audits a refused certificate login inside `tx`, commits (keeping a
    /// used-up challenge used), and returns the refusal.
    async fn refuse_cert_login<T>(
        &self,
        tx: WriteTx,
        refusal: Refusal,
        serial: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<T> {
        self.audit_cert_refusal(tx, &refusal, serial, meta).await?;
        Err(refusal.into())
    }

    /// Audits a refusal and commits. A challenge nobody issued (or issued
    /// to another browser) changed nothing and is only logged: anyone can
    /// post one, and each would otherwise cost an audit write.
    async fn audit_cert_refusal(
        &self,
        mut tx: WriteTx,
        refusal: &Refusal,
        serial: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<()> {
        if *refusal == Refusal::CertChallengeInvalid {
            tracing::info!(
                ip = meta.ip.as_deref().unwrap_or("-"),
                "certificate login: unknown challenge"
            );
            drop(tx); // nothing was written: rolled back
            return Ok(());
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Anonymous,
            meta,
            AuditEvent::LoginFailed,
            json!({ "method": "certificate", "serial": serial, "reason": refusal.code() }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// True if the certificate's key usage allows digital signatures (or it
/// has no key usage extension, which RFC 5280 reads as "any").
fn signs(cert: &Certificate) -> bool {
    match cert.tbs_certificate.get::<x509_cert::ext::pkix::KeyUsage>() {
        Ok(Some((_, usage))) => usage.digital_signature(),
        Ok(None) => true,
        Err(_) => false,
    }
}
