package sqlitestore

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/store"
)

// TestHandOff accepts an event whose deliveries are offered to the caller
// (store.HandOff): within the quota, and outside any lane, they come back
// leased, exactly as Lease would have returned them, held (no Lease takes
// them) and finished with their token; the others are queued as without
// an offer.
func TestHandOff(t *testing.T) {
	ctx := t.Context()
	s := mustOpen(t, filepath.Join(t.TempDir(), "hookrelay.db"))
	defer mustClose(t, s)
	at := base.Add(123456 * time.Nanosecond) // kept to the millisecond
	a := testEvent("orders", "k1", 1, at, "crm", "crm", "erp", "lanes", "other")
	a.Deliveries[3].Lane = "order-1"
	ttl := time.Minute
	a.HandOff = &store.HandOff{Now: at, TTL: ttl, Actions: []store.ActionQuota{
		{Action: "crm", N: 1, Max: 8}, {Action: "erp", N: 2}, {Action: "lanes", N: 1},
	}}
	wake := s.Wake(ctx)
	got := mustAccept(t, s, a)
	if got.EventID != a.Event.ID || got.Duplicate {
		t.Fatalf("Accept = %+v", got)
	}
	var handed []string
	for _, l := range got.Leases {
		handed = append(handed, l.Delivery.ID)
	}
	if want := []string{a.Deliveries[0].ID, a.Deliveries[2].ID}; !cmp.Equal(handed, want) {
		t.Fatalf("handed off %v, want %v (crm within its quota of 1, erp; not the one in a lane, not one without a quota)", handed, want)
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
		if diff := cmp.Diff(d, l.Delivery, cmpTimes); diff != "" {
			t.Errorf("handed-off delivery differs from the stored one (-stored +handed):\n%s", diff)
		}
		if diff := cmp.Diff(ev, l.Event, cmpTimes); diff != "" {
			t.Errorf("handed-off event differs from the stored one (-stored +handed):\n%s", diff)
		}
		if l.Token == "" || !l.Until.Equal(until) || !d.LeasedUntil.Equal(until) || l.Err != nil {
			t.Errorf("lease %s: token %q, until %v (stored %v), err %v; want a token, until %v", l.Delivery.ID, l.Token, l.Until, d.LeasedUntil, l.Err, until)
		}
	}
	if got.Leases[0].Token == got.Leases[1].Token {
		t.Errorf("two leases share the token %q", got.Leases[0].Token)
	}

	// The others are queued and wake the relay; the handed-off ones are held.
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("an accept that queued deliveries woke nothing")
	}
	b, err := s.Lease(ctx, store.LeaseRequest{Now: at, TTL: ttl, Actions: []store.ActionQuota{
		{Action: "crm", N: 10}, {Action: "erp", N: 10}, {Action: "lanes", N: 10}, {Action: "other", N: 10},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var leased []string
	for _, l := range b.Leases {
		leased = append(leased, l.Delivery.ID)
	}
	want := []string{a.Deliveries[1].ID, a.Deliveries[3].ID, a.Deliveries[4].ID}
	if !cmp.Equal(leased, want) {
		t.Fatalf("Lease took %v, want the deliveries not handed off %v", leased, want)
	}

	// A handed-off lease is finished, and renewed, like any other.
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

// TestHandOffRefused: an offer leases nothing where Lease would not lease
// at once: a paused action, a blocked one (before its block ends, and as
// a breaker probe after), one at its cap of live leases, a quota of 0, a
// duplicate. Each delivery is queued instead, and an accept that handed
// everything off wakes no relay.
func TestHandOffRefused(t *testing.T) {
	ctx := t.Context()
	s := mustOpen(t, filepath.Join(t.TempDir(), "hookrelay.db"))
	defer mustClose(t, s)
	offer := func(n, max int) *store.HandOff {
		return &store.HandOff{Now: base, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: n, Max: max}}}
	}
	accept := func(key string, n int, o *store.HandOff) store.Accepted {
		a := testEvent("orders", key, n, base, "crm")
		a.HandOff = o
		return mustAccept(t, s, a)
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

	if got := accept("k0", 0, offer(0, 0)); len(got.Leases) != 0 {
		t.Errorf("a quota of 0 handed off %d", len(got.Leases))
	}
	put(store.ActionState{Action: "crm", Paused: true})
	if got := accept("k1", 1, offer(1, 0)); len(got.Leases) != 0 {
		t.Errorf("a paused action handed off %d", len(got.Leases))
	}
	put(store.ActionState{Action: "crm", Breaker: store.BreakerOpen, BlockedUntil: base.Add(time.Minute)})
	if got := accept("k2", 2, offer(1, 0)); len(got.Leases) != 0 {
		t.Errorf("a blocked action handed off %d", len(got.Leases))
	}
	put(store.ActionState{Action: "crm", Breaker: store.BreakerOpen, BlockedUntil: base.Add(-time.Second)})
	if got := accept("k3", 3, offer(1, 0)); len(got.Leases) != 0 {
		t.Errorf("an action due for a breaker probe handed one off: a probe is the lease's to take")
	}
	put(store.ActionState{Action: "crm", Breaker: store.BreakerClosed})

	// At its cap: one live lease, Max 1. Then Max 2 lets one more through.
	held := accept("k4", 4, offer(1, 0))
	if len(held.Leases) != 1 {
		t.Fatalf("an open action handed off %d, want 1", len(held.Leases))
	}
	if got := accept("k5", 5, offer(1, 1)); len(got.Leases) != 0 {
		t.Errorf("an action at its cap of live leases handed off %d", len(got.Leases))
	}
	wake := s.Wake(ctx)
	if got := accept("k6", 6, offer(1, 2)); len(got.Leases) != 1 {
		t.Errorf("an action below its cap handed off %d, want 1", len(got.Leases))
	}
	select {
	case <-wake:
		t.Error("an accept whose every delivery was handed off woke the relay")
	case <-time.After(200 * time.Millisecond):
	}
	dup := testEvent("orders", "k6", 7, base, "crm")
	dup.HandOff = offer(1, 0)
	if got := mustAccept(t, s, dup); !got.Duplicate || len(got.Leases) != 0 {
		t.Errorf("duplicate: %+v; want a duplicate with no leases", got)
	}

	// Every delivery not handed off is queued: k0, k1, k2, k3 and k5.
	b, err := s.Lease(ctx, store.LeaseRequest{Now: base, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Leases) != 5 {
		t.Fatalf("Lease took %d, want the 5 deliveries not handed off", len(b.Leases))
	}
	for _, l := range b.Leases {
		if l.Delivery.ID == held.Leases[0].Delivery.ID {
			t.Errorf("Lease took %s, which is held by its hand-off", l.Delivery.ID)
		}
	}
}
