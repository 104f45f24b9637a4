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

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use certhall_domain::{Clock, Timestamp};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::{
    keys, Callback, CallbackAnswer, CallbackError, Channel, NewPayment, NewRefund, Notice,
    PaidTrade, PaymentError, PaymentNotice, PaymentProvider, QrPayment, RefundNotice, RefundStatus,
    TradeState,
};

/// WeChat Pay's API host.
pub const DEFAULT_ENDPOINT: &str = "https://api.mch.weixin.qq.com";

/// The `Authorization` scheme of API v3 with RSA keys.
pub const AUTH_SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

/// Signatures starting with this are WeChat Pay's verification probes.
pub const SIGNTEST_PREFIX: &str = "WECHATPAY/SIGNTEST/";

/// How far a signed timestamp may be from ours.
pub const MAX_SKEW_SECS: i64 = 300;

const TIMEOUT: Duration = Duration::from_secs(10);

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

fn read(path: &std::path::Path) -> Result<String, PaymentError> {
    std::fs::read_to_string(path)
        .map_err(|e| PaymentError::Config(format!("cannot read {}: {e}", path.display())))
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
                    key: keys::public_key(&read(file)?)?,
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
            let (serial, key) = keys::certificate(&read(file)?)?;
            platform_keys.push(PlatformKey { id: serial, key });
        }
        if platform_keys.is_empty() {
            return Err(PaymentError::Config(
                "configure the WeChat Pay public key (platform_public_key_id + _file) or platform certificates".into(),
            ));
        }
        let api_v3_key = api_v3_key(read(&self.api_v3_key_file)?.trim())?;
        WechatSettings {
            mch_id: self.mch_id.clone(),
            app_id: self.app_id.clone(),
            merchant_serial_no: self.merchant_serial_no.clone(),
            merchant_key: keys::private_key(&read(&self.merchant_key_file)?)?,
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

/// `METHOD\nURL\ntimestamp\nnonce\nbody\n`: what the merchant signs.
pub fn request_message(method: &str, url: &str, timestamp: i64, nonce: &str, body: &str) -> String {
    format!("{method}\n{url}\n{timestamp}\n{nonce}\n{body}\n")
}

/// The `Authorization` header of a request.
pub fn authorization(
    settings: &WechatSettings,
    method: &str,
    url: &str,
    timestamp: i64,
    nonce: &str,
    body: &str,
) -> Result<String, PaymentError> {
    let signature = keys::sign(
        &settings.merchant_key,
        request_message(method, url, timestamp, nonce, body).as_bytes(),
    )?;
    Ok(format!(
        "{AUTH_SCHEME} mchid=\"{}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"{}\"",
        settings.mch_id, settings.merchant_serial_no
    ))
}

/// The fields of a request's `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationFields {
    /// 商户号.
    pub mchid: String,
    /// Request nonce.
    pub nonce_str: String,
    /// Base64 signature.
    pub signature: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// Merchant certificate serial.
    pub serial_no: String,
}

/// Reads an `Authorization` header (what WeChat Pay — and the simulator —
/// does with a merchant's request).
pub fn parse_authorization(header: &str) -> Option<AuthorizationFields> {
    let rest = header.strip_prefix(AUTH_SCHEME)?.trim_start();
    let get = |name: &str| -> Option<String> {
        rest.split(',').find_map(|part| {
            let (k, v) = part.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"').to_owned())
        })
    };
    Some(AuthorizationFields {
        mchid: get("mchid")?,
        nonce_str: get("nonce_str")?,
        signature: get("signature")?,
        timestamp: get("timestamp")?.parse().ok()?,
        serial_no: get("serial_no")?,
    })
}

/// `timestamp\nnonce\nbody\n`: what WeChat Pay signs in answers and
/// callbacks.
pub fn signed_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    m.extend_from_slice(timestamp.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(nonce.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// Checks the `Wechatpay-*` headers over `body`: a probe is refused, the
/// timestamp must be within five minutes of `now`, the key named by
/// `Wechatpay-Serial` must be configured and must have signed the message.
pub fn verify_signed(
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
    now: Timestamp,
    keys: &[PlatformKey],
) -> Result<(), CallbackError> {
    let signature =
        header("wechatpay-signature").ok_or(CallbackError::Missing("Wechatpay-Signature"))?;
    if signature.starts_with(SIGNTEST_PREFIX) {
        return Err(CallbackError::Probe);
    }
    let timestamp =
        header("wechatpay-timestamp").ok_or(CallbackError::Missing("Wechatpay-Timestamp"))?;
    let nonce = header("wechatpay-nonce").ok_or(CallbackError::Missing("Wechatpay-Nonce"))?;
    let serial = header("wechatpay-serial").ok_or(CallbackError::Missing("Wechatpay-Serial"))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| CallbackError::Malformed("Wechatpay-Timestamp".into()))?;
    let skew = now.millis().div_euclid(1000) - ts;
    if skew.abs() > MAX_SKEW_SECS {
        return Err(CallbackError::Stale { skew_secs: skew });
    }
    let key = keys
        .iter()
        .find(|k| k.id == serial.trim())
        .ok_or_else(|| CallbackError::UnknownKey(serial.chars().take(64).collect()))?;
    if !keys::verify(
        &key.key,
        &signed_message(timestamp.trim(), nonce.trim(), body),
        &signature,
    ) {
        return Err(CallbackError::BadSignature);
    }
    Ok(())
}

/// The encrypted part of a callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// `AEAD_AES_256_GCM`.
    pub algorithm: String,
    /// Base64(ciphertext ‖ tag).
    pub ciphertext: String,
    /// AAD (may be empty).
    #[serde(default)]
    pub associated_data: String,
    /// `transaction`, `refund`.
    #[serde(default)]
    pub original_type: String,
    /// The 12-character GCM nonce.
    pub nonce: String,
}

