//! The OpenAPI paths of 证书更新 (renewal onto the same UKey, paid when it
//! carries a price), 证书变更 (the change order and its key write) and PIN
//! 解锁;
//! merged into [`super::openapi::document`]. docs/lifecycle.md tells the
//! flow they serve.

use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn body(required: &[&str], properties: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": {
        "type": "object", "required": required, "properties": properties } } } })
}

fn ok(description: &str, properties: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": {
        "type": "object", "properties": properties } } } })
}

fn renewal_schema() -> Value {
    json!({ "type": "object", "properties": {
        "id": { "type": "integer" },
        "state": { "type": "string", "enum": ["started", "issued", "completed", "failed", "abandoned"] },
        "state_label": { "type": "string" },
        "old_serial": { "type": "string" }, "new_serial": { "type": ["string", "null"] },
        "order_id": { "type": ["integer", "null"], "description": "写入所属的证书变更订单或已支付的证书更新订单" },
        "token_serial": { "type": "string" }, "failure": { "type": ["string", "null"] } } })
}

fn code_sent() -> Value {
    ok(
        "验证码已发送到账号手机",
        json!({ "phone": { "type": "string", "description": "打码的手机号" },
                "resend_after_secs": { "type": "integer" }, "valid_minutes": { "type": "integer" } }),
    )
}

