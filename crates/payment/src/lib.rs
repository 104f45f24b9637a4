//! Payment gateways: how CertHall takes money for an order (第七步 支付).
//!
//! [`PaymentProvider`] is the one interface every provider implements —
//! create a QR-code payment, query it, close it, refund it, query the
//! refund, and verify-and-parse a callback — so the services never know
//! which provider they talk to. Three implementations live here:
//!
//! - [`wechat::WechatPay`]: WeChat Pay API v3, Native (扫码) payment:
//!   requests signed `WECHATPAY2-SHA256-RSA2048` with the merchant key,
//!   answers and callbacks verified with the platform key chosen by
//!   `Wechatpay-Serial` (platform certificate serial or `PUB_KEY_ID_…`),
//!   callback resources decrypted with AEAD_AES_256_GCM and the APIv3 key;
//! - [`alipay::Alipay`]: Alipay OpenAPI (`alipay.trade.precreate` for a QR
//!   code, query / close / refund), RSA2 request signing, answers and async
//!   notifications verified with Alipay's public key;
//! - [`simulator::WechatSimulator`]: demo mode's stand-in for WeChat Pay's
//!   servers — it checks the merchant's request signatures, keeps trades in
//!   a [`simulator::SimulatorLedger`], signs its answers and, when the demo
//!   cashier's 支付成功 is pressed, builds a callback in the WeChat v3
//!   format signed with a demo platform key and encrypted with the demo
//!   APIv3 key. Demo mode runs the real [`wechat::WechatPay`] adapter
//!   against it, so the verification and decryption code runs in demo mode
//!   and in the tests exactly as in production.
//!
//! Amounts are integer fen; times come from the caller's clock.

use std::fmt;

use async_trait::async_trait;
pub use certhall_domain::payment::Channel;
use certhall_domain::Timestamp;

pub mod alipay;
pub mod keys;
pub mod simulator;
pub mod wechat;

/// How long a request to a provider may take before it is given up (and
/// the attempt left for the payment job to query).
pub const HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The HTTP client every adapter talks to its provider with.
pub(crate) fn http_client() -> Result<reqwest::Client, PaymentError> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .user_agent(concat!("CertHall/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| PaymentError::Config(format!("http client: {e}")))
}

/// A QR-code payment to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment<'a> {
    /// Our unique number for this attempt.
    pub out_trade_no: &'a str,
    /// Amount in fen (> 0).
    pub amount_fen: i64,
    /// What is paid for, shown to the payer (e.g. 数字证书新办-订单12).
    pub description: &'a str,
    /// When the QR code stops working.
    pub expires_at: Timestamp,
    /// The payer's IP, when known (WeChat's `scene_info`).
    pub payer_ip: Option<&'a str>,
}

/// A created payment: the text to show as a QR code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrPayment {
    /// `weixin://wxpay/bizpayurl?pr=…`, `https://qr.alipay.com/…`, or the
    /// demo cashier's URL.
    pub code_url: String,
}

/// A payment the provider confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidTrade {
    /// The provider's transaction number.
    pub transaction_id: String,
    /// What was paid, in fen (the order total, before any provider-side
    /// discount to the payer).
    pub amount_fen: i64,
    /// When, if the provider says.
    pub paid_at: Option<Timestamp>,
}

/// What the provider says about a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeState {
    /// Not paid (QR code not scanned, or scanned and abandoned).
    NotPaid,
    /// The payer is entering their password.
    UserPaying,
    /// Paid (also when since refunded: the payment happened).
    Paid(PaidTrade),
    /// Closed or revoked without payment.
    Closed,
    /// The payment failed (bank refused, …); the text is the provider's.
    Failed(String),
    /// The provider has no such trade (Alipay creates it at the scan).
    NotFound,
}

/// A refund to request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefund<'a> {
    /// The payment's number.
    pub out_trade_no: &'a str,
    /// Our unique number for this refund.
    pub out_refund_no: &'a str,
    /// How much to give back, in fen.
    pub refund_fen: i64,
    /// The payment's total, in fen.
    pub total_fen: i64,
    /// Shown to the payer (at most 80 characters).
    pub reason: &'a str,
}

/// What the provider says about a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundStatus {
    /// Accepted; in progress.
    Processing,
    /// The money is back.
    Succeeded {
        /// The provider's refund number, when it gives one.
        refund_id: Option<String>,
        /// When, if the provider says.
        at: Option<Timestamp>,
    },
    /// Closed without paying back.
    Closed,
    /// Failed; needs a human (the provider's words).
    Abnormal(String),
    /// The provider knows no such refund.
    NotFound,
}

