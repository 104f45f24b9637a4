-- Orders (certhall_domain::order). Keep in step with the other backend's
-- 0005_orders.sql.
--
-- state + step are OrderState::to_db(); version is bumped by every
-- transition, which is an UPDATE … WHERE id = $1 AND version = $2 (zero
-- rows: someone else moved the order first).
CREATE TABLE orders (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     BIGINT  NOT NULL REFERENCES accounts (id),
    kind           TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    step           BIGINT  NOT NULL,
    version        BIGINT  NOT NULL,
    return_reason  TEXT,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);
CREATE INDEX orders_by_account ON orders (account_id, created_at);
CREATE INDEX orders_by_state ON orders (state, updated_at);

-- What the applicant typed at each wizard step (JSON), kept whatever the
-- order's state: a failed or refused step never loses it.
CREATE TABLE order_steps (
    order_id    BIGINT  NOT NULL REFERENCES orders (id),
    step        BIGINT  NOT NULL,
    data        TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (order_id, step)
);

-- Every transition, for the order's history page and the counter.
CREATE TABLE order_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id    BIGINT  NOT NULL REFERENCES orders (id),
    from_state  TEXT    NOT NULL,
    to_state    TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    reason      TEXT,
    at          BIGINT  NOT NULL
);
CREATE INDEX order_events_by_order ON order_events (order_id, id);
