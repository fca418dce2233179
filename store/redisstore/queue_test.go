package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

// acceptFor accepts one event with one delivery of action per due time.
func acceptFor(t *testing.T, s *Store, action string, dues ...time.Time) []store.Delivery {
	t.Helper()
	e := store.Event{ID: store.NewID("evt", base), Hook: "orders", ReceivedAt: base, Body: []byte(`{"n":1}`)}
	var ds []store.Delivery
	for _, due := range dues {
		ds = append(ds, store.Delivery{ID: store.NewID("dlv", base), EventID: e.ID, Hook: "orders", Rule: "r",
			Action: action, NextAttemptAt: due})
	}
	if _, err := s.Accept(t.Context(), store.Accept{Event: e, Deliveries: ds}); err != nil {
		t.Fatal(err)
	}
	return ds
}

func lease(t *testing.T, s *Store, r store.LeaseRequest) store.LeaseBatch {
	t.Helper()
	b, err := s.Lease(t.Context(), r)
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	return b
}

// leaseOne leases the one delivery of action due at at.
func leaseOne(t *testing.T, s *Store, at time.Time, action string) store.Lease {
	t.Helper()
	b := lease(t, s, store.LeaseRequest{Now: at, TTL: time.Minute, Actions: []store.ActionQuota{{Action: action, N: 1}}})
	if len(b.Leases) != 1 {
		t.Fatalf("Lease of %s at %v = %d leases, want 1", action, at, len(b.Leases))
	}
	return b.Leases[0]
}

// finishOne records an attempt of l started at at with outcome o, which
// must apply.
func finishOne(t *testing.T, s *Store, l store.Lease, at time.Time, o store.Outcome) {
	t.Helper()
	errs, err := s.Finish(t.Context(), []store.Finish{{Lease: l, Attempt: store.Attempt{N: l.Delivery.Attempts + 1, StartedAt: at}, Outcome: o}})
	if err != nil || errs[0] != nil {
		t.Fatalf("Finish: %v, %v", errs, err)
	}
}

// score returns id's score in the sorted set key, in unix ms; -1 when
// it is not there.
func score(t *testing.T, s *Store, key, id string) int64 {
	t.Helper()
	v, err := s.c.ZScore(t.Context(), key, id).Result()
	if errors.Is(err, redis.Nil) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	return int64(v)
}

// inOrder returns the leases of ds in the order of ds: deliveries due at
// the same millisecond are leased in id order, which is random within it.
func inOrder(t *testing.T, ls []store.Lease, ds []store.Delivery) []store.Lease {
	t.Helper()
	if len(ls) != len(ds) {
		t.Fatalf("leased %v, want %v", leaseIDs(ls), deliveryIDs(ds))
	}
	out := make([]store.Lease, len(ds))
	for i, d := range ds {
		j := slices.IndexFunc(ls, func(l store.Lease) bool { return l.Delivery.ID == d.ID })
		if j < 0 {
			t.Fatalf("leased %v, want %v", leaseIDs(ls), deliveryIDs(ds))
		}
		out[i] = ls[j]
	}
	return out
}

func leaseIDs(ls []store.Lease) []string {
	var ids []string
	for _, l := range ls {
		ids = append(ids, l.Delivery.ID)
	}
	return ids
}

func deliveryIDs(ds []store.Delivery) []string {
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return ids
}

// callCounter counts the commands and pipelines a client sends, but for
// those that set up a new connection.
type callCounter struct{ n atomic.Int64 }

func connSetup(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client", "auth", "select":
		return true
	}
	return false
}

