-- Expiry reminders (到期提醒, issue 12). One row per certificate and stage
-- (d-90, d-30, d-7, d+1): its primary key is what makes each reminder go
-- out once, whichever process runs the job and however often it restarts.
-- The in-app message is written in the same transaction as the row; the
-- SMS follows it: pending -> sending -> sent | failed, or off when the
-- applicant turned SMS reminders off, or unknown when a process died in
-- the middle of a send (never sent again: a second SMS is worse than none).
CREATE TABLE expiry_reminders (
    serial      TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    account_id  BIGINT  NOT NULL,
    sent_at     BIGINT  NOT NULL,
    message_id  BIGINT  NOT NULL,
    sms_state   TEXT    NOT NULL,
    sms_tries   INTEGER NOT NULL,
    sms_at      BIGINT,
    sms_error   TEXT,
    PRIMARY KEY (serial, stage)
);
CREATE INDEX expiry_reminders_sms ON expiry_reminders (sms_state);

-- Per certificate: SMS reminders turned off by its owner (absent: on).
CREATE TABLE reminder_sms_off (
    serial      TEXT    PRIMARY KEY,
    account_id  BIGINT  NOT NULL,
    since       BIGINT  NOT NULL
);
