-- Service registry: services with endpoints and instances, and a per-tenant change log for watch.
ALTER TABLE tenants ADD COLUMN registry_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE services (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    plugin_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, name),
    FOREIGN KEY (tenant_id, plugin_id) REFERENCES installations (tenant_id, plugin_id) ON DELETE CASCADE
);

CREATE TABLE service_endpoints (
    service_id   TEXT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    tenant_id    TEXT NOT NULL,
    position     BIGINT NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    description  TEXT,
    permissions  TEXT NOT NULL,
    metadata     TEXT NOT NULL,
    PRIMARY KEY (service_id, position),
    UNIQUE (service_id, method, path)
);

CREATE TABLE service_instances (
    service_id    TEXT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    tenant_id     TEXT NOT NULL,
    instance_id   TEXT NOT NULL,
    base_url      TEXT NOT NULL,
    version       TEXT,
    metadata      TEXT NOT NULL,
    reported      TEXT NOT NULL,
    reason        TEXT,
    last_seen_at  BIGINT NOT NULL,
    -- The effective status last announced to watchers; the health sweep compares against it.
    announced     TEXT NOT NULL,
    PRIMARY KEY (service_id, instance_id)
);

CREATE TABLE registry_events (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq           BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    service_name  TEXT NOT NULL,
    plugin_id     TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

CREATE INDEX registry_events_by_time ON registry_events (created_at);
