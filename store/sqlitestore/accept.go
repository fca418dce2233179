package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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
		if checkKey {
			var original string
			var expires int64
			err := w.queryRow(`SELECT event_id, expires_at FROM idempotency_keys WHERE hook = ? AND key = ?`,
				ev.Hook, ev.IdempotencyKey).Scan(&original, &expires)
			switch {
			case err == nil && expires > received:
				res = store.Accepted{EventID: original, Duplicate: true}
				return nil
			case err != nil && !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		if _, err := w.exec(`INSERT INTO events (`+eventColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ev.ID, ev.Hook, received, ev.IdempotencyKey, headers, query, encodeBody(ev.Body), string(ev.Status), rules); err != nil {
			return err
		}
		if checkKey {
			if _, err := w.exec(`INSERT INTO idempotency_keys (hook, key, event_id, expires_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (hook, key) DO UPDATE SET event_id = excluded.event_id, expires_at = excluded.expires_at`,
				ev.Hook, ev.IdempotencyKey, ev.ID, millis(ev.ReceivedAt.Add(a.KeyTTL))); err != nil {
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

// insertDelivery stores d and queues it at its NextAttemptAt.
func insertDelivery(w *writeTx, d store.Delivery) error {
	_, err := w.exec(`INSERT INTO deliveries (`+deliveryColumns+`, lease_token, due_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?)`,
		d.ID, d.EventID, d.Hook, d.Rule, d.Action, string(d.Status), d.Attempts,
		millis(d.NextAttemptAt), millis(d.LeasedUntil), d.LastError, millis(d.CreatedAt), millis(d.UpdatedAt), millis(d.NextAttemptAt))
	return err
}