/// The paths, each with its operations.
pub fn paths(unauth: &Value, csrf: &Value) -> Vec<(&'static str, Value)> {
    let serial =
        json!({ "name": "serial", "in": "path", "required": true, "schema": { "type": "string" } });
    let id =
        json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } });
    let token = json!({ "name": "token", "in": "path", "required": true, "schema": { "type": "string" },
        "description": "UKey 介质序列号（证书助手列出的 serial）" });
    let conflict = error_response(
        "状态不允许（renewal_not_open、renewal_busy、renewal_unpaid、renewal_closed、pin_unlock_closed、order_state_conflict）",
    );
    let not_own =
        error_response("证书或 UKey 不属于当前账号（not_own_certificate、token_not_ours）");
    let limited = error_response("发送过于频繁（sms_resend_too_soon 等）");
    let code_refused =
        error_response("短信验证码错误或过期（sms_code_wrong 等；错误时返回剩余次数）");
    vec![
        (
            "/certificates/{serial}/renewal/code",
            json!({ "post": {
                "operationId": "sendRenewalCode", "summary": "证书更新：向账号手机发送确认验证码（仅在更新期限内）",
                "parameters": [serial],
                "responses": { "200": code_sent(), "401": unauth, "403": not_own, "404": error_response("没有这张证书"),
                    "409": conflict, "429": limited } } }),
        ),
        (
            "/certificates/{serial}/renewal/challenge",
            json!({ "post": {
                "operationId": "renewalChallenge", "summary": "证书更新：取得由原证书密钥签名（用途 renew）的挑战值，2 分钟内有效、只能使用一次",
                "parameters": [serial],
                "responses": {
                    "200": ok("挑战值", json!({
                        "challenge": { "type": "string" },
                        "expires_at": { "type": "string", "format": "date-time" },
                        "purpose": { "type": "string", "enum": ["renew"] } })),
                    "401": unauth, "403": not_own, "404": error_response("没有这张证书"),
                    "409": conflict, "429": limited } } }),
        ),
        (
            "/certificates/{serial}/renewals",
            json!({ "post": {
                "operationId": "startRenewal", "summary": "证书更新第一步：核对原证书密钥的签名、验证码、证书归属、所在 UKey 与更新期限，开始更新",
                "parameters": [serial],
                "requestBody": body(&["token_serial", "code", "challenge", "signed_data", "signature"], json!({
                    "token_serial": { "type": "string", "description": "介质查询时该证书所在 UKey 的序列号" },
                    "code": { "type": "string", "pattern": "^[0-9]{6}$" },
                    "challenge": { "type": "string", "description": "renewal/challenge 返回的挑战值" },
                    "signed_data": { "type": "string", "format": "byte", "description": "证书助手签名的原文（用途 renew）" },
                    "signature": { "type": "string", "format": "byte", "description": "原证书密钥的签名" } })),
                "responses": {
                    "200": ok("已开始；请证书助手在同一 UKey 中按 algorithm 生成新密钥", json!({
                        "renewal": renewal_schema(),
                        "algorithm": { "type": "string", "enum": ["sm2", "p256", "rsa2048"] },
                        "key_label": { "type": "string" } })),
                    "400": error_response("插入的不是该证书所在的 UKey（wrong_token），或原证书密钥的签名未通过、挑战值已失效（renewal_proof_failed）"),
                    "401": code_refused, "403": not_own, "409": conflict } } }),
        ),
        (
            "/certificates/{serial}/renewal/order",
            json!({ "post": {
                "operationId": "renewalOrder", "summary": "证书更新收费时：取得支付更新费用的证书更新订单（已有未完成的则返回该订单），随后在订单第七步支付",
                "parameters": [serial],
                "responses": {
                    "200": ok("证书更新订单", json!({
                        "order": { "type": "object", "properties": {
                            "id": { "type": "integer" }, "state": { "type": "string" },
                            "state_label": { "type": "string" }, "amount_fen": { "type": ["integer", "null"] } } },
                        "next": { "type": "string", "description": "支付页面（待支付时）或订单页面" } })),
                    "400": error_response("证书更新免费，无需支付（invalid_field）"),
                    "401": unauth, "403": not_own, "404": error_response("没有这张证书"), "409": conflict } } }),
        ),
        (
            "/certificates/{serial}/changes",
            json!({ "post": {
                "operationId": "startChange", "summary": "证书变更：为有效证书创建变更订单，预填原订单第一至三步，从第三步（上传变更后的营业执照）继续",
                "parameters": [serial],
                "responses": {
                    "200": ok("变更订单", json!({
                        "order": { "type": "object", "properties": {
                            "id": { "type": "integer" }, "state": { "type": "string" }, "state_label": { "type": "string" } } },
                        "next": { "type": "string", "description": "订单页面" } })),
                    "400": error_response("证书已注销、已过期或已被替换，或已有未完成的变更订单（invalid_field）"),
                    "401": unauth, "403": not_own, "404": error_response("没有这张证书") } } }),
        ),
        (
            "/orders/{id}/change/code",
            json!({ "post": {
                "operationId": "sendChangeCode", "summary": "证书变更审核通过后：向账号手机发送写入新证书的确认验证码",
                "parameters": [id],
                "responses": { "200": code_sent(), "401": unauth, "404": error_response("没有这个变更订单"),
                    "409": conflict, "429": limited } } }),
        ),
        (
            "/orders/{id}/change/challenge",
            json!({ "post": {
                "operationId": "changeChallenge", "summary": "证书变更：取得由原证书密钥签名（用途 renew）的挑战值，2 分钟内有效、只能使用一次",
                "parameters": [id],
                "responses": {
                    "200": ok("挑战值", json!({
                        "challenge": { "type": "string" },
                        "expires_at": { "type": "string", "format": "date-time" },
                        "purpose": { "type": "string", "enum": ["renew"] } })),
                    "401": unauth, "404": error_response("没有这个变更订单"), "409": conflict, "429": limited } } }),
        ),
        (
            "/orders/{id}/change/writes",
            json!({ "post": {
                "operationId": "startChangeWrite", "summary": "证书变更：核对原证书密钥的签名、验证码与所在 UKey，开始写入；之后与证书更新相同（/renewals/{id}/csr、written、failed），新证书的主题取自变更订单",
                "parameters": [id],
                "requestBody": body(&["token_serial", "code", "challenge", "signed_data", "signature"], json!({
                    "token_serial": { "type": "string" }, "code": { "type": "string", "pattern": "^[0-9]{6}$" },
                    "challenge": { "type": "string" }, "signed_data": { "type": "string", "format": "byte" },
                    "signature": { "type": "string", "format": "byte" } })),
                "responses": {
                    "200": ok("已开始", json!({
                        "renewal": renewal_schema(),
                        "algorithm": { "type": "string", "enum": ["sm2", "p256", "rsa2048"] },
                        "key_label": { "type": "string" } })),
                    "400": error_response("UKey 或签名不对（wrong_token、renewal_proof_failed），或原证书已注销（invalid_field）"),
                    "401": code_refused, "404": error_response("没有这个变更订单"), "409": conflict } } }),
        ),
        (
            "/renewals/{id}",
            json!({ "get": {
                "operationId": "getRenewal", "summary": "一次证书更新的状态",
                "parameters": [id],
                "responses": { "200": ok("更新", json!({ "renewal": renewal_schema() })), "401": unauth, "404": error_response("没有这次更新") } } }),
        ),
        (
            "/renewals/{id}/csr",
            json!({ "post": {
                "operationId": "renewalCsr", "summary": "证书更新第二步：提交新密钥的证书请求，签发新证书（主题与原证书相同）",
                "parameters": [id],
                "requestBody": body(&["csr", "key_id"], json!({
                    "csr": { "type": "string", "description": "PEM 证书请求（证书助手生成）" },
                    "key_id": { "type": "string", "description": "新密钥在 UKey 中的标识（十六进制）" } })),
                "responses": {
                    "200": ok("新证书及证书链（PEM）", json!({
                        "serial": { "type": "string" }, "certificate": { "type": "string" },
                        "chain": { "type": "array", "items": { "type": "string" } } })),
                    "400": error_response("请求不正确或密钥类型与原证书不一致"), "401": unauth, "403": csrf, "409": conflict } } }),
        ),
        (
            "/renewals/{id}/written",
            json!({ "post": {
                "operationId": "renewalWritten", "summary": "证书更新第三步：提交从 UKey 读回的新证书；一致则完成更新，原证书以 superseded 注销，激活转到新证书，并通知交易平台",
                "parameters": [id],
                "requestBody": body(&["certificate"], json!({ "certificate": { "type": "string", "description": "读回的证书，base64 DER" } })),
                "responses": {
                    "200": ok("更新完成", json!({ "certificate": { "type": "object", "properties": {
                        "serial": { "type": "string" }, "not_after": { "type": "string", "format": "date-time" },
                        "predecessor_serial": { "type": "string" } } } })),
                    "400": error_response("读回的证书与签发的不一致：本次更新作废，新证书已注销，原证书仍有效"),
                    "401": unauth, "403": csrf, "409": conflict } } }),
        ),
        (
            "/renewals/{id}/failed",
            json!({ "post": {
                "operationId": "renewalFailed", "summary": "报告证书更新失败：新证书（如已签发）注销，原证书仍有效",
                "parameters": [id],
                "requestBody": body(&[], json!({ "message": { "type": "string" } })),
                "responses": { "200": ok("已结束", json!({ "renewal": renewal_schema() })), "401": unauth, "403": csrf, "409": conflict } } }),
        ),
        (
            "/ukeys/{token}/unlock/code",
            json!({ "post": {
                "operationId": "sendUnlockCode", "summary": "PIN 解锁：向账号手机发送确认验证码（仅限本系统为该账号制作的 UKey）",
                "parameters": [token],
                "responses": { "200": code_sent(), "401": unauth, "403": not_own, "429": limited } } }),
        ),
        (
            "/ukeys/{token}/unlocks",
            json!({ "post": {
                "operationId": "releaseSoPin", "summary": "PIN 解锁：把该 UKey 的管理员 PIN（SO PIN）及新的 SO PIN 用证书助手的一次性公钥加密后发给证书助手；页面无法解密",
                "parameters": [token],
                "requestBody": body(&["agent_key", "code"], json!({
                    "agent_key": { "type": "string", "description": "证书助手 /v1/tokens/{token}/unlock/key 返回的一次性公钥（base64url，P-256）" },
                    "code": { "type": "string", "pattern": "^[0-9]{6}$" } })),
                "responses": {
                    "200": ok("密封的 SO PIN，原样交给证书助手 /v1/tokens/{token}/unlock", json!({
                        "unlock_id": { "type": "integer" },
                        "sealed": { "type": "string", "description": "ECIES（P-256 ECDH、HKDF-SHA256、AES-256-GCM），上下文为介质序列号" } })),
                    "400": error_response("一次性公钥格式不正确"), "401": code_refused, "403": not_own } } }),
        ),
        (
            "/unlocks/{id}/result",
            json!({ "post": {
                "operationId": "unlockResult", "summary": "PIN 解锁：报告证书助手的结果；成功后新的 SO PIN 生效",
                "parameters": [id],
                "requestBody": body(&["ok"], json!({ "ok": { "type": "boolean" }, "message": { "type": "string" } })),
                "responses": {
                    "200": ok("已记录", json!({ "unlock": { "type": "object", "properties": {
                        "id": { "type": "integer" }, "state": { "type": "string", "enum": ["released", "completed", "failed", "abandoned"] },
                        "state_label": { "type": "string" }, "token_serial": { "type": "string" } } } })),
                    "401": unauth, "403": csrf, "404": error_response("没有这次解锁"), "409": conflict } } }),
        ),
    ]
}
