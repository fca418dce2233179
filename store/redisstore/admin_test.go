package redisstore

import (
	"slices"
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

// followPages lists page after page, each from the previous page's next,
// until next is empty, and returns the ids listed and each page's size.
func followPages(t *testing.T, list func(cursor string) (ids []string, next string, err error)) ([]string, []int) {
	t.Helper()
	var all []string
	var sizes []int
	cursor := ""
	for calls := 0; ; calls++ {
		if calls > 100 {
			t.Fatal("paging does not end")
		}
		ids, next, err := list(cursor)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ids...)
		sizes = append(sizes, len(ids))
		if next == "" {
			return all, sizes
		}
		if cursor != "" && next >= cursor {
			t.Fatalf("next %q does not move below the cursor %q", next, cursor)
		}
		cursor = next
	}
}

// listedDeliveries lists deliveries with f, following every cursor.
func listedDeliveries(t *testing.T, s *Store, f store.DeliveryFilter) ([]string, []int) {
	t.Helper()
	return followPages(t, func(cursor string) ([]string, string, error) {
		f.Cursor = cursor
		ds, next, err := s.ListDeliveries(t.Context(), f)
		ids := make([]string, len(ds))
		for i, d := range ds {
			ids[i] = d.ID
		}
		return ids, next, err
	})
}

// listedEvents lists events with f, following every cursor.
func listedEvents(t *testing.T, s *Store, f store.EventFilter) []string {
	t.Helper()
	ids, _ := followPages(t, func(cursor string) ([]string, string, error) {
		f.Cursor = cursor
		evs, next, err := s.ListEvents(t.Context(), f)
		ids := make([]string, len(evs))
		for i, e := range evs {
			ids[i] = e.ID
		}
		return ids, next, err
	})
	return ids
}

// TestIndexesFollowRecords walks one delivery through every status and an
// event from ignored to accepted, and checks which indexes hold each: a
// delivery sits in its hook and action's index from the start and in the
// dead index only while dead; an event sits in its hook's index for its
// status, and a duplicate nowhere.
func TestIndexesFollowRecords(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	dlvIndexes := []string{s.k.deliveryIndex("orders", "crm"), s.k.deadIndex()}

	e := store.Event{ID: store.NewID("evt", base), Hook: "orders", ReceivedAt: base}
	d := store.Delivery{ID: store.NewID("dlv", base), EventID: e.ID, Hook: "orders", Rule: "r", Action: "crm", NextAttemptAt: base}
	if _, err := s.Accept(ctx, store.Accept{Event: e, Deliveries: []store.Delivery{d}}); err != nil {
		t.Fatal(err)
	}
	want := func(step string, dead bool) {
		t.Helper()
		want := dlvIndexes[:1]
		if dead {
			want = dlvIndexes
		}
		if diff := cmp.Diff(want, inIndexes(t, s, d.ID, dlvIndexes...)); diff != "" {
			t.Errorf("after %s: indexes holding the delivery (-want +got):\n%s", step, diff)
		}
	}
	finish := func(at time.Time, o store.Outcome) {
		t.Helper()
		l := leaseOne(t, s, at, "crm")
		finishOne(t, s, l, at, o)
	}
	want("Accept", false)
	finish(base, store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: base.Add(time.Hour)})
	want("Finish retrying", false)
	if _, err := s.RetryDelivery(ctx, d.ID, base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	want("RetryDelivery of a retrying delivery", false)
	finish(base.Add(time.Minute), store.Outcome{Status: store.DeliveryDead})
	want("Finish dead", true)
	if _, err := s.RetryDelivery(ctx, d.ID, base.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	want("RetryDelivery of a dead delivery", false)
	finish(base.Add(2*time.Minute), store.Outcome{Status: store.DeliverySucceeded})
	want("Finish succeeded", false)

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
	evIndexes := []string{s.k.eventIndex("orders", store.EventIgnored), s.k.eventIndex("orders", store.EventAccepted)}
	if got := inIndexes(t, s, dup.ID, evIndexes...); len(got) != 0 {
		t.Errorf("a duplicate is in the indexes %v", got)
	}
	if diff := cmp.Diff(evIndexes[:1], inIndexes(t, s, ignored.ID, evIndexes...)); diff != "" {
		t.Errorf("indexes holding an ignored event (-want +got):\n%s", diff)
	}
	replay := store.Delivery{ID: store.NewID("dlv", base), Rule: "r", Action: "erp", NextAttemptAt: base}
	if err := s.AddDeliveries(ctx, ignored.ID, []string{"r"}, []store.Delivery{replay}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(evIndexes[1:], inIndexes(t, s, ignored.ID, evIndexes...)); diff != "" {
		t.Errorf("indexes holding a replayed event (-want +got):\n%s", diff)
	}
	if got := inIndexes(t, s, replay.ID, s.k.deliveryIndex("orders", "erp")); len(got) != 1 {
		t.Errorf("a replayed delivery, its hook the event's, is not in its index")
	}
	names, err := s.c.SMembers(ctx, s.k.indexes()).Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"d:orders|crm", "d:orders|erp", "e:a:orders", "e:i:orders"}, names); diff != "" {
		t.Errorf("listing indexes named (-want +got):\n%s", diff)
	}
}

