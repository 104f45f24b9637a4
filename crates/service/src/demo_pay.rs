//! Demo mode's cashier (演示收银台): the WeChat Pay simulator's ledger in
//! the database, its API (what `/dev/wechatpay` serves), and the cashier's
//! 支付成功 / 支付失败, whose signed callback is posted over HTTP to
//! CertHall's real callback route — the same route, verification and
//! decryption a real WeChat Pay callback goes through.

use async_trait::async_trait;
use certhall_payment::simulator::{
    SimRefund, SimRequest, SimResponse, SimTrade, SimTradeState, SimulatorLedger,
};
use certhall_store::demo_pay::{self, DemoRefund, DemoTrade};
use certhall_store::Store;

use crate::{Refusal, Result, ServiceError, Services};

/// The simulator's ledger in the database (every process sees it).
#[derive(Debug, Clone)]
pub struct StoreLedger(pub Store);

fn e(e: certhall_store::StoreError) -> String {
    e.to_string()
}

fn to_sim(t: DemoTrade) -> Option<SimTrade> {
    Some(SimTrade {
        state: SimTradeState::parse(&t.state)?,
        out_trade_no: t.out_trade_no,
        description: t.description,
        amount_fen: t.amount_fen,
        transaction_id: t.transaction_id,
        notify_url: t.notify_url,
        created_at: t.created_at,
        expires_at: t.expires_at,
        paid_at: t.paid_at,
    })
}

fn from_sim(t: &SimTrade) -> DemoTrade {
    DemoTrade {
        out_trade_no: t.out_trade_no.clone(),
        description: t.description.clone(),
        amount_fen: t.amount_fen,
        state: t.state.as_str().to_owned(),
        transaction_id: t.transaction_id.clone(),
        notify_url: t.notify_url.clone(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        paid_at: t.paid_at,
    }
}

fn refund_from(r: &SimRefund) -> DemoRefund {
    DemoRefund {
        out_refund_no: r.out_refund_no.clone(),
        out_trade_no: r.out_trade_no.clone(),
        amount_fen: r.amount_fen,
        refund_id: r.refund_id.clone(),
        succeeded: r.succeeded,
        created_at: r.created_at,
        succeeded_at: r.succeeded_at,
    }
}

#[async_trait]
impl SimulatorLedger for StoreLedger {
    async fn trade(&self, no: &str) -> Result<Option<SimTrade>, String> {
        Ok(demo_pay::trade(&self.0, no)
            .await
            .map_err(e)?
            .and_then(to_sim))
    }
    async fn insert_trade(&self, t: &SimTrade) -> Result<bool, String> {
        demo_pay::insert_trade(&self.0, &from_sim(t))
            .await
            .map_err(e)
    }
    async fn update_trade(&self, t: &SimTrade, from: SimTradeState) -> Result<bool, String> {
        demo_pay::update_trade(&self.0, &from_sim(t), from.as_str())
            .await
            .map_err(e)
    }
    async fn refund(&self, no: &str) -> Result<Option<SimRefund>, String> {
        Ok(demo_pay::refund(&self.0, no)
            .await
            .map_err(e)?
            .map(|r| SimRefund {
                out_refund_no: r.out_refund_no,
                out_trade_no: r.out_trade_no,
                amount_fen: r.amount_fen,
                refund_id: r.refund_id,
                succeeded: r.succeeded,
                created_at: r.created_at,
                succeeded_at: r.succeeded_at,
            }))
    }
    async fn insert_refund(&self, r: &SimRefund) -> Result<bool, String> {
        demo_pay::insert_refund(&self.0, &refund_from(r))
            .await
            .map_err(e)
    }
    async fn update_refund(&self, r: &SimRefund) -> Result<(), String> {
        demo_pay::update_refund(&self.0, &refund_from(r))
            .await
            .map_err(e)
    }
}

/// What the cashier's button did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CashierOutcome {
    /// Paid; the callback was posted and answered with this HTTP status.
    Paid {
        /// The callback route's status (200 when accepted).
        callback_status: Option<u16>,
    },
    /// Marked failed (no callback, as with WeChat Pay).
    Failed,
}

impl Services {
    fn simulator(&self) -> Result<&std::sync::Arc<certhall_payment::simulator::WechatSimulator>> {
        self.payments
            .simulator()
            .ok_or_else(|| Refusal::NotFound.into())
    }

    /// `/dev/wechatpay/…`: the simulated WeChat Pay API (demo mode only).
    pub async fn demo_wechat_api(
        &self,
        method: &str,
        path_and_query: &str,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<SimResponse> {
        let req = SimRequest {
            method,
            path_and_query,
            authorization,
            body,
        };
        Ok(self.simulator()?.handle(req, self.clock.now()).await)
    }

    /// The cashier page's trade.
    pub async fn demo_cashier_trade(&self, out_trade_no: &str) -> Result<SimTrade> {
        self.simulator()?
            .trade(out_trade_no)
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .ok_or_else(|| Refusal::NotFound.into())
    }

    /// The QR code's content for a trade (the cashier shows it, as the
    /// step-7 page does, so it can be scanned with a phone).
    pub fn demo_cashier_code_url(&self, out_trade_no: &str) -> Result<String> {
        Ok(self.simulator()?.code_url(out_trade_no))
    }

    /// 支付成功 (`success`) or 支付失败 at the demo cashier. On success the
    /// signed callback is posted to its notify URL (CertHall's callback
    /// route); a failed delivery is reported, and the payment job's query
    /// finds the payment anyway.
    pub async fn demo_cashier_pay(
        &self,
        out_trade_no: &str,
        success: bool,
    ) -> Result<CashierOutcome> {
        let sim = self.simulator()?;
        let callback = sim
            .pay(out_trade_no, success, self.clock.now())
            .await
            .map_err(|e| match e {
                certhall_payment::simulator::SimError::NoTrade => Refusal::NotFound.into(),
                certhall_payment::simulator::SimError::Expired => ServiceError::Refused(
                    Refusal::InvalidField("二维码已过期，请回到订单页面重新发起支付".into()),
                ),
                certhall_payment::simulator::SimError::NotPayable(state) => ServiceError::Refused(
                    Refusal::InvalidField(format!("该笔支付已{state}，不能重复操作")),
                ),
                other => ServiceError::Internal(other.to_string()),
            })?;
        let Some(cb) = callback else {
            return Ok(CashierOutcome::Failed);
        };
        let status = match self.payments.http_client() {
            Some(client) => {
                let mut req = client.post(&cb.url).body(cb.body.clone());
                for (k, v) in &cb.headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                match req.send().await {
                    Ok(res) => Some(res.status().as_u16()),
                    Err(e) => {
                        tracing::warn!(error = %e.without_url(), "demo cashier: callback not delivered; the payment job will find the payment");
                        None
                    }
                }
            }
            None => None,
        };
        Ok(CashierOutcome::Paid {
            callback_status: status,
        })
    }
}
