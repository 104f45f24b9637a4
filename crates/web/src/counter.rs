//! 柜台端 (the counter console) under `/counter`: operator login (password,
//! then SMS code), the review queue, an order's detail, approve / return.
//!
//! The operator's session rides in its own cookie, `ch_counter`, scoped to
//! `/counter` and `SameSite=Strict`; an applicant's `ch_session` means
//! nothing here and the operator's cookie is never sent to applicant pages.
//! [`Operator`] is the extractor that says a handler is for operators.

use askama::Template;
use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use certhall_domain::operator::{reject_reason, COMMON_REJECT_REASONS};
use certhall_domain::order::{OrderState, Step};
use certhall_domain::session::SessionToken;
use certhall_domain::{OrderId, Refusal};
use certhall_service::counter::{
    OperatorInfo, QueueFilter, ReviewDecision, ReviewDetail, ReviewQueue, QUEUE_STATES,
};
use certhall_service::ServiceError;
use serde::Deserialize;

use crate::error::{status_of, PageError, WebError};
use crate::extract::{BrowserId, ClientMeta, CsrfForm};
use crate::pages::{render, render_with_status};
use crate::{assets, AppState};

/// Cookie carrying the operator's session (or half-done login) token.
pub const COUNTER_COOKIE: &str = "ch_counter";
/// The queue.
pub const COUNTER: &str = "/counter";
/// Login (password step).
pub const COUNTER_LOGIN: &str = "/counter/login";
/// Login (code step).
pub const COUNTER_LOGIN_CODE: &str = "/counter/login/code";
/// Logout.
pub const COUNTER_LOGOUT: &str = "/counter/logout";

/// The counter's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(COUNTER, get(queue))
        .route(COUNTER_LOGIN, get(show_login).post(submit_password))
        .route(COUNTER_LOGIN_CODE, post(submit_code))
        .route(COUNTER_LOGOUT, post(logout))
        .route("/counter/orders/{id}", get(detail))
        .route("/counter/orders/{id}/materials/{kind}", get(material))
        .route("/counter/orders/{id}/approve", post(approve))
        .route("/counter/orders/{id}/reject", post(reject))
        .route("/counter/orders/{id}/cancel", post(cancel))
        .route(
            crate::counter_certificates::COUNTER_CERTIFICATES,
            get(crate::counter_certificates::search),
        )
        .route(
            "/counter/certificates/{serial}/revoke",
            post(crate::counter_certificates::revoke),
        )
        .route(
            "/counter/certificates/bulk-revoke",
            post(crate::counter_certificates::bulk_revoke),
        )
}

fn counter_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build((COUNTER_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path(COUNTER)
        .secure(state.config.secure_cookies)
        .build()
}

fn counter_cookie_removal(state: &AppState) -> Cookie<'static> {
    let mut c = counter_cookie(state, String::new());
    c.make_removal();
    c
}

fn presented(parts_headers: &axum::http::HeaderMap) -> Option<SessionToken> {
    CookieJar::from_headers(parts_headers)
        .get(COUNTER_COOKIE)
        .and_then(|c| SessionToken::from_client(c.value()))
}

/// A logged-in counter operator; otherwise a redirect to the counter login.
#[derive(Debug, Clone)]
pub struct Operator(pub OperatorInfo);

/// Where a visitor without an operator session goes.
#[derive(Debug)]
pub struct CounterLoginRedirect(Response);

impl IntoResponse for CounterLoginRedirect {
    fn into_response(self) -> Response {
        self.0
    }
}

impl<S> FromRequestParts<S> for Operator
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = CounterLoginRedirect;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let to_login = |q: &str| {
            CounterLoginRedirect(Redirect::to(&format!("{COUNTER_LOGIN}{q}")).into_response())
        };
        let Some(token) = presented(&parts.headers) else {
            return Err(to_login(""));
        };
        match state.services.authenticate_operator(&token).await {
            Ok(info) => Ok(Self(info)),
            Err(ServiceError::Refused(Refusal::SessionExpired)) => Err(to_login("?expired=1")),
            Err(ServiceError::Refused(_)) => Err(to_login("")),
            Err(e) => Err(CounterLoginRedirect(PageError::from(e).into_response())),
        }
    }
}

