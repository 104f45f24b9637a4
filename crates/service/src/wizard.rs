//! The new-certificate wizard's steps (manual 2.3.1): each validates what
//! was typed with the domain's rules, then saves it as the step's data and
//! opens the next step in one transaction ([`Services::save_order_step`]).
//! A refusal saves nothing and leaves the order as it was.

use certhall_domain::order::{OrderEvent, Step};
use certhall_domain::steps::{ApplicationChoice, HandlingChoice, StepData};
use certhall_domain::wizard::{EnterpriseInput, Handling, PersonalIdentity};
use certhall_domain::{AccountId, OrderId, Phone, Refusal};
use certhall_store::orders::OrderRow;

use crate::orders::OrderActor;
use crate::{RequestMeta, Result, Services};

/// How identity claims are checked beyond their format (第一步). The
/// built-in check is the format, date of birth and check digit
/// ([`PersonalIdentity::parse`]); a third-party identity service (e.g. a
/// name + ID match) plugs in here.
pub trait IdentityVerifier: Send + Sync + std::fmt::Debug {
    /// Accepts or refuses a validated identity.
    fn verify(&self, identity: &PersonalIdentity) -> Result<(), Refusal>;
}

/// The built-in verifier: the format checks are all it does.
#[derive(Debug, Clone, Copy, Default)]
pub struct FormatOnly;

impl IdentityVerifier for FormatOnly {
    fn verify(&self, _: &PersonalIdentity) -> Result<(), Refusal> {
        Ok(())
    }
}

impl Services {
    /// Refuses early (before the input is even checked) when `step` is not
    /// open on the order: a step out of order is named as such.
    async fn step_open(&self, account: AccountId, order_id: OrderId, step: Step) -> Result<()> {
        let order = self.order_of(account, order_id).await?;
        certhall_domain::order::transition_of(order.kind, order.state, OrderEvent::SaveStep(step))?;
        Ok(())
    }

    /// 第一步: the applicant's name and resident ID; the phone is the
    /// account's.
    pub async fn wizard_identity(
        &self,
        account: AccountId,
        phone: &Phone,
        order_id: OrderId,
        name: &str,
        id_number: &str,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        self.step_open(account, order_id, Step::Identity).await?;
        let identity = PersonalIdentity::parse(name, id_number, phone.as_str(), self.clock.now())?;
        self.identity_verifier.verify(&identity)?;
        self.save_order_step(account, order_id, &StepData::Identity(identity), meta)
            .await
    }

    /// 第二步: an active application of the catalogue.
    pub async fn wizard_application(
        &self,
        account: AccountId,
        order_id: OrderId,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        self.step_open(account, order_id, Step::Application).await?;
        if code.trim().is_empty() {
            return Err(Refusal::MissingField("应用").into());
        }
        let app = self.application(code.trim()).await?;
        if !app.active {
            return Err(Refusal::ApplicationNotFound(app.code).into());
        }
        self.check_change_step(order_id, Some(&app.code), None)
            .await?;
        let data = StepData::Application(ApplicationChoice {
            code: app.code,
            name: app.name,
            profile: app.profile,
            key_kind: Some(app.key_kind),
            validity_days: app.validity_days,
            price_fen: Some(app.price_fen),
        });
        self.save_order_step(account, order_id, &data, meta).await
    }

    /// 第三步: the enterprise, as read from the license and corrected.
    pub async fn wizard_enterprise(
        &self,
        account: AccountId,
        order_id: OrderId,
        input: &EnterpriseInput,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        self.step_open(account, order_id, Step::Enterprise).await?;
        let enterprise = input.validate(self.clock.now())?;
        // The counter checks what is typed against the license: without
        // one, the order would only fail later, at step 5 (a change says
        // first what else is wrong with it).
        let license = certhall_store::materials::of_order(&self.store, order_id.0)
            .await?
            .iter()
            .any(|m| m.kind == certhall_domain::materials::MaterialKind::License);
        self.check_change_step(order_id, None, Some((&enterprise, license)))
            .await?;
        if !license {
            return Err(Refusal::MaterialMissing("营业执照").into());
        }
        self.save_order_step(account, order_id, &StepData::Enterprise(enterprise), meta)
            .await
    }

    /// 第四步: online, or at a counter (which ends the wizard).
    pub async fn wizard_handling(
        &self,
        account: AccountId,
        order_id: OrderId,
        handling: Handling,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        if handling == Handling::Counter {
            // Refused before anything is saved (a 证书变更 is online only).
            let order = self.order_of(account, order_id).await?;
            certhall_domain::order::transition_of(
                order.kind,
                certhall_domain::order::OrderState::Draft {
                    reached: Step::Handling,
                },
                OrderEvent::ChooseCounter,
            )?;
        }
        let order = self
            .save_order_step(
                account,
                order_id,
                &StepData::Handling(HandlingChoice { handling }),
                meta,
            )
            .await?;
        match handling {
            Handling::Online => Ok(order),
            Handling::Counter => {
                self.order_event(
                    OrderActor::Applicant(account),
                    order.id,
                    order.version,
                    OrderEvent::ChooseCounter,
                    None,
                    meta,
                )
                .await
            }
        }
    }
}
