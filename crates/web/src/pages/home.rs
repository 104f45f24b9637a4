//! 首页 (manual 2.2): the quick workbench and the latest messages.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use certhall_domain::message::Message;
use certhall_service::reminders::ExpiringCertificate;

use super::{render, Chrome};
use crate::error::PageError;
use crate::extract::{Applicant, BrowserId};
use crate::{paths, AppState};

/// Latest messages shown on the home page.
const LATEST: u32 = 5;

/// One button of the workbench.
#[derive(Debug)]
pub struct Tile {
    /// Label.
    pub label: &'static str,
    /// One line under it.
    pub hint: &'static str,
    /// Where it leads.
    pub href: &'static str,
    /// Icon name in the sprite.
    pub icon: &'static str,
}

/// The workbench, in the manual's order.
pub const WORKBENCH: [Tile; 7] = [
    Tile {
        label: "证书新办",
        hint: "在线申请新的数字证书",
        href: paths::APPLY_NEW,
        icon: "new",
    },
    Tile {
        label: "证书更新",
        hint: "证书到期前后在线续期",
        href: paths::RENEW,
        icon: "renew",
    },
    Tile {
        label: "证书变更",
        hint: "单位名称等信息变更",
        href: paths::CHANGE,
        icon: "change",
    },
    Tile {
        label: "证书激活",
        hint: "收到UKey后激活使用",
        href: paths::ACTIVATE,
        icon: "activate",
    },
    Tile {
        label: "我的证书",
        hint: "查看、下载已办理的证书",
        href: paths::CERTIFICATES,
        icon: "certificates",
    },
    Tile {
        label: "我的订单",
        hint: "查看办理进度与物流",
        href: paths::ORDERS,
        icon: "orders",
    },
    Tile {
        label: "消息提醒",
        hint: "审核结果与到期提醒",
        href: paths::MESSAGES,
        icon: "messages",
    },
];

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    chrome: Chrome,
    tiles: &'static [Tile],
    latest: Vec<Message>,
    unread: u32,
    total: u32,
    /// Orders still under way (not cancelled), newest first.
    active: Vec<super::orders::OrderLine>,
    /// Certificates that may be renewed now, soonest end first.
    expiring: Vec<ExpiringCertificate>,
}

/// `GET /`.
pub async fn show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
) -> Result<Response, PageError> {
    let page = state.services.messages(who.account_id, 1, LATEST).await?;
    let orders = state.services.recent_orders(who.account_id, 20).await?;
    let active = orders
        .iter()
        .filter(|o| o.state != certhall_domain::order::OrderState::Cancelled)
        .take(5)
        .map(super::orders::OrderLine::of)
        .collect();
    let expiring = state.services.expiring_certificates(who.account_id).await?;
    Ok(render(&HomePage {
        chrome: Chrome::new(&state, &bid, Some(&who), "home"),
        tiles: &WORKBENCH,
        latest: page.items,
        unread: page.unread,
        total: page.total,
        active,
        expiring,
    }))
}
