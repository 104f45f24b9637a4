//! 订单: one piece of certificate business an applicant asks for (新办,
//! 更新, 变更, 补办), from the first wizard step to the key in their hands.
//!
//! All states and every allowed transition are here, in one place
//! ([`transition`]); storage persists a transition with a check on the
//! version it read (compare-and-swap), so a stale or concurrent transition
//! fails cleanly instead of overwriting.
//!
//! ```text
//!                    ┌──────────── submit step k ≤ reached ────────────┐
//!                    ▼                                                 │
//!   ┌──────────── Draft{reached: 1..5} ───────── handling = counter ──► CounterVisit
//!   │                │  submit materials
//!   │        ┌───────┴─────────────┐
//!   │   by legal-rep SMS      by authorization letter
//!   │        ▼                     ▼
//!   │  AwaitingAuthorization ─同意─► InReview ◄───────── resubmit ───┐
//!   │       │ 拒绝/72 h              │ approve        │ reject(step, reason)
//!   │       ▼                        │                ▼             │
//!   │  AuthorizationRefused          │               Returned{step} ┘
//!   │   (resubmit step 5)            ▼
//!   │                   Approved (step 6: key model, address, invoice)
//!   │                     │ confirm ▲ revise (no payment under way)
//!   │                     ▼       │
//!   │                  AwaitingPayment (step 7) ── verified payment ──► Paid
//!   │                                                                    │ production starts
//!   │                                                                    ▼
//!   │   Delivered ◄── signed for ── Shipped ◄── shipped ── Produced ◄── InProduction
//!   │   (已签收)        (opCode 80)   (已发货)   (SF order)  (已制证)     (制证中; failed
//!   │                                                                  attempts stay here)
//!   └─► Cancelled  (by the applicant from any state before production;
//!                   a paid order is refunded in full)
//! ```
//!
//! A 证书变更 order (`OrderKind::Change`) runs the same wizard and review,
//! but its certificate goes onto the key the applicant already holds:
//! approval leads to `AwaitingKeyWrite` instead of step 6, and the
//! applicant's own key agent writes the new certificate
//! (`KeyWritten → Completed`). Nothing is paid or shipped. A priced
//! 证书更新 order (`OrderKind::Renewal`) starts at `AwaitingPayment` (no
//! wizard, no review) and its payment leads to the same key write. The
//! kind decides through [`transition_of`], the one entry point the
//! services use.
//!
//! While the legal representative has not answered, the applicant may
//! take step 5 back (`ReviseAuthorization`: correct the representative or
//! switch to the letter); the uploads stay. Step 8 (`InProduction →
//! Produced → Shipped → Delivered`) belongs to the counter and the courier:
//! an applicant cannot move it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Refusal;

/// The id of an order (订单号): shown to applicants, quoted in SMS replies
/// (`同意 12`) and in URLs. The store keeps it as a 64-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(pub i64);

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What the order is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderKind {
    /// 证书新办.
    New,
    /// 证书更新 (renewal).
    Renewal,
    /// 证书变更 (change of subject data).
    Change,
    /// 补办 (lost or broken key).
    Replacement,
}

impl OrderKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Renewal => "renewal",
            Self::Change => "change",
            Self::Replacement => "replacement",
        }
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::New => "证书新办",
            Self::Renewal => "证书更新",
            Self::Change => "证书变更",
            Self::Replacement => "证书补办",
        }
    }
}

impl FromStr for OrderKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [Self::New, Self::Renewal, Self::Change, Self::Replacement]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

/// The wizard's steps (manual 2.3.1 第一步 … 第五步).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// 第一步 个人实名认证.
    Identity = 1,
    /// 第二步 选择应用.
    Application = 2,
    /// 第三步 企业实名认证.
    Enterprise = 3,
    /// 第四步 办理方式.
    Handling = 4,
    /// 第五步 上传材料与授权.
    Materials = 5,
}

impl Step {
    /// All steps in order.
    pub const ALL: [Step; 5] = [
        Step::Identity,
        Step::Application,
        Step::Enterprise,
        Step::Handling,
        Step::Materials,
    ];

    /// 1…5.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The step numbered `n`.
    pub fn from_number(n: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|s| i64::from(s.number()) == n)
    }

    /// The step after this one, if any.
    pub fn next(self) -> Option<Self> {
        Self::from_number(i64::from(self.number()) + 1)
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Identity => "个人实名认证",
            Self::Application => "选择应用",
            Self::Enterprise => "企业实名认证",
            Self::Handling => "办理方式",
            Self::Materials => "上传材料与授权",
        }
    }
}

