-- 数字证书登录: one-time login challenges (certhall_domain::cert_login).
-- Keep in step with the other backend's 0004_cert_login.sql.
--
-- binding is the SHA-256 (hex) of the browser id the challenge was issued
-- to (pages), or 'api' for API clients. A row is answered at most once
-- (used_at is set by a compare-and-swap update); rows are purged a day
-- after they expire, and the per-IP limit counts the last hour's rows.
CREATE TABLE login_challenges (
    challenge   TEXT    PRIMARY KEY,
    binding     TEXT    NOT NULL,
    ip          TEXT,
    issued_at   BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used_at     BIGINT
);
CREATE INDEX login_challenges_by_ip ON login_challenges (ip, issued_at);
CREATE INDEX login_challenges_by_expiry ON login_challenges (expires_at);
