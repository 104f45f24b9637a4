-- Counter operators (柜台人员) and their sessions. Keep in step with the
-- other backend's 0007_operators.sql.
--
-- Operators are not accounts: they log in at /counter with a password
-- (argon2id PHC string) and an SMS code to their phone, and their sessions
-- live in a table of their own, so an applicant's session token can never
-- authenticate at the counter (and the applicant's session lookup, made by
-- every page, stays one join).
CREATE TABLE operators (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    username       TEXT    NOT NULL UNIQUE,
    phone          TEXT    NOT NULL,
    role           TEXT    NOT NULL,
    password_hash  TEXT    NOT NULL,
    failed_logins  BIGINT  NOT NULL DEFAULT 0,
    locked_until   BIGINT,
    created_at     BIGINT  NOT NULL
);

-- stage 'password': the password was right, the SMS code is outstanding
-- (lives as long as the code); 'active': a logged-in operator.
CREATE TABLE operator_sessions (
    id            TEXT    PRIMARY KEY,
    operator_id   BIGINT  NOT NULL REFERENCES operators (id),
    stage         TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    last_seen_at  BIGINT  NOT NULL,
    ip            TEXT,
    user_agent    TEXT
);
CREATE INDEX operator_sessions_by_operator ON operator_sessions (operator_id);
