-- Relying platforms (公共资源交易平台, issue 12) and the certificates
-- activated for them (证书激活). A platform calls /api/v1/relying/… with
-- a bearer token: only its SHA-256 is stored. Its origins are the pages
-- from which its users' keys sign activation challenges (one per line).
CREATE TABLE relying_platforms (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    application  TEXT    NOT NULL,
    origins      TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   BIGINT  NOT NULL
);

-- One row per certificate and platform: activated once, by whom, when.
CREATE TABLE certificate_activations (
    serial        TEXT    NOT NULL,
    platform_id   BIGINT  NOT NULL,
    account_id    BIGINT  NOT NULL,
    activated_at  BIGINT  NOT NULL,
    PRIMARY KEY (serial, platform_id)
);
