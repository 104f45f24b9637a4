-- Wrong relying-platform tokens, per client address: the API refuses an
-- address after too many in an hour (shared by every CertHall process).
-- Rows older than a day are removed as new ones arrive.
CREATE TABLE platform_auth_failures (
    id  INTEGER PRIMARY KEY AUTOINCREMENT,
    ip  TEXT   NOT NULL,
    at  BIGINT NOT NULL
);
CREATE INDEX platform_auth_failures_by_ip ON platform_auth_failures (ip, at);
