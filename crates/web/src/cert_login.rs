//! What the page and API handlers of 数字证书登录 share: decoding what the
//! agent returned and the origins a signature may name.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use certhall_domain::cert_login::origin_of;
use certhall_domain::Refusal;
use certhall_service::cert_login::CertLogin;

use crate::AppState;

/// What the page or API client posts: the challenge and the agent's
/// answer (`certificate`, `signed_data`, `signature`, base64).
#[derive(Debug, Default, serde::Deserialize)]
pub struct SignedAnswer {
    /// The challenge answered.
    #[serde(default)]
    pub challenge: String,
    #[serde(default)]
    certificate: String,
    #[serde(default)]
    signed_data: String,
    #[serde(default)]
    signature: String,
}

impl SignedAnswer {
    /// The decoded answer.
    pub fn presented(&self) -> Presented {
        Presented::decode(&self.certificate, &self.signed_data, &self.signature)
    }
}

/// The agent's answer, decoded (undecodable fields become empty, which the
/// service refuses as an unknown certificate or a bad signature).
#[derive(Debug, Default)]
pub struct Presented {
    certificate: Vec<u8>,
    signed_data: Vec<u8>,
    signature: Vec<u8>,
}

impl Presented {
    /// Decodes the base64 fields.
    pub fn decode(certificate: &str, signed_data: &str, signature: &str) -> Self {
        let d = |s: &str| B64.decode(s.trim()).unwrap_or_default();
        Self {
            certificate: d(certificate),
            signed_data: d(signed_data),
            signature: d(signature),
        }
    }

    /// The service's input.
    pub fn input<'a>(
        &'a self,
        challenge: &'a str,
        binding: &'a str,
        accepted_origins: &'a [String],
    ) -> CertLogin<'a> {
        CertLogin {
            challenge: challenge.trim(),
            binding,
            certificate: &self.certificate,
            signed_data: &self.signed_data,
            signature: &self.signature,
            accepted_origins,
        }
    }
}

/// Origins a login signature may name (and a state-changing request may
/// come from): CertHall's public URL and the configured extra origins —
/// never anything taken from the request, whose `Host` and `Origin` a
/// relaying attacker chooses. Computed once, in [`AppState::new`].
pub fn accepted_origins(state: &AppState) -> &[String] {
    &state.accepted_origins
}

/// [`accepted_origins`] from the settings.
pub(crate) fn origins_of(public_url: &str, extra: &[String]) -> Vec<String> {
    origin_of(public_url)
        .into_iter()
        .chain(extra.iter().filter_map(|o| origin_of(o)))
        .collect()
}

/// The answer to a recorded key failure: 200 `{"recorded","code","message"}`
/// for the key's own refusal (the message to show), the error otherwise
/// (an unknown, used or expired challenge).
pub fn key_failure_recorded(
    refusal: Refusal,
) -> Result<axum::response::Response, crate::error::ApiError> {
    use axum::response::IntoResponse;
    match refusal {
        Refusal::KeyWrongPin { .. } | Refusal::KeyPinLocked => Ok(axum::Json(serde_json::json!({
            "recorded": true,
            "code": refusal.code(),
            "message": refusal.message_zh(),
        }))
        .into_response()),
        other => Err(crate::error::ApiError(crate::error::WebError::Refused(
            other,
        ))),
    }
}

/// The refusal for an agent error code (`wrong_pin`, `pin_locked`).
pub fn key_refusal(code: &str, retries_left: Option<u32>) -> Refusal {
    match code {
        "wrong_pin" => Refusal::KeyWrongPin { retries_left },
        "pin_locked" => Refusal::KeyPinLocked,
        _ => Refusal::CertChallengeInvalid,
    }
}
