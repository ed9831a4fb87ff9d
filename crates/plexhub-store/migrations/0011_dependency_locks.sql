-- One row per plugin whose registered dependencies were ever replaced. A replacement upserts
-- its plugin's row first: that row lock makes concurrent replacements of one plugin's edges
-- wait for each other (each deletes what the previous one committed), instead of racing to
-- insert the same keys.
CREATE TABLE plugin_dependency_locks (
    plugin_id  TEXT PRIMARY KEY
);
