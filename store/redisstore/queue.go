package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// Lease serves every quota of r in one script: per action, the gate of
// its stored state, then leases that ended unrenewed, then due deliveries,
// earliest first.
//
// A script that runs longer than the client's read timeout is sent again
// by the client, which retries reads that time out: the second run hands
// back the leases of the first (leaseScript), which would otherwise be held
// unseen until they end.
func (s *Store) Lease(ctx context.Context, r store.LeaseRequest) (store.LeaseBatch, error) {
	r, err := store.CheckLeaseRequest(r)
	if err != nil {
		return store.LeaseBatch{}, fmt.Errorf("redisstore: lease: %w", err)
	}
	if len(r.Actions) == 0 {
		return store.LeaseBatch{}, nil
	}
	if err := s.upgraded(ctx); err != nil {
		return store.LeaseBatch{}, err
	}
	if s.partitioned() {
		return s.leaseParts(ctx, r)
	}
	keys, args := s.leaseCall(r, newTokenHead())
	res, err := leaseScript.Run(ctx, s.c, keys, args...).Slice()
	if err != nil {
		return store.LeaseBatch{}, fmt.Errorf("redisstore: lease: %w", err)
	}
	b, err := s.decodeLeases(res)
	if err != nil {
		return b, fmt.Errorf("redisstore: lease: %w", err)
	}
	return b, nil
}

// leaseCall is the keys and arguments of the lease script for r on a store
// of one partition, its leases named after head.
func (s *Store) leaseCall(r store.LeaseRequest, head string) ([]string, []any) {
	keys := make([]string, 0, 3*len(r.Actions))
	args := make([]any, 0, 4+6*len(r.Actions))
	args = append(args, r.Now.UnixMilli(), leaseEnd(r.Now, r.TTL), s.k.base, head)
	for _, q := range r.Actions {
		keys = append(keys, s.k.queue(q.Action), s.k.leases(q.Action), s.k.actionState(q.Action))
		args = append(args, q.N, r.Now.Add(q.Probe).UnixMilli(), max(q.Max, 0), "", "", recordingArg(q, false))
	}
	return keys, args
}

// recordingArg is q.Recording as the lease script (or, tokens, as
// gateScript) reads it: a JSON array of delivery id, token, id, token…
// (of tokens alone), "" when there are none: without a cap to count them
// against, CheckLeaseRequest has dropped them.
func recordingArg(q store.ActionQuota, tokens bool) string {
	if len(q.Recording) == 0 {
		return ""
	}
	vs := make([]string, 0, 2*len(q.Recording))
	for _, l := range q.Recording {
		if !tokens {
			vs = append(vs, l.DeliveryID)
		}
		vs = append(vs, l.Token)
	}
	b, _ := json.Marshal(vs) // strings always encode
	return string(b)
}

// decodeLeases reads the lease script's reply. On an error, the leases
// decoded so far come with it: they are held, and handing them back lets
// the caller release them rather than wait for their end.
func (s *Store) decodeLeases(res []any) (store.LeaseBatch, error) {
	if len(res) < 2 || len(res)%2 != 0 {
		return store.LeaseBatch{}, fmt.Errorf("unexpected reply %v", res)
	}
	next, ok := res[0].(int64)
	if !ok {
		return store.LeaseBatch{}, fmt.Errorf("unexpected reply %v", res)
	}
	b := store.LeaseBatch{Leases: make([]store.Lease, 0, len(res)/2-1)}
	if next != 0 {
		b.NextDue = time.UnixMilli(next).UTC()
	}
	for i := 2; i+1 < len(res); i += 2 {
		l, err := decodeLease(s.opener(), res[i], res[i+1])
		if err != nil {
			return b, err
		}
		b.Leases = append(b.Leases, l)
	}
	return b, nil
}

// leaseEnd is when a lease taken at now for ttl ends, in unix ms: later
// than now even when ttl is below a millisecond, so that a lease never
// ends as it is taken.
func leaseEnd(now time.Time, ttl time.Duration) int64 {
	return max(now.Add(ttl).UnixMilli(), now.UnixMilli()+1)
}

// decodeLease reads one leased delivery and its event. A delivery whose
// fields or event cannot be read (the event gone, or sealed with a key the
// store lacks) is a lease all the same, with Err (store.Lease): only a
// reply without the lease's id and token is an error.
func decodeLease(o opener, delivery, event any) (store.Lease, error) {
	dm, err := fieldMap(delivery)
	if err != nil {
		return store.Lease{}, err
	}
	if dm["id"] == "" || dm["token"] == "" {
		return store.Lease{}, fmt.Errorf("a leased delivery without its id or token: %v", delivery)
	}
	d, err := decodeDelivery(dm)
	l := store.Lease{Delivery: d, Event: store.Event{ID: d.EventID}, Token: dm["token"], Until: d.LeasedUntil, Err: err}
	if err != nil {
		return l, nil
	}
	v, _ := event.(string)
	if v == "" {
		l.Err = fmt.Errorf("delivery %s: event %s: %w", d.ID, d.EventID, store.ErrNotFound)
		return l, nil
	}
	if e, _, err := decodeEvent(o, d.EventID, v, true); err != nil {
		l.Err = err
	} else {
		l.Event = e
	}
	return l, nil
}

