//! Every page URL in one place, so links and routes cannot drift apart.

use certhall_domain::OrderId;

/// Home (首页).
pub const HOME: &str = "/";
/// Login page.
pub const LOGIN: &str = "/login";
/// Form target: send a login code.
pub const LOGIN_CODE: &str = "/login/code";
/// 数字证书登录: the signed challenge is posted here.
pub const LOGIN_CERT: &str = "/login/cert";
/// 数字证书登录: a challenge for this browser (JSON).
pub const LOGIN_CERT_CHALLENGE: &str = "/login/cert/challenge";
/// 数字证书登录: the key refused (JSON).
pub const LOGIN_CERT_FAILURE: &str = "/login/cert/failure";
/// Log out (POST).
pub const LOGOUT: &str = "/logout";
/// Messages (消息提醒).
pub const MESSAGES: &str = "/messages";
/// Mark all messages read (POST).
pub const MESSAGES_READ_ALL: &str = "/messages/read-all";
/// Orders (我的订单).
pub const ORDERS: &str = "/orders";
/// New certificate (证书新办).
pub const APPLY_NEW: &str = "/apply/new";
/// 我的证书.
pub const CERTIFICATES: &str = "/certificates";
/// Renewal (证书更新).
pub const RENEW: &str = "/certificates/renew";
/// PIN 解锁 of a locked UKey.
pub const UNLOCK: &str = "/ukeys/unlock";
/// Demo relying platform (`/dev/platform`): a trading platform's page
/// using the relying-platform API.
pub const DEV_PLATFORM: &str = "/dev/platform";
/// Change (证书变更).
pub const CHANGE: &str = "/certificates/change";
/// Activation (证书激活).
pub const ACTIVATE: &str = "/certificates/activate";
/// CA publication page (证书体系公示).
pub const CA: &str = "/ca";
/// 收货地址簿.
pub const ADDRESSES: &str = "/addresses";
/// The divisions table for the address selects (JSON, cached).
pub const DIVISIONS_JSON: &str = "/static/divisions.json";
/// WeChat Pay's callback route (the `notify_url` WeChat Pay posts to).
pub const NOTIFY_WECHAT: &str = "/api/v1/payment/notify/wechat";
/// The courier's route pushes (SF 路由推送).
pub const COURIER_PUSH: &str = "/hooks/courier/push";
/// Alipay's callback route (the `notify_url` Alipay posts to).
pub const NOTIFY_ALIPAY: &str = "/api/v1/payment/notify/alipay";
/// Demo courier (`/dev/courier`): advances parcels' routes.
pub const DEV_COURIER: &str = "/dev/courier";
/// Demo cashier (`/dev/cashier/{out_trade_no}`).
pub const DEV_CASHIER: &str = "/dev/cashier";
/// Demo: the simulated WeChat Pay API the demo adapter talks to.
pub const DEV_WECHATPAY: &str = "/dev/wechatpay";

/// An order's page.
pub fn order(id: OrderId) -> String {
    format!("/orders/{id}")
}

/// 第六步 of an order.
pub fn checkout(id: OrderId) -> String {
    format!("/orders/{id}/checkout")
}

/// 第七步 of an order.
pub fn pay(id: OrderId) -> String {
    format!("/orders/{id}/pay")
}

/// Demo SMS outbox.
pub const DEV_OUTBOX: &str = "/dev/outbox";
/// Demo SMS outbox, JSON.
pub const DEV_OUTBOX_JSON: &str = "/dev/outbox.json";
/// Demo: simulate a reply from a phone (form).
pub const DEV_OUTBOX_REPLY: &str = "/dev/outbox/reply";
/// Demo: simulate a reply from a phone (JSON webhook).
pub const DEV_SMS_INBOUND: &str = "/dev/sms/inbound";

/// Accepts a post-login redirect target only if it is a clean local
/// path: it starts with one `/`, is not the login page, is at most 512
/// characters, and holds only the visible ASCII characters a URL path and
/// query use (no control characters, spaces, backslashes or quotes, which
/// a `Location` header could not carry or a browser could misread).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with(LOGIN)
                && n.len() <= 512
                && n.bytes().all(is_clean_path_byte) =>
        {
            n
        }
        _ => HOME,
    }
}

/// RFC 3986 unreserved, sub-delims, `:@/?%` and `#`.
fn is_clean_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%#".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next(Some("/messages")), "/messages");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/login")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some("/orders/3?step=2")), "/orders/3?step=2");
        for bad in [
            "/x\r\nSet-Cookie: a=b",
            "/x\n",
            "/x\u{0}",
            "/x\t/",
            "/ x",
            "/订单",
            "/x\"onload=",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(600)))), "/");
    }
}
