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
// after the event's ReceivedAt; an expired key is taken by the new event.
// An event without a key, or with a KeyTTL <= 0, is never a duplicate and
// takes no key. The key is kept with the event that took it
// (key_expires_at), and goes when that event is pruned.
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

	var keyExpires int64 // 0: the event takes no key
	if checkKey {
		keyExpires = millis(ev.ReceivedAt.Add(a.KeyTTL))
	}
	var res store.Accepted
	err = s.write(ctx, func(w *writeTx) error {
		if checkKey {
			// The key's holder is the newest event of the hook that took
			// it; its window, while open at this event's receipt, makes
			// this one a duplicate, stored nowhere but as an arrival on it.
			var holder string
			var until int64
			err := w.queryRow(`SELECT id, key_expires_at FROM events
				WHERE hook = ? AND idempotency_key = ? AND key_expires_at > 0
				ORDER BY id DESC LIMIT 1`, ev.Hook, ev.IdempotencyKey).Scan(&holder, &until)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return err
			case holder == ev.ID:
				// This very accept, committed before: its caller gave up
				// waiting for the answer and asks again.
				res = store.Accepted{EventID: ev.ID}
				return nil
			case until > received:
				res = store.Accepted{EventID: holder, Duplicate: true}
				return arrived(w, holder, ev.ReceivedAt)
			}
		}
		if _, err := w.exec(`INSERT INTO events (`+eventColumns+`, seal_key, key_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ev.ID, ev.Hook, received, ev.IdempotencyKey, cols.headers, cols.query, cols.body, string(ev.Status), rules, cols.trace, cols.key, keyExpires); err != nil {
			return err
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

// arrived records on original the arrival, at at, of a duplicate of it.
func arrived(w *writeTx, original string, at time.Time) error {
	var d store.Duplicates
	var arrivals string
	err := w.queryRow(`SELECT duplicates, duplicate_arrivals FROM events WHERE id = ?`, original).Scan(&d.Count, &arrivals)
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
