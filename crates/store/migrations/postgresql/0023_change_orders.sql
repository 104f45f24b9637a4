-- 证书变更 (issue 12): a change order names the certificate it changes
-- in order_replaces (reason 'change'), like 补办; once approved, its new
-- certificate is written onto the same key through a renewal row that
-- names the order (the subject then comes from the order's checked data,
-- not from the old certificate).
ALTER TABLE renewals ADD COLUMN order_id BIGINT;
