-- Ordering lanes (store.Delivery.Lane): a delivery's lane within its action,
-- NULL when it has none. Of the deliveries of one action and lane that are
-- not final, one is queued (due_at set: the first created, or the one a
-- worker holds); the others wait with due_at NULL until it is final.
ALTER TABLE deliveries ADD COLUMN lane TEXT;
CREATE INDEX deliveries_lane ON deliveries (action, lane, created_at, id)
    WHERE lane IS NOT NULL AND status IN ('pending', 'retrying');
