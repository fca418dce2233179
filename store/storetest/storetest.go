// Package storetest is the conformance suite that every hookrelay store
// backend must pass: one set of tests, run from each backend's own package
// against a real, empty store.
//
// What the suite holds a backend to, beyond the comments in package store:
//
//   - Times are compared at millisecond precision: backends store unix
//     milliseconds, so a time read back equals the one written truncated to
//     the millisecond (any location). Attempt.Duration is compared at
//     millisecond precision too; Attempt.Trace is read back to the
//     nanosecond, and nil as nil. Nil and empty maps and slices are equal.
//   - Accept refuses an event whose id store.NewID did not make at its
//     ReceivedAt (store.CheckEventID), storing nothing: listings may bound
//     a time window by ids.
//   - Accept sets Event.Status itself: accepted when deliveries were given,
//     ignored when none were. Deliveries are stored as given (Status pending,
//     Attempts 0, no lease) and listed by Deliveries in the order Accept got them.
//   - The idempotency key of an event is scoped to its hook. The window is
//     measured with the injected clock: a key accepted at ReceivedAt r with
//     KeyTTL d is a duplicate for events received before r+d and absent from
//     r+d on, when the next event with it is accepted as new and opens a new window.
//   - Lease takes the earliest due deliveries first, at most n, only those
//     due at or before now; a lease falls due again at its Until. Leases carry
//     a fresh, non-empty token each time. Delivery reads show LeasedUntil
//     while a lease is held.
//   - Finish always records the attempt (Attempts lists them in the order
//     recorded). With the current lease on a delivery that is not final it
//     increments Attempts, sets Status and LastError, clears LeasedUntil and,
//     for retrying, makes the delivery due at Outcome.NextAttemptAt;
//     otherwise it returns store.ErrLeaseLost and changes nothing else.
//     Succeeded and dead deliveries are never leased again but stay readable.
//   - Reads of unknown ids return store.ErrNotFound; Deliveries of an event
//     without deliveries and Attempts of a delivery without attempts return
//     an empty list and no error.
//
// No test sleeps: every time is passed in. Subtests run in parallel, each on
// a store of its own, so open must return a fresh, empty store every call.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hookrelay/hookrelay/store"
)

// base is the suite's "now": a fixed instant, so that every run is the same.
var base = time.Date(2030, time.March, 14, 15, 9, 26, 535_000_000, time.UTC)

// waitLimit bounds waits on channels so that a broken Wake fails the test
// instead of hanging it; it is not a speed requirement.
const waitLimit = 30 * time.Second

// cmpOpts compares at the precision the suite promises (see the package doc).
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool {
		return a.Truncate(time.Millisecond).Equal(b.Truncate(time.Millisecond))
	}),
	cmp.Comparer(func(a, b time.Duration) bool {
		return a.Truncate(time.Millisecond) == b.Truncate(time.Millisecond)
	}),
	cmpopts.EquateEmpty(),
}

// Run runs the conformance suite. open must return a new, empty store for
// the test it is given and arrange for it to be closed (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"Accept", testAccept},
		{"AcceptWithoutDeliveriesIsIgnored", testAcceptIgnored},
		{"AcceptRefusesAnIDOfAnotherTime", testAcceptIDOfAnotherTime},
		{"DuplicateWithinTTL", testDuplicateWithinTTL},
		{"DuplicateAfterTTL", testDuplicateAfterTTL},
		{"SameKeyOnOtherHookIsNotDuplicate", testSameKeyOtherHook},
		{"ConcurrentDuplicates", testConcurrentDuplicates},
		{"LeaseOnlyDue", testLeaseOnlyDue},
		{"LeaseExpiresAndMovesToAnotherWorker", testLeaseExpiry},
		{"Ack", testAck},
		{"Retry", testRetry},
		{"Dead", testDead},
		{"AttemptsRoundTrip", testAttempts},
		{"AttemptTraceRoundTrip", testAttemptTrace},
		{"Wake", testWake},
		{"WakeClosedWhenDone", testWakeClosed},
		{"UnknownIDs", testUnknownIDs},
		{"Ping", testPing},
	}
	for _, tt := range append(append(append(append(tests, queueTests...), identityTests...), traceTests...), laneTests...) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, open(t))
		})
	}
}

