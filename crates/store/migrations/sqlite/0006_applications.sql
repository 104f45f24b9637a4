-- 应用 catalogue (certhall_domain::application). Keep in step with the other
-- backend's 0006_applications.sql. Prices in fen.
CREATE TABLE applications (
    code           TEXT    PRIMARY KEY,
    name           TEXT    NOT NULL,
    profile        TEXT    NOT NULL,
    validity_days  BIGINT  NOT NULL,
    price_fen      BIGINT  NOT NULL,
    description    TEXT    NOT NULL,
    active         BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);
