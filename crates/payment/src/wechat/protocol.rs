//! The wire protocol of WeChat Pay API v3: what is signed and how
//! (requests, answers, callbacks), the `Authorization` header, the
//! AEAD_AES_256_GCM callback resource, the transaction and refund bodies,
//! and RFC 3339 times. No HTTP here: [`super::WechatPay`] and the
//! simulator both build on it.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use certhall_domain::Timestamp;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{PlatformKey, WechatSettings};
use crate::{
    keys, CallbackError, Notice, PaidTrade, PaymentError, PaymentNotice, RefundNotice,
    RefundStatus, TradeState,
};

/// The `Authorization` scheme of API v3 with RSA keys.
pub const AUTH_SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

/// Signatures starting with this are WeChat Pay's verification probes.
pub const SIGNTEST_PREFIX: &str = "WECHATPAY/SIGNTEST/";

/// How far a signed timestamp may be from ours.
pub const MAX_SKEW_SECS: i64 = 300;

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
