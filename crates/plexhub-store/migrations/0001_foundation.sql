-- Tenants, plugin catalog, installations and credentials.
-- Portable schema: TEXT ids (UUIDs for tenants), BIGINT epoch-millisecond times, JSON as TEXT.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE plugin_versions (
    plugin_id     TEXT NOT NULL,
    version       TEXT NOT NULL,
    manifest      TEXT NOT NULL,
    published_at  BIGINT NOT NULL,
    PRIMARY KEY (plugin_id, version)
);

CREATE TABLE installations (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    plugin_id        TEXT NOT NULL,
    version          TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('INSTALLED', 'ACTIVE', 'DISABLED')),
    base_url         TEXT NOT NULL,
    allowed_origins  TEXT NOT NULL,
    grants           TEXT NOT NULL,
    installed_at     BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, plugin_id),
    FOREIGN KEY (plugin_id, version) REFERENCES plugin_versions (plugin_id, version)
);

CREATE TABLE credentials (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    plugin_id     TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    FOREIGN KEY (tenant_id, plugin_id) REFERENCES installations (tenant_id, plugin_id) ON DELETE CASCADE
);

CREATE INDEX credentials_by_installation ON credentials (tenant_id, plugin_id);
