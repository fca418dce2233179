package sqlitestore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// Lease claims up to n deliveries due at now (pending or retrying with a due
// time <= now, which includes those whose lease has expired) for ttl. Each
// gets a fresh token, and its due time moves to now+ttl: a worker that dies
// holding it simply lets it fall due again.
func (s *Store) Lease(ctx context.Context, now time.Time, n int, ttl time.Duration) ([]store.Lease, error) {
	if n <= 0 {
		return nil, nil
	}
	nowMS := millis(now)
	until := now.Add(ttl)
	untilMS := millis(until)
	var leases []store.Lease
	err := s.write(ctx, func(w *writeTx) error {
		leases = leases[:0]
		rows, err := w.query(`SELECT id FROM deliveries
			WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at, id LIMIT ?`, nowMS, n)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		events := make(map[string]store.Event)
		for _, id := range ids {
			token := rand.Text()
			d, err := scanDelivery(w.queryRow(`UPDATE deliveries
				SET lease_token = ?, leased_until = ?, due_at = ?
				WHERE id = ? RETURNING `+deliveryColumns, token, untilMS, untilMS, id))
			if err != nil {
				return err
			}
			ev, ok := events[d.EventID]
			if !ok {
				ev, err = scanEvent(w.queryRow(`SELECT `+eventSelect+` FROM events WHERE id = ?`, d.EventID))
				if err != nil {
					return fmt.Errorf("event %s of delivery %s: %w", d.EventID, d.ID, err)
				}
				events[d.EventID] = ev
			}
			leases = append(leases, store.Lease{Delivery: d, Event: ev, Token: token, Until: d.LeasedUntil})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: lease: %w", err)
	}
	return leases, nil
}

// Finish records the attempt (under l's delivery) and, if l still holds the
// delivery (same token, not final), counts the attempt and applies the
// outcome; a retry without NextAttemptAt is due when the attempt ended.
// Otherwise the attempt is kept, nothing else changes, and Finish returns
// store.ErrLeaseLost. An unknown delivery records nothing: store.ErrNotFound.
func (s *Store) Finish(ctx context.Context, l store.Lease, a store.Attempt, o store.Outcome) error {
	id := l.Delivery.ID
	switch o.Status {
	case store.DeliverySucceeded, store.DeliveryRetrying, store.DeliveryDead:
	default:
		return fmt.Errorf("sqlitestore: finish %s: outcome status %q is not succeeded, retrying or dead", id, o.Status)
	}
	headers, err := encodeJSON(a.RequestHeaders)
	if err != nil {
		return fmt.Errorf("sqlitestore: finish %s: %w", id, err)
	}
	// Finish carries no clock of its own: the delivery changed when the
	// attempt ended.
	updated := time.Now()
	if !a.StartedAt.IsZero() {
		updated = a.StartedAt.Add(a.Duration)
	}
	var due, next any = nil, int64(0) // final: off the queue
	if o.Status == store.DeliveryRetrying {
		at := o.NextAttemptAt
		if at.IsZero() {
			at = updated
		}
		due, next = millis(at), millis(at)
	}

	lost := false
	err = s.write(ctx, func(w *writeTx) error {
		var status, token string
		err := w.queryRow(`SELECT status, lease_token FROM deliveries WHERE id = ?`, id).
			Scan(&status, &token)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := w.exec(`INSERT INTO attempts (`+attemptColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, a.N, millis(a.StartedAt), int64(a.Duration), a.Method, a.URL, headers,
			a.StatusCode, a.Error, a.ResponseBody); err != nil {
			return err
		}
		final := status == string(store.DeliverySucceeded) || status == string(store.DeliveryDead)
		if l.Token == "" || token != l.Token || final {
			lost = true
			return nil // the attempt stays recorded
		}
		_, err = w.exec(`UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?,
			leased_until = 0, lease_token = '', last_error = ?, updated_at = ?, due_at = ? WHERE id = ?`,
			string(o.Status), next, o.Error, millis(updated), due, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: finish %s: %w", id, err)
	}
	if lost {
		return fmt.Errorf("sqlitestore: finish %s: %w", id, store.ErrLeaseLost)
	}
	return nil
}
