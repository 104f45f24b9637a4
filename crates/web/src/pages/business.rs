//! Workbench businesses not open yet: each button leads to a page that
//! says what is coming and what to do meanwhile.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::{render, Chrome};
use crate::extract::{Applicant, BrowserId};
use crate::AppState;

#[derive(Template)]
#[template(path = "coming_soon.html")]
struct ComingSoon {
    chrome: Chrome,
    title: &'static str,
    what: &'static str,
}

fn page(
    state: &AppState,
    bid: &BrowserId,
    who: &Applicant,
    nav: &'static str,
    title: &'static str,
    what: &'static str,
) -> Response {
    render(&ComingSoon {
        chrome: Chrome::new(state, bid, Some(&who.0), nav),
        title,
        what,
    })
}

/// 证书变更.
pub async fn change(State(s): State<AppState>, bid: BrowserId, who: Applicant) -> Response {
    page(
        &s,
        &bid,
        &who,
        "home",
        "证书变更",
        "单位更名等情况下，上传新的营业执照即可在线变更证书信息。",
    )
}

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
