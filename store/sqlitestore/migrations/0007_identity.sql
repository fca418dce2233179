-- The store's identity (store.Identity) and the readiness probe: one row
-- each, overwritten in place, so neither ever grows the file.
CREATE TABLE store_identity (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    id         TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    previous   TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE probe (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    at  INTEGER NOT NULL
);
