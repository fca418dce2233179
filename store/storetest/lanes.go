package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/store"
)

// Ordering lanes (store.Delivery.Lane): of the deliveries of one action and
// lane that are not final, one at a time is queued, in the order they were
// accepted; a retrying one holds its own lane only.

var laneTests = []struct {
	name string
	run  func(t *testing.T, s store.Store)
}{
	{"LanesLeaseOneAtATimeInOrder", testLanesInOrder},
	{"LanesRetryingHoldsOnlyItsLane", testLanesRetryHolds},
	{"LanesMixedInOneEvent", testLanesMixedInOneEvent},
	{"LanesKeepAcceptOrderWithinAMillisecond", testLanesAcceptOrder},
}

// acceptInLane accepts an event on hook "orders" received at at with one
// delivery of action in lane, its id in the lane's shard as the gateway
// makes it.
func acceptInLane(t *testing.T, s store.Store, key, action, lane string, at time.Time) store.Delivery {
	t.Helper()
	return acceptInLaneAs(t, s, key, action, lane, at, func(e store.Event) string { return deliveryID(e, at) })
}

// acceptInLaneAs is acceptInLane with the delivery's id made by id from
// its event.
func acceptInLaneAs(t *testing.T, s store.Store, key, action, lane string, at time.Time, id func(store.Event) string) store.Delivery {
	t.Helper()
	e := newEvent("orders", key, at)
	d := newDelivery(e, "rule", action, at)
	d.Lane = lane
	e.ID = store.InShard(e.ID, store.EventShard(e.Hook, e.IdempotencyKey, []store.Delivery{d}))
	d.ID, d.EventID = id(e), e.ID
	e.MatchedRules = []string{"rule"}
	mustAccept(t, s, store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}, false)
	return d
}

// testLanesMixedInOneEvent accepts events whose deliveries are some in a
// lane and some in none, in either order, with and without the other
// optional fields, and reads each delivery back as it was given.
func testLanesMixedInOneEvent(t *testing.T, s store.Store) {
	at := base
	actions := []string{"crm", "erp", "other"}
	var want []store.Delivery
	for i, lanes := range [][]string{{"", "order-1"}, {"order-2", ""}, {"", "order-3", ""}, {"order-4", "", "order-5"}} {
		e := newEvent("orders", fmt.Sprintf("mixed-%d", i), at)
		ds := make([]store.Delivery, len(lanes))
		for j, lane := range lanes {
			ds[j] = newDelivery(e, fmt.Sprintf("rule-%d", j), actions[j], at.Add(time.Duration(j)*time.Second))
			ds[j].Lane = lane
			e.MatchedRules = append(e.MatchedRules, ds[j].Rule)
		}
		e.ID = store.InShard(e.ID, store.EventShard(e.Hook, e.IdempotencyKey, ds))
		for j := range ds {
			ds[j].ID, ds[j].EventID = deliveryID(e, at), e.ID
		}
		mustAccept(t, s, store.Accept{Event: e, Deliveries: ds, KeyTTL: time.Hour}, false)
		want = append(want, ds...)
		at = at.Add(time.Millisecond)
	}
	for _, d := range want {
		if diff := cmp.Diff(d, mustDelivery(t, s, d.ID), cmpOpts); diff != "" {
			t.Errorf("Delivery(%s) in lane %q (-want +got):\n%s", d.ID, d.Lane, diff)
		}
	}
	// Every delivery is the first of its lane, or in none: all are due.
	ls := mustLease(t, s, at.Add(time.Minute), 100, time.Minute, actions...)
	wantIDs := make([]string, len(want))
	for i, d := range want {
		wantIDs[i] = d.ID
	}
	if diff := cmp.Diff(cmpSorted(wantIDs), sortedIDs(ls)); diff != "" {
		t.Errorf("lease (-want +got):\n%s", diff)
	}
}

func laneStats(t *testing.T, s store.Store, now time.Time, action string) store.QueueStats {
	t.Helper()
	stats, err := s.QueueStats(t.Context(), now)
	if err != nil {
		t.Fatalf("QueueStats: %v", err)
	}
	for _, qs := range stats {
		if qs.Action == action {
			return qs
		}
	}
	return store.QueueStats{Action: action}
}

