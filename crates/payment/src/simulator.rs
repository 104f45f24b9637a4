//! Demo mode's stand-in for WeChat Pay's servers (演示收银台).
//!
//! CertHall in demo mode runs the real [`WechatPay`](crate::wechat::WechatPay)
//! adapter against this simulator, mounted at `/dev/wechatpay`: it checks
//! the merchant's `Authorization` signature on every request as WeChat Pay
//! does, keeps trades and refunds in a [`SimulatorLedger`] (the database in
//! CertHall, so every process sees them), and signs every answer with the
//! demo platform key. When the demo cashier's 支付成功 is pressed,
//! [`WechatSimulator::pay`] marks the trade paid and builds the
//! `TRANSACTION.SUCCESS` callback exactly as WeChat Pay would — the
//! transaction encrypted with AEAD_AES_256_GCM under the demo APIv3 key,
//! the body signed with the demo platform key, named by a `PUB_KEY_ID_…` —
//! for CertHall to post to its own callback route. Nothing marks an order
//! paid without that callback (or a query answer) passing the adapter's
//! verification.
//!
//! The demo keys are committed in `crates/payment/demo/` and are public:
//! they are only ever loaded in demo mode.
//!
//! Like WeChat Pay, the simulator sends no callback for a failed payment;
//! the failure is found by querying. A refund is `PROCESSING` when
//! requested and `SUCCESS` from the next query on.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use certhall_domain::Timestamp;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::Deserialize;
use serde_json::json;

use crate::wechat::{
    encrypt_resource, format_time, parse_authorization, request_message, PlatformKey,
    WechatSettings, MAX_SKEW_SECS,
};
use crate::{keys, PaymentError};

/// The demo merchant number.
pub const DEMO_MCH_ID: &str = "1900000109";
/// The demo AppID.
pub const DEMO_APP_ID: &str = "wxd930ea5d5a258f4f";
/// The demo merchant certificate serial.
pub const DEMO_MERCHANT_SERIAL: &str = "5DEF0DE70000000000000000000000000DE70001";
/// The demo WeChat Pay public key id (public-key mode).
pub const DEMO_PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0119000001092026120500000000000001";
/// The demo APIv3 key.
pub const DEMO_API_V3_KEY: &[u8; 32] = b"CertHallDemoApiV3Key0123456789ab";

const DEMO_MERCHANT_KEY: &str = include_str!("../demo/merchant_key.pem");
const DEMO_PLATFORM_KEY: &str = include_str!("../demo/platform_key.pem");

/// Where a simulated trade is (WeChat Pay's `trade_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimTradeState {
    /// `NOTPAY`.
    NotPay,
    /// `SUCCESS`.
    Success,
    /// `CLOSED`.
    Closed,
    /// `PAYERROR`.
    PayError,
    /// `REFUND` (paid, then refunded).
    Refund,
}

impl SimTradeState {
    /// WeChat Pay's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotPay => "NOTPAY",
            Self::Success => "SUCCESS",
            Self::Closed => "CLOSED",
            Self::PayError => "PAYERROR",
            Self::Refund => "REFUND",
        }
    }

    /// Reads WeChat Pay's name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::NotPay,
            Self::Success,
            Self::Closed,
            Self::PayError,
            Self::Refund,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }

    /// Shown on the demo cashier.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::NotPay => "待支付",
            Self::Success => "支付成功",
            Self::Closed => "已关闭",
            Self::PayError => "支付失败",
            Self::Refund => "已退款",
        }
    }
}

/// A simulated trade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTrade {
    /// The merchant's number.
    pub out_trade_no: String,
    /// What is paid for.
    pub description: String,
    /// Fen.
    pub amount_fen: i64,
    /// Where it is.
    pub state: SimTradeState,
    /// WeChat's number, once paid.
    pub transaction_id: Option<String>,
    /// Where the callback goes.
    pub notify_url: String,
    /// When created.
    pub created_at: Timestamp,
    /// When the QR code stops working.
    pub expires_at: Timestamp,
    /// When paid.
    pub paid_at: Option<Timestamp>,
}

/// A simulated refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRefund {
    /// The merchant's refund number.
    pub out_refund_no: String,
    /// The payment's number.
    pub out_trade_no: String,
    /// Fen refunded.
    pub amount_fen: i64,
    /// WeChat's refund number.
    pub refund_id: String,
    /// True once paid back.
    pub succeeded: bool,
    /// When requested.
    pub created_at: Timestamp,
    /// When paid back.
    pub succeeded_at: Option<Timestamp>,
}

