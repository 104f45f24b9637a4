//! Route pushes (路由推送): SF posts route nodes to CertHall's webhook as
//! they happen.
//!
//! **What SF documents.** The open platform's `RoutePushService` posts,
//! per the customer's choice, either JSON
//! `{"Body":{"WaybillRoute":[{mailno, acceptAddress, reasonName, orderid,
//! acceptTime, remark, opCode, id, reasonCode}, …]}}` (at most 10 nodes),
//! answered with `{"return_code":"0000","return_msg":"成功"}` (`1000` for
//! a failure, and SF pushes again), or a form field `content` holding the
//! same nodes as XML. Its documentation describes **no signature** for
//! either.
//!
//! **What CertHall requires.** An unsigned push could be sent by anyone who
//! knows the URL, and a route node moves an order (已签收 closes it), so
//! CertHall accepts a push only in the open platform's own signed envelope,
//! the one every API call uses: a form post of `partnerID`, `requestID`,
//! `serviceCode` (`RoutePushService`), `timestamp` (ms), `msgDigest` and
//! `msgData`, where `msgData` is the documented JSON above and
//! `msgDigest` is [`crate::protocol::msg_digest`] of `msgData + timestamp`
//! under the partner's check word. The deployment arranges this with SF
//! when the push is configured in 丰桥 (push with digest), or sets
//! `push_digest = false` and tracks by querying routes instead — then
//! every push is refused ([`PushRefused::Disabled`]); there is no
//! unverified path.
//!
//! [`verify`] is the one verification: [`crate::SfExpress`] and
//! [`crate::DemoCourier`] both call it. [`sign_push`] builds exactly such a
//! push; demo mode's `/dev/courier` page posts its output to CertHall's real
//! push handler.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::protocol::{
    digest_matches, form_decode, format_sf_time, new_request_id, parse_sf_time, signed_form,
    FormError, FORM_CONTENT_TYPE,
};
use crate::route::{RouteEvent, RouteStage};
use crate::PushRefused;

/// `serviceCode` of a route push.
pub const SERVICE_CODE: &str = "RoutePushService";

/// How far a push's timestamp may be from now, either way: ten minutes
/// (CertHall's choice; SF documents no window for pushes).
pub const WINDOW_MS: i64 = 10 * 60 * 1000;

/// The largest body read as a push.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The most route nodes in one push (SF documents at most 10 per push;
/// more is refused as malformed well above that).
pub const MAX_EVENTS: usize = 100;

/// `Content-Type` of the push answers.
pub const ANSWER_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// The answer to a push that was recorded.
pub fn ack() -> (&'static str, String) {
    (
        ANSWER_CONTENT_TYPE,
        r#"{"return_code":"0000","return_msg":"成功"}"#.to_owned(),
    )
}

/// The answer to a push that was not recorded (SF pushes again).
pub fn nack() -> (&'static str, String) {
    (
        ANSWER_CONTENT_TYPE,
        r#"{"return_code":"1000","return_msg":"失败"}"#.to_owned(),
    )
}

/// Verifies a push for partner `partner_id` under `check_word` and reads
/// its events, in order:
///
/// 1. a form post (`application/x-www-form-urlencoded`), at most
///    [`MAX_BODY_BYTES`], strictly decoded, no field given twice;
/// 2. `partnerID` ours, `serviceCode` [`SERVICE_CODE`];
/// 3. `msgDigest` matches `msgData` and `timestamp` (constant time);
/// 4. `timestamp` within [`WINDOW_MS`] of `now_ms`;
/// 5. only then `msgData` is parsed: every node needs `mailno`, `opCode`
///    and an `acceptTime` in SF's format.
pub fn verify(
    partner_id: &str,
    check_word: &str,
    content_type: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<Vec<RouteEvent>, PushRefused> {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(PushRefused::ContentType(content_type.to_owned()));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(PushRefused::TooLarge);
    }
    let pairs = form_decode(body).map_err(|e| {
        PushRefused::Malformed(match e {
            FormError::BadEscape => "bad percent-escape in form".to_owned(),
            FormError::NotUtf8 => "form is not UTF-8".to_owned(),
        })
    })?;
    let form = Envelope::read(&pairs)?;

    if form.partner_id != partner_id {
        return Err(PushRefused::WrongPartner);
    }
    if form.service_code != SERVICE_CODE {
        return Err(PushRefused::WrongService(form.service_code.to_owned()));
    }
    if !digest_matches(form.digest, form.msg_data, form.timestamp, check_word) {
        return Err(PushRefused::BadDigest);
    }
    if form.timestamp.is_empty()
        || form.timestamp.len() > 15
        || !form.timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(PushRefused::BadTimestamp);
    }
    let sent_ms: i64 = form
        .timestamp
        .parse()
        .map_err(|_| PushRefused::BadTimestamp)?;
    let skew_ms = now_ms.saturating_sub(sent_ms);
    if skew_ms.abs() > WINDOW_MS {
        return Err(PushRefused::Stale { skew_ms });
    }
    read_events(form.msg_data)
}

