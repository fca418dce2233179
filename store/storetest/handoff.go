package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hookrelay/hookrelay/store"
)

// RunHandOff runs the tests of a store whose accepts lease deliveries to
// their caller (store.HandOff), as Lease would lease them at once:
//
//   - Within each action's quota, a delivery in no lane whose action is
//     neither paused nor blocked, nor at its cap of live leases (Max), is
//     handed off: it comes back in Accepted.Leases with a fresh token,
//     its lease ending at Now+TTL, and the event and delivery as the store
//     reads them back. No Lease takes it while the lease holds; Renew and
//     Finish take its token; once the lease ends unrenewed, Lease takes it
//     like any other.
//   - Every other delivery is queued as without an offer, and wakes the
//     relays; an accept whose every delivery was handed off wakes none.
//   - A breaker probe is never handed off, nor is anything of a duplicate.
//
// open must return a new, empty store for the test it is given and
// arrange for it to be closed.
func RunHandOff(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"HandOff", testHandOff},
		{"HandedOffLeaseEnds", testHandedOffLeaseEnds},
		{"HandOffRefused", testHandOffRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, open(t))
		})
	}
}

// offered is an accept on hook with key, received at at, with one
// delivery per action given, due at once.
func offered(hook, key string, at time.Time, actions ...string) store.Accept {
	e := newEvent(hook, key, at)
	a := store.Accept{Event: e, KeyTTL: 24 * time.Hour}
	for i, action := range actions {
		d := newDelivery(e, "rule", action, at)
		d.ID = store.NewDeliveryID(e.ID, at.Add(time.Duration(i)*time.Millisecond))
		a.Deliveries = append(a.Deliveries, d)
	}
	if len(actions) > 0 {
		a.Event.MatchedRules = []string{"rule"}
	}
	return a
}

// inShard moves a's event into the shard that its deliveries' lanes and
// its key call for (store.EventShard), as the gateway makes it, and names
// its deliveries after it, in their order.
func inShard(a *store.Accept) {
	a.Event.ID = store.InShard(a.Event.ID, store.EventShard(a.Event.Hook, a.Event.IdempotencyKey, a.Deliveries))
	for i := range a.Deliveries {
		a.Deliveries[i].EventID = a.Event.ID
		a.Deliveries[i].ID = store.NewDeliveryID(a.Event.ID, a.Event.ReceivedAt.Add(time.Duration(i)*time.Millisecond))
	}
}