func (c *callCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *callCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !connSetup(cmd) {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *callCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !connSetup(cmds[0]) {
			c.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// TestLeaseManyActionsOneCall leases from fifty actions in one call: each
// action gets its quota from its own queue, earliest due first, in one
// round trip, and the next due time is the earliest over all of them.
func TestLeaseManyActionsOneCall(t *testing.T) {
	c := redistest.Client(t)
	s := New(c, redistest.Prefix(t))
	defer s.Close()
	const actions = 50
	var r store.LeaseRequest
	want := map[string][]string{}
	for i := range actions {
		a := fmt.Sprintf("act%02d", i)
		// Three due (the latest first), one due later; a quota of two.
		ds := acceptFor(t, s, a, base.Add(-time.Second), base.Add(-3*time.Second), base.Add(-2*time.Second),
			base.Add(time.Duration(i+1)*time.Minute))
		want[a] = []string{ds[1].ID, ds[2].ID}
		r.Actions = append(r.Actions, store.ActionQuota{Action: a, N: 2})
	}
	r.Now, r.TTL = base, time.Hour
	// The first Lease of a store checks for the earlier layout.
	if _, err := s.Lease(t.Context(), store.LeaseRequest{Now: base, TTL: time.Hour, Actions: []store.ActionQuota{{Action: "none", N: 1}}}); err != nil {
		t.Fatal(err)
	}

	var calls callCounter
	c.AddHook(&calls)
	b := lease(t, s, r)
	if n := calls.n.Load(); n != 1 {
		t.Errorf("Lease of %d actions took %d round trips, want 1", actions, n)
	}
	got := map[string][]string{}
	tokens := map[string]bool{}
	for _, l := range b.Leases {
		a := l.Delivery.Action
		got[a] = append(got[a], l.Delivery.ID)
		if l.Token == "" || tokens[l.Token] {
			t.Errorf("lease of %s has token %q: want a fresh one", l.Delivery.ID, l.Token)
		}
		tokens[l.Token] = true
		if !l.Until.Equal(base.Add(time.Hour)) || !l.Delivery.LeasedUntil.Equal(l.Until) {
			t.Errorf("lease of %s until %v (delivery %v), want %v", l.Delivery.ID, l.Until, l.Delivery.LeasedUntil, base.Add(time.Hour))
		}
		if l.Event.ID != l.Delivery.EventID || string(l.Event.Body) != `{"n":1}` {
			t.Errorf("lease of %s carries event %+v", l.Delivery.ID, l.Event)
		}
		if score(t, s, s.k.queue(a), l.Delivery.ID) != -1 || score(t, s, s.k.leases(a), l.Delivery.ID) != base.Add(time.Hour).UnixMilli() {
			t.Errorf("leased %s is not in the lease set alone, at the lease's end", l.Delivery.ID)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("leased per action (-want +got):\n%s", diff)
	}
	// Each action keeps one delivery due: beyond its quota.
	if !b.NextDue.Equal(base.Add(-time.Second)) {
		t.Errorf("NextDue = %v, want %v: the deliveries left due", b.NextDue, base.Add(-time.Second))
	}
}

// TestLeaseNextDue covers the next due time: the earliest queued or lease
// end of the actions asked for, leases just given included; paused actions
// do not count and blocked ones count from their block's end.
func TestLeaseNextDue(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	acceptFor(t, s, "soon", base.Add(10*time.Minute))
	acceptFor(t, s, "paused", base.Add(time.Minute))
	acceptFor(t, s, "blocked", base.Add(2*time.Minute))
	acceptFor(t, s, "leased", base)
	if _, err := s.PutActionState(ctx, store.ActionState{Action: "paused", Paused: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutActionState(ctx, store.ActionState{Action: "blocked", Breaker: store.BreakerOpen, BlockedUntil: base.Add(20 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	quotas := func(names ...string) []store.ActionQuota {
		var qs []store.ActionQuota
		for _, n := range names {
			qs = append(qs, store.ActionQuota{Action: n, N: 5})
		}
		return qs
	}
	for _, tt := range []struct {
		actions []string
		want    time.Time
	}{
		{[]string{"soon", "paused", "blocked"}, base.Add(10 * time.Minute)},
		{[]string{"paused"}, time.Time{}},
		{[]string{"blocked"}, base.Add(20 * time.Minute)},
		{[]string{"unknown"}, time.Time{}},
		{[]string{"soon", "leased"}, base.Add(5 * time.Minute)}, // the lease given now ends first
	} {
		b := lease(t, s, store.LeaseRequest{Now: base, TTL: 5 * time.Minute, Actions: quotas(tt.actions...)})
		if !b.NextDue.Equal(tt.want) {
			t.Errorf("Lease of %v: NextDue = %v, want %v", tt.actions, b.NextDue, tt.want)
		}
	}
}

// TestLeaseGate applies the stored action state as store.Gate says.
func TestLeaseGate(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	ds := acceptFor(t, s, "crm", base, base, base)
	r := store.LeaseRequest{Now: base, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 3, Probe: 5 * time.Minute}}}

	paused, err := s.PutActionState(ctx, store.ActionState{Action: "crm", Paused: true})
	if err != nil {
		t.Fatal(err)
	}
	if b := lease(t, s, r); len(b.Leases) != 0 || !b.NextDue.IsZero() {
		t.Errorf("Lease of a paused action = %d leases, next due %v; want none", len(b.Leases), b.NextDue)
	}
	open := store.ActionState{Action: "crm", Breaker: store.BreakerOpen, Opens: 1, Failures: 5,
		BlockedUntil: base.Add(time.Second), ChangedAt: base, LastError: "503", Version: paused.Version}
	open, err = s.PutActionState(ctx, open)
	if err != nil {
		t.Fatal(err)
	}
	if b := lease(t, s, r); len(b.Leases) != 0 || !b.NextDue.Equal(base.Add(time.Second)) {
		t.Errorf("Lease before the block ends = %d leases, next due %v; want none, due at its end", len(b.Leases), b.NextDue)
	}

	at := base.Add(2 * time.Second)
	r.Now = at
	b := lease(t, s, r)
	if len(b.Leases) != 1 || !slices.Contains(deliveryIDs(ds), b.Leases[0].Delivery.ID) {
		t.Fatalf("Lease after the block = %v, want one probe", leaseIDs(b.Leases))
	}
	want := store.Probing(open, at, 5*time.Minute)
	states, err := s.ActionStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.ActionState{want}, states); diff != "" {
		t.Errorf("state after a probe (-want +got):\n%s", diff)
	}
	if !b.NextDue.Equal(want.BlockedUntil) {
		t.Errorf("NextDue after a probe = %v, want the probe's block end %v", b.NextDue, want.BlockedUntil)
	}
	if b := lease(t, s, r); len(b.Leases) != 0 {
		t.Errorf("a second probe was leased beside the first: %v", leaseIDs(b.Leases))
	}
	// A probe that finds nothing due leaves the state as it was.
	if _, err := s.PutActionState(ctx, store.ActionState{Action: "idle", BlockedUntil: base, Version: 0}); err != nil {
		t.Fatal(err)
	}
	lease(t, s, store.LeaseRequest{Now: at, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "idle", N: 1}}})
	states, _ = s.ActionStates(ctx)
	if len(states) != 2 || states[1].Action != "idle" || states[1].Version != 1 || states[1].Breaker != "" {
		t.Errorf("state of an idle action after a probe found nothing = %+v, want it unchanged", states)
	}
}

// TestLeaseDropsStaleEntries: ids whose delivery is gone or final are
// dropped from the queue and the lease set, and the quota is filled from
// the entries behind them.
func TestLeaseDropsStaleEntries(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	ds := acceptFor(t, s, "crm", base.Add(-time.Minute), base.Add(-time.Second), base)
	finishOne(t, s, leaseOne(t, s, base, "crm"), base, store.Outcome{Status: store.DeliverySucceeded})
	// Stale entries ahead of the live ones, in both sets.
	for _, z := range []struct{ key, id string }{
		{s.k.queue("crm"), "dlv_gone1"}, {s.k.queue("crm"), ds[0].ID}, {s.k.leases("crm"), "dlv_gone2"},
	} {
		if err := s.c.ZAdd(ctx, z.key, redis.Z{Score: float64(base.Add(-time.Hour).UnixMilli()), Member: z.id}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	b := lease(t, s, store.LeaseRequest{Now: base, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 2}}})
	if diff := cmp.Diff(deliveryIDs(ds[1:]), leaseIDs(b.Leases)); diff != "" {
		t.Errorf("leased (-want +got):\n%s", diff)
	}
	for _, z := range []struct{ key, id string }{
		{s.k.queue("crm"), "dlv_gone1"}, {s.k.queue("crm"), ds[0].ID}, {s.k.leases("crm"), "dlv_gone2"},
	} {
		if score(t, s, z.key, z.id) != -1 {
			t.Errorf("stale %s is still in %s", z.id, z.key)
		}
	}
}

// TestLeaseTakesEndedLeasesFirst: a lease that ended unrenewed is taken
// again, ahead of deliveries queued earlier, with a new token; its first
// holder can neither renew nor finish it any more.
func TestLeaseTakesEndedLeasesFirst(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	ds := acceptFor(t, s, "crm", base)
	first := leaseOne(t, s, base, "crm")
	queued := acceptFor(t, s, "crm", base.Add(-time.Hour))

	later := base.Add(2 * time.Minute)
	b := lease(t, s, store.LeaseRequest{Now: later, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 1}}})
	if len(b.Leases) != 1 || b.Leases[0].Delivery.ID != ds[0].ID || b.Leases[0].Token == first.Token {
		t.Fatalf("Lease after the lease ended = %+v, want %s again under a new token", b.Leases, ds[0].ID)
	}
	ends, err := s.Renew(ctx, later, time.Minute, []store.Lease{first, b.Leases[0]})
	if err != nil {
		t.Fatal(err)
	}
	if !ends[0].IsZero() || !ends[1].Equal(later.Add(time.Minute)) {
		t.Errorf("Renew of the lost and the new lease = %v, want zero and %v", ends, later.Add(time.Minute))
	}
	errs, err := s.Finish(ctx, []store.Finish{{Lease: first, Attempt: store.Attempt{N: 1, StartedAt: base}, Outcome: store.Outcome{Status: store.DeliveryDead}}})
	if err != nil || !errors.Is(errs[0], store.ErrLeaseLost) {
		t.Errorf("Finish of the lost lease = %v, %v; want ErrLeaseLost", errs, err)
	}
	if b := lease(t, s, store.LeaseRequest{Now: later, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 5}}}); len(b.Leases) != 1 || b.Leases[0].Delivery.ID != queued[0].ID {
		t.Errorf("Lease = %v, want only %s: the other is held", leaseIDs(b.Leases), queued[0].ID)
	}
}

