-- CA engine (PostgreSQL). Keep in step with migrations/sqlite/0002_ca.sql.

-- One row per CA certificate: roots, issuing CAs, delegated OCSP signers.
-- key_ref says where the private key lives (JSON: an encrypted PKCS#8 file
-- or a PKCS#11 token); keys themselves are never stored here.
CREATE TABLE ca_authorities (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    family       TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    serial       TEXT    NOT NULL UNIQUE,
    subject      TEXT    NOT NULL,
    der          BYTEA   NOT NULL,
    sha256       TEXT    NOT NULL,
    key_ref      TEXT    NOT NULL,
    issuer_id    BIGINT  REFERENCES ca_authorities (id),
    not_before   BIGINT  NOT NULL,
    not_after    BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    retired_at   BIGINT
);
CREATE INDEX ca_authorities_by_family ON ca_authorities (family, role);

CREATE TABLE ca_profiles (
    name        TEXT    PRIMARY KEY,
    body        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

-- Every certificate issued to a subscriber. Status is derived: a row in
-- revocations means revoked; otherwise valid or expired by its dates.
CREATE TABLE certificates (
    serial              TEXT    PRIMARY KEY,
    issuer_id           BIGINT  NOT NULL REFERENCES ca_authorities (id),
    profile             TEXT    NOT NULL,
    subject             TEXT    NOT NULL,
    key_algorithm       TEXT    NOT NULL,
    not_before          BIGINT  NOT NULL,
    not_after           BIGINT  NOT NULL,
    der                 BYTEA   NOT NULL,
    sha256              TEXT    NOT NULL,
    account_id          BIGINT  REFERENCES accounts (id),
    order_id            BIGINT,
    predecessor_serial  TEXT    REFERENCES certificates (serial),
    issued_at           BIGINT  NOT NULL
);
CREATE INDEX certificates_by_issuer ON certificates (issuer_id, issued_at);
CREATE INDEX certificates_by_account ON certificates (account_id);

-- Revocation is its own record: who, when, why.
CREATE TABLE revocations (
    serial       TEXT    PRIMARY KEY REFERENCES certificates (serial),
    reason       TEXT    NOT NULL,
    reason_code  BIGINT  NOT NULL,
    revoked_at   BIGINT  NOT NULL,
    actor        TEXT    NOT NULL,
    comment      TEXT
);

CREATE TABLE crls (
    issuer_id    BIGINT  NOT NULL REFERENCES ca_authorities (id),
    number       BIGINT  NOT NULL,
    this_update  BIGINT  NOT NULL,
    next_update  BIGINT  NOT NULL,
    der          BYTEA   NOT NULL,
    PRIMARY KEY (issuer_id, number)
);

-- Pre-signed OCSP responses for requests without a nonce (RFC 5019),
-- shared by every process.
CREATE TABLE ocsp_responses (
    issuer_id    BIGINT  NOT NULL REFERENCES ca_authorities (id),
    serial       TEXT    NOT NULL,
    this_update  BIGINT  NOT NULL,
    next_update  BIGINT  NOT NULL,
    der          BYTEA   NOT NULL,
    PRIMARY KEY (issuer_id, serial)
);
