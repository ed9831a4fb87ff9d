-- Keyed deliveries are claimable only at the head of their key, per subscription. A claim reads
-- claimable rows by due time through a partial index and never looks at the backlog behind a
-- key; the delivery that ends (acknowledged or dead-lettered) hands over to the next one of its
-- key. `delivery_heads` holds the current head of each busy key: a publisher upserts it (the
-- row lock orders it with a hand-over of the same key), so at most one delivery of a key is
-- ever claimable.
ALTER TABLE deliveries ADD COLUMN claimable BOOLEAN NOT NULL DEFAULT TRUE;

CREATE TABLE delivery_heads (
    subscription_id  TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    partition_key    TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, partition_key)
);

-- Deliveries queued before this migration: the oldest of each key is its head.
UPDATE deliveries SET claimable = FALSE
WHERE partition_key <> '' AND EXISTS (
    SELECT 1 FROM deliveries earlier
    WHERE earlier.subscription_id = deliveries.subscription_id
      AND earlier.partition_key = deliveries.partition_key
      AND earlier.seq < deliveries.seq
);
INSERT INTO delivery_heads (subscription_id, partition_key, seq)
SELECT subscription_id, partition_key, MIN(seq) FROM deliveries
WHERE partition_key <> '' GROUP BY subscription_id, partition_key;

-- What a claim reads: claimable deliveries by due time (replaces the index on due_at alone).
CREATE INDEX deliveries_claimable ON deliveries (due_at, seq) WHERE claimable;
DROP INDEX deliveries_by_due;
