-- The catalog lifecycle (issue #21): each version's review status, yank flag, deprecation and
-- manifest digest; the audit trail of its transitions; and read-only "shell" credentials with
-- which a tenant's web shell reads its plugins' remotes. Versions published before this
-- migration are PUBLISHED; their digest is computed when read (manifest_sha256 NULL).
ALTER TABLE plugin_versions ADD COLUMN status TEXT NOT NULL DEFAULT 'PUBLISHED'
    CHECK (status IN ('DRAFT', 'PENDING_REVIEW', 'PUBLISHED', 'DEPRECATED', 'REJECTED'));
ALTER TABLE plugin_versions ADD COLUMN yanked BIGINT NOT NULL DEFAULT 0;
-- The reviewer's reason of a rejection.
ALTER TABLE plugin_versions ADD COLUMN rejection TEXT;
-- The message of a deprecation and the plugin (or version) to use instead.
ALTER TABLE plugin_versions ADD COLUMN deprecation TEXT;
ALTER TABLE plugin_versions ADD COLUMN replacement TEXT;
-- Why the version is yanked.
ALTER TABLE plugin_versions ADD COLUMN yank_reason TEXT;
-- "sha256:<hex>" of the stored manifest text.
ALTER TABLE plugin_versions ADD COLUMN manifest_sha256 TEXT;
-- Last transition (or the publication), epoch milliseconds.
ALTER TABLE plugin_versions ADD COLUMN changed_at BIGINT;

-- One row per transition (and per publication), numbered per version in commit order: the
-- guarded update of the version row serializes writers.
CREATE TABLE plugin_version_transitions (
    plugin_id    TEXT NOT NULL,
    version      TEXT NOT NULL,
    step         BIGINT NOT NULL,
    action       TEXT NOT NULL,
    from_status  TEXT,
    to_status    TEXT NOT NULL,
    yanked       BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    reason       TEXT,
    at           BIGINT NOT NULL,
    PRIMARY KEY (plugin_id, version, step),
    FOREIGN KEY (plugin_id, version) REFERENCES plugin_versions (plugin_id, version)
);

CREATE TABLE shell_credentials (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    secret_hash   TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE INDEX shell_credentials_by_tenant ON shell_credentials (tenant_id);
