//! Alipay OpenAPI (支付宝开放平台, the `gateway.do` "OpenAPI v2" style),
//! 当面付 scan-to-pay: `alipay.trade.precreate` gives a QR code the payer
//! scans with the Alipay app.
//!
//! **Key mode.** Public-key mode only (公钥模式): the app's RSA2 private key
//! signs requests and Alipay's public key (支付宝公钥) verifies answers and
//! notifications. Certificate mode (公钥证书模式: `app_cert_sn`,
//! `alipay_root_cert_sn`, answers carrying `alipay_cert_sn`) is out of scope;
//! an app switched to certificate mode must be switched back to public-key
//! mode in the console to use this adapter.
//!
//! What the adapter implements, following 支付宝开放平台文档 › 接口加签方式
//! (自行实现签名 / 自行实现验签, on <https://opendocs.alipay.com>), the Java
//! SDK's `AlipaySignature` (`getSignContent` for requests,
//! `getSignCheckContentV1` for notifications) and the API pages
//! `https://docs.open.alipay.com/api_1/<method>` (now redirected to
//! opendocs):
//!
//! - **Requests.** Common parameters `app_id, method, format=JSON,
//!   charset=utf-8, sign_type=RSA2, timestamp` ("yyyy-MM-dd HH:mm:ss",
//!   China time), `version=1.0`, `notify_url` (precreate only) and
//!   `biz_content` (JSON). `sign` is Base64(SHA256withRSA(app key,
//!   content)) where the content is every parameter but `sign` and those
//!   with empty values, sorted by name, `name=value` joined with `&`, values
//!   **not** URL-encoded ([`sign_content`], [`signed_params`]). All of it is
//!   POSTed form-encoded to the gateway ([`form_encode`]).
//! - **Answers** look like `{"alipay_trade_query_response":{…},"sign":"…"}`.
//!   The signature covers the exact text of the `<method with dots as
//!   underscores>_response` value, taken raw from the body (never
//!   re-serialized), and is checked with Alipay's public key before the
//!   node is read ([`verify_answer`]). `error_response` (gateway errors,
//!   e.g. an unknown `app_id`, which Alipay cannot sign for) is checked when
//!   it carries a signature. A success (`code` 10000) must be signed; an
//!   unsigned refusal is reported as [`PaymentError::Provider`] but never
//!   mapped to an outcome (`ACQ.TRADE_NOT_EXIST` → "nothing to close" is
//!   only believed when signed). `code` 10000 is success; otherwise the
//!   error is `sub_code` / `sub_msg` (or `code` / `msg`).
//! - **Async notifications** (异步通知, a form POST to `notify_url`;
//!   异步通知说明, <https://opendocs.alipay.com/open/270/105902>, the same
//!   parameters for every trade product): the signature covers
//!   every parameter but `sign` and `sign_type`, sorted, `name=value` with
//!   the *decoded* values, empty values included (`getSignCheckContentV1`,
//!   [`notify_check_content`]). It is verified before any field is
//!   believed; then `app_id` and `seller_id` must be ours and
//!   `total_amount` must read exactly as yuan. Notifications carry no
//!   signed freshness guarantee (`notify_time` is informational): a
//!   replayed genuine notification repeats a state CertHall already has,
//!   and the services deduplicate by `notify_id` and by the attempt's
//!   compare-and-swap.
//!
//! Trade and refund mappings are documented at each method of the
//! [`PaymentProvider`] impl. The app private key never appears in errors,
//! logs or `Debug` output.
//!
//! This module holds the configuration and the HTTP client; the wire
//! format (signing content, forms, answer verification, times,
//! notifications) is in `protocol`, re-exported here.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use certhall_domain::money::{parse_yuan_decimal, yuan_decimal};
use certhall_domain::{Clock, Timestamp};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::Deserialize;
use serde_json::json;

use crate::{
    keys, Callback, CallbackAnswer, CallbackError, Channel, NewPayment, NewRefund, Notice,
    PaidTrade, PaymentError, PaymentProvider, QrPayment, RefundStatus, TradeState,
};

mod protocol;

pub use protocol::{
    alipay_time, form_encode, notify_check_content, parse_alipay_time, parse_form, response_node,
    sign_content, signed_params, timeout_express, verify_answer, VerifiedAnswer, FORM_CONTENT_TYPE,
    NOTIFY_ACCEPTED, SUCCESS_CODE,
};
use protocol::{read_notification, Common};

