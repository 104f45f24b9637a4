//! Webhooks called by providers, not people.
//!
//! `POST /hooks/sms/inbound`: replies to CertHall's SMS (上行短信), pushed by
//! the SMS provider. Authenticated by a shared secret (`sms_inbound_token`,
//! sent as `Authorization: Bearer …` or `?token=…`, compared in constant
//! time); without a configured secret the route does not exist. The body
//! is Alibaba Cloud's push format — a JSON array of
//! `{"phone_number","content",…}` — or one `{"from","body"}` object.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::json::Body;
use crate::error::ApiError;
use crate::extract::ClientMeta;
use crate::AppState;

/// The token, when given in the query.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

fn authorized(state: &AppState, headers: &HeaderMap, query: &str) -> bool {
    let Some(expected) = state.config.sms_inbound_token.as_deref() else {
        return false;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or(query);
    certhall_domain::secret::constant_time_eq(given.trim().as_bytes(), expected.as_bytes())
}

/// `POST /hooks/sms/inbound`.
pub async fn sms_inbound(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    Body(body): Body<Value>,
) -> Result<Response, ApiError> {
    if state.config.sms_inbound_token.is_none() {
        return Ok(StatusCode::NOT_FOUND.into_response());
    }
    if !authorized(&state, &headers, &q.token) {
        tracing::warn!(ip = ?meta.ip, "inbound SMS push with a wrong token");
        return Ok((
            StatusCode::UNAUTHORIZED,
            Json(json!({ "code": "bad_token" })),
        )
            .into_response());
    }
    let messages: Vec<(String, String)> = match &body {
        Value::Array(items) => items
            .iter()
            .map(|m| (text(m, "phone_number"), text(m, "content")))
            .collect(),
        Value::Object(_) => vec![(text(&body, "from"), text(&body, "body"))],
        _ => Vec::new(),
    };
    let mut outcomes = Vec::new();
    for (from, content) in messages {
        // One bad entry (a landline, an empty text) must not make the
        // provider resend the whole batch: it is answered in place.
        match state.services.receive_sms(&from, &content, &meta).await {
            Ok(o) => outcomes.push(json!({ "from": from, "outcome": o.outcome })),
            Err(certhall_service::ServiceError::Refused(r)) => {
                outcomes.push(json!({ "from": from, "refused": r.code() }));
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Alibaba Cloud expects {"code":0} for a handled push.
    Ok(Json(json!({ "code": 0, "msg": "成功", "results": outcomes })).into_response())
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `POST /hooks/courier/push`: the courier's route push (SF 路由推送), as
/// received. The service verifies it before believing anything in it;
/// the courier gets its ack for a verified push (also a duplicate) and its
/// nack otherwise, and retries by its own rules.
pub async fn courier_push(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let result = state
        .services
        .courier_push(content_type, &body, &meta)
        .await;
    let (status, ok) = match &result {
        Ok(_) => (StatusCode::OK, true),
        Err(certhall_service::ServiceError::Refused(_)) => (StatusCode::BAD_REQUEST, false),
        Err(e) => {
            tracing::error!(error = %e, "courier push could not be recorded");
            (StatusCode::SERVICE_UNAVAILABLE, false)
        }
    };
    let (ct, text) = state.services.courier_push_answer(ok);
    (status, [(header::CONTENT_TYPE, ct)], text).into_response()
}
