-- A tenant's gateway quotas as JSON ({"perCaller":{"rps","burst"},"perTenant":{…}}); NULL
-- means the hub's defaults.
ALTER TABLE tenants ADD COLUMN rate_limits TEXT;
