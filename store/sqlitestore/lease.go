package sqlitestore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

var _ store.Queue = (*Store)(nil)

// A delivery is held by a lease while its lease_token is the lease's and it
// is not final; while held, its due_at is the lease's end, so a worker that
// dies holding it simply lets it fall due again.
const holds = `lease_token = ? AND lease_token != '' AND status IN ('pending', 'retrying')`

// liveLeases is, in a statement whose ?1 is an action and ?2 now, the
// number of the action's live leases, whoever holds them, when ?3 is set
// (0 when not): they count against its concurrency (store.ActionQuota.Max)
// in a lease and in a hand-off (accept.go).
const liveLeases = `CASE WHEN ?3 THEN (SELECT COUNT(*) FROM deliveries INDEXED BY deliveries_action_held
	WHERE action = ?1 AND leased_until > 0 AND leased_until > ?2) ELSE 0 END`

// recordingLive is, for ?1 a JSON array of delivery ids and ?4 one of
// tokens (store.ActionQuota.Recording), ?2 now and ?3 an action, how many
// of those leases of the action are still live: those its live leases
// need not count.
const recordingLive = `SELECT COUNT(*) FROM deliveries
	WHERE id IN (SELECT value FROM json_each(?1)) AND lease_token IN (SELECT value FROM json_each(?4))
	AND action = ?3 AND status IN ('pending', 'retrying') AND leased_until > 0 AND leased_until > ?2`

// The statements that read an action's queue, all ranges of the index
// deliveries_action_due (TestQueueUsesActionIndex checks the plans).
const (
	// leasePick walks an action's queue, earliest due first: the caller
	// reads the deliveries it leases and then the one after them, whose due
	// time is the next one (Lease). It has no LIMIT: a bound LIMIT makes
	// SQLite plan the statement again whenever its value changes, and a
	// lease's count changes from one call to the next; the caller stops
	// reading instead. Every row also carries the number of the action's
	// live leases, whoever holds them, when ?3 is set: they count against
	// its concurrency (store.ActionQuota.Max).
	leasePick = `SELECT id, due_at, ` + liveLeases + `
		FROM deliveries WHERE action = ?1 AND due_at IS NOT NULL ORDER BY due_at, id`
	// leaseUpdate leases every delivery of an action up to the last one
	// leasePick listed, in (due_at, id) order: the same ones.
	leaseUpdate = `UPDATE deliveries SET lease_token = ? || rowid, leased_until = ?, due_at = ?
		WHERE action = ? AND due_at IS NOT NULL AND (due_at, id) <= (?, ?)
		RETURNING ` + deliveryColumns + `, lease_token`
)