/// How the legal representative authorizes the application (step 5).
/// Stored in step 5's data by [`Authorization::as_str`]'s names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Authorization {
    /// 法人授权: an SMS to the legal representative, answered 同意 / 拒绝.
    LegalRepSms,
    /// 授权委托书: an uploaded letter, checked by the counter.
    Letter,
}

/// Where the order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    /// In the wizard; `reached` is the furthest step the applicant may fill
    /// (every earlier step may be revisited).
    Draft {
        /// The furthest step open.
        reached: Step,
    },
    /// Handling at a counter chosen (step 4): the wizard ends with the
    /// counter's address, hours and list of materials.
    CounterVisit,
    /// The SMS to the legal representative is out; waiting for 同意 / 拒绝.
    AwaitingAuthorization,
    /// The legal representative refused (or did not answer in time); the
    /// applicant may choose another authorization.
    AuthorizationRefused,
    /// In the counter's review queue (authorization letter).
    InReview,
    /// The counter returned the order to a step, with a reason.
    Returned {
        /// The step to fix.
        step: Step,
    },
    /// Approved: step 6 (key model, address, invoice) is next.
    Approved,
    /// Step 6 confirmed with its amount: step 7, payment, is next.
    AwaitingPayment,
    /// Paid (a verified payment); the counter produces the key next.
    Paid,
    /// A producer started writing the key (制证中); a failed attempt leaves
    /// the order here for the next one.
    InProduction,
    /// The certificate is on the key and read back (已制证); shipping next.
    Produced,
    /// Handed to the courier with a waybill (已发货).
    Shipped,
    /// The applicant signed for the key (已签收).
    Delivered,
    /// Given up (by the applicant, or by the counter for a paid order).
    Cancelled,
    /// 证书变更 approved, or a 证书更新 paid: the applicant writes the new
    /// certificate onto the key they hold (no production or shipping).
    AwaitingKeyWrite,
    /// Written: the new certificate is on the key, the old one revoked.
    Completed,
}

impl OrderState {
    /// Stored name and step (the step column is 0 when not applicable).
    pub fn to_db(self) -> (&'static str, i64) {
        match self {
            Self::Draft { reached } => ("draft", i64::from(reached.number())),
            Self::CounterVisit => ("counter_visit", 0),
            Self::AwaitingAuthorization => ("awaiting_authorization", 0),
            Self::AuthorizationRefused => ("authorization_refused", 0),
            Self::InReview => ("in_review", 0),
            Self::Returned { step } => ("returned", i64::from(step.number())),
            Self::Approved => ("approved", 0),
            Self::AwaitingPayment => ("awaiting_payment", 0),
            Self::Paid => ("paid", 0),
            Self::InProduction => ("in_production", 0),
            Self::Produced => ("produced", 0),
            Self::Shipped => ("shipped", 0),
            Self::Delivered => ("delivered", 0),
            Self::Cancelled => ("cancelled", 0),
            Self::AwaitingKeyWrite => ("awaiting_key_write", 0),
            Self::Completed => ("completed", 0),
        }
    }

    /// The state stored as `name` + `step`.
    pub fn from_db(name: &str, step: i64) -> Option<Self> {
        Some(match name {
            "draft" => Self::Draft {
                reached: Step::from_number(step)?,
            },
            "counter_visit" => Self::CounterVisit,
            "awaiting_authorization" => Self::AwaitingAuthorization,
            "authorization_refused" => Self::AuthorizationRefused,
            "in_review" => Self::InReview,
            "returned" => Self::Returned {
                step: Step::from_number(step)?,
            },
            "approved" => Self::Approved,
            "awaiting_payment" => Self::AwaitingPayment,
            "paid" => Self::Paid,
            "in_production" => Self::InProduction,
            "produced" => Self::Produced,
            "shipped" => Self::Shipped,
            "delivered" => Self::Delivered,
            "cancelled" => Self::Cancelled,
            "awaiting_key_write" => Self::AwaitingKeyWrite,
            "completed" => Self::Completed,
            _ => return None,
        })
    }