// TestListWithinScanBudget lists with a filter that the indexes cannot
// narrow (a delivery status) and a budget of a few entries per call: pages
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
		d := store.Delivery{ID: store.NewID("dlv", at), Rule: "r", Action: "crm", NextAttemptAt: at}
		if _, err := s.Accept(ctx, store.Accept{Event: e, Deliveries: []store.Delivery{d}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	// The four oldest succeed.
	for range 4 {
		l := leaseOne(t, s, base.Add(time.Minute), "crm")
		finishOne(t, s, l, base.Add(time.Minute), store.Outcome{Status: store.DeliverySucceeded})
	}
	slices.Reverse(ids)
	got, pages := listedDeliveries(t, s, store.DeliveryFilter{Status: store.DeliverySucceeded, Limit: 2})
	if diff := cmp.Diff(ids[16:], got); diff != "" {
		t.Errorf("deliveries listed (-want +got):\n%s", diff)
	}
	if pages[0] != 0 {
		t.Errorf("first page = %d deliveries, want none: the budget ends before the first match", pages[0])
	}
	t.Logf("page sizes: %v", pages)
}

// TestListIndexWithStaleEntries shows that a listing skips an index entry
// whose record is gone.
func TestListIndexWithStaleEntries(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	e := store.Event{ID: store.NewID("evt", base), Hook: "orders", ReceivedAt: base}
	if _, err := s.Accept(ctx, store.Accept{Event: e}); err != nil {
		t.Fatal(err)
	}
	gone := store.NewID("evt", base.Add(time.Second))
	if err := s.c.ZAdd(ctx, s.k.eventIndex("orders", store.EventIgnored), redis.Z{Member: gone}).Err(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []store.EventFilter{{Hook: "orders"}, {}, {Limit: 1}} {
		evs, next, err := s.ListEvents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ev := range evs {
			got = append(got, ev.ID)
		}
		if diff := cmp.Diff([]string{e.ID}, got); diff != "" || next != "" {
			t.Errorf("ListEvents(%+v) (-want +got):\n%s next %q", f, diff, next)
		}
	}
}

// TestListPendingPastBudget: pending deliveries come from the queues while
// these are small, and from the deliveries indexes once the backlog
// outgrows the scan budget; both list every pending delivery once, in
// order, and nothing else.
func TestListPendingPastBudget(t *testing.T) {
	ctx := t.Context()
	for _, budget := range []int{4, defaultScanBudget} {
		s := New(redistest.Client(t), redistest.Prefix(t))
		s.scanBudget = budget
		var pending []string
		for i := range 20 {
			at := base.Add(time.Duration(i) * time.Second)
			e := store.Event{ID: store.NewID("evt", at), Hook: "orders", ReceivedAt: at}
			d := store.Delivery{ID: store.NewID("dlv", at), Rule: "r", Action: []string{"crm", "erp"}[i%2], NextAttemptAt: at}
			if _, err := s.Accept(ctx, store.Accept{Event: e, Deliveries: []store.Delivery{d}}); err != nil {
				t.Fatal(err)
			}
			pending = append(pending, d.ID)
		}
		// The two oldest of crm succeed.
		for range 2 {
			l := leaseOne(t, s, base.Add(time.Minute), "crm")
			finishOne(t, s, l, base.Add(time.Minute), store.Outcome{Status: store.DeliverySucceeded})
		}
		pending = slices.Delete(pending, 0, 1)
		pending = slices.Delete(pending, 1, 2)
		slices.Reverse(pending)
		got, _ := listedDeliveries(t, s, store.DeliveryFilter{Status: store.DeliveryPending, Limit: 3})
		if diff := cmp.Diff(pending, got); diff != "" {
			t.Errorf("budget %d: pending deliveries listed (-want +got):\n%s", budget, diff)
		}
		s.Close()
	}
}