// newTokenHead returns the head of the lease tokens of one Lease call,
// which numbers its leases after it: one random draw per call instead of
// one per delivery that might be leased. No other call gets the same head.
func newTokenHead() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "."
}

// Renew extends the leases that still hold, in one script.
func (s *Store) Renew(ctx context.Context, now time.Time, ttl time.Duration, ls []store.Lease) ([]time.Time, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("redisstore: renew: lease TTL %v: want a positive duration", ttl)
	}
	ends := make([]time.Time, len(ls))
	if len(ls) == 0 {
		return ends, nil
	}
	until := leaseEnd(now, ttl)
	if s.partitioned() {
		return s.renewParts(ctx, until, ls)
	}
	keys, args := s.leaseArgs(ls, until, s.k.base)
	res, err := renewScript.Run(ctx, s.c, keys, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: renew: %w", err)
	}
	if len(res) != len(ls) {
		return nil, fmt.Errorf("redisstore: renew: %d answers for %d leases", len(res), len(ls))
	}
	for i, held := range res {
		if held == 1 {
			ends[i] = time.UnixMilli(until).UTC()
		}
	}
	return ends, nil
}

// leaseArgs returns the delivery hashes of ls as KEYS and head followed by
// each lease's delivery id and token as ARGV.
func (s *Store) leaseArgs(ls []store.Lease, head ...any) ([]string, []any) {
	keys := make([]string, len(ls))
	args := make([]any, 0, len(head)+2*len(ls))
	args = append(args, head...)
	for i, l := range ls {
		keys[i] = s.k.delivery(l.Delivery.ID)
		args = append(args, l.Delivery.ID, l.Token)
	}
	return keys, args
}

// Finish records the attempts in one round trip: one finish script for
// up to 256 of them, each item atomic on its own. When Redis fails part-way
// through a large batch, the items of the chunks before were applied. On
// a partitioned store each partition's attempts go to their own script,
// all in one pipeline; a partition that fails fails its own items only.
func (s *Store) Finish(ctx context.Context, fs []store.Finish) ([]error, error) {
	errs := make([]error, len(fs))
	// Items are sent in chunks: one script call per chunk keeps the
	// script's stack and Redis's pause for it small.
	const chunk = 256
	type finishCall struct {
		scriptCall
		items []int
	}
	var calls []*finishCall
	open := map[int]*finishCall{}
	for i, f := range fs {
		f, ended, err := store.CheckFinish(f)
		if err != nil {
			errs[i] = fmt.Errorf("redisstore: %w", err)
			continue
		}
		id := f.Lease.Delivery.ID
		attempt, err := encodeAttempt(f.Attempt)
		if err != nil {
			errs[i] = fmt.Errorf("redisstore: finish %s: %w", id, err)
			continue
		}
		p := s.partOf(id)
		c := open[p]
		if c == nil {
			c = &finishCall{scriptCall: scriptCall{args: []any{s.parts[p].base, s.k.wake()}}}
			open[p] = c
			calls = append(calls, c)
		}
		k := s.parts[p]
		c.keys = append(c.keys, k.delivery(id), k.attempts(id))
		c.args = append(c.args, id, f.Lease.Token, attempt, string(f.Outcome.Status), f.Outcome.NextAttemptAt.UnixMilli(),
			f.Outcome.Error, ended.UnixMilli())
		c.items = append(c.items, i)
		if len(c.items) == chunk {
			delete(open, p)
		}
	}
	read := func(c *finishCall) error {
		res, err := c.cmd.Int64Slice()
		if err != nil {
			return fmt.Errorf("redisstore: finish: %w", err)
		}
		if len(res) != len(c.items) {
			return fmt.Errorf("redisstore: finish: %d answers for %d attempts", len(res), len(c.items))
		}
		for j, r := range res {
			i := c.items[j]
			id := fs[i].Lease.Delivery.ID
			switch r {
			case 1:
			case 0:
				errs[i] = fmt.Errorf("redisstore: finish %s: %w", id, store.ErrLeaseLost)
			default:
				errs[i] = fmt.Errorf("redisstore: finish %s: %w", id, store.ErrNotFound)
			}
		}
		return nil
	}
	if !s.partitioned() {
		for _, c := range calls {
			c.cmd = finishScript.Run(ctx, s.c, c.keys, c.args...)
			if err := read(c); err != nil {
				return nil, err
			}
		}
		return errs, nil
	}
	list := make([]*scriptCall, len(calls))
	for i, c := range calls {
		list[i] = &c.scriptCall
	}
	// The leases end here, whatever their outcome: their places in the
	// cap sets are given up in the same round trip.
	ended := make([]store.Lease, 0, len(fs))
	for _, c := range calls {
		for _, i := range c.items {
			ended = append(ended, fs[i].Lease)
		}
	}
	s.runAll(ctx, finishScript, list, s.uncap(ctx, ended))
	var failed error
	applied := 0
	for _, c := range calls {
		if err := read(c); err != nil {
			failed = err
			for _, i := range c.items {
				errs[i] = err
			}
			continue
		}
		applied++
	}
	if failed != nil && applied == 0 {
		// Nothing was recorded: the caller may send the batch again.
		return nil, failed
	}
	return errs, nil
}

