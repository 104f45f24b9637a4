//! SF Express' open platform (顺丰开放平台, formerly 丰桥), the "std/service"
//! API: one URL, every call a signed form post (see [`crate::protocol`]).
//!
//! Calls used, each sent with a new `requestID` (a random UUID) and the
//! clock's time in milliseconds as `timestamp`:
//!
//! | call | `serviceCode` | msgData |
//! |---|---|---|
//! | create an order | `EXP_RECE_CREATE_ORDER` | [`messages::create_order_msg_data`] |
//! | cancel it | `EXP_RECE_UPDATE_ORDER` | `{"orderId":…,"dealType":2}` |
//! | query routes | `EXP_RECE_SEARCH_ROUTES` | [`messages::routes_msg_data`] |
//!
//! Answers are read strictly ([`messages`]); route pushes are verified by
//! [`crate::push::verify`]. The check word (校验码) never appears in errors,
//! logs or `Debug` output.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use certhall_domain::Clock;
use serde::{Deserialize, Serialize};

use crate::protocol::{new_request_id, signed_form, FORM_CONTENT_TYPE};
use crate::{
    push, Courier, CourierError, PushRefused, RouteEvent, ShipmentRequest, Waybill, HTTP_TIMEOUT,
};

pub mod messages;

use messages::ROUTE_QUERY_BATCH;

/// Production address of the std/service API (SF's SDK samples).
pub const PRODUCTION_ENDPOINT: &str = "https://sfapi.sf-express.com/std/service";

/// Sandbox (沙箱) address.
pub const SANDBOX_ENDPOINT: &str = "https://sfapi-sbox.sf-express.com/std/service";

/// `expressTypeId` 1: 顺丰特快.
pub const EXPRESS_TYPE_STANDARD: u32 = 1;

/// The largest answer read from SF.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// A value-added service (增值服务) entry of `serviceList`, as SF's
/// create-order request takes it: `name` is the service code, `value…`
/// its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SfService {
    /// Service code, as agreed with SF.
    pub name: String,
    /// `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `value1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value1: Option<String>,
    /// `value2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value2: Option<String>,
    /// `value3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value3: Option<String>,
    /// `value4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value4: Option<String>,
}

/// The adapter's settings (built from `[courier]` by
/// [`crate::CourierConfig`], or directly in tests).
#[derive(Clone)]
pub struct SfConfig {
    /// 顾客编码 (`partnerID`).
    pub partner_id: String,
    /// 校验码 (check word) of the environment `endpoint` belongs to.
    pub check_word: String,
    /// The std/service URL.
    pub endpoint: String,
    /// 月结卡号, sent as `monthlyCard` when set (identifies the account;
    /// with `payMethod` 2 the recipient pays).
    pub monthly_card: Option<String>,
    /// `expressTypeId` (快件产品类别), [`EXPRESS_TYPE_STANDARD`] unless set.
    pub express_type: u32,
    /// Ask ID-checked delivery for every shipment, not only those that
    /// request it.
    pub id_check: bool,
    /// The `serviceList` entry that orders ID-checked delivery on this
    /// account. SF's open-platform page does not name one; without it an
    /// ID-checked shipment is refused with
    /// [`CourierError::IdCheckUnavailable`] rather than sent unchecked.
    pub id_check_service: Option<SfService>,
    /// Accept route pushes, signed as [`crate::push`] describes; `false`
    /// refuses every push (track by [`Courier::routes`]).
    pub push_digest: bool,
}

impl fmt::Debug for SfConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SfConfig")
            .field("partner_id", &self.partner_id)
            .field("check_word", &"***")
            .field("endpoint", &self.endpoint)
            .field("monthly_card", &self.monthly_card)
            .field("express_type", &self.express_type)
            .field("id_check", &self.id_check)
            .field("id_check_service", &self.id_check_service)
            .field("push_digest", &self.push_digest)
            .finish()
    }
}

