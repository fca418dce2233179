package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/store"
)

// snapshot is everything a store holds about some events.
type snapshot struct {
	Events     map[string]store.Event
	Deliveries map[string][]store.Delivery
	Attempts   map[string][]store.Attempt
	Queues     []store.QueueStats // at base
}

func takeSnapshot(t *testing.T, s *Store, eventIDs []string) snapshot {
	t.Helper()
	ctx := t.Context()
	snap := snapshot{Events: map[string]store.Event{}, Deliveries: map[string][]store.Delivery{}, Attempts: map[string][]store.Attempt{}}
	for _, id := range eventIDs {
		ev, err := s.Event(ctx, id)
		if err != nil {
			t.Fatalf("Event(%s): %v", id, err)
		}
		snap.Events[id] = ev
		ds, err := s.Deliveries(ctx, id)
		if err != nil {
			t.Fatalf("Deliveries(%s): %v", id, err)
		}
		snap.Deliveries[id] = ds
		for _, d := range ds {
			as, err := s.Attempts(ctx, d.ID)
			if err != nil {
				t.Fatalf("Attempts(%s): %v", d.ID, err)
			}
			snap.Attempts[d.ID] = as
		}
	}
	qs, err := s.QueueStats(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	snap.Queues = qs
	return snap
}

// TestReopenKeepsEverything drives deliveries into every state, closes the
// store and checks that a reopened one reads the same and carries on: the
// retrying delivery and the one whose lease has expired are leasable, the
// final ones are not, and keys still dedupe.
func TestReopenKeepsEverything(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hookrelay.db")
	s := mustOpen(t, path)

	accepts := []store.Accept{
		testEvent("orders", "k1", 1, base, "ok", "retry", "dead", "held"),
		testEvent("orders", "k2", 2, base),                         // ignored
		testEvent("contacts", "", 3, base.Add(time.Hour), "later"), // not yet due
	}
	accepts[0].Event.Body = nil
	accepts[1].Event.Body = []byte{}
	accepts[1].Event.Headers = nil
	var ids []string
	for _, a := range accepts {
		mustAccept(t, s, a)
		ids = append(ids, a.Event.ID)
	}
	actions := []string{"ok", "retry", "dead", "held", "later"}
	ls := mustLease(t, s, base, 10, time.Minute, actions...).Leases
	if len(ls) != 4 {
		t.Fatalf("Lease = %d leases; want 4", len(ls))
	}
	outcomes := map[string]store.Outcome{
		"ok":    {Status: store.DeliverySucceeded},
		"retry": {Status: store.DeliveryRetrying, NextAttemptAt: base.Add(5 * time.Minute), Error: "HTTP 503"},
		"dead":  {Status: store.DeliveryDead, Error: "HTTP 410"},
	}
	for _, l := range ls {
		o, ok := outcomes[l.Delivery.Action]
		if !ok {
			continue // "held": its worker dies with the lease
		}
		a := store.Attempt{N: 1, StartedAt: base, Duration: 3 * time.Millisecond, Method: "POST", URL: "https://r.example/" + l.Delivery.Action, StatusCode: 200}
		if err := finishOne(t, s, l, a, o); err != nil {
			t.Fatalf("Finish(%s): %v", l.Delivery.Action, err)
		}
	}
	before := takeSnapshot(t, s, ids)
	mustClose(t, s)

	s = mustOpen(t, path)
	defer mustClose(t, s)
	after := takeSnapshot(t, s, ids)
	if diff := cmp.Diff(before, after, cmpTimes); diff != "" {
		t.Fatalf("after reopen (-before +after):\n%s", diff)
	}
	if ev := after.Events[accepts[0].Event.ID]; ev.Body != nil {
		t.Errorf("nil body read back as %#v", ev.Body)
	}
	if ev := after.Events[accepts[1].Event.ID]; ev.Body == nil || len(ev.Body) != 0 || ev.Headers != nil {
		t.Errorf("empty body and nil headers read back as %#v, %#v", ev.Body, ev.Headers)
	}

	got, err := s.Accept(ctx, testEvent("orders", "k1", 9, base.Add(time.Minute), "ok"))
	if err != nil || !got.Duplicate || got.EventID != accepts[0].Event.ID {
		t.Errorf("Accept of a known key after reopen = %+v, %v; want a duplicate of %s", got, err, accepts[0].Event.ID)
	}
	var leased []string
	for _, l := range mustLease(t, s, base.Add(time.Hour), 10, time.Minute, actions...).Leases {
		leased = append(leased, l.Delivery.Action)
	}
	want := []string{"retry", "held", "later"} // in the order of the quotas
	if diff := cmp.Diff(want, leased); diff != "" {
		t.Errorf("leasable after reopen (-want +got):\n%s", diff)
	}
}

// TestKeyKeptWithItsEvent: an event's idempotency key is kept on its row,
// judged against each later arrival's receipt, and goes with the event.
func TestKeyKeptWithItsEvent(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	first := testEvent("orders", "k", 0, base)
	first.KeyTTL = time.Hour
	mustAccept(t, s, first)
	if got := keyWindow(t, s, first.Event.ID); got != base.Add(time.Hour).UnixMilli() {
		t.Errorf("key_expires_at of the event that took the key = %d, want %d", got, base.Add(time.Hour).UnixMilli())
	}

	// A clock gone backwards still finds the window open at its receipt:
	// windows are judged by receipt times, not by when a sweep ran.
	early := testEvent("orders", "k", 1, base.Add(-time.Minute))
	early.KeyTTL = time.Hour
	if got := mustAccept(t, s, early); !got.Duplicate || got.EventID != first.Event.ID {
		t.Errorf("Accept received before the holder = %+v, want a duplicate of %s", got, first.Event.ID)
	}

	// The caller of the first Accept asks again (its answer was lost): it
	// is told its event is stored, not that it duplicates itself.
	if got := mustAccept(t, s, first); got.Duplicate || got.EventID != first.Event.ID {
		t.Errorf("the same Accept again = %+v, want %s stored", got, first.Event.ID)
	}

	// After the window, the next arrival takes the key, with a window of
	// its own; the old holder keeps its row, and the key is the new one's.
	second := testEvent("orders", "k", 2, base.Add(time.Hour))
	second.KeyTTL = 2 * time.Hour
	mustAccept(t, s, second)
	third := testEvent("orders", "k", 3, base.Add(2*time.Hour))
	third.KeyTTL = time.Hour
	if got := mustAccept(t, s, third); !got.Duplicate || got.EventID != second.Event.ID {
		t.Errorf("Accept in the second window = %+v, want a duplicate of %s", got, second.Event.ID)
	}
	e, err := s.Event(ctx, first.Event.ID)
	if err != nil {
		t.Fatal(err)
	}
	if e.Duplicates.Count != 1 {
		t.Errorf("duplicates recorded on the first holder = %d, want 1 (the early arrival)", e.Duplicates.Count)
	}

	// Pruned, the holder takes its key with it (its window was open).
	now := base.Add(2*time.Hour + time.Minute)
	pruned, err := s.Prune(ctx, store.Prune{Now: now, CompletedBefore: now, FailedBefore: now, Owner: "test", LeaseUntil: now.Add(time.Minute), Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if pruned.Events != 2 {
		t.Fatalf("Prune = %+v, want both events pruned", pruned)
	}
	again := testEvent("orders", "k", 4, now)
	again.KeyTTL = time.Hour
	if got := mustAccept(t, s, again); got.Duplicate {
		t.Errorf("Accept with the key of a pruned event = %+v, want a new event", got)
	}
}

// keyWindow reads the end of the key window stored on event id; 0 when it
// took no key.
func keyWindow(t *testing.T, s *Store, id string) int64 {
	t.Helper()
	var until int64
	if err := s.rdb.QueryRowContext(t.Context(), `SELECT key_expires_at FROM events WHERE id = ?`, id).Scan(&until); err != nil {
		t.Fatal(err)
	}
	return until
}

func TestAcceptRejects(t *testing.T) {
	s := openTemp(t)
	taken := testEvent("orders", "", 0, base, "crm")
	mustAccept(t, s, taken)
	tests := []struct {
		name   string
		change func(a *store.Accept)
	}{
		{"no event id", func(a *store.Accept) { a.Event.ID = "" }},
		{"event id taken", func(a *store.Accept) { a.Event.ID = taken.Event.ID }},
		{"delivery without id", func(a *store.Accept) { a.Deliveries[0].ID = "" }},
		{"delivery id taken", func(a *store.Accept) { a.Deliveries[1].ID = taken.Deliveries[0].ID }},
		{"two deliveries with one id", func(a *store.Accept) { a.Deliveries[1].ID = a.Deliveries[0].ID }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testEvent("orders", fmt.Sprintf("k%d", i), i+1, base, "crm", "erp")
			tt.change(&a)
			if got, err := s.Accept(t.Context(), a); err == nil {
				t.Fatalf("Accept = %+v, want an error", got)
			}
			// Nothing of a refused Accept is kept, not even its key.
			if a.Event.ID != "" && a.Event.ID != taken.Event.ID {
				if _, err := s.Event(t.Context(), a.Event.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Event after a refused Accept: error = %v, want ErrNotFound", err)
				}
			}
			ok := testEvent("orders", fmt.Sprintf("k%d", i), 100+i, base, "crm")
			if got := mustAccept(t, s, ok); got.Duplicate {
				t.Errorf("the refused Accept's key was kept: %+v", got)
			}
		})
	}
}

// TestAcceptStartsDeliveries: whatever the caller left in a new delivery's
// state, Accept enqueues it pending, unattempted and unleased, under its
// event, due when created if no due time was given.
func TestAcceptStartsDeliveries(t *testing.T) {
	s := openTemp(t)
	a := testEvent("orders", "k", 1, base, "crm")
	d := &a.Deliveries[0]
	d.EventID, d.Hook = "evt_other", ""
	d.Status, d.Attempts, d.LeasedUntil = store.DeliveryDead, 3, base.Add(time.Hour)
	d.NextAttemptAt = time.Time{}
	mustAccept(t, s, a)

	got, err := s.Delivery(t.Context(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := *d
	want.EventID, want.Hook = a.Event.ID, a.Event.Hook
	want.Status, want.Attempts, want.LeasedUntil = store.DeliveryPending, 0, time.Time{}
	want.NextAttemptAt = d.CreatedAt
	if diff := cmp.Diff(want, got, cmpTimes); diff != "" {
		t.Errorf("Delivery (-want +got):\n%s", diff)
	}
	if b := mustLease(t, s, base, 10, time.Minute, "crm"); len(b.Leases) != 1 {
		t.Errorf("Lease = %d leases; want the delivery", len(b.Leases))
	}
}

// TestAcceptWithoutKeyWindow: with no key, or a KeyTTL <= 0, every Accept is
// a new event and no key is kept.
func TestAcceptWithoutKeyWindow(t *testing.T) {
	s := openTemp(t)
	tests := []struct {
		name string
		key  string
		ttl  time.Duration
	}{
		{"no key", "", time.Hour},
		{"zero TTL", "k", 0},
		{"negative TTL", "k2", -time.Hour},
	}
	for i, tt := range tests {
		for j := range 2 {
			a := testEvent("orders", tt.key, 10*i+j, base, "crm")
			a.KeyTTL = tt.ttl
			if got := mustAccept(t, s, a); got.Duplicate || got.EventID != a.Event.ID {
				t.Errorf("%s: Accept %d = %+v, want a new event", tt.name, j, got)
			}
		}
	}
	var kept int
	if err := s.rdb.QueryRowContext(t.Context(), `SELECT count(*) FROM events WHERE key_expires_at > 0`).Scan(&kept); err != nil || kept != 0 {
		t.Errorf("events that took a key = %d, %v; want none", kept, err)
	}
}

// TestFinishRejects: an item that names no delivery, or whose outcome or
// attempt is not one the contract allows, records nothing; the other items
// of its batch are applied.
func TestFinishRejects(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	mustAccept(t, s, testEvent("orders", "k", 1, base, "crm", "erp"))
	ls := mustLease(t, s, base, 1, time.Minute, "crm", "erp").Leases
	if len(ls) != 2 {
		t.Fatalf("Lease = %d leases, want 2", len(ls))
	}
	l, other := ls[0], ls[1]
	unknown := l
	unknown.Delivery.ID = "dlv_unknown"
	ok := store.Outcome{Status: store.DeliverySucceeded}
	started := store.Attempt{N: 1, StartedAt: base}
	batch := []store.Finish{
		{Lease: unknown, Attempt: started, Outcome: ok},
		{Lease: l, Attempt: started, Outcome: store.Outcome{Status: store.DeliveryPending}},
		{Lease: l, Attempt: started, Outcome: store.Outcome{}},
		{Lease: l, Attempt: store.Attempt{N: 1}, Outcome: ok}, // no start: no clock to fall back on
		{Lease: other, Attempt: started, Outcome: ok},
	}
	errs, err := s.Finish(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != len(batch) {
		t.Fatalf("Finish returned %d errors for %d items", len(errs), len(batch))
	}
	if !errors.Is(errs[0], store.ErrNotFound) {
		t.Errorf("unknown delivery: error = %v, want ErrNotFound", errs[0])
	}
	for i, name := range map[int]string{1: "pending outcome", 2: "empty outcome", 3: "attempt without start"} {
		if errs[i] == nil || errors.Is(errs[i], store.ErrLeaseLost) || errors.Is(errs[i], store.ErrNotFound) {
			t.Errorf("%s: error = %v, want a refusal", name, errs[i])
		}
	}
	if errs[4] != nil {
		t.Errorf("valid item of the batch: %v", errs[4])
	}
	if as, err := s.Attempts(ctx, l.Delivery.ID); err != nil || len(as) != 0 {
		t.Errorf("Attempts after refused Finishes = %v, %v; want none", as, err)
	}
	if d, err := s.Delivery(ctx, other.Delivery.ID); err != nil || d.Status != store.DeliverySucceeded {
		t.Errorf("the valid item's delivery = %+v, %v; want it succeeded", d, err)
	}
	// The lease still works.
	if err := finishOne(t, s, l, started, ok); err != nil {
		t.Errorf("Finish with the lease: %v", err)
	}
	if errs, err := s.Finish(ctx, nil); err != nil || len(errs) != 0 {
		t.Errorf("Finish of nothing = %v, %v; want no errors", errs, err)
	}
}

// TestRetryWithoutTime: a retry with no NextAttemptAt is due when its
// attempt ended.
func TestRetryWithoutTime(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	mustAccept(t, s, testEvent("orders", "k", 1, base, "crm"))
	ls := mustLease(t, s, base, 1, time.Minute, "crm").Leases
	if len(ls) != 1 {
		t.Fatalf("Lease = %v", ls)
	}
	a := store.Attempt{N: 1, StartedAt: base, Duration: 2 * time.Second}
	if err := finishOne(t, s, ls[0], a, store.Outcome{Status: store.DeliveryRetrying}); err != nil {
		t.Fatal(err)
	}
	want := base.Add(2 * time.Second)
	d, err := s.Delivery(ctx, ls[0].Delivery.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !d.NextAttemptAt.Equal(want) || !d.UpdatedAt.Equal(want) {
		t.Errorf("NextAttemptAt %v, UpdatedAt %v; want both %v", d.NextAttemptAt, d.UpdatedAt, want)
	}
	if b := mustLease(t, s, base, 1, time.Minute, "crm"); len(b.Leases) != 0 || !b.NextDue.Equal(want) {
		t.Errorf("Lease = %d leases, NextDue %v; want none, %v", len(b.Leases), b.NextDue, want)
	}
}

func TestLeaseNone(t *testing.T) {
	s := openTemp(t)
	mustAccept(t, s, testEvent("orders", "k", 1, base, "crm"))
	for _, n := range []int{0, -1} {
		b := mustLease(t, s, base, n, time.Minute, "crm")
		if len(b.Leases) != 0 || !b.NextDue.IsZero() {
			t.Errorf("Lease(n=%d) = %+v; want nothing, and no next due for an action not asked for", n, b)
		}
	}
	for _, r := range []store.LeaseRequest{
		{Now: base, Actions: quotas(1, "crm")},                          // no TTL
		{Now: base, TTL: time.Minute, Actions: quotas(1, "")},           // no action
		{Now: base, TTL: time.Minute, Actions: quotas(1, "crm", "crm")}, // twice
	} {
		if b, err := s.Lease(t.Context(), r); !errors.Is(err, store.ErrBadQuota) {
			t.Errorf("Lease(%+v) = %+v, %v; want ErrBadQuota", r, b, err)
		}
	}
	if b := mustLease(t, s, base, 1, time.Minute, "crm"); len(b.Leases) != 1 {
		t.Errorf("refused requests leased something: %d leases left", len(b.Leases))
	}
}

// TestWakeOnlyForDeliveries: an ignored event has nothing to deliver and
// wakes no one. The signal is sent before Accept returns, so checking right
// after it is exact.
func TestWakeOnlyForDeliveries(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	w1, w2 := s.Wake(ctx), s.Wake(ctx)

	mustAccept(t, s, testEvent("orders", "k1", 1, base))
	for i, w := range []<-chan struct{}{w1, w2} {
		select {
		case <-w:
			t.Errorf("waiter %d woken by an ignored event", i)
		default:
		}
	}
	// Two Accepts with deliveries leave one pending signal per waiter.
	mustAccept(t, s, testEvent("orders", "k2", 2, base, "crm"))
	mustAccept(t, s, testEvent("orders", "k3", 3, base, "crm"))
	for i, w := range []<-chan struct{}{w1, w2} {
		select {
		case <-w:
		default:
			t.Errorf("waiter %d not woken by an Accept with deliveries", i)
		}
		select {
		case <-w:
			t.Errorf("waiter %d holds more than one signal", i)
		default:
		}
	}
}

func TestClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hookrelay.db")
	s := mustOpen(t, path)
	ctx := t.Context()
	wake := s.Wake(ctx)
	mustClose(t, s)
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	if _, ok := <-wake; ok {
		// A buffered signal may not exist here: nothing was accepted.
		t.Error("Wake channel received a signal instead of being closed")
	}
	if _, ok := <-s.Wake(ctx); ok {
		t.Error("Wake after Close returned an open channel")
	}
	writes := []struct {
		name string
		call func() error
	}{
		{"Accept", func() error { _, err := s.Accept(ctx, testEvent("orders", "k", 1, base, "crm")); return err }},
		{"Lease", func() error {
			_, err := s.Lease(ctx, store.LeaseRequest{Now: base, TTL: time.Minute, Actions: quotas(1, "crm")})
			return err
		}},
		{"Renew", func() error { _, err := s.Renew(ctx, base, time.Minute, []store.Lease{{Token: "t"}}); return err }},
		{"Finish", func() error {
			_, err := s.Finish(ctx, []store.Finish{{Attempt: store.Attempt{StartedAt: base}, Outcome: store.Outcome{Status: store.DeliveryDead}}})
			return err
		}},
		{"Release", func() error { return s.Release(ctx, base, []store.Lease{{Token: "t"}}) }},
		{"PutActionState", func() error { _, err := s.PutActionState(ctx, store.ActionState{Action: "crm"}); return err }},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, w := range writes {
		if err := w.call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: error = %v, want ErrClosed", w.name, err)
		}
	}
}

// TestCancelledCallerWritesNothing: a write whose caller has given up before
// the writer reaches it is skipped.
func TestCancelledCallerWritesNothing(t *testing.T) {
	s := openTemp(t)
	release := make(chan struct{})
	holding := make(chan error, 1)
	entered := make(chan struct{})
	go func() {
		holding <- s.write(t.Context(), func(*writeTx) error { close(entered); <-release; return nil })
	}()
	<-entered

	ctx, cancel := context.WithCancel(t.Context())
	ran := false
	req := &request{ctx: ctx, done: make(chan error, 1), op: func(*writeTx) error {
		ran = true
		return nil
	}}
	handed := make(chan struct{})
	go func() {
		s.reqs <- req // the writer takes it once the holding write is done
		close(handed)
	}()
	cancel()
	close(release)
	if err := <-holding; err != nil {
		t.Fatal(err)
	}
	<-handed
	if err := <-req.done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write answered %v, want context.Canceled", err)
	}
	if ran {
		t.Error("the writer ran the cancelled write")
	}
}

// TestLeaseIsExclusive: concurrent workers never hold the same delivery.
func TestLeaseIsExclusive(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	const events = 50
	for i := range events {
		mustAccept(t, s, testEvent("orders", fmt.Sprintf("k%d", i), i, base, "a", "b"))
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	for range 16 {
		wg.Go(func() {
			for {
				b, err := s.Lease(ctx, store.LeaseRequest{Now: base, TTL: time.Hour, Actions: quotas(3, "a", "b")})
				if err != nil {
					t.Error(err)
					return
				}
				if len(b.Leases) == 0 {
					return
				}
				mu.Lock()
				for _, l := range b.Leases {
					seen[l.Delivery.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 2*events {
		t.Errorf("%d deliveries leased, want %d", len(seen), 2*events)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("delivery %s leased %d times", id, n)
		}
	}
}
