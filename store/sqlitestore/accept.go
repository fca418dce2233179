package sqlitestore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
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
	var (
		res    store.Accepted
		handed []bool // by delivery: leased to the caller (a.HandOff)
		hand   = newHandOff(a.HandOff)
	)
	err = s.write(ctx, func(w *writeTx) error {
		handed = nil
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
		var err error
		if handed, err = hand.pick(w, deliveries); err != nil {
			return fmt.Errorf("hand-off: %w", err)
		}
		queued := 0
		for i, d := range deliveries {
			token := ""
			if handed != nil && handed[i] {
				token = hand.token(i)
			} else {
				queued++
			}
			if err := insertDelivery(w, d, token, hand.untilMS); err != nil {
				return err
			}
		}
		// Deliveries handed off need no relay to wake up for them.
		if queued > 0 {
			w.wake = true
		}
		res = store.Accepted{EventID: ev.ID}
		return nil
	})
	if err != nil {
		return store.Accepted{}, fmt.Errorf("sqlitestore: accept %s: %w", ev.ID, err)
	}
	// Only an event stored by this very call has deliveries handed off.
	if handed != nil {
		res.Leases = hand.leases(ev, deliveries, handed)
	}
	return res, nil
}

// HandsOff reports whether the store's accepts may lease deliveries to
// their caller (store.HandOff): always.
func (s *Store) HandsOff() bool { return true }

// handOff is an accept's store.HandOff as the writer applies it.
type handOff struct {
	o       *store.HandOff
	prefix  string // of the tokens: random per accept, then the delivery's place
	untilMS int64
}

func newHandOff(o *store.HandOff) handOff {
	if o == nil || len(o.Actions) == 0 {
		return handOff{}
	}
	return handOff{o: o, prefix: rand.Text() + ".h", untilMS: millis(o.Now.Add(o.TTL))}
}

func (h handOff) token(i int) string { return h.prefix + strconv.Itoa(i) }

// handOffGate reads, for the action ?1, what a hand-off needs at ?2: its
// stored state's pause and block, and when ?3 is set the number of its
// live leases (the ones Lease counts).
const handOffGate = `SELECT COALESCE(s.paused, 0), COALESCE(s.blocked_until, 0), ` + liveLeases + `
	FROM (SELECT 1) LEFT JOIN action_states s ON s.action = ?1`

// pick says which of ds the accept leases to its caller (nil: none), by
// the rules of store.HandOff: the quotas, the lanes, the actions' stored
// states and their live leases, read in the accept's transaction, one
// statement per action offered.
func (h handOff) pick(w *writeTx, ds []store.Delivery) ([]bool, error) {
	if h.o == nil || h.o.TTL <= 0 || len(ds) == 0 {
		return nil, nil
	}
	nowMS := millis(h.o.Now)
	var out []bool
	for _, q := range h.o.Actions {
		if q.N <= 0 {
			continue
		}
		var (
			st   = store.ActionState{Action: q.Action}
			live int
			read bool
		)
		for i, d := range ds {
			if d.Action != q.Action || q.N <= 0 {
				continue
			}
			if !read {
				var paused bool
				var blocked int64
				if err := w.queryRow(handOffGate, q.Action, nowMS, q.Max > 0).Scan(&paused, &blocked, &live); err != nil {
					return nil, err
				}
				st.Paused, st.BlockedUntil, read = paused, fromMillis(blocked), true
			}
			if !store.CanHandOff(d, st, h.o.Now) || q.Max > 0 && live >= q.Max {
				continue
			}
			live++
			q.N--
			if out == nil {
				out = make([]bool, len(ds))
			}
			out[i] = true
		}
	}
	return out, nil
}

