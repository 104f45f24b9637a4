//! 我的证书: an applicant's certificates, their keys and downloads.

use std::time::Duration;

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::lifecycle;
use certhall_domain::{AccountId, OrderId, Refusal, Timestamp};
use certhall_store::ca::{self as cadb, CertificateRow};
use certhall_store::production::{self as pdb, UkeyRow};
use serde_json::json;

use crate::ca::normalize_serial;
use crate::{RequestMeta, Result, ServiceError, Services};

/// Certificates this close to their end are 即将到期.
pub const EXPIRING_SOON: Duration = Duration::from_secs(30 * 24 * 3600);

/// A certificate's status as 我的证书 shows it: the domain's status
/// (`certhall_domain::lifecycle`, which decides) with 即将到期 picked out
/// of the valid ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateStatus {
    /// 有效.
    Valid,
    /// 已激活: valid and activated for at least one relying platform.
    Activated,
    /// 即将到期 (within [`EXPIRING_SOON`]).
    ExpiringSoon,
    /// 已过期.
    Expired,
    /// 已注销.
    Revoked,
    /// 已更新: replaced by a renewed or changed certificate.
    Superseded,
}

/// What the lifecycle rules need of a certificate's record (activation
/// for relying platforms is given apart: it lives in its own table).
pub(crate) fn lifecycle_facts(c: &CertificateRow) -> lifecycle::CertificateFacts {
    facts_with(c, false, false)
}

/// `replaced`: a successor of it reached the account (a renewal or a
/// change completed), so its revocation, whatever the reason
/// (`affiliationChanged` after a change of name), means it was replaced.
fn facts_with(c: &CertificateRow, activated: bool, replaced: bool) -> lifecycle::CertificateFacts {
    lifecycle::CertificateFacts {
        not_before: c.not_before,
        not_after: c.not_after,
        revocation: c.revocation.as_ref().map(|r| lifecycle::Revocation {
            at: r.revoked_at,
            superseded: replaced
                || r.reason_code == i64::from(certhall_ca::crl::Reason::Superseded.code()),
        }),
        activated,
    }
}

impl CertificateStatus {
    /// Of a certificate at `now`, `activated` for some relying platform.
    pub fn of(c: &CertificateRow, now: Timestamp, activated: bool) -> Self {
        Self::of_replaced(c, now, activated, false)
    }

    /// [`Self::of`], knowing whether a successor of the certificate
    /// reached its account (then a revoked one is 已更新, not 已注销).
    pub fn of_replaced(
        c: &CertificateRow,
        now: Timestamp,
        activated: bool,
        replaced: bool,
    ) -> Self {
        use lifecycle::CertificateStatus as S;
        match S::at(&facts_with(c, activated, replaced), now) {
            S::Superseded => Self::Superseded,
            S::Revoked => Self::Revoked,
            S::Expired => Self::Expired,
            _ if c.not_after <= now.plus(EXPIRING_SOON) => Self::ExpiringSoon,
            S::Activated => Self::Activated,
            S::NotYetValid | S::Issued => Self::Valid,
        }
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Valid => "有效",
            Self::Activated => "已激活",
            Self::ExpiringSoon => "即将到期",
            Self::Expired => "已过期",
            Self::Revoked => "已注销",
            Self::Superseded => "已更新",
        }
    }

    /// Whether 补办 may be asked for: a certificate that was in use, not
    /// one already replaced by a renewal or change, nor one past its end
    /// (a new application then).
    pub fn replaceable(self) -> bool {
        !matches!(self, Self::Superseded | Self::Expired)
    }

    /// A stable key (CSS class, API).
    pub fn key(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Activated => "activated",
            Self::ExpiringSoon => "expiring",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Superseded => "superseded",
        }
    }
}

/// One certificate on 我的证书.
#[derive(Debug, Clone)]
pub struct MyCertificate {
    /// The certificate.
    pub certificate: CertificateRow,
    /// Its status now.
    pub status: CertificateStatus,
    /// The key it lives on, when CertHall produced one.
    pub ukey: Option<UkeyRow>,
    /// The application it was issued for (from its order).
    pub application: Option<String>,
    /// The relying platforms it is activated for, and when.
    pub activations: Vec<(String, Timestamp)>,
}