/// Alipay's production gateway.
pub const DEFAULT_GATEWAY: &str = "https://openapi.alipay.com/gateway.do";

/// The `[payment.alipay]` section: ids and where the keys are.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlipayConfig {
    /// The app's APPID (开放平台应用 id).
    pub app_id: String,
    /// The merchant's PID (`2088…`, 16 digits): notifications must name it
    /// as `seller_id`.
    pub seller_id: String,
    /// The app's RSA2 private key (应用私钥): PEM, or bare Base64 as
    /// Alipay's key tool exports it.
    pub app_private_key_file: PathBuf,
    /// Alipay's public key (支付宝公钥, public-key mode): PEM or bare Base64.
    pub alipay_public_key_file: PathBuf,
    /// Where Alipay posts notifications (CertHall's
    /// `/api/v1/payment/notify/alipay`, public).
    pub notify_url: String,
    /// The gateway; [`DEFAULT_GATEWAY`] unless set (tests point it at a
    /// local server; the sandbox is
    /// `https://openapi-sandbox.dl.alipaydev.com/gateway.do`).
    #[serde(default = "default_gateway")]
    pub gateway: String,
}

fn default_gateway() -> String {
    DEFAULT_GATEWAY.to_owned()
}

impl fmt::Debug for AlipayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlipayConfig")
            .field("app_id", &self.app_id)
            .field("seller_id", &self.seller_id)
            .field("app_private_key_file", &self.app_private_key_file)
            .field("alipay_public_key_file", &self.alipay_public_key_file)
            .field("notify_url", &self.notify_url)
            .field("gateway", &self.gateway)
            .finish()
    }
}

impl AlipayConfig {
    /// Reads the key files and builds the adapter, reading the time from
    /// `clock`.
    pub fn load(self, clock: Arc<dyn Clock>) -> Result<Alipay, PaymentError> {
        let settings = AlipaySettings {
            app_private_key: keys::private_key(&keys::read_file(&self.app_private_key_file)?)?,
            alipay_public_key: keys::public_key(&keys::read_file(&self.alipay_public_key_file)?)?,
            app_id: self.app_id,
            seller_id: self.seller_id,
            notify_url: self.notify_url,
            gateway: self.gateway,
        };
        Alipay::new(settings, clock)
    }
}

/// Loaded settings of the adapter.
#[derive(Clone)]
pub struct AlipaySettings {
    /// APPID.
    pub app_id: String,
    /// The merchant's `2088…` PID.
    pub seller_id: String,
    /// The app's signing key.
    pub app_private_key: RsaPrivateKey,
    /// Alipay's public key.
    pub alipay_public_key: RsaPublicKey,
    /// Notification URL.
    pub notify_url: String,
    /// Gateway URL.
    pub gateway: String,
}

impl fmt::Debug for AlipaySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlipaySettings")
            .field("app_id", &self.app_id)
            .field("seller_id", &self.seller_id)
            .field("app_private_key", &"***")
            .field("alipay_public_key", &"<RSA public key>")
            .field("notify_url", &self.notify_url)
            .field("gateway", &self.gateway)
            .finish()
    }
}

impl AlipaySettings {
    fn checked(self) -> Result<Self, PaymentError> {
        if self.app_id.is_empty() || !self.app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PaymentError::Config("app_id must be digits".into()));
        }
        if self.seller_id.len() != 16
            || !self.seller_id.starts_with("2088")
            || !self.seller_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(PaymentError::Config(
                "seller_id must be the 16-digit 2088… PID".into(),
            ));
        }
        for (name, url) in [("notify_url", &self.notify_url), ("gateway", &self.gateway)] {
            if !url.starts_with("https://") && !url.starts_with("http://") {
                return Err(PaymentError::Config(format!("{name} must be a URL")));
            }
        }
        Ok(self)
    }
}
/// An answer with a `code` other than 10000.
#[derive(Debug)]
struct Refusal {
    code: String,
    message: String,
    sub_code: Option<String>,
    signed: bool,
}

impl Refusal {
    /// True when Alipay said `sub_code` and signed it (an unsigned refusal
    /// is reported, never acted on).
    fn is(&self, sub_code: &str) -> bool {
        self.signed && self.sub_code.as_deref() == Some(sub_code)
    }