    /// Shown to the applicant.
    pub fn label_zh(self) -> String {
        match self {
            Self::Draft { reached } => {
                format!("填写中（第{}步 {}）", reached.number(), reached.label_zh())
            }
            Self::CounterVisit => "请到柜台办理".into(),
            Self::AwaitingAuthorization => "等待法定代表人短信授权".into(),
            Self::AuthorizationRefused => "法定代表人未授权".into(),
            Self::InReview => "柜台审核中".into(),
            Self::Returned { step } => format!("审核未通过，请修改第{}步", step.number()),
            Self::Approved => "审核通过，请选择介质与收货地址".into(),
            Self::AwaitingPayment => "待支付".into(),
            Self::Paid => "已支付，等待制证".into(),
            Self::InProduction => "制证中".into(),
            Self::Produced => "已制证，等待发货".into(),
            Self::Shipped => "已发货".into(),
            Self::Delivered => "已签收".into(),
            Self::Cancelled => "已取消".into(),
            Self::AwaitingKeyWrite => "待写入：请将新证书写入 UKey".into(),
            Self::Completed => "已完成".into(),
        }
    }

    /// The short title of the applicant's message when the order enters
    /// this state from `from` (审核通过, 待支付, 支付成功 …).
    pub fn message_title(self, from: OrderState) -> &'static str {
        match (from, self) {
            (Self::AwaitingAuthorization, Self::InReview) => "法定代表人已同意授权",
            (_, Self::InReview) => "已提交柜台审核",
            (_, Self::AwaitingAuthorization) => "已发送法定代表人授权短信",
            (_, Self::AuthorizationRefused) => "法定代表人未授权",
            (_, Self::Returned { .. }) => "审核未通过",
            (_, Self::Approved) => "审核通过",
            (_, Self::AwaitingPayment) => "待支付",
            (_, Self::Paid) => "支付成功",
            (_, Self::InProduction) => "开始制证",
            (_, Self::Produced) => "已制证",
            (_, Self::Shipped) => "已发货",
            (_, Self::Delivered) => "已签收",
            (_, Self::Cancelled) => "订单已取消",
            (Self::AwaitingPayment, Self::AwaitingKeyWrite) => "支付成功",
            (_, Self::AwaitingKeyWrite) => "审核通过",
            (_, Self::Completed) => "新证书已写入 UKey",
            (_, Self::CounterVisit) => "请到柜台办理",
            (_, Self::Draft { .. }) => "订单退回填写",
        }
    }

    /// Where the order is on the manual's eight steps (1–8), for the
    /// progress bar: the wizard's open step, 5 while the materials are
    /// checked, 6 for the key and address, 7 for payment, 8 after it.
    pub fn stage(self) -> u8 {
        match self {
            Self::Draft { reached } => reached.number(),
            Self::Returned { step } => step.number(),
            Self::CounterVisit => 4,
            Self::AwaitingAuthorization | Self::AuthorizationRefused | Self::InReview => 5,
            Self::Approved => 6,
            Self::AwaitingPayment => 7,
            Self::Paid
            | Self::InProduction
            | Self::Produced
            | Self::Shipped
            | Self::Delivered
            | Self::AwaitingKeyWrite
            | Self::Completed => 8,
            Self::Cancelled => 0,
        }
    }

    /// What happens next, in words, and how long it usually takes (the
    /// order page's 下一步).
    pub fn next_step_zh(self) -> (String, Option<&'static str>) {
        match self {
            Self::Draft { reached } => (
                format!("请继续填写第{}步：{}", reached.number(), reached.label_zh()),
                None,
            ),
            Self::CounterVisit => (
                "请携带材料到服务网点柜台办理".into(),
                Some("柜台办公时间：工作日 8:30–17:30"),
            ),
            Self::AwaitingAuthorization => (
                "等待法定代表人回复授权短信“同意”，同意后进入柜台审核".into(),
                Some("授权短信72小时内有效"),
            ),
            Self::AuthorizationRefused => ("请重新发送授权短信，或改为上传授权委托书".into(), None),
            Self::InReview => (
                "柜台审核您提交的材料，结果将通过消息和短信通知您".into(),
                Some("通常 0.5–3 个工作日"),
            ),
            Self::Returned { step } => (
                format!("请按审核意见修改第{}步后重新提交", step.number()),
                None,
            ),
            Self::Approved => (
                "请选择 UKey 介质、收货地址和发票信息（第六步）".into(),
                None,
            ),
            Self::AwaitingPayment => (
                "请选择支付方式，扫码完成支付（第七步）".into(),
                Some("每个支付二维码 30 分钟内有效"),
            ),
            Self::Paid => (
                "柜台制作 UKey 并以顺丰到付方式寄出（第八步），发货后通知您运单号".into(),
                Some("通常 1–2 个工作日内寄出"),
            ),
            Self::InProduction => (
                "柜台正在为您制作 UKey，完成后 PIN 码将以短信发送给您".into(),
                Some("通常 1–2 个工作日内寄出"),
            ),
            Self::Produced => (
                "UKey 已制作完成，等待顺丰揽收（到付）".into(),
                Some("通常 1 个工作日内寄出"),
            ),
            Self::Shipped => (
                "UKey 已通过顺丰到付寄出，请留意查收；签收时请支付运费".into(),
                Some("通常 1–3 天送达"),
            ),
            Self::Delivered => (
                "请按照《CA数字证书自助激活流程》激活证书后使用".into(),
                None,
            ),
            Self::Cancelled => ("订单已取消".into(), None),
            Self::AwaitingKeyWrite => (
                "请插入存放原证书的 UKey，打开“写入新证书”，验证 PIN 码和短信验证码后，新证书将写入原 UKey".into(),
                Some("写入约需 1 分钟，PIN 码不变"),
            ),
            Self::Completed => (
                "新证书已写入 UKey，原证书已停止使用；原证书在交易平台的激活（如有）已转到新证书".into(),
                None,
            ),
        }
    }

    /// Paid for: payment is settled (step 8 or after).
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            Self::Paid | Self::InProduction | Self::Produced | Self::Shipped | Self::Delivered
        )
    }

    /// Is the payment of an order of `kind` in this state settled? Step 8
    /// or after, or a paid renewal waiting for (or done with) its key
    /// write.
    pub fn payment_settled(self, kind: OrderKind) -> bool {
        self.is_paid()
            || (kind == OrderKind::Renewal
                && matches!(self, Self::AwaitingKeyWrite | Self::Completed))
    }

    /// Cancelled in this state, does an order get its payments back? A
    /// paid order before production, or a paid renewal not yet written (a
    /// change waiting for its write paid nothing, so nothing comes back).
    pub fn refunded_on_cancel(self) -> bool {
        matches!(self, Self::Paid | Self::AwaitingKeyWrite)
    }

    /// May the counter cancel the order now (with a reason; paid orders
    /// are refunded)? From approval until production starts, or until the
    /// applicant's key write.
    pub fn counter_cancellable(self) -> bool {
        matches!(
            self,
            Self::Approved | Self::AwaitingPayment | Self::Paid | Self::AwaitingKeyWrite
        )
    }

    /// May the applicant cancel the order now? (Paid orders are refunded.)
    pub fn cancellable(self) -> bool {
        transition(self, OrderEvent::Cancel).is_ok()
    }

    /// May the applicant change what was given at `step` (typed data or an
    /// uploaded image)? Refused when the step is not open yet, or when the
    /// order is past the wizard.
    pub fn may_edit(self, step: Step) -> Result<(), Refusal> {
        match self {
            Self::Draft { reached } if step <= reached => Ok(()),
            Self::Draft { .. } => Err(Refusal::OrderStepOutOfOrder(step.number())),
            Self::Returned { .. } | Self::AuthorizationRefused => Ok(()),
            _ => Err(Refusal::OrderStateConflict(self.label_zh())),
        }
    }

    /// May the applicant still change the wizard's data?
    pub fn editable(self) -> bool {
        matches!(
            self,
            Self::Draft { .. } | Self::Returned { .. } | Self::AuthorizationRefused
        )
    }
}

