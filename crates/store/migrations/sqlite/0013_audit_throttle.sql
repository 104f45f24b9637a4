-- Access refusals written to the audit chain are throttled per caller
-- (issue 14): the first few per window, then a count of those left out
-- (domain::audit::RefusalThrottle). One row per caller key.
CREATE TABLE audit_throttle (
    caller       TEXT    PRIMARY KEY,
    window_start BIGINT  NOT NULL,
    refusals     INTEGER NOT NULL,
    unreported   INTEGER NOT NULL
);
