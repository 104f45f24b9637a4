//! WeChat Pay API v3 (微信支付 APIv3), Native payment (扫码支付): the payer
//! scans a QR code CertHall shows.
//!
//! What the adapter implements, following WeChat Pay's 签名生成 / 签名验证 /
//! 回调报文解密 documentation (<https://pay.weixin.qq.com/doc/v3/merchant/>):
//!
//! - **Request signing.** Every request carries
//!   `Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",
//!   signature="…",timestamp="…",serial_no="…"`, where `signature` is
//!   Base64(SHA256withRSA(merchant key, `METHOD\nURL\ntimestamp\nnonce\nbody\n`))
//!   and URL is the path with its query ([`request_message`],
//!   [`authorization`]). `serial_no` is the merchant API certificate's
//!   serial.
//! - **Answer and callback verification.** WeChat Pay signs
//!   `timestamp\nnonce\nbody\n` with its platform key and names the key in
//!   `Wechatpay-Serial`: a platform certificate's serial (hex) or, in
//!   public-key mode, a `PUB_KEY_ID_…` id ([`verify_signed`]). The
//!   timestamp must be within five minutes of ours. Signatures starting with
//!   `WECHATPAY/SIGNTEST/` are WeChat's probes, sent to check that merchants
//!   really verify: they are refused ([`CallbackError::Probe`]).
//! - **Callback resources** are encrypted with AEAD_AES_256_GCM under the
//!   32-byte APIv3 key, with `resource.nonce` (12 bytes) and
//!   `resource.associated_data` as AAD; the ciphertext is Base64 of the
//!   encrypted bytes followed by the 16-byte tag ([`decrypt_resource`]).
//!   Only then is the transaction read, and its `mchid` and `appid` must be
//!   ours.
//! - **Endpoints.** `POST /v3/pay/transactions/native` (→ `code_url`),
//!   `GET /v3/pay/transactions/out-trade-no/{no}?mchid=…`,
//!   `POST /v3/pay/transactions/out-trade-no/{no}/close` (204),
//!   `POST /v3/refund/domestic/refunds`,
//!   `GET /v3/refund/domestic/refunds/{out_refund_no}`.
//! - **Answers to callbacks.** 200 with no body when accepted; otherwise
//!   a 4xx/5xx with `{"code":"FAIL","message":"失败"}`, and WeChat Pay
//!   retries (15 s, 15 s, 30 s, 3 min … up to 24 h).
//!
//! The APIv3 key and the merchant key never appear in errors, logs or
//! `Debug` output.
//!
//! This module holds the configuration and the HTTP client; the wire
//! format (signed messages, the callback resource, the bodies, times) is
//! in `protocol`, re-exported here.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use certhall_domain::{Clock, Timestamp};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::Deserialize;
use serde_json::json;

use crate::{
    keys, Callback, CallbackAnswer, CallbackError, Channel, NewPayment, NewRefund, Notice,
    PaymentError, PaymentProvider, QrPayment, RefundStatus, TradeState,
};

mod protocol;

pub use protocol::{
    authorization, decrypt_resource, encrypt_resource, format_time, parse_authorization,
    parse_time, read_notification, request_message, signed_message, verify_signed,
    AuthorizationFields, Notification, Refund, Resource, Transaction, TransactionAmount,
    AUTH_SCHEME, MAX_SKEW_SECS, SIGNTEST_PREFIX,
};

/// WeChat Pay's API host.
pub const DEFAULT_ENDPOINT: &str = "https://api.mch.weixin.qq.com";

/// The `[payment.wechat]` section: where the merchant's keys are.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatConfig {
    /// 商户号.
    pub mch_id: String,
    /// The AppID bound to the merchant (公众号 / 小程序 / 移动应用).
    pub app_id: String,
    /// Serial of the merchant API certificate (商户API证书序列号).
    pub merchant_serial_no: String,
    /// The merchant API private key (`apiclient_key.pem`).
    pub merchant_key_file: PathBuf,
    /// A file holding the 32-character APIv3 key (APIv3密钥).
    pub api_v3_key_file: PathBuf,
    /// Public-key mode: the 微信支付公钥 id (`PUB_KEY_ID_…`).
    #[serde(default)]
    pub platform_public_key_id: Option<String>,
    /// Public-key mode: the 微信支付公钥 file (`pub_key.pem`).
    #[serde(default)]
    pub platform_public_key_file: Option<PathBuf>,
    /// Certificate mode: platform certificates (平台证书), each named by its
    /// serial. Both modes may be configured during a switch-over.
    #[serde(default)]
    pub platform_certificate_files: Vec<PathBuf>,
    /// Where WeChat Pay posts callbacks (CertHall's
    /// `/api/v1/payment/notify/wechat`, public HTTPS).
    pub notify_url: String,
    /// The API host; [`DEFAULT_ENDPOINT`] unless set.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
}

