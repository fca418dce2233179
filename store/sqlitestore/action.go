package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

const actionStateColumns = `action, paused, breaker, failures, opens, blocked_until, changed_at, last_error, version`

func scanActionState(row rowScanner) (store.ActionState, error) {
	var (
		st                    store.ActionState
		breaker               string
		blockedUntil, changed int64
	)
	if err := row.Scan(&st.Action, &st.Paused, &breaker, &st.Failures, &st.Opens,
		&blockedUntil, &changed, &st.LastError, &st.Version); err != nil {
		return store.ActionState{}, err
	}
	st.Breaker = store.BreakerState(breaker)
	st.BlockedUntil = fromMillis(blockedUntil)
	st.ChangedAt = fromMillis(changed)
	return st, nil
}

// readActionStates is the stored state of each of actions, in one query:
// an action without a stored state has none in the map.
func readActionStates(w *writeTx, actions []string) (map[string]store.ActionState, error) {
	names, err := json.Marshal(actions)
	if err != nil {
		return nil, err
	}
	rows, err := w.query(`SELECT `+actionStateColumns+` FROM action_states
		WHERE action IN (SELECT value FROM json_each(?))`, string(names))
	if err != nil {
		return nil, err
	}
	sts, err := scanAll(rows, scanActionState)
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.ActionState, len(sts))
	for _, st := range sts {
		out[st.Action] = st
	}
	return out, nil
}