// newEvent returns an event on hook with idempotency key key received at at.
// Its Status is left empty: Accept must set it.
func newEvent(hook, key string, at time.Time) store.Event {
	return store.Event{
		ID:             store.NewEventID(hook, key, at),
		Hook:           hook,
		ReceivedAt:     at,
		IdempotencyKey: key,
		Headers:        map[string]string{"content-type": "application/json", "x-request-id": "r-1"},
		Query:          map[string]string{"token": "t0"},
		Body:           []byte(`{"event":"ORDER","n":1}`),
	}
}

// deliveryID returns a delivery id of e made at at: in e's shard, as a
// partitioned store wants it.
func deliveryID(e store.Event, at time.Time) string { return store.NewDeliveryID(e.ID, at) }

// newDelivery returns a pending delivery of e for action, due at due.
func newDelivery(e store.Event, rule, action string, due time.Time) store.Delivery {
	return store.Delivery{
		ID:            store.NewDeliveryID(e.ID, e.ReceivedAt),
		EventID:       e.ID,
		Hook:          e.Hook,
		Rule:          rule,
		Action:        action,
		Status:        store.DeliveryPending,
		NextAttemptAt: due,
		CreatedAt:     e.ReceivedAt,
		UpdatedAt:     e.ReceivedAt,
	}
}

// acceptOne accepts e with one delivery due at ReceivedAt and returns it.
func acceptOne(t *testing.T, s store.Store, e store.Event) store.Delivery {
	t.Helper()
	d := newDelivery(e, "rule", "action", e.ReceivedAt)
	e.MatchedRules = []string{"rule"}
	mustAccept(t, s, store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: 24 * time.Hour}, false)
	return d
}

func mustAccept(t *testing.T, s store.Store, a store.Accept, wantDup bool) store.Accepted {
	t.Helper()
	got, err := s.Accept(t.Context(), a)
	if err != nil {
		t.Fatalf("Accept(%s): %v", a.Event.ID, err)
	}
	if got.Duplicate != wantDup {
		t.Fatalf("Accept(%s) = %+v, want Duplicate %v", a.Event.ID, got, wantDup)
	}
	return got
}

// suiteActions are the action names the suite's deliveries use: the
// helpers that lease "everything" ask for each of them.
var suiteActions = []string{"action", "crm", "erp", "crm-callback", "erp-forward", "later", "slow", "fast", "other"}

// quotas asks for up to n deliveries of each action.
func quotas(n int, actions ...string) []store.ActionQuota {
	qs := make([]store.ActionQuota, len(actions))
	for i, a := range actions {
		qs[i] = store.ActionQuota{Action: a, N: n}
	}
	return qs
}

// lease leases up to n deliveries of each of actions (every suite action
// when none is named) due at now.
func lease(t *testing.T, s store.Store, now time.Time, n int, ttl time.Duration, actions ...string) store.LeaseBatch {
	t.Helper()
	if len(actions) == 0 {
		actions = suiteActions
	}
	b, err := s.Lease(t.Context(), store.LeaseRequest{Now: now, TTL: ttl, Actions: quotas(n, actions...)})
	if err != nil {
		t.Fatalf("Lease(%v, %d, %v, %v): %v", now, n, ttl, actions, err)
	}
	return b
}

func mustLease(t *testing.T, s store.Store, now time.Time, n int, ttl time.Duration, actions ...string) []store.Lease {
	t.Helper()
	return lease(t, s, now, n, ttl, actions...).Leases
}

// mustLeaseOne leases at now and requires exactly the delivery id.
func mustLeaseOne(t *testing.T, s store.Store, now time.Time, ttl time.Duration, id string) store.Lease {
	t.Helper()
	ls := mustLease(t, s, now, 10, ttl)
	if len(ls) != 1 || ls[0].Delivery.ID != id {
		t.Fatalf("Lease(%v) = %v, want just %s", now, leasedIDs(ls), id)
	}
	return ls[0]
}

// finishOne finishes one attempt and returns its error, or the store's.
func finishOne(ctx context.Context, s store.Store, l store.Lease, a store.Attempt, o store.Outcome) error {
	errs, err := s.Finish(ctx, []store.Finish{{Lease: l, Attempt: a, Outcome: o}})
	if err != nil {
		return err
	}
	if len(errs) != 1 {
		return fmt.Errorf("finish of one item returned %d errors", len(errs))
	}
	return errs[0]
}

func wantNothingDue(t *testing.T, s store.Store, now time.Time) {
	t.Helper()
	if ls := mustLease(t, s, now, 10, time.Minute); len(ls) != 0 {
		t.Fatalf("Lease(%v) = %v, want nothing", now, leasedIDs(ls))
	}
}