/// The signed fields of a push.
struct Envelope<'a> {
    partner_id: &'a str,
    service_code: &'a str,
    timestamp: &'a str,
    digest: &'a str,
    msg_data: &'a str,
}

impl<'a> Envelope<'a> {
    fn read(pairs: &'a [(String, String)]) -> Result<Self, PushRefused> {
        const NAMES: [&str; 6] = [
            "partnerID",
            "requestID",
            "serviceCode",
            "timestamp",
            "msgDigest",
            "msgData",
        ];
        let mut found: [Option<&'a str>; 6] = [None; 6];
        for (name, value) in pairs {
            // Other fields are not covered by the digest and are ignored.
            if let Some(i) = NAMES.iter().position(|n| n == name) {
                if found[i].is_some() {
                    return Err(PushRefused::Duplicate(NAMES[i]));
                }
                found[i] = Some(value.as_str());
            }
        }
        let get = |i: usize| match found[i] {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(PushRefused::Missing(NAMES[i])),
        };
        get(1)?; // requestID: required, recorded by SF, not used here.
        Ok(Self {
            partner_id: get(0)?,
            service_code: get(2)?,
            timestamp: get(3)?,
            digest: get(4)?,
            msg_data: get(5)?,
        })
    }
}

#[derive(Deserialize)]
struct PushMessage {
    #[serde(rename = "Body")]
    body: PushBody,
}

#[derive(Deserialize)]
struct PushBody {
    #[serde(rename = "WaybillRoute")]
    routes: Vec<WireRoute>,
}

/// One node as SF writes it. Optional text may be absent or `null` (SF's
/// sandbox sends `"reasonName": null`).
#[derive(Deserialize)]
struct WireRoute {
    mailno: Option<String>,
    #[serde(rename = "acceptAddress")]
    accept_address: Option<String>,
    orderid: Option<String>,
    #[serde(rename = "acceptTime")]
    accept_time: Option<String>,
    remark: Option<String>,
    #[serde(rename = "opCode")]
    op_code: Option<String>,
    /// A string in SF's documentation (`String(15)`, leading zeros occur);
    /// a JSON number is read as its digits.
    id: Option<serde_json::Value>,
}

fn read_events(msg_data: &str) -> Result<Vec<RouteEvent>, PushRefused> {
    let message: PushMessage = serde_json::from_str(msg_data)
        .map_err(|e| PushRefused::Malformed(format!("msgData: {e}")))?;
    let routes = message.body.routes;
    if routes.is_empty() {
        return Err(PushRefused::Malformed("no WaybillRoute".into()));
    }
    if routes.len() > MAX_EVENTS {
        return Err(PushRefused::Malformed(format!(
            "{} WaybillRoute nodes",
            routes.len()
        )));
    }
    routes.into_iter().map(event_of).collect()
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn event_of(w: WireRoute) -> Result<RouteEvent, PushRefused> {
    let waybill_no = non_empty(w.mailno).ok_or(PushRefused::Missing("mailno"))?;
    let op_code = non_empty(w.op_code).ok_or(PushRefused::Missing("opCode"))?;
    let time_text = non_empty(w.accept_time).ok_or(PushRefused::Missing("acceptTime"))?;
    let accept_time = parse_sf_time(&time_text)
        .ok_or_else(|| PushRefused::Malformed(format!("acceptTime {time_text:?}")))?;
    let event_id = match w.id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => non_empty(Some(s)),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(PushRefused::Malformed("id is not a string".into())),
    };
    Ok(RouteEvent {
        stage: RouteStage::from_op_code(&op_code),
        waybill_no,
        order_id: non_empty(w.orderid),
        op_code,
        accept_time,
        address: w.accept_address.unwrap_or_default().trim().to_owned(),
        remark: w.remark.unwrap_or_default().trim().to_owned(),
        event_id,
    })
}

/// A node as SF writes it in a push, fields in SF's order.
#[derive(Serialize)]
struct WireRouteOut<'a> {
    mailno: &'a str,
    #[serde(rename = "acceptAddress")]
    accept_address: &'a str,
    #[serde(rename = "reasonName")]
    reason_name: &'a str,
    orderid: &'a str,
    #[serde(rename = "acceptTime")]
    accept_time: String,
    remark: &'a str,
    #[serde(rename = "opCode")]
    op_code: &'a str,
    id: String,
    #[serde(rename = "reasonCode")]
    reason_code: &'a str,
}

#[derive(Serialize)]
struct PushMessageOut<'a> {
    #[serde(rename = "Body")]
    body: PushBodyOut<'a>,
}

#[derive(Serialize)]
struct PushBodyOut<'a> {
    #[serde(rename = "WaybillRoute")]
    routes: Vec<WireRouteOut<'a>>,
}