// TestFinishBatch sends every kind of item in one batch, in one round trip.
func TestFinishBatch(t *testing.T) {
	ctx := t.Context()
	c := redistest.Client(t)
	s := New(c, redistest.Prefix(t))
	defer s.Close()
	ds := acceptFor(t, s, "crm", base, base, base, base, base)
	b := lease(t, s, store.LeaseRequest{Now: base, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 5}}})
	ls := inOrder(t, b.Leases, ds)
	lost := ls[3]
	lost.Token = "stale"
	lostWin := ls[4]
	lostWin.Token = "stale"
	next := base.Add(time.Hour)
	at := store.Attempt{StartedAt: base, Duration: time.Second}
	fs := []store.Finish{
		{Lease: ls[0], Attempt: at, Outcome: store.Outcome{Status: store.DeliverySucceeded}},
		{Lease: ls[1], Attempt: at, Outcome: store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: next, Error: "503"}},
		{Lease: ls[2], Attempt: at, Outcome: store.Outcome{Status: store.DeliveryDead, Error: "410"}},
		{Lease: lost, Attempt: at, Outcome: store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: next}},
		{Lease: lostWin, Attempt: at, Outcome: store.Outcome{Status: store.DeliverySucceeded}},
		{Lease: store.Lease{Delivery: store.Delivery{ID: "dlv_missing"}}, Attempt: at, Outcome: store.Outcome{Status: store.DeliveryDead}},
		{Lease: ls[0], Attempt: at, Outcome: store.Outcome{Status: store.DeliveryPending}},
		{Lease: ls[0], Outcome: store.Outcome{Status: store.DeliveryDead}},
	}
	var calls callCounter
	c.AddHook(&calls)
	errs, err := s.Finish(ctx, fs)
	if err != nil {
		t.Fatal(err)
	}
	if n := calls.n.Load(); n != 1 {
		t.Errorf("Finish of %d items took %d round trips, want 1", len(fs), n)
	}
	for i, want := range []error{nil, nil, nil, store.ErrLeaseLost, nil, store.ErrNotFound} {
		if !errors.Is(errs[i], want) || (want == nil && errs[i] != nil) {
			t.Errorf("item %d: error %v, want %v", i, errs[i], want)
		}
	}
	for i := 6; i < 8; i++ {
		if errs[i] == nil || errors.Is(errs[i], store.ErrLeaseLost) || errors.Is(errs[i], store.ErrNotFound) {
			t.Errorf("invalid item %d: error %v, want it refused", i, errs[i])
		}
	}
	ended := base.Add(time.Second)
	wants := []struct {
		status   store.DeliveryStatus
		n        int
		queue    int64
		attempts int
	}{
		{store.DeliverySucceeded, 1, -1, 1},
		{store.DeliveryRetrying, 1, next.UnixMilli(), 1},
		{store.DeliveryDead, 1, -1, 1},
		{store.DeliveryPending, 0, -1, 1}, // still leased by its holder
		{store.DeliverySucceeded, 1, -1, 1},
	}
	for i, w := range wants {
		d, err := s.Delivery(ctx, ds[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		as, err := s.Attempts(ctx, ds[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != w.status || d.Attempts != w.n || len(as) != w.attempts {
			t.Errorf("delivery %d: %s, %d attempts counted, %d recorded; want %s, %d, %d", i, d.Status, d.Attempts, len(as), w.status, w.n, w.attempts)
		}
		if got := score(t, s, s.k.queue("crm"), ds[i].ID); got != w.queue {
			t.Errorf("delivery %d: queue score %d, want %d", i, got, w.queue)
		}
		inLease := score(t, s, s.k.leases("crm"), ds[i].ID) != -1
		if inLease != (i == 3) {
			t.Errorf("delivery %d: in the lease set = %v", i, inLease)
		}
		if i != 3 && (!d.UpdatedAt.Equal(ended) || !d.LeasedUntil.IsZero()) {
			t.Errorf("delivery %d: updated %v, leased until %v; want %v and no lease", i, d.UpdatedAt, d.LeasedUntil, ended)
		}
		if inDead := len(inIndexes(t, s, d.ID, s.k.deadIndex())) == 1; inDead != (w.status == store.DeliveryDead) {
			t.Errorf("delivery %d: %s, in the dead index = %v", i, w.status, inDead)
		}
	}
	// A success already recorded is not applied twice. The same finish
	// sent again (as the client does when its answer is late) is answered
	// as the first was and recorded once; another attempt's success is
	// recorded, and finds the lease lost.
	errs, err = s.Finish(ctx, []store.Finish{{Lease: ls[0], Attempt: at, Outcome: store.Outcome{Status: store.DeliverySucceeded}}})
	if err != nil || errs[0] != nil {
		t.Errorf("the same success again = %v, %v; want it answered as the first", errs, err)
	}
	later := at
	later.StartedAt = at.StartedAt.Add(time.Second)
	errs, err = s.Finish(ctx, []store.Finish{{Lease: ls[0], Attempt: later, Outcome: store.Outcome{Status: store.DeliverySucceeded}}})
	if err != nil || !errors.Is(errs[0], store.ErrLeaseLost) {
		t.Errorf("a second success = %v, %v; want ErrLeaseLost", errs, err)
	}
	if d, _ := s.Delivery(ctx, ds[0].ID); d.Attempts != 1 {
		t.Errorf("a second success counted: %d attempts", d.Attempts)
	}
	if as, err := s.Attempts(ctx, ds[0].ID); err != nil || len(as) != 2 {
		t.Errorf("%d attempts recorded (%v), want 2: the first once, and the later one", len(as), err)
	}
}

// TestFinishSuccessOfDeadDelivery: a 2xx that arrives after the delivery
// was declared dead (by a worker that took the lease over) still ends it
// succeeded, out of the dead index.
func TestFinishSuccessOfDeadDelivery(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	ds := acceptFor(t, s, "crm", base)
	slow := leaseOne(t, s, base, "crm")
	fast := leaseOne(t, s, base.Add(2*time.Minute), "crm")
	finishOne(t, s, fast, base.Add(2*time.Minute), store.Outcome{Status: store.DeliveryDead})
	finishOne(t, s, slow, base.Add(3*time.Minute), store.Outcome{Status: store.DeliverySucceeded})
	d, err := s.Delivery(ctx, ds[0].ID)
	if err != nil || d.Status != store.DeliverySucceeded || d.Attempts != 2 {
		t.Fatalf("Delivery = %+v, %v; want succeeded after 2 attempts", d, err)
	}
	if got := inIndexes(t, s, d.ID, s.k.deadIndex()); len(got) != 0 {
		t.Errorf("a succeeded delivery is in the dead index")
	}
}

func TestFinishAfterScriptCacheFlush(t *testing.T) {
	ctx := t.Context()
	c := redistest.Client(t)
	s := New(c, redistest.Prefix(t))
	defer s.Close()
	acceptFor(t, s, "crm", base, base, base)
	b := lease(t, s, store.LeaseRequest{Now: base, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 3}}})
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var fs []store.Finish
	for _, l := range b.Leases {
		fs = append(fs, store.Finish{Lease: l, Attempt: store.Attempt{N: 1, StartedAt: base}, Outcome: store.Outcome{Status: store.DeliverySucceeded}})
	}
	errs, err := s.Finish(ctx, fs)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range b.Leases {
		as, _ := s.Attempts(ctx, l.Delivery.ID)
		if errs[i] != nil || len(as) != 1 {
			t.Errorf("item %d: error %v, %d attempts recorded; want it recorded once", i, errs[i], len(as))
		}
	}
}

func TestRenewAndRelease(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	ds := acceptFor(t, s, "crm", base, base)
	b := lease(t, s, store.LeaseRequest{Now: base, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 2}}})
	b.Leases = inOrder(t, b.Leases, ds)
	at := base.Add(30 * time.Second)
	ends, err := s.Renew(ctx, at, 5*time.Minute, b.Leases)
	if err != nil {
		t.Fatal(err)
	}
	for i, end := range ends {
		if !end.Equal(at.Add(5 * time.Minute)) {
			t.Errorf("Renew: lease %d ends %v, want %v", i, end, at.Add(5*time.Minute))
		}
		if got := score(t, s, s.k.leases("crm"), ds[i].ID); got != at.Add(5*time.Minute).UnixMilli() {
			t.Errorf("lease set score of %d = %d after Renew", i, got)
		}
		if d, _ := s.Delivery(ctx, ds[i].ID); !d.LeasedUntil.Equal(end) {
			t.Errorf("delivery %d leased until %v after Renew, want %v", i, d.LeasedUntil, end)
		}
	}
	if _, err := s.Renew(ctx, at, 0, b.Leases); err == nil {
		t.Error("Renew with no TTL succeeded")
	}

	wakeCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	wake := s.Wake(wakeCtx)
	if err := s.Release(ctx, at, b.Leases[:1]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Error("Release did not wake the relays")
	}
	d, err := s.Delivery(ctx, ds[0].ID)
	if err != nil || d.Status != store.DeliveryPending || !d.LeasedUntil.IsZero() || !d.NextAttemptAt.Equal(at) || d.Attempts != 0 {
		t.Errorf("released delivery = %+v, %v; want pending, due at %v, not leased", d, err, at)
	}
	if score(t, s, s.k.leases("crm"), ds[0].ID) != -1 || score(t, s, s.k.queue("crm"), ds[0].ID) != at.UnixMilli() {
		t.Error("the released delivery is not queued at the release time alone")
	}
	if ends, _ := s.Renew(ctx, at, time.Minute, b.Leases); !ends[0].IsZero() || ends[1].IsZero() {
		t.Errorf("Renew after Release = %v, want the released lease lost, the other held", ends)
	}
	got := lease(t, s, store.LeaseRequest{Now: at, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 5}}})
	if diff := cmp.Diff([]string{ds[0].ID}, leaseIDs(got.Leases)); diff != "" {
		t.Errorf("Lease after Release (-want +got):\n%s", diff)
	}
}

