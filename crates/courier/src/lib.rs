//! Couriers: how CertHall ships a produced USB key to its applicant.
//!
//! [`Courier`] is the one interface a courier implements — create a
//! shipment order and get its waybill number, cancel it, query its route,
//! and verify-and-read a route push — so the services never know which
//! courier they talk to. Two implementations live here:
//!
//! - [`sf::SfExpress`]: SF Express' open platform (顺丰开放平台, 丰桥),
//!   `https://sfapi.sf-express.com/std/service`: `EXP_RECE_CREATE_ORDER`
//!   (下订单, 到付: the recipient pays), `EXP_RECE_UPDATE_ORDER` with
//!   `dealType` 2 (取消), `EXP_RECE_SEARCH_ROUTES` (路由查询), every call
//!   signed with the documented `msgDigest`; route pushes (路由推送) are
//!   verified with the same digest before anything in them is believed;
//! - [`demo::DemoCourier`]: demo mode's stand-in, with no network. It makes
//!   SF-looking waybill numbers, and its route pushes — built by
//!   [`push::sign_push`] exactly as SF's would be — go through the same
//!   verification code as the real adapter's.
//!
//! The wire format (digest, forms, times) is in [`protocol`], the
//! operation codes and events in [`route`], push signing and verification
//! in [`push`]. `docs/shipping.md` describes the protocol, says which parts
//! come from SF's documentation and which are CertHall's choices, and lists
//! the `[courier]` configuration ([`config::CourierConfig`]).
//!
//! Nothing here reads the clock except through an injected
//! [`certhall_domain::Clock`]; push verification takes `now` as a
//! parameter.

use std::fmt;

use async_trait::async_trait;
use serde::Deserialize;

pub mod config;
pub mod demo;
pub mod protocol;
pub mod push;
pub mod route;
pub mod sf;

pub use config::{CourierConfig, CourierKind};
pub use demo::DemoCourier;
pub use route::{RouteEvent, RouteStage};
pub use sf::{SfConfig, SfExpress};

/// How long one request to a courier may take, connection included.
pub const HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One end of a shipment: CertHall's dispatch office (sender) or the
/// applicant (recipient). Mainland addresses only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// Contact person (联系人).
    pub name: String,
    /// Company (公司名称), when there is one.
    #[serde(default)]
    pub company: Option<String>,
    /// Mainland mobile number (手机).
    pub mobile: String,
    /// Province-level division, standard name (e.g. 广东省, 北京市).
    pub province: String,
    /// Prefecture-level division (e.g. 深圳市).
    pub city: String,
    /// County-level division (e.g. 南山区); empty for a city that has
    /// none (东莞市).
    #[serde(default)]
    pub county: String,
    /// Street address (详细地址).
    pub address: String,
}

impl fmt::Debug for Party {
    /// Personal data stays out of logs: only the mobile's last four
    /// digits and the city are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail: String = self
            .mobile
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        f.debug_struct("Party")
            .field("mobile", &format_args!("*******{tail}"))
            .field("city", &self.city)
            .finish_non_exhaustive()
    }
}

/// A shipment to order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentRequest {
    /// Our order number for this shipment (SF's `orderId`). A new value
    /// for every shipment, never reused — also not after a cancellation.
    /// Sending the *same* shipment again with the same id is safe: SF
    /// answers with the waybill of the first successful order.
    pub order_id: String,
    /// CertHall's dispatch office.
    pub sender: Party,
    /// The applicant.
    pub recipient: Party,
    /// What is shipped, e.g. `USB Key 数字证书介质`.
    pub cargo: String,
    /// How many pieces of cargo (keys) are in the parcel.
    pub declared_count: u32,
    /// Deliver only after checking the recipient's identity (where the
    /// courier's configuration says how; see [`CourierError::IdCheckUnavailable`]).
    pub id_check: bool,
    /// A note printed on the waybill (备注), at most 100 characters.
    pub remark: Option<String>,
}