// Lease claims, action by action, the earliest due deliveries (pending or
// retrying with a due time <= now, which includes those whose lease has
// expired) that the action's stored state lets through (store.Gate), in one
// transaction. Each gets a fresh token and its due time moves to the
// lease's end.
func (s *Store) Lease(ctx context.Context, r store.LeaseRequest) (store.LeaseBatch, error) {
	r, err := store.CheckLeaseRequest(r)
	if err != nil {
		return store.LeaseBatch{}, fmt.Errorf("sqlitestore: lease: %w", err)
	}
	if len(r.Actions) == 0 {
		return store.LeaseBatch{}, nil
	}
	untilMS := millis(r.Now.Add(r.TTL))
	// One random prefix per call keeps every token fresh; the row id after
	// it tells apart the leases of one call without a statement per row.
	prefix := rand.Text() + "."
	var (
		leased []leasedRow
		events []eventRow
		next   int64 // 0: nothing queued
	)
	names := make([]string, len(r.Actions))
	for i, q := range r.Actions {
		names[i] = q.Action
	}
	err = s.write(ctx, func(w *writeTx) error {
		leased, events, next = leased[:0], events[:0], 0
		// One query for every action's state: a relay asks for each action
		// of its config, most of them idle at any moment.
		states, err := readActionStates(w, names)
		if err != nil {
			return fmt.Errorf("action states: %w", err)
		}
		for _, q := range r.Actions {
			st, ok := states[q.Action]
			if !ok {
				st = store.ActionState{Action: q.Action}
			}
			if st.Paused {
				continue
			}
			n := len(leased)
			var (
				probe bool
				due   int64
			)
			leased, due, probe, err = leaseAction(w, leased, q, st, r.Now, prefix, untilMS)
			if err != nil {
				return fmt.Errorf("action %s: %w", q.Action, err)
			}
			if probe && len(leased) > n {
				st = store.Probing(st, r.Now, q.Probe)
				if err := writeActionState(w, st); err != nil {
					return fmt.Errorf("state of %s: %w", q.Action, err)
				}
			}
			if due == 0 {
				continue
			}
			at := max(due, millis(st.BlockedUntil))
			if next == 0 || at < next {
				next = at
			}
		}
		// A delivery is sent only once what queued it is on the disk: a
		// lease that took none its own transaction queued
		// (writeTx.queued) read nothing else it needs on the disk, and
		// is answered at the commit when the batches before are flushed
		// (writeTx.early). Its own writes (the tokens) need not wait: a
		// power cut ends the attempts with the process, and the
		// deliveries fall due again.
		w.early = !slices.ContainsFunc(leased, func(l leasedRow) bool {
			_, ok := w.queued[l.d.ID]
			return ok
		})
		if len(leased) == 0 {
			return nil
		}
		// Not the outer err: a caller whose context ended has returned and
		// may be writing it while the writer still runs this.
		var rerr error
		events, rerr = readEvents(w, events, leased)
		return rerr
	})
	if err != nil {
		return store.LeaseBatch{}, fmt.Errorf("sqlitestore: lease: %w", err)
	}

	// JSON is decoded here, not in the writer: its time is the shared one.
	// An event that does not decode fails only its own deliveries' leases
	// (store.Lease.Err).
	byID := make(map[string]store.Event, len(events))
	failed := map[string]error{}
	for _, e := range events {
		ev, err := e.decode(s.keys)
		if err != nil {
			failed[e.ev.ID] = err
			continue
		}
		byID[ev.ID] = ev
	}
	b := store.LeaseBatch{Leases: make([]store.Lease, 0, len(leased)), NextDue: fromMillis(next)}
	for _, l := range leased {
		ls := store.Lease{Delivery: l.d, Event: store.Event{ID: l.d.EventID}, Token: l.token, Until: l.d.LeasedUntil}
		if ev, ok := byID[l.d.EventID]; ok {
			ls.Event = ev
		} else if ls.Err = failed[l.d.EventID]; ls.Err == nil {
			ls.Err = fmt.Errorf("event %s of delivery %s: %w", l.d.EventID, l.d.ID, store.ErrNotFound)
		}
		b.Leases = append(b.Leases, ls)
	}
	return b, nil
}

// leasedRow is a delivery just leased, with its token.
type leasedRow struct {
	d     store.Delivery
	token string
}

// leaseAction leases the due deliveries of q's action that its state st
// lets through at now (store.Gate), appends them to out in due order and
// returns it, with the earliest due time left in the action's queue
// afterwards (0 when it is empty) and whether one was leased as a breaker
// probe. The ids are picked first from the action's index (the order
// UPDATE … RETURNING does not keep), then all of them are updated by one
// statement over the same index range.
func leaseAction(w *writeTx, out []leasedRow, q store.ActionQuota, st store.ActionState, now time.Time,
	prefix string, untilMS int64) (_ []leasedRow, next int64, probe bool, err error) {
	nowMS := millis(now)
	recording := 0
	// Without Max, CheckLeaseRequest has dropped q.Recording.
	if len(q.Recording) > 0 {
		ids := make([]string, len(q.Recording))
		tokens := make([]string, len(q.Recording))
		for i, l := range q.Recording {
			ids[i], tokens[i] = l.DeliveryID, l.Token
		}
		jids, err := encodeJSON(ids)
		if err != nil {
			return out, 0, false, err
		}
		jtokens, err := encodeJSON(tokens)
		if err != nil {
			return out, 0, false, err
		}
		if err := w.queryRow(recordingLive, jids, nowMS, q.Action, jtokens).Scan(&recording); err != nil {
			return out, 0, false, err
		}
	}
	rows, err := w.query(leasePick, q.Action, nowMS, q.Max > 0)
	if err != nil {
		return out, 0, false, err
	}
	var (
		pos     map[string]int
		allowed = -1 // known from the first row
		lastID  string
		lastDue int64
	)
	for rows.Next() {
		var (
			id        string
			due, live int64
		)
		if err := rows.Scan(&id, &due, &live); err != nil {
			rows.Close()
			return out, 0, false, err
		}
		if allowed < 0 {
			n := q.N
			if q.Max > 0 {
				n = min(n, q.Max+recording-int(live))
			}
			allowed, probe = store.Gate(st, now, n)
			pos = make(map[string]int, allowed)
		}
		if len(pos) == allowed || due > nowMS {
			next = due
			break
		}
		pos[id] = len(out) + len(pos)
		lastID, lastDue = id, due
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return out, 0, false, err
	}
	if len(pos) == 0 {
		return out, next, probe, nil
	}
	// The leased deliveries fall due again when their leases end.
	if next == 0 || untilMS < next {
		next = untilMS
	}
	first := len(out)
	out = append(out, make([]leasedRow, len(pos))...)
	rows, err = w.query(leaseUpdate, prefix, untilMS, untilMS, q.Action, lastDue, lastID)
	if err != nil {
		return out[:first], 0, false, err
	}
	got := 0
	for rows.Next() {
		var l leasedRow
		if err := scanDeliveryAnd(rows, &l.d, &l.token); err != nil {
			rows.Close()
			return out[:first], 0, false, err
		}
		i, ok := pos[l.d.ID]
		if !ok {
			rows.Close()
			return out[:first], 0, false, fmt.Errorf("delivery %s was leased but not picked", l.d.ID)
		}
		out[i] = l
		got++
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return out[:first], 0, false, err
	}
	if got != len(pos) {
		return out[:first], 0, false, fmt.Errorf("%d deliveries picked, %d leased", len(pos), got)
	}
	return out, next, probe, nil
}