    fn into_error(self) -> PaymentError {
        PaymentError::Provider {
            code: self.code,
            message: self.message,
        }
    }
}

/// A verified answer: the success node's text, or the refusal.
enum Reply {
    Success(String),
    Refused(Refusal),
}

impl Reply {
    fn success(self) -> Result<String, PaymentError> {
        match self {
            Self::Success(node) => Ok(node),
            Self::Refused(r) => Err(r.into_error()),
        }
    }
}

fn read_node<T: for<'de> Deserialize<'de>>(node: &str) -> Result<T, PaymentError> {
    serde_json::from_str(node).map_err(|e| PaymentError::BadAnswer(format!("answer node: {e}")))
}

/// An amount Alipay wrote in yuan, read exactly.
fn fen(field: &str, text: &str) -> Result<i64, PaymentError> {
    parse_yuan_decimal(text).ok_or_else(|| PaymentError::BadAnswer(format!("{field} {text:?}")))
}

/// Our numbers travel in JSON; Alipay takes up to 64 letters, digits and
/// underscores.
fn trade_number(text: &str) -> Result<&str, PaymentError> {
    if !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(text)
    } else {
        Err(PaymentError::Config(format!("bad trade number {text:?}")))
    }
}

/// `alipay.trade.query`'s answer.
#[derive(Debug, Deserialize)]
struct TradeQueryAnswer {
    #[serde(default)]
    trade_no: String,
    #[serde(default)]
    out_trade_no: String,
    #[serde(default)]
    trade_status: String,
    #[serde(default)]
    total_amount: String,
    #[serde(default)]
    send_pay_date: Option<String>,
}

/// `alipay.trade.refund`'s answer.
#[derive(Debug, Deserialize)]
struct RefundAnswer {
    #[serde(default)]
    out_trade_no: String,
    #[serde(default)]
    fund_change: String,
    #[serde(default)]
    gmt_refund_pay: Option<String>,
}

/// `alipay.trade.fastpay.refund.query`'s answer.
#[derive(Debug, Deserialize)]
struct RefundQueryAnswer {
    #[serde(default)]
    out_request_no: Option<String>,
    #[serde(default)]
    refund_amount: Option<String>,
    #[serde(default)]
    refund_status: Option<String>,
    #[serde(default)]
    gmt_refund_pay: Option<String>,
}

/// The Alipay OpenAPI adapter.
pub struct Alipay {
    settings: Arc<AlipaySettings>,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
}

impl fmt::Debug for Alipay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alipay")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Alipay {
    /// An adapter with already-loaded keys, reading the time from `clock`.
    /// Every request gives up after [`crate::HTTP_TIMEOUT`].
    pub fn new(settings: AlipaySettings, clock: Arc<dyn Clock>) -> Result<Self, PaymentError> {
        let client = crate::http_client()?;
        Ok(Self {
            settings: Arc::new(settings.checked()?),
            clock,
            client,
        })
    }

    /// The settings (key masked in `Debug`).
    pub fn settings(&self) -> &AlipaySettings {
        &self.settings
    }

    /// Signs and sends `method` with `biz_content`, verifies the answer.
    async fn call(
        &self,
        method: &str,
        biz_content: serde_json::Value,
        with_notify_url: bool,
    ) -> Result<Reply, PaymentError> {
        let notify_url = with_notify_url.then_some(self.settings.notify_url.as_str());
        let params = signed_params(
            &self.settings,
            method,
            &biz_content.to_string(),
            notify_url,
            self.clock.now(),
        )?;
        let res = self
            .client
            .post(&self.settings.gateway)
            .header(reqwest::header::CONTENT_TYPE, FORM_CONTENT_TYPE)
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form_encode(&params))
            .send()
            .await
            .map_err(|e| PaymentError::Transport(e.without_url().to_string()))?;
        let status = res.status();
        let bytes = res
            .bytes()
            .await
            .map_err(|e| PaymentError::Transport(e.without_url().to_string()))?;
        if !status.is_success() {
            // The gateway answers API errors with 200 and a JSON node; any
            // other status is the way there failing.
            return Err(PaymentError::Transport(format!(
                "gateway answered HTTP {}",
                status.as_u16()
            )));
        }
        let body = std::str::from_utf8(&bytes)
            .map_err(|_| PaymentError::BadAnswer("answer is not UTF-8".into()))?;
        let answer = verify_answer(&self.settings.alipay_public_key, method, body)?;
        let common: Common = read_node(&answer.node)?;
        if common.code == SUCCESS_CODE {
            return Ok(Reply::Success(answer.node));
        }
        tracing::warn!(
            method,
            code = %common.code,
            sub_code = common.sub_code.as_deref().unwrap_or(""),
            signed = answer.signed,
            "alipay refused"
        );
        let (code, message) = match common.sub_code.clone() {
            Some(sub) if !sub.is_empty() => (sub, common.sub_msg.unwrap_or(common.msg)),
            _ => (common.code, common.msg),
        };
        Ok(Reply::Refused(Refusal {
            code,
            message,
            sub_code: common.sub_code,
            signed: answer.signed,
        }))
    }
}