func leasedIDs(ls []store.Lease) []string {
	ids := make([]string, len(ls))
	for i, l := range ls {
		ids[i] = l.Delivery.ID
	}
	return ids
}

func mustDelivery(t *testing.T, s store.Store, id string) store.Delivery {
	t.Helper()
	d, err := s.Delivery(t.Context(), id)
	if err != nil {
		t.Fatalf("Delivery(%s): %v", id, err)
	}
	return d
}

func mustAttempts(t *testing.T, s store.Store, id string) []store.Attempt {
	t.Helper()
	as, err := s.Attempts(t.Context(), id)
	if err != nil {
		t.Fatalf("Attempts(%s): %v", id, err)
	}
	return as
}

// wantNextDue checks the NextDue of a Lease of every suite action at a
// time before anything is due.
func wantNextDue(t *testing.T, s store.Store, want time.Time) {
	t.Helper()
	b := lease(t, s, time.Unix(0, 0), 1, time.Minute)
	if len(b.Leases) != 0 {
		t.Fatalf("Lease at the epoch = %v, want nothing", leasedIDs(b.Leases))
	}
	if diff := cmp.Diff(want, b.NextDue, cmpOpts); diff != "" {
		t.Fatalf("NextDue = %v, want %v", b.NextDue, want)
	}
}

// finishedAs is what a delivery reads as after a Finish that applied o.
func finishedAs(d store.Delivery, attempts int, o store.Outcome) store.Delivery {
	d.Status = o.Status
	d.Attempts = attempts
	d.LastError = o.Error
	d.LeasedUntil = time.Time{}
	if o.Status == store.DeliveryRetrying {
		d.NextAttemptAt = o.NextAttemptAt
	}
	return d
}

// ignoreAfterFinish leaves out what the contract does not pin down once a
// delivery has been attempted: when it was last updated, and for a final
// delivery, its due time.
func ignoreAfterFinish(final bool) cmp.Option {
	if final {
		return cmpopts.IgnoreFields(store.Delivery{}, "UpdatedAt", "NextAttemptAt")
	}
	return cmpopts.IgnoreFields(store.Delivery{}, "UpdatedAt")
}

func attemptOf(l store.Lease, started time.Time, code int, errText string) store.Attempt {
	return store.Attempt{
		DeliveryID:     l.Delivery.ID,
		N:              l.Delivery.Attempts + 1,
		StartedAt:      started,
		Duration:       250 * time.Millisecond,
		Method:         "POST",
		URL:            "https://receiver.example/hook",
		RequestHeaders: map[string]string{"Idempotency-Key": l.Delivery.ID},
		StatusCode:     code,
		Error:          errText,
		ResponseBody:   fmt.Sprintf("status %d", code),
	}
}

func testAccept(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := newEvent("orders", "key-1", base)
	e.Body = []byte("{\"raw\": true}\x00\xff\xfe not utf-8")
	e.MatchedRules = []string{"to-crm", "to-erp"}
	// The first delivery's id sorts after the second's: listings keep accept order, not id order.
	d1 := newDelivery(e, "to-crm", "crm-callback", base.Add(time.Second))
	d1.ID = deliveryID(e, base.Add(time.Hour))
	d2 := newDelivery(e, "to-erp", "erp-forward", base)

	got := mustAccept(t, s, store.Accept{Event: e, Deliveries: []store.Delivery{d1, d2}, KeyTTL: 24 * time.Hour}, false)
	if diff := cmp.Diff(store.Accepted{EventID: e.ID}, got); diff != "" {
		t.Errorf("Accept (-want +got):\n%s", diff)
	}

	want := e
	want.Status = store.EventAccepted
	gotEvent, err := s.Event(ctx, e.ID)
	if err != nil {
		t.Fatalf("Event: %v", err)
	}
	if diff := cmp.Diff(want, gotEvent, cmpOpts); diff != "" {
		t.Errorf("Event (-want +got):\n%s", diff)
	}

	for _, d := range []store.Delivery{d1, d2} {
		if diff := cmp.Diff(d, mustDelivery(t, s, d.ID), cmpOpts); diff != "" {
			t.Errorf("Delivery(%s) (-want +got):\n%s", d.ID, diff)
		}
	}
	ds, err := s.Deliveries(ctx, e.ID)
	if err != nil {
		t.Fatalf("Deliveries: %v", err)
	}
	if diff := cmp.Diff([]store.Delivery{d1, d2}, ds, cmpOpts); diff != "" {
		t.Errorf("Deliveries (-want +got):\n%s", diff)
	}
	if as := mustAttempts(t, s, d1.ID); len(as) != 0 {
		t.Errorf("Attempts of a new delivery = %+v, want none", as)
	}
	wantNextDue(t, s, base)
}

