package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// retentionStore is what RunRetention tests.
type retentionStore = interface {
	store.Store
	store.Admin
	store.Pruner
}

// RunRetention runs the conformance suite of store.Pruner. open must
// return a new, empty store for the test it is given and arrange for it to
// be closed.
//
// What it holds a backend to, beyond the comments in package store: calls
// with the same Prune, repeated until More is false, remove exactly the
// prunable events among those stored, with their deliveries and attempts
// (reads of them return store.ErrNotFound), and no listing shows them any
// more; everything else reads and lists as before. Another owner's call
// prunes nothing while the lease holds (until LeaseUntil, excluded).
func RunRetention(t *testing.T, open func(t *testing.T) retentionStore) {
	tests := []struct {
		name string
		run  func(t *testing.T, s retentionStore)
	}{
		{"PruneWindows", testPruneWindows},
		{"PruneBatches", testPruneBatches},
		{"PruneLease", testPruneLease},
		{"PruneAfterFinish", testPruneAfterFinish},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, open(t))
		})
	}
}

const (
	completedWindow = 7 * 24 * time.Hour
	failedWindow    = 30 * 24 * time.Hour
)

// pruneAt is a Prune by owner at now with the suite's windows.
func pruneAt(now time.Time, owner string, limit int) store.Prune {
	return store.Prune{
		Now: now, CompletedBefore: now.Add(-completedWindow), FailedBefore: now.Add(-failedWindow),
		Owner: owner, LeaseUntil: now.Add(time.Minute), Limit: limit,
	}
}

// pruneAll repeats p until More is false and returns the sum.
func pruneAll(t *testing.T, s retentionStore, p store.Prune) store.Pruned {
	t.Helper()
	var sum store.Pruned
	for range 10_000 {
		got, err := s.Prune(t.Context(), p)
		if err != nil {
			t.Fatalf("Prune(%+v): %v", p, err)
		}
		if got.Held {
			t.Fatalf("Prune(%+v): held by another owner", p)
		}
		sum.Events += got.Events
		sum.Deliveries += got.Deliveries
		sum.Attempts += got.Attempts
		if !got.More {
			return sum
		}
	}
	t.Fatal("pruning does not end")
	return sum
}

// acceptWith accepts an event on hook received at at with one delivery per
// action (each due at at), and returns it with its deliveries.
func acceptWith(t *testing.T, s store.Store, hook, key string, at time.Time, actions ...string) (store.Event, []store.Delivery) {
	t.Helper()
	e := newEvent(hook, key, at)
	var ds []store.Delivery
	for _, a := range actions {
		ds = append(ds, newDelivery(e, "rule", a, at))
	}
	if len(ds) > 0 {
		e.MatchedRules = []string{"rule"}
	}
	mustAccept(t, s, store.Accept{Event: e, Deliveries: ds, KeyTTL: time.Hour}, false)
	return e, ds
}

// settle leases d (the only due delivery of its action) at at and
// finishes one attempt with status; retrying is due again a year later.
func settle(t *testing.T, s store.Store, d store.Delivery, at time.Time, status store.DeliveryStatus) {
	t.Helper()
	ls := mustLease(t, s, at, 1, time.Minute, d.Action)
	if len(ls) != 1 || ls[0].Delivery.ID != d.ID {
		t.Fatalf("Lease(%s) = %v, want %s", d.Action, leasedIDs(ls), d.ID)
	}
	o := store.Outcome{Status: status}
	if status == store.DeliveryRetrying {
		o.NextAttemptAt = at.Add(365 * 24 * time.Hour)
	}
	code := 200
	if status != store.DeliverySucceeded {
		code, o.Error = 500, "500 Internal Server Error"
	}
	a := store.Attempt{DeliveryID: d.ID, N: 1, StartedAt: at, Duration: time.Millisecond, Method: "POST", URL: "https://example.com/x", StatusCode: code}
	if err := finishOne(t.Context(), s, ls[0], a, o); err != nil {
		t.Fatalf("Finish(%s, %s): %v", d.ID, status, err)
	}
}