impl OrderState {
    /// Reads the [`Display`](fmt::Display) text back (`draft(3)`,
    /// `in_review`), as order histories store it.
    pub fn from_display(text: &str) -> Option<Self> {
        match text.split_once('(') {
            Some((name, rest)) => Self::from_db(name, rest.strip_suffix(')')?.parse().ok()?),
            None => Self::from_db(text, 0),
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, step) = self.to_db();
        if step == 0 {
            f.write_str(name)
        } else {
            write!(f, "{name}({step})")
        }
    }
}

/// Something that happens to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    /// The applicant saved step `0` (steps 1–3; step 4 online; step 5 is
    /// [`OrderEvent::SubmitMaterials`]).
    SaveStep(Step),
    /// Step 4: handling at a counter.
    ChooseCounter,
    /// Step 5 submitted with this authorization.
    SubmitMaterials(Authorization),
    /// The legal representative answered 同意.
    LegalRepAgreed,
    /// The legal representative answered 拒绝, or 72 hours passed.
    LegalRepRefused,
    /// The counter approved.
    Approve,
    /// The counter returned the order to a step.
    Reject(Step),
    /// The applicant takes step 5 back while the legal representative has
    /// not answered (to correct the representative or use the letter).
    ReviseAuthorization,
    /// Step 6 confirmed: the amount is fixed, payment is next.
    ConfirmCheckout,
    /// The applicant changes step 6 again (no payment under way).
    ReviseCheckout,
    /// A verified payment for the order's amount.
    PaymentSucceeded,
    /// The applicant (or, for an approved or paid order, the counter) gave
    /// up.
    Cancel,
    /// A producer started the first production attempt (step 8).
    StartProduction,
    /// The certificate was written to the key and read back.
    Produced,
    /// The courier accepted the shipment (a waybill number).
    Ship,
    /// The courier cancelled the shipment before pick-up (back to
    /// `Produced`, to ship again).
    CancelShipment,
    /// The courier reports the key signed for.
    SignedFor,
    /// 证书变更: the new certificate was written onto the applicant's key
    /// and read back.
    KeyWritten,
}