// Release gives the leases that still hold back, due at now, in one
// script, and wakes the relays when it gave any back.
func (s *Store) Release(ctx context.Context, now time.Time, ls []store.Lease) error {
	if len(ls) == 0 {
		return nil
	}
	if s.partitioned() {
		return s.releaseParts(ctx, now, ls)
	}
	keys, args := s.leaseArgs(ls, now.UnixMilli(), s.k.base, s.k.wake())
	if err := releaseScript.Run(ctx, s.c, keys, args...).Err(); err != nil {
		return fmt.Errorf("redisstore: release: %w", err)
	}
	return nil
}

// ActionStates reads the state of every action that has one, in action
// name order.
func (s *Store) ActionStates(ctx context.Context) ([]store.ActionState, error) {
	res, err := actionStatesScript.Run(ctx, s.c, []string{s.k.actionStates()}, s.k.base).Slice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: action states: %w", err)
	}
	out := make([]store.ActionState, 0, len(res))
	for _, r := range res {
		m, err := fieldMap(r)
		if err != nil {
			return nil, fmt.Errorf("redisstore: action states: %w", err)
		}
		st, err := decodeActionState(m)
		if err != nil {
			return nil, fmt.Errorf("redisstore: action states: %w", err)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b store.ActionState) int { return strings.Compare(a.Action, b.Action) })
	return out, nil
}

// PutActionState writes st if the stored version is still st.Version and
// returns it as stored, times in milliseconds, with its new version.
func (s *Store) PutActionState(ctx context.Context, st store.ActionState) (store.ActionState, error) {
	if st.Action == "" {
		return store.ActionState{}, fmt.Errorf("redisstore: put action state: no action named")
	}
	fields := actionStateFields(st)
	args := make([]any, 0, 2+len(fields))
	args = append(args, st.Version, st.Action)
	args = append(args, fields...)
	v, err := putActionStateScript.Run(ctx, s.c, []string{s.k.actionState(st.Action), s.k.actionStates()}, args...).Int64()
	if err != nil {
		return store.ActionState{}, fmt.Errorf("redisstore: put action state %s: %w", st.Action, err)
	}
	if v < 0 {
		return store.ActionState{}, fmt.Errorf("redisstore: put action state %s: version %d is not the stored one: %w",
			st.Action, st.Version, store.ErrConflict)
	}
	stored, err := decodeActionState(fieldValues(fields))
	if err != nil {
		return store.ActionState{}, fmt.Errorf("redisstore: put action state %s: %w", st.Action, err)
	}
	stored.Version = v
	return stored, nil
}

// QueueStats counts the queue of every action that has queued deliveries,
// in one script.
func (s *Store) QueueStats(ctx context.Context, now time.Time) ([]store.QueueStats, error) {
	if err := s.upgraded(ctx); err != nil {
		return nil, err
	}
	calls := make([]*scriptCall, len(s.parts))
	for i, k := range s.parts {
		calls[i] = &scriptCall{keys: []string{k.queues()}, args: []any{now.UnixMilli(), k.base}}
	}
	s.runAll(ctx, queueStatsScript, calls)
	byAction := map[string]int{}
	var out []store.QueueStats
	for _, c := range calls {
		res, err := c.cmd.Slice()
		if err != nil {
			return nil, fmt.Errorf("redisstore: queue stats: %w", err)
		}
		for _, r := range res {
			row, ok := r.([]any)
			if !ok || len(row) != 9 {
				return nil, fmt.Errorf("redisstore: queue stats: unexpected reply %v", r)
			}
			action, _ := row[0].(string)
			var n [8]int64
			for i := range n {
				if n[i], ok = row[i+1].(int64); !ok {
					return nil, fmt.Errorf("redisstore: queue stats: unexpected reply %v", r)
				}
			}
			j, seen := byAction[action]
			if !seen {
				j = len(out)
				byAction[action] = j
				out = append(out, store.QueueStats{Action: action})
			}
			qs := &out[j]
			qs.Due += int(n[0])
			qs.InFlight += int(n[1])
			qs.Scheduled += int(n[2])
			keepEarliest(&qs.OldestDue, n[3])
			qs.Lanes += int(n[4])
			qs.Waiting += int(n[5])
			qs.BlockedLanes += int(n[6])
			keepEarliest(&qs.OldestLaneHead, n[7])
		}
	}
	if out == nil {
		out = []store.QueueStats{}
	}
	slices.SortFunc(out, func(a, b store.QueueStats) int { return strings.Compare(a.Action, b.Action) })
	return out, nil
}

// keepEarliest sets *t to the time ms (unix milliseconds; 0: none) when *t
// is zero or later.
func keepEarliest(t *time.Time, ms int64) {
	if ms == 0 {
		return
	}
	if at := time.UnixMilli(ms).UTC(); t.IsZero() || at.Before(*t) {
		*t = at
	}
}