func TestActionStateVersions(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	if states, err := s.ActionStates(ctx); err != nil || len(states) != 0 {
		t.Fatalf("ActionStates of a new store = %v, %v", states, err)
	}
	st := store.ActionState{Action: "crm", Breaker: store.BreakerOpen, Failures: 3, Opens: 2,
		BlockedUntil: base.Add(time.Minute + 123456), ChangedAt: base, LastError: "timeout"}
	got, err := s.PutActionState(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	want := st
	want.BlockedUntil = want.BlockedUntil.Truncate(time.Millisecond)
	want.Version = 1
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PutActionState (-want +got):\n%s", diff)
	}
	if _, err := s.PutActionState(ctx, st); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second write from version 0 = %v, want ErrConflict", err)
	}
	// A write replaces every field.
	closed, err := s.PutActionState(ctx, store.ActionState{Action: "crm", Version: 1})
	if err != nil || closed.Version != 2 {
		t.Fatalf("PutActionState from version 1 = %+v, %v", closed, err)
	}
	if _, err := s.PutActionState(ctx, store.ActionState{Action: "ads", Paused: true}); err != nil {
		t.Fatal(err)
	}
	states, err := s.ActionStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.ActionState{{Action: "ads", Paused: true, Version: 1}, {Action: "crm", Version: 2}}, states); diff != "" {
		t.Errorf("ActionStates (-want +got):\n%s", diff)
	}
	if _, err := s.PutActionState(ctx, store.ActionState{}); err == nil {
		t.Error("PutActionState without an action succeeded")
	}
}