func testAcceptIDOfAnotherTime(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{store.NewID("evt", base.Add(time.Millisecond)), store.NewID("dlv", base), "evt_1"} {
		e := newEvent("orders", "key-1", base)
		e.ID = id
		d := newDelivery(e, "to-crm", "crm-callback", base)
		if _, err := s.Accept(ctx, store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}); err == nil {
			t.Errorf("Accept of event id %q received at %v: no error", id, base)
		}
		if _, err := s.Event(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Event(%q) after a refused Accept: %v, want store.ErrNotFound", id, err)
		}
		if _, err := s.Delivery(ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Delivery(%q) after a refused Accept: %v, want store.ErrNotFound", d.ID, err)
		}
	}
	// Nor did it take the idempotency key.
	e := newEvent("orders", "key-1", base)
	mustAccept(t, s, store.Accept{Event: e, KeyTTL: time.Hour}, false)
}

func testAcceptIgnored(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := newEvent("orders", "key-1", base)
	mustAccept(t, s, store.Accept{Event: e, KeyTTL: time.Hour}, false)

	got, err := s.Event(ctx, e.ID)
	if err != nil {
		t.Fatalf("Event: %v", err)
	}
	want := e
	want.Status = store.EventIgnored
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("Event (-want +got):\n%s", diff)
	}
	ds, err := s.Deliveries(ctx, e.ID)
	if err != nil {
		t.Fatalf("Deliveries: %v", err)
	}
	if len(ds) != 0 {
		t.Errorf("Deliveries = %+v, want none", ds)
	}
	wantNextDue(t, s, time.Time{})
	wantNothingDue(t, s, base.Add(365*24*time.Hour))
}

