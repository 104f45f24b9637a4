//! The wire protocol of Alipay OpenAPI v2 (`gateway.do`): what a
//! request's and a notification's signatures cover, form encoding and
//! parsing, answer verification over the node's exact text, Alipay's time
//! formats, and reading a verified notification. No HTTP here:
//! [`super::Alipay`] and the tests build on it.

use std::collections::BTreeMap;

use certhall_domain::money::parse_yuan_decimal;
use certhall_domain::Timestamp;
use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rsa::RsaPublicKey;
use serde::Deserialize;
use serde_json::value::RawValue;
use time::macros::format_description;
use time::{PrimitiveDateTime, UtcOffset};

use super::AlipaySettings;
use crate::{
    keys, CallbackError, Notice, PaidTrade, PaymentError, PaymentNotice, RefundNotice,
    RefundStatus, TradeState,
};

/// `code` of a successful answer.
pub const SUCCESS_CODE: &str = "10000";

/// What Alipay must read, exactly, to stop re-sending a notification.
pub const NOTIFY_ACCEPTED: &str = "success";

/// The `Content-Type` of requests.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=utf-8";

/// `timeout_express` takes 1m … 15d.
const MAX_TIMEOUT_MINUTES: i64 = 15 * 24 * 60;

/// Form-encoding keeps only `A-Z a-z 0-9 - . _ *` as they are (the WHATWG
/// `application/x-www-form-urlencoded` byte serializer); a space is `%20`.
const FORM_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'*');

