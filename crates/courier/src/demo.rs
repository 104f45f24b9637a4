//! The demo courier: SF's formats without SF.
//!
//! Used in demo mode. Ordering a shipment checks it as the real adapter
//! does and answers with an SF-looking waybill number (`SF` and 13 random
//! digits) in an answer of SF's shape, read by the same parser as SF's;
//! nothing is kept. There is no remote tracking: [`Courier::routes`] is
//! empty, and route nodes arrive as pushes, which demo mode's
//! `/dev/courier` page builds with [`Courier::demo_push`] — the signed
//! envelope SF would send — and posts to CertHall's real push handler,
//! where [`Courier::verify_push`] checks them with the same code as for SF
//! ([`crate::push::verify`]). The demo's check word is random per process
//! unless configured, so even a demo site takes no forged pushes.

use std::fmt;

use async_trait::async_trait;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::json;

use crate::sf::messages::parse_create_response;
use crate::{push, Courier, CourierError, PushRefused, RouteEvent, ShipmentRequest, Waybill};

/// The demo's partner id (顾客编码) unless configured.
pub const DEFAULT_PARTNER_ID: &str = "CERTHALL_DEMO";

/// A random 32-character check word (letters and digits).
pub fn random_check_word() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The demo courier.
#[derive(Clone)]
pub struct DemoCourier {
    partner_id: String,
    check_word: String,
}

impl fmt::Debug for DemoCourier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoCourier")
            .field("partner_id", &self.partner_id)
            .field("check_word", &"***")
            .finish()
    }
}

impl DemoCourier {
    /// A demo courier signing as `partner_id` with `check_word`.
    pub fn new(partner_id: impl Into<String>, check_word: impl Into<String>) -> Self {
        Self {
            partner_id: partner_id.into(),
            check_word: check_word.into(),
        }
    }

    /// A demo courier with [`DEFAULT_PARTNER_ID`] and a random 32-character
    /// check word.
    pub fn with_random_key() -> Self {
        Self::new(DEFAULT_PARTNER_ID, random_check_word())
    }

    /// The partner id pushes must name.
    pub fn partner_id(&self) -> &str {
        &self.partner_id
    }

    /// A new waybill number: `SF` and 13 random digits (15 characters, the
    /// length of SF's unified waybill numbers).
    pub fn new_waybill_no() -> String {
        let n: u64 = rand::thread_rng().gen_range(0..10_000_000_000_000);
        format!("SF{n:013}")
    }
}

#[async_trait]
impl Courier for DemoCourier {
    fn name(&self) -> &'static str {
        "demo"
    }

    async fn create_order(&self, request: &ShipmentRequest) -> Result<Waybill, CourierError> {
        request.check()?;
        let waybill_no = Self::new_waybill_no();
        let result = json!({
            "success": true,
            "errorCode": "S0000",
            "errorMsg": null,
            "msgData": {
                "orderId": request.order_id,
                "filterResult": 2,
                "remark": "",
                "waybillNoInfoList": [{ "waybillType": 1, "waybillNo": waybill_no }],
            },
        });
        let answer = json!({
            "apiErrorMsg": "",
            "apiResponseID": crate::protocol::new_request_id().replace('-', "").to_uppercase(),
            "apiResultCode": "A1000",
            "apiResultData": result.to_string(),
        })
        .to_string();
        let waybill = parse_create_response(&answer, &request.order_id)?;
        tracing::info!(order_id = %request.order_id, waybill_no = %waybill.waybill_no, "demo shipment created");
        Ok(waybill)
    }

    async fn cancel_order(&self, order_id: &str) -> Result<(), CourierError> {
        tracing::info!(order_id, "demo shipment cancelled");
        Ok(())
    }

    async fn routes(&self, _waybill_nos: &[String]) -> Result<Vec<RouteEvent>, CourierError> {
        Ok(Vec::new())
    }

    fn verify_push(
        &self,
        content_type: &str,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Vec<RouteEvent>, PushRefused> {
        push::verify(
            &self.partner_id,
            &self.check_word,
            content_type,
            body,
            now_ms,
        )
    }

    fn is_demo(&self) -> bool {
        true
    }

    fn demo_push(&self, events: &[RouteEvent], now_ms: i64) -> Option<(&'static str, String)> {
        Some(push::sign_push(
            &self.partner_id,
            &self.check_word,
            events,
            now_ms,
        ))
    }
}