func testDuplicateWithinTTL(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := newEvent("orders", "key-1", base)
	d1 := acceptOne(t, s, first)

	again := newEvent("orders", "key-1", base.Add(time.Minute))
	d2 := newDelivery(again, "rule", "action", again.ReceivedAt)
	got := mustAccept(t, s, store.Accept{Event: again, Deliveries: []store.Delivery{d2}, KeyTTL: 24 * time.Hour}, true)
	if diff := cmp.Diff(store.Accepted{EventID: first.ID, Duplicate: true}, got); diff != "" {
		t.Errorf("Accept of a duplicate (-want +got):\n%s", diff)
	}

	if _, err := s.Event(ctx, again.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Event(duplicate) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Delivery(ctx, d2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delivery(duplicate's) error = %v, want ErrNotFound", err)
	}
	mustLeaseOne(t, s, base.Add(time.Hour), time.Minute, d1.ID)
}

func testDuplicateAfterTTL(t *testing.T, s store.Store) {
	const ttl = time.Hour
	accept := func(at time.Time) (store.Event, store.Accepted) {
		e := newEvent("orders", "key-1", at)
		got, err := s.Accept(t.Context(), store.Accept{Event: e, KeyTTL: ttl})
		if err != nil {
			t.Fatalf("Accept at %v: %v", at, err)
		}
		return e, got
	}

	first, _ := accept(base)
	tests := []struct {
		name    string
		at      time.Time
		wantDup bool
		wantID  func(newID string) string
	}{
		{"last millisecond of the window", base.Add(ttl - time.Millisecond), true, func(string) string { return first.ID }},
		{"window over", base.Add(ttl), false, func(id string) string { return id }},
	}
	var second string
	for _, tt := range tests {
		e, got := accept(tt.at)
		want := store.Accepted{EventID: tt.wantID(e.ID), Duplicate: tt.wantDup}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%s: Accept (-want +got):\n%s", tt.name, diff)
		}
		if !tt.wantDup {
			second = e.ID
		}
	}
	// The accepted event opened a window of its own.
	_, got := accept(base.Add(ttl + time.Minute))
	if diff := cmp.Diff(store.Accepted{EventID: second, Duplicate: true}, got); diff != "" {
		t.Errorf("Accept in the new window (-want +got):\n%s", diff)
	}
	if _, err := s.Event(t.Context(), second); err != nil {
		t.Errorf("Event(%s) accepted after the window: %v", second, err)
	}
}

func testSameKeyOtherHook(t *testing.T, s store.Store) {
	a := newEvent("orders", "key-1", base)
	b := newEvent("contacts", "key-1", base)
	da := acceptOne(t, s, a)
	db := acceptOne(t, s, b)
	ls := mustLease(t, s, base, 10, time.Minute)
	got := leasedIDs(ls)
	if diff := cmp.Diff([]string{da.ID, db.ID}, got, cmpopts.SortSlices(func(x, y string) bool { return x < y })); diff != "" {
		t.Errorf("leased (-want +got):\n%s", diff)
	}
}

func testConcurrentDuplicates(t *testing.T, s store.Store) {
	const callers = 64
	events := make([]store.Event, callers)
	results := make([]store.Accepted, callers)
	errs := make([]error, callers)
	for i := range events {
		events[i] = newEvent("orders", "same-key", base)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			e := events[i]
			d := newDelivery(e, "rule", "action", base)
			results[i], errs[i] = s.Accept(context.WithoutCancel(t.Context()), store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour})
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("Accept %d: %v", i, errs[i])
		}
		if !r.Duplicate {
			if winner >= 0 {
				t.Fatalf("Accept %d and %d both won", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("every Accept was a duplicate")
	}
	for i, r := range results {
		if r.EventID != events[winner].ID {
			t.Errorf("Accept %d = %+v, want the winner's id %s", i, r, events[winner].ID)
		}
		if i != winner {
			if _, err := s.Event(t.Context(), events[i].ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Event(loser %d) error = %v, want ErrNotFound", i, err)
			}
		}
	}
	ls := mustLease(t, s, base, 2*callers, time.Minute)
	if len(ls) != 1 || ls[0].Delivery.EventID != events[winner].ID {
		t.Errorf("leased %d deliveries, want only the winner's one", len(ls))
	}
}

func testLeaseOnlyDue(t *testing.T, s store.Store) {
	const ttl = 2 * time.Hour
	e := newEvent("orders", "key-1", base)
	e.MatchedRules = []string{"rule"}
	var ds []store.Delivery
	for i := range 5 {
		// Accepted latest first: the due time, not accept order, decides.
		ds = append(ds, newDelivery(e, "rule", "action", base.Add(time.Duration(4-i)*time.Second)))
	}
	future := newDelivery(e, "rule", "later", base.Add(time.Hour))
	mustAccept(t, s, store.Accept{Event: e, Deliveries: append(ds, future), KeyTTL: time.Hour}, false)

	now := base.Add(10 * time.Second)
	first := mustLease(t, s, now, 3, ttl)
	if diff := cmp.Diff([]string{ds[4].ID, ds[3].ID, ds[2].ID}, leasedIDs(first)); diff != "" {
		t.Fatalf("first Lease of 3 (-want +got):\n%s", diff)
	}
	second := mustLease(t, s, now, 3, ttl)
	if diff := cmp.Diff([]string{ds[1].ID, ds[0].ID}, leasedIDs(second)); diff != "" {
		t.Fatalf("second Lease of 3 (-want +got):\n%s", diff)
	}
	wantNothingDue(t, s, now)

	wantEvent := e
	wantEvent.Status = store.EventAccepted
	tokens := map[string]bool{}
	for _, l := range append(first, second...) {
		if l.Token == "" || tokens[l.Token] {
			t.Errorf("lease of %s has token %q: want a new, non-empty one", l.Delivery.ID, l.Token)
		}
		tokens[l.Token] = true
		if diff := cmp.Diff(now.Add(ttl), l.Until, cmpOpts); diff != "" {
			t.Errorf("lease of %s until %v, want %v", l.Delivery.ID, l.Until, now.Add(ttl))
		}
		if diff := cmp.Diff(wantEvent, l.Event, cmpOpts); diff != "" {
			t.Errorf("lease of %s: Event (-want +got):\n%s", l.Delivery.ID, diff)
		}
		var want store.Delivery
		for _, d := range ds {
			if d.ID == l.Delivery.ID {
				want = d
			}
		}
		want.LeasedUntil = now.Add(ttl)
		// While leased, a delivery is due when its lease ends; whether
		// NextAttemptAt says so is up to the backend.
		ignoreDue := cmpopts.IgnoreFields(store.Delivery{}, "NextAttemptAt", "UpdatedAt")
		if diff := cmp.Diff(want, l.Delivery, cmpOpts, ignoreDue); diff != "" {
			t.Errorf("leased Delivery (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want, mustDelivery(t, s, want.ID), cmpOpts, ignoreDue); diff != "" {
			t.Errorf("Delivery(%s) while leased (-want +got):\n%s", want.ID, diff)
		}
	}
	// Held leases end after the one due later, which falls due on its own.
	wantNextDue(t, s, future.NextAttemptAt)
	wantNothingDue(t, s, future.NextAttemptAt.Add(-time.Millisecond))
	mustLeaseOne(t, s, future.NextAttemptAt, ttl, future.ID)
	wantNextDue(t, s, now.Add(ttl))
}

func testLeaseExpiry(t *testing.T, s store.Store) {
	const ttl = 30 * time.Second
	d := acceptOne(t, s, newEvent("orders", "key-1", base))

	old := mustLeaseOne(t, s, base, ttl, d.ID)
	wantNothingDue(t, s, base.Add(ttl-time.Millisecond))
	wantNextDue(t, s, base.Add(ttl))

	// The first worker stalled: its lease ran out and another worker takes over.
	taken := mustLeaseOne(t, s, base.Add(ttl), ttl, d.ID)
	if taken.Token == old.Token {
		t.Fatalf("the new lease kept the old token %q", old.Token)
	}
	if diff := cmp.Diff(base.Add(2*ttl), taken.Until, cmpOpts); diff != "" {
		t.Errorf("new lease until %v, want %v", taken.Until, base.Add(2*ttl))
	}

	late := attemptOf(old, base, 503, "HTTP 503")
	err := finishOne(t.Context(), s, old, late, store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: base.Add(time.Hour), Error: "HTTP 503"})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Finish with the expired lease: error = %v, want ErrLeaseLost", err)
	}
	got := mustDelivery(t, s, d.ID)
	if got.Status != store.DeliveryPending || got.Attempts != 0 {
		t.Errorf("after a lost Finish: Status %q Attempts %d, want pending and 0", got.Status, got.Attempts)
	}
	if diff := cmp.Diff(taken.Until, got.LeasedUntil, cmpOpts); diff != "" {
		t.Errorf("after a lost Finish: LeasedUntil %v, want the new lease's %v", got.LeasedUntil, taken.Until)
	}

	mine := attemptOf(taken, base.Add(ttl), 204, "")
	ok := store.Outcome{Status: store.DeliverySucceeded}
	if err := finishOne(t.Context(), s, taken, mine, ok); err != nil {
		t.Fatalf("Finish with the current lease: %v", err)
	}
	if diff := cmp.Diff(finishedAs(d, 1, ok), mustDelivery(t, s, d.ID), cmpOpts, ignoreAfterFinish(true)); diff != "" {
		t.Errorf("Delivery after Finish (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]store.Attempt{late, mine}, mustAttempts(t, s, d.ID), cmpOpts); diff != "" {
		t.Errorf("Attempts (-want +got):\n%s", diff)
	}
}

func testAck(t *testing.T, s store.Store) {
	d := acceptOne(t, s, newEvent("orders", "key-1", base))
	l := mustLeaseOne(t, s, base, time.Minute, d.ID)
	ok := store.Outcome{Status: store.DeliverySucceeded}
	if err := finishOne(t.Context(), s, l, attemptOf(l, base, 200, ""), ok); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	got := mustDelivery(t, s, d.ID)
	if diff := cmp.Diff(finishedAs(d, 1, ok), got, cmpOpts, ignoreAfterFinish(true)); diff != "" {
		t.Errorf("Delivery after ack (-want +got):\n%s", diff)
	}
	if got.UpdatedAt.Before(d.CreatedAt) {
		t.Errorf("UpdatedAt %v is before CreatedAt %v", got.UpdatedAt, d.CreatedAt)
	}
	wantNextDue(t, s, time.Time{})
	wantNothingDue(t, s, base.Add(365*24*time.Hour))

	// Finishing the same lease again changes nothing but is recorded.
	again := attemptOf(l, base.Add(time.Second), 200, "")
	if err := finishOne(t.Context(), s, l, again, store.Outcome{Status: store.DeliveryDead, Error: "x"}); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("second Finish of a lease: error = %v, want ErrLeaseLost", err)
	}
	if diff := cmp.Diff(finishedAs(d, 1, ok), mustDelivery(t, s, d.ID), cmpOpts, ignoreAfterFinish(true)); diff != "" {
		t.Errorf("Delivery after a second Finish (-want +got):\n%s", diff)
	}
	if n := len(mustAttempts(t, s, d.ID)); n != 2 {
		t.Errorf("%d attempts recorded, want 2", n)
	}
}

func testRetry(t *testing.T, s store.Store) {
	d := acceptOne(t, s, newEvent("orders", "key-1", base))
	l := mustLeaseOne(t, s, base, time.Minute, d.ID)
	retryAt := base.Add(5 * time.Minute)
	retry := store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: retryAt, Error: "HTTP 503"}
	if err := finishOne(t.Context(), s, l, attemptOf(l, base, 503, "HTTP 503"), retry); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	want := finishedAs(d, 1, retry)
	if diff := cmp.Diff(want, mustDelivery(t, s, d.ID), cmpOpts, ignoreAfterFinish(false)); diff != "" {
		t.Errorf("Delivery after retry (-want +got):\n%s", diff)
	}
	wantNextDue(t, s, retryAt)
	wantNothingDue(t, s, retryAt.Add(-time.Millisecond))

	again := mustLeaseOne(t, s, retryAt, time.Minute, d.ID)
	want.LeasedUntil = retryAt.Add(time.Minute)
	if diff := cmp.Diff(want, again.Delivery, cmpOpts, cmpopts.IgnoreFields(store.Delivery{}, "UpdatedAt", "NextAttemptAt")); diff != "" {
		t.Errorf("leased again (-want +got):\n%s", diff)
	}
	if again.Token == l.Token {
		t.Errorf("the second lease kept the first one's token %q", l.Token)
	}
}

