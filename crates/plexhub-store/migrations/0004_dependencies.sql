-- Dependencies registered through POST /api/plugin-gateway/dependencies: extra edges of a
-- catalog plugin, applying to every version of it, beside its manifests' own. Global (the
-- catalog is global); only an admin writes them.
CREATE TABLE plugin_dependencies (
    plugin_id      TEXT NOT NULL,
    depends_on     TEXT NOT NULL,
    version_range  TEXT NOT NULL,
    required       BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (plugin_id, depends_on)
);

CREATE INDEX plugin_dependencies_by_target ON plugin_dependencies (depends_on);