/// The state after `event` for an order of `kind`: the one entry point
/// of the order machine. A 证书变更 order is approved to
/// [`OrderState::AwaitingKeyWrite`] (its certificate goes onto the key
/// the applicant holds); every other order to step 6.
pub fn transition_of(
    kind: OrderKind,
    state: OrderState,
    event: OrderEvent,
) -> Result<OrderState, Refusal> {
    match (kind, state, event) {
        (OrderKind::Change, OrderState::InReview, OrderEvent::Approve)
        | (OrderKind::Renewal, OrderState::AwaitingPayment, OrderEvent::PaymentSucceeded) => {
            Ok(OrderState::AwaitingKeyWrite)
        }
        // A renewal order has no wizard, review or step 6 to go back to.
        (
            OrderKind::Renewal,
            _,
            OrderEvent::SaveStep(_)
            | OrderEvent::ChooseCounter
            | OrderEvent::SubmitMaterials(_)
            | OrderEvent::ReviseCheckout
            | OrderEvent::ConfirmCheckout,
        ) => Err(Refusal::OrderStateConflict(state.label_zh())),
        // Nothing for a counter visit to produce: the change is written
        // onto the key the applicant holds.
        (OrderKind::Change, _, OrderEvent::ChooseCounter) => Err(Refusal::InvalidField(
            "证书变更请选择在线办理：审核通过后，新证书在线写入您现在的 UKey".into(),
        )),
        (OrderKind::Change | OrderKind::Renewal, _, _) => transition(state, event),
        (_, OrderState::AwaitingKeyWrite, _) | (_, _, OrderEvent::KeyWritten) => {
            Err(Refusal::OrderStateConflict(state.label_zh()))
        }
        _ => transition(state, event),
    }
}

