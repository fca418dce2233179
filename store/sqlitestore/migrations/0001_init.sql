-- Times are unix milliseconds (0 = unset), durations nanoseconds, maps and
-- lists JSON text.

CREATE TABLE events (
    id              TEXT    NOT NULL PRIMARY KEY,
    hook            TEXT    NOT NULL,
    received_at     INTEGER NOT NULL,
    idempotency_key TEXT    NOT NULL,
    headers         TEXT    NOT NULL,
    query           TEXT    NOT NULL,
    body            BLOB,
    status          TEXT    NOT NULL,
    matched_rules   TEXT    NOT NULL
) STRICT;

-- One row per (hook, key); a row whose expires_at <= an event's received_at
-- counts as absent and is replaced.
CREATE TABLE idempotency_keys (
    hook       TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    event_id   TEXT    NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (hook, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

-- due_at is the queue: next_attempt_at while pending or retrying, the lease's
-- expiry while a worker holds the delivery, NULL once final.
CREATE TABLE deliveries (
    id              TEXT    NOT NULL PRIMARY KEY,
    event_id        TEXT    NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    hook            TEXT    NOT NULL,
    rule            TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    leased_until    INTEGER NOT NULL,
    lease_token     TEXT    NOT NULL,
    last_error      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    due_at          INTEGER
) STRICT;

CREATE INDEX deliveries_event_id ON deliveries (event_id);
CREATE INDEX deliveries_due_at ON deliveries (due_at, id) WHERE due_at IS NOT NULL;

CREATE TABLE attempts (
    seq             INTEGER NOT NULL PRIMARY KEY,
    delivery_id     TEXT    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    n               INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    duration_ns     INTEGER NOT NULL,
    method          TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    request_headers TEXT    NOT NULL,
    status_code     INTEGER NOT NULL,
    error           TEXT    NOT NULL,
    response_body   TEXT    NOT NULL
) STRICT;

CREATE INDEX attempts_delivery_id ON attempts (delivery_id, n, seq);
