//! The OpenAPI paths and schemas of steps 6–7 (checkout, payments,
//! refunds, the address book, the division table) and of the payment
//! providers' callback routes; merged into [`super::openapi::document`].

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

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } })
}

/// The schemas these paths use.
pub fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "AddressInput",
            json!({ "type": "object", "required": ["recipient", "phone", "division", "street"], "properties": {
                "recipient": { "type": "string", "description": "收货人，2–20 个字" },
                "phone": { "type": "string", "description": "中国大陆手机号" },
                "division": { "type": "string", "pattern": "^[0-9]{6}$", "description": "区县的 GB/T 2260 行政区划代码（无区县的地级市用其本身代码），见 /divisions" },
                "street": { "type": "string", "description": "详细地址，4–100 个字" } } }),
        ),
        (
            "Address",
            json!({ "allOf": [{ "$ref": "#/components/schemas/AddressInput" }, { "type": "object", "properties": {
                "id": { "type": "integer" }, "division_text": { "type": "string", "example": "山东省 枣庄市 市中区" },
                "is_default": { "type": "boolean" } } }] }),
        ),
        (
            "InvoiceInput",
            json!({ "type": "object", "properties": {
                "kind": { "type": "string", "enum": ["none", "ordinary", "special"], "description": "不开 / 数电普票 / 数电专票" },
                "buyer_name": { "type": "string" },
                "tax_id": { "type": "string", "description": "纳税人识别号；18 位时须为校验位正确的统一社会信用代码（GB 32100）或身份证号" },
                "address": { "type": "string", "description": "专票必填" }, "phone": { "type": "string", "description": "专票必填" },
                "bank": { "type": "string", "description": "专票必填" }, "account": { "type": "string", "description": "专票必填" },
                "email": { "type": "string", "format": "email" } } }),
        ),
        (
            "Checkout",
            json!({ "type": "object", "properties": {
                "key_model": { "type": "string" }, "key_model_name": { "type": "string" },
                "application_fen": { "type": "integer" }, "key_fen": { "type": "integer" },
                "total_fen": { "type": "integer", "description": "应付金额，分" },
                "address": { "type": "object" }, "invoice": { "type": ["object", "null"] } } }),
        ),
        (
            "PaymentAttempt",
            json!({ "type": "object", "properties": {
                "seq": { "type": "integer" }, "channel": { "type": "string", "enum": ["wechat", "alipay"] },
                "out_trade_no": { "type": "string", "description": "每次支付尝试唯一，不复用" },
                "amount_fen": { "type": "integer" },
                "state": { "type": "string", "enum": ["paying", "paid", "closed", "failed"] },
                "state_label": { "type": "string" },
                "code_url": { "type": ["string", "null"], "description": "二维码内容" },
                "created_at": { "type": "string", "format": "date-time" },
                "expires_at": { "type": "string", "format": "date-time" },
                "paid_at": { "type": ["string", "null"], "format": "date-time" },
                "transaction_id": { "type": ["string", "null"] } } }),
        ),
        (
            "Refund",
            json!({ "type": "object", "properties": {
                "out_refund_no": { "type": "string" }, "amount_fen": { "type": "integer" }, "reason": { "type": "string" },
                "state": { "type": "string", "enum": ["requested", "processing", "succeeded", "closed", "abnormal"] },
                "state_label": { "type": "string" },
                "created_at": { "type": "string", "format": "date-time" },
                "succeeded_at": { "type": ["string", "null"], "format": "date-time" } } }),
        ),
    ]
}