/// The state after `event`, or why the event is not allowed now, for
/// every kind alike ([`transition_of`] adds what depends on the kind).
pub fn transition(state: OrderState, event: OrderEvent) -> Result<OrderState, Refusal> {
    use OrderEvent as E;
    use OrderState as S;
    let refused = || Refusal::OrderStateConflict(state.label_zh());
    match (state, event) {
        // The wizard: a step may be saved when it is open; saving it opens
        // the next one. A returned order is edited at the returned step or
        // earlier, then resubmitted with step 5.
        (S::Draft { reached }, E::SaveStep(step)) if step <= reached && step < Step::Materials => {
            let next = step.next().unwrap_or(Step::Materials);
            Ok(S::Draft {
                reached: reached.max(next),
            })
        }
        (S::Draft { .. }, E::SaveStep(step)) => Err(Refusal::OrderStepOutOfOrder(step.number())),
        (S::Returned { step: back }, E::SaveStep(step))
            if step <= back || step < Step::Materials =>
        {
            Ok(S::Returned { step: back })
        }
        (S::AuthorizationRefused, E::SaveStep(step)) if step < Step::Materials => {
            Ok(S::AuthorizationRefused)
        }
        (S::Draft { reached }, E::ChooseCounter) if reached >= Step::Handling => {
            Ok(S::CounterVisit)
        }
        (S::Draft { .. }, E::ChooseCounter) => Err(Refusal::OrderStepOutOfOrder(4)),
        (
            S::Draft {
                reached: Step::Materials,
            },
            E::SubmitMaterials(a),
        )
        | (S::Returned { .. }, E::SubmitMaterials(a))
        | (S::AuthorizationRefused, E::SubmitMaterials(a)) => Ok(match a {
            Authorization::LegalRepSms => S::AwaitingAuthorization,
            Authorization::Letter => S::InReview,
        }),
        (S::Draft { .. }, E::SubmitMaterials(_)) => Err(Refusal::OrderStepOutOfOrder(5)),
        // The legal representative's 同意 settles the authorization; the
        // counter still checks the license and the images before step 6.
        (S::AwaitingAuthorization, E::LegalRepAgreed) => Ok(S::InReview),
        (S::AwaitingAuthorization, E::LegalRepRefused) => Ok(S::AuthorizationRefused),
        (S::AwaitingAuthorization, E::ReviseAuthorization) => Ok(S::Draft {
            reached: Step::Materials,
        }),
        (S::InReview, E::Approve) => Ok(S::Approved),
        (S::InReview, E::Reject(step)) => Ok(S::Returned { step }),
        (S::Approved, E::ConfirmCheckout) => Ok(S::AwaitingPayment),
        (S::AwaitingPayment, E::ReviseCheckout) => Ok(S::Approved),
        (S::AwaitingPayment, E::PaymentSucceeded) => Ok(S::Paid),
        (S::Paid, E::StartProduction) => Ok(S::InProduction),
        (S::InProduction, E::Produced) => Ok(S::Produced),
        (S::Produced, E::Ship) => Ok(S::Shipped),
        (S::Shipped, E::CancelShipment) => Ok(S::Produced),
        // A signed-for push may overtake the pick-up: it still counts.
        (S::Shipped, E::SignedFor) => Ok(S::Delivered),
        (S::AwaitingKeyWrite, E::KeyWritten) => Ok(S::Completed),
        (
            S::Draft { .. }
            | S::CounterVisit
            | S::AwaitingAuthorization
            | S::AuthorizationRefused
            | S::InReview
            | S::Returned { .. }
            | S::Approved
            | S::AwaitingPayment
            | S::Paid
            | S::AwaitingKeyWrite,
            E::Cancel,
        ) => Ok(S::Cancelled),
        _ => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use Authorization::*;
    use OrderEvent as E;
    use OrderState as S;

    fn run(events: &[OrderEvent]) -> Result<OrderState, Refusal> {
        events.iter().try_fold(
            S::Draft {
                reached: Step::Identity,
            },
            |s, e| transition(s, *e),
        )
    }

    const FIVE: [OrderEvent; 4] = [
        E::SaveStep(Step::Identity),
        E::SaveStep(Step::Application),
        E::SaveStep(Step::Enterprise),
        E::SaveStep(Step::Handling),
    ];

    #[test]
    fn the_letter_route_with_a_rejection() {
        let mut events = FIVE.to_vec();
        events.push(E::SubmitMaterials(Letter));
        assert_eq!(run(&events), Ok(S::InReview));
        events.push(E::Reject(Step::Materials));
        assert_eq!(
            run(&events),
            Ok(S::Returned {
                step: Step::Materials
            })
        );
        events.push(E::SubmitMaterials(Letter));
        events.push(E::Approve);
        assert_eq!(run(&events), Ok(S::Approved));
    }

    #[test]
    fn the_sms_route() {
        let mut events = FIVE.to_vec();
        events.push(E::SubmitMaterials(LegalRepSms));
        assert_eq!(run(&events), Ok(S::AwaitingAuthorization));
        let mut agreed = events.clone();
        agreed.push(E::LegalRepAgreed);
        assert_eq!(run(&agreed), Ok(S::InReview));
        agreed.push(E::Approve);
        assert_eq!(run(&agreed), Ok(S::Approved));
        events.push(E::LegalRepRefused);
        assert_eq!(run(&events), Ok(S::AuthorizationRefused));
        events.push(E::SubmitMaterials(Letter));
        assert_eq!(run(&events), Ok(S::InReview));
    }

    #[test]
    fn steps_out_of_order_are_refused() {
        assert_eq!(
            run(&[E::SaveStep(Step::Enterprise)]).unwrap_err().code(),
            "order_step_out_of_order"
        );
        assert!(run(&[E::SubmitMaterials(Letter)]).is_err());
        assert!(run(&[E::SaveStep(Step::Identity), E::ChooseCounter]).is_err());
        // Earlier steps can be revisited without losing the furthest step.
        let s = run(&[
            E::SaveStep(Step::Identity),
            E::SaveStep(Step::Application),
            E::SaveStep(Step::Identity),
        ]);
        assert_eq!(
            s,
            Ok(S::Draft {
                reached: Step::Enterprise
            })
        );
    }

    #[test]
    fn decided_orders_do_not_move_again() {
        let mut events = FIVE.to_vec();
        events.push(E::SubmitMaterials(Letter));
        events.push(E::Approve);
        for e in [
            E::Approve,
            E::Reject(Step::Identity),
            E::LegalRepAgreed,
            E::PaymentSucceeded,
            E::ReviseCheckout,
        ] {
            let mut again = events.clone();
            again.push(e);
            assert_eq!(
                run(&again).unwrap_err().code(),
                "order_state_conflict",
                "{e:?}"
            );
        }
    }

    #[test]
    fn checkout_payment_and_cancellation() {
        let mut events = FIVE.to_vec();
        events.push(E::SubmitMaterials(Letter));
        events.push(E::Approve);
        events.push(E::ConfirmCheckout);
        assert_eq!(run(&events), Ok(S::AwaitingPayment));
        // Step 6 may be revised while waiting for payment, then confirmed.
        let mut revised = events.clone();
        revised.push(E::ReviseCheckout);
        assert_eq!(run(&revised), Ok(S::Approved));
        events.push(E::PaymentSucceeded);
        assert_eq!(run(&events), Ok(S::Paid));
        // Paying twice, or revising after payment, is refused.
        for e in [E::PaymentSucceeded, E::ReviseCheckout, E::ConfirmCheckout] {
            let mut again = events.clone();
            again.push(e);
            assert_eq!(run(&again).unwrap_err().code(), "order_state_conflict");
        }
        // Every state before production may be cancelled; a cancelled
        // order stays cancelled.
        for s in [
            S::InReview,
            S::Approved,
            S::AwaitingPayment,
            S::Paid,
            S::AwaitingAuthorization,
        ] {
            assert!(s.cancellable(), "{s:?}");
        }
        assert!(!S::Cancelled.cancellable());
        assert_eq!(S::Paid.stage(), 8);
        assert_eq!(S::AwaitingPayment.message_title(S::Approved), "待支付");
    }

    #[test]
    fn the_authorization_can_be_taken_back() {
        let mut events = FIVE.to_vec();
        events.push(E::SubmitMaterials(LegalRepSms));
        events.push(E::ReviseAuthorization);
        assert_eq!(
            run(&events),
            Ok(S::Draft {
                reached: Step::Materials
            })
        );
        events.push(E::SubmitMaterials(Letter));
        assert_eq!(run(&events), Ok(S::InReview));
        assert!(transition(S::InReview, E::ReviseAuthorization).is_err());
    }

    #[test]
    fn uploads_follow_the_open_steps() {
        let draft3 = S::Draft {
            reached: Step::Enterprise,
        };
        assert_eq!(draft3.may_edit(Step::Enterprise), Ok(()));
        assert_eq!(
            draft3.may_edit(Step::Materials).unwrap_err().code(),
            "order_step_out_of_order"
        );
        assert_eq!(
            S::Returned {
                step: Step::Materials
            }
            .may_edit(Step::Materials),
            Ok(())
        );
        for s in [S::InReview, S::AwaitingAuthorization, S::Approved] {
            assert_eq!(
                s.may_edit(Step::Materials).unwrap_err().code(),
                "order_state_conflict"
            );
        }
    }

    #[test]
    fn counter_visit_and_cancel() {
        let mut events = FIVE.to_vec();
        events.push(E::ChooseCounter);
        assert_eq!(run(&events), Ok(S::CounterVisit));
        events.push(E::Cancel);
        assert_eq!(run(&events), Ok(S::Cancelled));
    }

    #[test]
    fn states_round_trip_through_storage() {
        let mut all = vec![
            S::CounterVisit,
            S::AwaitingAuthorization,
            S::AuthorizationRefused,
            S::InReview,
            S::Approved,
            S::AwaitingPayment,
            S::Paid,
            S::Cancelled,
        ];
        for step in Step::ALL {
            all.push(S::Draft { reached: step });
            all.push(S::Returned { step });
        }
        for s in all {
            let (name, step) = s.to_db();
            assert_eq!(OrderState::from_db(name, step), Some(s));
        }
        assert_eq!(OrderState::from_db("draft", 9), None);
        for s in [
            S::Draft {
                reached: Step::Enterprise,
            },
            S::InReview,
            S::Returned {
                step: Step::Materials,
            },
        ] {
            assert_eq!(OrderState::from_display(&s.to_string()), Some(s));
        }
        assert_eq!(OrderState::from_db("nope", 0), None);
    }

    #[test]
    fn a_change_is_written_onto_the_key_it_replaces() {
        let mut s = S::Draft {
            reached: Step::Identity,
        };
        let mut events = FIVE.to_vec();
        events.push(E::SubmitMaterials(LegalRepSms));
        events.push(E::LegalRepAgreed);
        for e in events {
            s = transition_of(OrderKind::Change, s, e).unwrap();
        }
        assert_eq!(s, S::InReview);
        // A new order goes on to step 6; a change to the key write.
        assert_eq!(
            transition_of(OrderKind::New, s, E::Approve),
            Ok(S::Approved)
        );
        let s = transition_of(OrderKind::Change, s, E::Approve).unwrap();
        assert_eq!(s, S::AwaitingKeyWrite);
        // No step 6–8 for it, and it may still be given up.
        for e in [E::ConfirmCheckout, E::PaymentSucceeded, E::StartProduction] {
            assert!(transition_of(OrderKind::Change, s, e).is_err(), "{e:?}");
        }
        assert_eq!(
            transition_of(OrderKind::Change, s, E::Cancel),
            Ok(S::Cancelled)
        );
        let done = transition_of(OrderKind::Change, s, E::KeyWritten).unwrap();
        assert_eq!(done, S::Completed);
        assert!(!done.cancellable());
        assert!(transition_of(OrderKind::Change, done, E::KeyWritten).is_err());
        assert!(transition_of(
            OrderKind::Change,
            S::Draft {
                reached: Step::Materials
            },
            E::ChooseCounter
        )
        .is_err());
        // A priced renewal: paid, then written; never through the wizard.
        let paid = transition_of(OrderKind::Renewal, S::AwaitingPayment, E::PaymentSucceeded);
        assert_eq!(paid, Ok(S::AwaitingKeyWrite));
        assert_eq!(
            transition_of(OrderKind::Renewal, S::AwaitingKeyWrite, E::KeyWritten),
            Ok(S::Completed)
        );
        assert_eq!(
            S::AwaitingKeyWrite.message_title(S::AwaitingPayment),
            "支付成功"
        );
        for e in [
            E::ReviseCheckout,
            E::SaveStep(Step::Identity),
            E::ConfirmCheckout,
        ] {
            assert!(transition_of(OrderKind::Renewal, S::AwaitingPayment, e).is_err());
        }
        // Only a change or a renewal is written onto a key by its applicant.
        for kind in [OrderKind::New, OrderKind::Replacement] {
            assert!(transition_of(kind, s, E::KeyWritten).is_err());
            assert!(transition_of(kind, S::Paid, E::KeyWritten).is_err());
        }
        for s in [S::AwaitingKeyWrite, S::Completed] {
            assert_eq!(S::from_db(s.to_db().0, s.to_db().1), Some(s));
            assert_eq!(S::from_display(&s.to_string()), Some(s));
        }
    }

    #[test]
    fn step_eight_runs_in_order_and_cannot_be_cancelled() {
        let mut s = S::Paid;
        for (e, want) in [
            (E::StartProduction, S::InProduction),
            (E::Produced, S::Produced),
            (E::Ship, S::Shipped),
            (E::CancelShipment, S::Produced),
            (E::Ship, S::Shipped),
            (E::SignedFor, S::Delivered),
        ] {
            s = transition(s, e).unwrap();
            assert_eq!(s, want);
            assert_eq!(S::from_db(s.to_db().0, s.to_db().1), Some(s));
            assert_eq!(s.stage(), 8);
        }
        for s in [S::InProduction, S::Produced, S::Shipped, S::Delivered] {
            assert!(!s.cancellable(), "{s}");
        }
        assert!(transition(S::Paid, E::Produced).is_err());
        assert!(transition(S::Produced, E::SignedFor).is_err());
        assert!(transition(S::Delivered, E::Ship).is_err());
        assert!(transition(S::InProduction, E::StartProduction).is_err());
    }
}
