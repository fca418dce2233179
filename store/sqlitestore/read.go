package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/hookrelay/hookrelay/store"
)

// Reads go to the read-only pool; in WAL mode they never wait for the
// writer and always see every committed write.

// Event returns the event with that id, or store.ErrNotFound.
func (s *Store) Event(ctx context.Context, id string) (store.Event, error) {
	ev, err := s.scanEvent(s.rdb.QueryRowContext(ctx, `SELECT `+eventSelect+` FROM events WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Event{}, fmt.Errorf("sqlitestore: event %s: %w", id, err)
	}
	return ev, nil
}

// Delivery returns the delivery with that id, or store.ErrNotFound.
func (s *Store) Delivery(ctx context.Context, id string) (store.Delivery, error) {
	d, err := scanDelivery(s.rdb.QueryRowContext(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Delivery{}, fmt.Errorf("sqlitestore: delivery %s: %w", id, err)
	}
	return d, nil
}

// Deliveries returns an event's deliveries in the order Accept was given
// them; store.ErrNotFound when there is no such event.
func (s *Store) Deliveries(ctx context.Context, eventID string) ([]store.Delivery, error) {
	ds, err := readAll(ctx, s.rdb, eventExists, eventID, scanDelivery,
		`SELECT `+deliveryColumns+` FROM deliveries WHERE event_id = ? ORDER BY rowid`)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: deliveries of %s: %w", eventID, err)
	}
	return ds, nil
}

// Attempts returns a delivery's attempts in the order they were recorded;
// store.ErrNotFound when there is no such delivery.
func (s *Store) Attempts(ctx context.Context, deliveryID string) ([]store.Attempt, error) {
	as, err := readAll(ctx, s.rdb, deliveryExists, deliveryID, scanAttempt,
		`SELECT `+attemptColumns+` FROM attempts WHERE delivery_id = ? ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: attempts of %s: %w", deliveryID, err)
	}
	return as, nil
}

const (
	eventExists    = `SELECT EXISTS (SELECT 1 FROM events WHERE id = ?)`
	deliveryExists = `SELECT EXISTS (SELECT 1 FROM deliveries WHERE id = ?)`
)

// readAll runs the list query and the parent's existence check in one read
// transaction, so that both see the same snapshot.
func readAll[T any](ctx context.Context, db *sql.DB, exists, parent string, scan func(rowScanner) (T, error), query string) (_ []T, err error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, tx.Rollback()) }()
	var found bool
	if err := tx.QueryRowContext(ctx, exists, parent).Scan(&found); err != nil {
		return nil, err
	}
	if !found {
		return nil, store.ErrNotFound
	}
	rows, err := tx.QueryContext(ctx, query, parent)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, scan)
}

// scanAll reads every row with scan and closes rows.
func scanAll[T any](rows *sql.Rows, scan func(rowScanner) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