/// China Standard Time.
const CST: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// `yyyy-MM-dd HH:mm:ss` in China time, as Alipay writes times.
pub fn alipay_time(t: Timestamp) -> String {
    let t = t.to_cst();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Reads an Alipay time, China time: `yyyy-MM-dd HH:mm:ss`, optionally
/// with a fraction (`gmt_refund` is `yyyy-MM-dd HH:mm:ss.S`).
pub fn parse_alipay_time(text: &str) -> Option<Timestamp> {
    let format = format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    let t = PrimitiveDateTime::parse(text.trim(), format)
        .ok()?
        .assume_offset(CST);
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .ok()
        .map(Timestamp::from_millis)
}

/// The content a request's `sign` covers: every parameter except `sign`
/// and those with empty values, sorted by name, `name=value` joined with
/// `&`, values as they are (not URL-encoded).
pub fn sign_content(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .filter(|(k, v)| k.as_str() != "sign" && !k.is_empty() && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The content a notification's `sign` covers (the SDK's
/// `getSignCheckContentV1`): every parameter except `sign` and
/// `sign_type`, sorted by name, `name=value` with the decoded values joined
/// with `&`, empty values included.
pub fn notify_check_content(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .filter(|(k, _)| k.as_str() != "sign" && k.as_str() != "sign_type")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A request's parameters, signed: the common parameters for `method`
/// at `now`, `notify_url` when given, `biz_content`, and `sign`.
pub fn signed_params(
    settings: &AlipaySettings,
    method: &str,
    biz_content: &str,
    notify_url: Option<&str>,
    now: Timestamp,
) -> Result<BTreeMap<String, String>, PaymentError> {
    let mut params: BTreeMap<String, String> = [
        ("app_id", settings.app_id.as_str()),
        ("method", method),
        ("format", "JSON"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("version", "1.0"),
        ("biz_content", biz_content),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    params.insert("timestamp".into(), alipay_time(now));
    if let Some(url) = notify_url {
        params.insert("notify_url".into(), url.to_owned());
    }
    let sign = keys::sign(&settings.app_private_key, sign_content(&params).as_bytes())?;
    params.insert("sign".into(), sign);
    Ok(params)
}

/// The form body of a request: `name=value` pairs, both percent-encoded
/// as UTF-8 (only `A-Z a-z 0-9 - . _ *` kept), joined with `&`.
pub fn form_encode(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, FORM_ENCODE_SET),
                utf8_percent_encode(v, FORM_ENCODE_SET)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Reads an `application/x-www-form-urlencoded` body (UTF-8): pairs split
/// on `&`, name and value on the first `=`, `+` as a space, `%XY`
/// decoded. Malformed UTF-8 or a repeated name is refused (a repeated
/// name could make what is verified differ from what is read).
pub fn parse_form(body: &[u8]) -> Result<BTreeMap<String, String>, CallbackError> {
    let mut params = BTreeMap::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        let name = form_decode(name)?;
        let value = form_decode(value)?;
        if params.contains_key(&name) {
            return Err(CallbackError::Malformed(format!(
                "parameter {} repeated",
                name.chars().take(40).collect::<String>()
            )));
        }
        params.insert(name, value);
    }
    Ok(params)
}

fn form_decode(raw: &[u8]) -> Result<String, CallbackError> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_decode(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| CallbackError::Malformed("body is not UTF-8 form data".into()))
}

/// The answer node of `method`: `alipay.trade.query` →
/// `alipay_trade_query_response`.
pub fn response_node(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}

/// An answer whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAnswer {
    /// The node's exact text (the JSON object that was signed).
    pub node: String,
    /// False only for an unsigned refusal (never for a success).
    pub signed: bool,
}

/// Finds `method`'s answer node (or `error_response`) in a gateway answer
/// and checks `sign` over its exact text with Alipay's key. A present
/// signature must verify; a success must be signed.
pub fn verify_answer(
    alipay_key: &RsaPublicKey,
    method: &str,
    body: &str,
) -> Result<VerifiedAnswer, PaymentError> {
    let top: BTreeMap<String, &RawValue> = serde_json::from_str(body)
        .map_err(|_| PaymentError::BadAnswer("answer is not a JSON object".into()))?;
    let expected = response_node(method);
    let (node, is_error_node) = match top.get(&expected) {
        Some(node) => (*node, false),
        None => match top.get("error_response") {
            Some(node) => (*node, true),
            None => {
                return Err(PaymentError::BadAnswer(format!(
                    "answer without {expected}"
                )))
            }
        },
    };
    let sign: Option<String> = match top.get("sign") {
        Some(raw) => Some(
            serde_json::from_str(raw.get())
                .map_err(|_| PaymentError::BadAnswer("sign is not a string".into()))?,
        ),
        None => None,
    };
    let signed = match sign.as_deref().filter(|s| !s.is_empty()) {
        Some(sign) => {
            if !keys::verify(alipay_key, node.get().as_bytes(), sign) {
                return Err(PaymentError::BadAnswer(
                    "answer signature does not verify".into(),
                ));
            }
            true
        }
        None => false,
    };
    let common: Common = serde_json::from_str(node.get())
        .map_err(|e| PaymentError::BadAnswer(format!("answer node: {e}")))?;
    if common.code == SUCCESS_CODE && (!signed || is_error_node) {
        return Err(PaymentError::BadAnswer("unsigned success answer".into()));
    }
    Ok(VerifiedAnswer {
        node: node.get().to_owned(),
        signed,
    })
}

/// The fields every answer node has.
#[derive(Debug, Deserialize)]
pub(super) struct Common {
    pub(super) code: String,
    #[serde(default)]
    pub(super) msg: String,
    #[serde(default)]
    pub(super) sub_code: Option<String>,
    #[serde(default)]
    pub(super) sub_msg: Option<String>,
}

/// `timeout_express`: whole minutes from `now` to `expires_at`, within
/// Alipay's 1m … 15d.
pub fn timeout_express(now: Timestamp, expires_at: Timestamp) -> String {
    let minutes = expires_at
        .millis()
        .saturating_sub(now.millis())
        .div_euclid(60_000)
        .clamp(1, MAX_TIMEOUT_MINUTES);
    format!("{minutes}m")
}

/// Reads a notification whose signature has been verified: the merchant
/// must be ours, the amounts exact.
pub(super) fn read_notification(
    settings: &AlipaySettings,
    params: &BTreeMap<String, String>,
) -> Result<Notice, CallbackError> {
    let get = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    if get("app_id") != Some(settings.app_id.as_str()) {
        return Err(CallbackError::WrongMerchant("app_id"));
    }
    if get("seller_id") != Some(settings.seller_id.as_str()) {
        return Err(CallbackError::WrongMerchant("seller_id"));
    }
    let total = get("total_amount").ok_or(CallbackError::Missing("total_amount"))?;
    let amount_fen =
        parse_yuan_decimal(total).ok_or_else(|| CallbackError::Malformed("total_amount".into()))?;
    let notification_id = get("notify_id")
        .ok_or(CallbackError::Missing("notify_id"))?
        .to_owned();
    let out_trade_no = get("out_trade_no")
        .ok_or(CallbackError::Missing("out_trade_no"))?
        .to_owned();

    if let Some(out_biz_no) = get("out_biz_no") {
        if get("refund_fee").is_some() || get("gmt_refund").is_some() {
            if let Some(refunded) = get("refund_fee") {
                parse_yuan_decimal(refunded)
                    .ok_or_else(|| CallbackError::Malformed("refund_fee".into()))?;
            }
            return Ok(Notice::Refund(RefundNotice {
                notification_id,
                out_trade_no,
                out_refund_no: out_biz_no.to_owned(),
                status: RefundStatus::Succeeded {
                    refund_id: None,
                    at: get("gmt_refund").and_then(parse_alipay_time),
                },
            }));
        }
    }

    let state = match get("trade_status").ok_or(CallbackError::Missing("trade_status"))? {
        "TRADE_SUCCESS" | "TRADE_FINISHED" => TradeState::Paid(PaidTrade {
            transaction_id: get("trade_no")
                .ok_or(CallbackError::Missing("trade_no"))?
                .to_owned(),
            amount_fen,
            paid_at: get("gmt_payment").and_then(parse_alipay_time),
        }),
        "TRADE_CLOSED" => TradeState::Closed,
        "WAIT_BUYER_PAY" => TradeState::UserPaying,
        other => {
            return Err(CallbackError::Malformed(format!(
                "trade_status {}",
                other.chars().take(32).collect::<String>()
            )))
        }
    };
    Ok(Notice::Payment(PaymentNotice {
        notification_id,
        out_trade_no,
        state,
    }))
}
