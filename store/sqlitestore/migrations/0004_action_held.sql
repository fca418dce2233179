-- An action's concurrency caps its live leases: those whose leased_until
-- lies ahead. This index holds only deliveries whose lease has not been
-- cleared, so counting an action's live leases reads just those.
CREATE INDEX deliveries_action_held ON deliveries (action, leased_until)
    WHERE leased_until > 0;