// testLanesAcceptOrder accepts deliveries of one lane one after the other
// within one millisecond, each with an id that sorts before the one of
// the delivery accepted before it (ids made in one millisecond sort by
// their random part): they go in the order they were accepted.
func testLanesAcceptOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 6
	var (
		ids  []string
		want []string
	)
	for i := range n {
		d := acceptInLaneAs(t, s, fmt.Sprintf("k%d", i), "crm", "order-1", base, func(e store.Event) string {
			if ids == nil {
				// Ids of the lane's shard made at base, greatest first.
				for range n {
					ids = append(ids, deliveryID(e, base))
				}
				slices.Sort(ids)
				slices.Reverse(ids)
			}
			return ids[len(want)]
		})
		want = append(want, d.ID)
	}
	now := base.Add(time.Second)
	var got []string
	for range n {
		ls := mustLease(t, s, now, 10, time.Minute)
		if len(ls) != 1 {
			t.Fatalf("Lease = %v, want one delivery of the lane at a time", leasedIDs(ls))
		}
		got = append(got, ls[0].Delivery.ID)
		if err := finishOne(ctx, s, ls[0], attemptOf(ls[0], now, 200, ""), store.Outcome{Status: store.DeliverySucceeded}); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lane order (-accepted +leased):\n%s", diff)
	}
}

func testLanesInOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	o1 := []store.Delivery{
		acceptInLane(t, s, "k1", "crm", "order-1", base),
		acceptInLane(t, s, "k2", "crm", "order-1", base.Add(time.Millisecond)),
		acceptInLane(t, s, "k3", "crm", "order-1", base.Add(2*time.Millisecond)),
	}
	o2 := acceptInLane(t, s, "k4", "crm", "order-2", base.Add(3*time.Millisecond))
	free := acceptFor(t, s, "k5", "crm", base.Add(4*time.Millisecond))[0]
	other := acceptInLane(t, s, "k6", "erp", "order-1", base.Add(5*time.Millisecond))

	if got := mustDelivery(t, s, o1[1].ID); got.Lane != "order-1" {
		t.Errorf("Delivery(%s).Lane = %q, want order-1", o1[1].ID, got.Lane)
	}
	qs := laneStats(t, s, base.Add(time.Second), "crm")
	if qs.Lanes != 2 || qs.Waiting != 2 || qs.BlockedLanes != 0 || !cmp.Equal(qs.OldestLaneHead, base, cmpOpts) || qs.Due != 3 {
		t.Errorf("QueueStats(crm) = %+v, want 2 lanes, 2 waiting, none blocked, the oldest head at %v, 3 due", qs, base)
	}

	// The first of each lane, the delivery in no lane, and the other
	// action's lane of the same name: the rest of order-1 waits.
	now := base.Add(time.Second)
	ls := mustLease(t, s, now, 10, time.Minute)
	want := cmpSorted([]string{o1[0].ID, o2.ID, free.ID, other.ID})
	if diff := cmp.Diff(want, sortedIDs(ls)); diff != "" {
		t.Fatalf("first lease (-want +got):\n%s", diff)
	}
	wantNothingDue(t, s, now)

	wakeCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	wake := s.Wake(wakeCtx)
	// Each final outcome lets the next of its lane go, in order, whether
	// it succeeded or died, and wakes the relays.
	i := slices.IndexFunc(ls, func(l store.Lease) bool { return l.Delivery.ID == o1[0].ID })
	head := ls[i]
	for n, outcome := range []store.DeliveryStatus{store.DeliverySucceeded, store.DeliveryDead} {
		if err := finishOne(ctx, s, head, attemptOf(head, now, 200, ""), store.Outcome{Status: outcome}); err != nil {
			t.Fatalf("Finish %s as %s: %v", head.Delivery.ID, outcome, err)
		}
		wantWake(t, wake, "the head of a lane finished")
		now = now.Add(time.Second)
		head = mustLeaseOne(t, s, now, time.Minute, o1[n+1].ID)
	}
	if err := finishOne(ctx, s, head, attemptOf(head, now, 200, ""), store.Outcome{Status: store.DeliverySucceeded}); err != nil {
		t.Fatal(err)
	}
	wantNothingDue(t, s, now)
	if qs := laneStats(t, s, now, "crm"); qs.Lanes != 1 || qs.Waiting != 0 {
		t.Errorf("QueueStats(crm) once order-1 is done = %+v, want order-2's lane alone, nothing waiting", qs)
	}
}