func testDead(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := newEvent("orders", "key-1", base)
	d := acceptOne(t, s, e)
	retry := store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: base.Add(time.Minute), Error: "timeout"}
	dead := store.Outcome{Status: store.DeliveryDead, Error: "HTTP 500 (after 2 attempts)"}

	l := mustLeaseOne(t, s, base, time.Minute, d.ID)
	if err := finishOne(ctx, s, l, attemptOf(l, base, 0, "timeout"), retry); err != nil {
		t.Fatalf("Finish (retry): %v", err)
	}
	l = mustLeaseOne(t, s, base.Add(time.Minute), time.Minute, d.ID)
	if err := finishOne(ctx, s, l, attemptOf(l, base.Add(time.Minute), 500, "HTTP 500"), dead); err != nil {
		t.Fatalf("Finish (dead): %v", err)
	}

	if diff := cmp.Diff(finishedAs(d, 2, dead), mustDelivery(t, s, d.ID), cmpOpts, ignoreAfterFinish(true)); diff != "" {
		t.Errorf("Delivery after dead (-want +got):\n%s", diff)
	}
	ds, err := s.Deliveries(ctx, e.ID)
	if err != nil || len(ds) != 1 || ds[0].Status != store.DeliveryDead {
		t.Errorf("Deliveries = %+v, %v; want the dead delivery", ds, err)
	}
	if _, err := s.Event(ctx, e.ID); err != nil {
		t.Errorf("Event of a dead delivery: %v", err)
	}
	if as := mustAttempts(t, s, d.ID); len(as) != 2 {
		t.Errorf("%d attempts kept, want 2", len(as))
	}
	wantNextDue(t, s, time.Time{})
	wantNothingDue(t, s, base.Add(365*24*time.Hour))
}

