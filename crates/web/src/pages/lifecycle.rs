//! 证书更新, 证书变更 and PIN 解锁: the pages whose scripts (`static/renew.js`,
//! `static/unlock.js`) drive the key agent on the applicant's PC and call
//! the JSON routes of [`crate::api::lifecycle`]. The page knows the
//! account's certificates and keys; every decision is the service's.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use certhall_domain::lifecycle::subject_common_name;
use certhall_domain::OrderId;
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
    /// Renewal must be paid for first.
    unpaid: bool,
}

impl RenewalLine {
    fn new(c: MyCertificate, advice: Option<String>) -> Self {
        Self {
            holder: subject_common_name(&c.certificate.subject),
            expires: c.certificate.not_after.display_cst(),
            status: c.status.label_zh(),
            advice: advice.unwrap_or_default(),
            unpaid: false,
            serial: c.certificate.serial,
        }
    }
}

/// What the key page is for: the same 介质查询 and agent stages serve
/// 证书更新, choosing the certificate of a 证书变更, and writing a change
/// order's new certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyPageMode {
    Renew,
    ChooseChange,
    WriteChange,
}

impl KeyPageMode {
    /// `data-mode` for the script.
    fn as_str(self) -> &'static str {
        match self {
            Self::Renew => "renew",
            Self::ChooseChange => "change",
            Self::WriteChange => "write",
        }
    }
}

#[derive(Template)]
#[template(path = "renew.html")]
struct RenewPage {
    chrome: Chrome,
    agent_url: String,
    mode: &'static str,
    title: &'static str,
    intro: String,
    /// The JSON routes the script calls (`{serial}` stands for the chosen
    /// certificate's serial).
    code_url: String,
    challenge_url: String,
    start_url: String,
    /// The change order being written.
    order_id: Option<OrderId>,
    /// What a renewal costs (yuan; `0.00`: free).
    price: String,
    lines: Vec<RenewalLine>,
    /// The certificate the home page's 立即更新 chose.
    focus: Option<RenewalLine>,
}

impl RenewPage {
    fn new(s: &AppState, bid: &BrowserId, who: &Applicant, mode: KeyPageMode) -> Self {
        let (title, intro) = match mode {
            KeyPageMode::Renew => {
                let window = s.services.renewal_window;
                (
                    "证书更新",
                    format!(
                        "证书到期前 {} 天至到期后 {} 天内，可以在这里在线更新：新证书写入原 UKey，PIN 码不变。\
                         新证书写入并校验无误后，原证书才停止使用；原证书在交易平台的激活会自动转到新证书。{}",
                        window.before_expiry.as_secs() / 86_400,
                        window.after_expiry.as_secs() / 86_400,
                        if s.services.renewal_price_fen > 0 {
                            format!(
                                "更新费用 {} 元：选择证书后先在线支付，支付完成后回到本页写入新证书。",
                                s.services.renewal_price_yuan()
                            )
                        } else {
                            String::new()
                        }
                    ),
                )
            }
            KeyPageMode::ChooseChange => (
                "证书变更",
                "企业名称、法定代表人、住所等信息变更后，可以在线变更证书：选择要变更的证书，上传变更后的营业执照并修改信息，\
                 经授权和柜台审核后，新证书直接写入您现在的 UKey（无需寄送）。审核期间原证书照常使用。"
                    .to_owned(),
            ),
            KeyPageMode::WriteChange => (
                "写入变更后的证书",
                "变更已审核通过。请插入存放原证书的 UKey，验证 PIN 码和短信验证码后，变更后的新证书将写入这把 UKey，PIN 码不变；\
                 新证书写入并校验无误后，原证书才停止使用，在交易平台的激活会自动转到新证书。"
                    .to_owned(),
            ),
        };
        let (code_url, challenge_url, start_url) = match mode {
            KeyPageMode::Renew | KeyPageMode::ChooseChange => (
                "/api/v1/certificates/{serial}/renewal/code".to_owned(),
                "/api/v1/certificates/{serial}/renewal/challenge".to_owned(),
                if mode == KeyPageMode::Renew {
                    "/api/v1/certificates/{serial}/renewals".to_owned()
                } else {
                    "/api/v1/certificates/{serial}/changes".to_owned()
                },
            ),
            KeyPageMode::WriteChange => (String::new(), String::new(), String::new()),
        };
        Self {
            chrome: Chrome::new(s, bid, Some(&who.0), "certificates"),
            agent_url: s.config.agent_url.clone(),
            mode: mode.as_str(),
            title,
            intro,
            code_url,
            challenge_url,
            start_url,
            order_id: None,
            price: s.services.renewal_price_yuan(),
            lines: Vec::new(),
            focus: None,
        }
    }
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
    let mut page = RenewPage::new(&s, &bid, &who, KeyPageMode::Renew);
    for c in s.services.my_certificates(account).await? {
        let advice = s.services.renewal_advice(&c);
        let unpaid = advice.is_none() && s.services.renewal_unpaid(&c).await?;
        page.lines.push(RenewalLine {
            unpaid,
            ..RenewalLine::new(c, advice)
        });
    }
    page.focus = match q.serial.as_deref() {
        Some(serial) => {
            let (c, advice) = s.services.renewal_timing(account, serial).await?;
            Some(RenewalLine::new(c, advice))
        }
        None => None,
    };
    Ok(render(&page))
}

/// `GET /certificates/change`: 介质查询, choose the certificate to change;
/// a change order opens at step 3.
pub async fn change(
    State(s): State<AppState>,
    bid: BrowserId,
    who: Applicant,
) -> Result<Response, PageError> {
    let mut page = RenewPage::new(&s, &bid, &who, KeyPageMode::ChooseChange);
    for c in s.services.my_certificates(who.0.account_id).await? {
        let advice = s.services.change_advice(&c).map(str::to_owned);
        page.lines.push(RenewalLine::new(c, advice));
    }
    Ok(render(&page))
}

/// `GET /orders/{id}/write`: an approved change order's new certificate
/// written onto the key the old one is on.
pub async fn write_change(
    State(s): State<AppState>,
    bid: BrowserId,
    who: Applicant,
    Path(id): Path<OrderId>,
) -> Result<Response, PageError> {
    let account = who.0.account_id;
    let order = s.services.order_of(account, id).await?;
    if order.kind == certhall_domain::order::OrderKind::Renewal {
        // A paid renewal is written on the renewal page.
        let serial = s.services.order_certificate(account, id).await?;
        return Ok(axum::response::Redirect::to(&format!(
            "{}?serial={}",
            crate::paths::RENEW,
            serial.unwrap_or_default()
        ))
        .into_response());
    }
    let (_, target) = s.services.change_awaiting_write(account, id).await?;
    let mut page = RenewPage::new(&s, &bid, &who, KeyPageMode::WriteChange);
    page.code_url = format!("/api/v1/orders/{id}/change/code");
    page.challenge_url = format!("/api/v1/orders/{id}/change/challenge");
    page.start_url = format!("/api/v1/orders/{id}/change/writes");
    page.order_id = Some(id);
    for c in s.services.my_certificates(account).await? {
        let advice = (c.certificate.serial != target.certificate.serial)
            .then(|| "不是本订单变更的证书".to_owned());
        page.lines.push(RenewalLine::new(c, advice));
    }
    page.focus = Some(RenewalLine::new(target, None));
    Ok(render(&page))
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
