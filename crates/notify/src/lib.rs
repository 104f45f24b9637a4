//! Notification gateways: how CertHall reaches a phone.
//!
//! [`SmsGateway`] is the one interface every SMS provider implements. Two
//! implementations live here:
//!
//! - [`demo::DemoOutbox`]: keeps every message in the database outbox, shown
//!   at `/dev/outbox` in demo mode, where replies can also be simulated;
//! - [`aliyun::AliyunSms`]: Alibaba Cloud SMS (阿里云短信服务, `SendSms`,
//!   API version 2017-05-25), signed per its RPC signature documentation.
//!
//! Chinese SMS providers only deliver pre-registered templates, so messages
//! are structured ([`SmsTemplate`]) rather than free text: a provider maps
//! each template to its registered template code and parameters, while the
//! demo outbox renders the same text a user would receive.

use std::fmt;

use async_trait::async_trait;
use certhall_domain::Phone;

pub mod aliyun;
pub mod demo;

/// The messages CertHall sends by SMS, one variant per registered template.
/// `Debug` masks the secrets (login codes, PINs).
#[derive(Clone, PartialEq, Eq)]
pub enum SmsTemplate {
    /// A login code (短信验证码).
    LoginCode {
        /// The six digits.
        code: String,
        /// Minutes the code stays valid.
        minutes: u64,
    },
    /// The counter's decision on an order (审核结果).
    ReviewResult {
        /// Order number.
        order: i64,
        /// What happened, e.g. 审核通过，请登录选择介质与收货地址.
        outcome: String,
    },
    /// The request for the legal representative's authorization (法人授权),
    /// answered by replying 同意 or 拒绝.
    LegalRepAuthorization {
        /// Who applies (经办人).
        applicant: String,
        /// For which enterprise.
        enterprise: String,
        /// For which application (relying platform).
        application: String,
        /// Order number (a reply may name it).
        order: i64,
        /// Hours the answer counts.
        hours: u64,
    },
    /// The user PIN of a newly produced UKey (制证完成).
    KeyPin {
        /// Order number.
        order: i64,
        /// The six-digit PIN.
        pin: String,
    },
    /// A code that confirms one operation (注销证书, …) by the account's
    /// owner.
    ConfirmCode {
        /// What it confirms, e.g. 证书注销（枣庄某某有限公司）.
        action: String,
        /// The six digits.
        code: String,
        /// Minutes the code stays valid.
        minutes: u64,
    },
    /// A certificate is about to expire or has expired (到期提醒).
    ExpiryReminder {
        /// The certificate's holder (its subject's common name).
        subject: String,
        /// Where it stands, e.g. 将于2027年1月1日到期（还有30天）.
        status: String,
    },
}

impl fmt::Debug for SmsTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LoginCode { minutes, .. } => f
                .debug_struct("LoginCode")
                .field("code", &"***")
                .field("minutes", minutes)
                .finish(),
            Self::ConfirmCode {
                action, minutes, ..
            } => f
                .debug_struct("ConfirmCode")
                .field("action", action)
                .field("code", &"***")
                .field("minutes", minutes)
                .finish(),
            Self::KeyPin { order, .. } => f
                .debug_struct("KeyPin")
                .field("order", order)
                .field("pin", &"***")
                .finish(),
            other => f.write_str(other.key()),
        }
    }
}