func TestQueueStats(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	acceptFor(t, s, "crm", base.Add(-time.Minute), base, base.Add(time.Hour))
	acceptFor(t, s, "ads", base.Add(-2*time.Minute), base.Add(-time.Minute))
	done := acceptFor(t, s, "gone", base)
	finishOne(t, s, leaseOne(t, s, base, "gone"), base, store.Outcome{Status: store.DeliverySucceeded})
	// ads: both leased until base, one of them renewed: one lease ended
	// (due since its end), one in flight.
	b := lease(t, s, store.LeaseRequest{Now: base.Add(-time.Minute), TTL: time.Minute, Actions: []store.ActionQuota{{Action: "ads", N: 2}}})
	if len(b.Leases) != 2 {
		t.Fatalf("leased %d, want 2", len(b.Leases))
	}
	if _, err := s.Renew(ctx, base, time.Minute, b.Leases[:1]); err != nil {
		t.Fatal(err)
	}

	got, err := s.QueueStats(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.QueueStats{
		{Action: "ads", Due: 1, InFlight: 1, OldestDue: base},
		{Action: "crm", Due: 2, Scheduled: 1, OldestDue: base.Add(-time.Minute)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("QueueStats (-want +got):\n%s", diff)
	}
	if ok, _ := s.c.SIsMember(ctx, s.k.queues(), "gone").Result(); ok {
		t.Error("an action with an empty queue stays in the set of queued actions")
	}
	// A retry queues the action again.
	if _, err := s.RetryDelivery(ctx, done[0].ID, base); err == nil {
		t.Error("retry of a succeeded delivery succeeded")
	}
	acceptFor(t, s, "gone", base.Add(time.Minute))
	got, _ = s.QueueStats(ctx, base)
	if len(got) != 3 || got[2] != (store.QueueStats{Action: "gone", Scheduled: 1}) {
		t.Errorf("QueueStats after a new delivery of gone = %+v", got)
	}
}

// TestRetryRequeues: an admin retry of a delivery whose lease ended puts it
// back in its queue, out of the lease set, and takes the lease from its
// holder.
func TestRetryRequeues(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	ds := acceptFor(t, s, "crm", base)
	l := leaseOne(t, s, base, "crm")
	at := base.Add(time.Hour)
	if _, err := s.RetryDelivery(ctx, ds[0].ID, base.Add(30*time.Second)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("retry of a held delivery = %v, want ErrConflict", err)
	}
	if _, err := s.RetryDelivery(ctx, ds[0].ID, at); err != nil {
		t.Fatal(err)
	}
	if score(t, s, s.k.leases("crm"), ds[0].ID) != -1 || score(t, s, s.k.queue("crm"), ds[0].ID) != at.UnixMilli() {
		t.Error("the retried delivery is not queued at the retry time alone")
	}
	if ends, _ := s.Renew(ctx, at, time.Minute, []store.Lease{l}); !ends[0].IsZero() {
		t.Error("the lease held before the retry still renews")
	}
}

// TestLeaseLargeQuota leases more deliveries in one call than one round of
// the script takes.
func TestLeaseLargeQuota(t *testing.T) {
	// One script leases all 2,500: on a loaded machine it may run longer
	// than the client's usual read timeout, and every retry as long. The
	// test is of the script, so its client waits.
	o := *redistest.Client(t).Options()
	o.ReadTimeout = time.Minute
	c := redis.NewClient(&o)
	defer c.Close()
	s := New(c, redistest.Prefix(t))
	defer s.Close()
	dues := make([]time.Time, 2500)
	for i := range dues {
		dues[i] = base.Add(-time.Duration(i) * time.Millisecond)
	}
	acceptFor(t, s, "crm", dues...)
	b := lease(t, s, store.LeaseRequest{Now: base, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 3000}}})
	if len(b.Leases) != len(dues) {
		t.Fatalf("leased %d, want %d", len(b.Leases), len(dues))
	}
	for i := 1; i < len(b.Leases); i++ {
		if b.Leases[i].Delivery.NextAttemptAt.Before(b.Leases[i-1].Delivery.NextAttemptAt) {
			t.Fatalf("lease %d is due before lease %d: not earliest first", i, i-1)
		}
	}
	if n, _ := s.c.ZCard(t.Context(), s.k.leases("crm")).Result(); n != int64(len(dues)) {
		t.Errorf("lease set holds %d, want %d", n, len(dues))
	}
}

