//! 证书激活: where the applicant's certificates are activated, and how.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::{render, Chrome};
use crate::extract::{Applicant, BrowserId};
use crate::AppState;

/// One certificate on the 证书激活 page.
#[derive(Debug)]
pub struct ActivationLine {
    serial: String,
    holder: String,
    application: String,
    status: &'static str,
    status_key: &'static str,
    activations: String,
}

#[derive(Template)]
#[template(path = "activate.html")]
struct ActivatePage {
    chrome: Chrome,
    lines: Vec<ActivationLine>,
}

/// 证书激活: activation happens on the relying platform's own page (the
/// platform asks CertHall, docs/relying-platform.md); this page says how
/// and shows where each certificate is activated.
pub async fn activate(
    State(s): State<AppState>,
    bid: BrowserId,
    who: Applicant,
) -> Result<Response, crate::error::PageError> {
    let lines = s
        .services
        .my_certificates(who.0.account_id)
        .await?
        .into_iter()
        .map(|c| ActivationLine {
            holder: certhall_domain::lifecycle::subject_common_name(&c.certificate.subject),
            application: c.application.clone().unwrap_or_default(),
            status: c.status.label_zh(),
            status_key: c.status.key(),
            activations: c
                .activations
                .iter()
                .map(|(name, at)| format!("{name}（{}）", at.display_cst()))
                .collect::<Vec<_>>()
                .join("；"),
            serial: c.certificate.serial,
        })
        .collect();
    Ok(render(&ActivatePage {
        chrome: Chrome::new(&s, &bid, Some(&who.0), "home"),
        lines,
    }))
}
