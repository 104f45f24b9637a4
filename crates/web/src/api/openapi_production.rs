//! The OpenAPI paths of step 8 — the production desk for staff tools
//! (`/counter/production…`, operator bearer token) and 我的证书
//! (`/certificates…`); merged into [`super::openapi::document`].

use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn ok_json(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn path_param(name: &str, kind: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": kind } })
}

fn body(properties: Value, required: &[&str]) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": {
        "type": "object", "required": required, "properties": properties } } } })
}

/// Step 8's paths.
pub fn paths(unauth: &Value) -> Vec<(&'static str, Value)> {
    let counter = json!([{ "counterBearer": [] }]);
    let secured = json!([{ "bearer": [] }, { "session": [] }]);
    let forbidden = error_response("没有制证权限（not_producer）");
    let attempt = json!({ "type": "object", "properties": {
        "id": { "type": "integer" }, "state": { "type": "string", "enum": ["started", "issued", "completed", "failed", "abandoned"] },
        "state_label": { "type": "string" }, "operator": { "type": "string" },
        "token_serial": { "type": ["string", "null"] }, "certificate_serial": { "type": ["string", "null"] },
        "failure": { "type": ["string", "null"] }, "started_at": { "type": "string", "format": "date-time" } } });
    let closed = error_response("制证记录已结束或状态不符（production_attempt_closed）");
    let a = path_param("a", "integer");
    let id = path_param("id", "integer");
    vec![
        (
            "/counter/production",
            json!({ "get": {
                "operationId": "productionQueue", "summary": "制证发货台：已支付待制证、制证中、已制证待发货的订单", "security": counter,
                "responses": { "200": ok_json("订单", json!({ "type": "object", "properties": { "items": { "type": "array" } } })),
                               "401": unauth, "403": forbidden } } }),
        ),
        (
            "/counter/production/{id}",
            json!({ "get": {
                "operationId": "productionDetail", "summary": "一个订单的制证与发货：证书信息、制证记录、已制作的 UKey、物流", "security": counter,
                "parameters": [id],
                "responses": { "200": ok_json("详情", json!({ "type": "object", "properties": {
                    "item": { "type": "object" }, "attempts": { "type": "array", "items": attempt },
                    "ukey": { "type": ["object", "null"] }, "shipments": { "type": "array" } } })),
                    "401": unauth, "403": forbidden, "404": error_response("订单不存在（not_found）") } } }),
        ),
        (
            "/counter/production/{id}/attempts",
            json!({ "post": {
                "operationId": "productionStart", "summary": "开始制证：登记插入的 UKey，取得要设置的标签与 PIN 码",
                "description": "空白 UKey（initialized=false）得到新的随机用户 PIN 与 SO PIN；已初始化的 UKey 只接受本订单此前制证时初始化的那一把（沿用其 PIN）。同一订单同时只有一个进行中的制证。",
                "security": counter, "parameters": [path_param("id", "integer")],
                "requestBody": body(json!({ "token_serial": { "type": "string" }, "initialized": { "type": "boolean" } }), &["token_serial"]),
                "responses": {
                    "200": ok_json("已登记", json!({ "type": "object", "properties": {
                        "attempt": attempt, "label": { "type": "string" }, "key_kind": { "type": "string", "enum": ["sm2", "p256", "rsa2048"] },
                        "needs_init": { "type": "boolean" }, "pin": { "type": "string" }, "so_pin": { "type": ["string", "null"] } } })),
                    "401": unauth, "403": error_response("没有制证权限，或本人订单（not_producer, own_order_review）"),
                    "409": error_response("订单状态不符、他人正在制证、UKey 已用于其他订单或非空白（order_state_conflict, production_busy, token_in_use, token_not_blank）")
                } } }),
        ),
        (
            "/counter/production/attempts/{a}/token",
            json!({ "post": {
                "operationId": "productionTokenInitialized", "summary": "UKey 已按本次制证的标签与 PIN 初始化：记录其序列号", "security": counter,
                "parameters": [a.clone()],
                "requestBody": body(json!({ "serial": { "type": "string" } }), &["serial"]),
                "responses": { "200": ok_json("已记录", json!({ "type": "object", "properties": { "attempt": attempt } })),
                               "401": unauth, "404": error_response("不是本人的制证记录（not_found）"), "409": closed.clone() } } }),
        ),
        (
            "/counter/production/attempts/{a}/csr",
            json!({ "post": {
                "operationId": "productionCsr", "summary": "提交 UKey 内生成的密钥的证书请求：按订单核验过的信息签发证书",
                "description": "证书主题取自订单（企业名称、统一社会信用代码、经办人），忽略请求中的主题；密钥类型须为该应用要求的类型。",
                "security": counter, "parameters": [a.clone()],
                "requestBody": body(json!({ "csr": { "type": "string", "description": "PKCS#10，PEM" }, "key_id": { "type": "string", "description": "密钥在 UKey 中的标识（十六进制）" } }), &["csr", "key_id"]),
                "responses": {
                    "200": ok_json("已签发", json!({ "type": "object", "properties": {
                        "serial": { "type": "string" }, "certificate": { "type": "string", "description": "PEM" },
                        "chain": { "type": "array", "items": { "type": "string" }, "description": "签发 CA、根 CA，PEM" } } })),
                    "400": error_response("请求无效或密钥类型不符（ca_request_refused, wrong_key_algorithm）"),
                    "401": unauth, "404": error_response("不是本人的制证记录（not_found）"), "409": closed.clone()
                } } }),
        ),
        (
            "/counter/production/attempts/{a}/written",
            json!({ "post": {
                "operationId": "productionWritten", "summary": "证书已写入并从 UKey 读回：一致则制证完成（PIN 码短信发给申请人、出库、订单已制证）",
                "security": counter, "parameters": [a.clone()],
                "requestBody": body(json!({ "certificate": { "type": "string", "description": "从 UKey 读回的证书，base64 DER" } }), &["certificate"]),
                "responses": {
                    "200": ok_json("制证完成", json!({ "type": "object", "properties": {
                        "order": { "type": "integer" }, "state": { "type": "string" }, "state_label": { "type": "string" } } })),
                    "400": error_response("读回的证书与签发的不一致，本次制证作废、证书已注销（read_back_mismatch）"),
                    "401": unauth, "404": error_response("不是本人的制证记录（not_found）"),
                    "409": error_response("制证记录已结束或库存不足（production_attempt_closed, key_model_out_of_stock）")
                } } }),
        ),
        (
            "/counter/production/attempts/{a}/failed",
            json!({ "post": {
                "operationId": "productionFailed", "summary": "报告制证失败：本次制证结束，已签发的证书注销（cessationOfOperation），订单仍为制证中",
                "security": counter, "parameters": [a],
                "requestBody": body(json!({ "stage": { "type": "string", "enum": ["init", "keygen", "issue", "write", "read_back"] },
                                            "message": { "type": "string", "description": "证书助手或页面的提示，最多 200 字" } }), &["stage"]),
                "responses": { "200": ok_json("已记录", json!({ "type": "object", "properties": { "attempt": attempt } })),
                               "401": unauth, "404": error_response("不是本人的制证记录（not_found）"), "409": closed } } }),
        ),
        (
            "/counter/production/{id}/ship",
            json!({ "post": {
                "operationId": "productionShip", "summary": "发货：向顺丰下单（到付），订单变为已发货并通知申请人运单号",
                "security": counter, "parameters": [path_param("id", "integer")],
                "responses": {
                    "200": ok_json("已发货", json!({ "type": "object", "properties": {
                        "order": { "type": "integer" }, "state": { "type": "string" }, "shipment": { "type": "object" } } })),
                    "401": unauth, "403": forbidden,
                    "409": error_response("订单不是已制证，或顺丰下单失败（order_state_conflict, courier_failed）：订单保持已制证")
                } } }),
        ),
        (
            "/certificates",
            json!({ "get": {
                "operationId": "myCertificates", "summary": "我的证书：当前账户的证书、UKey、状态（有效、即将到期、已过期、已注销）", "security": secured,
                "responses": { "200": ok_json("证书", json!({ "type": "object", "properties": {
                    "certificates": { "type": "array", "items": { "$ref": "#/components/schemas/MyCertificate" } } } })),
                    "401": unauth } } }),
        ),
        (
            "/certificates/{serial}",
            json!({ "get": {
                "operationId": "myCertificate", "summary": "一张证书", "security": secured,
                "parameters": [path_param("serial", "string")],
                "responses": { "200": ok_json("证书", json!({ "$ref": "#/components/schemas/MyCertificate" })),
                               "401": unauth, "404": error_response("证书不存在或不属于当前账户（certificate_not_found）") } } }),
        ),
        (
            "/certificates/{serial}/download/{format}",
            json!({ "get": {
                "operationId": "downloadCertificate", "summary": "下载证书：pem、der（.cer）或 chain（签发 CA 与根 CA，PEM）", "security": secured,
                "parameters": [path_param("serial", "string"),
                    { "name": "format", "in": "path", "required": true, "schema": { "type": "string", "enum": ["pem", "der", "chain"] } }],
                "responses": { "200": { "description": "文件", "content": {
                        "application/x-pem-file": {}, "application/pkix-cert": {} } },
                    "401": unauth, "404": error_response("证书不存在或不属于当前账户（certificate_not_found）") } } }),
        ),
    ]
}

/// The schemas these paths use.
pub fn schemas() -> Vec<(&'static str, Value)> {
    vec![(
        "MyCertificate",
        json!({ "type": "object", "properties": {
            "serial": { "type": "string" }, "subject": { "type": "string" },
            "key_algorithm": { "type": "string" },
            "not_before": { "type": "string", "format": "date-time" },
            "not_after": { "type": "string", "format": "date-time" },
            "status": { "type": "string", "enum": ["valid", "expiring", "expired", "revoked"] },
            "status_label": { "type": "string", "enum": ["有效", "即将到期", "已过期", "已注销"] },
            "order": { "type": ["integer", "null"] }, "application": { "type": ["string", "null"] },
            "sha256": { "type": "string" },
            "ukey": { "type": ["object", "null"], "properties": {
                "token_serial": { "type": "string" }, "model": { "type": "string" }, "colour": { "type": "string" } } },
            "revocation": { "type": ["object", "null"] } } }),
    )]
}
