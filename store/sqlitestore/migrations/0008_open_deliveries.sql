-- Deliveries are listed by status through this index, which holds only the
-- deliveries that have not succeeded: one that succeeds, the most common
-- change, leaves it rather than moving within it, and the index stays small.
-- Succeeded deliveries, nearly all of a store, are found by walking the
-- deliveries newest first. Queries name the index's condition as it is
-- written here, so that SQLite can use it.
DROP INDEX deliveries_status_id;
CREATE INDEX deliveries_open_id ON deliveries (status, id) WHERE status <> 'succeeded';
