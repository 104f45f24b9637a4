//! The SF open platform's wire format (顺丰开放平台 / 丰桥, "std/service"
//! API), shared by the real adapter, the demo courier and the push
//! verification: the digest, form encoding, request ids and SF's times.
//!
//! **Digest** (数字签名认证说明, `msgDigest`): for a request (and, by
//! CertHall's requirement, for a route push) the digest is
//!
//! ```text
//! msgDigest = Base64( MD5( URLEncoder.encode(msgData + timestamp + checkWord, "UTF-8") ) )
//! ```
//!
//! where `URLEncoder` is Java's `java.net.URLEncoder` (SF's reference code
//! is Java): the UTF-8 bytes of the text, with `A–Z a–z 0–9 . - * _` kept,
//! a space turned into `+` and every other byte written `%XX` (upper-case
//! hex); the MD5 is taken over the encoded ASCII text and its **raw 16
//! bytes** are Base64-encoded (standard alphabet, with padding). SF's
//! documented example — `{"language":"zh-CN","orderId":"QIAO-20200618-004"}`,
//! timestamp `12312334453453`, check word `fjcg5PGKaNpPSHFAZ4QsCOkV71R3zVci`
//! gives `IIKJtuLVzoFTu4kHI8M8vA==` — is a test vector here.
//!
//! Python's `quote_plus` (SF's Python SDK) and JavaScript's
//! `encodeURIComponent` (common in blog posts) differ from Java's encoder on
//! `*`, `~` (and, for JavaScript, space and `!'()`): they agree with SF only
//! when the text has none of those characters. This module follows Java.

use std::fmt::Write as _;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use rand::Rng;
use subtle::ConstantTimeEq;
use time::macros::format_description;
use time::PrimitiveDateTime;

/// `Content-Type` of requests to SF and of route pushes.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=UTF-8";

/// Java's `URLEncoder.encode(text, "UTF-8")`: `A–Z a–z 0–9 . - * _` kept,
/// space as `+`, every other UTF-8 byte as `%XX` (upper-case). This is also
/// the WHATWG `application/x-www-form-urlencoded` byte serializer, so the
/// same function encodes form bodies.
pub fn java_url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                // Writing to a String cannot fail.
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// `msgDigest` for `msg_data` sent at `timestamp` (the exact text of the
/// `timestamp` field, milliseconds) under `check_word` (校验码).
pub fn msg_digest(msg_data: &str, timestamp: &str, check_word: &str) -> String {
    let mut text = String::with_capacity(msg_data.len() + timestamp.len() + check_word.len());
    text.push_str(msg_data);
    text.push_str(timestamp);
    text.push_str(check_word);
    let encoded = java_url_encode(&text);
    let hash = Md5::digest(encoded.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hash)
}

/// Whether `claimed` is the digest of `msg_data` and `timestamp` under
/// `check_word`, compared in constant time.
pub fn digest_matches(claimed: &str, msg_data: &str, timestamp: &str, check_word: &str) -> bool {
    let expected = msg_digest(msg_data, timestamp, check_word);
    expected.as_bytes().ct_eq(claimed.as_bytes()).into()
}

/// `name=value` pairs joined with `&`, both encoded with
/// [`java_url_encode`] (order kept).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&java_url_encode(name));
        out.push('=');
        out.push_str(&java_url_encode(value));
    }
    out
}

/// Why a form body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

/// Reads an `application/x-www-form-urlencoded` body strictly: `+` is a
/// space, `%XX` a byte, a bad escape or non-UTF-8 text is an error (never
/// passed through as WHATWG's lenient parser would). Empty segments are
/// skipped; a segment without `=` is a name with an empty value.
pub fn form_decode(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let mut pairs = Vec::new();
    for segment in body.split(|&b| b == b'&') {
        if segment.is_empty() {
            continue;
        }
        let (name, value) = match segment.iter().position(|&b| b == b'=') {
            Some(i) => (&segment[..i], &segment[i + 1..]),
            None => (segment, &[][..]),
        };
        pairs.push((percent_decode(name)?, percent_decode(value)?));
    }
    Ok(pairs)
}

fn percent_decode(bytes: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&b| hex_value(b));
                let lo = bytes.get(i + 2).and_then(|&b| hex_value(b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(FormError::BadEscape),
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The signed form of one call (or push): `partnerID, requestID,
/// serviceCode, timestamp, msgDigest, msgData`, in that order, encoded as
/// a form body.
pub fn signed_form(
    partner_id: &str,
    request_id: &str,
    service_code: &str,
    timestamp_ms: i64,
    msg_data: &str,
    check_word: &str,
) -> String {
    let timestamp = timestamp_ms.to_string();
    let digest = msg_digest(msg_data, &timestamp, check_word);
    form_encode(&[
        ("partnerID", partner_id),
        ("requestID", request_id),
        ("serviceCode", service_code),
        ("timestamp", &timestamp),
        ("msgDigest", &digest),
        ("msgData", msg_data),
    ])
}

/// A new request id (`requestID`, "请求唯一号UUID"): a random (version 4)
/// UUID in its usual lower-case text form, 36 characters.
pub fn new_request_id() -> String {
    let mut b: [u8; 16] = rand::thread_rng().gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{byte:02x}");
    }
    s
}

/// SF's `yyyy-MM-dd HH:mm:ss` (China Standard Time, no offset written).
pub fn parse_sf_time(text: &str) -> Option<PrimitiveDateTime> {
    PrimitiveDateTime::parse(
        text,
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
    )
    .ok()
}

/// A time written as SF writes it: `yyyy-MM-dd HH:mm:ss`.
pub fn format_sf_time(t: PrimitiveDateTime) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_encoder_keeps_exactly_its_safe_set() {
        assert_eq!(java_url_encode("aZ09.-*_"), "aZ09.-*_");
        assert_eq!(java_url_encode("a b"), "a+b");
        assert_eq!(
            java_url_encode("~!'()+/=&%"),
            "%7E%21%27%28%29%2B%2F%3D%26%25"
        );
        assert_eq!(java_url_encode("顺丰"), "%E9%A1%BA%E4%B8%B0");
        assert_eq!(java_url_encode("{\"a\":1}"), "%7B%22a%22%3A1%7D");
    }

    #[test]
    fn form_round_trip_and_strictness() {
        let body = form_encode(&[("msgData", "{\"k\":\"a b+c\"}"), ("x", "顺丰")]);
        let pairs = form_decode(body.as_bytes()).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("msgData".to_owned(), "{\"k\":\"a b+c\"}".to_owned()),
                ("x".to_owned(), "顺丰".to_owned()),
            ]
        );
        assert_eq!(form_decode(b"a=%G1"), Err(FormError::BadEscape));
        assert_eq!(form_decode(b"a=%4"), Err(FormError::BadEscape));
        assert_eq!(form_decode(b"a=%FF"), Err(FormError::NotUtf8));
        assert_eq!(
            form_decode(b"a&&b=").unwrap(),
            vec![
                ("a".to_owned(), String::new()),
                ("b".to_owned(), String::new())
            ]
        );
    }

    #[test]
    fn request_ids_are_v4_uuids_and_differ() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(a.matches('-').count(), 4);
    }

    #[test]
    fn sf_time_round_trip() {
        let t = parse_sf_time("2025-05-26 09:55:52").unwrap();
        assert_eq!(t.hour(), 9);
        assert_eq!(format_sf_time(t), "2025-05-26 09:55:52");
        assert!(parse_sf_time("2025-05-26T09:55:52").is_none());
        assert!(parse_sf_time("2025-13-01 00:00:00").is_none());
    }
}
