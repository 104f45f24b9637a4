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

/// 证书更新.
pub async fn renew(State(s): State<AppState>, bid: BrowserId, who: Applicant) -> Response {
    page(
        &s,
        &bid,
        &who,
        "home",
        "证书更新",
        "插入UKey后在线为即将到期或已过期的证书续期，无需前往柜台。",
    )
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

/// 证书激活.
pub async fn activate(State(s): State<AppState>, bid: BrowserId, who: Applicant) -> Response {
    page(
        &s,
        &bid,
        &who,
        "home",
        "证书激活",
        "收到UKey后插入电脑，设置您自己的PIN码并通过短信验证即可激活。",
    )
}
