//! In-app messages (消息提醒): system notices, review results, expiry reminders.

use serde::Serialize;

use crate::{AccountId, OrderId, Timestamp};

/// The three kinds of message the manual names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// 系统通知
    System,
    /// 审核通知
    Review,
    /// 到期提醒
    Expiry,
}

impl MessageKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Review => "review",
            Self::Expiry => "expiry",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "system" => Some(Self::System),
            "review" => Some(Self::Review),
            "expiry" => Some(Self::Expiry),
            _ => None,
        }
    }

    /// The label users see.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::System => "系统通知",
            Self::Review => "审核通知",
            Self::Expiry => "到期提醒",
        }
    }
}

/// The id of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct MessageId(pub i64);

/// A message to be delivered to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Its kind.
    pub kind: MessageKind,
    /// A short title.
    pub title: String,
    /// The text.
    pub body: String,
    /// The order it is about, if any (the list links to it).
    pub order_id: Option<OrderId>,
}

/// A delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its id.
    pub id: MessageId,
    /// Whose it is.
    pub account_id: AccountId,
    /// Its kind.
    pub kind: MessageKind,
    /// A short title.
    pub title: String,
    /// The text.
    pub body: String,
    /// When it was delivered.
    pub created_at: Timestamp,
    /// When the user marked it read.
    pub read_at: Option<Timestamp>,
    /// The order it is about, if any.
    pub order_id: Option<OrderId>,
}

impl NewMessage {
    /// The welcome message every new account receives at its first login.
    pub fn welcome() -> Self {
        Self {
            kind: MessageKind::System,
            title: "欢迎使用CertHall网上营业厅".into(),
            body: "您已成功注册并登录。在这里您可以在线办理数字证书新办、更新、变更和激活，\
                   查看订单进度，并接收审核结果与证书到期提醒。如需帮助，请拨打客服热线。"
                .into(),
            order_id: None,
        }
    }
}
