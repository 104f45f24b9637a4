//! What each wizard step stores, typed (manual 2.3.1, 第一步–第五步).
//!
//! The store keeps each step's data as a JSON document (`order_steps.data`);
//! this module is the one place that knows its shape. The services decode
//! an order's documents once into [`OrderSteps`] and read fields by name
//! in Rust, never by string key.
//!
//! The wire format is the one the wizard has always written, kept
//! byte-compatible so existing databases and the JSON API keep working:
//!
//! | step | struct | stored keys |
//! |------|--------|-------------|
//! | 1 | [`PersonalIdentity`] | `name`, `id_number`, `phone` |
//! | 2 | [`ApplicationChoice`] | `code`, `name`, `profile`, `key_kind`, `validity_days`, `price_fen` |
//! | 3 | [`EnterpriseIdentity`] | the license's fields, `registered_place`, `nature` |
//! | 4 | [`HandlingChoice`] | `handling` (`online` / `counter`) |
//! | 5 | [`MaterialsStep`] | `authorization` (`legal_rep_sms` / `letter`), `legal_rep` (or `null`) |
//!
//! Every field but step 4's and step 5's route defaults when absent (step
//! 2's price to `None`, never to 0): rows
//! written before a field existed (step 2's `key_kind` came with step 8)
//! still decode, and so do the partial documents the test kit saves.

use serde::{Deserialize, Deserializer, Serialize};

use crate::materials::LegalRepContact;
use crate::order::{Authorization, Step};
use crate::production::KeyKind;
use crate::wizard::{EnterpriseIdentity, Handling, PersonalIdentity};

/// Step 2, 选择应用: the application as it was when chosen (the catalogue
/// may change later; the order keeps what the applicant agreed to).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApplicationChoice {
    /// The application's code, e.g. `zzggzy`. Read also from `application`,
    /// the key the test kit's hand-made orders use.
    #[serde(alias = "application")]
    pub code: String,
    /// Its shown name (also read from `application_name`).
    #[serde(alias = "application_name")]
    pub name: String,
    /// The CA profile certificates are issued under.
    pub profile: String,
    /// The key pair: absent in orders from before applications named it
    /// (their application's current kind applies), and an unknown name
    /// reads as absent rather than failing the whole order.
    #[serde(
        deserialize_with = "key_kind_or_none",
        serialize_with = "key_kind_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_kind: Option<KeyKind>,
    /// Certificate validity in days.
    pub validity_days: u32,
    /// Price in fen (分). Absent only in hand-made documents: a missing
    /// price must not read as free, so it stays `None` and checkout
    /// refuses the order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_fen: Option<i64>,
}

impl ApplicationChoice {
    /// What to show for the application: its name, else its code.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.code
        } else {
            &self.name
        }
    }

    /// True when `needle` is the application's code or name (the counter's
    /// queue filter).
    pub fn is_named(&self, needle: &str) -> bool {
        !needle.is_empty() && (self.code == needle || self.name == needle)
    }
}

fn key_kind_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<KeyKind>, D::Error> {
    let name: Option<String> = Option::deserialize(d)?;
    Ok(name.as_deref().and_then(KeyKind::parse))
}

fn key_kind_name<S: serde::Serializer>(kind: &Option<KeyKind>, s: S) -> Result<S::Ok, S::Error> {
    match kind {
        Some(k) => s.serialize_str(k.as_str()),
        None => s.serialize_none(),
    }
}

/// Step 4, 办理方式.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlingChoice {
    /// Online, or at a counter.
    pub handling: Handling,
}

/// Step 5, 上传材料与授权: the route chosen and, for the SMS route, whom
/// the request went to. The images themselves are rows of their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterialsStep {
    /// 法人短信授权 or 授权委托书.
    pub authorization: Authorization,
    /// The legal representative (SMS route only; stored as `null`
    /// otherwise).
    #[serde(default)]
    pub legal_rep: Option<LegalRepContact>,
}

/// One step's stored data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepData {
    /// 第一步.
    Identity(PersonalIdentity),
    /// 第二步.
    Application(ApplicationChoice),
    /// 第三步.
    Enterprise(EnterpriseIdentity),
    /// 第四步.
    Handling(HandlingChoice),
    /// 第五步.
    Materials(MaterialsStep),
}

/// A stored step document that is not the step's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step {step} data does not decode: {reason}")]
pub struct StepDataError {
    /// The step's number.
    pub step: u8,
    /// What serde said.
    pub reason: String,
}

impl StepData {
    /// Reads the stored document of `step`.
    pub fn decode(step: Step, value: serde_json::Value) -> Result<Self, StepDataError> {
        let err = |e: serde_json::Error| StepDataError {
            step: step.number(),
            reason: e.to_string(),
        };
        Ok(match step {
            Step::Identity => Self::Identity(serde_json::from_value(value).map_err(err)?),
            Step::Application => Self::Application(serde_json::from_value(value).map_err(err)?),
            Step::Enterprise => Self::Enterprise(serde_json::from_value(value).map_err(err)?),
            Step::Handling => Self::Handling(serde_json::from_value(value).map_err(err)?),
            Step::Materials => Self::Materials(serde_json::from_value(value).map_err(err)?),
        })
    }

