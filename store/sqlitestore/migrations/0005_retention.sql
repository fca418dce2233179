-- Retention deletes events with their deliveries, attempts and idempotency
-- keys. Deleting an event makes SQLite look up the keys that name it (the
-- foreign key): without this index, a scan of every key per event.
CREATE INDEX idempotency_keys_event_id ON idempotency_keys (event_id);

-- The pruning lease (one process prunes a file at a time) and the id of the
-- last event examined, from which the next batch goes on; '' to start from
-- the oldest. Times are unix milliseconds.
CREATE TABLE pruning (
    id     INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    owner  TEXT    NOT NULL,
    until  INTEGER NOT NULL,
    cursor TEXT    NOT NULL
) STRICT;
