-- Codes sent by SMS now also confirm single operations (issue 12: revoking
-- a certificate, later renewal and PIN unlock): `purpose` is `login` or
-- the operation and its object (`revoke:0A1B…`). A code is only ever
-- checked against the latest code of its own purpose, and its keyed hash
-- covers the purpose too. Send limits keep counting every purpose.
ALTER TABLE login_codes ADD COLUMN purpose TEXT NOT NULL DEFAULT 'login';
