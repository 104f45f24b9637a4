//! Shipping (step 8): the produced key goes to the applicant by courier,
//! 顺丰到付 (the recipient pays on delivery).
//!
//! A shipment row is written (`requesting`, with a courier order number
//! that is never reused) before the courier is called, so a crash mid-call
//! leaves a trace; the courier's answer moves it to `shipped` with the
//! waybill and the order to 已发货 in one transaction, or to `failed` with
//! the order still 已制证. Route events arrive by verified pushes and, as
//! the fallback, by polling; each is kept once; 已签收 (SF opCode 80)
//! moves the order to `Delivered`.

use std::sync::Arc;
use std::time::Duration;

use certhall_courier::{Courier, CourierError, Party, RouteEvent, RouteStage, ShipmentRequest};
use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::divisions;
use certhall_domain::order::{OrderEvent, OrderState};
use certhall_domain::{OrderId, Refusal, Timestamp};
use certhall_store::orders::OrderRow;
use certhall_store::shipments::{self as db, RouteRow, ShipmentRow};
use certhall_store::{checkouts, orders};
use serde_json::json;

use crate::counter::OperatorInfo;
use crate::orders::OrderActor;
use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

/// The job's lease name.
pub const SHIPPING_JOB: &str = "shipping";

/// A courier request without an answer for this long is given up (the
/// process died mid-call); the producer ships again with a new number.
const REQUEST_STUCK: Duration = Duration::from_secs(10 * 60);

/// How much of a push body is kept in `courier_pushes` (the route takes
/// at most 256 KiB anyway).
const MAX_PUSH_BODY: usize = 256 * 1024;

/// Characters kept of a refused push.
const REFUSED_PUSH_KEPT: usize = 2048;

/// The courier and where parcels leave from.
#[derive(Debug, Clone)]
pub struct Shipping {
    /// The courier.
    pub courier: Arc<dyn Courier>,
    /// CertHall's dispatch office (the sender).
    pub sender: Party,
    /// Ask for ID-checked delivery.
    pub id_check: bool,
    /// Where the courier's route pushes reach CertHall (the demo courier
    /// posts there).
    pub push_url: String,
    /// For the demo courier's pushes.
    pub http: reqwest::Client,
}

impl Shipping {
    /// Demo mode's: the demo courier, a demo dispatch office.
    pub fn demo(push_url: String) -> Self {
        Self {
            courier: Arc::new(certhall_courier::DemoCourier::with_random_key()),
            sender: demo_sender(),
            id_check: false,
            push_url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }
}

/// No courier configured (a deployment without `[courier]` outside demo
/// mode): every shipment fails with a clear message, every push is refused.
#[derive(Debug)]
pub struct Unconfigured;

#[async_trait::async_trait]
impl Courier for Unconfigured {
    fn name(&self) -> &'static str {
        "none"
    }
    async fn create_order(
        &self,
        _: &ShipmentRequest,
    ) -> Result<certhall_courier::Waybill, CourierError> {
        Err(CourierError::Config("no [courier] section".into()))
    }
    async fn cancel_order(&self, _: &str) -> Result<(), CourierError> {
        Err(CourierError::Config("no [courier] section".into()))
    }
    async fn routes(&self, _: &[String]) -> Result<Vec<RouteEvent>, CourierError> {
        Ok(Vec::new())
    }
    fn verify_push(
        &self,
        _: &str,
        _: &[u8],
        _: i64,
    ) -> Result<Vec<RouteEvent>, certhall_courier::PushRefused> {
        Err(certhall_courier::PushRefused::Disabled)
    }
}

/// The demo dispatch office.
pub fn demo_sender() -> Party {
    Party {
        name: "CertHall 制证中心".into(),
        company: Some("CertHall 演示数字认证中心".into()),
        mobile: "13800138000".into(),
        province: "山东省".into(),
        city: "枣庄市".into(),
        county: "市中区".into(),
        address: "光明路88号 数字证书服务大厅".into(),
    }
}

/// A shipment with its route.
#[derive(Debug, Clone)]
pub struct ShipmentView {
    /// The shipment.
    pub shipment: ShipmentRow,
    /// Its route, in time order.
    pub routes: Vec<RouteRow>,
}

