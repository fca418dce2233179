package redisstore

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

var base = time.Date(2030, time.March, 14, 15, 9, 26, 535_000_000, time.UTC)

// inIndexes reports which of keys hold id.
func inIndexes(t *testing.T, s *Store, id string, keys ...string) []string {
	t.Helper()
	var in []string
	for _, k := range keys {
		err := s.c.ZScore(t.Context(), k, id).Err()
		if err == nil {
			in = append(in, k)
		}
	}
	return in
}

// TestStatusIndexesFollowDeliveries walks one delivery through every
// status and checks that it sits in its status's index and no other: the
// listings filter on the stored status anyway, so a stale entry would only
// show as wasted work, never in a test of the listings.
func TestStatusIndexesFollowDeliveries(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	statuses := []store.DeliveryStatus{store.DeliveryPending, store.DeliveryRetrying, store.DeliverySucceeded, store.DeliveryDead}
	var indexes []string
	for _, st := range statuses {
		indexes = append(indexes, s.k.statusDeliveries(string(st)))
	}

	e := store.Event{ID: store.NewID("evt", base), Hook: "orders", ReceivedAt: base}
	d := store.Delivery{ID: store.NewID("dlv", base), EventID: e.ID, Hook: "orders", Rule: "r", Action: "crm", NextAttemptAt: base}
	if _, err := s.Accept(ctx, store.Accept{Event: e, Deliveries: []store.Delivery{d}}); err != nil {
		t.Fatal(err)
	}
	want := func(step string, st store.DeliveryStatus) {
		t.Helper()
		got := inIndexes(t, s, d.ID, indexes...)
		if diff := cmp.Diff([]string{s.k.statusDeliveries(string(st))}, got); diff != "" {
			t.Errorf("after %s: status indexes holding the delivery (-want +got):\n%s", step, diff)
		}
	}
	finish := func(at time.Time, o store.Outcome) {
		t.Helper()
		l := leaseOne(t, s, at, "crm")
		finishOne(t, s, l, at, o)
	}
	want("Accept", store.DeliveryPending)
	finish(base, store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: base.Add(time.Hour)})
	want("Finish retrying", store.DeliveryRetrying)
	if _, err := s.RetryDelivery(ctx, d.ID, base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	want("RetryDelivery of a retrying delivery", store.DeliveryPending)
	finish(base.Add(time.Minute), store.Outcome{Status: store.DeliveryDead})
	want("Finish dead", store.DeliveryDead)
	if _, err := s.RetryDelivery(ctx, d.ID, base.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	want("RetryDelivery of a dead delivery", store.DeliveryPending)
	finish(base.Add(2*time.Minute), store.Outcome{Status: store.DeliverySucceeded})
	want("Finish succeeded", store.DeliverySucceeded)

	// The event moves from ignored to accepted on replay; a duplicate
	// Accept indexes nothing.
	ignored := store.Event{ID: store.NewID("evt", base), Hook: "orders", ReceivedAt: base, IdempotencyKey: "k"}
	dup := ignored
	dup.ID = store.NewID("evt", base)
	for _, ev := range []store.Event{ignored, dup} {
		if _, err := s.Accept(ctx, store.Accept{Event: ev, KeyTTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	evIndexes := []string{s.k.events(), s.k.hookEvents("orders"), s.k.statusEvents("ignored"), s.k.statusEvents("accepted")}
	if got := inIndexes(t, s, dup.ID, evIndexes...); len(got) != 0 {
		t.Errorf("a duplicate is in the indexes %v", got)
	}
	if diff := cmp.Diff([]string{evIndexes[0], evIndexes[1], evIndexes[2]}, inIndexes(t, s, ignored.ID, evIndexes...)); diff != "" {
		t.Errorf("indexes holding an ignored event (-want +got):\n%s", diff)
	}
	replay := store.Delivery{ID: store.NewID("dlv", base), Rule: "r", Action: "crm", NextAttemptAt: base}
	if err := s.AddDeliveries(ctx, ignored.ID, []string{"r"}, []store.Delivery{replay}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{evIndexes[0], evIndexes[1], evIndexes[3]}, inIndexes(t, s, ignored.ID, evIndexes...)); diff != "" {
		t.Errorf("indexes holding a replayed event (-want +got):\n%s", diff)
	}
	dlvIndexes := []string{s.k.deliveries(), s.k.hookDeliveries("orders"), s.k.actionDeliveries("crm"), s.k.statusDeliveries("pending")}
	if diff := cmp.Diff(dlvIndexes, inIndexes(t, s, replay.ID, dlvIndexes...)); diff != "" {
		t.Errorf("indexes holding a replayed delivery, its hook the event's (-want +got):\n%s", diff)
	}
}

// TestListWithinScanBudget lists with a filter that the indexes cannot
// narrow (a time window) and a budget of a few entries per call: pages
// come back short, even empty, with a cursor to go on from, and following
// the cursors still yields every match once, in order.
func TestListWithinScanBudget(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	s.scanBudget = 4
	var ids []string
	for i := range 20 {
		at := base.Add(time.Duration(i) * time.Second)
		e := store.Event{ID: store.NewID("evt", at), Hook: "orders", ReceivedAt: at}
		if _, err := s.Accept(ctx, store.Accept{Event: e}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	slices.Reverse(ids)
	// The window holds the events received at 3s to 6s: ids[13:17].
	f := store.EventFilter{Since: base.Add(3 * time.Second), Until: base.Add(7 * time.Second), Limit: 2}
	var got []string
	var pages []int
	for calls := 0; ; calls++ {
		if calls > 20 {
			t.Fatal("paging does not end")
		}
		evs, next, err := s.ListEvents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, len(evs))
		for _, e := range evs {
			got = append(got, e.ID)
		}
		if next == "" {
			break
		}
		if !strings.HasPrefix(next, "evt_") || (f.Cursor != "" && next >= f.Cursor) {
			t.Fatalf("next %q does not move below the cursor %q", next, f.Cursor)
		}
		f.Cursor = next
	}
	if diff := cmp.Diff(ids[13:17], got); diff != "" {
		t.Errorf("events listed (-want +got):\n%s", diff)
	}
	if pages[0] != 0 {
		t.Errorf("first page = %d events, want none: the budget ends before the window", pages[0])
	}
	t.Logf("page sizes: %v", pages)
}

// TestListIndexWithStaleEntries shows that a listing checks each record,
// so an index entry whose record is gone or changed is skipped.
func TestListIndexWithStaleEntries(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	e := store.Event{ID: store.NewID("evt", base), Hook: "orders", ReceivedAt: base}
	if _, err := s.Accept(ctx, store.Accept{Event: e}); err != nil {
		t.Fatal(err)
	}
	gone := store.NewID("evt", base.Add(time.Second))
	if err := s.c.ZAdd(ctx, s.k.hookEvents("orders"), redis.Z{Member: gone}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.c.ZAdd(ctx, s.k.hookEvents("contacts"), redis.Z{Member: e.ID}).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		hook string
		want []string
	}{{"orders", []string{e.ID}}, {"contacts", nil}} {
		evs, next, err := s.ListEvents(ctx, store.EventFilter{Hook: tt.hook})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ev := range evs {
			got = append(got, ev.ID)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" || next != "" {
			t.Errorf("ListEvents(hook %s) (-want +got):\n%s next %q", tt.hook, diff, next)
		}
	}
}
