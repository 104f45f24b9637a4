//! 我的证书: the applicant's certificates, each with its key and order,
//! and their downloads (PEM, DER, chain). Also as JSON under `/api/v1`.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use certhall_domain::checkout::KeyColour;
use certhall_domain::lifecycle::subject_common_name;
use certhall_domain::Refusal;
use certhall_service::certificates::{DownloadFormat, MyCertificate};
use certhall_service::reminders::ReminderView;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{render, Chrome};
use crate::error::{ApiError, PageError};
use crate::extract::{ApiCaller, Applicant, BrowserId, ClientMeta, CsrfForm};
use crate::AppState;

/// One certificate as the pages show it.
#[derive(Debug)]
pub struct CertLine {
    c: MyCertificate,
    subject_cn: String,
    key: String,
}

fn line(c: MyCertificate) -> CertLine {
    let subject_cn = subject_common_name(&c.certificate.subject);
    let key = c.ukey.as_ref().map_or_else(String::new, |k| {
        format!(
            "{}（{}）· 序列号 {}",
            k.key_model_name,
            KeyColour::parse(&k.colour).map_or("", |c| c.label_zh()),
            k.token_serial
        )
    });
    CertLine { c, subject_cn, key }
}

#[derive(Template)]
#[template(path = "certificates.html")]
struct ListPage {
    chrome: Chrome,
    certs: Vec<CertLine>,
}

/// `GET /certificates`.
pub async fn list(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
) -> Result<Response, PageError> {
    let certs = state
        .services
        .my_certificates(who.account_id)
        .await?
        .into_iter()
        .map(line)
        .collect();
    Ok(render(&ListPage {
        chrome: Chrome::new(&state, &bid, Some(&who), "certificates"),
        certs,
    }))
}

#[derive(Template)]
#[template(path = "certificate.html")]
struct DetailPage {
    chrome: Chrome,
    l: CertLine,
    reminders: Vec<ReminderView>,
    reminder_sms: bool,
    notice: Option<&'static str>,
}

/// `?saved=…` after a change on the page.
#[derive(Debug, Deserialize, Default)]
pub struct DetailQuery {
    #[serde(default)]
    saved: Option<String>,
}

/// `GET /certificates/{serial}`.
pub async fn show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path(serial): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Result<Response, PageError> {
    let c = state
        .services
        .my_certificate(who.account_id, &serial)
        .await?;
    let (reminders, reminder_sms) = state
        .services
        .certificate_reminders(who.account_id, &serial)
        .await?;
    let notice = match q.saved.as_deref() {
        Some("sms-on") => Some("已开启短信到期提醒。"),
        Some("sms-off") => Some("已关闭短信到期提醒，到期提醒仍会发送到站内消息。"),
        Some("revoked") => Some("证书已注销，已立即失效。"),
        _ => None,
    };
    Ok(render(&DetailPage {
        chrome: Chrome::new(&state, &bid, Some(&who), "certificates"),
        l: line(c),
        reminders,
        reminder_sms,
        notice,
    }))
}

/// The SMS reminder switch.
#[derive(Debug, Deserialize)]
pub struct ReminderForm {
    /// `on` or `off`.
    sms: String,
}

/// `POST /certificates/{serial}/reminders`: SMS expiry reminders on or
/// off for this certificate.
pub async fn set_reminders(
    State(state): State<AppState>,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(serial): Path<String>,
    CsrfForm(form): CsrfForm<ReminderForm>,
) -> Result<Response, PageError> {
    let enabled = match form.sms.as_str() {
        "on" => true,
        "off" => false,
        _ => return Err(Refusal::InvalidField("请选择开启或关闭短信提醒".into()).into()),
    };
    state
        .services
        .set_reminder_sms(who.account_id, &serial, enabled, &meta)
        .await?;
    let saved = if enabled { "sms-on" } else { "sms-off" };
    let serial = certhall_service::ca::normalize_serial(&serial);
    Ok(Redirect::to(&format!("/certificates/{serial}?saved={saved}")).into_response())
}

async fn download_response(
    state: &AppState,
    account: certhall_domain::AccountId,
    serial: &str,
    format: &str,
    meta: &certhall_service::RequestMeta,
) -> Result<Response, certhall_service::ServiceError> {
    let format = DownloadFormat::parse(format).ok_or(Refusal::NotFound)?;
    let (name, content_type, bytes) = state
        .services
        .download_certificate(account, serial, format, meta)
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /certificates/{serial}/download/{format}` (`pem`, `der`, `chain`).
pub async fn download(
    State(state): State<AppState>,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path((serial, format)): Path<(String, String)>,
) -> Result<Response, PageError> {
    Ok(download_response(&state, who.account_id, &serial, &format, &meta).await?)
}

fn cert_json(c: &MyCertificate) -> Value {
    json!({
        "serial": c.certificate.serial,
        "subject": c.certificate.subject,
        "key_algorithm": c.certificate.key_algorithm,
        "not_before": c.certificate.not_before.rfc3339(),
        "not_after": c.certificate.not_after.rfc3339(),
        "status": c.status.key(),
        "status_label": c.status.label_zh(),
        "order": c.certificate.order_id,
        "application": c.application,
        "sha256": c.certificate.sha256,
        "ukey": c.ukey.as_ref().map(|k| json!({
            "token_serial": k.token_serial, "model": k.key_model_name, "colour": k.colour,
        })),
        "revocation": c.certificate.revocation.as_ref().map(|r| json!({
            "reason": r.reason, "revoked_at": r.revoked_at.rfc3339(),
        })),
    })
}

/// `GET /api/v1/certificates`.
pub async fn api_list(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
) -> Result<Json<Value>, ApiError> {
    let certs = state.services.my_certificates(who.account_id).await?;
    Ok(Json(
        json!({ "certificates": certs.iter().map(cert_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/v1/certificates/{serial}`.
pub async fn api_show(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    Path(serial): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = state
        .services
        .my_certificate(who.account_id, &serial)
        .await?;
    Ok(Json(cert_json(&c)))
}

/// `GET /api/v1/certificates/{serial}/download/{format}`.
pub async fn api_download(
    State(state): State<AppState>,
    ApiCaller(who): ApiCaller,
    ClientMeta(meta): ClientMeta,
    Path((serial, format)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(download_response(&state, who.account_id, &serial, &format, &meta).await?)
}
