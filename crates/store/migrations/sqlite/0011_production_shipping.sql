-- Step 8 (issue 11): production of the key (制证) and its shipping by
-- courier. Keep in step with the other backend's 0011_production_shipping.sql.

-- The key pair an application's certificates use (sm2, p256, rsa2048).
ALTER TABLE applications ADD COLUMN key_kind TEXT NOT NULL DEFAULT 'sm2';
-- The 制证 permission (an operator, not a role: reviewers and producers
-- may be different people).
ALTER TABLE operators ADD COLUMN producer BIGINT NOT NULL DEFAULT 0;

-- One row per try at writing an order's key; at most one open per order.
-- The PINs are sealed with the server secret; the user PIN is wiped when
-- the attempt ends.
CREATE TABLE production_attempts (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id            BIGINT  NOT NULL REFERENCES orders (id),
    operator_id         BIGINT  NOT NULL REFERENCES operators (id),
    operator_name       TEXT    NOT NULL,
    state               TEXT    NOT NULL,
    key_kind            TEXT    NOT NULL,
    token_label         TEXT    NOT NULL,
    token_serial        TEXT,
    token_initialized   BIGINT  NOT NULL,
    pin_sealed          TEXT    NOT NULL,
    so_pin_sealed       TEXT    NOT NULL,
    key_id              TEXT,
    certificate_serial  TEXT,
    failed_stage        TEXT,
    failure             TEXT,
    started_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    finished_at         BIGINT
);
CREATE UNIQUE INDEX production_attempts_one_open ON production_attempts (order_id)
    WHERE state IN ('started', 'issued');
CREATE INDEX production_attempts_by_order ON production_attempts (order_id, id);
CREATE INDEX production_attempts_by_token ON production_attempts (token_serial);

-- The keys handed out: which token carries which order's certificate, and
-- its SO PIN (sealed) for online PIN unlock.
CREATE TABLE ukeys (
    token_serial        TEXT    PRIMARY KEY,
    order_id            BIGINT  NOT NULL UNIQUE REFERENCES orders (id),
    account_id          BIGINT  NOT NULL REFERENCES accounts (id),
    key_model           TEXT    NOT NULL,
    key_model_name      TEXT    NOT NULL,
    colour              TEXT    NOT NULL,
    certificate_serial  TEXT    NOT NULL,
    so_pin_sealed       TEXT    NOT NULL,
    attempt_id          BIGINT  NOT NULL,
    produced_at         BIGINT  NOT NULL
);
CREATE INDEX ukeys_by_account ON ukeys (account_id);

-- Courier orders. courier_order_id is ours and never reused: a failed or
-- cancelled shipment keeps its row, the next one gets a new number.
-- state: requesting (sent, no answer yet), shipped, delivered, failed,
-- cancelled.
CREATE TABLE shipments (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id          BIGINT  NOT NULL REFERENCES orders (id),
    courier           TEXT    NOT NULL,
    courier_order_id  TEXT    NOT NULL UNIQUE,
    waybill_no        TEXT,
    state             TEXT    NOT NULL,
    error             TEXT,
    actor             TEXT    NOT NULL,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    delivered_at      BIGINT
);
CREATE UNIQUE INDEX shipments_one_live ON shipments (order_id)
    WHERE state IN ('requesting', 'shipped', 'delivered');
CREATE UNIQUE INDEX shipments_by_waybill ON shipments (waybill_no) WHERE waybill_no IS NOT NULL;
CREATE INDEX shipments_in_transit ON shipments (state, updated_at) WHERE state IN ('requesting', 'shipped');

-- Route events of a shipment, from pushes and polling, each once.
CREATE TABLE shipment_routes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    shipment_id  BIGINT  NOT NULL REFERENCES shipments (id),
    dedup_key    TEXT    NOT NULL,
    op_code      TEXT    NOT NULL,
    stage        TEXT    NOT NULL,
    accept_time  BIGINT  NOT NULL,
    address      TEXT    NOT NULL,
    remark       TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    received_at  BIGINT  NOT NULL,
    UNIQUE (shipment_id, dedup_key)
);

-- Route pushes as received (refused ones too), for the audit trail.
CREATE TABLE courier_pushes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at   BIGINT  NOT NULL,
    ip            TEXT,
    body          TEXT    NOT NULL,
    outcome       TEXT    NOT NULL
);
CREATE INDEX courier_pushes_at ON courier_pushes (received_at);
