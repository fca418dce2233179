-- Deliveries are leased action by action, so that one action's backlog never
-- hides another's due deliveries: each action's queue is a range of this
-- index, earliest due first. leased_until rides along so that queue
-- statistics tell held deliveries from scheduled ones from the index alone;
-- it costs no extra index write, since every statement that sets
-- leased_until sets due_at too. A delivery holds a live lease exactly when
-- its leased_until (0 once the lease is cleared, and then equal to due_at)
-- lies ahead.
CREATE INDEX deliveries_action_due ON deliveries (action, due_at, id, leased_until)
    WHERE due_at IS NOT NULL;

-- Nothing reads the queue across actions any more; keeping this index up to
-- date would only slow every lease and finish down.
DROP INDEX deliveries_due_at;

-- The pause switch and circuit breaker of each action (store.ActionState),
-- shared by every worker on the file. A missing row is the zero state:
-- running, breaker closed, version 0. Times are unix milliseconds (0 = unset).
CREATE TABLE action_states (
    action        TEXT    NOT NULL PRIMARY KEY,
    paused        INTEGER NOT NULL,
    breaker       TEXT    NOT NULL,
    failures      INTEGER NOT NULL,
    opens         INTEGER NOT NULL,
    blocked_until INTEGER NOT NULL,
    changed_at    INTEGER NOT NULL,
    last_error    TEXT    NOT NULL,
    version       INTEGER NOT NULL
) STRICT;