fn default_endpoint() -> String {
    DEFAULT_ENDPOINT.to_owned()
}

impl fmt::Debug for WechatConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatConfig")
            .field("mch_id", &self.mch_id)
            .field("app_id", &self.app_id)
            .field("merchant_serial_no", &self.merchant_serial_no)
            .field("merchant_key_file", &self.merchant_key_file)
            .field("api_v3_key_file", &self.api_v3_key_file)
            .field("platform_public_key_id", &self.platform_public_key_id)
            .field("platform_public_key_file", &self.platform_public_key_file)
            .field(
                "platform_certificate_files",
                &self.platform_certificate_files,
            )
            .field("notify_url", &self.notify_url)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl WechatConfig {
    /// Reads the key files into [`WechatSettings`].
    pub fn load(&self) -> Result<WechatSettings, PaymentError> {
        let mut platform_keys = Vec::new();
        match (&self.platform_public_key_id, &self.platform_public_key_file) {
            (Some(id), Some(file)) => {
                if !id.starts_with("PUB_KEY_ID_") {
                    return Err(PaymentError::Config(
                        "platform_public_key_id must start with PUB_KEY_ID_".into(),
                    ));
                }
                platform_keys.push(PlatformKey {
                    id: id.clone(),
                    key: keys::public_key(&keys::read_file(file)?)?,
                });
            }
            (None, None) => {}
            _ => {
                return Err(PaymentError::Config(
                    "platform_public_key_id and platform_public_key_file go together".into(),
                ))
            }
        }
        for file in &self.platform_certificate_files {
            let (serial, key) = keys::certificate(&keys::read_file(file)?)?;
            platform_keys.push(PlatformKey { id: serial, key });
        }
        if platform_keys.is_empty() {
            return Err(PaymentError::Config(
                "configure the WeChat Pay public key (platform_public_key_id + _file) or platform certificates".into(),
            ));
        }
        let api_v3_key = api_v3_key(keys::read_file(&self.api_v3_key_file)?.trim())?;
        WechatSettings {
            mch_id: self.mch_id.clone(),
            app_id: self.app_id.clone(),
            merchant_serial_no: self.merchant_serial_no.clone(),
            merchant_key: keys::private_key(&keys::read_file(&self.merchant_key_file)?)?,
            api_v3_key,
            platform_keys,
            notify_url: self.notify_url.clone(),
            endpoint: self.endpoint.trim_end_matches('/').to_owned(),
        }
        .checked()
    }
}

/// The APIv3 key: exactly 32 bytes of text.
pub fn api_v3_key(text: &str) -> Result<[u8; 32], PaymentError> {
    text.as_bytes()
        .try_into()
        .map_err(|_| PaymentError::Config("the APIv3 key must be exactly 32 characters".into()))
}

/// A key WeChat Pay signs with, and the name `Wechatpay-Serial` gives it.
#[derive(Clone)]
pub struct PlatformKey {
    /// Certificate serial (upper-case hex) or `PUB_KEY_ID_…`.
    pub id: String,
    /// The key.
    pub key: RsaPublicKey,
}

impl fmt::Debug for PlatformKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformKey").field("id", &self.id).finish()
    }
}

/// Loaded settings of the adapter.
#[derive(Clone)]
pub struct WechatSettings {
    /// 商户号.
    pub mch_id: String,
    /// AppID.
    pub app_id: String,
    /// The merchant certificate's serial.
    pub merchant_serial_no: String,
    /// The merchant's signing key.
    pub merchant_key: RsaPrivateKey,
    /// The APIv3 key.
    pub api_v3_key: [u8; 32],
    /// Keys WeChat Pay signs answers and callbacks with.
    pub platform_keys: Vec<PlatformKey>,
    /// Callback URL.
    pub notify_url: String,
    /// API host, no trailing slash.
    pub endpoint: String,
}

impl fmt::Debug for WechatSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatSettings")
            .field("mch_id", &self.mch_id)
            .field("app_id", &self.app_id)
            .field("merchant_serial_no", &self.merchant_serial_no)
            .field("merchant_key", &"***")
            .field("api_v3_key", &"***")
            .field("platform_keys", &self.platform_keys)
            .field("notify_url", &self.notify_url)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl WechatSettings {
    fn checked(self) -> Result<Self, PaymentError> {
        if self.mch_id.is_empty() || !self.mch_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PaymentError::Config("mch_id must be digits".into()));
        }
        if self.app_id.is_empty() || self.merchant_serial_no.is_empty() {
            return Err(PaymentError::Config(
                "app_id and merchant_serial_no are required".into(),
            ));
        }
        if !self.notify_url.starts_with("https://") && !self.notify_url.starts_with("http://") {
            return Err(PaymentError::Config("notify_url must be a URL".into()));
        }
        Ok(self)
    }

    fn platform_key(&self, id: &str) -> Option<&PlatformKey> {
        self.platform_keys.iter().find(|k| k.id == id)
    }

    /// True in public-key mode (then requests name the key in
    /// `Wechatpay-Serial`, so answers are signed with it).
    fn public_key_id(&self) -> Option<&str> {
        self.platform_keys
            .iter()
            .map(|k| k.id.as_str())
            .find(|id| id.starts_with("PUB_KEY_ID_"))
    }
}

