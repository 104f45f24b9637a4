-- 补办 (issue 12): a replacement order names the certificate it replaces
-- (lost or broken key). One open replacement per certificate: a second
-- request finds the open one.
CREATE TABLE order_replaces (
    order_id    BIGINT  PRIMARY KEY,
    serial      TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX order_replaces_serial ON order_replaces (serial);
