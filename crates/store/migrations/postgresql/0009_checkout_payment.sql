-- Steps 6 and 7 (issue 10): key models and their stock, address books,
-- the order's checkout (key model, address, invoice, amount), payment
-- attempts, callbacks as received, refunds, background-job leases, and the
-- demo WeChat Pay simulator's ledger. Keep in step with the other
-- backend's 0009_checkout_payment.sql. Amounts are fen.

-- 介质 (key models) and stock per colour (红Key / 蓝Key).
CREATE TABLE key_models (
    code         TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    price_fen    BIGINT  NOT NULL,
    picture      TEXT    NOT NULL,
    active       BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE TABLE key_stock (
    model_code  TEXT    NOT NULL REFERENCES key_models (code),
    colour      TEXT    NOT NULL,
    on_hand     BIGINT  NOT NULL CHECK (on_hand >= 0),
    PRIMARY KEY (model_code, colour)
);
-- Every count in or out, with who and why.
CREATE TABLE key_stock_moves (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_code  TEXT    NOT NULL,
    colour      TEXT    NOT NULL,
    delta       BIGINT  NOT NULL,
    reason      TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    at          BIGINT  NOT NULL
);
-- Which models an application offers; none listed = every active model.
CREATE TABLE application_key_models (
    application_code  TEXT  NOT NULL,
    model_code        TEXT  NOT NULL,
    PRIMARY KEY (application_code, model_code)
);

-- 收货地址簿, per account.
CREATE TABLE addresses (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     BIGINT  NOT NULL REFERENCES accounts (id),
    recipient      TEXT    NOT NULL,
    phone          TEXT    NOT NULL,
    division_code  BIGINT  NOT NULL,
    street         TEXT    NOT NULL,
    is_default     BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);
CREATE INDEX addresses_by_account ON addresses (account_id, id);

-- 第六步 as confirmed: what the order costs and where the key goes.
-- reserved = 1 while the order holds a unit of its model's stock.
CREATE TABLE order_checkouts (
    order_id         BIGINT  PRIMARY KEY REFERENCES orders (id),
    key_model        TEXT    NOT NULL,
    key_model_name   TEXT    NOT NULL,
    application_fen  BIGINT  NOT NULL,
    key_fen          BIGINT  NOT NULL,
    total_fen        BIGINT  NOT NULL,
    recipient        TEXT    NOT NULL,
    phone            TEXT    NOT NULL,
    division_code    BIGINT  NOT NULL,
    division_text    TEXT    NOT NULL,
    street           TEXT    NOT NULL,
    invoice          TEXT,
    reserved         BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX order_checkouts_reserved ON order_checkouts (key_model) WHERE reserved = 1;

-- One row per payment try, each with its own out_trade_no.
CREATE TABLE payment_attempts (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id        BIGINT  NOT NULL REFERENCES orders (id),
    seq             BIGINT  NOT NULL,
    channel         TEXT    NOT NULL,
    out_trade_no    TEXT    NOT NULL UNIQUE,
    amount_fen      BIGINT  NOT NULL,
    description     TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    code_url        TEXT,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,
    last_queried_at BIGINT,
    transaction_id  TEXT,
    paid_at         BIGINT,
    settled_at      BIGINT,
    settled_by      TEXT,
    failure         TEXT,
    -- When the job last asked about a closed or failed attempt after its
    -- QR code expired (money may still have arrived for it).
    late_checked_at BIGINT,
    UNIQUE (order_id, seq)
);
CREATE INDEX payment_attempts_by_state ON payment_attempts (state, created_at);

-- Every callback as received (raw body), with what became of it.
CREATE TABLE payment_callbacks (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel          TEXT    NOT NULL,
    received_at      BIGINT  NOT NULL,
    headers          TEXT    NOT NULL,
    body             BYTEA   NOT NULL,
    outcome          TEXT    NOT NULL,
    out_trade_no     TEXT,
    notification_id  TEXT,
    detail           TEXT,
    ip               TEXT
);
CREATE INDEX payment_callbacks_by_trade ON payment_callbacks (out_trade_no);
-- Refused callbacks per sender (the flood limit counts them).
CREATE INDEX payment_callbacks_by_ip ON payment_callbacks (ip, received_at);

-- Refunds, each with its own out_refund_no.
CREATE TABLE refunds (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id            BIGINT  NOT NULL REFERENCES orders (id),
    attempt_id          BIGINT  NOT NULL REFERENCES payment_attempts (id),
    out_refund_no       TEXT    NOT NULL UNIQUE,
    amount_fen          BIGINT  NOT NULL,
    reason              TEXT    NOT NULL,
    state               TEXT    NOT NULL,
    provider_refund_id  TEXT,
    requested_by        TEXT    NOT NULL,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    last_queried_at     BIGINT,
    succeeded_at        BIGINT,
    detail              TEXT
);
CREATE INDEX refunds_by_order ON refunds (order_id, id);
CREATE INDEX refunds_by_attempt ON refunds (attempt_id);
CREATE INDEX refunds_by_state ON refunds (state);

-- Background jobs: a lease per job (held by one process at a time) and a
-- row per tick that ran, at most one per (job, slot).
CREATE TABLE job_leases (
    name         TEXT    PRIMARY KEY,
    slot         BIGINT  NOT NULL,
    holder       TEXT    NOT NULL,
    lease_until  BIGINT  NOT NULL
);
CREATE TABLE job_runs (
    name         TEXT    NOT NULL,
    slot         BIGINT  NOT NULL,
    holder       TEXT    NOT NULL,
    started_at   BIGINT  NOT NULL,
    finished_at  BIGINT,
    summary      TEXT,
    PRIMARY KEY (name, slot)
);

-- The counter's notice board (柜台通知): paid orders to produce, refunds
-- that need a person. Shared by every operator.
CREATE TABLE operator_notices (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    order_id    BIGINT,
    created_at  BIGINT  NOT NULL
);

-- Demo mode's WeChat Pay simulator (certhall_payment::simulator).
CREATE TABLE demo_wechat_trades (
    out_trade_no    TEXT    PRIMARY KEY,
    description     TEXT    NOT NULL,
    amount_fen      BIGINT  NOT NULL,
    state           TEXT    NOT NULL,
    transaction_id  TEXT,
    notify_url      TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,
    paid_at         BIGINT
);
CREATE TABLE demo_wechat_refunds (
    out_refund_no  TEXT    PRIMARY KEY,
    out_trade_no   TEXT    NOT NULL,
    amount_fen     BIGINT  NOT NULL,
    refund_id      TEXT    NOT NULL,
    succeeded      BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    succeeded_at   BIGINT
);

-- 我的订单 lists enterprise, application and amount without reading every
-- order's step data: kept on the order as the steps are saved.
ALTER TABLE orders ADD COLUMN application_name TEXT;
ALTER TABLE orders ADD COLUMN enterprise_name TEXT;
ALTER TABLE orders ADD COLUMN amount_fen BIGINT;
-- Backend-specific: JSON of the saved steps (PostgreSQL's ->>).
UPDATE orders SET
    application_name = (SELECT (s.data::json) ->> 'name' FROM order_steps s
                        WHERE s.order_id = orders.id AND s.step = 2),
    enterprise_name  = (SELECT (s.data::json) ->> 'name' FROM order_steps s
                        WHERE s.order_id = orders.id AND s.step = 3);

-- A message may be about an order (linked from the message list).
ALTER TABLE messages ADD COLUMN order_id BIGINT;