/// Where the simulator keeps its trades (CertHall: the database).
#[async_trait]
pub trait SimulatorLedger: Send + Sync + fmt::Debug {
    /// A trade by number.
    async fn trade(&self, out_trade_no: &str) -> Result<Option<SimTrade>, String>;
    /// Adds a trade; false if the number exists.
    async fn insert_trade(&self, trade: &SimTrade) -> Result<bool, String>;
    /// Replaces a trade if it is still in state `from`; false otherwise.
    async fn update_trade(&self, trade: &SimTrade, from: SimTradeState) -> Result<bool, String>;
    /// A refund by number.
    async fn refund(&self, out_refund_no: &str) -> Result<Option<SimRefund>, String>;
    /// Adds a refund; false if the number exists.
    async fn insert_refund(&self, refund: &SimRefund) -> Result<bool, String>;
    /// Replaces a refund.
    async fn update_refund(&self, refund: &SimRefund) -> Result<(), String>;
}

/// A ledger in memory (tests).
#[derive(Debug, Default)]
pub struct MemoryLedger {
    trades: Mutex<HashMap<String, SimTrade>>,
    refunds: Mutex<HashMap<String, SimRefund>>,
}

fn poisoned<T>(_: T) -> String {
    "ledger lock poisoned".to_owned()
}

