-- At most one active (not retired) CA certificate per family and role, so
-- two processes initializing or rotating at once cannot both win.
CREATE UNIQUE INDEX ca_authorities_one_active ON ca_authorities (family, role) WHERE retired_at IS NULL;
