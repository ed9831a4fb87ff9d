-- Events between plugins: the retained log of each tenant, subscriptions created from
-- manifests, pending deliveries (the queue, with leases so one hub works each), dead letters.

ALTER TABLE tenants ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE events (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq            BIGINT NOT NULL,
    event_id       TEXT NOT NULL,
    source         TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    partition_key  TEXT,
    published_at   BIGINT NOT NULL,
    envelope       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq),
    UNIQUE (tenant_id, source, event_id)
);
CREATE INDEX events_by_time ON events (published_at);

CREATE TABLE subscriptions (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    plugin_id      TEXT NOT NULL,
    pattern        TEXT NOT NULL,
    endpoint       TEXT NOT NULL,
    max_attempts   INTEGER NOT NULL,
    created_at     BIGINT NOT NULL,
    delivered      BIGINT NOT NULL DEFAULT 0,
    dead_lettered  BIGINT NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, plugin_id, pattern, endpoint),
    FOREIGN KEY (tenant_id, plugin_id) REFERENCES installations (tenant_id, plugin_id) ON DELETE CASCADE
);

CREATE TABLE deliveries (
    subscription_id  TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    tenant_id        TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    partition_key    TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    due_at           BIGINT NOT NULL,
    leased_until     BIGINT NOT NULL DEFAULT 0,
    lease_token      TEXT,
    last_error       TEXT,
    PRIMARY KEY (subscription_id, seq)
);
CREATE INDEX deliveries_by_due ON deliveries (due_at);
CREATE INDEX deliveries_in_order ON deliveries (subscription_id, partition_key, seq);
CREATE INDEX deliveries_by_lease ON deliveries (lease_token);
CREATE INDEX deliveries_by_event ON deliveries (tenant_id, seq);

CREATE TABLE dead_letters (
    id               TEXT PRIMARY KEY,
    subscription_id  TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    tenant_id        TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    attempts         INTEGER NOT NULL,
    last_error       TEXT NOT NULL,
    failed_at        BIGINT NOT NULL
);
CREATE INDEX dead_letters_by_subscription ON dead_letters (subscription_id);
CREATE INDEX dead_letters_by_event ON dead_letters (tenant_id, seq);
