-- The audit log stores the calls of one write together, up to 256 per row, as a JSON array of
-- arrays `[at, tenant, caller, target, service, method, path, endpoint, status, duration_us,
-- request_id]` (names as gateway_call_names ids, target and endpoint null when absent).
-- A row per call cost every audited call a B-tree insert into the table and its time index and
-- eleven bound parameters (about 6 500 instructions on SQLite, on the CPU that serves the
-- requests); a row per write costs that once per write. first_at and last_at bound the calls'
-- times, so a listing (newest first) reads rows by last_at and stops once no older row can hold
-- a call of its page; retention deletes a row once its newest call is past it.
CREATE TABLE gateway_call_batches (
    first_at BIGINT NOT NULL,
    last_at  BIGINT NOT NULL,
    calls    TEXT NOT NULL
);

-- Each existing call becomes a row of its own (JSON built with portable string functions: a
-- path or request id escapes its backslashes and quotes).
INSERT INTO gateway_call_batches (first_at, last_at, calls)
SELECT at, at,
       '[[' || CAST(at AS TEXT) || ',' || CAST(tenant AS TEXT) || ',' || CAST(caller AS TEXT)
       || ',' || COALESCE(CAST(target AS TEXT), 'null') || ',' || CAST(service AS TEXT)
       || ',' || CAST(method AS TEXT)
       || ',"' || REPLACE(REPLACE(path, '\', '\\'), '"', '\"') || '",'
       || COALESCE(CAST(endpoint AS TEXT), 'null') || ',' || CAST(status AS TEXT)
       || ',' || CAST(duration_us AS TEXT)
       || ',"' || REPLACE(REPLACE(request_id, '\', '\\'), '"', '\"') || '"]]'
FROM gateway_calls;

DROP TABLE gateway_calls;
CREATE INDEX gateway_call_batches_by_last_at ON gateway_call_batches (last_at);
