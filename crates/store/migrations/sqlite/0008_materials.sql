-- Step 5 materials and the legal representative's SMS authorization
-- (certhall_domain::materials). Keep in step with the other backend's
-- 0008_materials.sql.

-- One image per order and kind (license, company_seal, legal_rep_seal,
-- legal_rep_signature, authorization_letter); a new upload replaces it.
-- The bytes are the server's re-encoding (certhall-upload), never the
-- uploaded file, and live in the database so every CertHall process sees
-- them. ocr holds the fields read from a license (JSON), kept beside what
-- the applicant typed for the counter to compare.
CREATE TABLE order_materials (
    order_id       BIGINT  NOT NULL REFERENCES orders (id),
    kind           TEXT    NOT NULL,
    format         TEXT    NOT NULL,
    width          BIGINT  NOT NULL,
    height         BIGINT  NOT NULL,
    sha256         TEXT    NOT NULL,
    bytes          BLOB    NOT NULL,
    original_name  TEXT    NOT NULL,
    ocr            TEXT,
    uploaded_at    BIGINT  NOT NULL,
    PRIMARY KEY (order_id, kind)
);

-- Requests for the legal representative's 同意 / 拒绝. outcome: sending
-- (recorded before the SMS goes out, so every attempt counts towards the
-- limits), pending, agreed, refused, expired, withdrawn, failed. An
-- inbound SMS is matched on phone among the pending ones.
CREATE TABLE legal_rep_authorizations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id      BIGINT  NOT NULL REFERENCES orders (id),
    name          TEXT    NOT NULL,
    id_number     TEXT    NOT NULL,
    phone         TEXT    NOT NULL,
    requested_at  BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    outcome       TEXT    NOT NULL,
    answered_at   BIGINT
);
CREATE INDEX legal_rep_authorizations_pending ON legal_rep_authorizations (outcome, phone);
CREATE INDEX legal_rep_authorizations_by_order ON legal_rep_authorizations (order_id, id);