// wantGone checks that e, its deliveries and their attempts read as not found.
func wantGone(t *testing.T, s retentionStore, name string, e store.Event, ds []store.Delivery) {
	t.Helper()
	if _, err := s.Event(t.Context(), e.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s: Event after pruning: %v, want ErrNotFound", name, err)
	}
	for _, d := range ds {
		if _, err := s.Delivery(t.Context(), d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: Delivery after pruning: %v, want ErrNotFound", name, err)
		}
		if _, err := s.Attempts(t.Context(), d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: Attempts after pruning: %v, want ErrNotFound", name, err)
		}
	}
}

// wantKept checks that e and its deliveries read as before, attempts too.
func wantKept(t *testing.T, s retentionStore, name string, e store.Event, ds []store.Delivery) {
	t.Helper()
	if _, err := s.Event(t.Context(), e.ID); err != nil {
		t.Errorf("%s: Event: %v, want it kept", name, err)
	}
	got, err := s.Deliveries(t.Context(), e.ID)
	if err != nil || len(got) != len(ds) {
		t.Errorf("%s: Deliveries = %d, %v; want %d", name, len(got), err, len(ds))
	}
	for _, d := range ds {
		if _, err := s.Attempts(t.Context(), d.ID); err != nil {
			t.Errorf("%s: Attempts: %v, want them kept", name, err)
		}
	}
}

// listedEvents is every event ListEvents shows for f, ids sorted.
func listedEvents(t *testing.T, s retentionStore, f store.EventFilter) []string {
	t.Helper()
	f.Limit = 1000
	evs, _ := listEvents(t, s, f)
	return cmpSorted(eventIDs(evs))
}

func listedDeliveries(t *testing.T, s retentionStore, f store.DeliveryFilter) []string {
	t.Helper()
	f.Limit = 1000
	ds, _ := listDeliveries(t, s, f)
	return cmpSorted(idsOf(ds))
}

