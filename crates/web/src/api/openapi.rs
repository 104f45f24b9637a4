//! The OpenAPI 3.1 document of `/api/v1`, served at `/api/v1/openapi.json`.
//!
//! Written by hand next to the routes; a test checks that it lists exactly
//! the routes the router answers (asked of the real router, see
//! [`super::paths`]) and that every path documents its errors.

use axum::response::IntoResponse;
use axum::Json;
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

/// The document.
pub fn document() -> Value {
    let bad = error_response("输入不合法（invalid_phone、invalid_code_format、missing_field）");
    let unauth =
        error_response("未登录、令牌无效或登录超时（not_logged_in、bad_token、session_expired）");
    let csrf = error_response("使用浏览器会话调用时缺少或错误的 X-CSRF-Token（csrf_mismatch）");
    let secured = json!([{ "bearer": [] }, { "session": [] }]);
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "CertHall 网上营业厅 API",
            "version": "1.0.0",
            "description": "CertHall 的 JSON 接口。错误统一为 {\"code\",\"message\"}：code 为稳定的机器码，message 为中文提示。\
                            API 客户端使用 /auth/sms/verify 返回的 Bearer 令牌；门户页面可使用会话 Cookie 并在写操作上附带 X-CSRF-Token。"
        },
        "servers": [{ "url": "/api/v1" }],
        "paths": {
            "/auth/sms/send": { "post": {
                "operationId": "sendLoginCode",
                "summary": "发送登录短信验证码",
                "description": "验证码6位，5分钟内有效；同一手机号60秒内不可重复获取，每小时最多10条；同一IP每小时最多30条。",
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["phone"],
                    "properties": { "phone": { "type": "string", "example": "13800138000" } } } } } },
                "responses": {
                    "200": ok_json("已发送", json!({ "type": "object", "properties": {
                        "phone": { "type": "string", "description": "脱敏手机号" },
                        "resend_after_secs": { "type": "integer" },
                        "valid_minutes": { "type": "integer" } } })),
                    "400": bad,
                    "429": error_response("获取过于频繁（sms_resend_too_soon、sms_phone_limit、sms_ip_limit）"),
                    "503": error_response("短信发送失败（sms_unavailable）")
                }
            } },
            "/auth/sms/verify": { "post": {
                "operationId": "verifyLoginCode",
                "summary": "使用短信验证码登录，获取访问令牌",
                "description": "首次登录自动创建账户。每个验证码最多尝试5次，只能使用一次。",
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["phone", "code"],
                    "properties": { "phone": { "type": "string" }, "code": { "type": "string", "pattern": "^[0-9]{6}$" } } } } } },
                "responses": {
                    "200": ok_json("登录成功", json!({ "type": "object", "required": ["token"], "properties": {
                        "token": { "type": "string", "description": "Bearer 令牌" },
                        "token_type": { "type": "string", "const": "Bearer" },
                        "account_id": { "type": "integer" },
                        "new_account": { "type": "boolean" },
                        "idle_timeout_secs": { "type": "integer" } } })),
                    "400": bad,
                    "401": error_response("验证码错误、过期、未获取或已失效（sms_code_wrong、sms_code_expired、sms_code_not_requested、sms_code_exhausted）"),
                    "409": error_response("验证码已使用（sms_code_used）")
                }
            } },
            "/auth/cert/challenge": { "post": {
                "operationId": "certLoginChallenge",
                "summary": "数字证书登录：获取一次性挑战值",
                "description": "挑战值随机生成，2分钟内有效，只能使用一次；同一IP每小时最多120个。\
                                用证书助手（docs/agent.md）的签名接口对其签名：签名内容为 CertHall-Agent-Signature/1 格式，包含用途 login、来源（本站地址）和挑战值。请求体须为 JSON（{}）。",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
                "responses": {
                    "400": error_response("请求体不是 JSON（missing_field）"),
                    "200": ok_json("挑战值", json!({ "type": "object", "required": ["challenge", "expires_at"], "properties": {
                        "challenge": { "type": "string", "description": "43位 Base64url" },
                        "expires_at": { "type": "string", "format": "date-time" },
                        "purpose": { "type": "string", "const": "login" } } })),
                    "429": error_response("获取过于频繁（cert_challenge_limit）")
                }
            } },
            "/auth/cert/login": { "post": {
                "operationId": "certLogin",
                "summary": "数字证书登录：提交签名，获取访问令牌",
                "description": "证书须由本系统签发、未吊销、在有效期内且已关联账户；签名须覆盖本站来源和未使用的挑战值。",
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["challenge", "certificate", "signed_data", "signature"],
                    "properties": {
                        "challenge": { "type": "string" },
                        "certificate": { "type": "string", "description": "Base64 DER 证书（证书助手 sign 接口的 certificate）" },
                        "signed_data": { "type": "string", "description": "Base64，证书助手返回的 signed_data" },
                        "signature": { "type": "string", "description": "Base64，证书助手返回的 signature" } } } } } },
                "responses": {
                    "200": ok_json("登录成功", json!({ "type": "object", "required": ["token"], "properties": {
                        "token": { "type": "string", "description": "Bearer 令牌" },
                        "token_type": { "type": "string", "const": "Bearer" },
                        "account_id": { "type": "integer" },
                        "new_account": { "type": "boolean" },
                        "idle_timeout_secs": { "type": "integer" } } })),
                    "401": error_response("挑战值无效或过期、证书不是本系统签发、签名错误、已吊销、已过期、未生效或未关联账户（cert_challenge_invalid、cert_challenge_expired、cert_unknown、cert_bad_signature、cert_revoked、cert_expired、cert_not_yet_valid、cert_not_bound）"),
                    "409": error_response("挑战值已使用（cert_challenge_used）")
                }
            } },
            "/auth/cert/failure": { "post": {
                "operationId": "certLoginKeyFailure",
                "summary": "数字证书登录：报告 UKey 拒绝签名（PIN 错误或锁定）",
                "description": "挑战值随之作废，并记入审计日志；返回的错误即应向用户显示的提示。",
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["challenge", "code"],
                    "properties": {
                        "challenge": { "type": "string" },
                        "code": { "type": "string", "enum": ["wrong_pin", "pin_locked"], "description": "证书助手返回的错误码" },
                        "retries_left": { "type": ["integer", "null"] } } } } } },
                "responses": {
                    "200": ok_json("已记录；message 为应向用户显示的提示", json!({ "type": "object", "properties": {
                        "recorded": { "type": "boolean", "const": true },
                        "code": { "type": "string", "enum": ["key_wrong_pin", "key_pin_locked"] },
                        "message": { "type": "string" } } })),
                    "401": error_response("挑战值无效或已过期（cert_challenge_invalid、cert_challenge_expired）"),
                    "409": error_response("挑战值已使用（cert_challenge_used）")
                }
            } },
            "/auth/logout": { "post": {
                "operationId": "logout", "summary": "退出登录，令牌立即失效", "security": secured,
                "responses": { "204": { "description": "已退出" }, "401": unauth, "403": csrf }
            } },
            "/me": { "get": {
                "operationId": "me", "summary": "当前账户", "security": secured,
                "responses": {
                    "200": ok_json("当前账户", json!({ "type": "object", "properties": {
                        "account_id": { "type": "integer" }, "phone": { "type": "string" },
                        "phone_masked": { "type": "string" }, "unread_messages": { "type": "integer" } } })),
                    "401": unauth
                }
            } },
            "/messages": { "get": {
                "operationId": "listMessages", "summary": "消息列表（最新在前）", "security": secured,
                "parameters": [
                    { "name": "page", "in": "query", "schema": { "type": "integer", "minimum": 1 } },
                    { "name": "per_page", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 100 } }
                ],
                "responses": {
                    "200": ok_json("一页消息", json!({ "type": "object", "properties": {
                        "items": { "type": "array", "items": { "$ref": "#/components/schemas/Message" } },
                        "page": { "type": "integer" }, "pages": { "type": "integer" },
                        "total": { "type": "integer" }, "unread": { "type": "integer" } } })),
                    "401": unauth
                }
            } },
            "/messages/{id}/read": { "post": {
                "operationId": "markMessageRead", "summary": "标记一条消息为已读", "security": secured,
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
                "responses": {
                    "204": { "description": "已标记" }, "401": unauth, "403": csrf,
                    "404": error_response("消息不存在或不属于当前账户（message_not_found）")
                }
            } },
            "/messages/read-all": { "post": {
                "operationId": "markAllMessagesRead", "summary": "全部标记为已读", "security": secured,
                "responses": {
                    "200": ok_json("已标记", json!({ "type": "object", "properties": { "marked": { "type": "integer" } } })),
                    "401": unauth, "403": csrf
                }
            } },
            "/applications": { "get": {
                "operationId": "listApplications", "summary": "可申请的应用（第二步 选择应用）", "security": secured,
                "responses": {
                    "200": ok_json("应用列表", json!({ "type": "object", "properties": {
                        "items": { "type": "array", "items": { "type": "object", "properties": {
                            "code": { "type": "string" }, "name": { "type": "string" },
                            "description": { "type": "string" }, "profile": { "type": "string" },
                            "validity_days": { "type": "integer" }, "price_fen": { "type": "integer" },
                            "price": { "type": "string", "example": "300.00 元" } } } } } })),
                    "401": unauth
                }
            } },
            "/orders": { "get": {
                "operationId": "listOrders", "summary": "我的订单（最新在前），可按状态筛选、按订单号/企业/应用搜索", "security": secured,
                "parameters": [
                    { "name": "state", "in": "query", "schema": { "type": "string", "enum": ["all", "in_progress", "to_pay", "paid", "cancelled"] } },
                    { "name": "q", "in": "query", "schema": { "type": "string" } }
                ],
                "responses": {
                    "200": ok_json("订单列表", json!({ "type": "object", "properties": {
                        "items": { "type": "array", "items": { "$ref": "#/components/schemas/Order" } } } })),
                    "401": unauth
                }
            }, "post": {
                "operationId": "startOrder", "summary": "证书新办：新建订单（从第一步开始）", "security": secured,
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "kind": { "type": "string", "enum": ["new"] } } } } } },
                "responses": {
                    "201": ok_json("新订单", json!({ "$ref": "#/components/schemas/Order" })),
                    "400": error_response("暂不支持的业务类型（invalid_field）"),
                    "401": unauth, "403": csrf
                }
            } },
            "/orders/{id}/steps/{n}": { "put": {
                "operationId": "saveOrderStep",
                "summary": "保存第 n 步（1 个人实名认证、2 选择应用、3 企业实名认证、4 办理方式），或提交第 5 步（材料与授权）",
                "description": "第1步：name, id_number（GB 11643 校验位）。第2步：application（应用代码）。第3步：name, uscc（GB 32100 校验位）, kind, legal_representative, address, registered_capital, established（2015-06-30 或 2015年06月30日）, registered_place（须与住所一致）, nature。第4步：handling = online | counter。第5步：authorization = letter（须已上传公章、法人章、法人手写签名、授权委托书，进入柜台审核）| legal_rep_sms（另需 legal_rep_name 与营业执照一致、legal_rep_id_number、legal_rep_phone；向法定代表人发送授权短信，72小时内回复“同意”即通过）。被拒绝时订单保持原样。",
                "security": secured,
                "parameters": [
                    { "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } },
                    { "name": "n", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1, "maximum": 5 } }
                ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
                "responses": {
                    "200": ok_json("保存后的订单", json!({ "$ref": "#/components/schemas/Order" })),
                    "400": error_response("填写有误：missing_field, invalid_field, resident_id_check_digit, uscc_check_digit, material_missing, legal_rep_mismatch …"),
                    "401": unauth, "403": csrf,
                    "404": error_response("订单不存在或不属于当前账户（not_found）"),
                    "409": error_response("步骤未开放或订单已不能修改（order_step_out_of_order, order_state_conflict）"),
                    "429": error_response("授权短信发送过于频繁（sms_phone_limit）")
                }
            } },
            "/orders/{id}/materials": { "get": {
                "operationId": "listOrderMaterials", "summary": "订单已上传的图片（营业执照、公章、法人章、法人手写签名、授权委托书）", "security": secured,
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
                "responses": {
                    "200": ok_json("图片列表", json!({ "type": "object", "properties": {
                        "items": { "type": "array", "items": { "$ref": "#/components/schemas/Material" } } } })),
                    "401": unauth,
                    "404": error_response("订单不存在或不属于当前账户（not_found）")
                }
            } },
            "/orders/{id}/materials/{kind}": { "get": {
                "operationId": "getOrderMaterial", "summary": "一张图片（服务器重新编码后的 PNG 或 JPEG）", "security": secured,
                "parameters": [
                    { "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } },
                    { "name": "kind", "in": "path", "required": true, "schema": { "$ref": "#/components/schemas/MaterialKind" } }
                ],
                "responses": {
                    "200": { "description": "图片", "content": { "image/png": {}, "image/jpeg": {} } },
                    "401": unauth,
                    "404": error_response("没有这张图片（not_found）")
                }
            }, "put": {
                "operationId": "putOrderMaterial",
                "summary": "上传一张图片（请求体即图片）；营业执照同时自动识别",
                "description": "按内容判断格式：只接受真正的 PNG 或 JPEG，不超过 5 MB，较短的一边至少 300 像素；服务器重新编码后保存（去除元数据和图片结束后的附加内容）并记录 SHA-256。可用 X-File-Name 请求头告知原文件名。营业执照（license）的识别结果在 ocr 中（校验码不符的统一社会信用代码留空，原因在 ocr_warnings）；ocr_unsure 列出识别把握不大、需对照营业执照核对的项目（字段名同 ocr）；ocr_available 为 false 时本系统未启用识别。图片不是营业执照（印章、身份证等）时返回 400 not_a_license，不保存、不填写。",
                "security": secured,
                "parameters": [
                    { "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } },
                    { "name": "kind", "in": "path", "required": true, "schema": { "$ref": "#/components/schemas/MaterialKind" } }
                ],
                "requestBody": { "required": true, "content": { "image/png": {}, "image/jpeg": {} } },
                "responses": {
                    "200": ok_json("保存的图片", json!({ "$ref": "#/components/schemas/Material" })),
                    "400": error_response("upload_not_image, upload_too_large, upload_too_small, upload_dimensions_too_large, upload_too_deep, upload_damaged, upload_empty, not_a_license"),
                    "401": unauth, "403": csrf,
                    "404": error_response("订单不存在或不属于当前账户（not_found）"),
                    "409": error_response("该步骤未开放或订单已不能修改")
                }
            } },
            "/orders/{id}": { "get": {
                "operationId": "getOrder", "summary": "一个订单的状态", "security": secured,
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
                "responses": {
                    "200": ok_json("订单", json!({ "$ref": "#/components/schemas/Order" })),
                    "401": unauth,
                    "404": error_response("订单不存在或不属于当前账户（not_found）")
                }
            } },
            "/openapi.json": { "get": {
                "operationId": "openapi", "summary": "本文档",
                "responses": { "200": { "description": "OpenAPI 文档", "content": { "application/json": {} } } }
            } }
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "counterBearer": { "type": "http", "scheme": "bearer",
                                   "description": "柜台人员令牌（/counter/login 与 /counter/login/code）；申请人令牌无效" },
                "platformBearer": { "type": "http", "scheme": "bearer",
                                    "description": "依赖方平台令牌（certhall platform add 生成，chp_ 开头）；只用于 /relying/…" },
                "session": { "type": "apiKey", "in": "cookie", "name": "ch_session",
                             "description": "浏览器会话；写操作需同时提供 X-CSRF-Token 请求头" }
            },
            "schemas": {
                "Order": { "type": "object", "properties": {
                    "id": { "type": "integer" },
                    "kind": { "type": "string", "enum": ["new", "renewal", "change", "replacement"] },
                    "kind_label": { "type": "string" },
                    "state": { "type": "string", "enum": ["draft", "counter_visit", "awaiting_authorization",
                        "authorization_refused", "in_review", "returned", "approved", "awaiting_payment",
                        "paid", "in_production", "produced", "shipped", "delivered", "cancelled",
                        "awaiting_key_write", "completed"] },
                    "step": { "type": ["integer", "null"], "description": "draft：已开放的最远步骤；returned：需修改的步骤" },
                    "state_label": { "type": "string" },
                    "editable": { "type": "boolean" },
                    "version": { "type": "integer" },
                    "return_reason": { "type": ["string", "null"] },
                    "application_name": { "type": ["string", "null"] },
                    "enterprise_name": { "type": ["string", "null"] },
                    "amount_fen": { "type": ["integer", "null"], "description": "第六步确认后的应付金额（分）" },
                    "cancellable": { "type": "boolean" },
                    "created_at": { "type": "string", "format": "date-time" },
                    "updated_at": { "type": "string", "format": "date-time" } } },
                "MaterialKind": { "type": "string", "enum": ["license", "company_seal", "legal_rep_seal",
                    "legal_rep_signature", "authorization_letter"] },
                "Material": { "type": "object", "properties": {
                    "kind": { "$ref": "#/components/schemas/MaterialKind" },
                    "label": { "type": "string", "example": "公章" },
                    "format": { "type": "string", "enum": ["png", "jpeg"] },
                    "width": { "type": "integer" }, "height": { "type": "integer" },
                    "size": { "type": "integer" }, "sha256": { "type": "string" },
                    "uploaded_at": { "type": "string", "format": "date-time" },
                    "url": { "type": "string" },
                    "ocr": { "type": ["object", "null"], "description": "营业执照的识别结果（name, uscc, kind, legal_representative, address, registered_capital, established）" },
                    "ocr_unsure": { "type": "array", "items": { "type": "string" }, "description": "识别把握不大、页面标为“请核对”的项目（字段名同 ocr）" },
                    "ocr_warnings": { "type": "array", "items": { "type": "string" }, "description": "需要申请人注意的识别问题（如统一社会信用代码校验码不符已留空）" } } },
                "Error": { "type": "object", "required": ["code", "message"], "properties": {
                    "code": { "type": "string", "description": "稳定的机器码" },
                    "message": { "type": "string", "description": "中文提示" } } },
                "Message": { "type": "object", "properties": {
                    "id": { "type": "integer" },
                    "kind": { "type": "string", "enum": ["system", "review", "expiry"] },
                    "kind_label": { "type": "string", "enum": ["系统通知", "审核通知", "到期提醒"] },
                    "title": { "type": "string" }, "body": { "type": "string" },
                    "created_at": { "type": "string", "format": "date-time" },
                    "read": { "type": "boolean" },
                    "read_at": { "type": ["string", "null"], "format": "date-time" } } }
            }
        }
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in counter_paths(&unauth) {
            paths.insert(path.to_owned(), item);
        }
        for (path, item) in super::openapi_checkout::paths(&unauth, &csrf) {
            paths.insert(path.to_owned(), item);
        }
        for (path, item) in super::openapi_production::paths(&unauth) {
            paths.insert(path.to_owned(), item);
        }
        for (path, item) in super::openapi_lifecycle::paths(&unauth, &csrf) {
            paths.insert(path.to_owned(), item);
        }
        for (path, item) in super::openapi_relying::paths() {
            paths.insert(path.to_owned(), item);
        }
    }
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        for (name, schema) in super::openapi_checkout::schemas()
            .into_iter()
            .chain(super::openapi_production::schemas())
            .chain(super::openapi_relying::schemas())
        {
            schemas.insert(name.to_owned(), schema);
        }
    }
    doc
}

