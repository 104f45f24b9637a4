//! The `msgData` of each SF call and the reading of SF's answers.
//!
//! Every answer has the open platform's envelope
//! `{"apiResultCode":"A1000","apiErrorMsg":"","apiResponseID":"…",
//! "apiResultData":…}`: `A1000` means the gateway accepted the call, any
//! other code is a gateway refusal ([`CourierError::Api`]). `apiResultData`
//! is the service's answer `{success, errorCode, errorMsg, msgData}` —
//! sent as a JSON *string* by SF's gateway; the API pages print it as an
//! object, and both are read. `success` true with `errorCode` `S0000` is
//! success, anything else a refusal ([`CourierError::Business`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::parse_sf_time;
use crate::route::{RouteEvent, RouteStage};
use crate::sf::SfService;
use crate::{CourierError, Party, ShipmentRequest, Waybill};

/// `language` of every request.
pub const LANGUAGE: &str = "zh-CN";

/// `payMethod` 2: 收方付 — the recipient pays on delivery (到付).
pub const PAY_METHOD_RECIPIENT: u8 = 2;

/// The most waybills one route query names; CertHall splits longer lists.
/// (SF's 快递管家 API documents 10 per route query; the open platform's
/// own limit was not in the material available, so the same is assumed.)
pub const ROUTE_QUERY_BATCH: usize = 10;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateOrder<'a> {
    language: &'static str,
    order_id: &'a str,
    cargo_details: [Cargo<'a>; 1],
    contact_info_list: [Contact<'a>; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    monthly_card: Option<&'a str>,
    pay_method: u8,
    express_type_id: u32,
    parcel_qty: u32,
    is_return_routelabel: u8,
    is_unified_waybill_no: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    remark: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_list: Option<[&'a SfService; 1]>,
}

#[derive(Serialize)]
struct Cargo<'a> {
    name: &'a str,
    count: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Contact<'a> {
    contact_type: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    company: Option<&'a str>,
    contact: &'a str,
    mobile: &'a str,
    country: &'static str,
    province: &'a str,
    city: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    county: &'a str,
    address: &'a str,
}

fn contact(contact_type: u8, p: &Party) -> Contact<'_> {
    Contact {
        contact_type,
        company: p.company.as_deref().filter(|c| !c.trim().is_empty()),
        contact: &p.name,
        mobile: &p.mobile,
        country: "CN",
        province: &p.province,
        city: &p.city,
        county: &p.county,
        address: &p.address,
    }
}

/// `EXP_RECE_CREATE_ORDER` msgData: one parcel (`parcelQty` 1), paid by the
/// recipient (`payMethod` 2), product `express_type` (`expressTypeId`),
/// route label returned (`isReturnRoutelabel` 1, kept in the raw answer for
/// label printing), a 15-character `SF…` waybill (`isUnifiedWaybillNo` 1),
/// and `id_check_service` in `serviceList` when given.
pub fn create_order_msg_data(
    request: &ShipmentRequest,
    monthly_card: Option<&str>,
    express_type: u32,
    id_check_service: Option<&SfService>,
) -> String {
    let order = CreateOrder {
        language: LANGUAGE,
        order_id: &request.order_id,
        cargo_details: [Cargo {
            name: &request.cargo,
            count: request.declared_count,
        }],
        contact_info_list: [contact(1, &request.sender), contact(2, &request.recipient)],
        monthly_card,
        pay_method: PAY_METHOD_RECIPIENT,
        express_type_id: express_type,
        parcel_qty: 1,
        is_return_routelabel: 1,
        is_unified_waybill_no: 1,
        remark: request.remark.as_deref().filter(|r| !r.trim().is_empty()),
        service_list: id_check_service.map(|s| [s]),
    };
    // Plain strings and numbers always serialize.
    serde_json::to_string(&order).unwrap_or_default()
}