impl ShipmentRequest {
    /// Checks the fields against the limits of SF's create-order request
    /// (lengths in characters): order id 1–64 of `A–Z a–z 0–9 - _`,
    /// names and companies ≤ 100, mobile ≤ 20, province and county ≤ 30,
    /// city ≤ 100, address ≤ 200, cargo ≤ 128, count 1–99999, remark ≤ 100.
    pub fn check(&self) -> Result<(), CourierError> {
        fn text(what: &str, value: &str, max: usize, required: bool) -> Result<(), CourierError> {
            let n = value.trim().chars().count();
            if required && n == 0 {
                return Err(CourierError::Invalid(format!("{what} is empty")));
            }
            if n > max || value.chars().any(char::is_control) {
                return Err(CourierError::Invalid(format!(
                    "{what} is longer than {max} characters or has control characters"
                )));
            }
            Ok(())
        }
        let id = &self.order_id;
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(CourierError::Invalid(
                "order id must be 1-64 characters of A-Z a-z 0-9 - _".into(),
            ));
        }
        for (who, p) in [("sender", &self.sender), ("recipient", &self.recipient)] {
            text(&format!("{who} name"), &p.name, 100, true)?;
            text(
                &format!("{who} company"),
                p.company.as_deref().unwrap_or(""),
                100,
                false,
            )?;
            text(&format!("{who} mobile"), &p.mobile, 20, true)?;
            text(&format!("{who} province"), &p.province, 30, true)?;
            text(&format!("{who} city"), &p.city, 100, true)?;
            text(&format!("{who} county"), &p.county, 30, false)?;
            text(&format!("{who} address"), &p.address, 200, true)?;
        }
        text("cargo", &self.cargo, 128, true)?;
        if !(1..=99_999).contains(&self.declared_count) {
            return Err(CourierError::Invalid("count must be 1-99999".into()));
        }
        text("remark", self.remark.as_deref().unwrap_or(""), 100, false)?;
        Ok(())
    }
}

/// A created shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waybill {
    /// The courier's waybill number (运单号), e.g. `SF7444496931331`.
    pub waybill_no: String,
    /// The courier's answer as received, kept for audit.
    pub raw: String,
}

/// Why a call to the courier failed. Messages are English and carry no
/// courier text: the courier's own message is a field, for logs; pages map
/// [`CourierError::code`] to what the applicant or operator reads.
#[derive(Debug, thiserror::Error)]
pub enum CourierError {
    /// The courier could not be reached, timed out or answered with an HTTP
    /// error status.
    #[error("courier unreachable: {0}")]
    Transport(String),
    /// The gateway refused the call (SF `apiResultCode` other than A1000:
    /// bad digest, no permission for the service, …).
    #[error("courier gateway refused the call ({code})")]
    Api {
        /// The gateway's code, e.g. `A1006`.
        code: String,
        /// The gateway's message (Chinese), for logs.
        message: String,
    },
    /// The service refused the request (SF `success` false / `errorCode`
    /// other than S0000, or an answer that reports failure).
    #[error("courier refused the request ({code})")]
    Business {
        /// The service's code, e.g. `8016`.
        code: String,
        /// The service's message (Chinese), for logs.
        message: String,
    },
    /// The courier does not serve this address (SF screening result 3,
    /// 不可以收派).
    #[error("address not served by the courier")]
    NotDeliverable {
        /// The courier's reason, for logs.
        reason: String,
    },
    /// The courier's answer could not be read.
    #[error("courier answer unreadable: {0}")]
    Malformed(String),
    /// The shipment itself is unusable (a field missing or too long).
    #[error("invalid shipment: {0}")]
    Invalid(String),
    /// ID-checked delivery was asked for, but the deployment has not
    /// configured how to order it from this courier; nothing was sent.
    #[error("id-checked delivery is not configured for this courier")]
    IdCheckUnavailable,
    /// The courier's configuration is unusable.
    #[error("courier configuration: {0}")]
    Config(String),
}

impl CourierError {
    /// A stable code for pages and audit.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Transport(_) => "courier_unreachable",
            Self::Api { .. } => "courier_gateway_refused",
            Self::Business { .. } => "courier_refused",
            Self::NotDeliverable { .. } => "courier_address_not_served",
            Self::Malformed(_) => "courier_answer_unreadable",
            Self::Invalid(_) => "shipment_invalid",
            Self::IdCheckUnavailable => "id_check_unavailable",
            Self::Config(_) => "courier_config",
        }
    }

    /// Whether calling again later may succeed: the network failed, not
    /// the request. (Gateway codes are not treated as transient: SF's table
    /// of them was not available to check which are.)
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transport(_))
    }
}

