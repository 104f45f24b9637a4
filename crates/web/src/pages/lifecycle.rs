//! 证书更新 and PIN 解锁: the pages whose scripts (`static/renew.js`,
//! `static/unlock.js`) drive the key agent on the applicant's PC and call
//! the JSON routes of [`crate::api::lifecycle`]. The page knows the
//! account's certificates and keys; every decision is the service's.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use certhall_domain::lifecycle::subject_common_name;
use certhall_service::certificates::MyCertificate;

use super::{render, Chrome};
use crate::error::PageError;
use crate::extract::{Applicant, BrowserId};
use crate::AppState;

/// One of the account's certificates as the renewal page knows it.
#[derive(Debug)]
pub struct RenewalLine {
    serial: String,
    holder: String,
    expires: String,
    status: &'static str,
    /// Why it cannot be renewed now (empty when it can).
    advice: String,
}

impl RenewalLine {
    fn new(c: MyCertificate, advice: Option<String>) -> Self {
        Self {
            holder: subject_common_name(&c.certificate.subject),
            expires: c.certificate.not_after.display_cst(),
            status: c.status.label_zh(),
            advice: advice.unwrap_or_default(),
            serial: c.certificate.serial,
        }
    }
}

#[derive(Template)]
#[template(path = "renew.html")]
struct RenewPage {
    chrome: Chrome,
    agent_url: String,
    lines: Vec<RenewalLine>,
    /// The certificate the home page's 立即更新 chose.
    focus: Option<RenewalLine>,
    days_before: u64,
    days_after: u64,
}

/// `?serial=` of a certificate.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SerialQuery {
    #[serde(default)]
    serial: Option<String>,
}

/// `GET /certificates/renew`: 介质查询, choose the certificate, PIN, SMS
/// code, update. With `?serial=` (the home page's 立即更新) that
/// certificate is chosen and the page says at once whether it may be
/// renewed now.
pub async fn renew(
    State(s): State<AppState>,
    bid: BrowserId,
    who: Applicant,
    Query(q): Query<SerialQuery>,
) -> Result<Response, PageError> {
    let account = who.0.account_id;
    let mut lines = Vec::new();
    for c in s.services.my_certificates(account).await? {
        let advice = s.services.renewal_advice(&c);
        lines.push(RenewalLine::new(c, advice));
    }
    let focus = match q.serial.as_deref() {
        Some(serial) => {
            let (c, advice) = s.services.renewal_timing(account, serial).await?;
            Some(RenewalLine::new(c, advice))
        }
        None => None,
    };
    let window = s.services.renewal_window;
    Ok(render(&RenewPage {
        chrome: Chrome::new(&s, &bid, Some(&who.0), "certificates"),
        agent_url: s.config.agent_url.clone(),
        lines,
        focus,
        days_before: window.before_expiry.as_secs() / 86_400,
        days_after: window.after_expiry.as_secs() / 86_400,
    }))
}

#[derive(Template)]
#[template(path = "unlock.html")]
struct UnlockPage {
    chrome: Chrome,
    agent_url: String,
    /// The serials of the keys CertHall made for the account.
    tokens: Vec<String>,
}

/// `GET /ukeys/unlock`: PIN 解锁 of a locked UKey.
pub async fn unlock(
    State(s): State<AppState>,
    bid: BrowserId,
    who: Applicant,
) -> Result<Response, PageError> {
    let tokens = s
        .services
        .my_ukeys(who.0.account_id)
        .await?
        .into_iter()
        .map(|k| k.token_serial)
        .collect();
    Ok(render(&UnlockPage {
        chrome: Chrome::new(&s, &bid, Some(&who.0), "certificates"),
        agent_url: s.config.agent_url.clone(),
        tokens,
    }))
}
