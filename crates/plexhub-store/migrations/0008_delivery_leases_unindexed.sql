-- Claims no longer look deliveries up by lease token (PostgreSQL joins the UPDATE's RETURNING,
-- SQLite reads the returned keys), and without this index a claim that sets the lease changes
-- no indexed column: PostgreSQL can update the row in place (HOT) instead of adding an entry
-- to every index of the queue.
DROP INDEX deliveries_by_lease;
