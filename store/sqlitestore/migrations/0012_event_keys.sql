-- An event's idempotency key is kept with the event: key_expires_at is the
-- end of the window in which its key marks later arrivals as duplicates
-- (unix milliseconds), 0 when it took no key (none, or no window). The
-- key's holder is the newest event of the hook with that key and a window;
-- an index over those alone finds it. This replaces the idempotency_keys
-- table, whose row per key cost an insert into three B-trees (and a check
-- of the foreign key) on every accept, and a sweep to remove the expired
-- ones: a key now goes when its event is pruned, like the rest of it.
ALTER TABLE events ADD COLUMN key_expires_at INTEGER NOT NULL DEFAULT 0;
UPDATE events SET key_expires_at = k.expires_at
    FROM idempotency_keys AS k
    WHERE k.event_id = events.id AND k.hook = events.hook AND k.key = events.idempotency_key;
CREATE INDEX events_key ON events (hook, idempotency_key, id) WHERE key_expires_at > 0;
DROP TABLE idempotency_keys;