/// The counter pages' frame.
#[derive(Debug, Clone)]
pub struct CounterChrome {
    /// Demo banner.
    pub demo: bool,
    /// CSRF token for forms.
    pub csrf: String,
    /// `username（角色）` when logged in.
    pub operator: Option<String>,
    /// Asset version for cache busting.
    pub asset_version: &'static str,
}

impl CounterChrome {
    pub(crate) fn new(state: &AppState, bid: &BrowserId, who: Option<&OperatorInfo>) -> Self {
        Self {
            demo: state.services.demo_mode(),
            csrf: bid.csrf(state),
            operator: who.map(|o| format!("{}（{}）", o.username, o.role.label_zh())),
            asset_version: assets::VERSION,
        }
    }
}

#[derive(Template)]
#[template(path = "counter_login.html")]
struct LoginPage {
    chrome: CounterChrome,
    code_step: bool,
    username: String,
    notice: Option<String>,
    error: Option<String>,
}

/// Query of the login page.
#[derive(Debug, Deserialize, Default)]
pub struct LoginQuery {
    expired: Option<u8>,
    bye: Option<u8>,
}

/// `GET /counter/login`.
pub async fn show_login(
    State(state): State<AppState>,
    bid: BrowserId,
    Query(q): Query<LoginQuery>,
) -> Response {
    let notice = if q.expired == Some(1) {
        Some("登录已超时，请重新登录。".to_owned())
    } else if q.bye == Some(1) {
        Some("您已安全退出。".to_owned())
    } else {
        None
    };
    render(&LoginPage {
        chrome: CounterChrome::new(&state, &bid, None),
        code_step: false,
        username: String::new(),
        notice,
        error: None,
    })
}

/// The password step's form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

fn refused_login(
    state: &AppState,
    bid: &BrowserId,
    e: ServiceError,
    code_step: bool,
    username: String,
) -> Result<Response, PageError> {
    let web = WebError::from(e);
    let WebError::Refused(r) = &web else {
        return Err(PageError(web));
    };
    Ok(render_with_status(
        status_of(r),
        &LoginPage {
            chrome: CounterChrome::new(state, bid, None),
            code_step,
            username,
            notice: None,
            error: Some(r.message_zh()),
        },
    ))
}

