//! 注销证书 and 证书补办: the applicant revokes one of their certificates,
//! or replaces a lost or broken key. One page serves both: one form holds
//! the reason (and for 注销 a note) and the SMS code; its two buttons send
//! the code (the page comes back with everything typed kept) and confirm.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use certhall_domain::lifecycle::{
    subject_common_name, ApplicantRevocationReason, ReplacementReason,
};
use certhall_service::auth::{CodeSent, SessionInfo};
use certhall_service::certificates::MyCertificate;
use certhall_service::revocation::{ReplacementInput, RevocationInput, MAX_COMMENT_CHARS};
use serde::Deserialize;

use super::{render_with_status, Chrome};
use crate::error::{PageError, WebError};
use crate::extract::{Applicant, BrowserId, ClientMeta, CsrfForm};
use crate::AppState;

/// Which of the two the page is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// 注销证书.
    Revoke,
    /// 证书补办.
    Replace,
}

/// One reason on the page.
#[derive(Debug)]
pub struct ReasonChoice {
    value: &'static str,
    label: &'static str,
    checked: bool,
}

#[derive(Template)]
#[template(path = "certificate_action.html")]
struct ActionPage {
    chrome: Chrome,
    title: &'static str,
    /// The last segment of the form's address (`revoke`, `replace`).
    verb: &'static str,
    replace: bool,
    c: MyCertificate,
    subject: String,
    reasons: Vec<ReasonChoice>,
    form: ActionForm,
    max_comment: usize,
    error: Option<String>,
    notice: Option<String>,
}

/// The form, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    /// `code` (send the SMS code), or `revoke` / `replace`.
    #[serde(default)]
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    understood: Option<String>,
}

/// The page's outcome to show: a refusal, or the notice of a code sent.
type Shown = (Option<WebError>, Option<String>);

fn page(
    state: &AppState,
    bid: &BrowserId,
    who: &SessionInfo,
    action: Action,
    c: MyCertificate,
    form: ActionForm,
    (error, notice): Shown,
) -> Response {
    let status = error.as_ref().map_or(StatusCode::OK, WebError::status);
    let choice = |value: &'static str, label: &'static str| ReasonChoice {
        value,
        label,
        checked: form.reason == value,
    };
    let (title, verb, reasons) = match action {
        Action::Revoke => (
            "注销证书",
            "revoke",
            ApplicantRevocationReason::ALL
                .into_iter()
                .map(|r| choice(r.as_str(), r.label_zh()))
                .collect(),
        ),
        Action::Replace => (
            "证书补办",
            "replace",
            ReplacementReason::ALL
                .into_iter()
                .map(|r| choice(r.as_str(), r.label_zh()))
                .collect(),
        ),
    };
    render_with_status(
        status,
        &ActionPage {
            chrome: Chrome::new(state, bid, Some(who), "certificates"),
            title,
            verb,
            replace: action == Action::Replace,
            subject: subject_common_name(&c.certificate.subject),
            c,
            reasons,
            form,
            max_comment: MAX_COMMENT_CHARS,
            error: error.map(|e| e.message_zh()),
            notice,
        },
    )
}

/// What the page shows after the code was asked for.
fn code_outcome(sent: certhall_service::Result<CodeSent>) -> Shown {
    match sent {
        Ok(sent) => (
            None,
            Some(format!(
                "验证码已发送至 {}，{}分钟内有效。",
                sent.phone.masked(),
                sent.valid_minutes
            )),
        ),
        Err(e) => (Some(e.into()), None),
    }
}

async fn show(
    state: &AppState,
    bid: &BrowserId,
    who: &SessionInfo,
    action: Action,
    serial: &str,
) -> Result<Response, PageError> {
    let c = state
        .services
        .my_certificate(who.account_id, serial)
        .await?;
    Ok(page(
        state,
        bid,
        who,
        action,
        c,
        ActionForm::default(),
        (None, None),
    ))
}

/// `GET /certificates/{serial}/revoke`.
pub async fn revoke_show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path(serial): Path<String>,
) -> Result<Response, PageError> {
    show(&state, &bid, &who, Action::Revoke, &serial).await
}

/// `GET /certificates/{serial}/replace` (补办).
pub async fn replace_show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path(serial): Path<String>,
) -> Result<Response, PageError> {
    show(&state, &bid, &who, Action::Replace, &serial).await
}

/// `POST /certificates/{serial}/revoke`: `action=code` sends the SMS
/// code, `action=revoke` revokes.
pub async fn revoke_submit(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(serial): Path<String>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Result<Response, PageError> {
    let s = &state.services;
    // Another applicant's certificate: 404 before anything else.
    let c = s.my_certificate(who.account_id, &serial).await?;
    if form.action == "code" {
        let shown = code_outcome(s.send_revocation_code(who.account_id, &serial, &meta).await);
        return Ok(page(&state, &bid, &who, Action::Revoke, c, form, shown));
    }
    let input = RevocationInput {
        reason: form.reason.clone(),
        comment: form.comment.clone(),
        code: form.code.clone(),
        understood: form.understood.is_some(),
    };
    match s
        .revoke_own_certificate(who.account_id, &serial, &input, &meta)
        .await
    {
        Ok(row) => Ok(
            Redirect::to(&format!("/certificates/{}?saved=revoked", row.serial)).into_response(),
        ),
        Err(e) => {
            // The certificate as it is now (a refusal changed nothing).
            let c = s.my_certificate(who.account_id, &serial).await.unwrap_or(c);
            let shown = (Some(e.into()), None);
            Ok(page(&state, &bid, &who, Action::Revoke, c, form, shown))
        }
    }
}

/// `POST /certificates/{serial}/replace`: `action=code` sends the SMS
/// code, `action=replace` revokes the old certificate and opens the order.
pub async fn replace_submit(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(serial): Path<String>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Result<Response, PageError> {
    let s = &state.services;
    let c = s.my_certificate(who.account_id, &serial).await?;
    if form.action == "code" {
        let shown = code_outcome(
            s.send_replacement_code(who.account_id, &serial, &meta)
                .await,
        );
        return Ok(page(&state, &bid, &who, Action::Replace, c, form, shown));
    }
    let input = ReplacementInput {
        reason: form.reason.clone(),
        code: form.code.clone(),
        understood: form.understood.is_some(),
    };
    match s
        .start_replacement(who.account_id, &serial, &input, &meta)
        .await
    {
        Ok(order) => Ok(Redirect::to(&format!("/orders/{}", order.id.0)).into_response()),
        Err(e) => {
            let c = s.my_certificate(who.account_id, &serial).await.unwrap_or(c);
            let shown = (Some(e.into()), None);
            Ok(page(&state, &bid, &who, Action::Replace, c, form, shown))
        }
    }
}
