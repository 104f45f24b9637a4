//! Route events (路由) and what their operation codes (`opCode`) mean.
//!
//! SF reports a parcel's progress as route nodes, each with an operation
//! code. The table of codes is SF's appendix 路由操作码 (opCode / opName);
//! [`RouteStage::from_op_code`] folds the codes CertHall cares about into a
//! handful of stages. Codes not listed are [`RouteStage::Other`]: shown with
//! SF's own remark, never guessed at.

use std::fmt::Write as _;

use md5::{Digest as _, Md5};
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::protocol::format_sf_time;

/// Where a parcel is, as far as the applicant cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteStage {
    /// Picked up by the courier (揽收).
    PickedUp,
    /// Between networks: sorting, line haul, arrival (运输中).
    InTransit,
    /// With the delivery courier (派送中).
    OutForDelivery,
    /// Signed for by the recipient (已签收).
    SignedFor,
    /// A delivery problem: failed attempt, held, returned or redirected
    /// (异常).
    Exception,
    /// Any other node (information, customs, lockers, …).
    Other,
}

impl RouteStage {
    /// The stage of SF operation code `op_code`.
    ///
    /// | stage | codes (SF's 路由操作码 names) |
    /// |---|---|
    /// | PickedUp | 50 顺丰已收件, 54 上门收件 |
    /// | InTransit | 30 已装车/发往, 31 快件到达, 36 封车操作, 3036 准备送往下一站, 10 发车, 11 到车, 105 航空起飞, 106 航空落地, 302 车辆发车, 304 离开经停点, 43 收件入仓, 123 正送往顺丰店/站, 130 到达顺丰店/站, 204 派件责任交接, 407 接驳点收件出仓, 570 铁路发车, 571 铁路到车 |
    /// | OutForDelivery | 44 正在派送途中, 34 滞留件出仓, 122 加时区域派件出仓, 630 落地配派件出仓, 880 上门派件 |
    /// | SignedFor | 80 已签收, 8000 签收信息（签收图） |
    /// | Exception | 33 派件异常原因, 70 派件不成功, 72 标记异常, 77 中转滞留, 66 中转批量滞留, 99 应客户要求转寄中, 648 已退回/转寄, 631 新单退回, 611 理货异常, 870 非正常派件 |
    ///
    /// Deliveries to a locker or station (125 丰巢, 678 驿站) are `Other`:
    /// nobody has signed yet, and a USB key for a certificate must reach
    /// its applicant.
    pub fn from_op_code(op_code: &str) -> Self {
        match op_code.trim() {
            "50" | "54" => Self::PickedUp,
            "30" | "31" | "36" | "3036" | "10" | "11" | "105" | "106" | "302" | "304" | "43"
            | "123" | "130" | "204" | "407" | "570" | "571" => Self::InTransit,
            "44" | "34" | "122" | "630" | "880" => Self::OutForDelivery,
            "80" | "8000" => Self::SignedFor,
            "33" | "70" | "72" | "77" | "66" | "99" | "648" | "631" | "611" | "870" => {
                Self::Exception
            }
            _ => Self::Other,
        }
    }

    /// The label pages show.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::PickedUp => "已揽收",
            Self::InTransit => "运输中",
            Self::OutForDelivery => "派送中",
            Self::SignedFor => "已签收",
            Self::Exception => "派送异常",
            Self::Other => "物流动态",
        }
    }

    /// A stable lower-case key for storage and logs.
    pub fn key(self) -> &'static str {
        match self {
            Self::PickedUp => "picked_up",
            Self::InTransit => "in_transit",
            Self::OutForDelivery => "out_for_delivery",
            Self::SignedFor => "signed_for",
            Self::Exception => "exception",
            Self::Other => "other",
        }
    }
}

/// China Standard Time, in which SF writes every time.
pub const CHINA_TIME: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// One route node of a waybill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEvent {
    /// The waybill (运单号, `mailno` / `mailNo`).
    pub waybill_no: String,
    /// Our order id (`orderid`), when SF gives it (pushes do).
    pub order_id: Option<String>,
    /// SF's operation code, as sent.
    pub op_code: String,
    /// What the code means for CertHall.
    pub stage: RouteStage,
    /// When it happened, as SF writes it: **China Standard Time (UTC+8)**,
    /// no offset attached (see [`RouteEvent::accept_time_utc`]).
    pub accept_time: PrimitiveDateTime,
    /// Where (`acceptAddress`, e.g. 深圳市), possibly empty.
    pub address: String,
    /// SF's description of the node (`remark`), possibly empty.
    pub remark: String,
    /// SF's id of the node (`id`, pushes only), kept for audit.
    pub event_id: Option<String>,
}

impl RouteEvent {
    /// An event with its stage taken from `op_code`.
    pub fn new(
        waybill_no: impl Into<String>,
        op_code: impl Into<String>,
        accept_time: PrimitiveDateTime,
    ) -> Self {
        let op_code = op_code.into();
        Self {
            waybill_no: waybill_no.into(),
            order_id: None,
            stage: RouteStage::from_op_code(&op_code),
            op_code,
            accept_time,
            address: String::new(),
            remark: String::new(),
            event_id: None,
        }
    }

    /// The instant, reading [`RouteEvent::accept_time`] as UTC+8.
    pub fn accept_time_utc(&self) -> OffsetDateTime {
        self.accept_time.assume_offset(CHINA_TIME)
    }

    /// The key to store the event under so that it is recorded once: the
    /// same node may arrive by push (with an `id`) and by query (without),
    /// or be pushed again, so the key is made of what both carry —
    /// `sfr-` and the hex MD5 of waybill, operation code and time. SF's
    /// node id stays in [`RouteEvent::event_id`] for audit.
    pub fn dedup_key(&self) -> String {
        let mut h = Md5::new();
        h.update(self.waybill_no.trim().as_bytes());
        h.update([0x1f]);
        h.update(self.op_code.trim().as_bytes());
        h.update([0x1f]);
        h.update(format_sf_time(self.accept_time).as_bytes());
        let mut key = String::with_capacity(36);
        key.push_str("sfr-");
        for b in h.finalize() {
            let _ = write!(key, "{b:02x}");
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dedup_key_ignores_id_address_and_remark() {
        let mut a = RouteEvent::new("SF7444496931331", "50", datetime!(2025-05-26 09:55:52));
        let mut b = a.clone();
        a.event_id = Some("363636015985819".into());
        a.remark = "顺丰速运 已收取快件".into();
        b.address = "深圳市".into();
        assert_eq!(a.dedup_key(), b.dedup_key());
        assert!(a.dedup_key().starts_with("sfr-"));
        assert_eq!(a.dedup_key().len(), 36);
        let c = RouteEvent::new("SF7444496931331", "80", datetime!(2025-05-26 09:55:52));
        assert_ne!(a.dedup_key(), c.dedup_key());
    }

    #[test]
    fn china_time_is_read_as_utc_plus_eight() {
        let e = RouteEvent::new("SF1", "80", datetime!(2025-05-26 09:56:46));
        assert_eq!(e.accept_time_utc().unix_timestamp(), 1_748_224_606);
    }
}