/// Why a route push was refused. Nothing in a refused push is believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushRefused {
    /// This deployment takes no pushes (`push_digest = false`): tracking
    /// is by query only.
    #[error("route pushes are disabled")]
    Disabled,
    /// Not a form post.
    #[error("unexpected content type {0:?}")]
    ContentType(String),
    /// The body is larger than any push.
    #[error("push too large")]
    TooLarge,
    /// A required field is missing or empty (its name).
    #[error("missing {0}")]
    Missing(&'static str),
    /// A field is given twice (its name).
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    /// It names another partner (顾客编码).
    #[error("not for this partner")]
    WrongPartner,
    /// It names another service than `RoutePushService`.
    #[error("unexpected service {0:?}")]
    WrongService(String),
    /// The timestamp is not a number of milliseconds.
    #[error("bad timestamp")]
    BadTimestamp,
    /// The digest does not match.
    #[error("bad digest")]
    BadDigest,
    /// Signed, but too far from now (a replay, or a wrong clock).
    #[error("timestamp {skew_ms} ms from now")]
    Stale {
        /// Milliseconds between the push's time and ours (positive: in the
        /// past).
        skew_ms: i64,
    },
    /// The form or the signed JSON cannot be read (what).
    #[error("malformed: {0}")]
    Malformed(String),
}

impl PushRefused {
    /// A stable code stored with the refused push.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Disabled => "push_disabled",
            Self::ContentType(_) => "content_type",
            Self::TooLarge => "too_large",
            Self::Missing(_) => "missing_field",
            Self::Duplicate(_) => "duplicate_field",
            Self::WrongPartner => "wrong_partner",
            Self::WrongService(_) => "wrong_service",
            Self::BadTimestamp => "bad_timestamp",
            Self::BadDigest => "bad_digest",
            Self::Stale { .. } => "stale_timestamp",
            Self::Malformed(_) => "malformed",
        }
    }
}

/// Something that ships parcels.
#[async_trait]
pub trait Courier: Send + Sync + fmt::Debug {
    /// A short name for logs and audit: `sf`, `demo`.
    fn name(&self) -> &'static str;

    /// Orders a pick-up and delivery (the recipient pays on delivery) and
    /// returns the waybill. Safe to repeat with the same
    /// [`ShipmentRequest::order_id`] after a transport error.
    async fn create_order(&self, request: &ShipmentRequest) -> Result<Waybill, CourierError>;

    /// Cancels the order (before pick-up). Its order id is spent.
    async fn cancel_order(&self, order_id: &str) -> Result<(), CourierError>;

    /// The route events of these waybills known to the courier, in the
    /// courier's order. Empty for a courier without remote tracking.
    async fn routes(&self, waybill_nos: &[String]) -> Result<Vec<RouteEvent>, CourierError>;

    /// Verifies a route push as received (its `Content-Type` and raw body)
    /// and reads its events; `now_ms` (milliseconds since the Unix epoch)
    /// bounds the accepted timestamps. Nothing is read as data before the
    /// signature is checked.
    fn verify_push(
        &self,
        content_type: &str,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Vec<RouteEvent>, PushRefused>;

    /// The answer (`Content-Type`, body) to a push that was verified and
    /// recorded — also to a duplicate.
    fn push_ack(&self) -> (&'static str, String) {
        push::ack()
    }

    /// The answer to a push that was refused or could not be recorded: the
    /// courier retries by its own rules.
    fn push_nack(&self) -> (&'static str, String) {
        push::nack()
    }

    /// True for the demo courier: demo mode is on while it is used.
    fn is_demo(&self) -> bool {
        false
    }

    /// Demo only: the route push SF would send for `events`, signed with
    /// the demo courier's key ([`push::sign_push`]) — what demo mode's
    /// `/dev/courier` page posts to CertHall's push handler. `None` for a
    /// real courier, whose pushes only the courier can sign.
    fn demo_push(&self, _events: &[RouteEvent], _now_ms: i64) -> Option<(&'static str, String)> {
        None
    }
}
