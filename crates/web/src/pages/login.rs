//! 手机号+验证码登录 (manual 2.1) and logout.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use axum_extra::extract::cookie::CookieJar;
use certhall_domain::cert_login::browser_binding;
use certhall_domain::session::SessionKind;
use serde::Deserialize;
use serde_json::json;

use super::Empty;
use super::{render, render_with_status, Chrome};
use crate::cert_login::{accepted_origins, key_refusal, SignedAnswer};
use crate::error::{status_of, ApiError, PageError, WebError};
use crate::extract::{
    cookie, fresh_browser_id, presented_session, removal, urlencode, Applicant, BrowserId,
    ClientMeta, CsrfForm, MaybeApplicant, SESSION_COOKIE,
};
use crate::{paths, AppState};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    /// `sms` or `cert`: the tab shown first.
    tab: &'static str,
    agent_url: String,
    site_origin: String,
    cert_error: Option<String>,
    phone: String,
    next: String,
    notice: Option<String>,
    error: Option<String>,
    resend_after: u64,
    code_sent: bool,
}

/// Query of the login page.
#[derive(Debug, Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
    phone: Option<String>,
    sent: Option<u8>,
    expired: Option<u8>,
    bye: Option<u8>,
    method: Option<String>,
}

/// `GET /login`.
pub async fn show(
    State(state): State<AppState>,
    bid: BrowserId,
    MaybeApplicant(user): MaybeApplicant,
    Query(q): Query<LoginQuery>,
) -> Response {
    if user.is_some() {
        return Redirect::to(paths::safe_next(q.next.as_deref())).into_response();
    }
    let phone = q.phone.unwrap_or_default();
    let notice = if q.sent == Some(1) {
        let masked = certhall_domain::Phone::parse(&phone)
            .map(|p| p.masked())
            .unwrap_or_default();
        Some(format!("验证码已发送至 {masked}，5分钟内有效。"))
    } else if q.expired == Some(1) {
        Some("登录已超时，请重新登录。".to_owned())
    } else if q.bye == Some(1) {
        Some("您已安全退出。".to_owned())
    } else {
        None
    };
    render(&LoginPage {
        chrome: Chrome::new(&state, &bid, None, "login"),
        tab: if q.method.as_deref() == Some("cert") {
            "cert"
        } else {
            "sms"
        },
        agent_url: state.config.agent_url.clone(),
        site_origin: site_origin(&state),
        cert_error: None,
        phone,
        next: paths::safe_next(q.next.as_deref()).to_owned(),
        notice,
        error: None,
        resend_after: if q.sent == Some(1) {
            state.services.otp.resend_cooldown.as_secs()
        } else {
            0
        },
        code_sent: q.sent == Some(1),
    })
}

/// The login form's fields (both buttons post the same form).
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
}

async fn form_error(
    state: &AppState,
    bid: &BrowserId,
    form: &LoginForm,
    err: WebError,
    code_sent: bool,
) -> Response {
    let resend_after = match &err {
        WebError::Refused(certhall_domain::Refusal::ResendTooSoon { wait_secs }) => *wait_secs,
        _ if code_sent => state
            .services
            .resend_wait_secs(&form.phone)
            .await
            .unwrap_or(0),
        _ => 0,
    };
    let status = match &err {
        WebError::Refused(r) => status_of(r),
        other => other.status(),
    };
    render_with_status(
        status,
        &LoginPage {
            chrome: Chrome::new(state, bid, None, "login"),
            tab: "sms",
            agent_url: state.config.agent_url.clone(),
            site_origin: site_origin(state),
            cert_error: None,
            phone: form.phone.trim().to_owned(),
            next: paths::safe_next(Some(&form.next)).to_owned(),
            notice: None,
            error: Some(err.message_zh()),
            resend_after,
            code_sent,
        },
    )
}