impl ShipmentView {
    /// 已揽收 / 运输中 / … from the latest route event, else the row's state.
    pub fn status_zh(&self) -> &'static str {
        match self.shipment.state.as_str() {
            "delivered" => return "已签收",
            "failed" => return "下单失败",
            "cancelled" => return "已取消",
            "requesting" => return "下单中",
            _ => {}
        }
        self.routes
            .last()
            .map(|r| stage_label(&r.stage))
            .unwrap_or("已下单，等待揽收")
    }
}

/// The label of a stored stage key.
pub fn stage_label(key: &str) -> &'static str {
    [
        RouteStage::PickedUp,
        RouteStage::InTransit,
        RouteStage::OutForDelivery,
        RouteStage::SignedFor,
        RouteStage::Exception,
        RouteStage::Other,
    ]
    .into_iter()
    .find(|s| s.key() == key)
    .map_or("物流动态", RouteStage::label_zh)
}

/// What a push or a poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoutesApplied {
    /// New events recorded.
    pub recorded: u32,
    /// Events known already.
    pub duplicates: u32,
    /// Events for waybills CertHall does not know.
    pub unknown: u32,
    /// Orders moved to 已签收.
    pub delivered: u32,
}

/// What one shipping job run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShippingSweep {
    /// Shipments polled.
    pub polled: u32,
    /// What the polls brought.
    pub applied: RoutesApplied,
    /// Requests with an unknown outcome asked again.
    pub asked_again: u32,
}

/// The Chinese text for a courier failure, for the producer.
pub fn courier_error_zh(e: &CourierError) -> String {
    match e {
        CourierError::Transport(_) => "无法连接顺丰，请稍后重试".into(),
        CourierError::Api { code, .. } => {
            format!("顺丰网关拒绝了请求（{code}），请联系管理员检查顺丰接入配置")
        }
        CourierError::Business { code, message } => format!("顺丰拒绝下单（{code} {message}）"),
        CourierError::NotDeliverable { .. } => "顺丰不能收派该地址，请与申请人核实收货地址".into(),
        CourierError::Malformed(_) => "顺丰返回了无法识别的结果，请稍后重试".into(),
        CourierError::Invalid(what) => format!("收货信息不完整：{what}"),
        CourierError::IdCheckUnavailable => "未配置顺丰身份证核验服务，请联系管理员".into(),
        CourierError::Config(_) => "顺丰接入配置有误，请联系管理员".into(),
    }
}

impl Services {
    /// An order's shipments with their routes.
    pub async fn shipment_views(&self, order_id: OrderId) -> Result<Vec<ShipmentView>> {
        let mut out = Vec::new();
        for shipment in db::of_order(&self.store, order_id.0).await? {
            let routes = db::routes(&self.store, shipment.id).await?;
            out.push(ShipmentView { shipment, routes });
        }
        Ok(out)
    }