func testPruneWindows(t *testing.T, s retentionStore) {
	now := base.Add(100 * 24 * time.Hour)
	day := 24 * time.Hour
	type rec struct {
		name   string
		e      store.Event
		ds     []store.Delivery
		pruned bool
	}
	var recs []*rec
	add := func(name string, age time.Duration, pruned bool, outcomes ...store.DeliveryStatus) {
		at := now.Add(-age)
		var actions []string
		for i := range outcomes {
			actions = append(actions, fmt.Sprintf("%s-%d", name, i))
		}
		hook := "orders"
		if len(recs)%2 == 1 {
			hook = "contacts"
		}
		e, ds := acceptWith(t, s, hook, name, at, actions...)
		for i, o := range outcomes {
			switch o {
			case store.DeliveryPending:
			case "leased":
				mustLease(t, s, now, 1, time.Hour, ds[i].Action)
			default:
				settle(t, s, ds[i], at, o)
			}
		}
		recs = append(recs, &rec{name, e, ds, pruned})
	}
	ok, dead, retrying, pending := store.DeliverySucceeded, store.DeliveryDead, store.DeliveryRetrying, store.DeliveryPending
	add("ignored-old", 8*day, true)
	add("ignored-new", 6*day, false)
	add("succeeded-old", 8*day, true, ok, ok)
	add("succeeded-new", 6*day, false, ok)
	add("succeeded-at-window", completedWindow, false, ok)
	add("dead-in-failed-window", 8*day, false, dead)
	add("dead-old", 31*day, true, dead, ok)
	add("mixed-in-failed-window", 8*day, false, ok, dead)
	add("pending-old", 60*day, false, pending)
	add("retrying-old", 60*day, false, retrying, ok)
	add("leased-old", 60*day, false, "leased")
	add("dead-and-pending-old", 60*day, false, dead, pending)

	got := pruneAll(t, s, pruneAt(now, "a", 3))
	want := store.Pruned{}
	var kept, keptIgnored, keptOrders []string
	var keptDeliveries, keptSucceeded, keptDead []string
	for _, r := range recs {
		if r.pruned {
			want.Events++
			want.Deliveries += len(r.ds)
			want.Attempts += len(r.ds) // settled ones have one attempt each
			wantGone(t, s, r.name, r.e, r.ds)
			continue
		}
		wantKept(t, s, r.name, r.e, r.ds)
		kept = append(kept, r.e.ID)
		if len(r.ds) == 0 {
			keptIgnored = append(keptIgnored, r.e.ID)
		}
		if r.e.Hook == "orders" {
			keptOrders = append(keptOrders, r.e.ID)
		}
		for _, d := range r.ds {
			keptDeliveries = append(keptDeliveries, d.ID)
			switch mustDelivery(t, s, d.ID).Status {
			case ok:
				keptSucceeded = append(keptSucceeded, d.ID)
			case dead:
				keptDead = append(keptDead, d.ID)
			}
		}
	}
	if got != want {
		t.Errorf("pruned %+v, want %+v", got, want)
	}
	for _, c := range []struct {
		name      string
		got, want []string
	}{
		{"events", listedEvents(t, s, store.EventFilter{}), kept},
		{"ignored events", listedEvents(t, s, store.EventFilter{Status: store.EventIgnored}), keptIgnored},
		{"orders events", listedEvents(t, s, store.EventFilter{Hook: "orders"}), keptOrders},
		{"deliveries", listedDeliveries(t, s, store.DeliveryFilter{}), keptDeliveries},
		{"succeeded deliveries", listedDeliveries(t, s, store.DeliveryFilter{Status: ok}), keptSucceeded},
		{"dead deliveries", listedDeliveries(t, s, store.DeliveryFilter{Status: dead}), keptDead},
		{"a pruned action's deliveries", listedDeliveries(t, s, store.DeliveryFilter{Action: "succeeded-old-0"}), nil},
	} {
		if w := cmpSorted(c.want); !slices.Equal(c.got, w) {
			t.Errorf("listed %s = %v, want %v", c.name, c.got, w)
		}
	}

	// A second pass finds nothing more.
	if again := pruneAll(t, s, pruneAt(now, "a", 3)); again != (store.Pruned{}) {
		t.Errorf("second pass pruned %+v, want nothing", again)
	}
}

func testPruneBatches(t *testing.T, s retentionStore) {
	now := base.Add(100 * 24 * time.Hour)
	for i := range 7 {
		acceptWith(t, s, "orders", fmt.Sprintf("k%d", i), now.Add(-60*24*time.Hour+time.Duration(i)*time.Second))
	}
	p := pruneAt(now, "a", 3)
	var calls []store.Pruned
	for {
		got, err := s.Prune(t.Context(), p)
		if err != nil {
			t.Fatalf("Prune: %v", err)
		}
		calls = append(calls, got)
		if !got.More || len(calls) > 40 {
			break
		}
	}
	if ps, ok := s.(interface{ Partitions() int }); ok && ps.Partitions() > 1 {
		// A partitioned store shares each batch among its partitions:
		// the batches are no larger, but a partition that filled its
		// share looks again before its pass ends.
		total := 0
		for i, c := range calls {
			total += c.Events
			if c.Events > p.Limit || c.More != (i < len(calls)-1) {
				t.Errorf("Prune call %d of %d = %+v; want at most %d events, More until the last", i+1, len(calls), c, p.Limit)
			}
		}
		if total != 7 {
			t.Errorf("Prune calls = %+v: %d events in all, want 7", calls, total)
		}
	} else if want := []store.Pruned{{Events: 3, More: true}, {Events: 3, More: true}, {Events: 1}}; !slices.Equal(calls, want) {
		t.Errorf("Prune calls = %+v, want %+v", calls, want)
	}
	if ids := listedEvents(t, s, store.EventFilter{}); len(ids) != 0 {
		t.Errorf("listed after pruning: %v", ids)
	}
}