    /// The document to store.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            Self::Identity(d) => serde_json::to_value(d),
            Self::Application(d) => serde_json::to_value(d),
            Self::Enterprise(d) => serde_json::to_value(d),
            Self::Handling(d) => serde_json::to_value(d),
            Self::Materials(d) => serde_json::to_value(d),
        };
        // Plain structs of strings and numbers: serializing cannot fail.
        value.unwrap_or_default()
    }

    /// The step it belongs to.
    pub fn step(&self) -> Step {
        match self {
            Self::Identity(_) => Step::Identity,
            Self::Application(_) => Step::Application,
            Self::Enterprise(_) => Step::Enterprise,
            Self::Handling(_) => Step::Handling,
            Self::Materials(_) => Step::Materials,
        }
    }

    /// The name the order list shows for steps 2 and 3 (application,
    /// enterprise).
    pub fn list_name(&self) -> Option<&str> {
        match self {
            Self::Application(a) => Some(a.name.as_str()),
            Self::Enterprise(e) => Some(e.name.as_str()),
            _ => None,
        }
        .filter(|n| !n.is_empty())
    }
}

/// Everything an order has saved, one optional value per step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderSteps {
    /// 第一步.
    pub identity: Option<PersonalIdentity>,
    /// 第二步.
    pub application: Option<ApplicationChoice>,
    /// 第三步.
    pub enterprise: Option<EnterpriseIdentity>,
    /// 第四步.
    pub handling: Option<HandlingChoice>,
    /// 第五步.
    pub materials: Option<MaterialsStep>,
}

impl OrderSteps {
    /// Reads an order's stored documents (any order, any subset).
    pub fn decode(
        saved: impl IntoIterator<Item = (Step, serde_json::Value)>,
    ) -> Result<Self, StepDataError> {
        let mut steps = Self::default();
        for (step, value) in saved {
            steps.put(StepData::decode(step, value)?);
        }
        Ok(steps)
    }

    /// Sets one step.
    pub fn put(&mut self, data: StepData) {
        match data {
            StepData::Identity(d) => self.identity = Some(d),
            StepData::Application(d) => self.application = Some(d),
            StepData::Enterprise(d) => self.enterprise = Some(d),
            StepData::Handling(d) => self.handling = Some(d),
            StepData::Materials(d) => self.materials = Some(d),
        }
    }

    /// The data of `step`, if saved.
    pub fn get(&self, step: Step) -> Option<StepData> {
        match step {
            Step::Identity => self.identity.clone().map(StepData::Identity),
            Step::Application => self.application.clone().map(StepData::Application),
            Step::Enterprise => self.enterprise.clone().map(StepData::Enterprise),
            Step::Handling => self.handling.map(StepData::Handling),
            Step::Materials => self.materials.clone().map(StepData::Materials),
        }
    }

    /// 经办人's name (step 1), empty when not saved.
    pub fn applicant_name(&self) -> &str {
        self.identity.as_ref().map_or("", |i| i.name.as_str())
    }

    /// The enterprise's name (step 3), empty when not saved.
    pub fn enterprise_name(&self) -> &str {
        self.enterprise.as_ref().map_or("", |e| e.name.as_str())
    }

