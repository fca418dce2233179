package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// Accept checks the idempotency key, stores the event and enqueues its
// deliveries in one transaction. It sets the event's Status: accepted with
// deliveries, ignored without. A key counts as present while its expiry is
// after the event's ReceivedAt; an expired key is replaced by the new event.
// An event without a key, or with a KeyTTL <= 0, is never a duplicate and
// leaves no key behind.
func (s *Store) Accept(ctx context.Context, a store.Accept) (store.Accepted, error) {
	ev := a.Event
	if ev.ID == "" {
		return store.Accepted{}, errors.New("sqlitestore: accept: event has no id")
	}
	if err := store.CheckEventID(ev); err != nil {
		return store.Accepted{}, fmt.Errorf("sqlitestore: accept: %w", err)
	}
	// Without a key, or without a window for it, there is nothing to check.
	checkKey := ev.IdempotencyKey != "" && a.KeyTTL > 0
	ev.Status = store.EventIgnored
	if len(a.Deliveries) > 0 {
		ev.Status = store.EventAccepted
	}
	// Encode before queueing: the writer's time is the shared resource.
	headers, err := encodeJSON(ev.Headers)
	if err != nil {
		return store.Accepted{}, fmt.Errorf("sqlitestore: accept %s: %w", ev.ID, err)
	}
	query, err := encodeJSON(ev.Query)
	if err != nil {
		return store.Accepted{}, fmt.Errorf("sqlitestore: accept %s: %w", ev.ID, err)
	}
	rules, err := encodeJSON(ev.MatchedRules)
	if err != nil {
		return store.Accepted{}, fmt.Errorf("sqlitestore: accept %s: %w", ev.ID, err)
	}
	// Sealed here too (seal.go), outside the writer.
	cols := sealColumns(s.keys, ev.ID, headers, query, encodeTrace(ev.Trace), ev.Body)
	received := millis(ev.ReceivedAt)
	deliveries := make([]store.Delivery, len(a.Deliveries))
	for i, d := range a.Deliveries {
		if d.ID == "" {
			return store.Accepted{}, fmt.Errorf("sqlitestore: accept %s: delivery %d has no id", ev.ID, i)
		}
		deliveries[i] = store.Enqueued(d, ev.ID, ev.Hook, ev.ReceivedAt)
	}

	var res store.Accepted
	err = s.write(ctx, func(w *writeTx) error {
		if _, err := w.exec(`INSERT INTO events (`+eventColumns+`, seal_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ev.ID, ev.Hook, received, ev.IdempotencyKey, cols.headers, cols.query, cols.body, string(ev.Status), rules, cols.trace, cols.key); err != nil {
			return err
		}
		if checkKey {
			// One statement takes the key unless a window of it is open:
			// a row comes back when it was taken, none for a duplicate,
			// the rare case that reads the event it duplicates and undoes
			// the insert above.
			var taken string
			err := w.queryRow(`INSERT INTO idempotency_keys (hook, key, event_id, expires_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (hook, key) DO UPDATE SET event_id = excluded.event_id, expires_at = excluded.expires_at
				WHERE idempotency_keys.expires_at <= ?
				RETURNING event_id`,
				ev.Hook, ev.IdempotencyKey, ev.ID, millis(ev.ReceivedAt.Add(a.KeyTTL)), received).Scan(&taken)
			if errors.Is(err, sql.ErrNoRows) {
				var original string
				if err := w.queryRow(`SELECT event_id FROM idempotency_keys WHERE hook = ? AND key = ?`,
					ev.Hook, ev.IdempotencyKey).Scan(&original); err != nil {
					return err
				}
				res = store.Accepted{EventID: original, Duplicate: true}
				return duplicate(w, ev.ID, original, ev.ReceivedAt)
			}
			if err != nil {
				return err
			}
		}
		for _, d := range deliveries {
			if err := insertDelivery(w, d); err != nil {
				return err
			}
		}
		if len(deliveries) > 0 {
			w.wake = true
		}
		res = store.Accepted{EventID: ev.ID}
		return nil
	})
	if err != nil {
		return store.Accepted{}, fmt.Errorf("sqlitestore: accept %s: %w", ev.ID, err)
	}
	return res, nil
}

// duplicate undoes the insert of event id, a duplicate of original that
// arrived at at, and records the arrival on original.
func duplicate(w *writeTx, id, original string, at time.Time) error {
	if _, err := w.exec(`DELETE FROM events WHERE id = ?`, id); err != nil {
		return err
	}
	var d store.Duplicates
	var arrivals string
	err := w.queryRow(`SELECT duplicates, duplicate_arrivals FROM events WHERE id = ?`, original).Scan(&d.Count, &arrivals)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // a key whose event is gone: nothing to record it on
	}
	if err != nil {
		return err
	}
	if d.Last, err = parseArrivals(arrivals); err != nil {
		return fmt.Errorf("event %s duplicate arrivals: %w", original, err)
	}
	d = d.Arrived(at)
	_, err = w.exec(`UPDATE events SET duplicates = ?, duplicate_arrivals = ? WHERE id = ?`, d.Count, encodeArrivals(d.Last), original)
	return err
}

// insertDelivery stores d and queues it at its NextAttemptAt, unless its
// lane has a delivery queued or held already: it then waits behind it.
func insertDelivery(w *writeTx, d store.Delivery) error {
	var lane, due any = nil, millis(d.NextAttemptAt)
	if d.Lane != "" {
		lane = d.Lane
		busy, err := laneBusy(w, d.Action, d.Lane, d.ID)
		if err != nil {
			return err
		}
		if busy {
			due = nil
		}
	}
	_, err := w.exec(`INSERT INTO deliveries (`+deliveryColumns+`, lease_token, due_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?)`,
		d.ID, d.EventID, d.Hook, d.Rule, d.Action, string(d.Status), d.Attempts,
		millis(d.NextAttemptAt), millis(d.LeasedUntil), d.LastError, millis(d.CreatedAt), millis(d.UpdatedAt), lane, due)
	return err
}

// laneBusy reports whether a delivery of the action's lane other than id
// is queued or held.
func laneBusy(w *writeTx, action, lane, id string) (bool, error) {
	var busy bool
	err := w.queryRow(`SELECT EXISTS (SELECT 1 FROM deliveries INDEXED BY deliveries_lane
		WHERE action = ? AND lane = ? AND status IN ('pending', 'retrying') AND due_at IS NOT NULL AND id != ?)`,
		action, lane, id).Scan(&busy)
	return busy, err
}

// promote queues the first waiting delivery of the action's lane, unless
// one is queued or held: called when one of the lane's deliveries became
// final. It reports whether it queued one.
func promote(w *writeTx, action, lane string) (bool, error) {
	if busy, err := laneBusy(w, action, lane, ""); err != nil || busy {
		return false, err
	}
	res, err := w.exec(`UPDATE deliveries SET due_at = next_attempt_at
		WHERE id = (SELECT id FROM deliveries INDEXED BY deliveries_lane
			WHERE action = ? AND lane = ? AND status IN ('pending', 'retrying') ORDER BY created_at, id LIMIT 1)
		AND due_at IS NULL`, action, lane)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}