/// A callback's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Notification id.
    pub id: String,
    /// When created (RFC 3339).
    #[serde(default)]
    pub create_time: String,
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`, `REFUND.ABNORMAL`,
    /// `REFUND.CLOSED`.
    pub event_type: String,
    /// `encrypt-resource`.
    #[serde(default)]
    pub resource_type: String,
    /// The encrypted payload.
    pub resource: Resource,
    /// A summary in words (支付成功).
    #[serde(default)]
    pub summary: String,
}

/// Decrypts a callback resource with the APIv3 key.
pub fn decrypt_resource(
    api_v3_key: &[u8; 32],
    resource: &Resource,
) -> Result<Vec<u8>, CallbackError> {
    if resource.algorithm != "AEAD_AES_256_GCM" {
        return Err(CallbackError::Malformed(format!(
            "algorithm {}",
            resource.algorithm.chars().take(32).collect::<String>()
        )));
    }
    if resource.nonce.len() != 12 {
        return Err(CallbackError::Malformed("resource nonce".into()));
    }
    let sealed = STANDARD
        .decode(resource.ciphertext.trim())
        .map_err(|_| CallbackError::Malformed("resource ciphertext".into()))?;
    let cipher = Aes256Gcm::new_from_slice(api_v3_key).map_err(|_| CallbackError::Decrypt)?;
    cipher
        .decrypt(
            Nonce::from_slice(resource.nonce.as_bytes()),
            Payload {
                msg: &sealed,
                aad: resource.associated_data.as_bytes(),
            },
        )
        .map_err(|_| CallbackError::Decrypt)
}

/// Encrypts a resource as WeChat Pay does (used by the simulator and by
/// tests building callbacks).
pub fn encrypt_resource(
    api_v3_key: &[u8; 32],
    nonce: &str,
    associated_data: &str,
    original_type: &str,
    plaintext: &[u8],
) -> Result<Resource, PaymentError> {
    if nonce.len() != 12 {
        return Err(PaymentError::Config(
            "the GCM nonce must be 12 bytes".into(),
        ));
    }
    let cipher = Aes256Gcm::new_from_slice(api_v3_key)
        .map_err(|_| PaymentError::Config("APIv3 key".into()))?;
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(nonce.as_bytes()),
            Payload {
                msg: plaintext,
                aad: associated_data.as_bytes(),
            },
        )
        .map_err(|_| PaymentError::Config("encryption failed".into()))?;
    Ok(Resource {
        algorithm: "AEAD_AES_256_GCM".into(),
        ciphertext: STANDARD.encode(sealed),
        associated_data: associated_data.to_owned(),
        original_type: original_type.to_owned(),
        nonce: nonce.to_owned(),
    })
}

/// The amount of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionAmount {
    /// Order total, fen.
    pub total: i64,
    /// What the payer paid, fen (less with coupons).
    #[serde(default)]
    pub payer_total: Option<i64>,
    /// `CNY`.
    #[serde(default)]
    pub currency: Option<String>,
}

/// A transaction as the query answer and the decrypted callback give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// AppID.
    #[serde(default)]
    pub appid: String,
    /// 商户号.
    pub mchid: String,
    /// Our number.
    pub out_trade_no: String,
    /// WeChat's number (once paid).
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// `SUCCESS`, `REFUND`, `NOTPAY`, `CLOSED`, `REVOKED`, `USERPAYING`,
    /// `PAYERROR`.
    pub trade_state: String,
    /// In words.
    #[serde(default)]
    pub trade_state_desc: String,
    /// When paid (RFC 3339).
    #[serde(default)]
    pub success_time: Option<String>,
    /// Amounts (absent before payment on some answers).
    #[serde(default)]
    pub amount: Option<TransactionAmount>,
}

impl Transaction {
    /// The trade's state in CertHall's terms. A paid transaction without a
    /// transaction id or amount is malformed.
    pub fn state(&self) -> Result<TradeState, String> {
        Ok(match self.trade_state.as_str() {
            "SUCCESS" | "REFUND" => TradeState::Paid(PaidTrade {
                transaction_id: self
                    .transaction_id
                    .clone()
                    .filter(|t| !t.is_empty())
                    .ok_or("paid transaction without transaction_id")?,
                amount_fen: self
                    .amount
                    .as_ref()
                    .map(|a| a.total)
                    .ok_or("paid transaction without amount")?,
                paid_at: self.success_time.as_deref().and_then(parse_time),
            }),
            "NOTPAY" => TradeState::NotPaid,
            "USERPAYING" => TradeState::UserPaying,
            "CLOSED" | "REVOKED" => TradeState::Closed,
            "PAYERROR" => TradeState::Failed(if self.trade_state_desc.is_empty() {
                "支付失败".to_owned()
            } else {
                self.trade_state_desc.clone()
            }),
            other => return Err(format!("unknown trade_state {other}")),
        })
    }
}

/// A refund as the refund answers and the decrypted refund callback give
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// WeChat's refund number.
    #[serde(default)]
    pub refund_id: Option<String>,
    /// Our refund number.
    pub out_refund_no: String,
    /// The payment's number.
    #[serde(default)]
    pub out_trade_no: String,
    /// `SUCCESS`, `CLOSED`, `PROCESSING`, `ABNORMAL` (answers call it
    /// `status`, callbacks `refund_status`).
    #[serde(alias = "refund_status")]
    pub status: String,
    /// When it succeeded (RFC 3339).
    #[serde(default)]
    pub success_time: Option<String>,
    /// 商户号 (callbacks only).
    #[serde(default)]
    pub mchid: Option<String>,
}

impl Refund {
    /// The refund's state in CertHall's terms.
    pub fn status(&self) -> Result<RefundStatus, String> {
        Ok(match self.status.as_str() {
            "SUCCESS" => RefundStatus::Succeeded {
                refund_id: self.refund_id.clone(),
                at: self.success_time.as_deref().and_then(parse_time),
            },
            "PROCESSING" => RefundStatus::Processing,
            "CLOSED" => RefundStatus::Closed,
            "ABNORMAL" => RefundStatus::Abnormal("退款异常".into()),
            other => return Err(format!("unknown refund status {other}")),
        })
    }
}

/// RFC 3339 (`2026-12-05T10:34:56+08:00`) to a timestamp.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .ok()
        .map(Timestamp::from_millis)
}

/// A timestamp as WeChat Pay writes it: RFC 3339 in China time
/// (`2026-12-05T10:34:56+08:00`).
pub fn format_time(t: Timestamp) -> String {
    let cst = t.to_cst();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+08:00",
        cst.year(),
        u8::from(cst.month()),
        cst.day(),
        cst.hour(),
        cst.minute(),
        cst.second()
    )
}

/// Reads a verified callback body: decrypts the resource and checks the
/// merchant.
pub fn read_notification(settings: &WechatSettings, body: &[u8]) -> Result<Notice, CallbackError> {
    let n: Notification = serde_json::from_slice(body)
        .map_err(|e| CallbackError::Malformed(format!("notification: {e}")))?;
    let plain = decrypt_resource(&settings.api_v3_key, &n.resource)?;
    if n.event_type.starts_with("TRANSACTION.") {
        let t: Transaction = serde_json::from_slice(&plain)
            .map_err(|e| CallbackError::Malformed(format!("transaction: {e}")))?;
        if t.mchid != settings.mch_id {
            return Err(CallbackError::WrongMerchant("mchid"));
        }
        if t.appid != settings.app_id {
            return Err(CallbackError::WrongMerchant("appid"));
        }
        let state = t.state().map_err(CallbackError::Malformed)?;
        Ok(Notice::Payment(PaymentNotice {
            notification_id: n.id,
            out_trade_no: t.out_trade_no,
            state,
        }))
    } else if n.event_type.starts_with("REFUND.") {
        let r: Refund = serde_json::from_slice(&plain)
            .map_err(|e| CallbackError::Malformed(format!("refund: {e}")))?;
        if r.mchid.as_deref() != Some(settings.mch_id.as_str()) {
            return Err(CallbackError::WrongMerchant("mchid"));
        }
        let status = r.status().map_err(CallbackError::Malformed)?;
        Ok(Notice::Refund(RefundNotice {
            notification_id: n.id,
            out_trade_no: r.out_trade_no,
            out_refund_no: r.out_refund_no,
            status,
        }))
    } else {
        Err(CallbackError::Malformed(format!(
            "event_type {}",
            n.event_type.chars().take(40).collect::<String>()
        )))
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
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("CertHall/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PaymentError::Config(format!("http client: {e}")))?;
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
