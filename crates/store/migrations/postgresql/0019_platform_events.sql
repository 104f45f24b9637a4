-- The platforms' webhook (issue 12): a platform registered with a URL is
-- told when a certificate activated there is revoked. Events are queued
-- in the transaction of the revocation (an outbox: no revocation without
-- its events, no event without its revocation) and delivered by a job
-- under a lease, retried with a growing delay until the platform answers
-- 2xx or the tries run out.
ALTER TABLE relying_platforms ADD COLUMN webhook_url TEXT;

CREATE TABLE platform_events (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    platform_id      BIGINT  NOT NULL,
    kind             TEXT    NOT NULL,
    serial           TEXT    NOT NULL,
    data             TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  BIGINT  NOT NULL,
    delivered_at     BIGINT,
    last_error       TEXT
);
CREATE INDEX platform_events_due ON platform_events (delivered_at, next_attempt_at);