/// `EXP_RECE_UPDATE_ORDER` msgData cancelling `order_id` (`dealType` 2).
pub fn cancel_msg_data(order_id: &str) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Cancel<'a> {
        order_id: &'a str,
        deal_type: u8,
    }
    serde_json::to_string(&Cancel {
        order_id,
        deal_type: 2,
    })
    .unwrap_or_default()
}

/// `EXP_RECE_SEARCH_ROUTES` msgData for waybill numbers (`trackingType` 1,
/// `methodType` 1 standard query; strings, as in SF's SDK samples).
pub fn routes_msg_data(waybill_nos: &[String]) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Query<'a> {
        language: &'static str,
        tracking_type: &'static str,
        tracking_number: &'a [String],
        method_type: &'static str,
    }
    serde_json::to_string(&Query {
        language: LANGUAGE,
        tracking_type: "1",
        tracking_number: waybill_nos,
        method_type: "1",
    })
    .unwrap_or_default()
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "apiResultCode")]
    code: String,
    #[serde(rename = "apiErrorMsg", default)]
    error_msg: Option<String>,
    #[serde(rename = "apiResultData", default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct ServiceResult {
    success: Value,
    #[serde(rename = "errorCode", default)]
    error_code: Option<String>,
    #[serde(rename = "errorMsg", default)]
    error_msg: Option<String>,
    #[serde(rename = "msgData", default)]
    msg_data: Option<Value>,
}

fn malformed(what: impl Into<String>) -> CourierError {
    CourierError::Malformed(what.into())
}

/// A JSON value given either as itself or as a string holding its JSON text.
fn unwrap_json(v: Value, what: &str) -> Result<Value, CourierError> {
    match v {
        Value::String(s) => {
            serde_json::from_str(&s).map_err(|e| malformed(format!("{what} is not JSON: {e}")))
        }
        other => Ok(other),
    }
}

/// Opens the envelope and the service result: the `msgData` of a success
/// (`Value::Null` when there is none), or the refusal.
pub fn open(body: &str) -> Result<Value, CourierError> {
    let envelope: Envelope =
        serde_json::from_str(body).map_err(|e| malformed(format!("answer: {e}")))?;
    if envelope.code != "A1000" {
        return Err(CourierError::Api {
            code: envelope.code,
            message: envelope.error_msg.unwrap_or_default(),
        });
    }
    let data = envelope
        .data
        .filter(|v| !v.is_null())
        .ok_or_else(|| malformed("A1000 without apiResultData"))?;
    let data = unwrap_json(data, "apiResultData")?;
    let result: ServiceResult =
        serde_json::from_value(data).map_err(|e| malformed(format!("apiResultData: {e}")))?;
    let success = match &result.success {
        Value::Bool(b) => *b,
        Value::String(s) if s == "true" => true,
        Value::String(s) if s == "false" => false,
        _ => return Err(malformed("success is not a boolean")),
    };
    let code = result.error_code.unwrap_or_default();
    if !success || code != "S0000" {
        return Err(CourierError::Business {
            code: if code.is_empty() {
                "unknown".to_owned()
            } else {
                code
            },
            message: result.error_msg.unwrap_or_default(),
        });
    }
    match result.msg_data {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(v) => unwrap_json(v, "msgData"),
    }
}

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// Checks that an answer is about `order_id`.
fn check_order_id(msg: &Value, order_id: &str) -> Result<(), CourierError> {
    match str_field(msg, "orderId") {
        Some(id) if id == order_id => Ok(()),
        Some(id) => Err(malformed(format!("answer for order {id:?}"))),
        None => Err(malformed("answer without orderId")),
    }
}