func testLanesRetryHolds(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := acceptInLane(t, s, "k1", "crm", "order-1", base)
	second := acceptInLane(t, s, "k2", "crm", "order-1", base.Add(time.Millisecond))
	otherLane := acceptInLane(t, s, "k3", "crm", "order-2", base.Add(2*time.Millisecond))
	now := base.Add(time.Second)
	ls := mustLease(t, s, now, 10, time.Minute, "crm")
	if diff := cmp.Diff(cmpSorted([]string{first.ID, otherLane.ID}), sortedIDs(ls)); diff != "" {
		t.Fatalf("first lease (-want +got):\n%s", diff)
	}
	retryAt := now.Add(time.Minute)
	i := slices.IndexFunc(ls, func(l store.Lease) bool { return l.Delivery.ID == first.ID })
	if err := finishOne(ctx, s, ls[i], attemptOf(ls[i], now, 503, ""), store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: retryAt, Error: "HTTP 503"}); err != nil {
		t.Fatal(err)
	}
	// Its lane is blocked until it is retried; the other lane is not.
	qs := laneStats(t, s, now, "crm")
	if qs.BlockedLanes != 1 || qs.Waiting != 1 || !cmp.Equal(qs.OldestLaneHead, base, cmpOpts) {
		t.Errorf("QueueStats(crm) while order-1's head retries = %+v, want 1 blocked lane, 1 waiting, the oldest head at %v", qs, base)
	}
	j := 1 - i
	if err := finishOne(ctx, s, ls[j], attemptOf(ls[j], now, 200, ""), store.Outcome{Status: store.DeliverySucceeded}); err != nil {
		t.Fatal(err)
	}
	wantNothingDue(t, s, retryAt.Add(-time.Millisecond))
	retried := mustLeaseOne(t, s, retryAt, time.Minute, first.ID)
	if err := finishOne(ctx, s, retried, attemptOf(retried, retryAt, 200, ""), store.Outcome{Status: store.DeliverySucceeded}); err != nil {
		t.Fatal(err)
	}
	mustLeaseOne(t, s, retryAt, time.Minute, second.ID)
}

// testRetryInLane: a dead delivery of a lane retried by hand goes back to
// its place in the lane and waits while another delivery of the lane is
// active; alone in its lane, it is queued at once.
func testRetryInLane(t *testing.T, s adminStore) {
	ctx := t.Context()
	first := acceptInLane(t, s, "k1", "crm", "order-1", base)
	second := acceptInLane(t, s, "k2", "crm", "order-1", base.Add(time.Millisecond))
	now := base.Add(time.Second)
	l := mustLeaseOne(t, s, now, time.Minute, first.ID)
	if err := finishOne(ctx, s, l, attemptOf(l, now, 410, ""), store.Outcome{Status: store.DeliveryDead, Error: "HTTP 410"}); err != nil {
		t.Fatal(err)
	}
	active := mustLeaseOne(t, s, now, time.Minute, second.ID)
	if _, err := s.RetryDelivery(ctx, first.ID, now); err != nil {
		t.Fatalf("RetryDelivery: %v", err)
	}
	if got := mustDelivery(t, s, first.ID); got.Status != store.DeliveryPending {
		t.Errorf("retried delivery is %s, want pending", got.Status)
	}
	wantNothingDue(t, s, now)
	if err := finishOne(ctx, s, active, attemptOf(active, now, 200, ""), store.Outcome{Status: store.DeliverySucceeded}); err != nil {
		t.Fatal(err)
	}
	l = mustLeaseOne(t, s, now, time.Minute, first.ID)
	if err := finishOne(ctx, s, l, attemptOf(l, now, 410, ""), store.Outcome{Status: store.DeliveryDead, Error: "HTTP 410"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RetryDelivery(ctx, first.ID, now); err != nil {
		t.Fatalf("RetryDelivery: %v", err)
	}
	mustLeaseOne(t, s, now, time.Minute, first.ID)
}