    /// The application's shown name (step 2), empty when not chosen.
    pub fn application_name(&self) -> &str {
        self.application
            .as_ref()
            .map_or("", ApplicationChoice::display_name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use serde_json::json;

    use super::*;

    /// Step 2 as the wizard wrote it since step 8 (with `key_kind`).
    fn step2_now() -> serde_json::Value {
        json!({
            "code": "zzggzy", "name": "枣庄公共资源交易", "profile": "enterprise-sign",
            "key_kind": "sm2", "validity_days": 365, "price_fen": 30000,
        })
    }

    #[test]
    fn step_two_round_trips_byte_for_byte() {
        let stored = step2_now().to_string();
        let data =
            StepData::decode(Step::Application, serde_json::from_str(&stored).unwrap()).unwrap();
        let StepData::Application(a) = &data else {
            panic!("{data:?}")
        };
        assert_eq!(a.key_kind, Some(KeyKind::Sm2));
        assert_eq!(a.price_fen, Some(30_000));
        assert_eq!(a.validity_days, 365);
        assert_eq!(data.to_json().to_string(), stored);
    }

    #[test]
    fn step_two_from_before_key_kinds_decodes_and_stays_without_one() {
        // As written by the wizard between steps 1–4 and step 8.
        let old = json!({
            "code": "zzggzy", "name": "枣庄公共资源交易", "profile": "enterprise-sign",
            "validity_days": 365, "price_fen": 30000,
        });
        let data = StepData::decode(Step::Application, old.clone()).unwrap();
        let StepData::Application(a) = &data else {
            panic!("{data:?}")
        };
        assert_eq!(a.key_kind, None);
        assert_eq!(a.name, "枣庄公共资源交易");
        assert_eq!(
            data.to_json(),
            old,
            "no key_kind is made up on the way back"
        );
    }

    #[test]
    fn step_two_reads_the_legacy_keys_and_unknown_kinds() {
        let data = StepData::decode(Step::Application, json!({ "application": "zzggzy" })).unwrap();
        let StepData::Application(a) = data else {
            panic!()
        };
        assert_eq!(a.code, "zzggzy");
        assert_eq!(a.display_name(), "zzggzy", "no name: the code is shown");
        assert_eq!(a.price_fen, None, "a missing price is not a price of 0");
        assert!(a.is_named("zzggzy") && !a.is_named("other") && !a.is_named(""));

        let named = json!({ "application_name": "公共资源", "key_kind": "ed448" });
        let StepData::Application(a) = StepData::decode(Step::Application, named).unwrap() else {
            panic!()
        };
        assert_eq!(a.display_name(), "公共资源");
        assert_eq!(
            a.key_kind, None,
            "an unknown kind reads as none, not an error"
        );
    }

    #[test]
    fn partial_identity_and_enterprise_rows_decode_with_empty_fields() {
        let steps = OrderSteps::decode([
            (
                Step::Identity,
                json!({ "name": "张三", "id_number": "11010519491231002X" }),
            ),
            (
                Step::Enterprise,
                json!({ "name": "枣庄测试建设有限公司", "uscc": "91370400MA3C8XXX1X" }),
            ),
        ])
        .unwrap();
        assert_eq!(steps.applicant_name(), "张三");
        assert_eq!(steps.identity.as_ref().unwrap().phone, "");
        let e = steps.enterprise.as_ref().unwrap();
        assert_eq!(e.uscc, "91370400MA3C8XXX1X");
        assert_eq!(e.legal_representative, "");
        assert_eq!(steps.enterprise_name(), "枣庄测试建设有限公司");
        assert_eq!(steps.application_name(), "");
        assert!(steps.handling.is_none() && steps.materials.is_none());
    }

    #[test]
    fn steps_four_and_five_keep_their_wire_names() {
        let h = json!({ "handling": "counter" });
        let data = StepData::decode(Step::Handling, h.clone()).unwrap();
        assert_eq!(
            data,
            StepData::Handling(HandlingChoice {
                handling: Handling::Counter
            })
        );
        assert_eq!(data.to_json(), h);

        // The letter route stores `legal_rep: null`, as json! wrote it.
        let letter = json!({ "authorization": "letter", "legal_rep": null });
        let data = StepData::decode(Step::Materials, letter.clone()).unwrap();
        assert_eq!(data.to_json().to_string(), letter.to_string());

        let sms = json!({
            "authorization": "legal_rep_sms",
            "legal_rep": { "name": "张三", "id_number": "11010519491231002X", "phone": "13900139000" },
        });
        let StepData::Materials(m) = StepData::decode(Step::Materials, sms.clone()).unwrap() else {
            panic!()
        };
        assert_eq!(m.authorization, Authorization::LegalRepSms);
        assert_eq!(m.legal_rep.as_ref().unwrap().phone, "13900139000");
        assert_eq!(StepData::Materials(m).to_json(), sms);
    }

    #[test]
    fn documents_of_the_wrong_shape_are_errors_naming_the_step() {
        for (step, bad) in [
            (Step::Handling, json!({})),
            (Step::Handling, json!({ "handling": "by_post" })),
            (Step::Materials, json!({ "authorization": "seal" })),
            (Step::Application, json!({ "price_fen": "三百元" })),
            (Step::Identity, json!("张三")),
        ] {
            let e = StepData::decode(step, bad.clone()).unwrap_err();
            assert_eq!(e.step, step.number(), "{bad}");
        }
        let e = OrderSteps::decode([
            (Step::Identity, json!({ "name": "张三" })),
            (Step::Handling, json!({ "handling": 4 })),
        ])
        .unwrap_err();
        assert_eq!(e.step, 4);
    }

    #[test]
    fn order_steps_hand_back_what_was_put() {
        let mut steps = OrderSteps::default();
        for step in Step::ALL {
            assert_eq!(steps.get(step), None);
        }
        let app = StepData::decode(Step::Application, step2_now()).unwrap();
        steps.put(app.clone());
        assert_eq!(steps.get(Step::Application), Some(app.clone()));
        assert_eq!(app.step(), Step::Application);
        assert_eq!(app.list_name(), Some("枣庄公共资源交易"));
        assert_eq!(steps.application_name(), "枣庄公共资源交易");
    }
}
