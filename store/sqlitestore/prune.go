package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/hookrelay/hookrelay/store"
)

var _ store.Pruner = (*Store)(nil)

// Prune examines one batch of events, oldest first from where the last
// batch stopped, and deletes the prunable ones (store.Prunable) with their
// deliveries, attempts and idempotency keys. The batch is one request to
// the writer, so accepts queue behind it for one batch at most, never for a
// whole pruning run. The pages it frees go back to the file system at once
// (incremental vacuum), so that the file stops growing under steady load.
func (s *Store) Prune(ctx context.Context, p store.Prune) (store.Pruned, error) {
	if err := p.Check(); err != nil {
		return store.Pruned{}, fmt.Errorf("sqlitestore: %w", err)
	}
	bound := p.Bound()
	var res store.Pruned
	err := s.write(ctx, func(w *writeTx) error {
		res = store.Pruned{}
		return pruneBatch(w, p, store.IDsBefore("evt", bound), &res)
	})
	if err != nil {
		return store.Pruned{}, fmt.Errorf("sqlitestore: prune: %w", err)
	}
	if res.Events > 0 {
		// In a write of its own: a batch's freed pages are on the free
		// list only once it is released.
		err := s.write(ctx, func(w *writeTx) error {
			_, err := w.exec("PRAGMA incremental_vacuum")
			w.pages = true
			return err
		})
		if err != nil {
			return res, fmt.Errorf("sqlitestore: prune: incremental vacuum: %w", err)
		}
	}
	return res, nil
}

type pruneCandidate struct {
	id       string
	status   store.EventStatus
	received int64
}

func pruneBatch(w *writeTx, p store.Prune, bound string, res *store.Pruned) error {
	var owner, cursor string
	var until int64
	err := w.queryRow(`SELECT owner, until, cursor FROM pruning WHERE id = 1`).Scan(&owner, &until, &cursor)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	case owner != p.Owner && until > millis(p.Now):
		res.Held = true
		return nil
	}
	rows, err := w.query(`SELECT id, status, received_at FROM events WHERE id > ? AND id < ? ORDER BY id LIMIT ?`,
		cursor, bound, p.Limit)
	if err != nil {
		return err
	}
	var cs []pruneCandidate
	for rows.Next() {
		var c pruneCandidate
		if err := rows.Scan(&c.id, &c.status, &c.received); err != nil {
			_ = rows.Close()
			return err
		}
		cs = append(cs, c)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	for _, c := range cs {
		ds, err := deliveryStatuses(w, c.id)
		if err != nil {
			return err
		}
		if !store.Prunable(p, c.status, fromMillis(c.received), ds) {
			continue
		}
		if err := deleteEvent(w, c.id, res); err != nil {
			return err
		}
	}
	cursor = ""
	if len(cs) == p.Limit {
		cursor, res.More = cs[len(cs)-1].id, true
	}
	_, err = w.exec(`INSERT INTO pruning (id, owner, until, cursor) VALUES (1, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, until = excluded.until, cursor = excluded.cursor`,
		p.Owner, millis(p.LeaseUntil), cursor)
	return err
}

func deliveryStatuses(w *writeTx, eventID string) ([]store.DeliveryStatus, error) {
	rows, err := w.query(`SELECT status FROM deliveries WHERE event_id = ?`, eventID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ds []store.DeliveryStatus
	for rows.Next() {
		var s store.DeliveryStatus
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		ds = append(ds, s)
	}
	return ds, rows.Err()
}

// deleteEvent deletes an event and everything that names it, children
// first, counting what goes.
func deleteEvent(w *writeTx, id string, res *store.Pruned) error {
	r, err := w.exec(`DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ?)`, id)
	if err != nil {
		return err
	}
	na, err := r.RowsAffected()
	if err != nil {
		return err
	}
	if r, err = w.exec(`DELETE FROM deliveries WHERE event_id = ?`, id); err != nil {
		return err
	}
	nd, err := r.RowsAffected()
	if err != nil {
		return err
	}
	if _, err := w.exec(`DELETE FROM events WHERE id = ?`, id); err != nil {
		return err
	}
	res.Events++
	res.Deliveries += int(nd)
	res.Attempts += int(na)
	return nil
}