fn is_waybill_no(s: &str) -> bool {
    (8..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Reads a create-order answer for `order_id`: the main waybill
/// (`waybillType` 1, or the only one listed). Screening result
/// (`filterResult`) 3 — not served — is [`CourierError::NotDeliverable`];
/// 1 (manual confirmation) and 2 (served) come with a waybill and pass.
pub fn parse_create_response(body: &str, order_id: &str) -> Result<Waybill, CourierError> {
    let msg = open(body)?;
    if !msg.is_object() {
        return Err(malformed("create-order answer without msgData"));
    }
    check_order_id(&msg, order_id)?;
    if msg.get("filterResult").and_then(Value::as_i64) == Some(3) {
        return Err(CourierError::NotDeliverable {
            reason: str_field(&msg, "remark").unwrap_or_default().to_owned(),
        });
    }
    let list = msg
        .get("waybillNoInfoList")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| malformed("no waybillNoInfoList"))?;
    let main = list
        .iter()
        .find(|w| w.get("waybillType").and_then(Value::as_i64) == Some(1))
        .or(if list.len() == 1 { list.first() } else { None })
        .ok_or_else(|| malformed("no main waybill (waybillType 1)"))?;
    let waybill_no = str_field(main, "waybillNo")
        .map(str::trim)
        .filter(|w| is_waybill_no(w))
        .ok_or_else(|| malformed("waybillNo missing or not alphanumeric"))?;
    Ok(Waybill {
        waybill_no: waybill_no.to_owned(),
        raw: body.to_owned(),
    })
}

/// Reads a cancel answer for `order_id`: `resStatus` 2 (操作成功) is
/// success; any other status is a refusal coded `resStatus_N`.
pub fn parse_cancel_response(body: &str, order_id: &str) -> Result<(), CourierError> {
    let msg = open(body)?;
    if !msg.is_object() {
        return Err(malformed("cancel answer without msgData"));
    }
    check_order_id(&msg, order_id)?;
    match msg.get("resStatus").and_then(Value::as_i64) {
        Some(2) => Ok(()),
        Some(n) => Err(CourierError::Business {
            code: format!("resStatus_{n}"),
            message: String::new(),
        }),
        None => Err(malformed("cancel answer without resStatus")),
    }
}

#[derive(Deserialize)]
struct RouteResp {
    #[serde(rename = "mailNo")]
    mail_no: String,
    #[serde(default)]
    routes: Option<Vec<WireRoute>>,
}

#[derive(Deserialize)]
struct WireRoute {
    #[serde(rename = "acceptTime")]
    accept_time: String,
    #[serde(rename = "acceptAddress", default)]
    accept_address: Option<String>,
    #[serde(default)]
    remark: Option<String>,
    #[serde(rename = "opCode")]
    op_code: String,
}

/// Reads a route-query answer for the waybills `asked`: every
/// `routeResps[].routes[]` node, in SF's order. A waybill that was not
/// asked for makes the answer malformed.
pub fn parse_routes_response(
    body: &str,
    asked: &[String],
) -> Result<Vec<RouteEvent>, CourierError> {
    let msg = open(body)?;
    let resps = match msg.get("routeResps") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(v) => v.clone(),
    };
    let resps: Vec<RouteResp> =
        serde_json::from_value(resps).map_err(|e| malformed(format!("routeResps: {e}")))?;
    let mut events = Vec::new();
    for resp in resps {
        let waybill = resp.mail_no.trim().to_owned();
        if !asked.iter().any(|a| a.trim() == waybill) {
            return Err(malformed(format!("routes for unasked waybill {waybill:?}")));
        }
        for r in resp.routes.unwrap_or_default() {
            let op_code = r.op_code.trim().to_owned();
            if op_code.is_empty() {
                return Err(malformed("route without opCode"));
            }
            let accept_time = parse_sf_time(r.accept_time.trim())
                .ok_or_else(|| malformed(format!("acceptTime {:?}", r.accept_time)))?;
            events.push(RouteEvent {
                waybill_no: waybill.clone(),
                order_id: None,
                stage: RouteStage::from_op_code(&op_code),
                op_code,
                accept_time,
                address: r.accept_address.unwrap_or_default().trim().to_owned(),
                remark: r.remark.unwrap_or_default().trim().to_owned(),
                event_id: None,
            });
        }
    }
    Ok(events)
}
