-- The OCSP generation (issue 14): bumped with every change that makes a
-- pre-signed OCSP answer stale (a revocation, a responder rotation: every
-- drop from ocsp_responses). Each process keeps answers in memory and
-- reads this one row at most every ocsp_poll to learn that another
-- process changed something.
CREATE TABLE ocsp_generation (
    id  INTEGER PRIMARY KEY,
    seq BIGINT  NOT NULL
);
INSERT INTO ocsp_generation (id, seq) VALUES (1, 0);