/// The counter console's paths (`/counter/…`), one `json!` each (the macro's
/// recursion limit).
fn counter_paths(unauth: &Value) -> Vec<(&'static str, Value)> {
    let counter = json!([{ "counterBearer": [] }]);
    vec![
        (
            "/counter/login",
            json!({ "post": {
                "operationId": "counterLogin", "summary": "柜台人员登录第一步：用户名和密码，验证码发送到其手机",
                "description": "连续失败 5 次锁定 30 分钟；验证码发送受与申请人相同的频率限制。返回的 login_token 用于第二步。",
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "username": { "type": "string" }, "password": { "type": "string" } } } } } },
                "responses": {
                    "200": ok_json("验证码已发送", json!({ "type": "object", "properties": {
                        "login_token": { "type": "string" }, "phone_masked": { "type": "string" },
                        "valid_minutes": { "type": "integer" } } })),
                    "401": error_response("用户名或密码不正确（counter_bad_credentials）"),
                    "403": error_response("账号已锁定（operator_locked）"),
                    "429": error_response("验证码发送过于频繁")
                }
            } }),
        ),
        (
            "/counter/login/code",
            json!({ "post": {
                "operationId": "counterLoginCode", "summary": "柜台人员登录第二步：短信验证码，返回 Bearer 令牌",
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "login_token": { "type": "string" }, "code": { "type": "string" } } } } } },
                "responses": {
                    "200": ok_json("已登录", json!({ "type": "object", "properties": { "token": { "type": "string" } } })),
                    "401": error_response("验证码错误、过期或需重新登录（sms_code_wrong, sms_code_expired, counter_login_restart）"),
                    "403": error_response("账号已锁定（operator_locked）")
                }
            } }),
        ),
        (
            "/counter/logout",
            json!({ "post": {
                "operationId": "counterLogout", "summary": "柜台人员退出", "security": counter,
                "responses": { "204": { "description": "已退出" }, "401": unauth }
            } }),
        ),
        (
            "/counter/orders",
            json!({ "get": {
                "operationId": "counterQueue", "summary": "审核队列（最早的在前）", "security": counter,
                "parameters": [
                    { "name": "state", "in": "query", "schema": { "type": "string", "enum": ["in_review", "returned", "approved"] } },
                    { "name": "application", "in": "query", "schema": { "type": "string" } },
                    { "name": "from", "in": "query", "schema": { "type": "string", "format": "date" } },
                    { "name": "to", "in": "query", "schema": { "type": "string", "format": "date" } }
                ],
                "responses": {
                    "200": ok_json("队列", json!({ "type": "object", "properties": {
                        "waiting": { "type": "integer", "description": "待审核订单数" },
                        "items": { "type": "array", "items": { "type": "object", "properties": {
                            "order": { "$ref": "#/components/schemas/Order" },
                            "applicant": { "type": "string" }, "enterprise": { "type": "string" },
                            "application": { "type": "string" } } } } } })),
                    "401": unauth
                }
            } }),
        ),
        (
            "/counter/orders/{id}",
            json!({ "get": {
                "operationId": "counterOrder", "summary": "审核详情：各步填写内容、图片、营业执照识别对照、法人授权、办理记录", "security": counter,
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
                "responses": {
                    "200": ok_json("订单详情", json!({ "type": "object", "properties": {
                        "order": { "$ref": "#/components/schemas/Order" },
                        "own_order": { "type": "boolean", "description": "为本人手机号账户的订单，不能由本人审核" },
                        "steps": { "type": "array" }, "materials": { "type": "array", "items": { "$ref": "#/components/schemas/Material" } },
                        "license_check": { "type": "array" }, "authorization": { "type": ["object", "null"] },
                        "history": { "type": "array" } } })),
                    "401": unauth, "404": error_response("订单不存在（not_found）")
                }
            } }),
        ),
        (
            "/counter/orders/{id}/materials/{kind}",
            json!({ "get": {
                "operationId": "counterOrderMaterial", "summary": "订单的一张图片", "security": counter,
                "parameters": [
                    { "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } },
                    { "name": "kind", "in": "path", "required": true, "schema": { "$ref": "#/components/schemas/MaterialKind" } }
                ],
                "responses": {
                    "200": { "description": "图片", "content": { "image/png": {}, "image/jpeg": {} } },
                    "401": unauth, "404": error_response("没有这张图片（not_found）")
                }
            } }),
        ),
        (
            "/counter/orders/{id}/approve",
            json!({ "post": {
                "operationId": "counterApprove", "summary": "审核通过（订单进入第六步）", "security": counter,
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["version"], "properties": { "version": { "type": "integer", "description": "查看详情时订单的 version" } } } } } },
                "responses": {
                    "200": ok_json("审核后的订单", json!({ "$ref": "#/components/schemas/Order" })),
                    "401": unauth,
                    "403": error_response("不能审核本人账户的订单（own_order_review）"),
                    "404": error_response("订单不存在（not_found）"),
                    "409": error_response("订单已被其他柜台人员处理（review_already_decided）")
                }
            } }),
        ),
        (
            "/counter/orders/{id}/reject",
            json!({ "post": {
                "operationId": "counterReject", "summary": "退回修改：退回到某一步并说明原因（必填）", "security": counter,
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["version", "step", "reason"], "properties": {
                        "version": { "type": "integer" }, "step": { "type": "integer", "minimum": 1, "maximum": 5 },
                        "reason": { "type": "string", "maxLength": 200 } } } } } },
                "responses": {
                    "200": ok_json("退回后的订单", json!({ "$ref": "#/components/schemas/Order" })),
                    "400": error_response("缺少退回原因或步骤不正确（missing_field, invalid_field）"),
                    "401": unauth,
                    "403": error_response("不能审核本人账户的订单（own_order_review）"),
                    "404": error_response("订单不存在（not_found）"),
                    "409": error_response("订单已被其他柜台人员处理（review_already_decided）")
                }
            } }),
        ),
    ]
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> impl IntoResponse {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document's structure; that it lists exactly the routes the
    /// router answers is checked against the real router in
    /// `certhall-testkit`'s `openapi` test.
    #[test]
    fn every_operation_has_a_summary_and_a_success() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        for (_, ops) in paths {
            for (_, op) in ops.as_object().unwrap() {
                assert!(op["summary"].is_string());
                assert!(op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .any(|k| k.starts_with('2')));
            }
        }
    }
}