    /// 发货: orders the courier for a produced order. A courier refusal
    /// leaves the order 已制证 (the shipment row says why) and is the
    /// producer's to retry with a new number; an unknown outcome is asked
    /// again with the same number.
    pub async fn ship_order(
        &self,
        who: &OperatorInfo,
        order_id: OrderId,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        if !who.producer {
            return Err(Refusal::NotProducer.into());
        }
        let order = orders::get(&self.store, order_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        if order.state != OrderState::Produced {
            return Err(Refusal::OrderStateConflict(order.state.label_zh()).into());
        }
        let now = self.clock.now();
        let actor = Actor::Operator(who.id);

        let mut tx = self.store.begin_write().await?;
        // A request whose outcome is unknown (the courier timed out) is
        // asked again with the same courier order number: SF answers a
        // repeated orderId with the first waybill, so nothing ships twice.
        let shipment = match db::live_of_order(&mut tx, order_id.0).await? {
            Some(live) if live.state == "requesting" => live,
            Some(_) => return Err(Refusal::OrderStateConflict(order.state.label_zh()).into()),
            None => {
                let n = db::count_of_order(&mut tx, order_id.0).await? + 1;
                // Ours, unique across resets of a demo database as well: the
                // order, its shipment count and the time.
                let courier_order_id = format!("CH{order_id}-{n}-{}", now.millis());
                let Some(id) = db::insert_requesting(
                    &mut tx,
                    order_id.0,
                    self.shipping.courier.name(),
                    &courier_order_id,
                    &actor.to_string(),
                    now,
                )
                .await?
                else {
                    return Err(Refusal::OrderStateConflict(order.state.label_zh()).into());
                };
                append_audit(
                    &mut tx,
                    self.clock.as_ref(),
                    actor.clone(),
                    meta,
                    AuditEvent::ShipmentChanged,
                    json!({ "order": order_id, "shipment": id, "courier_order": courier_order_id, "event": "requested" }),
                )
                .await?;
                db::get_tx(&mut tx, id).await?.ok_or(Refusal::NotFound)?
            }
        };
        tx.commit().await?;
        self.request_shipment(&shipment, OrderActor::Operator(who.id), meta)
            .await
    }

    /// What the courier is asked for a shipment of its order.
    async fn shipment_request(&self, shipment: &ShipmentRow) -> Result<ShipmentRequest> {
        let order_id = shipment.order_id;
        let checkout = checkouts::get(&self.store, order_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        let facts = self.order_facts(OrderId(order_id)).await?;
        let (province, city, county) =
            divisions::delivery_leaf(&checkout.division_code.to_string())
                .map(|p| p.names())
                .unwrap_or_default();
        Ok(ShipmentRequest {
            order_id: shipment.courier_order_id.clone(),
            sender: self.shipping.sender.clone(),
            recipient: Party {
                name: checkout.recipient.clone(),
                company: Some(facts.enterprise.clone()).filter(|c| !c.is_empty()),
                mobile: checkout.phone.clone(),
                province,
                city,
                county,
                address: checkout.street.clone(),
            },
            cargo: format!("USB Key 数字证书介质（{}）", checkout.key_model_name),
            declared_count: 1,
            id_check: self.shipping.id_check,
            remark: Some(format!("证书订单 {order_id}，到付")),
        })
    }

    /// Calls the courier for a `requesting` shipment and records the
    /// answer: the waybill and 已发货 together; a definite refusal as
    /// `failed` (the order stays 已制证); an unknown outcome (time-out,
    /// unreadable answer) leaves the shipment `requesting`, to be asked
    /// again with the same number.
    async fn request_shipment(
        &self,
        shipment: &ShipmentRow,
        actor: OrderActor,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let order_id = shipment.order_id;
        let request = self.shipment_request(shipment).await?;
        let answer = self.shipping.courier.create_order(&request).await;
        let now = self.clock.now();
        let audit_actor = actor.audit_actor();
        let mut tx = self.store.begin_write().await?;
        match answer {
            Err(e) if e.is_transient() || matches!(e, CourierError::Malformed(_)) => {
                let text = courier_error_zh(&e);
                db::touch(&mut tx, shipment.id, now).await?;
                append_audit(
                    &mut tx,
                    self.clock.as_ref(),
                    audit_actor,
                    meta,
                    AuditEvent::ShipmentChanged,
                    json!({ "order": order_id, "shipment": shipment.id, "event": "unsure", "code": e.code(), "error": e.to_string() }),
                )
                .await?;
                tx.commit().await?;
                tracing::warn!(order = order_id, error = %e, "courier outcome unknown; asking again later with the same number");
                Err(Refusal::CourierUnsure(text).into())
            }
            Err(e) => {
                let text = courier_error_zh(&e);
                let error = format!("{}: {text}", e.code());
                db::set_state(
                    &mut tx,
                    shipment.id,
                    "requesting",
                    "failed",
                    None,
                    Some(&error),
                    now,
                )
                .await?;
                append_audit(
                    &mut tx,
                    self.clock.as_ref(),
                    audit_actor,
                    meta,
                    AuditEvent::ShipmentChanged,
                    json!({ "order": order_id, "shipment": shipment.id, "event": "failed", "code": e.code(), "error": e.to_string() }),
                )
                .await?;
                tx.commit().await?;
                tracing::warn!(order = order_id, error = %e, "courier order failed");
                Err(Refusal::CourierFailed(text).into())
            }
            Ok(waybill) => {
                if !db::set_state(
                    &mut tx,
                    shipment.id,
                    "requesting",
                    "shipped",
                    Some(&waybill.waybill_no),
                    None,
                    now,
                )
                .await?
                {
                    return Err(Refusal::OrderStateConflict(OrderState::Shipped.label_zh()).into());
                }
                append_audit(
                    &mut tx,
                    self.clock.as_ref(),
                    audit_actor,
                    meta,
                    AuditEvent::ShipmentChanged,
                    json!({ "order": order_id, "shipment": shipment.id, "event": "shipped", "waybill": waybill.waybill_no, "answer": waybill.raw }),
                )
                .await?;
                let order = self
                    .order_event_tx(
                        &mut tx,
                        actor,
                        OrderId(order_id),
                        None,
                        OrderEvent::Ship,
                        Some(&format!("顺丰运单号 {}", waybill.waybill_no)),
                        meta,
                    )
                    .await?;
                tx.commit().await?;
                Ok(order)
            }
        }
    }

    /// Cancels a shipment the courier has not picked up yet (a wrong
    /// address): the order is 已制证 again, to ship anew.
    pub async fn cancel_shipment(
        &self,
        who: &OperatorInfo,
        order_id: OrderId,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        if !who.producer {
            return Err(Refusal::NotProducer.into());
        }
        let view = self
            .shipment_views(order_id)
            .await?
            .into_iter()
            .find(|v| v.shipment.state == "shipped")
            .ok_or(Refusal::NotFound)?;
        if !view.routes.is_empty() {
            return Err(
                Refusal::CourierFailed("快件已揽收，不能取消，请联系顺丰拦截".into()).into(),
            );
        }
        self.shipping
            .courier
            .cancel_order(&view.shipment.courier_order_id)
            .await
            .map_err(|e| Refusal::ShipmentNotCancellable(courier_error_zh(&e)))?;
        let mut tx = self.store.begin_write().await?;
        if !db::set_state(
            &mut tx,
            view.shipment.id,
            "shipped",
            "cancelled",
            None,
            None,
            self.clock.now(),
        )
        .await?
        {
            return Err(Refusal::NotFound.into());
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Operator(who.id),
            meta,
            AuditEvent::ShipmentChanged,
            json!({ "order": order_id, "shipment": view.shipment.id, "event": "cancelled" }),
        )
        .await?;
        let order = self
            .order_event_tx(
                &mut tx,
                OrderActor::Operator(who.id),
                order_id,
                None,
                OrderEvent::CancelShipment,
                Some("顺丰订单已取消"),
                meta,
            )
            .await?;
        tx.commit().await?;
        Ok(order)
    }

    /// A route push from the courier, as received. Verified before anything
    /// in it is believed; recorded (refused ones too); each event kept
    /// once. `Ok` → answer with the courier's ack.
    pub async fn courier_push(
        &self,
        content_type: &str,
        body: &[u8],
        meta: &RequestMeta,
    ) -> Result<RoutesApplied> {
        let now = self.clock.now();
        let text: String =
            String::from_utf8_lossy(&body[..body.len().min(MAX_PUSH_BODY)]).into_owned();
        // Anyone can post here: of a refused push only the beginning is
        // kept, so refusals cannot fill the database.
        let refused_text: String = text.chars().take(REFUSED_PUSH_KEPT).collect();
        let verified = self
            .shipping
            .courier
            .verify_push(content_type, body, now.millis());
        let events = match verified {
            Ok(events) => events,
            Err(refused) => {
                let mut tx = self.store.begin_write().await?;
                db::insert_push(
                    &mut tx,
                    meta.ip.as_deref(),
                    &refused_text,
                    &format!("refused: {}", refused.code()),
                    now,
                )
                .await?;
                append_audit(
                    &mut tx,
                    self.clock.as_ref(),
                    Actor::System,
                    meta,
                    AuditEvent::CourierPush,
                    json!({ "outcome": "refused", "reason": refused.code(), "detail": refused.to_string() }),
                )
                .await?;
                tx.commit().await?;
                return Err(Refusal::CourierPushRefused.into());
            }
        };
        let applied = self.apply_routes(&events, "push").await?;
        let mut tx = self.store.begin_write().await?;
        let outcome = if applied.recorded == 0 {
            "duplicate"
        } else {
            "applied"
        };
        db::insert_push(&mut tx, meta.ip.as_deref(), &text, outcome, now).await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::System,
            meta,
            AuditEvent::CourierPush,
            json!({
                "outcome": outcome, "events": events.len(), "recorded": applied.recorded,
                "duplicates": applied.duplicates, "unknown": applied.unknown, "delivered": applied.delivered,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// The courier's ack / nack for pushes.
    pub fn courier_push_answer(&self, ok: bool) -> (&'static str, String) {
        if ok {
            self.shipping.courier.push_ack()
        } else {
            self.shipping.courier.push_nack()
        }
    }

    async fn apply_routes(&self, events: &[RouteEvent], source: &str) -> Result<RoutesApplied> {
        let mut out = RoutesApplied::default();
        for e in events {
            let now = self.clock.now();
            let mut tx = self.store.begin_write().await?;
            let Some(shipment) = db::by_waybill_tx(&mut tx, e.waybill_no.trim()).await? else {
                out.unknown += 1;
                continue;
            };
            let row = RouteRow {
                dedup_key: e.dedup_key(),
                op_code: e.op_code.clone(),
                stage: e.stage.key().to_owned(),
                accept_time: Timestamp::from_millis(
                    i64::try_from(e.accept_time_utc().unix_timestamp_nanos() / 1_000_000)
                        .unwrap_or(0),
                ),
                address: e.address.chars().take(200).collect(),
                remark: e.remark.chars().take(500).collect(),
                source: source.to_owned(),
            };
            if !db::insert_route(&mut tx, shipment.id, &row, now).await? {
                out.duplicates += 1;
                continue;
            }
            out.recorded += 1;
            if e.stage == RouteStage::SignedFor
                && db::set_state(
                    &mut tx,
                    shipment.id,
                    "shipped",
                    "delivered",
                    None,
                    None,
                    now,
                )
                .await?
            {
                append_audit(
                    &mut tx,
                    self.clock.as_ref(),
                    Actor::System,
                    &RequestMeta::default(),
                    AuditEvent::ShipmentChanged,
                    json!({ "order": shipment.order_id, "shipment": shipment.id, "event": "delivered", "waybill": e.waybill_no, "op_code": e.op_code }),
                )
                .await?;
                let order = orders::get_tx(&mut tx, OrderId(shipment.order_id)).await?;
                if order.is_some_and(|o| o.state == OrderState::Shipped) {
                    self.order_event_tx(
                        &mut tx,
                        OrderActor::System,
                        OrderId(shipment.order_id),
                        None,
                        OrderEvent::SignedFor,
                        None,
                        &RequestMeta::default(),
                    )
                    .await?;
                    out.delivered += 1;
                }
            }
            tx.commit().await?;
        }
        Ok(out)
    }

    /// Polls the courier for shipments on their way (the fallback when a
    /// push is lost) and asks again about courier requests whose outcome
    /// is unknown.
    pub async fn poll_shipments(&self) -> Result<ShippingSweep> {
        let mut sweep = ShippingSweep::default();
        let now = self.clock.now();
        for stuck in db::stuck_requesting(&self.store, now.minus(REQUEST_STUCK)).await? {
            // Asked again with the same number: SF answers with the waybill
            // if it took the order, and nothing ships twice.
            match self
                .request_shipment(&stuck, OrderActor::System, &RequestMeta::default())
                .await
            {
                Ok(_) => sweep.asked_again += 1,
                Err(ServiceError::Refused(r)) => {
                    tracing::info!(shipment = stuck.id, refusal = %r, "courier asked again");
                    sweep.asked_again += 1;
                }
                Err(e) => return Err(e),
            }
        }
        let in_transit = db::in_transit(&self.store, 50).await?;
        let waybills: Vec<String> = in_transit
            .iter()
            .filter_map(|s| s.waybill_no.clone())
            .collect();
        if waybills.is_empty() {
            return Ok(sweep);
        }
        sweep.polled = u32::try_from(waybills.len()).unwrap_or(u32::MAX);
        // SF answers up to ten waybills per query.
        for chunk in waybills.chunks(10) {
            match self.shipping.courier.routes(chunk).await {
                Ok(events) => {
                    let a = self.apply_routes(&events, "poll").await?;
                    sweep.applied.recorded += a.recorded;
                    sweep.applied.duplicates += a.duplicates;
                    sweep.applied.unknown += a.unknown;
                    sweep.applied.delivered += a.delivered;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "courier route query failed; next tick tries again")
                }
            }
        }
        // Looked at: the next tick starts with the others.
        let mut tx = self.store.begin_write().await?;
        for s in &in_transit {
            db::touch(&mut tx, s.id, now).await?;
        }
        tx.commit().await?;
        Ok(sweep)
    }

    /// Runs [`Services::poll_shipments`] for the current tick of
    /// `interval` unless another process has (a database lease).
    pub async fn run_shipping_job(
        &self,
        holder: &str,
        interval: Duration,
    ) -> Result<Option<ShippingSweep>> {
        self.run_leased(SHIPPING_JOB, holder, interval, self.poll_shipments(), |s| {
            format!(
                "polled {} recorded {} delivered {} asked_again {}",
                s.polled, s.applied.recorded, s.applied.delivered, s.asked_again
            )
        })
        .await
    }

    /// True while the demo courier is in use.
    pub fn demo_courier(&self) -> bool {
        self.shipping.courier.is_demo()
    }

    /// Demo mode's shipments, newest first, for `/dev/courier`.
    pub async fn demo_courier_shipments(&self) -> Result<Vec<ShipmentView>> {
        if !self.demo_courier() {
            return Err(Refusal::NotFound.into());
        }
        let mut out = Vec::new();
        for shipment in db::recent(&self.store, 50).await? {
            let routes = db::routes(&self.store, shipment.id).await?;
            out.push(ShipmentView { shipment, routes });
        }
        Ok(out)
    }

    /// Demo courier: the parcel reaches its next stage (揽收 → 运输中 →
    /// 派送中 → 已签收). The push SF would send is signed with the demo
    /// key and posted to CertHall's real push route. Returns the HTTP
    /// status of that post.
    pub async fn demo_courier_advance(&self, shipment_id: i64) -> Result<u16> {
        if !self.demo_courier() {
            return Err(Refusal::NotFound.into());
        }
        let shipment = db::get(&self.store, shipment_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        let waybill = match (&shipment.waybill_no, shipment.state.as_str()) {
            (Some(w), "shipped") => w.clone(),
            _ => return Err(Refusal::InvalidField("该快件已签收或未发货".into()).into()),
        };
        let done = db::routes(&self.store, shipment_id).await?;
        let next = [
            ("50", "顺丰速运 已收取快件"),
            ("30", "快件在【枣庄集散中心】完成分拣，准备发往下一站"),
            ("44", "快件交给派送员，正在派送途中"),
            ("80", "快件已签收，签收人：本人"),
        ]
        .into_iter()
        .find(|(code, _)| !done.iter().any(|r| r.op_code == *code))
        .unwrap_or(("80", "快件已签收"));
        let now = self.clock.now();
        let accept = time::OffsetDateTime::from_unix_timestamp(now.millis() / 1000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
            .to_offset(certhall_courier::route::CHINA_TIME);
        let mut event = RouteEvent::new(
            &waybill,
            next.0,
            time::PrimitiveDateTime::new(accept.date(), accept.time()),
        );
        event.order_id = Some(shipment.courier_order_id.clone());
        event.address = "枣庄市".into();
        event.remark = next.1.into();
        event.event_id = Some(format!("demo{}{}", shipment_id, now.millis()));
        let (content_type, body) = self
            .shipping
            .courier
            .demo_push(&[event], now.millis())
            .ok_or(Refusal::NotFound)?;
        let res = self
            .shipping
            .http
            .post(&self.shipping.push_url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                ServiceError::Internal(format!(
                    "demo courier push not delivered: {}",
                    e.without_url()
                ))
            })?;
        Ok(res.status().as_u16())
    }
}