// TestLeaseRetriedHandsBackItsLeases: the client sends a lease script again
// when its reply does not come in time. The second run of the same call
// hands back the first run's leases, with their tokens, instead of leasing
// nothing while they are held unseen until they end.
func TestLeaseRetriedHandsBackItsLeases(t *testing.T) {
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	ctx := t.Context()
	ds := acceptFor(t, s, "crm", base, base, base)
	acceptFor(t, s, "erp", base)
	r := store.LeaseRequest{Now: base, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 10}, {Action: "erp", N: 10}}}
	keys, args := s.leaseCall(r, newTokenHead())
	run := func() store.LeaseBatch {
		t.Helper()
		res, err := leaseScript.Run(ctx, s.c, keys, args...).Slice()
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.decodeLeases(res)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tokens := func(b store.LeaseBatch) map[string]string {
		m := map[string]string{}
		for _, l := range b.Leases {
			m[l.Delivery.ID] = l.Token
		}
		return m
	}
	first := run()
	if len(first.Leases) != len(ds)+1 {
		t.Fatalf("first run leased %d, want %d", len(first.Leases), len(ds)+1)
	}
	again := run()
	if diff := cmp.Diff(tokens(first), tokens(again)); diff != "" {
		t.Errorf("the second run's leases differ from the first's (-first +again):\n%s", diff)
	}
	if !again.NextDue.Equal(base) {
		t.Errorf("second run: next due %v, want now (%v), so that the relay asks again", again.NextDue, base)
	}
	for _, l := range again.Leases {
		if len(l.Event.Body) == 0 || l.Until.IsZero() {
			t.Errorf("lease of %s handed back without its event or end: %+v", l.Delivery.ID, l)
		}
	}
	// Another call finds them held.
	if b := lease(t, s, r); len(b.Leases) != 0 {
		t.Errorf("a new call leased %d, want 0: the first run's leases hold", len(b.Leases))
	}
	// The leases handed back are the ones that hold: they finish.
	var fs []store.Finish
	for _, l := range again.Leases {
		fs = append(fs, store.Finish{Lease: l, Attempt: store.Attempt{DeliveryID: l.Delivery.ID, N: 1, StartedAt: base, StatusCode: 200},
			Outcome: store.Outcome{Status: store.DeliverySucceeded}})
	}
	errs, err := s.Finish(ctx, fs)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("finish %s: %v", fs[i].Lease.Delivery.ID, err)
		}
	}
	// Once they finished, a third run of the call hands back nothing.
	if b := run(); len(b.Leases) != 0 {
		t.Errorf("a run after the leases finished handed back %d", len(b.Leases))
	}
}