#[async_trait]
impl PaymentProvider for Alipay {
    fn channel(&self) -> Channel {
        Channel::Alipay
    }

    /// `alipay.trade.precreate` (统一收单线下交易预创建): `qr_code` is the
    /// text of the QR code. Both `time_expire` (absolute, China time) and
    /// `timeout_express` (whole minutes, at least 1m) are sent: Alipay
    /// honours `time_expire` when both are present, and for precreate
    /// `timeout_express` only starts counting at the scan, so the absolute
    /// time is what bounds the QR code.
    async fn create(&self, payment: &NewPayment<'_>) -> Result<QrPayment, PaymentError> {
        if payment.amount_fen <= 0 {
            return Err(PaymentError::Config("amount must be positive".into()));
        }
        let now = self.clock.now();
        let biz = json!({
            "out_trade_no": trade_number(payment.out_trade_no)?,
            "total_amount": yuan_decimal(payment.amount_fen),
            "subject": payment.description.chars().take(256).collect::<String>(),
            "timeout_express": timeout_express(now, payment.expires_at),
            "time_expire": alipay_time(payment.expires_at),
        });
        let node = self
            .call("alipay.trade.precreate", biz, true)
            .await?
            .success()?;
        #[derive(Deserialize)]
        struct Precreated {
            #[serde(default)]
            out_trade_no: String,
            qr_code: String,
        }
        let created: Precreated = read_node(&node)?;
        if created.out_trade_no != payment.out_trade_no {
            return Err(PaymentError::BadAnswer("answer for another trade".into()));
        }
        if created.qr_code.is_empty() {
            return Err(PaymentError::BadAnswer("empty qr_code".into()));
        }
        Ok(QrPayment {
            code_url: created.qr_code,
        })
    }

    /// `alipay.trade.query`: `WAIT_BUYER_PAY` → [`TradeState::UserPaying`]
    /// (a precreated trade exists at Alipay only once scanned, so it is
    /// the payer at the cashier); `TRADE_SUCCESS` / `TRADE_FINISHED` →
    /// [`TradeState::Paid`] (`trade_no`, `total_amount`, `send_pay_date`);
    /// `TRADE_CLOSED` → [`TradeState::Closed`] (unpaid and timed out or
    /// closed — Alipay also says `TRADE_CLOSED` after a full refund, but
    /// CertHall refunds only attempts it already holds as paid, and an
    /// attempt's state only changes from paying); `ACQ.TRADE_NOT_EXIST` →
    /// [`TradeState::NotFound`] (never scanned).
    async fn query(&self, out_trade_no: &str) -> Result<TradeState, PaymentError> {
        let biz = json!({ "out_trade_no": trade_number(out_trade_no)? });
        let node = match self.call("alipay.trade.query", biz, false).await? {
            Reply::Success(node) => node,
            Reply::Refused(r) if r.is("ACQ.TRADE_NOT_EXIST") => return Ok(TradeState::NotFound),
            Reply::Refused(r) => return Err(r.into_error()),
        };
        let t: TradeQueryAnswer = read_node(&node)?;
        if t.out_trade_no != out_trade_no {
            return Err(PaymentError::BadAnswer("answer for another trade".into()));
        }
        Ok(match t.trade_status.as_str() {
            "WAIT_BUYER_PAY" => TradeState::UserPaying,
            "TRADE_SUCCESS" | "TRADE_FINISHED" => {
                if t.trade_no.is_empty() {
                    return Err(PaymentError::BadAnswer(
                        "paid trade without trade_no".into(),
                    ));
                }
                TradeState::Paid(PaidTrade {
                    amount_fen: fen("total_amount", &t.total_amount)?,
                    transaction_id: t.trade_no,
                    paid_at: t.send_pay_date.as_deref().and_then(parse_alipay_time),
                })
            }
            "TRADE_CLOSED" => TradeState::Closed,
            other => {
                return Err(PaymentError::BadAnswer(format!(
                    "unknown trade_status {}",
                    other.chars().take(32).collect::<String>()
                )))
            }
        })
    }

