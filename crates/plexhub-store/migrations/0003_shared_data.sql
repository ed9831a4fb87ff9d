-- Shared data: namespaced key/value entries per tenant, owned by an installed plugin, with a
-- revision per key, optional expiry, and a per-tenant change log for watchers.
ALTER TABLE tenants ADD COLUMN data_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE shared_data (
    tenant_id   TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, namespace, key),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES installations (tenant_id, plugin_id) ON DELETE CASCADE
);

CREATE INDEX shared_data_by_expiry ON shared_data (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX shared_data_by_owner ON shared_data (tenant_id, owner_id);

CREATE TABLE data_events (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    key         TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

CREATE INDEX data_events_by_time ON data_events (created_at);