impl SfConfig {
    /// Production settings with the defaults: 顺丰特快, no monthly card, no
    /// ID check, pushes with digest.
    pub fn new(partner_id: impl Into<String>, check_word: impl Into<String>) -> Self {
        Self {
            partner_id: partner_id.into(),
            check_word: check_word.into(),
            endpoint: PRODUCTION_ENDPOINT.to_owned(),
            monthly_card: None,
            express_type: EXPRESS_TYPE_STANDARD,
            id_check: false,
            id_check_service: None,
            push_digest: true,
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), CourierError> {
        let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !printable(&self.partner_id) || self.partner_id.len() > 64 {
            return Err(CourierError::Config(
                "partner_id must be 1-64 printable ASCII characters".into(),
            ));
        }
        if !printable(&self.check_word) {
            return Err(CourierError::Config(
                "check_word must be printable ASCII".into(),
            ));
        }
        if !self.endpoint.starts_with("https://") && !self.endpoint.starts_with("http://") {
            return Err(CourierError::Config("endpoint must be a URL".into()));
        }
        if let Some(card) = &self.monthly_card {
            if card.is_empty() || card.len() > 20 || !card.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CourierError::Config(
                    "monthly_card must be 1-20 digits".into(),
                ));
            }
        }
        if self.express_type == 0 || self.express_type > 99_999 {
            return Err(CourierError::Config("express_type out of range".into()));
        }
        if let Some(s) = &self.id_check_service {
            if s.name.trim().is_empty() {
                return Err(CourierError::Config("id_check_service needs a name".into()));
            }
        }
        Ok(())
    }
}

/// The SF Express adapter.
#[derive(Debug)]
pub struct SfExpress {
    config: SfConfig,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
}

impl SfExpress {
    /// An adapter with `config`, timestamping calls from `clock`. Every
    /// call gives up after [`HTTP_TIMEOUT`].
    pub fn new(config: SfConfig, clock: Arc<dyn Clock>) -> Result<Self, CourierError> {
        config.validate()?;
        let client = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .user_agent(concat!("CertHall/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CourierError::Config(format!("http client: {e}")))?;
        Ok(Self {
            config,
            clock,
            client,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &SfConfig {
        &self.config
    }

    /// Posts one signed call and returns SF's answer text.
    async fn call(&self, service_code: &str, msg_data: &str) -> Result<String, CourierError> {
        let request_id = new_request_id();
        let timestamp = self.clock.now().millis();
        let body = signed_form(
            &self.config.partner_id,
            &request_id,
            service_code,
            timestamp,
            msg_data,
            &self.config.check_word,
        );
        let response = self
            .client
            .post(&self.config.endpoint)
            .header(reqwest::header::CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .map_err(|e| CourierError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(CourierError::Transport(format!("HTTP {}", status.as_u16())));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CourierError::Transport(e.without_url().to_string()))?;
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(CourierError::Malformed("answer too large".into()));
        }
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| CourierError::Malformed("answer is not UTF-8".into()))?;
        tracing::debug!(service_code, request_id, "sf call answered");
        Ok(text)
    }
}

#[async_trait]
impl Courier for SfExpress {
    fn name(&self) -> &'static str {
        "sf"
    }

    async fn create_order(&self, request: &ShipmentRequest) -> Result<Waybill, CourierError> {
        request.check()?;
        let id_check = request.id_check || self.config.id_check;
        let service = match (id_check, &self.config.id_check_service) {
            (false, _) => None,
            (true, Some(s)) => Some(s),
            (true, None) => return Err(CourierError::IdCheckUnavailable),
        };
        let msg_data = messages::create_order_msg_data(
            request,
            self.config.monthly_card.as_deref(),
            self.config.express_type,
            service,
        );
        let answer = self.call("EXP_RECE_CREATE_ORDER", &msg_data).await?;
        let waybill = messages::parse_create_response(&answer, &request.order_id)?;
        tracing::info!(order_id = %request.order_id, waybill_no = %waybill.waybill_no, "sf order created");
        Ok(waybill)
    }

    async fn cancel_order(&self, order_id: &str) -> Result<(), CourierError> {
        let answer = self
            .call(
                "EXP_RECE_UPDATE_ORDER",
                &messages::cancel_msg_data(order_id),
            )
            .await?;
        messages::parse_cancel_response(&answer, order_id)?;
        tracing::info!(order_id, "sf order cancelled");
        Ok(())
    }

    async fn routes(&self, waybill_nos: &[String]) -> Result<Vec<RouteEvent>, CourierError> {
        let mut events = Vec::new();
        for batch in waybill_nos.chunks(ROUTE_QUERY_BATCH) {
            let answer = self
                .call("EXP_RECE_SEARCH_ROUTES", &messages::routes_msg_data(batch))
                .await?;
            events.extend(messages::parse_routes_response(&answer, batch)?);
        }
        Ok(events)
    }

    fn verify_push(
        &self,
        content_type: &str,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Vec<RouteEvent>, PushRefused> {
        if !self.config.push_digest {
            return Err(PushRefused::Disabled);
        }
        push::verify(
            &self.config.partner_id,
            &self.config.check_word,
            content_type,
            body,
            now_ms,
        )
    }
}