func testHandOff(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := base.Add(123456 * time.Nanosecond) // kept to the millisecond
	a := offered("orders", "k1", at, "crm", "crm", "erp", "later", "other")
	a.Deliveries[3].Lane = "order-1"
	inShard(&a)
	ttl := time.Minute
	a.HandOff = &store.HandOff{Now: at, TTL: ttl, Actions: []store.ActionQuota{
		{Action: "crm", N: 1, Max: 8}, {Action: "erp", N: 2}, {Action: "later", N: 1},
	}}
	wake := s.Wake(ctx)
	got := mustAccept(t, s, a, false)
	if got.EventID != a.Event.ID {
		t.Fatalf("Accept = %+v, want event %s", got, a.Event.ID)
	}
	if want := []string{a.Deliveries[0].ID, a.Deliveries[2].ID}; !cmp.Equal(leasedIDs(got.Leases), want) {
		t.Fatalf("handed off %v, want %v (crm within its quota of 1, erp; not the one in a lane, not one without a quota)",
			leasedIDs(got.Leases), want)
	}
	ev, err := s.Event(ctx, a.Event.ID)
	if err != nil {
		t.Fatal(err)
	}
	until := at.Add(ttl).Truncate(time.Millisecond)
	for _, l := range got.Leases {
		d, err := s.Delivery(ctx, l.Delivery.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(d, l.Delivery, cmpOpts); diff != "" {
			t.Errorf("handed-off delivery differs from the stored one (-stored +handed):\n%s", diff)
		}
		if diff := cmp.Diff(ev, l.Event, cmpOpts, cmpopts.IgnoreFields(store.Event{}, "Trace")); diff != "" {
			t.Errorf("handed-off event differs from the stored one (-stored +handed):\n%s", diff)
		}
		if l.Token == "" || !l.Until.Equal(until) || !d.LeasedUntil.Equal(until) || l.Err != nil {
			t.Errorf("lease %s: token %q, until %v (stored %v), err %v; want a token, until %v",
				l.Delivery.ID, l.Token, l.Until, d.LeasedUntil, l.Err, until)
		}
	}
	if got.Leases[0].Token == got.Leases[1].Token {
		t.Errorf("two leases share the token %q", got.Leases[0].Token)
	}

	// The others are queued and wake the relays; the handed-off ones are held.
	select {
	case <-wake:
	case <-time.After(waitLimit):
		t.Fatal("an accept that queued deliveries woke nothing")
	}
	leased := leasedIDs(mustLease(t, s, at, 10, ttl))
	if want := []string{a.Deliveries[1].ID, a.Deliveries[3].ID, a.Deliveries[4].ID}; !cmp.Equal(leased, want) {
		t.Fatalf("Lease took %v, want the deliveries not handed off %v", leased, want)
	}

	// A handed-off lease is renewed, and finished, like any other.
	if ends, err := s.Renew(ctx, at.Add(time.Second), ttl, got.Leases[1:]); err != nil || len(ends) != 1 || ends[0].IsZero() {
		t.Fatalf("Renew = %v, %v; want the lease renewed", ends, err)
	}
	f := store.Finish{Lease: got.Leases[0],
		Attempt: store.Attempt{DeliveryID: got.Leases[0].Delivery.ID, N: 1, StartedAt: at, StatusCode: 200, Outcome: store.DeliverySucceeded},
		Outcome: store.Outcome{Status: store.DeliverySucceeded, Reason: store.ReasonSucceeded}}
	errs, err := s.Finish(ctx, []store.Finish{f})
	if err != nil || len(errs) != 1 || errs[0] != nil {
		t.Fatalf("Finish = %v, %v", errs, err)
	}
	if d, err := s.Delivery(ctx, f.Lease.Delivery.ID); err != nil || d.Status != store.DeliverySucceeded || d.Attempts != 1 {
		t.Fatalf("finished delivery = %+v, %v", d, err)
	}
}

// testHandedOffLeaseEnds: a handed-off delivery whose lease ends
// unrenewed (its worker died) is leased again, the same delivery and
// event as handed off, under a new token.
func testHandedOffLeaseEnds(t *testing.T, s store.Store) {
	ttl := 30 * time.Second
	a := offered("orders", "k1", base, "crm")
	a.HandOff = &store.HandOff{Now: base, TTL: ttl, Actions: []store.ActionQuota{{Action: "crm", N: 1}}}
	got := mustAccept(t, s, a, false)
	if len(got.Leases) != 1 {
		t.Fatalf("handed off %d, want 1", len(got.Leases))
	}
	h := got.Leases[0]
	if ls := mustLease(t, s, h.Until.Add(-time.Millisecond), 10, ttl); len(ls) != 0 {
		t.Fatalf("Lease took %v while the hand-off's lease held", leasedIDs(ls))
	}
	ls := mustLease(t, s, h.Until, 10, ttl)
	if len(ls) != 1 {
		t.Fatalf("Lease at the hand-off's end took %v, want %s", leasedIDs(ls), h.Delivery.ID)
	}
	l := ls[0]
	if l.Token == "" || l.Token == h.Token {
		t.Errorf("leased again with token %q, handed off with %q: want a new one", l.Token, h.Token)
	}
	want := h.Delivery
	want.LeasedUntil = l.Until
	if diff := cmp.Diff(want, l.Delivery, cmpOpts); diff != "" {
		t.Errorf("delivery leased again differs from the one handed off (-handed +leased):\n%s", diff)
	}
	if diff := cmp.Diff(h.Event, l.Event, cmpOpts); diff != "" {
		t.Errorf("event leased again differs from the one handed off (-handed +leased):\n%s", diff)
	}
}

// testHandOffRefused: an offer leases nothing where Lease would not lease
// at once: a paused action, a blocked one (before its block ends, and as
// a breaker probe after), one at its cap of live leases, a quota of 0, a
// duplicate. Each delivery is queued instead, and an accept that handed
// everything off wakes no relay.
func testHandOffRefused(t *testing.T, s store.Store) {
	ctx := t.Context()
	offer := func(n, max int) *store.HandOff {
		return &store.HandOff{Now: base, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: n, Max: max}}}
	}
	accept := func(key string, o *store.HandOff) store.Accepted {
		t.Helper()
		a := offered("orders", key, base, "crm")
		a.HandOff = o
		return mustAccept(t, s, a, false)
	}
	put := func(st store.ActionState) {
		t.Helper()
		cur, err := s.ActionStates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cur {
			if c.Action == st.Action {
				st.Version = c.Version
			}
		}
		if _, err := s.PutActionState(ctx, st); err != nil {
			t.Fatal(err)
		}
	}

	if got := accept("k0", offer(0, 0)); len(got.Leases) != 0 {
		t.Errorf("a quota of 0 handed off %d", len(got.Leases))
	}
	put(store.ActionState{Action: "crm", Paused: true})
	if got := accept("k1", offer(1, 0)); len(got.Leases) != 0 {
		t.Errorf("a paused action handed off %d", len(got.Leases))
	}
	put(store.ActionState{Action: "crm", Breaker: store.BreakerOpen, BlockedUntil: base.Add(time.Minute)})
	if got := accept("k2", offer(1, 0)); len(got.Leases) != 0 {
		t.Errorf("a blocked action handed off %d", len(got.Leases))
	}
	put(store.ActionState{Action: "crm", Breaker: store.BreakerOpen, BlockedUntil: base.Add(-time.Second)})
	if got := accept("k3", offer(1, 0)); len(got.Leases) != 0 {
		t.Errorf("an action due for a breaker probe handed one off: a probe is the lease's to take")
	}
	put(store.ActionState{Action: "crm", Breaker: store.BreakerClosed})

	// At its cap: one live lease, Max 1. Then Max 2 lets one more through.
	held := accept("k4", offer(1, 0))
	if len(held.Leases) != 1 {
		t.Fatalf("an open action handed off %d, want 1", len(held.Leases))
	}
	if got := accept("k5", offer(1, 1)); len(got.Leases) != 0 {
		t.Errorf("an action at its cap of live leases handed off %d", len(got.Leases))
	}
	wake := s.Wake(ctx)
	// The wake-ups of the accepts before may still be on their way: a
	// Redis Cluster passes them from node to node after the accept has
	// answered.
	for quiet := false; !quiet; {
		select {
		case <-wake:
		case <-time.After(100 * time.Millisecond):
			quiet = true
		}
	}
	if got := accept("k6", offer(1, 2)); len(got.Leases) != 1 {
		t.Errorf("an action below its cap handed off %d, want 1", len(got.Leases))
	}
	select {
	case <-wake:
		t.Error("an accept whose every delivery was handed off woke the relays")
	case <-time.After(200 * time.Millisecond):
	}
	dup := offered("orders", "k6", base.Add(time.Second), "crm")
	dup.HandOff = offer(1, 0)
	if got := mustAccept(t, s, dup, true); len(got.Leases) != 0 {
		t.Errorf("duplicate: %+v; want no leases", got)
	}

	// Every delivery not handed off is queued: k0, k1, k2, k3 and k5.
	ls := mustLease(t, s, base, 10, time.Minute, "crm")
	if len(ls) != 5 {
		t.Fatalf("Lease took %v, want the 5 deliveries not handed off", leasedIDs(ls))
	}
	for _, l := range ls {
		if l.Delivery.ID == held.Leases[0].Delivery.ID {
			t.Errorf("Lease took %s, which is held by its hand-off", l.Delivery.ID)
		}
	}
}
