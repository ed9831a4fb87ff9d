-- Per-installation HMAC secrets that sign the requests the gateway forwards (and event
-- deliveries) to that installation, and the installation's choice of signing scheme.
-- `signing` NULL: the hub's default scheme (setting --signing-scheme).
ALTER TABLE installations ADD COLUMN signing TEXT CHECK (signing IN ('hmac', 'ed25519'));

-- A secret is current while `expires_at` is NULL; a rotation gives the current one an expiry
-- (the end of the overlap window) and inserts the next. Secrets are readable only by their own
-- installation (GET /api/v1/self/signing-secrets) and never logged.
CREATE TABLE signing_secrets (
    key_id      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    plugin_id   TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    FOREIGN KEY (tenant_id, plugin_id) REFERENCES installations (tenant_id, plugin_id) ON DELETE CASCADE
);

CREATE INDEX signing_secrets_by_installation ON signing_secrets (tenant_id, plugin_id);
-- At most one current secret per installation, so hubs racing to create the first one agree.
CREATE UNIQUE INDEX signing_secrets_current ON signing_secrets (tenant_id, plugin_id)
    WHERE expires_at IS NULL;
