//! An order's wizard data, read from the store's JSON documents into the
//! domain's step types ([`certhall_domain::steps`]) once, here. A document
//! that does not decode is CertHall's fault (an internal error, logged),
//! never the applicant's.

use certhall_domain::order::Step;
use certhall_domain::steps::{OrderSteps, StepData, StepDataError};
use certhall_domain::{AccountId, OrderId};
use certhall_store::orders::{self, OrderRow};

use crate::{Result, ServiceError, Services};

impl From<StepDataError> for ServiceError {
    fn from(e: StepDataError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl Services {
    /// Every step the order has saved.
    pub(crate) async fn steps_of(&self, order_id: OrderId) -> Result<OrderSteps> {
        let saved = orders::steps_data(&self.store, order_id).await?;
        OrderSteps::decode(saved).map_err(|e| decode_failed(order_id, e))
    }

    /// What was saved at `step` of `order` (already the caller's: from
    /// [`Services::order_of`]).
    pub async fn order_step(&self, order: &OrderRow, step: Step) -> Result<Option<StepData>> {
        self.step_of(order.id, step).await
    }

    /// One step of any order.
    pub(crate) async fn step_of(&self, order_id: OrderId, step: Step) -> Result<Option<StepData>> {
        orders::step_data(&self.store, order_id, step)
            .await?
            .map(|v| StepData::decode(step, v).map_err(|e| decode_failed(order_id, e)))
            .transpose()
    }

    /// The data saved at `step` of the order, else what the account typed
    /// at that step last time (prefill). Only a prefill is optional: one
    /// from another order that does not decode is logged and left out.
    pub async fn wizard_data(
        &self,
        account: AccountId,
        order: &OrderRow,
        step: Step,
    ) -> Result<Option<StepData>> {
        if let Some(data) = self.step_of(order.id, step).await? {
            return Ok(Some(data));
        }
        let Some(v) = orders::latest_step_data_of_account(&self.store, account, step).await? else {
            return Ok(None);
        };
        Ok(StepData::decode(step, v)
            .inspect_err(|e| {
                tracing::warn!(account = account.0, step = e.step, error = %e.reason, "prefill skipped: stored step data does not decode");
            })
            .ok())
    }
}

fn decode_failed(order_id: OrderId, e: StepDataError) -> ServiceError {
    tracing::error!(order = order_id.0, step = e.step, error = %e.reason, "stored step data does not decode");
    e.into()
}
