//! The OpenAPI paths of the relying-platform API (`/relying/…`, platform
//! bearer token from `certhall platform add`); merged into
//! [`super::openapi::document`]. docs/relying-platform.md has examples.

use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn status_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": {
        "$ref": "#/components/schemas/PlatformCertificateStatus" } } } })
}

/// The relying API's schemas.
pub fn schemas() -> Vec<(&'static str, Value)> {
    vec![(
        "PlatformCertificateStatus",
        json!({ "type": "object", "required": ["serial", "status", "valid", "activated"], "properties": {
            "serial": { "type": "string", "description": "证书序列号（小写十六进制）" },
            "status": { "type": "string", "enum": ["valid", "expiring", "expired", "revoked", "superseded"] },
            "valid": { "type": "boolean", "description": "现在可用：未过期、未注销" },
            "not_after": { "type": "string", "format": "date-time" },
            "revoked_at": { "type": ["string", "null"], "format": "date-time" },
            "revocation_reason": { "type": ["string", "null"], "description": "RFC 5280 CRLReason 名称" },
            "for_this_platform": { "type": "boolean", "description": "证书是为本平台的应用办理的" },
            "activated": { "type": "boolean", "description": "已在本平台激活" },
            "activated_at": { "type": ["string", "null"], "format": "date-time" } } }),
    )]
}

/// The relying API's paths.
pub fn paths() -> Vec<(&'static str, Value)> {
    let platform = json!([{ "platformBearer": [] }]);
    let unauth = error_response("平台令牌无效（platform_unauthorized）");
    let limited = error_response("来自该地址的错误令牌一小时内超过 20 次（platform_auth_limit）");
    vec![
        (
            "/relying/challenges",
            json!({ "post": {
                "operationId": "relyingChallenge", "summary": "取得激活挑战：由平台页面请证书助手用用户的 UKey 签名（purpose = activate），2分钟内有效，只能用一次",
                "security": platform,
                "responses": {
                    "200": { "description": "挑战", "content": { "application/json": { "schema": { "type": "object", "properties": {
                        "challenge": { "type": "string" }, "expires_at": { "type": "string", "format": "date-time" },
                        "purpose": { "type": "string", "enum": ["activate"] } } } } } },
                    "401": unauth, "429": error_response("请求过于频繁（cert_challenge_limit），或来自该地址的错误令牌过多（platform_auth_limit）") } } }),
        ),
        (
            "/relying/activations",
            json!({ "post": {
                "operationId": "relyingActivate", "summary": "证书激活：提交证书助手的签名结果；CertHall 校验挑战、证书链、签名、状态和应用后记录激活",
                "security": platform,
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["challenge", "certificate", "signed_data", "signature"], "properties": {
                        "challenge": { "type": "string" },
                        "certificate": { "type": "string", "description": "DER 证书，base64" },
                        "signed_data": { "type": "string", "description": "证书助手签名的消息（CertHall-Agent-Signature/1），base64" },
                        "signature": { "type": "string", "description": "签名，base64" } } } } } },
                "responses": {
                    "200": status_response("已激活（重复激活同样返回 200）"),
                    "400": error_response("无法激活：activation_challenge_invalid / activation_challenge_expired / activation_challenge_used / activation_cert_unknown / activation_bad_signature / activation_revoked / activation_not_for_signing / activation_not_yet_valid / activation_expired / activation_not_bound / activation_other_application"),
                    "401": unauth, "429": limited } } }),
        ),
        (
            "/relying/certificates/{serial}",
            json!({ "get": {
                "operationId": "relyingCertificate", "summary": "证书状态：是否有效、是否为本平台办理、是否已在本平台激活",
                "security": platform,
                "parameters": [{ "name": "serial", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": {
                    "200": status_response("证书状态"),
                    "401": unauth, "429": limited, "404": error_response("不是本CA签发的证书（certificate_not_found）") } } }),
        ),
    ]
}
