package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

var _ store.Admin = (*Store)(nil)

// filter collects the conditions of a listing query.
type filter struct {
	where []string
	args  []any
}

func (f *filter) add(cond string, arg any) {
	f.where = append(f.where, cond)
	f.args = append(f.args, arg)
}

// also adds a condition that takes no argument.
func (f *filter) also(cond string) { f.where = append(f.where, cond) }

func (f *filter) sql() string {
	if len(f.where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(f.where, " AND ")
}

// eventListSelect reads what scanEvent reads, but no body.
const eventListSelect = `id, hook, received_at, idempotency_key, headers, query, NULL, status, matched_rules, '', 0, 0, '', seal_key`

// ListEvents returns one page of the events matching f, newest first (by
// id), without their bodies.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, string, error) {
	if err := store.CheckCursor(f.Cursor, "evt"); err != nil {
		return nil, "", fmt.Errorf("sqlitestore: list events: %w", err)
	}
	limit := store.PageLimit(f.Limit)
	query, args := eventsQuery(f, limit)
	evs, next, err := listPage(ctx, s.rdb, query, args, limit, s.scanListed, func(e store.Event) string { return e.ID })
	if err != nil {
		return nil, "", fmt.Errorf("sqlitestore: list events: %w", err)
	}
	return evs, next, nil
}

// eventsQuery selects the page of f and one more row, which only tells
// whether a next page exists.
func eventsQuery(f store.EventFilter, limit int) (string, []any) {
	var q filter
	if f.Hook != "" {
		q.add("hook = ?", f.Hook)
	}
	if f.Status != "" {
		q.add("status = ?", string(f.Status))
	}
	// An event's id carries its receipt (store.CheckEventID), so a window
	// is a range of ids too: the primary key walks to it directly instead
	// of reading every newer event. The range ends at the lower of the
	// window's end and the cursor, as one bound: given two, SQLite ends
	// the walk at one of them and filters by the other, which read every
	// event between them for the pages deep in a window.
	if !f.Since.IsZero() {
		q.add("received_at >= ?", f.Since.UnixMilli())
		q.add("id >= ?", store.IDsBefore("evt", f.Since))
	}
	before := f.Cursor
	if !f.Until.IsZero() {
		q.add("received_at < ?", f.Until.UnixMilli())
		if end := store.IDsBefore("evt", f.Until); before == "" || end < before {
			before = end
		}
	}
	if before != "" {
		q.add("id < ?", before)
	}
	return `SELECT ` + eventListSelect + ` FROM events` + q.sql() + ` ORDER BY id DESC LIMIT ?`, append(q.args, limit+1)
}

// ListDeliveries returns one page of the deliveries matching f, newest
// first (by id).
func (s *Store) ListDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, string, error) {
	if err := store.CheckCursor(f.Cursor, "dlv"); err != nil {
		return nil, "", fmt.Errorf("sqlitestore: list deliveries: %w", err)
	}
	limit := store.PageLimit(f.Limit)
	query, args := deliveriesQuery(f, limit)
	ds, next, err := listPage(ctx, s.rdb, query, args, limit, scanDelivery, func(d store.Delivery) string { return d.ID })
	if err != nil {
		return nil, "", fmt.Errorf("sqlitestore: list deliveries: %w", err)
	}
	return ds, next, nil
}

// deliveriesQuery is eventsQuery for deliveries.
func deliveriesQuery(f store.DeliveryFilter, limit int) (string, []any) {
	var q filter
	if f.EventID != "" {
		q.add("event_id = ?", f.EventID)
	}
	if f.Hook != "" {
		q.add("hook = ?", f.Hook)
	}
	if f.Action != "" {
		q.add("action = ?", f.Action)
	}
	if f.Status != "" {
		q.add("status = ?", string(f.Status))
		if f.Status != store.DeliverySucceeded {
			// The condition of deliveries_open_id, as its migration
			// writes it.
			q.also("status <> 'succeeded'")
		}
	}
	if f.Cursor != "" {
		q.add("id < ?", f.Cursor)
	}
	return `SELECT ` + deliveryColumns + ` FROM deliveries` + q.sql() + ` ORDER BY id DESC LIMIT ?`, append(q.args, limit+1)
}

// listPage runs query, which asks for one row more than limit, and returns
// the page and its next.
func listPage[T any](ctx context.Context, db *sql.DB, query string, args []any, limit int,
	scan func(rowScanner) (T, error), id func(T) string) ([]T, string, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	out := make([]T, 0, min(limit+1, 64))
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	if len(out) > limit {
		out = out[:limit]
		return out, id(out[limit-1]), nil
	}
	return out, "", nil
}