/// An inbound callback (async notification) as received: header names in
/// lower case, the body exactly as sent.
#[derive(Debug, Clone, Copy)]
pub struct Callback<'a> {
    /// Request headers, names lower-cased.
    pub headers: &'a [(String, String)],
    /// The raw body.
    pub body: &'a [u8],
}

impl Callback<'_> {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A verified payment notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentNotice {
    /// The provider's id of the notification (for deduplication and audit).
    pub notification_id: String,
    /// Our number.
    pub out_trade_no: String,
    /// The trade's state as notified (only [`TradeState::Paid`] moves an
    /// order).
    pub state: TradeState,
}

/// A verified refund notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundNotice {
    /// The provider's id of the notification.
    pub notification_id: String,
    /// The payment's number.
    pub out_trade_no: String,
    /// Our refund number.
    pub out_refund_no: String,
    /// The refund's state.
    pub status: RefundStatus,
}

/// What a verified callback says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// About a payment.
    Payment(PaymentNotice),
    /// About a refund.
    Refund(RefundNotice),
}

/// Why a callback was refused (nothing in it is believed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// WeChat Pay's signature probe (`WECHATPAY/SIGNTEST/…`): it must fail
    /// verification, and does.
    #[error("signature probe")]
    Probe,
    /// A required header or field is missing (its name).
    #[error("missing {0}")]
    Missing(&'static str),
    /// The timestamp is more than five minutes from now.
    #[error("timestamp {skew_secs}s from now")]
    Stale {
        /// Seconds between the callback's time and ours.
        skew_secs: i64,
    },
    /// No configured key has this serial / id.
    #[error("unknown key {0}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The body or a field is malformed (what).
    #[error("malformed: {0}")]
    Malformed(String),
    /// The encrypted resource does not decrypt (wrong key, or tampered).
    #[error("resource does not decrypt")]
    Decrypt,
    /// It is for another merchant or app (which field).
    #[error("not for this merchant: {0}")]
    WrongMerchant(&'static str),
}

impl CallbackError {
    /// The stable code stored with the callback and audited.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Probe => "signature_probe",
            Self::Missing(_) => "missing_field",
            Self::Stale { .. } => "stale_timestamp",
            Self::UnknownKey(_) => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Malformed(_) => "malformed",
            Self::Decrypt => "decrypt_failed",
            Self::WrongMerchant(_) => "wrong_merchant",
        }
    }
}

/// The HTTP answer a provider expects to a callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackAnswer {
    /// Status code.
    pub status: u16,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

/// Why a call to the provider failed.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The provider could not be reached (or timed out).
    #[error("payment provider unreachable: {0}")]
    Transport(String),
    /// The provider answered with an error.
    #[error("payment provider refused: {code}: {message}")]
    Provider {
        /// The provider's error code.
        code: String,
        /// The provider's message.
        message: String,
    },
    /// The provider's answer failed verification or could not be read.
    #[error("payment provider answer rejected: {0}")]
    BadAnswer(String),
    /// Closing failed because the payer paid meanwhile.
    #[error("trade already paid")]
    AlreadyPaid,
    /// The adapter's configuration is unusable (keys, ids).
    #[error("payment configuration: {0}")]
    Config(String),
}

/// Something that takes payments.
#[async_trait]
pub trait PaymentProvider: Send + Sync + fmt::Debug {
    /// Which channel this is.
    fn channel(&self) -> Channel;

    /// Creates a QR-code payment. Calling it again with the same
    /// `out_trade_no` and the same content is harmless for the providers
    /// (they answer with the same code).
    async fn create(&self, payment: &NewPayment<'_>) -> Result<QrPayment, PaymentError>;

    /// Asks for a payment's state.
    async fn query(&self, out_trade_no: &str) -> Result<TradeState, PaymentError>;

    /// Closes an unpaid payment (its QR code stops working).
    /// [`PaymentError::AlreadyPaid`] when the payer was faster.
    async fn close(&self, out_trade_no: &str) -> Result<(), PaymentError>;

    /// Requests a refund (idempotent by `out_refund_no`).
    async fn refund(&self, refund: &NewRefund<'_>) -> Result<RefundStatus, PaymentError>;

    /// Asks for a refund's state.
    async fn query_refund(
        &self,
        out_trade_no: &str,
        out_refund_no: &str,
    ) -> Result<RefundStatus, PaymentError>;

    /// Verifies a callback (before anything in it is parsed as data) and
    /// reads it. `now` bounds the accepted timestamps.
    fn verify_callback(
        &self,
        callback: &Callback<'_>,
        now: Timestamp,
    ) -> Result<Notice, CallbackError>;

    /// The answer the provider expects: `accepted` when the callback was
    /// verified and recorded (also a duplicate), else a failure answer so
    /// that the provider retries or gives up by its own rules.
    fn answer(&self, accepted: bool) -> CallbackAnswer;
}
