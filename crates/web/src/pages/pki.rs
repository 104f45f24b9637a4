//! 证书体系公示 (`/ca`): every hierarchy with subject, validity, SHA-256
//! fingerprints and download links, public (no login).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use certhall_service::ca::role;

use super::{render, Chrome};
use crate::error::PageError;
use crate::extract::{BrowserId, MaybeApplicant};
use crate::AppState;

/// One CA certificate as the page shows it.
#[derive(Debug)]
pub struct CaEntry {
    /// 根CA / 签发CA / OCSP响应器.
    pub role_label: &'static str,
    /// Subject text.
    pub subject: String,
    /// Validity, CST.
    pub not_before: String,
    /// Validity, CST.
    pub not_after: String,
    /// SHA-256 fingerprint.
    pub sha256: String,
    /// Download URL.
    pub href: String,
    /// CRL URL (roots and issuing CAs).
    pub crl: Option<String>,
}

/// One family.
#[derive(Debug)]
pub struct Hierarchy {
    /// e.g. `SM2 国密`.
    pub label: &'static str,
    /// e.g. `sm2`.
    pub family: String,
    /// Its certificates.
    pub entries: Vec<CaEntry>,
}

#[derive(Template)]
#[template(path = "ca.html")]
struct CaPage {
    chrome: Chrome,
    hierarchies: Vec<Hierarchy>,
    ocsp_url: String,
}

/// `GET /ca`.
pub async fn show(
    State(state): State<AppState>,
    bid: BrowserId,
    MaybeApplicant(user): MaybeApplicant,
) -> Result<Response, PageError> {
    let rows = state.services.ca_authorities().await?;
    let mut hierarchies: Vec<Hierarchy> = Vec::new();
    for family in certhall_ca::Family::ALL {
        let entries: Vec<CaEntry> = rows
            .iter()
            .filter(|r| r.family == family.as_str() && r.retired_at.is_none())
            .map(|r| CaEntry {
                role_label: match r.role.as_str() {
                    role::ROOT => "根CA",
                    role::ISSUING => "签发CA",
                    _ => "OCSP响应器",
                },
                subject: r.subject.clone(),
                not_before: r.not_before.display_cst(),
                not_after: r.not_after.display_cst(),
                sha256: r.sha256.clone(),
                href: format!("/ca/{}-{}.der", r.family, r.role),
                crl: (r.role != role::OCSP).then(|| format!("/crl/{}-{}.crl", r.family, r.role)),
            })
            .collect();
        if !entries.is_empty() {
            hierarchies.push(Hierarchy {
                label: family.label_zh(),
                family: family.as_str().to_owned(),
                entries,
            });
        }
    }
    Ok(render(&CaPage {
        chrome: Chrome::new(&state, &bid, user.as_ref(), "ca"),
        hierarchies,
        ocsp_url: format!("{}/ocsp", state.services.ca.settings.public_url),
    }))
}