    /// `alipay.trade.close`: success → closed. `ACQ.TRADE_NOT_EXIST` → Ok:
    /// the QR code was never scanned, so there is nothing to close (a scan
    /// after this, before `time_expire`, can still create and pay it; a
    /// payment notice for a closed attempt is the services' late-payment
    /// case). `ACQ.TRADE_STATUS_ERROR` (the trade is not open) → the trade
    /// is queried: paid → [`PaymentError::AlreadyPaid`], closed → Ok,
    /// anything else → the refusal.
    async fn close(&self, out_trade_no: &str) -> Result<(), PaymentError> {
        let biz = json!({ "out_trade_no": trade_number(out_trade_no)? });
        match self.call("alipay.trade.close", biz, false).await? {
            Reply::Success(_) => Ok(()),
            Reply::Refused(r) if r.is("ACQ.TRADE_NOT_EXIST") => Ok(()),
            Reply::Refused(r) if r.is("ACQ.TRADE_STATUS_ERROR") => {
                match self.query(out_trade_no).await? {
                    TradeState::Paid(_) => Err(PaymentError::AlreadyPaid),
                    TradeState::Closed => Ok(()),
                    _ => Err(r.into_error()),
                }
            }
            Reply::Refused(r) => Err(r.into_error()),
        }
    }

    /// `alipay.trade.refund` with `out_request_no` = our refund number
    /// (Alipay deduplicates by it). `fund_change == "Y"` → succeeded (the
    /// money moved, at `gmt_refund_pay`); anything else → processing: `N`
    /// also answers a repeated request for a refund that already
    /// succeeded, so only the refund query can tell.
    async fn refund(&self, refund: &NewRefund<'_>) -> Result<RefundStatus, PaymentError> {
        if refund.refund_fen <= 0 {
            return Err(PaymentError::Config(
                "refund amount must be positive".into(),
            ));
        }
        let biz = json!({
            "out_trade_no": trade_number(refund.out_trade_no)?,
            "refund_amount": yuan_decimal(refund.refund_fen),
            "out_request_no": trade_number(refund.out_refund_no)?,
            "refund_reason": refund.reason.chars().take(80).collect::<String>(),
        });
        let node = self
            .call("alipay.trade.refund", biz, false)
            .await?
            .success()?;
        let r: RefundAnswer = read_node(&node)?;
        if !r.out_trade_no.is_empty() && r.out_trade_no != refund.out_trade_no {
            return Err(PaymentError::BadAnswer("answer for another trade".into()));
        }
        Ok(if r.fund_change == "Y" {
            RefundStatus::Succeeded {
                refund_id: None,
                at: r.gmt_refund_pay.as_deref().and_then(parse_alipay_time),
            }
        } else {
            RefundStatus::Processing
        })
    }