impl MyCertificate {
    /// The revocation reason in Chinese, if revoked.
    pub fn revocation_reason_zh(&self) -> Option<&'static str> {
        self.certificate.revocation.as_ref().map(|r| {
            certhall_ca::crl::Reason::from_code(r.reason_code)
                .map_or("未说明原因", certhall_ca::crl::Reason::label_zh)
        })
    }
}

/// The formats a certificate downloads in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadFormat {
    /// The certificate, PEM.
    Pem,
    /// The certificate, DER.
    Der,
    /// The chain (issuing CA, root), PEM.
    ChainPem,
}

impl DownloadFormat {
    /// From the URL's name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pem" => Some(Self::Pem),
            "der" => Some(Self::Der),
            "chain" => Some(Self::ChainPem),
            _ => None,
        }
    }
}

impl Services {
    /// 我的证书: the account's certificates, newest first (those that
    /// reached it: [`Self::owned_certificates`]).
    pub async fn my_certificates(&self, account: AccountId) -> Result<Vec<MyCertificate>> {
        let now = self.clock.now();
        let activated =
            certhall_store::relying::activations_of_account(&self.store, account).await?;
        let owned = self.owned_certificates(account).await?;
        // Certificates a renewal or a change replaced with one of these.
        let replaced: std::collections::HashSet<String> = owned
            .iter()
            .filter_map(|(c, _)| c.predecessor_serial.clone())
            .collect();
        let mut out = Vec::new();
        for (c, ukey) in owned {
            let application = match c.order_id {
                Some(id) => certhall_store::orders::get(&self.store, OrderId(id))
                    .await?
                    .and_then(|o| o.application_name),
                None => None,
            };
            let activations: Vec<(String, Timestamp)> = activated
                .iter()
                .filter(|(serial, _, _)| *serial == c.serial)
                .map(|(_, name, at)| (name.clone(), *at))
                .collect();
            out.push(MyCertificate {
                status: CertificateStatus::of_replaced(
                    &c,
                    now,
                    !activations.is_empty(),
                    replaced.contains(&c.serial),
                ),
                activations,
                certificate: c,
                ukey,
                application,
            });
        }
        Ok(out)
    }

    /// The account's certificates that reached it, newest first, each with
    /// its key: one issued for an order counts once it is on the order's
    /// key (one being written, or of an attempt that failed, never reached
    /// the applicant). Two queries.
    pub(crate) async fn owned_certificates(
        &self,
        account: AccountId,
    ) -> Result<Vec<(CertificateRow, Option<UkeyRow>)>> {
        let ukeys = pdb::ukeys_of_account(&self.store, account).await?;
        // A renewal wrote its certificate onto a key: both the old and the
        // new one lived on that key.
        let renewed = certhall_store::renewals::completed_of_account(&self.store, account).await?;
        Ok(cadb::certificates_of_account(&self.store, account)
            .await?
            .into_iter()
            .filter_map(|c| {
                let token = renewed
                    .iter()
                    .find(|(old, new, _)| *old == c.serial || *new == c.serial)
                    .map(|(_, _, token)| token);
                let ukey = ukeys
                    .iter()
                    .find(|k| k.certificate_serial == c.serial || token == Some(&k.token_serial))
                    .cloned();
                (ukey.is_some() || c.order_id.is_none()).then_some((c, ukey))
            })
            .collect())
    }

    /// One of the account's certificates (another account's is 404).
    pub async fn my_certificate(&self, account: AccountId, serial: &str) -> Result<MyCertificate> {
        self.my_certificates(account)
            .await?
            .into_iter()
            .find(|c| c.certificate.serial == normalize_serial(serial))
            .ok_or_else(|| Refusal::CertificateNotFound.into())
    }

    /// One of the account's certificates and, when renewal cannot start
    /// now, why and what to do (the renewal window's rule, in Chinese).
    pub async fn renewal_timing(
        &self,
        account: AccountId,
        serial: &str,
    ) -> Result<(MyCertificate, Option<String>)> {
        let mine = self.my_certificate(account, serial).await?;
        let timing = self.renewal_advice(&mine);
        Ok((mine, timing))
    }

