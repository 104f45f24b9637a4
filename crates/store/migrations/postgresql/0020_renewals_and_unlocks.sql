-- The applicant's own work on the key they hold (issue 12).
--
-- 证书更新: a new certificate written onto the token the old one is on.
-- At most one renewal of a certificate is open at a time (the partial
-- unique index picks the winner between two pages); a completed one links
-- the old certificate to the new and to the token.
CREATE TABLE renewals (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    BIGINT  NOT NULL,
    old_serial    TEXT    NOT NULL,
    token_serial  TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    key_id        TEXT,
    new_serial    TEXT,
    failure       TEXT,
    started_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    finished_at   BIGINT
);
CREATE UNIQUE INDEX renewals_one_open ON renewals (old_serial)
    WHERE state IN ('started', 'issued');
CREATE INDEX renewals_of_account ON renewals (account_id);

-- PIN 解锁: the SO PIN released to the agent sealed to its one-time key,
-- with the next SO PIN, which is kept (sealed with the server's key) in
-- ukeys.so_pin_pending until the agent reports the rotation done. At most
-- one release per token is open.
ALTER TABLE ukeys ADD COLUMN so_pin_pending TEXT;

CREATE TABLE pin_unlocks (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    BIGINT  NOT NULL,
    token_serial  TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    failure       TEXT,
    started_at    BIGINT  NOT NULL,
    finished_at   BIGINT
);
CREATE UNIQUE INDEX pin_unlocks_one_open ON pin_unlocks (token_serial)
    WHERE state = 'released';

-- Demo mode's relying platform (/dev/platform) receives CertHall's
-- webhook like a real platform and keeps what it verified here, so every
-- process shows the same.
CREATE TABLE demo_platform_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    platform_id  BIGINT  NOT NULL,
    event_id     BIGINT  NOT NULL,
    kind         TEXT    NOT NULL,
    serial       TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    received_at  BIGINT  NOT NULL,
    UNIQUE (platform_id, event_id)
);