// TestGateRetriedAllowsTheSame: a gate script sent again by the client
// allows what its first run allowed, holding no second set of places in
// the action's cap.
func TestGateRetriedAllowsTheSame(t *testing.T) {
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	ctx := t.Context()
	now := base.UnixMilli()
	until := leaseEnd(base, time.Minute)
	gate := func(head string, want int) int64 {
		t.Helper()
		res, err := gateScript.Run(ctx, s.c, []string{s.k.actionState("crm"), s.k.capSet("crm")},
			now, until, head, want, base.Add(time.Minute).UnixMilli(), 8, "").Slice()
		if err != nil {
			t.Fatal(err)
		}
		row, _ := res[0].([]any)
		n, _ := row[0].(int64)
		return n
	}
	held := func() int64 {
		t.Helper()
		n, err := s.c.ZCard(ctx, s.k.capSet("crm")).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	head := newTokenHead() + "g"
	if got := gate(head, 5); got != 5 || held() != 5 {
		t.Fatalf("first run: allowed %d, %d places held; want 5 and 5", got, held())
	}
	if got := gate(head, 5); got != 5 || held() != 5 {
		t.Errorf("second run of the same call: allowed %d, %d places held; want 5 and 5", got, held())
	}
	if got := gate(newTokenHead()+"g", 5); got != 3 || held() != 8 {
		t.Errorf("another call: allowed %d, %d places held; want 3 (the cap of 8) and 8", got, held())
	}
}

// TestGateRetriedGrantsItsProbe: a second run of a gate call that granted
// a breaker's probe (the client sends a script again when its reply is
// late) grants the same probe, with the state's version for settleScript,
// instead of finding the action half-open and granting nothing; another
// call still gets no probe.
func TestGateRetriedGrantsItsProbe(t *testing.T) {
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	ctx := t.Context()
	if _, err := s.PutActionState(ctx, store.ActionState{Action: "crm", Breaker: store.BreakerOpen, BlockedUntil: base, Opens: 1}); err != nil {
		t.Fatal(err)
	}
	now := base.Add(time.Second)
	until := leaseEnd(now, time.Minute)
	probeEnd := now.Add(30 * time.Second).UnixMilli()
	gate := func(head string) (allowed int64, gate string, version int64) {
		t.Helper()
		res, err := gateScript.Run(ctx, s.c, []string{s.k.actionState("crm"), s.k.capSet("crm")},
			now.UnixMilli(), until, head, 5, probeEnd, 8, "").Slice()
		if err != nil {
			t.Fatal(err)
		}
		row, _ := res[0].([]any)
		allowed, _ = row[0].(int64)
		gate, _ = row[1].(string)
		version, _ = row[2].(int64)
		return allowed, gate, version
	}
	head := newTokenHead() + "g"
	n, g, v := gate(head)
	if n != 1 || g != "0" || v == 0 {
		t.Fatalf("first run: allowed %d, gate %q, version %d; want the probe: 1, \"0\" and the new version", n, g, v)
	}
	if n2, g2, v2 := gate(head); n2 != 1 || g2 != "0" || v2 != v {
		t.Errorf("second run of the same call: allowed %d, gate %q, version %d; want 1, \"0\" and %d", n2, g2, v2, v)
	}
	st, err := s.ActionStates(ctx)
	if err != nil || len(st) != 1 || st[0].Breaker != store.BreakerHalfOpen || st[0].Version != v {
		t.Errorf("state after both runs = %+v, %v; want half-open at version %d", st, err, v)
	}
	if n3, g3, _ := gate(newTokenHead() + "g"); n3 != 0 || g3 == "0" {
		t.Errorf("another call: allowed %d, gate %q; want no probe while one is out", n3, g3)
	}
}
