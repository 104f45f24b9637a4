//! 证书注销 at the counter: search certificates, revoke one with a reason
//! and a note, or (administrators) every live certificate of an
//! enterprise. The refusals come back on the same page with what was
//! typed.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use certhall_domain::lifecycle::subject_common_name;
use certhall_service::counter::{CounterRevocation, OperatorInfo, COUNTER_REASONS};
use serde::Deserialize;

use crate::counter::{CounterChrome, Operator};
use crate::error::{PageError, WebError};
use crate::extract::{BrowserId, ClientMeta, CsrfForm};
use crate::pages::render_with_status;
use crate::AppState;

/// The page.
pub const COUNTER_CERTIFICATES: &str = "/counter/certificates";

/// One certificate found.
#[derive(Debug)]
pub struct Found {
    serial: String,
    holder: String,
    subject: String,
    not_after: String,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "counter_certificates.html")]
struct CertificatesPage {
    chrome: CounterChrome,
    q: String,
    found: Vec<Found>,
    reasons: Vec<(&'static str, &'static str)>,
    admin: bool,
    form: RevokeForm,
    error: Option<String>,
    notice: Option<String>,
}

/// `?q=` (search) and `?done=` (after a revocation).
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    done: Option<String>,
}

/// A revocation form, one certificate or an enterprise.
#[derive(Debug, Default, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    comment: String,
    /// The enterprise's USCC (bulk only).
    #[serde(default)]
    uscc: String,
    /// The search to return to.
    #[serde(default)]
    q: String,
}

async fn page(
    state: &AppState,
    bid: &BrowserId,
    who: &OperatorInfo,
    q: String,
    form: RevokeForm,
    error: Option<WebError>,
    notice: Option<String>,
) -> Result<Response, PageError> {
    let found = state
        .services
        .counter_find_certificates(&q)
        .await?
        .into_iter()
        .map(|c| Found {
            holder: subject_common_name(&c.subject),
            not_after: c.not_after.display_cst(),
            revoked: c.revocation.as_ref().map(|r| {
                format!(
                    "已注销（{}，{}）",
                    certhall_ca_reason_zh(r.reason_code),
                    r.revoked_at.display_cst()
                )
            }),
            subject: c.subject,
            serial: c.serial,
        })
        .collect();
    let status = error.as_ref().map_or(StatusCode::OK, WebError::status);
    Ok(render_with_status(
        status,
        &CertificatesPage {
            chrome: CounterChrome::new(state, bid, Some(who)),
            q,
            found,
            reasons: COUNTER_REASONS
                .iter()
                .map(|r| (r.as_str(), r.label_zh()))
                .collect(),
            admin: who.role == certhall_domain::operator::OperatorRole::Admin,
            form,
            error: error.map(|e| e.message_zh()),
            notice,
        },
    ))
}

fn certhall_ca_reason_zh(code: i64) -> &'static str {
    certhall_ca::crl::Reason::from_code(code)
        .map_or("未说明原因", certhall_ca::crl::Reason::label_zh)
}

fn back(q: &str, done: &str) -> Response {
    let query = serde_urlencoded::to_string([("q", q), ("done", done)]).unwrap_or_default();
    Redirect::to(&format!("{COUNTER_CERTIFICATES}?{query}")).into_response()
}

/// `GET /counter/certificates`.
pub async fn search(
    State(state): State<AppState>,
    bid: BrowserId,
    Operator(who): Operator,
    Query(q): Query<SearchQuery>,
) -> Result<Response, PageError> {
    let notice = q.done.as_deref().map(|d| {
        if d == "one" {
            "证书已注销，CRL 与 OCSP 已同步更新。".to_owned()
        } else {
            format!("已批量注销 {d} 张证书，CRL 与 OCSP 已同步更新。")
        }
    });
    page(&state, &bid, &who, q.q, RevokeForm::default(), None, notice).await
}

/// `POST /counter/certificates/{serial}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    bid: BrowserId,
    Operator(who): Operator,
    ClientMeta(meta): ClientMeta,
    Path(serial): Path<String>,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> Result<Response, PageError> {
    let input = CounterRevocation {
        reason: form.reason.clone(),
        comment: form.comment.clone(),
    };
    match state
        .services
        .counter_revoke(&who, &serial, &input, &meta)
        .await
    {
        Ok(_) => Ok(back(&form.q, "one")),
        Err(e) => {
            let q = form.q.clone();
            page(&state, &bid, &who, q, form, Some(e.into()), None).await
        }
    }
}

/// `POST /counter/certificates/bulk-revoke` (administrators).
pub async fn bulk_revoke(
    State(state): State<AppState>,
    bid: BrowserId,
    Operator(who): Operator,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> Result<Response, PageError> {
    let input = CounterRevocation {
        reason: form.reason.clone(),
        comment: form.comment.clone(),
    };
    match state
        .services
        .counter_revoke_enterprise(&who, &form.uscc, &input, &meta)
        .await
    {
        Ok(done) => Ok(back(&form.q, &done.len().to_string())),
        Err(e) => {
            let q = form.q.clone();
            page(&state, &bid, &who, q, form, Some(e.into()), None).await
        }
    }
}