// writeActionState stores st as it is, Version included.
func writeActionState(w *writeTx, st store.ActionState) error {
	_, err := w.exec(`INSERT INTO action_states (`+actionStateColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (action) DO UPDATE SET paused = excluded.paused, breaker = excluded.breaker,
			failures = excluded.failures, opens = excluded.opens, blocked_until = excluded.blocked_until,
			changed_at = excluded.changed_at, last_error = excluded.last_error, version = excluded.version`,
		st.Action, st.Paused, string(st.Breaker), st.Failures, st.Opens,
		millis(st.BlockedUntil), millis(st.ChangedAt), st.LastError, st.Version)
	return err
}

// ActionStates returns the stored state of every action that has one, in
// action name order.
func (s *Store) ActionStates(ctx context.Context) ([]store.ActionState, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+actionStateColumns+` FROM action_states ORDER BY action`)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: action states: %w", err)
	}
	out, err := scanAll(rows, scanActionState)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: action states: %w", err)
	}
	return out, nil
}

// PutActionState stores st if the stored version is still st.Version (0
// when none is stored), with the next version, and returns it as stored;
// store.ErrConflict when another writer got there first. The check and the
// write happen in the writer, so no other write comes between them.
func (s *Store) PutActionState(ctx context.Context, st store.ActionState) (store.ActionState, error) {
	if st.Action == "" {
		return store.ActionState{}, errors.New("sqlitestore: put action state: no action named")
	}
	err := s.write(ctx, func(w *writeTx) error {
		var stored int64
		err := w.queryRow(`SELECT version FROM action_states WHERE action = ?`, st.Action).Scan(&stored)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if stored != st.Version {
			return fmt.Errorf("version %d was changed to %d: %w", st.Version, stored, store.ErrConflict)
		}
		next := st
		next.Version = stored + 1
		return writeActionState(w, next)
	})
	if err != nil {
		return store.ActionState{}, fmt.Errorf("sqlitestore: put action state %s: %w", st.Action, err)
	}
	st.Version++
	// As a read would return it.
	st.BlockedUntil = fromMillis(millis(st.BlockedUntil))
	st.ChangedAt = fromMillis(millis(st.ChangedAt))
	return st, nil
}

// The statements of QueueStats, each answered from the index
// deliveries_action_due alone.
const (
	// queuedActions lists the actions with queued deliveries by skipping
	// from one to the next in the index, not by reading every entry.
	queuedActions = `WITH RECURSIVE queued(action) AS (
			SELECT (SELECT MIN(action) FROM deliveries WHERE due_at IS NOT NULL)
			UNION ALL
			SELECT (SELECT MIN(action) FROM deliveries WHERE due_at IS NOT NULL AND action > queued.action)
			FROM queued WHERE queued.action IS NOT NULL)
		SELECT action FROM queued WHERE action IS NOT NULL`
	// dueStats counts an action's deliveries due at now and finds the
	// oldest. None of them holds a live lease: a held delivery is due when
	// its lease ends, after now.
	dueStats = `SELECT COUNT(*), MIN(due_at) FROM deliveries
		WHERE action = ? AND due_at IS NOT NULL AND due_at <= ?`
	// laterStats counts an action's deliveries due after now and, among
	// them, those held by a live lease.
	laterStats = `SELECT COUNT(*), COALESCE(SUM(leased_until > ?), 0) FROM deliveries
		WHERE action = ? AND due_at IS NOT NULL AND due_at > ?`
)

// QueueStats counts, for every action with queued deliveries, those due at
// now, those held by a live lease and those scheduled later, from the
// action index alone and in one read transaction. Actions are found by
// skipping from one to the next in the index, and each count is a range of
// it, so no table row is read however long the queue.
func (s *Store) QueueStats(ctx context.Context, now time.Time) (_ []store.QueueStats, err error) {
	nowMS := millis(now)
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: queue stats: %w", err)
	}
	defer func() {
		if rbErr := tx.Rollback(); rbErr != nil && err == nil {
			err = fmt.Errorf("sqlitestore: queue stats: %w", rbErr)
		}
	}()
	rows, err := tx.QueryContext(ctx, queuedActions)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: queue stats: %w", err)
	}
	var actions []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlitestore: queue stats: %w", err)
		}
		actions = append(actions, a)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("sqlitestore: queue stats: %w", err)
	}

	var out []store.QueueStats
	for _, a := range actions {
		qs := store.QueueStats{Action: a}
		var oldest sql.NullInt64
		if err := tx.QueryRowContext(ctx, dueStats, a, nowMS).Scan(&qs.Due, &oldest); err != nil {
			return nil, fmt.Errorf("sqlitestore: queue stats of %s: %w", a, err)
		}
		if oldest.Valid {
			qs.OldestDue = fromMillis(oldest.Int64)
		}
		var later int
		if err := tx.QueryRowContext(ctx, laterStats, nowMS, a, nowMS).Scan(&later, &qs.InFlight); err != nil {
			return nil, fmt.Errorf("sqlitestore: queue stats of %s: %w", a, err)
		}
		qs.Scheduled = later - qs.InFlight
		if err := laneStats(ctx, tx, &qs); err != nil {
			return nil, fmt.Errorf("queue stats of %s: %w", a, err)
		}
		if qs.Due+qs.InFlight+qs.Scheduled > 0 {
			out = append(out, qs)
		}
	}
	return out, nil
}

// laneStats counts the action's ordering lanes, the deliveries waiting in
// them and the lanes blocked by a first delivery that is retrying, and
// finds the oldest first delivery, from the lanes index.
func laneStats(ctx context.Context, tx *sql.Tx, qs *store.QueueStats) error {
	// The bare creation and status are those of the row with the least
	// lane_seq: the lane's first.
	rows, err := tx.QueryContext(ctx, `SELECT MIN(lane_seq), created_at, status, COUNT(*) FROM deliveries INDEXED BY deliveries_lane
		WHERE action = ? AND lane IS NOT NULL AND status IN ('pending', 'retrying') GROUP BY lane`, qs.Action)
	if err != nil {
		return err
	}
	for rows.Next() {
		var first, head int64
		var status string
		var n int
		if err := rows.Scan(&first, &head, &status, &n); err != nil {
			rows.Close()
			return err
		}
		qs.Lanes++
		qs.Waiting += n - 1
		if status == string(store.DeliveryRetrying) && n > 1 {
			qs.BlockedLanes++
		}
		if t := fromMillis(head); qs.OldestLaneHead.IsZero() || t.Before(qs.OldestLaneHead) {
			qs.OldestLaneHead = t
		}
	}
	return errors.Join(rows.Err(), rows.Close())
}