func testAttempts(t *testing.T, s store.Store) {
	ctx := t.Context()
	d := acceptOne(t, s, newEvent("orders", "key-1", base))

	l := mustLeaseOne(t, s, base, time.Minute, d.ID)
	first := store.Attempt{
		DeliveryID:     d.ID,
		N:              1,
		StartedAt:      base.Add(1234 * time.Millisecond),
		Duration:       10*time.Second + 7*time.Millisecond,
		Method:         "PATCH",
		URL:            "https://api.example/v1/buyers/b1/users/u1?x=1&y=%20",
		RequestHeaders: map[string]string{"Authorization": "Bearer [redacted]", "Content-Type": "application/json", "Idempotency-Key": d.ID},
		Error:          "Patch \"https://api.example\": context deadline exceeded",
	}
	if err := finishOne(ctx, s, l, first, store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: base.Add(time.Minute), Error: first.Error}); err != nil {
		t.Fatalf("Finish 1: %v", err)
	}
	l = mustLeaseOne(t, s, base.Add(time.Minute), time.Minute, d.ID)
	second := store.Attempt{
		DeliveryID:     d.ID,
		N:              2,
		StartedAt:      base.Add(time.Minute + time.Millisecond),
		Duration:       42 * time.Millisecond,
		Method:         "PATCH",
		URL:            "https://api.example/v1/buyers/b1/users/u1",
		RequestHeaders: map[string]string{"Idempotency-Key": d.ID},
		StatusCode:     200,
		ResponseBody:   "{\"ok\":true}\n\u00e9\u4e16 cut mid-rune \xe4\xb8",
	}
	if err := finishOne(ctx, s, l, second, store.Outcome{Status: store.DeliverySucceeded}); err != nil {
		t.Fatalf("Finish 2: %v", err)
	}
	if diff := cmp.Diff([]store.Attempt{first, second}, mustAttempts(t, s, d.ID), cmpOpts); diff != "" {
		t.Errorf("Attempts (-want +got):\n%s", diff)
	}
}