// RetryDelivery makes the delivery pending and due at at, keeping its
// attempts and last error, and wakes the relays. A pending delivery that
// no worker holds at at may be retried too (it is only re-timed); a
// succeeded one, or one leased past at, is store.ErrConflict. Its lease
// token is dropped, so a worker whose lease had expired loses it, and its
// UpdatedAt becomes at.
func (s *Store) RetryDelivery(ctx context.Context, id string, at time.Time) (store.Delivery, error) {
	if at.IsZero() {
		return store.Delivery{}, fmt.Errorf("sqlitestore: retry %s: no time given", id)
	}
	atMS := at.UnixMilli()
	var d store.Delivery
	err := s.write(ctx, func(w *writeTx) error {
		var status string
		var leased int64
		err := w.queryRow(`SELECT status, leased_until FROM deliveries WHERE id = ?`, id).Scan(&status, &leased)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if status == string(store.DeliverySucceeded) {
			return fmt.Errorf("it succeeded: %w", store.ErrConflict)
		}
		if leased > atMS {
			return fmt.Errorf("a worker holds it: %w", store.ErrConflict)
		}
		// In a lane, it waits while another delivery of the lane is
		// queued or held.
		var action string
		var lane sql.NullString
		if err := w.queryRow(`SELECT action, lane FROM deliveries WHERE id = ?`, id).Scan(&action, &lane); err != nil {
			return err
		}
		var due any = atMS
		if lane.Valid {
			busy, err := laneBusy(w, action, lane.String, id)
			if err != nil {
				return err
			}
			if busy {
				due = nil
			}
		}
		d, err = scanDelivery(w.queryRow(`UPDATE deliveries SET status = ?, next_attempt_at = ?, due_at = ?,
			leased_until = 0, lease_token = '', updated_at = ? WHERE id = ? RETURNING `+deliveryColumns,
			string(store.DeliveryPending), atMS, due, atMS, id))
		if err != nil {
			return err
		}
		w.queued[id] = struct{}{}
		w.wake = true
		return nil
	})
	if err != nil {
		return store.Delivery{}, fmt.Errorf("sqlitestore: retry %s: %w", id, err)
	}
	return d, nil
}

// AddDeliveries stores and enqueues ds as new deliveries of the event, as
// Accept does (a delivery without CreatedAt was created at its
// NextAttemptAt), marks the event accepted, adds rules to its matched rules
// and wakes the relays, in one transaction. Without deliveries it only
// checks that the event exists. A delivery id that exists already is
// store.ErrConflict, and nothing is stored.
func (s *Store) AddDeliveries(ctx context.Context, eventID string, rules []string, ds []store.Delivery) error {
	for i, d := range ds {
		if d.ID == "" {
			return fmt.Errorf("sqlitestore: add deliveries to %s: delivery %d has no id", eventID, i)
		}
		if d.CreatedAt.IsZero() && d.NextAttemptAt.IsZero() {
			return fmt.Errorf("sqlitestore: add deliveries to %s: delivery %s has neither CreatedAt nor NextAttemptAt", eventID, d.ID)
		}
	}
	err := s.write(ctx, func(w *writeTx) error {
		var hook, matched string
		err := w.queryRow(`SELECT hook, matched_rules FROM events WHERE id = ?`, eventID).Scan(&hook, &matched)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if len(ds) == 0 {
			return nil
		}
		var have []string
		if err := decodeJSON(matched, &have); err != nil {
			return fmt.Errorf("matched rules: %w", err)
		}
		for _, r := range rules {
			if !slices.Contains(have, r) {
				have = append(have, r)
			}
		}
		if matched, err = encodeJSON(have); err != nil {
			return err
		}
		if _, err := w.exec(`UPDATE events SET status = ?, matched_rules = ? WHERE id = ?`,
			string(store.EventAccepted), matched, eventID); err != nil {
			return err
		}
		for _, d := range ds {
			var taken bool
			if err := w.queryRow(deliveryExists, d.ID).Scan(&taken); err != nil {
				return err
			}
			if taken {
				return fmt.Errorf("delivery %s exists already: %w", d.ID, store.ErrConflict)
			}
			if err := insertDelivery(w, store.Enqueued(d, eventID, hook, d.NextAttemptAt), "", 0); err != nil {
				return err
			}
		}
		w.wake = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: add deliveries to %s: %w", eventID, err)
	}
	return nil
}