/// `POST /counter/login`: username + password; on success the code goes out.
pub async fn submit_password(
    State(state): State<AppState>,
    bid: BrowserId,
    jar: CookieJar,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response, PageError> {
    match state
        .services
        .counter_password(&form.username, &form.password, &meta)
        .await
    {
        Ok(sent) => {
            let jar = jar.add(counter_cookie(&state, sent.pending.as_str().to_owned()));
            let page = render(&LoginPage {
                chrome: CounterChrome::new(&state, &bid, None),
                code_step: true,
                username: String::new(),
                notice: Some(format!(
                    "验证码已发送至 {}，{}分钟内有效。",
                    sent.phone_masked, sent.valid_minutes
                )),
                error: None,
            });
            Ok((jar, page).into_response())
        }
        Err(e) => refused_login(&state, &bid, e, false, form.username.trim().to_owned()),
    }
}

/// The code step's form.
#[derive(Debug, Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

/// `POST /counter/login/code`: the SMS code; on success the session starts.
pub async fn submit_code(
    State(state): State<AppState>,
    bid: BrowserId,
    jar: CookieJar,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, PageError> {
    let pending = jar
        .get(COUNTER_COOKIE)
        .and_then(|c| SessionToken::from_client(c.value()));
    if let Some(p) = &pending {
        if state.services.authenticate_operator(p).await.is_ok() {
            // Already logged in (a second submit): nothing to do.
            return Ok(Redirect::to(COUNTER).into_response());
        }
    }
    let result = match pending {
        Some(p) => state.services.counter_code(&p, &form.code, &meta).await,
        None => Err(Refusal::CounterLoginRestart.into()),
    };
    match result {
        Ok(token) => {
            let jar = jar.add(counter_cookie(&state, token.as_str().to_owned()));
            Ok((jar, Redirect::to(COUNTER)).into_response())
        }
        Err(e) => {
            // Start over when the half-done login is gone or locked.
            let restart = matches!(
                e.refusal(),
                Some(
                    Refusal::CounterLoginRestart
                        | Refusal::OperatorLocked { .. }
                        | Refusal::CodeExhausted
                        | Refusal::CodeExpired
                )
            );
            let page = refused_login(&state, &bid, e, !restart, String::new())?;
            if restart {
                Ok((jar.add(counter_cookie_removal(&state)), page).into_response())
            } else {
                Ok(page)
            }
        }
    }
}

/// A form with nothing but its CSRF token.
#[derive(Debug, Deserialize)]
pub struct EmptyForm {}

/// `POST /counter/logout`.
pub async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    Operator(who): Operator,
    ClientMeta(meta): ClientMeta,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, PageError> {
    state.services.counter_logout(&who, &meta).await?;
    Ok((
        jar.add(counter_cookie_removal(&state)),
        Redirect::to(&format!("{COUNTER_LOGIN}?bye=1")),
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "counter_queue.html")]
struct QueuePage {
    chrome: CounterChrome,
    queue: ReviewQueue,
    states: &'static [(&'static str, &'static str)],
    state: String,
    application: String,
    from: String,
    to: String,
    notice: Option<String>,
    notices: Vec<certhall_service::views::Notice>,
}

/// Query of the queue.
#[derive(Debug, Deserialize, Default)]
pub struct QueueQuery {
    state: Option<String>,
    application: Option<String>,
    from: Option<String>,
    to: Option<String>,
    done: Option<i64>,
    result: Option<String>,
}

/// `GET /counter`: the review queue, oldest first.
pub async fn queue(
    State(state): State<AppState>,
    bid: BrowserId,
    Operator(who): Operator,
    Query(q): Query<QueueQuery>,
) -> Result<Response, PageError> {
    let filter = QueueFilter {
        state: q.state.clone(),
        application: q.application.clone(),
        from: q.from.clone(),
        to: q.to.clone(),
    };
    let queue = state.services.review_queue(&filter).await?;
    let notices = state.services.counter_notices(10).await?;
    let notice = q.done.map(|id| match q.result.as_deref() {
        Some("approved") => format!("订单 {id} 已审核通过，已通知申请人。"),
        Some("cancelled") => format!("订单 {id} 已取消；已支付的款项将原路退回，已通知申请人。"),
        _ => format!("订单 {id} 已退回修改，已通知申请人退回原因。"),
    });
    let shown_state = q
        .state
        .filter(|s| QUEUE_STATES.iter().any(|(k, _)| k == s))
        .unwrap_or_else(|| "in_review".into());
    Ok(render(&QueuePage {
        chrome: CounterChrome::new(&state, &bid, Some(&who)),
        queue,
        states: &QUEUE_STATES,
        state: shown_state,
        application: q.application.unwrap_or_default(),
        from: q.from.unwrap_or_default(),
        to: q.to.unwrap_or_default(),
        notice,
        notices,
    }))
}

#[derive(Template)]
#[template(path = "counter_detail.html")]
struct DetailPage {
    chrome: CounterChrome,
    d: ReviewDetail,
    in_review: bool,
    reasons: &'static [(&'static str, Step)],
    steps_all: [Step; 5],
    error: Option<String>,
    materials: Vec<crate::pages::orders::MaterialView>,
    authorization: Option<AuthorizationView>,
    /// Ask before approving (审核通过 opens step 6 to the applicant).
    confirm_approve: bool,
    /// May the counter cancel it (approved, awaiting payment or paid)?
    cancellable: bool,
    checkout: Option<CounterCheckout>,
    attempts: Vec<crate::pages::pay::AttemptLine>,
    refunds: Vec<crate::pages::pay::RefundLine>,
}

/// Step 6 as the counter sees it (full phone, invoice details).
#[derive(Debug)]
pub struct CounterCheckout {
    key_model: String,
    total: String,
    recipient: String,
    phone: String,
    address: String,
    invoice: Vec<(&'static str, String)>,
}

async fn detail_page(
    state: &AppState,
    bid: &BrowserId,
    who: &OperatorInfo,
    id: OrderId,
    error: Option<&Refusal>,
) -> Result<Response, PageError> {
    detail_page_with(state, bid, who, id, error, false).await
}

async fn detail_page_with(
    state: &AppState,
    bid: &BrowserId,
    who: &OperatorInfo,
    id: OrderId,
    error: Option<&Refusal>,
    confirm_approve: bool,
) -> Result<Response, PageError> {
    let d = state.services.review_detail(who, id).await?;
    let view = certhall_service::payments::PaymentView {
        order: d.order.clone(),
        checkout: d.checkout.clone(),
        attempts: d.attempts.clone(),
        refunds: d.refunds.clone(),
        channels: Vec::new(),
        demo: false,
    };
    let (attempts, refunds) = crate::pages::pay::payment_lines(&view);
    let page = DetailPage {
        confirm_approve,
        cancellable: d.order.state.counter_cancellable(),
        checkout: d.checkout.as_ref().map(|c| CounterCheckout {
            key_model: format!(
                "{}（{} 元）",
                c.key_model_name,
                certhall_domain::money::yuan_decimal(c.key_fen)
            ),
            total: certhall_domain::money::yuan_decimal(c.total_fen),
            recipient: c.recipient.clone(),
            phone: c.phone.clone(),
            address: c.address_line(),
            invoice: c.invoice.as_ref().map_or_else(
                || vec![("发票", "不开发票".to_owned())],
                |i| {
                    let mut v = vec![
                        ("发票类型", i.kind.label_zh().to_owned()),
                        ("购买方名称", i.buyer_name.clone()),
                        ("纳税人识别号", i.tax_id.clone()),
                        ("接收邮箱", i.email.clone()),
                    ];
                    if let Some(sp) = &i.special {
                        v.push(("地址、电话", format!("{} {}", sp.address, sp.phone)));
                        v.push(("开户行及账号", format!("{} {}", sp.bank, sp.account)));
                    }
                    v
                },
            ),
        }),
        attempts,
        refunds,
        materials: d
            .materials
            .iter()
            .map(|m| crate::pages::orders::MaterialView::of("/counter/orders", id, m))
            .collect(),
        authorization: d.authorization.as_ref().map(|a| AuthorizationView {
            name: a.name.clone(),
            phone: a.phone_masked(),
            requested_at: a.requested_at.display_cst(),
            expires_at: a.expires_at.display_cst(),
            outcome: a.outcome.label_zh(),
        }),
        chrome: CounterChrome::new(state, bid, Some(who)),
        in_review: d.order.state == OrderState::InReview,
        d,
        reasons: &COMMON_REJECT_REASONS,
        steps_all: Step::ALL,
        error: error.map(Refusal::message_zh),
    };
    Ok(match error {
        Some(r) => render_with_status(status_of(r), &page),
        None => render(&page),
    })
}

/// `GET /counter/orders/{id}/materials/{kind}`: an order's image.
pub async fn material(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path((id, kind)): Path<(OrderId, String)>,
) -> Result<Response, PageError> {
    let kind = kind
        .parse()
        .map_err(|()| crate::error::WebError::Refused(Refusal::NotFound))?;
    let (info, bytes) = state
        .services
        .counter_material_image(&who, id, kind)
        .await?;
    Ok(crate::pages::materials::image_response(&info, bytes))
}

/// The legal representative's SMS authorization, as the counter sees it.
#[derive(Debug)]
pub struct AuthorizationView {
    name: String,
    phone: String,
    requested_at: String,
    expires_at: String,
    outcome: &'static str,
}

/// `GET /counter/orders/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    bid: BrowserId,
    Operator(who): Operator,
    Path(id): Path<OrderId>,
) -> Result<Response, PageError> {
    detail_page(&state, &bid, &who, id, None).await
}

/// The approve form (`confirmed=1` from the confirmation panel).
#[derive(Debug, Deserialize)]
pub struct ApproveForm {
    version: i64,
    #[serde(default)]
    confirmed: String,
}

async fn decided(
    state: &AppState,
    bid: &BrowserId,
    who: &OperatorInfo,
    id: OrderId,
    result: Result<certhall_service::views::OrderRow, ServiceError>,
    what: &str,
) -> Result<Response, PageError> {
    match result {
        Ok(_) => Ok(Redirect::to(&format!("{COUNTER}?done={id}&result={what}")).into_response()),
        Err(ServiceError::Refused(r)) => detail_page(state, bid, who, id, Some(&r)).await,
        Err(e) => Err(e.into()),
    }
}

/// `POST /counter/orders/{id}/approve`.
pub async fn approve(
    State(state): State<AppState>,
    bid: BrowserId,
    Operator(who): Operator,
    Path(id): Path<OrderId>,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<ApproveForm>,
) -> Result<Response, PageError> {
    if form.confirmed != "1" {
        // 审核通过 is asked once more; refusals come first.
        return match state
            .services
            .review_confirmable(&who, id, form.version, &meta)
            .await
        {
            Ok(()) => detail_page_with(&state, &bid, &who, id, None, true).await,
            Err(ServiceError::Refused(r)) => detail_page(&state, &bid, &who, id, Some(&r)).await,
            Err(e) => Err(e.into()),
        };
    }
    let result = state
        .services
        .review_decide(&who, id, form.version, &ReviewDecision::Approve, &meta)
        .await;
    decided(&state, &bid, &who, id, result, "approved").await
}

/// The reject form: a common reason or 其他 with text, and the step.
#[derive(Debug, Deserialize)]
pub struct RejectForm {
    version: i64,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    reason_text: String,
    #[serde(default)]
    step: Option<i64>,
}

/// `POST /counter/orders/{id}/reject`.
pub async fn reject(
    State(state): State<AppState>,
    bid: BrowserId,
    Operator(who): Operator,
    Path(id): Path<OrderId>,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<RejectForm>,
) -> Result<Response, PageError> {
    let reason = match reject_reason(&form.reason, &form.reason_text) {
        Ok(r) => r,
        Err(r) => return detail_page(&state, &bid, &who, id, Some(&r)).await,
    };
    let default_step = COMMON_REJECT_REASONS
        .iter()
        .find(|(r, _)| *r == form.reason.trim())
        .map_or(Step::Materials, |(_, s)| *s);
    let step = form
        .step
        .and_then(Step::from_number)
        .unwrap_or(default_step);
    let result = state
        .services
        .review_decide(
            &who,
            id,
            form.version,
            &ReviewDecision::Reject { step, reason },
            &meta,
        )
        .await;
    decided(&state, &bid, &who, id, result, "returned").await
}

/// The counter's cancel form: a reason is required.
#[derive(Debug, Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    reason: String,
}

/// `POST /counter/orders/{id}/cancel`: cancels an approved, unpaid or
/// paid order with a reason (a paid one is refunded in full).
pub async fn cancel(
    State(state): State<AppState>,
    bid: BrowserId,
    Operator(who): Operator,
    Path(id): Path<OrderId>,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<CancelForm>,
) -> Result<Response, PageError> {
    let result = state
        .services
        .counter_cancel(&who, id, &form.reason, &meta)
        .await;
    match result {
        Ok(_) => Ok(Redirect::to(&format!("{COUNTER}?done={id}&result=cancelled")).into_response()),
        Err(ServiceError::Refused(r)) => detail_page(&state, &bid, &who, id, Some(&r)).await,
        Err(e) => Err(e.into()),
    }
}