/// `POST /login/code`: send a code, then back to the form (PRG).
pub async fn send_code(
    State(state): State<AppState>,
    bid: BrowserId,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Response {
    match state.services.send_login_code(&form.phone, &meta).await {
        Ok(sent) => Redirect::to(&format!(
            "{}?sent=1&phone={}&next={}",
            paths::LOGIN,
            sent.phone,
            urlencode(paths::safe_next(Some(&form.next)))
        ))
        .into_response(),
        Err(e) => form_error(&state, &bid, &form, e.into(), false).await,
    }
}

/// `POST /login`: check the code, start a session, go home.
pub async fn submit(
    State(state): State<AppState>,
    bid: BrowserId,
    headers: HeaderMap,
    jar: CookieJar,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Response {
    let old = presented_session(&headers);
    match state
        .services
        .verify_login_code(
            &form.phone,
            &form.code,
            SessionKind::Browser,
            old.as_ref(),
            &meta,
        )
        .await
    {
        Ok(done) => logged_in(&state, jar, &done, paths::safe_next(Some(&form.next))),
        Err(e) => form_error(&state, &bid, &form, e.into(), true).await,
    }
}

/// CertHall's public origin, for the agent's `--allow-origin`.
fn site_origin(state: &AppState) -> String {
    certhall_domain::cert_login::origin_of(&state.services.ca.settings.public_url)
        .unwrap_or_default()
}

/// `POST /login/cert/challenge` (form with the CSRF token) → JSON
/// `{"challenge","expires_at"}` bound to this browser.
pub async fn cert_challenge(
    State(state): State<AppState>,
    bid: BrowserId,
    ClientMeta(meta): ClientMeta,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, ApiError> {
    let issued = state
        .services
        .issue_login_challenge(&browser_binding(&bid.0), &meta)
        .await?;
    Ok(Json(json!({
        "challenge": issued.challenge,
        "expires_at": issued.expires_at.rfc3339(),
    }))
    .into_response())
}

/// The fields the certificate-login script posts (the agent's answer).
#[derive(Debug, Deserialize)]
pub struct CertLoginForm {
    #[serde(flatten)]
    answer: SignedAnswer,
    #[serde(default)]
    next: String,
}

/// `POST /login/cert`: verify the signed challenge, start a session, go
/// home; on refusal, the login page with the certificate tab and the reason.
pub async fn cert_submit(
    State(state): State<AppState>,
    bid: BrowserId,
    headers: HeaderMap,
    jar: CookieJar,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<CertLoginForm>,
) -> Response {
    let presented = form.answer.presented();
    let origins = accepted_origins(&state);
    let binding = browser_binding(&bid.0);
    let old = presented_session(&headers);
    let next = paths::safe_next(Some(&form.next)).to_owned();
    match state
        .services
        .login_with_certificate(
            presented.input(&form.answer.challenge, &binding, origins),
            SessionKind::Browser,
            old.as_ref(),
            &meta,
        )
        .await
    {
        Ok(done) => logged_in(&state, jar, &done, &next),
        Err(e) => {
            let err = WebError::from(e);
            let status = match &err {
                WebError::Refused(r) => status_of(r),
                other => other.status(),
            };
            render_with_status(
                status,
                &LoginPage {
                    chrome: Chrome::new(&state, &bid, None, "login"),
                    tab: "cert",
                    agent_url: state.config.agent_url.clone(),
                    site_origin: site_origin(&state),
                    cert_error: Some(err.message_zh()),
                    phone: String::new(),
                    next,
                    notice: None,
                    error: None,
                    resend_after: 0,
                    code_sent: false,
                },
            )
        }
    }
}

/// The agent's refusal, as the script reports it.
#[derive(Debug, Deserialize)]
pub struct KeyFailureForm {
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    retries_left: Option<u32>,
}

/// `POST /login/cert/failure` → JSON error with the message to show.
pub async fn cert_failure(
    State(state): State<AppState>,
    bid: BrowserId,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<KeyFailureForm>,
) -> Result<Response, ApiError> {
    let refusal = state
        .services
        .report_key_failure(
            &form.challenge,
            &browser_binding(&bid.0),
            key_refusal(&form.code, form.retries_left),
            &meta,
        )
        .await?;
    crate::cert_login::key_failure_recorded(refusal)
}

/// The answer to a successful login: the session cookie and a new browser
/// id (nothing from before login — a planted cookie, an old CSRF token —
/// survives it), then on to `next`.
fn logged_in(
    state: &AppState,
    jar: CookieJar,
    done: &certhall_service::auth::LoggedIn,
    next: &str,
) -> Response {
    let (_, bid_cookie) = fresh_browser_id(state);
    let jar = jar
        .add(cookie(
            state,
            SESSION_COOKIE,
            done.token.as_str().to_owned(),
        ))
        .add(bid_cookie);
    (jar, Redirect::to(next)).into_response()
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<AppState>,
    Applicant(who): Applicant,
    jar: CookieJar,
    ClientMeta(meta): ClientMeta,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, PageError> {
    state.services.logout(&who, &meta).await?;
    let (_, bid_cookie) = fresh_browser_id(&state);
    let jar = jar.add(removal(&state, SESSION_COOKIE)).add(bid_cookie);
    Ok((jar, Redirect::to(&format!("{}?bye=1", paths::LOGIN))).into_response())
}