/// An error answer's body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The WeChat Pay API v3 adapter.
pub struct WechatPay {
    settings: Arc<WechatSettings>,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    demo: bool,
}

impl fmt::Debug for WechatPay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatPay")
            .field("settings", &self.settings)
            .field("demo", &self.demo)
            .finish()
    }
}

/// A verified answer.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl WechatPay {
    /// An adapter with `settings`, reading the time from `clock`.
    pub fn new(settings: WechatSettings, clock: Arc<dyn Clock>) -> Result<Self, PaymentError> {
        let client = crate::http_client()?;
        Ok(Self {
            settings: Arc::new(settings.checked()?),
            clock,
            client,
            demo: false,
        })
    }

    /// The same adapter, marked as talking to the demo simulator (only
    /// changes what pages say about the channel).
    pub fn into_demo(mut self) -> Self {
        self.demo = true;
        self
    }

    /// True when it talks to the demo simulator.
    pub fn is_demo(&self) -> bool {
        self.demo
    }

    /// The settings (keys masked in `Debug`).
    pub fn settings(&self) -> &WechatSettings {
        &self.settings
    }

    /// Sends a signed request and verifies the answer's signature (2xx
    /// answers only; an error answer's content is only reported).
    async fn call(
        &self,
        method: reqwest::Method,
        url_path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Answer, PaymentError> {
        let body_text = body.map(|b| b.to_string()).unwrap_or_default();
        let now = self.clock.now();
        let timestamp = now.millis().div_euclid(1000);
        let nonce = keys::nonce(32);
        let auth = authorization(
            &self.settings,
            method.as_str(),
            url_path,
            timestamp,
            &nonce,
            &body_text,
        )?;
        let mut req = self
            .client
            .request(
                method.clone(),
                format!("{}{url_path}", self.settings.endpoint),
            )
            .header("Authorization", auth)
            .header("Accept", "application/json");
        if let Some(id) = self.settings.public_key_id() {
            req = req.header("Wechatpay-Serial", id);
        }
        if method != reqwest::Method::GET {
            req = req
                .header("Content-Type", "application/json")
                .body(body_text);
        }
        let res = req
            .send()
            .await
            .map_err(|e| PaymentError::Transport(e.without_url().to_string()))?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res
            .bytes()
            .await
            .map_err(|e| PaymentError::Transport(e.without_url().to_string()))?
            .to_vec();
        if !(200..300).contains(&status) {
            let err: ErrorBody = serde_json::from_slice(&bytes).unwrap_or(ErrorBody {
                code: format!("HTTP_{status}"),
                message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            });
            return Err(PaymentError::Provider {
                code: err.code,
                message: err.message,
            });
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        verify_signed(
            header,
            &bytes,
            self.clock.now(),
            &self.settings.platform_keys,
        )
        .map_err(|e| PaymentError::BadAnswer(format!("answer signature: {e}")))?;
        Ok(Answer {
            status,
            body: bytes,
        })
    }

    fn json<T: for<'de> Deserialize<'de>>(answer: &Answer) -> Result<T, PaymentError> {
        serde_json::from_slice(&answer.body)
            .map_err(|e| PaymentError::BadAnswer(format!("answer body: {e}")))
    }
}

fn path_segment(text: &str) -> Result<&str, PaymentError> {
    if !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*'))
    {
        Ok(text)
    } else {
        Err(PaymentError::Config(format!("bad trade number {text:?}")))
    }
}

#[async_trait]
impl PaymentProvider for WechatPay {
    fn channel(&self) -> Channel {
        Channel::Wechat
    }

    async fn create(&self, payment: &NewPayment<'_>) -> Result<QrPayment, PaymentError> {
        let mut body = json!({
            "appid": self.settings.app_id,
            "mchid": self.settings.mch_id,
            "description": payment.description.chars().take(127).collect::<String>(),
            "out_trade_no": path_segment(payment.out_trade_no)?,
            "time_expire": format_time(payment.expires_at),
            "notify_url": self.settings.notify_url,
            "amount": { "total": payment.amount_fen, "currency": "CNY" },
        });
        if let Some(ip) = payment.payer_ip {
            body["scene_info"] = json!({ "payer_client_ip": ip });
        }
        let answer = self
            .call(
                reqwest::Method::POST,
                "/v3/pay/transactions/native",
                Some(body),
            )
            .await?;
        #[derive(Deserialize)]
        struct Created {
            code_url: String,
        }
        let created: Created = Self::json(&answer)?;
        Ok(QrPayment {
            code_url: created.code_url,
        })
    }

    async fn query(&self, out_trade_no: &str) -> Result<TradeState, PaymentError> {
        let path = format!(
            "/v3/pay/transactions/out-trade-no/{}?mchid={}",
            path_segment(out_trade_no)?,
            self.settings.mch_id
        );
        let answer = match self.call(reqwest::Method::GET, &path, None).await {
            Ok(a) => a,
            Err(PaymentError::Provider { code, .. }) if code == "ORDER_NOT_EXIST" => {
                return Ok(TradeState::NotFound)
            }
            Err(e) => return Err(e),
        };
        let t: Transaction = Self::json(&answer)?;
        if t.out_trade_no != out_trade_no || t.mchid != self.settings.mch_id {
            return Err(PaymentError::BadAnswer("answer for another trade".into()));
        }
        t.state().map_err(PaymentError::BadAnswer)
    }

    async fn close(&self, out_trade_no: &str) -> Result<(), PaymentError> {
        let path = format!(
            "/v3/pay/transactions/out-trade-no/{}/close",
            path_segment(out_trade_no)?
        );
        match self
            .call(
                reqwest::Method::POST,
                &path,
                Some(json!({ "mchid": self.settings.mch_id })),
            )
            .await
        {
            Ok(a) if a.status == 204 || a.status == 200 => Ok(()),
            Ok(a) => Err(PaymentError::BadAnswer(format!(
                "close answered {}",
                a.status
            ))),
            Err(PaymentError::Provider { code, .. })
                if code == "ORDERPAID" || code == "ORDER_PAID" =>
            {
                Err(PaymentError::AlreadyPaid)
            }
            // Closed before (by us, or by WeChat Pay at expiry): what we
            // wanted.
            Err(PaymentError::Provider { code, .. }) if code == "ORDER_CLOSED" => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn refund(&self, refund: &NewRefund<'_>) -> Result<RefundStatus, PaymentError> {
        let body = json!({
            "out_trade_no": path_segment(refund.out_trade_no)?,
            "out_refund_no": path_segment(refund.out_refund_no)?,
            "reason": refund.reason.chars().take(80).collect::<String>(),
            "notify_url": self.settings.notify_url,
            "amount": { "refund": refund.refund_fen, "total": refund.total_fen, "currency": "CNY" },
        });
        let answer = self
            .call(
                reqwest::Method::POST,
                "/v3/refund/domestic/refunds",
                Some(body),
            )
            .await?;
        let r: Refund = Self::json(&answer)?;
        r.status().map_err(PaymentError::BadAnswer)
    }

    async fn query_refund(
        &self,
        _out_trade_no: &str,
        out_refund_no: &str,
    ) -> Result<RefundStatus, PaymentError> {
        let path = format!(
            "/v3/refund/domestic/refunds/{}",
            path_segment(out_refund_no)?
        );
        let answer = match self.call(reqwest::Method::GET, &path, None).await {
            Ok(a) => a,
            Err(PaymentError::Provider { code, .. }) if code == "RESOURCE_NOT_EXISTS" => {
                return Ok(RefundStatus::NotFound)
            }
            Err(e) => return Err(e),
        };
        let r: Refund = Self::json(&answer)?;
        r.status().map_err(PaymentError::BadAnswer)
    }

    fn verify_callback(
        &self,
        callback: &Callback<'_>,
        now: Timestamp,
    ) -> Result<Notice, CallbackError> {
        verify_signed(
            |name| callback.header(name).map(str::to_owned),
            callback.body,
            now,
            &self.settings.platform_keys,
        )?;
        read_notification(&self.settings, callback.body)
    }

    fn answer(&self, accepted: bool) -> CallbackAnswer {
        if accepted {
            CallbackAnswer {
                status: 200,
                content_type: "application/json",
                body: String::new(),
            }
        } else {
            CallbackAnswer {
                status: 400,
                content_type: "application/json",
                body: json!({ "code": "FAIL", "message": "失败" }).to_string(),
            }
        }
    }
}

/// Looks a platform key up by id (for tests and the simulator).
pub fn find_key<'a>(settings: &'a WechatSettings, id: &str) -> Option<&'a PlatformKey> {
    settings.platform_key(id)
}