// An attempt's trace is kept exactly (its phases are often under a
// millisecond); an attempt that sent nothing has none.
func testAttemptTrace(t *testing.T, s store.Store) {
	ctx := t.Context()
	d := acceptOne(t, s, newEvent("orders", "key-1", base))
	l := mustLeaseOne(t, s, base, time.Minute, d.ID)
	refused := attemptOf(l, base, 0, "address refused")
	refused.Trace = nil
	if err := finishOne(ctx, s, l, refused, store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: base.Add(time.Minute), Error: refused.Error}); err != nil {
		t.Fatalf("Finish 1: %v", err)
	}
	l = mustLeaseOne(t, s, base.Add(time.Minute), time.Minute, d.ID)
	sent := attemptOf(l, base.Add(time.Minute), 200, "")
	sent.Trace = &store.Trace{DNS: 1234567, Connect: 345678, TLS: 2345678, FirstByte: 98765432, Total: 103000001, Reused: false}
	if err := finishOne(ctx, s, l, sent, store.Outcome{Status: store.DeliverySucceeded}); err != nil {
		t.Fatalf("Finish 2: %v", err)
	}
	as := mustAttempts(t, s, d.ID)
	if len(as) != 2 {
		t.Fatalf("Attempts = %+v, want 2", as)
	}
	if as[0].Trace != nil {
		t.Errorf("trace of an attempt that sent nothing = %+v, want nil", *as[0].Trace)
	}
	if as[1].Trace == nil || *as[1].Trace != *sent.Trace {
		t.Errorf("trace = %+v, want %+v", as[1].Trace, *sent.Trace)
	}

	// A kept-alive connection: no lookup, no connect, no handshake.
	d2 := acceptOne(t, s, newEvent("orders", "key-2", base))
	l = mustLeaseOne(t, s, base, time.Minute, d2.ID)
	reused := attemptOf(l, base, 200, "")
	reused.Trace = &store.Trace{FirstByte: 5000, Total: 7000, Reused: true}
	if err := finishOne(ctx, s, l, reused, store.Outcome{Status: store.DeliverySucceeded}); err != nil {
		t.Fatalf("Finish 3: %v", err)
	}
	if as := mustAttempts(t, s, d2.ID); len(as) != 1 || as[0].Trace == nil || *as[0].Trace != *reused.Trace {
		t.Errorf("Attempts = %+v, want one with trace %+v", as, *reused.Trace)
	}
}

func testWake(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	wake := s.Wake(ctx)
	acceptOne(t, s, newEvent("orders", "key-1", base))
	select {
	case _, ok := <-wake:
		if !ok {
			t.Fatal("Wake channel closed before ctx was done")
		}
	case <-time.After(waitLimit):
		t.Fatal("no wake-up after an Accept with deliveries")
	}
}

func testWakeClosed(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	wake := s.Wake(ctx)
	cancel()
	deadline := time.After(waitLimit)
	for {
		select {
		case _, ok := <-wake:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("Wake channel still open after ctx was done")
		}
	}
}

func testUnknownIDs(t *testing.T, s store.Store) {
	ctx := t.Context()
	// A stored event and delivery make sure "unknown" is not "empty store".
	acceptOne(t, s, newEvent("orders", "key-1", base))
	const evt, dlv = "evt_01J0000000000000000000000", "dlv_01J0000000000000000000000"
	checks := []struct {
		name string
		call func() error
	}{
		{"Event", func() error { _, err := s.Event(ctx, evt); return err }},
		{"Delivery", func() error { _, err := s.Delivery(ctx, dlv); return err }},
		{"Deliveries", func() error { _, err := s.Deliveries(ctx, evt); return err }},
		{"Attempts", func() error { _, err := s.Attempts(ctx, dlv); return err }},
	}
	for _, c := range checks {
		if err := c.call(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s(unknown) error = %v, want ErrNotFound", c.name, err)
		}
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