// readEvents appends the events of the leased deliveries to out, read by one
// statement.
func readEvents(w *writeTx, out []eventRow, leased []leasedRow) ([]eventRow, error) {
	seen := make(map[string]bool, len(leased))
	ids := make([]string, 0, len(leased))
	for _, l := range leased {
		if !seen[l.d.EventID] {
			seen[l.d.EventID] = true
			ids = append(ids, l.d.EventID)
		}
	}
	list, err := encodeJSON(ids)
	if err != nil {
		return out, err
	}
	rows, err := w.query(`SELECT `+eventLeaseSelect+` FROM events WHERE id IN (SELECT value FROM json_each(?))`, list)
	if err != nil {
		return out, err
	}
	for rows.Next() {
		e, err := scanEventRow(rows)
		if err != nil {
			rows.Close()
			return out, err
		}
		out = append(out, e)
	}
	return out, errors.Join(rows.Err(), rows.Close())
}

// Renew moves the end of every lease that still holds its delivery to
// now+ttl, in one transaction, and returns the new ends in order: the zero
// time for a lease that was lost.
func (s *Store) Renew(ctx context.Context, now time.Time, ttl time.Duration, ls []store.Lease) ([]time.Time, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("sqlitestore: renew: %w: TTL %v: want a positive duration", store.ErrBadQuota, ttl)
	}
	ends := make([]time.Time, len(ls))
	if len(ls) == 0 {
		return ends, nil
	}
	untilMS := millis(now.Add(ttl))
	err := s.write(ctx, func(w *writeTx) error {
		for i, l := range ls {
			ends[i] = time.Time{}
			res, err := w.exec(`UPDATE deliveries SET leased_until = ?, due_at = ? WHERE id = ? AND `+holds,
				untilMS, untilMS, l.Delivery.ID, l.Token)
			if err != nil {
				return fmt.Errorf("%s: %w", l.Delivery.ID, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n > 0 {
				ends[i] = fromMillis(untilMS)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: renew: %w", err)
	}
	return ends, nil
}

// Release gives back every lease that still holds its delivery, in one
// transaction: the delivery is due again at now, its attempt count
// unchanged, and waiting relays are woken to take it.
func (s *Store) Release(ctx context.Context, now time.Time, ls []store.Lease) error {
	if len(ls) == 0 {
		return nil
	}
	nowMS := millis(now)
	err := s.write(ctx, func(w *writeTx) error {
		for _, l := range ls {
			res, err := w.exec(`UPDATE deliveries SET leased_until = 0, lease_token = '', due_at = ?
				WHERE id = ? AND `+holds, nowMS, l.Delivery.ID, l.Token)
			if err != nil {
				return fmt.Errorf("%s: %w", l.Delivery.ID, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n > 0 {
				w.wake = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: release: %w", err)
	}
	return nil
}

// recordedLast reports whether a is the last attempt recorded for the
// delivery id: a Finish sent again (store.Queue.Finish), which is not
// recorded twice.
func recordedLast(w *writeTx, id string, a store.Attempt) (bool, error) {
	var (
		n, code          int
		started, dur     int64
		errText, outcome string
	)
	err := w.queryRow(`SELECT n, started_at, duration_ns, status_code, error, outcome FROM attempts
		WHERE delivery_id = ? ORDER BY n DESC, seq DESC LIMIT 1`, id).Scan(&n, &started, &dur, &code, &errText, &outcome)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return n == a.N && started == millis(a.StartedAt) && dur == int64(a.Duration) && code == a.StatusCode &&
		errText == a.Error && outcome == string(a.Outcome), nil
}

// finishItem is a checked Finish, encoded for the writer.
type finishItem struct {
	i       int // its place in the caller's slice
	f       store.Finish
	headers string
	ended   int64
	next    int64 // next_attempt_at: the retry time, 0 once final
	due     any   // due_at: the retry time, NULL once final
}

// Finish records a batch of finished attempts in one transaction (one
// request to the writer, so one commit for the lot). For each item the
// delivery is updated first, on the condition that the lease still holds it
// or that a success must be applied all the same; only when that changes
// nothing does Finish look at why. The attempt is recorded for every
// delivery that exists.
func (s *Store) Finish(ctx context.Context, fs []store.Finish) ([]error, error) {
	errs := make([]error, len(fs))
	items := make([]finishItem, 0, len(fs))
	for i, f := range fs {
		f, ended, err := store.CheckFinish(f)
		if err != nil {
			errs[i] = fmt.Errorf("sqlitestore: %w", err)
			continue
		}
		headers, err := encodeJSON(f.Attempt.RequestHeaders)
		if err != nil {
			errs[i] = fmt.Errorf("sqlitestore: finish %s: %w", f.Lease.Delivery.ID, err)
			continue
		}
		it := finishItem{i: i, f: f, headers: headers, ended: millis(ended)}
		if f.Outcome.Status == store.DeliveryRetrying {
			it.next = millis(f.Outcome.NextAttemptAt)
			it.due = it.next
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return errs, nil
	}
	err := s.write(ctx, func(w *writeTx) error {
		for _, it := range items {
			errs[it.i] = nil
			id, o, a := it.f.Lease.Delivery.ID, it.f.Outcome, it.f.Attempt
			action, lane := it.f.Lease.Delivery.Action, it.f.Lease.Delivery.Lane
			res, err := w.exec(`UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?,
				leased_until = 0, lease_token = '', last_error = ?, updated_at = ?, due_at = ?
				WHERE id = ? AND ((`+holds+`) OR (? = 'succeeded' AND status != 'succeeded'))`,
				string(o.Status), it.next, o.Error, it.ended, it.due,
				id, it.f.Lease.Token, string(o.Status))
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			applied := n == 1
			if applied && lane != "" && o.Status != store.DeliveryRetrying {
				// Final: the next delivery of its lane may go.
				promoted, err := promote(w, action, lane)
				if err != nil {
					return fmt.Errorf("lane of %s: %w", id, err)
				}
				w.wake = w.wake || promoted
			}
			if !applied {
				var status string
				var updated int64
				err := w.queryRow(`SELECT status, updated_at FROM deliveries WHERE id = ?`, id).Scan(&status, &updated)
				if errors.Is(err, sql.ErrNoRows) {
					errs[it.i] = fmt.Errorf("sqlitestore: finish %s: %w", id, store.ErrNotFound)
					continue
				}
				if err != nil {
					return fmt.Errorf("%s: %w", id, err)
				}
				again, err := recordedLast(w, id, a)
				if err != nil {
					return fmt.Errorf("%s: %w", id, err)
				}
				if again {
					// The same finish sent again: recorded already, and
					// answered as the first was when the delivery shows it.
					if status != string(o.Status) || updated != it.ended {
						errs[it.i] = fmt.Errorf("sqlitestore: finish %s: %w", id, store.ErrLeaseLost)
					}
					continue
				}
				errs[it.i] = fmt.Errorf("sqlitestore: finish %s: %w", id, store.ErrLeaseLost)
			}
			args := append([]any{id, a.N, millis(a.StartedAt), int64(a.Duration), a.Method, a.URL, it.headers,
				a.StatusCode, a.Error, a.ResponseBody}, traceValues(a.Trace)...)
			args = append(args, string(a.Outcome), a.Reason, millis(a.NextAttemptAt))
			if _, err := w.exec(`INSERT INTO attempts (`+attemptColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				args...); err != nil {
				return fmt.Errorf("attempt of %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: finish: %w", err)
	}
	return errs, nil
}