/// The `msgData` of a push carrying `events` (SF's JSON push body). An
/// event without an id gets a random 15-digit one, as SF's nodes all have.
pub fn push_msg_data(events: &[RouteEvent]) -> String {
    let mut rng = rand::thread_rng();
    let routes = events
        .iter()
        .map(|e| WireRouteOut {
            mailno: &e.waybill_no,
            accept_address: &e.address,
            reason_name: "",
            orderid: e.order_id.as_deref().unwrap_or(""),
            accept_time: format_sf_time(e.accept_time),
            remark: &e.remark,
            op_code: &e.op_code,
            id: e
                .event_id
                .clone()
                .unwrap_or_else(|| format!("{:015}", rng.gen_range(0..1_000_000_000_000_000u64))),
            reason_code: "",
        })
        .collect();
    let message = PushMessageOut {
        body: PushBodyOut { routes },
    };
    // Serializing plain strings into JSON cannot fail.
    serde_json::to_string(&message).unwrap_or_default()
}

/// Builds the push SF would send for `events` — the signed envelope
/// CertHall requires (module documentation) — timestamped `now_ms`:
/// (`Content-Type`, form body). Used by demo mode's `/dev/courier` page,
/// which posts it to CertHall's own push handler, and by tests.
pub fn sign_push(
    partner_id: &str,
    check_word: &str,
    events: &[RouteEvent],
    now_ms: i64,
) -> (&'static str, String) {
    let msg_data = push_msg_data(events);
    let body = signed_form(
        partner_id,
        &new_request_id(),
        SERVICE_CODE,
        now_ms,
        &msg_data,
        check_word,
    );
    (FORM_CONTENT_TYPE, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const PARTNER: &str = "CERTHALL_TEST";
    const WORD: &str = "test-check-word-0123456789abcdef";
    const NOW: i64 = 1_748_224_606_000;

    fn event() -> RouteEvent {
        let mut e = RouteEvent::new("SF7444496931331", "80", datetime!(2025-05-26 09:56:46));
        e.order_id = Some("CH-12-1".into());
        e.remark = "您的快件已签收".into();
        e
    }

    #[test]
    fn signed_push_round_trips() {
        let (ct, body) = sign_push(PARTNER, WORD, &[event()], NOW);
        let events = verify(PARTNER, WORD, ct, body.as_bytes(), NOW + 1000).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].waybill_no, "SF7444496931331");
        assert_eq!(events[0].stage, RouteStage::SignedFor);
        assert_eq!(events[0].order_id.as_deref(), Some("CH-12-1"));
        assert_eq!(events[0].event_id.as_deref().map(str::len), Some(15));
    }

    #[test]
    fn duplicate_and_missing_fields_are_refused() {
        let (ct, body) = sign_push(PARTNER, WORD, &[event()], NOW);
        let doubled = format!("{body}&partnerID={PARTNER}");
        assert_eq!(
            verify(PARTNER, WORD, ct, doubled.as_bytes(), NOW),
            Err(PushRefused::Duplicate("partnerID"))
        );
        let without: Vec<&str> = body
            .split('&')
            .filter(|kv| !kv.starts_with("msgDigest="))
            .collect();
        assert_eq!(
            verify(PARTNER, WORD, ct, without.join("&").as_bytes(), NOW),
            Err(PushRefused::Missing("msgDigest"))
        );
    }

    #[test]
    fn json_push_without_envelope_is_refused() {
        let body = r#"{"Body":{"WaybillRoute":[{"mailno":"SF1","opCode":"80","acceptTime":"2025-05-26 09:56:46"}]}}"#;
        assert!(matches!(
            verify(PARTNER, WORD, "application/json", body.as_bytes(), NOW),
            Err(PushRefused::ContentType(_))
        ));
    }

    #[test]
    fn numeric_ids_and_null_texts_are_read() {
        let msg = r#"{"Body":{"WaybillRoute":[{"mailno":"SF1","acceptAddress":null,"reasonName":null,"orderid":"o1","acceptTime":"2025-05-26 09:55:52","remark":"顺丰速运 已收取快件","opCode":"50","id":363636015985819,"reasonCode":null}]}}"#;
        let events = read_events(msg).unwrap();
        assert_eq!(events[0].event_id.as_deref(), Some("363636015985819"));
        assert_eq!(events[0].address, "");
        assert_eq!(events[0].stage, RouteStage::PickedUp);
        assert!(matches!(
            read_events(r#"{"Body":{"WaybillRoute":[]}}"#),
            Err(PushRefused::Malformed(_))
        ));
        assert_eq!(
            read_events(
                r#"{"Body":{"WaybillRoute":[{"mailno":"SF1","acceptTime":"2025-05-26 09:55:52"}]}}"#
            ),
            Err(PushRefused::Missing("opCode"))
        );
    }
}