    /// When one of the account's certificates cannot be renewed now, why
    /// and what to do (the renewal window's rule, in Chinese).
    pub fn renewal_advice(&self, mine: &MyCertificate) -> Option<String> {
        self.renewal_window
            .check(&lifecycle_facts(&mine.certificate), self.clock.now())
            .message_zh(mine.certificate.not_after)
    }

    /// A certificate's download: (file name, content type, bytes).
    pub async fn download_certificate(
        &self,
        account: AccountId,
        serial: &str,
        format: DownloadFormat,
        meta: &RequestMeta,
    ) -> Result<(String, &'static str, Vec<u8>)> {
        let mine = self.my_certificate(account, serial).await?;
        let c = &mine.certificate;
        let pem = |der: &[u8]| certhall_ca::issue::to_pem(der).map_err(ServiceError::Ca);
        let out = match format {
            DownloadFormat::Pem => (
                format!("{}.pem", c.serial),
                "application/x-pem-file",
                pem(&c.der)?.into_bytes(),
            ),
            DownloadFormat::Der => (
                format!("{}.cer", c.serial),
                "application/pkix-cert",
                c.der.clone(),
            ),
            DownloadFormat::ChainPem => {
                let issuer = cadb::authority(&self.store, c.issuer_id)
                    .await?
                    .ok_or(Refusal::CertificateNotFound)?;
                let mut text = pem(&issuer.der)?;
                if let Some(root) = issuer.issuer_id {
                    if let Some(root) = cadb::authority(&self.store, root).await? {
                        text.push_str(&pem(&root.der)?);
                    }
                }
                (
                    format!("{}-chain.pem", c.serial),
                    "application/x-pem-file",
                    text.into_bytes(),
                )
            }
        };
        self.audit_alone(certhall_domain::audit::NewAuditEntry::new(
            Actor::Account(account),
            meta.ip.clone(),
            AuditEvent::CertificateDownloaded,
            json!({ "serial": c.serial, "format": format!("{format:?}") }),
        ))
        .await?;
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use certhall_ca::crl::Reason;
    use certhall_store::ca::RevocationRow;

    const DAY: Duration = Duration::from_secs(86_400);
    const NOW: Timestamp = Timestamp::from_millis(1_798_732_800_000);

    fn row(days_left: i64, revoked: Option<Reason>) -> CertificateRow {
        let not_after = Timestamp::from_millis(NOW.millis() + days_left * 86_400_000);
        CertificateRow {
            serial: "01".into(),
            issuer_id: 1,
            profile: "enterprise".into(),
            subject: "CN=x".into(),
            key_algorithm: "sm2".into(),
            not_before: NOW.minus(DAY * 300),
            not_after,
            sha256: String::new(),
            der: Vec::new(),
            account_id: None,
            order_id: None,
            predecessor_serial: None,
            issued_at: NOW.minus(DAY * 300),
            revocation: revoked.map(|r| RevocationRow {
                reason: r.as_str().into(),
                reason_code: i64::from(r.code()),
                revoked_at: NOW.minus(DAY),
                actor: "system".into(),
                comment: None,
            }),
        }
    }

    #[test]
    fn my_certificates_status_follows_the_lifecycle_rules() {
        let of = |r: CertificateRow| CertificateStatus::of(&r, NOW, false);
        assert_eq!(of(row(200, None)), CertificateStatus::Valid);
        assert_eq!(
            CertificateStatus::of(&row(200, None), NOW, true),
            CertificateStatus::Activated
        );
        assert_eq!(
            CertificateStatus::of(&row(20, None), NOW, true),
            CertificateStatus::ExpiringSoon,
            "expiring outranks activated"
        );
        assert_eq!(of(row(20, None)), CertificateStatus::ExpiringSoon);
        assert_eq!(of(row(0, None)), CertificateStatus::Expired);
        assert_eq!(
            of(row(200, Some(Reason::KeyCompromise))),
            CertificateStatus::Revoked
        );
        assert_eq!(
            of(row(-10, Some(Reason::CessationOfOperation))),
            CertificateStatus::Revoked,
            "revoked outranks expired"
        );
        let replaced = of(row(20, Some(Reason::Superseded)));
        assert_eq!(replaced, CertificateStatus::Superseded);
        assert_eq!(replaced.label_zh(), "已更新");
        assert_eq!(replaced.key(), "superseded");
    }
}
