-- CertHall foundation schema (SQLite). Keep in step with
-- migrations/postgresql/0001_foundation.sql: same tables, same columns.
-- Times are milliseconds since the Unix epoch (UTC) in BIGINT columns.

CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    phone       TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL
);

-- One row per login code sent. Rate limits are counted from these rows.
CREATE TABLE login_codes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    phone        TEXT    NOT NULL,
    code_hash    BLOB    NOT NULL,
    ip           TEXT,
    sent_at      BIGINT  NOT NULL,
    attempts     BIGINT  NOT NULL DEFAULT 0,
    consumed_at  BIGINT
);
CREATE INDEX login_codes_by_phone ON login_codes (phone, sent_at);
CREATE INDEX login_codes_by_ip ON login_codes (ip, sent_at);

-- Sessions are keyed by the SHA-256 of the token the client holds.
CREATE TABLE sessions (
    id            TEXT    PRIMARY KEY,
    account_id    BIGINT  NOT NULL REFERENCES accounts (id),
    kind          TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    last_seen_at  BIGINT  NOT NULL,
    ip            TEXT,
    user_agent    TEXT
);
CREATE INDEX sessions_by_account ON sessions (account_id);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  BIGINT  NOT NULL REFERENCES accounts (id),
    kind        TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    read_at     BIGINT
);
CREATE INDEX messages_by_account ON messages (account_id, id);
CREATE INDEX messages_unread ON messages (account_id) WHERE read_at IS NULL;

-- Hash-chained audit log; seq has no gaps.
CREATE TABLE audit_log (
    seq        BIGINT  PRIMARY KEY,
    at         BIGINT  NOT NULL,
    actor      TEXT    NOT NULL,
    ip         TEXT,
    event      TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);

-- Demo SMS gateway: what would have gone to phones, and simulated replies.
CREATE TABLE sms_outbox (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    to_phone  TEXT    NOT NULL,
    template  TEXT    NOT NULL,
    body      TEXT    NOT NULL,
    sent_at   BIGINT  NOT NULL
);

CREATE TABLE sms_inbound (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    from_phone   TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    received_at  BIGINT  NOT NULL,
    outcome      TEXT    NOT NULL
);
