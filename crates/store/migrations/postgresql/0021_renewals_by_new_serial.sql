-- The production sweep asks, per orphan candidate, whether a renewal
-- issued the certificate (renewals hand theirs to their own sweep).
CREATE INDEX renewals_by_new_serial ON renewals (new_serial);
