-- The gateway's audit log: one row per plugin-to-plugin call (forwarded or refused), kept for
-- the retention the settings give.
CREATE TABLE gateway_calls (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    at           BIGINT NOT NULL,
    caller       TEXT NOT NULL,
    target       TEXT,
    service      TEXT NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    endpoint     TEXT,
    status       BIGINT NOT NULL,
    duration_us  BIGINT NOT NULL,
    request_id   TEXT NOT NULL
);

CREATE INDEX gateway_calls_by_tenant_time ON gateway_calls (tenant_id, at);
CREATE INDEX gateway_calls_by_time ON gateway_calls (at);