    /// `alipay.trade.fastpay.refund.query` (统一收单交易退款查询), asking
    /// for `gmt_refund_pay`. Code 10000 only means the query ran. Alipay
    /// documents: `refund_status == "REFUND_SUCCESS"` means the refund
    /// succeeded, otherwise it has not (yet) — "not returned means the
    /// refund request was not received or the refund failed", and a query
    /// too soon after the refund may see it before it completes; a refund
    /// that did not succeed may be requested again with the same
    /// `out_request_no` and amount. Hence:
    ///
    /// - `REFUND_SUCCESS` → succeeded (at `gmt_refund_pay`);
    /// - refund data (`out_request_no` / `refund_amount`) without
    ///   `REFUND_SUCCESS` → processing (ask again later; older accounts
    ///   answered without `refund_status` even for a success, and the
    ///   processing state never claims money moved that did not);
    /// - no refund data at all → not found (Alipay has no such refund: the
    ///   services may submit it again under the same number);
    /// - `ACQ.TRADE_NOT_EXIST` → not found.
    async fn query_refund(
        &self,
        out_trade_no: &str,
        out_refund_no: &str,
    ) -> Result<RefundStatus, PaymentError> {
        let biz = json!({
            "out_trade_no": trade_number(out_trade_no)?,
            "out_request_no": trade_number(out_refund_no)?,
            "query_options": ["gmt_refund_pay"],
        });
        let node = match self
            .call("alipay.trade.fastpay.refund.query", biz, false)
            .await?
        {
            Reply::Success(node) => node,
            Reply::Refused(r) if r.is("ACQ.TRADE_NOT_EXIST") => return Ok(RefundStatus::NotFound),
            Reply::Refused(r) => return Err(r.into_error()),
        };
        let r: RefundQueryAnswer = read_node(&node)?;
        let request_no = r.out_request_no.as_deref().filter(|s| !s.is_empty());
        if let Some(no) = request_no {
            if no != out_refund_no {
                return Err(PaymentError::BadAnswer("answer for another refund".into()));
            }
        }
        if let Some(amount) = r.refund_amount.as_deref().filter(|s| !s.is_empty()) {
            fen("refund_amount", amount)?;
        }
        let has_refund =
            request_no.is_some() || r.refund_amount.as_deref().is_some_and(|s| !s.is_empty());
        Ok(match r.refund_status.as_deref() {
            Some("REFUND_SUCCESS") => RefundStatus::Succeeded {
                refund_id: None,
                at: r.gmt_refund_pay.as_deref().and_then(parse_alipay_time),
            },
            _ if has_refund => RefundStatus::Processing,
            _ => RefundStatus::NotFound,
        })
    }

    /// An async notification (`trade_status_sync`), verified with Alipay's
    /// key before anything in it is believed. A notification carrying
    /// `out_biz_no` and `refund_fee` or `gmt_refund` is about a refund:
    /// Alipay notifies refunds as a trade status change (`TRADE_SUCCESS`
    /// after a partial refund, `TRADE_CLOSED` after a full one) naming the
    /// refund's `out_request_no` as `out_biz_no`, the trade's total refunded
    /// so far as `refund_fee` and the time as `gmt_refund`; it is sent once
    /// the refund succeeded → [`RefundStatus::Succeeded`]. Otherwise
    /// `trade_status`: `TRADE_SUCCESS` / `TRADE_FINISHED` → paid
    /// (`trade_no`, `total_amount`, `gmt_payment`), `TRADE_CLOSED` →
    /// closed, `WAIT_BUYER_PAY` → the payer is paying. `now` is unused:
    /// Alipay signs no timestamp to bound.
    fn verify_callback(
        &self,
        callback: &Callback<'_>,
        _now: Timestamp,
    ) -> Result<Notice, CallbackError> {
        let params = parse_form(callback.body)?;
        let sign = params
            .get("sign")
            .filter(|s| !s.is_empty())
            .ok_or(CallbackError::Missing("sign"))?;
        let sign_type = params
            .get("sign_type")
            .filter(|s| !s.is_empty())
            .ok_or(CallbackError::Missing("sign_type"))?;
        if sign_type != "RSA2" {
            return Err(CallbackError::Malformed(format!(
                "sign_type {}",
                sign_type.chars().take(16).collect::<String>()
            )));
        }
        if !keys::verify(
            &self.settings.alipay_public_key,
            notify_check_content(&params).as_bytes(),
            sign,
        ) {
            return Err(CallbackError::BadSignature);
        }
        read_notification(&self.settings, &params)
    }

    /// Alipay stops re-sending only when it reads exactly `success`;
    /// anything else is a failure and it retries (4m, 10m, 10m, 1h, 2h, 6h,
    /// 15h: 8 notifications in about 25 hours). The refusal is a 200 with
    /// `failure` rather than an error status: Alipay reads the body, not
    /// the status, and a 200 keeps CertHall's refusal apart from a proxy or
    /// server error in Alipay's notification log.
    fn answer(&self, accepted: bool) -> CallbackAnswer {
        CallbackAnswer {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: if accepted { NOTIFY_ACCEPTED } else { "failure" }.to_owned(),
        }
    }
}
