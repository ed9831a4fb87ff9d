-- The audit log keeps one index. Its listing filters tenants as `($1 = '' OR tenant_id = $1)`,
-- which no planner answers from (tenant_id, at), so that index cost every audited call a B-tree
-- insert and served nothing; the time index serves the listing (newest first) and pruning.
-- Deleting a tenant now scans the audit log for its rows (a rare operator action).
DROP INDEX gateway_calls_by_tenant_time;
