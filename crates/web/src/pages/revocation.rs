//! 注销证书: the applicant revokes one of their certificates. One form
//! holds the reason, a note and the SMS code; its two buttons send the code
//! (the page comes back with everything typed kept) and confirm.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use certhall_domain::lifecycle::{
    subject_common_name, ApplicantRevocationReason, ReplacementReason,
};
use certhall_service::certificates::MyCertificate;
use certhall_service::revocation::{ReplacementInput, RevocationInput, MAX_COMMENT_CHARS};
use serde::Deserialize;

use super::{render_with_status, Chrome};
use crate::error::{PageError, WebError};
use crate::extract::{Applicant, BrowserId, ClientMeta, CsrfForm};
use crate::AppState;

/// One reason on the page.
#[derive(Debug)]
pub struct ReasonChoice {
    value: &'static str,
    label: &'static str,
    checked: bool,
}

#[derive(Template)]
#[template(path = "certificate_revoke.html")]
struct RevokePage {
    chrome: Chrome,
    c: MyCertificate,
    subject: String,
    reasons: Vec<ReasonChoice>,
    form: RevokeForm,
    max_comment: usize,
    error: Option<String>,
    notice: Option<String>,
}

/// The form, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct RevokeForm {
    /// `code` (send the SMS code) or `revoke`.
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

fn page(
    state: &AppState,
    bid: &BrowserId,
    who: &certhall_service::auth::SessionInfo,
    c: MyCertificate,
    form: RevokeForm,
    error: Option<WebError>,
    notice: Option<String>,
) -> Response {
    let status = error.as_ref().map_or(StatusCode::OK, WebError::status);
    let reasons = ApplicantRevocationReason::ALL
        .into_iter()
        .map(|r| ReasonChoice {
            value: r.as_str(),
            label: r.label_zh(),
            checked: form.reason == r.as_str(),
        })
        .collect();
    render_with_status(
        status,
        &RevokePage {
            chrome: Chrome::new(state, bid, Some(who), "certificates"),
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

/// `GET /certificates/{serial}/revoke`.
pub async fn show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path(serial): Path<String>,
) -> Result<Response, PageError> {
    let c = state
        .services
        .my_certificate(who.account_id, &serial)
        .await?;
    Ok(page(
        &state,
        &bid,
        &who,
        c,
        RevokeForm::default(),
        None,
        None,
    ))
}

/// `POST /certificates/{serial}/revoke`: `action=code` sends the SMS
/// code, `action=revoke` revokes.
pub async fn submit(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(serial): Path<String>,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> Result<Response, PageError> {
    let s = &state.services;
    // Another applicant's certificate: 404 before anything else.
    let c = s.my_certificate(who.account_id, &serial).await?;
    if form.action == "code" {
        return Ok(
            match s.send_revocation_code(who.account_id, &serial, &meta).await {
                Ok(sent) => {
                    let notice = format!(
                        "验证码已发送至 {}，{}分钟内有效。",
                        sent.phone.masked(),
                        sent.valid_minutes
                    );
                    page(&state, &bid, &who, c, form, None, Some(notice))
                }
                Err(e) => page(&state, &bid, &who, c, form, Some(e.into()), None),
            },
        );
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
            Ok(page(&state, &bid, &who, c, form, Some(e.into()), None))
        }
    }
}

#[derive(Template)]
#[template(path = "certificate_replace.html")]
struct ReplacePage {
    chrome: Chrome,
    c: MyCertificate,
    subject: String,
    reasons: Vec<ReasonChoice>,
    form: RevokeForm,
    error: Option<String>,
    notice: Option<String>,
}

fn replace_page(
    state: &AppState,
    bid: &BrowserId,
    who: &certhall_service::auth::SessionInfo,
    c: MyCertificate,
    form: RevokeForm,
    error: Option<WebError>,
    notice: Option<String>,
) -> Response {
    let status = error.as_ref().map_or(StatusCode::OK, WebError::status);
    let reasons = ReplacementReason::ALL
        .into_iter()
        .map(|r| ReasonChoice {
            value: r.as_str(),
            label: r.label_zh(),
            checked: form.reason == r.as_str(),
        })
        .collect();
    render_with_status(
        status,
        &ReplacePage {
            chrome: Chrome::new(state, bid, Some(who), "certificates"),
            subject: subject_common_name(&c.certificate.subject),
            c,
            reasons,
            form,
            error: error.map(|e| e.message_zh()),
            notice,
        },
    )
}

/// `GET /certificates/{serial}/replace` (补办).
pub async fn replace_show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path(serial): Path<String>,
) -> Result<Response, PageError> {
    let c = state
        .services
        .my_certificate(who.account_id, &serial)
        .await?;
    Ok(replace_page(
        &state,
        &bid,
        &who,
        c,
        RevokeForm::default(),
        None,
        None,
    ))
}

/// `POST /certificates/{serial}/replace`: `action=code` sends the SMS
/// code, `action=replace` revokes the old certificate and opens the order.
pub async fn replace_submit(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(serial): Path<String>,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> Result<Response, PageError> {
    let s = &state.services;
    let c = s.my_certificate(who.account_id, &serial).await?;
    if form.action == "code" {
        return Ok(
            match s
                .send_replacement_code(who.account_id, &serial, &meta)
                .await
            {
                Ok(sent) => {
                    let notice = format!(
                        "验证码已发送至 {}，{}分钟内有效。",
                        sent.phone.masked(),
                        sent.valid_minutes
                    );
                    replace_page(&state, &bid, &who, c, form, None, Some(notice))
                }
                Err(e) => replace_page(&state, &bid, &who, c, form, Some(e.into()), None),
            },
        );
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
            Ok(replace_page(
                &state,
                &bid,
                &who,
                c,
                form,
                Some(e.into()),
                None,
            ))
        }
    }
}
