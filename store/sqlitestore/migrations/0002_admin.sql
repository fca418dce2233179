-- Listings page newest first by id (ULIDs sort by creation time), within
-- whichever of these indexes the filter names.
CREATE INDEX events_hook_id ON events (hook, id);
CREATE INDEX events_status_id ON events (status, id);
CREATE INDEX deliveries_hook_id ON deliveries (hook, id);
CREATE INDEX deliveries_action_id ON deliveries (action, id);
CREATE INDEX deliveries_status_id ON deliveries (status, id);

-- Admin API keys. Only a hash of each secret is kept; revoked keys stay
-- listed. Times are unix milliseconds (0 = unset), scopes a JSON list.
CREATE TABLE api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    name         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    hash         TEXT    NOT NULL UNIQUE,
    scopes       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    revoked_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX api_keys_created_at ON api_keys (created_at, id);
