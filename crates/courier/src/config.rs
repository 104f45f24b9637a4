//! The `[courier]` section of the configuration file.
//!
//! ```toml
//! [courier]
//! kind = "sf"                     # or "demo"
//! partner_id = "YOUR_CUSTOMER_CODE"
//! check_word = "…"                # 校验码; keep out of version control
//! endpoint = "https://sfapi.sf-express.com/std/service"   # default
//! monthly_card = "7551234567"     # optional
//! express_type = 1                # optional, 顺丰特快
//! id_check = false                # ID-checked delivery for every shipment
//! push_digest = true              # accept signed route pushes
//!
//! [courier.id_check_service]      # optional: how this account orders it
//! name = "…"
//! value = "…"
//!
//! [courier.sender]                # CertHall's dispatch office
//! name = "发货组"
//! company = "CertHall 数字证书服务"
//! mobile = "13800138000"
//! province = "广东省"
//! city = "深圳市"
//! county = "南山区"
//! address = "科技园路1号"
//! ```
//!
//! `kind = "demo"` needs only `sender`; `partner_id` and `check_word` may
//! be set to fix the demo's push key (a random one is made otherwise).

use std::fmt;
use std::sync::Arc;

use certhall_domain::Clock;
use serde::Deserialize;

use crate::demo::{random_check_word, DemoCourier, DEFAULT_PARTNER_ID};
use crate::sf::{SfConfig, SfExpress, SfService, EXPRESS_TYPE_STANDARD, PRODUCTION_ENDPOINT};
use crate::{Courier, CourierError, Party};

/// Which courier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CourierKind {
    /// SF Express' open platform.
    Sf,
    /// The demo courier (no network).
    Demo,
}

/// `[courier]` as written in the file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourierConfig {
    /// `sf` or `demo`.
    pub kind: CourierKind,
    /// 顾客编码.
    #[serde(default)]
    pub partner_id: Option<String>,
    /// 校验码.
    #[serde(default)]
    pub check_word: Option<String>,
    /// The std/service URL (sf only).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// 月结卡号 (sf only).
    #[serde(default)]
    pub monthly_card: Option<String>,
    /// `expressTypeId` (sf only).
    #[serde(default)]
    pub express_type: Option<u32>,
    /// ID-checked delivery for every shipment.
    #[serde(default)]
    pub id_check: bool,
    /// The `serviceList` entry ordering ID-checked delivery (sf only).
    #[serde(default)]
    pub id_check_service: Option<SfService>,
    /// Accept digest-signed route pushes (default true).
    #[serde(default = "default_true")]
    pub push_digest: bool,
    /// CertHall's dispatch office, the sender of every shipment.
    pub sender: Party,
}

fn default_true() -> bool {
    true
}

impl fmt::Debug for CourierConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CourierConfig")
            .field("kind", &self.kind)
            .field("partner_id", &self.partner_id)
            .field("check_word", &self.check_word.as_ref().map(|_| "***"))
            .field("endpoint", &self.endpoint)
            .field("monthly_card", &self.monthly_card)
            .field("express_type", &self.express_type)
            .field("id_check", &self.id_check)
            .field("id_check_service", &self.id_check_service)
            .field("push_digest", &self.push_digest)
            .field("sender", &self.sender)
            .finish()
    }
}

impl CourierConfig {
    /// The SF settings this section describes (kind `sf`).
    pub fn sf_config(&self) -> Result<SfConfig, CourierError> {
        let partner_id = self.partner_id.clone().ok_or_else(|| {
            CourierError::Config("partner_id is required for kind = \"sf\"".into())
        })?;
        let check_word = self.check_word.clone().ok_or_else(|| {
            CourierError::Config("check_word is required for kind = \"sf\"".into())
        })?;
        let config = SfConfig {
            partner_id,
            check_word,
            endpoint: self
                .endpoint
                .clone()
                .unwrap_or_else(|| PRODUCTION_ENDPOINT.to_owned()),
            monthly_card: self.monthly_card.clone(),
            express_type: self.express_type.unwrap_or(EXPRESS_TYPE_STANDARD),
            id_check: self.id_check,
            id_check_service: self.id_check_service.clone(),
            push_digest: self.push_digest,
        };
        config.validate()?;
        Ok(config)
    }

    /// Builds the courier; `clock` timestamps SF calls.
    pub fn build(&self, clock: Arc<dyn Clock>) -> Result<Arc<dyn Courier>, CourierError> {
        match self.kind {
            CourierKind::Sf => Ok(Arc::new(SfExpress::new(self.sf_config()?, clock)?)),
            CourierKind::Demo => {
                for (name, set) in [
                    ("endpoint", self.endpoint.is_some()),
                    ("monthly_card", self.monthly_card.is_some()),
                    ("express_type", self.express_type.is_some()),
                    ("id_check_service", self.id_check_service.is_some()),
                    // Demo routes arrive only by push.
                    ("push_digest = false", !self.push_digest),
                ] {
                    if set {
                        return Err(CourierError::Config(format!(
                            "{name} does not apply to kind = \"demo\""
                        )));
                    }
                }
                let partner_id = self.partner_id.as_deref().unwrap_or(DEFAULT_PARTNER_ID);
                let check_word = match &self.check_word {
                    Some(word) if !word.is_empty() => word.clone(),
                    _ => random_check_word(),
                };
                Ok(Arc::new(DemoCourier::new(partner_id, check_word)))
            }
        }
    }
}