// leases are the leases of the deliveries handed off, as Lease would
// return them: times at the store's precision, the event as stored.
func (h handOff) leases(ev store.Event, ds []store.Delivery, handed []bool) []store.Lease {
	ev.ReceivedAt = fromMillis(millis(ev.ReceivedAt))
	until := fromMillis(h.untilMS)
	var ls []store.Lease
	for i, d := range ds {
		if !handed[i] {
			continue
		}
		d.NextAttemptAt = fromMillis(millis(d.NextAttemptAt))
		d.CreatedAt = fromMillis(millis(d.CreatedAt))
		d.UpdatedAt = fromMillis(millis(d.UpdatedAt))
		d.LeasedUntil = until
		ls = append(ls, store.Lease{Delivery: d, Event: ev, Token: h.token(i), Until: until})
	}
	return ls
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
// lane has a delivery queued or held already: it then waits behind it, at
// the lane's end (laneTail). With a token, d is stored leased instead, held
// by token until untilMS (a delivery in a lane never is: see
// store.HandOff).
func insertDelivery(w *writeTx, d store.Delivery, token string, untilMS int64) error {
	var lane, seq, due any = nil, nil, millis(d.NextAttemptAt)
	leased := millis(d.LeasedUntil)
	if token != "" {
		due, leased = untilMS, untilMS
	} else if d.Lane != "" {
		lane = d.Lane
		busy, tail, err := laneTail(w, d.Action, d.Lane, d.ID)
		if err != nil {
			return err
		}
		if busy {
			due = nil
		}
		seq = max(millis(d.CreatedAt), tail+1)
	}
	w.queued[d.ID] = struct{}{}
	_, err := w.exec(`INSERT INTO deliveries (`+deliveryColumns+`, lease_token, due_at, lane_seq)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.EventID, d.Hook, d.Rule, d.Action, string(d.Status), d.Attempts,
		millis(d.NextAttemptAt), leased, d.LastError, millis(d.CreatedAt), millis(d.UpdatedAt), lane, token, due, seq)
	return err
}

// laneActive is, in a statement whose ?1 is an action, ?2 a lane and ?3
// a delivery id, whether a delivery of the lane other than ?3 is queued or
// held.
const laneActive = `EXISTS (SELECT 1 FROM deliveries INDEXED BY deliveries_lane
	WHERE action = ?1 AND lane = ?2 AND status IN ('pending', 'retrying') AND due_at IS NOT NULL AND id != ?3)`

// laneTail reports whether a delivery of the action's lane other than id
// is queued or held (laneBusy), and the place (lane_seq) of the lane's
// last delivery not final, 0 when there is none. A delivery joins the
// lane after it, so that the lane keeps the order of the accepts even
// within one millisecond.
func laneTail(w *writeTx, action, lane, id string) (busy bool, tail int64, err error) {
	err = w.queryRow(`SELECT `+laneActive+`,
		COALESCE((SELECT MAX(lane_seq) FROM deliveries INDEXED BY deliveries_lane
			WHERE action = ?1 AND lane = ?2 AND status IN ('pending', 'retrying')), 0)`,
		action, lane, id).Scan(&busy, &tail)
	return busy, tail, err
}

// laneBusy reports whether a delivery of the action's lane other than id
// is queued or held.
func laneBusy(w *writeTx, action, lane, id string) (bool, error) {
	var busy bool
	err := w.queryRow(`SELECT `+laneActive, action, lane, id).Scan(&busy)
	return busy, err
}

// promote queues the first waiting delivery of the action's lane, unless
// one is queued or held: called when one of the lane's deliveries became
// final. It reports whether it queued one.
func promote(w *writeTx, action, lane string) (bool, error) {
	if busy, err := laneBusy(w, action, lane, ""); err != nil || busy {
		return false, err
	}
	var id string
	err := w.queryRow(`UPDATE deliveries SET due_at = next_attempt_at
		WHERE id = (SELECT id FROM deliveries INDEXED BY deliveries_lane
			WHERE action = ? AND lane = ? AND status IN ('pending', 'retrying') ORDER BY lane_seq, id LIMIT 1)
		AND due_at IS NULL RETURNING id`, action, lane).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	w.queued[id] = struct{}{}
	return true, nil
}