#[async_trait]
impl SimulatorLedger for MemoryLedger {
    async fn trade(&self, no: &str) -> Result<Option<SimTrade>, String> {
        Ok(self.trades.lock().map_err(poisoned)?.get(no).cloned())
    }
    async fn insert_trade(&self, trade: &SimTrade) -> Result<bool, String> {
        let mut t = self.trades.lock().map_err(poisoned)?;
        if t.contains_key(&trade.out_trade_no) {
            return Ok(false);
        }
        t.insert(trade.out_trade_no.clone(), trade.clone());
        Ok(true)
    }
    async fn update_trade(&self, trade: &SimTrade, from: SimTradeState) -> Result<bool, String> {
        let mut t = self.trades.lock().map_err(poisoned)?;
        match t.get_mut(&trade.out_trade_no) {
            Some(old) if old.state == from => {
                *old = trade.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn refund(&self, no: &str) -> Result<Option<SimRefund>, String> {
        Ok(self.refunds.lock().map_err(poisoned)?.get(no).cloned())
    }
    async fn insert_refund(&self, refund: &SimRefund) -> Result<bool, String> {
        let mut r = self.refunds.lock().map_err(poisoned)?;
        if r.contains_key(&refund.out_refund_no) {
            return Ok(false);
        }
        r.insert(refund.out_refund_no.clone(), refund.clone());
        Ok(true)
    }
    async fn update_refund(&self, refund: &SimRefund) -> Result<(), String> {
        self.refunds
            .lock()
            .map_err(poisoned)?
            .insert(refund.out_refund_no.clone(), refund.clone());
        Ok(())
    }
}

/// A request to the simulator (what reached `/dev/wechatpay/…`).
#[derive(Debug, Clone, Copy)]
pub struct SimRequest<'a> {
    /// `GET`, `POST`.
    pub method: &'a str,
    /// From `/v3/…`, with the query.
    pub path_and_query: &'a str,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// The simulator's answer, signed like WeChat Pay's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimResponse {
    /// Status.
    pub status: u16,
    /// `Wechatpay-*` headers and `Content-Type`.
    pub headers: Vec<(String, String)>,
    /// JSON (or empty for 204).
    pub body: String,
}

/// A callback ready to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCallback {
    /// Where to post it.
    pub url: String,
    /// Headers (`Wechatpay-*`, `Content-Type`).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

/// Why the demo cashier could not act.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// No such trade.
    #[error("no such trade")]
    NoTrade,
    /// The trade is not waiting for payment (its state, shown).
    #[error("trade is {0}")]
    NotPayable(&'static str),
    /// The QR code expired.
    #[error("QR code expired")]
    Expired,
    /// The ledger failed.
    #[error("ledger: {0}")]
    Ledger(String),
    /// Signing failed.
    #[error(transparent)]
    Payment(#[from] PaymentError),
}

/// The simulated WeChat Pay.
pub struct WechatSimulator {
    mch_id: String,
    app_id: String,
    merchant_serial: String,
    merchant_public: RsaPublicKey,
    platform_key: RsaPrivateKey,
    platform_key_id: String,
    api_v3_key: [u8; 32],
    cashier_base: String,
    notify_url: String,
    ledger: Arc<dyn SimulatorLedger>,
}

impl fmt::Debug for WechatSimulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatSimulator")
            .field("mch_id", &self.mch_id)
            .field("cashier_base", &self.cashier_base)
            .field("ledger", &self.ledger)
            .finish()
    }
}

/// The adapter settings that talk to the demo simulator at `endpoint`
/// (`http://host:port/dev/wechatpay`) with callbacks to `notify_url`.
pub fn demo_settings(endpoint: &str, notify_url: &str) -> Result<WechatSettings, PaymentError> {
    let platform = keys::private_key(DEMO_PLATFORM_KEY)?;
    Ok(WechatSettings {
        mch_id: DEMO_MCH_ID.into(),
        app_id: DEMO_APP_ID.into(),
        merchant_serial_no: DEMO_MERCHANT_SERIAL.into(),
        merchant_key: keys::private_key(DEMO_MERCHANT_KEY)?,
        api_v3_key: *DEMO_API_V3_KEY,
        platform_keys: vec![PlatformKey {
            id: DEMO_PUBLIC_KEY_ID.into(),
            key: RsaPublicKey::from(&platform),
        }],
        notify_url: notify_url.to_owned(),
        endpoint: endpoint.trim_end_matches('/').to_owned(),
    })
}

#[derive(Deserialize)]
struct NativeRequest {
    appid: String,
    mchid: String,
    description: String,
    out_trade_no: String,
    #[serde(default)]
    time_expire: Option<String>,
    notify_url: String,
    amount: NativeAmount,
}

#[derive(Deserialize)]
struct NativeAmount {
    total: i64,
}

#[derive(Deserialize)]
struct RefundRequest {
    out_trade_no: String,
    out_refund_no: String,
    amount: RefundAmount,
}

#[derive(Deserialize)]
struct RefundAmount {
    refund: i64,
    total: i64,
}

fn digits(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

impl WechatSimulator {
    /// The simulator with the committed demo keys; the QR codes it hands
    /// out point at `cashier_base` (`http://host:port/dev/cashier`), and
    /// its callbacks go only to `notify_url` (CertHall's own callback
    /// route): a payment asking for another `notify_url` is refused, so the
    /// public demo keys cannot turn the cashier into a way to make the
    /// server post somewhere else.
    pub fn demo(
        cashier_base: &str,
        notify_url: &str,
        ledger: Arc<dyn SimulatorLedger>,
    ) -> Result<Self, PaymentError> {
        let merchant = keys::private_key(DEMO_MERCHANT_KEY)?;
        Ok(Self {
            mch_id: DEMO_MCH_ID.into(),
            app_id: DEMO_APP_ID.into(),
            merchant_serial: DEMO_MERCHANT_SERIAL.into(),
            merchant_public: RsaPublicKey::from(&merchant),
            platform_key: keys::private_key(DEMO_PLATFORM_KEY)?,
            platform_key_id: DEMO_PUBLIC_KEY_ID.into(),
            api_v3_key: *DEMO_API_V3_KEY,
            cashier_base: cashier_base.trim_end_matches('/').to_owned(),
            notify_url: notify_url.to_owned(),
            ledger,
        })
    }

    /// A trade, for the cashier page.
    pub async fn trade(&self, out_trade_no: &str) -> Result<Option<SimTrade>, SimError> {
        self.ledger
            .trade(out_trade_no)
            .await
            .map_err(SimError::Ledger)
    }

    /// The `Wechatpay-*` headers WeChat Pay puts on a body it sends.
    pub fn sign_headers(
        &self,
        body: &str,
        now: Timestamp,
    ) -> Result<Vec<(String, String)>, PaymentError> {
        let timestamp = now.millis().div_euclid(1000).to_string();
        let nonce = keys::nonce(32);
        let signature = keys::sign(
            &self.platform_key,
            &crate::wechat::signed_message(&timestamp, &nonce, body.as_bytes()),
        )?;
        Ok(vec![
            ("Wechatpay-Timestamp".into(), timestamp),
            ("Wechatpay-Nonce".into(), nonce),
            ("Wechatpay-Signature".into(), signature),
            ("Wechatpay-Serial".into(), self.platform_key_id.clone()),
            ("Request-ID".into(), format!("08{}", digits(30))),
        ])
    }

    fn respond(&self, status: u16, body: String, now: Timestamp) -> SimResponse {
        let mut headers = self.sign_headers(&body, now).unwrap_or_default();
        if !body.is_empty() {
            headers.push(("Content-Type".into(), "application/json".into()));
        }
        SimResponse {
            status,
            headers,
            body,
        }
    }

    fn error(&self, status: u16, code: &str, message: &str, now: Timestamp) -> SimResponse {
        self.respond(
            status,
            json!({ "code": code, "message": message }).to_string(),
            now,
        )
    }

    /// Checks the merchant's signature as WeChat Pay does.
    fn authenticate(&self, req: &SimRequest<'_>, now: Timestamp) -> Result<(), &'static str> {
        let auth = req
            .authorization
            .and_then(parse_authorization)
            .ok_or("Authorization 头缺失或格式错误")?;
        if auth.mchid != self.mch_id {
            return Err("商户号与签名不符");
        }
        if auth.serial_no != self.merchant_serial {
            return Err("商户证书序列号错误");
        }
        if (now.millis().div_euclid(1000) - auth.timestamp).abs() > MAX_SKEW_SECS {
            return Err("请求时间戳超出允许范围");
        }
        let body = std::str::from_utf8(req.body).map_err(|_| "请求体不是 UTF-8")?;
        let message = request_message(
            req.method,
            req.path_and_query,
            auth.timestamp,
            &auth.nonce_str,
            body,
        );
        if !keys::verify(&self.merchant_public, message.as_bytes(), &auth.signature) {
            return Err("签名错误");
        }
        Ok(())
    }

    /// Answers one API request.
    pub async fn handle(&self, req: SimRequest<'_>, now: Timestamp) -> SimResponse {
        if let Err(why) = self.authenticate(&req, now) {
            return self.error(401, "SIGN_ERROR", why, now);
        }
        let (path, _query) = req
            .path_and_query
            .split_once('?')
            .unwrap_or((req.path_and_query, ""));
        let result = match (req.method, path) {
            ("POST", "/v3/pay/transactions/native") => self.native(req.body, now).await,
            ("POST", "/v3/refund/domestic/refunds") => self.create_refund(req.body, now).await,
            ("GET", p) if p.starts_with("/v3/refund/domestic/refunds/") => {
                self.query_refund(&p["/v3/refund/domestic/refunds/".len()..], now)
                    .await
            }
            ("GET", p) if p.starts_with("/v3/pay/transactions/out-trade-no/") => {
                self.query(&p["/v3/pay/transactions/out-trade-no/".len()..], now)
                    .await
            }
            ("POST", p)
                if p.starts_with("/v3/pay/transactions/out-trade-no/") && p.ends_with("/close") =>
            {
                let no = &p["/v3/pay/transactions/out-trade-no/".len()..p.len() - "/close".len()];
                self.close(no, now).await
            }
            _ => Ok(self.error(404, "NOT_FOUND", "接口不存在", now)),
        };
        result.unwrap_or_else(|e| self.error(500, "SYSTEM_ERROR", &format!("系统错误：{e}"), now))
    }

    async fn native(&self, body: &[u8], now: Timestamp) -> Result<SimResponse, String> {
        let Ok(r) = serde_json::from_slice::<NativeRequest>(body) else {
            return Ok(self.error(400, "PARAM_ERROR", "参数错误", now));
        };
        if r.mchid != self.mch_id || r.appid != self.app_id {
            return Ok(self.error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配", now));
        }
        if r.amount.total <= 0 {
            return Ok(self.error(400, "PARAM_ERROR", "订单金额必须大于0", now));
        }
        if r.notify_url != self.notify_url {
            return Ok(self.error(
                400,
                "PARAM_ERROR",
                "notify_url 不是本商户登记的回调地址",
                now,
            ));
        }
        let expires_at = r
            .time_expire
            .as_deref()
            .and_then(crate::wechat::parse_time)
            .unwrap_or(now.plus(std::time::Duration::from_secs(2 * 3600)));
        let trade = SimTrade {
            out_trade_no: r.out_trade_no.clone(),
            description: r.description,
            amount_fen: r.amount.total,
            state: SimTradeState::NotPay,
            transaction_id: None,
            notify_url: r.notify_url,
            created_at: now,
            expires_at,
            paid_at: None,
        };
        if !self.ledger.insert_trade(&trade).await? {
            // The same number again: the same QR code if nothing changed,
            // else a refusal (WeChat Pay never lets a number be reused).
            let old = self.ledger.trade(&r.out_trade_no).await?;
            match old {
                Some(o)
                    if o.amount_fen == trade.amount_fen
                        && o.description == trade.description
                        && o.state == SimTradeState::NotPay => {}
                Some(o) if o.state == SimTradeState::Closed => {
                    return Ok(self.error(400, "ORDER_CLOSED", "订单已关闭", now));
                }
                _ => {
                    return Ok(self.error(403, "OUT_TRADE_NO_USED", "商户订单号重复", now));
                }
            }
        }
        let code_url = self.code_url(&r.out_trade_no);
        Ok(self.respond(200, json!({ "code_url": code_url }).to_string(), now))
    }

    /// The QR code's content for a trade: its page at the demo cashier.
    pub fn code_url(&self, out_trade_no: &str) -> String {
        format!("{}/{out_trade_no}", self.cashier_base)
    }

    fn transaction_json(&self, t: &SimTrade) -> serde_json::Value {
        let mut v = json!({
            "appid": self.app_id,
            "mchid": self.mch_id,
            "out_trade_no": t.out_trade_no,
            "trade_state": t.state.as_str(),
            "trade_state_desc": match t.state {
                SimTradeState::NotPay => "订单未支付",
                SimTradeState::Success => "支付成功",
                SimTradeState::Closed => "订单已关闭",
                SimTradeState::PayError => "演示：付款失败（银行卡余额不足）",
                SimTradeState::Refund => "订单发生过退款",
            },
            "amount": { "total": t.amount_fen, "currency": "CNY", "payer_currency": "CNY" },
        });
        if let Some(id) = &t.transaction_id {
            v["transaction_id"] = json!(id);
            v["trade_type"] = json!("NATIVE");
            v["bank_type"] = json!("OTHERS");
            v["payer"] = json!({ "openid": "oDemoPayerOpenid0000000000001" });
            v["amount"]["payer_total"] = json!(t.amount_fen);
        }
        if let Some(at) = t.paid_at {
            v["success_time"] = json!(format_time(at));
        }
        v
    }

    async fn query(&self, no: &str, now: Timestamp) -> Result<SimResponse, String> {
        match self.ledger.trade(no).await? {
            None => Ok(self.error(404, "ORDER_NOT_EXIST", "订单不存在", now)),
            Some(t) => Ok(self.respond(200, self.transaction_json(&t).to_string(), now)),
        }
    }

    async fn close(&self, no: &str, now: Timestamp) -> Result<SimResponse, String> {
        let Some(t) = self.ledger.trade(no).await? else {
            return Ok(self.error(404, "ORDER_NOT_EXIST", "订单不存在", now));
        };
        match t.state {
            SimTradeState::Success | SimTradeState::Refund => {
                Ok(self.error(400, "ORDERPAID", "订单已支付", now))
            }
            SimTradeState::Closed => Ok(self.respond(204, String::new(), now)),
            from @ (SimTradeState::NotPay | SimTradeState::PayError) => {
                let closed = SimTrade {
                    state: SimTradeState::Closed,
                    ..t
                };
                if self.ledger.update_trade(&closed, from).await? {
                    Ok(self.respond(204, String::new(), now))
                } else {
                    // Paid at this very moment.
                    Ok(self.error(400, "ORDERPAID", "订单已支付", now))
                }
            }
        }
    }

    fn refund_json(&self, r: &SimRefund, total: i64) -> serde_json::Value {
        let mut v = json!({
            "refund_id": r.refund_id,
            "out_refund_no": r.out_refund_no,
            "out_trade_no": r.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": format_time(r.created_at),
            "status": if r.succeeded { "SUCCESS" } else { "PROCESSING" },
            "amount": { "refund": r.amount_fen, "total": total, "payer_refund": r.amount_fen,
                        "payer_total": total, "currency": "CNY" },
        });
        if let Some(at) = r.succeeded_at {
            v["success_time"] = json!(format_time(at));
        }
        v
    }

    async fn create_refund(&self, body: &[u8], now: Timestamp) -> Result<SimResponse, String> {
        let Ok(r) = serde_json::from_slice::<RefundRequest>(body) else {
            return Ok(self.error(400, "PARAM_ERROR", "参数错误", now));
        };
        let Some(t) = self.ledger.trade(&r.out_trade_no).await? else {
            return Ok(self.error(404, "RESOURCE_NOT_EXISTS", "订单不存在", now));
        };
        if !matches!(t.state, SimTradeState::Success | SimTradeState::Refund) {
            return Ok(self.error(400, "INVALID_REQUEST", "订单未支付，不能退款", now));
        }
        if r.amount.total != t.amount_fen || r.amount.refund <= 0 || r.amount.refund > t.amount_fen
        {
            return Ok(self.error(400, "INVALID_REQUEST", "退款金额或订单金额不正确", now));
        }
        let refund = SimRefund {
            out_refund_no: r.out_refund_no.clone(),
            out_trade_no: r.out_trade_no,
            amount_fen: r.amount.refund,
            refund_id: format!("5030{}", digits(25)),
            succeeded: false,
            created_at: now,
            succeeded_at: None,
        };
        if !self.ledger.insert_refund(&refund).await? {
            // The same refund number again: the refund as it stands.
            let old = self
                .ledger
                .refund(&r.out_refund_no)
                .await?
                .ok_or("refund vanished")?;
            return Ok(self.respond(200, self.refund_json(&old, t.amount_fen).to_string(), now));
        }
        let refunded = SimTrade {
            state: SimTradeState::Refund,
            ..t.clone()
        };
        self.ledger.update_trade(&refunded, t.state).await?;
        Ok(self.respond(
            200,
            self.refund_json(&refund, t.amount_fen).to_string(),
            now,
        ))
    }

    async fn query_refund(&self, no: &str, now: Timestamp) -> Result<SimResponse, String> {
        let Some(mut r) = self.ledger.refund(no).await? else {
            return Ok(self.error(404, "RESOURCE_NOT_EXISTS", "退款单不存在", now));
        };
        if !r.succeeded {
            // The simulated bank pays back by the next query.
            r.succeeded = true;
            r.succeeded_at = Some(now);
            self.ledger.update_refund(&r).await?;
        }
        let total = self
            .ledger
            .trade(&r.out_trade_no)
            .await?
            .map_or(r.amount_fen, |t| t.amount_fen);
        Ok(self.respond(200, self.refund_json(&r, total).to_string(), now))
    }

    /// The demo cashier's buttons: 支付成功 marks the trade paid and
    /// returns the signed `TRANSACTION.SUCCESS` callback to post; 支付失败
    /// marks it failed (no callback, as with WeChat Pay).
    pub async fn pay(
        &self,
        out_trade_no: &str,
        success: bool,
        now: Timestamp,
    ) -> Result<Option<SignedCallback>, SimError> {
        let t = self
            .ledger
            .trade(out_trade_no)
            .await
            .map_err(SimError::Ledger)?
            .ok_or(SimError::NoTrade)?;
        if t.state != SimTradeState::NotPay {
            return Err(SimError::NotPayable(t.state.label_zh()));
        }
        if now >= t.expires_at {
            return Err(SimError::Expired);
        }
        let settled = if success {
            SimTrade {
                state: SimTradeState::Success,
                transaction_id: Some(format!("4200{}", digits(24))),
                paid_at: Some(now),
                ..t.clone()
            }
        } else {
            SimTrade {
                state: SimTradeState::PayError,
                ..t.clone()
            }
        };
        if !self
            .ledger
            .update_trade(&settled, SimTradeState::NotPay)
            .await
            .map_err(SimError::Ledger)?
        {
            return Err(SimError::NotPayable("已处理"));
        }
        if !success {
            return Ok(None);
        }
        let plaintext = self.transaction_json(&settled).to_string();
        Ok(Some(self.sign_callback(
            &settled.notify_url,
            "TRANSACTION.SUCCESS",
            "支付成功",
            "transaction",
            plaintext.as_bytes(),
            now,
        )?))
    }

    /// A callback in WeChat Pay's format: the resource encrypted under the
    /// APIv3 key, the body signed with the platform key.
    pub fn sign_callback(
        &self,
        url: &str,
        event_type: &str,
        summary: &str,
        original_type: &str,
        plaintext: &[u8],
        now: Timestamp,
    ) -> Result<SignedCallback, PaymentError> {
        let resource = encrypt_resource(
            &self.api_v3_key,
            &keys::nonce(12),
            original_type,
            original_type,
            plaintext,
        )?;
        let body = json!({
            "id": format!("{}-{}-{}", digits(8), digits(4), digits(12)),
            "create_time": format_time(now),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": resource,
        })
        .to_string();
        let mut headers = self.sign_headers(&body, now)?;
        headers.push(("Content-Type".into(), "application/json".into()));
        Ok(SignedCallback {
            url: url.to_owned(),
            headers,
            body,
        })
    }
}