func testPruneLease(t *testing.T, s retentionStore) {
	now := base.Add(100 * 24 * time.Hour)
	old := now.Add(-60 * 24 * time.Hour)
	acceptWith(t, s, "orders", "k1", old)

	a := pruneAt(now, "a", 10)
	if got, err := s.Prune(t.Context(), a); err != nil || got.Events != 1 || got.Held {
		t.Fatalf("Prune by a = %+v, %v; want one event", got, err)
	}
	acceptWith(t, s, "orders", "k2", old.Add(time.Second))

	// Until a's lease ends, b prunes nothing, however often it tries.
	for _, at := range []time.Time{now, now.Add(59 * time.Second)} {
		got, err := s.Prune(t.Context(), pruneAt(at, "b", 10))
		if err != nil || !got.Held || got.Events != 0 {
			t.Fatalf("Prune by b at %v = %+v, %v; want held", at.Sub(now), got, err)
		}
	}
	// a's next call extends its lease.
	a.Now, a.LeaseUntil = now.Add(30*time.Second), now.Add(2*time.Minute)
	if got, err := s.Prune(t.Context(), a); err != nil || got.Held || got.Events != 1 {
		t.Fatalf("Prune by a again = %+v, %v; want one event", got, err)
	}
	if got, err := s.Prune(t.Context(), pruneAt(now.Add(time.Minute), "b", 10)); err != nil || !got.Held {
		t.Fatalf("Prune by b while the extended lease holds = %+v, %v; want held", got, err)
	}
	// Once it ends, b takes over, and then a is the one held off.
	if got, err := s.Prune(t.Context(), pruneAt(now.Add(2*time.Minute), "b", 10)); err != nil || got.Held {
		t.Fatalf("Prune by b once a's lease ended = %+v, %v; want it to run", got, err)
	}
	if got, err := s.Prune(t.Context(), pruneAt(now.Add(2*time.Minute), "a", 10)); err != nil || !got.Held {
		t.Fatalf("Prune by a under b's lease = %+v, %v; want held", got, err)
	}
}

func testPruneAfterFinish(t *testing.T, s retentionStore) {
	now := base.Add(100 * 24 * time.Hour)
	old := now.Add(-60 * 24 * time.Hour)
	// With batches of one, the pending event is examined first and kept,
	// and the pass goes on past it to the ones behind.
	e1, ds1 := acceptWith(t, s, "orders", "k1", old, "first")
	e2, _ := acceptWith(t, s, "orders", "k2", old.Add(time.Second))
	e3, _ := acceptWith(t, s, "orders", "k3", old.Add(2*time.Second))
	if got := pruneAll(t, s, pruneAt(now, "a", 1)); got.Events != 2 {
		t.Fatalf("pruned %+v, want the two ignored events", got)
	}
	wantKept(t, s, "pending", e1, ds1)
	wantGone(t, s, "ignored", e2, nil)
	wantGone(t, s, "ignored", e3, nil)

	// Once its delivery succeeds, the next pass prunes it.
	settle(t, s, ds1[0], now, store.DeliverySucceeded)
	if got := pruneAll(t, s, pruneAt(now, "a", 1)); got != (store.Pruned{Events: 1, Deliveries: 1, Attempts: 1}) {
		t.Fatalf("pruned %+v, want the finished event", got)
	}
	wantGone(t, s, "finished", e1, ds1)
	if st := queueStatsOf(t, s, now); len(st) != 0 {
		t.Errorf("QueueStats after pruning = %+v, want none", st)
	}

	// Its idempotency key, whose window had ended, opens a new one.
	e := newEvent("orders", "k1", now)
	mustAccept(t, s, store.Accept{Event: e, KeyTTL: time.Hour}, false)
}

func queueStatsOf(t *testing.T, s store.Store, now time.Time) []store.QueueStats {
	t.Helper()
	st, err := s.QueueStats(t.Context(), now)
	if err != nil {
		t.Fatalf("QueueStats: %v", err)
	}
	return st
}