impl SmsTemplate {
    /// The stable key a provider configuration maps to a template code.
    pub fn key(&self) -> &'static str {
        match self {
            Self::LoginCode { .. } => "login_code",
            Self::ReviewResult { .. } => "review_result",
            Self::LegalRepAuthorization { .. } => "legal_rep_authorization",
            Self::KeyPin { .. } => "key_pin",
            Self::ExpiryReminder { .. } => "expiry_reminder",
            Self::ConfirmCode { .. } => "confirm_code",
        }
    }

    /// The template parameters, as providers take them (name → value).
    pub fn params(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::LoginCode { code, minutes } => {
                vec![("code", code.clone()), ("minutes", minutes.to_string())]
            }
            Self::ReviewResult { order, outcome } => {
                vec![("order", order.to_string()), ("outcome", outcome.clone())]
            }
            Self::LegalRepAuthorization {
                applicant,
                enterprise,
                application,
                order,
                hours,
            } => vec![
                ("applicant", applicant.clone()),
                ("enterprise", enterprise.clone()),
                ("application", application.clone()),
                ("order", order.to_string()),
                ("hours", hours.to_string()),
            ],
            Self::KeyPin { order, pin } => {
                vec![("order", order.to_string()), ("pin", pin.clone())]
            }
            Self::ExpiryReminder { subject, status } => {
                vec![("subject", subject.clone()), ("status", status.clone())]
            }
            Self::ConfirmCode {
                action,
                code,
                minutes,
            } => vec![
                ("action", action.clone()),
                ("code", code.clone()),
                ("minutes", minutes.to_string()),
            ],
        }
    }

    /// The full text the recipient reads (used by the demo outbox and logs
    /// of providers that take free text).
    pub fn text(&self) -> String {
        match self {
            Self::LoginCode { code, minutes } => format!(
                "【CertHall】您的登录验证码为{code}，{minutes}分钟内有效。如非本人操作，请忽略本短信。"
            ),
            Self::ReviewResult { order, outcome } => format!(
                "【CertHall】您的证书订单{order}柜台审核结果：{outcome}。详情请登录网上营业厅查看。"
            ),
            Self::LegalRepAuthorization {
                applicant,
                enterprise,
                application,
                order,
                hours,
            } => format!(
                "【CertHall】{applicant}正在为{enterprise}申请“{application}”数字证书（订单{order}），需要您作为法定代表人授权。同意请回复“同意”，不同意请回复“拒绝”，{hours}小时内有效。如有多个订单，请在回复中注明订单号，如“同意 {order}”。"
            ),
            Self::KeyPin { order, pin } => format!(
                "【CertHall】您的证书订单{order}的 UKey 已制作完成，初始 PIN 码为{pin}。请妥善保管，切勿告诉他人；收到 UKey 后请尽快修改 PIN 码。"
            ),
            Self::ConfirmCode {
                action,
                code,
                minutes,
            } => format!(
                "【CertHall】您正在办理{action}，验证码为{code}，{minutes}分钟内有效。请勿将验证码告诉他人；如非本人操作，请忽略本短信并尽快联系我们。"
            ),
            Self::ExpiryReminder { subject, status } => format!(
                "【CertHall】您的数字证书（{subject}）{status}。请登录网上营业厅办理证书更新，以免影响在交易平台的使用。不需要短信提醒可在“我的证书”中关闭。"
            ),
        }
    }
}

/// One SMS to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// The recipient.
    pub to: Phone,
    /// What to say.
    pub template: SmsTemplate,
}

/// Why an SMS could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// The provider could not be reached.
    #[error("sms provider unreachable: {0}")]
    Transport(String),
    /// The provider answered with an error.
    #[error("sms provider refused: {code}: {message}")]
    Provider {
        /// The provider's error code.
        code: String,
        /// The provider's message.
        message: String,
    },
    /// The gateway is not configured for this template.
    #[error("sms template {0} not configured")]
    TemplateNotConfigured(&'static str),
    /// The outbox could not be written.
    #[error("sms outbox: {0}")]
    Store(#[from] certhall_store::StoreError),
}

/// Something that delivers SMS.
#[async_trait]
pub trait SmsGateway: Send + Sync + fmt::Debug {
    /// Sends one message; returns once the provider has accepted it.
    async fn send(&self, sms: &Sms) -> Result<(), SmsError>;

    /// True for the demo outbox: demo mode is on while this gateway is used.
    fn is_demo(&self) -> bool {
        false
    }
}

/// No SMS provider configured: the command-line tools that never send an
/// SMS run with this; a send fails with a clear error.
#[derive(Debug, Clone, Copy)]
pub struct Unconfigured;

#[async_trait]
impl SmsGateway for Unconfigured {
    async fn send(&self, _sms: &Sms) -> Result<(), SmsError> {
        Err(SmsError::Transport(
            "no SMS provider configured ([sms])".into(),
        ))
    }
}
