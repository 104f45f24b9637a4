//! CertHall's calls to relying platforms (公共资源交易平台): the webhook
//! that tells a platform a certificate activated there was revoked (or,
//! later, renewed). docs/relying-platform.md is the protocol a platform
//! implements:
//!
//! - `POST` to the platform's webhook URL, body JSON ([`PlatformEvent`]),
//!   `Content-Type: application/json`;
//! - header `X-CertHall-Event: <event id>` (deliveries of one event share
//!   it: a platform that saw it already answers 2xx and does nothing);
//! - header `X-CertHall-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256
//!   of "<t>.<body>" under the platform's webhook secret>`; [`verify`] is
//!   the check a receiver runs (the demo platform runs exactly this one);
//! - any 2xx is delivered; anything else, or no answer in 10 s, is tried
//!   again later by CertHall's job.
//!
//! [`PlatformNotifier`] is the port; [`HttpNotifier`] the real adapter. In
//! demo mode the same adapter posts to CertHall's own demo platform
//! (`/dev/platform/webhook`), which verifies with [`verify`].

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-CertHall-Signature";
/// The event id header.
pub const EVENT_HEADER: &str = "X-CertHall-Event";
/// How far a signature's time may be from the receiver's clock.
pub const TOLERANCE_SECS: i64 = 300;

/// Where and how one platform is called.
#[derive(Clone)]
pub struct Webhook {
    /// The platform's URL.
    pub url: String,
    /// The shared secret the signature is made with.
    pub secret: String,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("secret", &"***")
            .finish()
    }
}

/// What a platform is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformEvent {
    /// The event's id (stable across retries).
    pub id: i64,
    /// `certificate.revoked`, `certificate.renewed` or `certificate.changed`.
    pub kind: String,
    /// The certificate's serial (lower-case hex).
    pub serial: String,
    /// When it happened (RFC 3339).
    pub occurred_at: String,
    /// Details: for a revocation `{"reason": "keyCompromise"}`.
    pub data: serde_json::Value,
}

/// Why a delivery did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The platform could not be reached or did not answer in time.
    #[error("platform unreachable: {0}")]
    Transport(String),
    /// The platform answered with a status other than 2xx.
    #[error("platform answered HTTP {0}")]
    Status(u16),
    /// The event could not be encoded.
    #[error("event not encodable: {0}")]
    Encode(String),
}

/// Why a received webhook is not to be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is missing or malformed.
    #[error("malformed signature header")]
    Malformed,
    /// The time is too far from now (a replay, or a wrong clock).
    #[error("signature time outside the tolerance")]
    Stale,
    /// The signature does not match.
    #[error("signature mismatch")]
    Mismatch,
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut m = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm cannot be taken.
        Err(_) => return Vec::new(),
    };
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// The signature header's value for `body` sent at `timestamp` (unix
/// seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

/// A receiver's check of a delivery: the header names a time within
/// [`TOLERANCE_SECS`] of `now` and an HMAC of that time and the body under
/// `secret`.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> Result<(), VerifyError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(VerifyError::Malformed);
    };
    if (now - t).abs() > TOLERANCE_SECS {
        return Err(VerifyError::Stale);
    }
    if bool::from(mac(secret, t, body).ct_eq(&v1)) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// Something that delivers events to platforms.
#[async_trait]
pub trait PlatformNotifier: Send + Sync + fmt::Debug {
    /// Delivers one event; `Ok` once the platform answered 2xx. `now` is
    /// the signature's time (unix seconds).
    async fn deliver(
        &self,
        hook: &Webhook,
        event: &PlatformEvent,
        now: i64,
    ) -> Result<(), DeliveryError>;
}

/// The real adapter: an HTTPS POST with the signature headers.
#[derive(Debug, Clone)]
pub struct HttpNotifier {
    client: reqwest::Client,
}

impl HttpNotifier {
    /// With a 10-second timeout and no redirects (a platform's URL is
    /// configured, not discovered).
    pub fn new() -> Result<Self, DeliveryError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DeliveryError::Transport(e.to_string()))?;
        Ok(Self { client })
    }
}

#[async_trait]
impl PlatformNotifier for HttpNotifier {
    async fn deliver(
        &self,
        hook: &Webhook,
        event: &PlatformEvent,
        now: i64,
    ) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(event).map_err(|e| DeliveryError::Encode(e.to_string()))?;
        let res = self
            .client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header(EVENT_HEADER, event.id.to_string())
            .header(SIGNATURE_HEADER, signature(&hook.secret, now, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| DeliveryError::Transport(e.without_url().to_string()))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(res.status().as_u16()))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_body_and_time() {
        let body = br#"{"id":1}"#;
        let h = signature("s3cret", 1_800_000_000, body);
        assert!(h.starts_with("t=1800000000,v1="));
        assert_eq!(verify("s3cret", &h, body, 1_800_000_100), Ok(()));
        assert_eq!(
            verify("other", &h, body, 1_800_000_100),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("s3cret", &h, br#"{"id":2}"#, 1_800_000_100),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("s3cret", &h, body, 1_800_000_000 + TOLERANCE_SECS + 1),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify("s3cret", "v1=00", body, 1_800_000_000),
            Err(VerifyError::Malformed)
        );
    }
}

/// The platform's side of the relying-platform API (`/api/v1/relying/…`):
/// what a trading platform's server calls with its bearer token. CertHall's
/// demo platform (`/dev/platform`) uses it against CertHall's own API,
/// exactly as a real platform would.
#[derive(Debug, Clone)]
pub struct RelyingClient {
    client: reqwest::Client,
    base: String,
}

/// An answer of the relying API: its HTTP status and JSON body (CertHall's
/// `{"code","message"}` on refusals).
#[derive(Debug, Clone)]
pub struct ApiAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: serde_json::Value,
}

impl RelyingClient {
    /// A client of the API under `base` (`https://certhall.example.cn`),
    /// with a 10-second timeout.
    pub fn new(base: &str) -> Result<Self, DeliveryError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DeliveryError::Transport(e.to_string()))?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// The API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        token: &str,
    ) -> Result<ApiAnswer, DeliveryError> {
        let res = request
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| DeliveryError::Transport(e.without_url().to_string()))?;
        let status = res.status().as_u16();
        let body = res
            .json()
            .await
            .map_err(|e| DeliveryError::Transport(e.without_url().to_string()))?;
        Ok(ApiAnswer { status, body })
    }

    /// `POST /api/v1/relying/challenges`.
    pub async fn challenge(&self, token: &str) -> Result<ApiAnswer, DeliveryError> {
        let url = format!("{}/api/v1/relying/challenges", self.base);
        self.call(self.client.post(url), token).await
    }

    /// `POST /api/v1/relying/activations` with the agent's signed answer
    /// (`challenge`, `certificate`, `signed_data`, `signature`).
    pub async fn activate(
        &self,
        token: &str,
        answer: &serde_json::Value,
    ) -> Result<ApiAnswer, DeliveryError> {
        let url = format!("{}/api/v1/relying/activations", self.base);
        self.call(self.client.post(url).json(answer), token).await
    }

    /// `GET /api/v1/relying/certificates/{serial}`.
    pub async fn status(&self, token: &str, serial: &str) -> Result<ApiAnswer, DeliveryError> {
        let serial: String = serial.chars().filter(char::is_ascii_hexdigit).collect();
        let url = format!("{}/api/v1/relying/certificates/{serial}", self.base);
        self.call(self.client.get(url), token).await
    }
}
