-- Keyed deliveries wait their turn parked: a delivery queued behind another of its key (same
-- subscription) gets due_at = 9223372036854775807 (the largest BIGINT) and is handed the key
-- when the one before it ends, so a claim, which reads due deliveries by (due_at, seq), never
-- walks a key's backlog. Deliveries queued before this migration are parked the same way.
UPDATE deliveries SET due_at = 9223372036854775807
WHERE partition_key <> '' AND leased_until = 0 AND EXISTS (
    SELECT 1 FROM deliveries earlier
    WHERE earlier.subscription_id = deliveries.subscription_id
      AND earlier.partition_key = deliveries.partition_key
      AND earlier.seq < deliveries.seq
);

-- What a claim reads, in the order it claims (the index on due_at alone left the tie on seq
-- to a sort, and the planner free to prefer a scan as the queue grows).
CREATE INDEX deliveries_by_due_seq ON deliveries (due_at, seq);
DROP INDEX deliveries_by_due;