/// The paths.
pub fn paths(unauth: &Value, csrf: &Value) -> Vec<(&'static str, Value)> {
    let secured = json!([{ "bearer": [] }, { "session": [] }]);
    let not_found = error_response("订单不存在或不属于当前账户（not_found）");
    let order = json!({ "$ref": "#/components/schemas/Order" });
    vec![
        (
            "/orders/{id}/summary",
            json!({ "get": {
            "operationId": "orderSummary", "summary": "订单详情：各步已提交内容、介质与收货、支付与退款、办理记录、下一步及预计时间", "security": secured,
            "parameters": [id_param()],
            "responses": {
                "200": ok_json("订单详情", json!({ "type": "object", "properties": {
                    "order": order, "next": { "type": "string" }, "expected": { "type": ["string", "null"] },
                    "queue_position": { "type": ["integer", "null"] }, "steps": { "type": "array" },
                    "checkout": { "oneOf": [{ "$ref": "#/components/schemas/Checkout" }, { "type": "null" }] },
                    "attempts": { "type": "array", "items": { "$ref": "#/components/schemas/PaymentAttempt" } },
                    "refunds": { "type": "array", "items": { "$ref": "#/components/schemas/Refund" } },
                    "timeline": { "type": "array" } } })),
                "401": unauth, "404": not_found
            } } }),
        ),
        (
            "/orders/{id}/checkout",
            json!({ "get": {
            "operationId": "getCheckout", "summary": "第六步：可选的 UKey 介质（含库存）、地址簿、已确认的内容、发票抬头预填", "security": secured,
            "parameters": [id_param()],
            "responses": {
                "200": ok_json("第六步", json!({ "type": "object" })),
                "401": unauth, "404": not_found,
                "409": error_response("柜台尚未审核通过（checkout_not_open）")
            } }, "put": {
            "operationId": "saveCheckout",
            "summary": "第六步：确认介质、收货地址与发票，订单进入待支付",
            "description": "金额 = 第二步应用价格 + 介质价格（分）。确认时占用一个介质库存；缺货则拒绝（key_model_out_of_stock），订单保持不变。address_id 为地址簿中的地址；否则用 address，remember 为 true 时存入地址簿。",
            "security": secured, "parameters": [id_param()],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["key_model"], "properties": {
                "key_model": { "type": "string" }, "address_id": { "type": "integer" },
                "address": { "$ref": "#/components/schemas/AddressInput" }, "remember": { "type": "boolean" },
                "invoice": { "$ref": "#/components/schemas/InvoiceInput" } } } } } },
            "responses": {
                "200": ok_json("待支付的订单", order.clone()),
                "400": error_response("missing_field、invalid_field、invalid_phone、unknown_division、invalid_tax_id、key_model_not_offered"),
                "401": unauth, "403": csrf, "404": not_found,
                "409": error_response("checkout_not_open、key_model_out_of_stock、order_state_conflict、order_already_paid")
            } } }),
        ),
        (
            "/orders/{id}/checkout/revise",
            json!({ "post": {
            "operationId": "reviseCheckout", "summary": "从支付返回第六步修改（进行中的支付先查询再关闭；如已支付则拒绝）", "security": secured,
            "parameters": [id_param()],
            "responses": { "200": ok_json("订单", order.clone()), "401": unauth, "403": csrf, "404": not_found,
                "409": error_response("order_state_conflict、order_already_paid、payment_busy"),
                "502": error_response("支付渠道暂时无法连接（payment_unavailable）") } } }),
        ),
        (
            "/orders/{id}/payments",
            json!({ "get": {
            "operationId": "listPayments", "summary": "支付尝试与退款；check=true 时先向支付渠道查询进行中的支付（每笔至多 10 秒一次）", "security": secured,
            "parameters": [id_param(), { "name": "check", "in": "query", "schema": { "type": "boolean" } }],
            "responses": {
                "200": ok_json("支付记录", json!({ "type": "object", "properties": {
                    "order": order, "checkout": { "type": ["object", "null"] },
                    "channels": { "type": "array", "items": { "type": "string", "enum": ["wechat", "alipay"] } },
                    "attempts": { "type": "array", "items": { "$ref": "#/components/schemas/PaymentAttempt" } },
                    "refunds": { "type": "array", "items": { "$ref": "#/components/schemas/Refund" } } } })),
                "401": unauth, "404": not_found
            } }, "post": {
            "operationId": "createPayment", "summary": "第七步：用 channel 支付，返回二维码（code_url）",
            "description": "同一订单同时只有一笔进行中的支付：同一渠道且二维码仍有效时返回原二维码；换渠道时先查询再关闭原支付。每次新支付使用新的商户订单号，二维码 30 分钟内有效。只有经验签的回调或查询结果能把订单改为已支付。",
            "security": secured, "parameters": [id_param()],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["channel"],
                "properties": { "channel": { "type": "string", "enum": ["wechat", "alipay"] } } } } } },
            "responses": {
                "201": ok_json("支付尝试", json!({ "$ref": "#/components/schemas/PaymentAttempt" })),
                "400": error_response("missing_field、payment_channel_unavailable"),
                "401": unauth, "403": csrf, "404": not_found,
                "409": error_response("order_already_paid、payment_not_due、payment_busy"),
                "502": error_response("支付渠道暂时无法连接（payment_unavailable）")
            } } }),
        ),
        (
            "/orders/{id}/cancel",
            json!({ "post": {
            "operationId": "cancelOrder", "summary": "取消订单（进行中的支付先关闭；已支付的订单全额原路退款）", "security": secured,
            "parameters": [id_param()],
            "responses": { "200": ok_json("已取消的订单", order.clone()), "401": unauth, "403": csrf, "404": not_found,
                "409": error_response("order_state_conflict、payment_busy"),
                "502": error_response("支付渠道暂时无法连接（payment_unavailable）") } } }),
        ),
        (
            "/orders/{id}/authorization/resend",
            json!({ "post": {
            "operationId": "resendAuthorization", "summary": "重新向法定代表人发送授权短信（与首次发送共用频率限制，72 小时重新计算）", "security": secured,
            "parameters": [id_param()],
            "responses": { "200": ok_json("已发送", json!({ "type": "object", "properties": {
                    "phone_masked": { "type": "string" }, "expires_at": { "type": "string", "format": "date-time" } } })),
                "401": unauth, "403": csrf, "404": not_found,
                "409": error_response("order_state_conflict"), "429": error_response("authorization_sms_limit"),
                "503": error_response("短信发送失败（sms_unavailable）") } } }),
        ),
        (
            "/orders/{id}/authorization/revise",
            json!({ "post": {
            "operationId": "reviseAuthorization", "summary": "撤回待回复的授权，回到第五步修改法定代表人信息或改用授权委托书（已上传的材料保留）", "security": secured,
            "parameters": [id_param()],
            "responses": { "200": ok_json("订单", order), "401": unauth, "403": csrf, "404": not_found,
                "409": error_response("order_state_conflict") } } }),
        ),
        (
            "/addresses",
            json!({ "get": {
            "operationId": "listAddresses", "summary": "收货地址簿（默认地址在前）", "security": secured,
            "responses": { "200": ok_json("地址", json!({ "type": "object", "properties": {
                "items": { "type": "array", "items": { "$ref": "#/components/schemas/Address" } } } })), "401": unauth } },
            "post": {
            "operationId": "addAddress", "summary": "新增收货地址（每个账户最多 20 个）", "security": secured,
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "allOf": [
                { "$ref": "#/components/schemas/AddressInput" }, { "type": "object", "properties": { "is_default": { "type": "boolean" } } }] } } } },
            "responses": { "201": ok_json("地址", json!({ "$ref": "#/components/schemas/Address" })),
                "400": error_response("missing_field、invalid_field、unknown_division"), "401": unauth, "403": csrf,
                "409": error_response("address_book_full") } } }),
        ),
        (
            "/addresses/{id}",
            json!({ "put": {
            "operationId": "updateAddress", "summary": "修改收货地址", "security": secured, "parameters": [id_param()],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/AddressInput" } } } },
            "responses": { "200": ok_json("地址", json!({ "$ref": "#/components/schemas/Address" })),
                "400": error_response("missing_field、invalid_field、unknown_division"), "401": unauth, "403": csrf,
                "404": error_response("address_not_found") } },
            "delete": {
            "operationId": "deleteAddress", "summary": "删除收货地址（订单保留各自的副本）", "security": secured, "parameters": [id_param()],
            "responses": { "204": { "description": "已删除" }, "401": unauth, "403": csrf, "404": error_response("address_not_found") } } }),
        ),
        (
            "/addresses/{id}/default",
            json!({ "post": {
            "operationId": "defaultAddress", "summary": "设为默认地址", "security": secured, "parameters": [id_param()],
            "responses": { "204": { "description": "已设置" }, "401": unauth, "403": csrf, "404": error_response("address_not_found") } } }),
        ),
        (
            "/divisions",
            json!({ "get": {
            "operationId": "divisions", "summary": "行政区划表（GB/T 2260：省、地级、县级），[[代码, 名称, [[代码, 名称, [[代码, 名称]]]]]]",
            "responses": { "200": ok_json("区划树", json!({ "type": "array" })) } } }),
        ),
        (
            "/payment/notify/wechat",
            json!({ "post": {
            "operationId": "wechatPayNotify", "summary": "微信支付 APIv3 回调（notify_url）",
            "description": "微信支付服务器调用。先保存原始报文，再验签（Wechatpay-Timestamp/Nonce/Signature/Serial，签名串 timestamp\\nnonce\\nbody\\n，±5 分钟，按序列号或 PUB_KEY_ID 选择平台公钥；WECHATPAY/SIGNTEST/ 探测拒绝），再用 APIv3 密钥以 AEAD_AES_256_GCM 解密 resource，核对商户号、AppID、金额；订单状态只从“支付中”比较并交换，重复回调无副作用。每个回调都记入审计日志。",
            "parameters": [
                { "name": "Wechatpay-Timestamp", "in": "header", "required": true, "schema": { "type": "string" } },
                { "name": "Wechatpay-Nonce", "in": "header", "required": true, "schema": { "type": "string" } },
                { "name": "Wechatpay-Signature", "in": "header", "required": true, "schema": { "type": "string" } },
                { "name": "Wechatpay-Serial", "in": "header", "required": true, "schema": { "type": "string" } }
            ],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "properties": {
                "id": { "type": "string" }, "event_type": { "type": "string", "example": "TRANSACTION.SUCCESS" },
                "resource": { "type": "object" } } } } } },
            "responses": {
                "200": { "description": "已接收（含重复通知）" },
                "400": ok_json("验签、解密或核对失败", json!({ "type": "object", "properties": {
                    "code": { "type": "string", "const": "FAIL" }, "message": { "type": "string" } } })),
                "404": error_response("未配置微信支付")
            } } }),
        ),
        (
            "/payment/notify/alipay",
            json!({ "post": {
            "operationId": "alipayNotify", "summary": "支付宝异步通知（notify_url）",
            "description": "支付宝服务器调用（application/x-www-form-urlencoded）。先保存原始报文，再以支付宝公钥按 RSA2 验签（除 sign、sign_type 外的参数按名称排序），再核对 app_id、seller_id、total_amount；只有 TRADE_SUCCESS、TRADE_FINISHED 视为已支付。应答 success 表示已接收。",
            "requestBody": { "required": true, "content": { "application/x-www-form-urlencoded": { "schema": { "type": "object" } } } },
            "responses": {
                "200": { "description": "success（已接收）或 failure（验签或核对失败，支付宝将重试）", "content": { "text/plain": {} } },
                "404": error_response("未配置支付宝")
            } } }),
        ),
        (
            "/counter/orders/{id}/cancel",
            json!({ "post": {
            "operationId": "counterCancel", "summary": "柜台取消已通过、待支付或已支付的订单（须填写原因；已支付的全额原路退款）",
            "security": [{ "counterBearer": [] }], "parameters": [id_param()],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["reason"],
                "properties": { "reason": { "type": "string", "maxLength": 200 } } } } } },
            "responses": { "200": ok_json("已取消的订单", json!({ "$ref": "#/components/schemas/Order" })),
                "400": error_response("missing_field"), "401": unauth,
                "403": error_response("own_order_review"), "404": error_response("not_found"),
                "409": error_response("order_state_conflict、payment_busy") } } }),
        ),
        (
            "/counter/notices",
            json!({ "get": {
            "operationId": "counterNotices", "summary": "柜台通知（已支付待制证、退款异常等），最新在前",
            "security": [{ "counterBearer": [] }],
            "responses": { "200": ok_json("通知", json!({ "type": "object", "properties": { "items": { "type": "array" } } })),
                "401": unauth } } }),
        ),
    ]
}
