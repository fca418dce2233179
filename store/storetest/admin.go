package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/store"
)

// adminStore is what RunAdmin tests.
type adminStore = interface {
	store.Store
	store.Admin
}

// RunAdmin runs the conformance suite of store.Admin. open must return a
// new, empty store for the test it is given and arrange for it to be closed.
//
// What it holds a backend to, beyond the comments in package store:
//
//   - Listings are ordered by id, newest first. A Limit of 0 or less means
//     100, one above 1000 means 1000. next is the id of the page's last
//     record while more records match and "" once none do: a page is never
//     followed by an empty one. Passed back as Cursor, it lists the records
//     whose ids are below it; any id of the listed kind is a valid cursor,
//     stored or not. A cursor that is not one ("evt_" or "dlv_" and 26 ULID
//     characters) is an error whose message says the cursor is invalid.
//     Every page but the last is full; a backend that bounds the work of
//     one call may return shorter pages only beyond the few hundred records
//     this suite stores.
//   - Listed events carry every field but Body, which is nil. Since and
//     Until compare with ReceivedAt at millisecond precision; Since is
//     included, Until is not. A ListDeliveries filter on an EventID that
//     names no event matches nothing and is no error.
//   - RetryDelivery of a dead, retrying, or pending and unleased delivery
//     makes it pending and due at at, clears its lease, sets UpdatedAt to
//     at and keeps Attempts and LastError; a lease that ends at or before
//     at does not hold it. It wakes the relays.
//   - AddDeliveries stores deliveries as Accept does; a delivery without
//     CreatedAt was created at its NextAttemptAt. With no deliveries it
//     changes nothing (but an unknown event is still store.ErrNotFound). A
//     delivery id that exists already is store.ErrConflict and nothing of
//     the call is stored.
//   - Keys lists by CreatedAt, then ID. A taken ID or Hash is
//     store.ErrConflict. RevokeKey and TouchKey of an unknown id are
//     store.ErrNotFound; TouchKey works on revoked keys too.
func RunAdmin(t *testing.T, open func(t *testing.T) interface {
	store.Store
	store.Admin
}) {
	tests := []struct {
		name string
		run  func(t *testing.T, s adminStore)
	}{
		{"ListEventsPages", testListEventsPages},
		{"ListEventsLimits", testListLimits},
		{"ListEventsFilters", testListEventsFilters},
		{"ListEventsTimeEdges", testListEventsTimeEdges},
		{"ListCursors", testListCursors},
		{"ListEmpty", testListEmpty},
		{"DuplicatesAreNotListed", testDuplicatesNotListed},
		{"ListDeliveriesFilters", testListDeliveriesFilters},
		{"RetryDead", testRetryDead},
		{"RetryStates", testRetryStates},
		{"AddDeliveries", testAddDeliveries},
		{"AddDeliveriesRejects", testAddDeliveriesRejects},
		{"RetryInLaneWaitsItsTurn", testRetryInLane},
		{"Keys", testKeys},
		{"KeyStamps", testKeyStamps},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, open(t))
		})
	}
}

// acceptIgnored accepts events on hook received at each of ats, with no
// deliveries, and returns them as Event reads them, newest first.
func acceptIgnored(t *testing.T, s adminStore, hook string, ats ...time.Time) []store.Event {
	t.Helper()
	evs := make([]store.Event, len(ats))
	for i, at := range ats {
		evs[i] = newEvent(hook, fmt.Sprintf("key-%d", i), at)
		mustAccept(t, s, store.Accept{Event: evs[i], KeyTTL: time.Hour}, false)
	}
	return storedEvents(t, s, evs)
}

// storedEvents reads evs back, as listings show them (no body), newest first.
func storedEvents(t *testing.T, s adminStore, evs []store.Event) []store.Event {
	t.Helper()
	out := make([]store.Event, len(evs))
	for i, e := range evs {
		got, err := s.Event(t.Context(), e.ID)
		if err != nil {
			t.Fatalf("Event(%s): %v", e.ID, err)
		}
		got.Body = nil
		out[i] = got
	}
	slices.SortFunc(out, func(a, b store.Event) int { return strings.Compare(b.ID, a.ID) })
	return out
}

func listEvents(t *testing.T, s adminStore, f store.EventFilter) ([]store.Event, string) {
	t.Helper()
	evs, next, err := s.ListEvents(t.Context(), f)
	if err != nil {
		t.Fatalf("ListEvents(%+v): %v", f, err)
	}
	return evs, next
}

func listDeliveries(t *testing.T, s adminStore, f store.DeliveryFilter) ([]store.Delivery, string) {
	t.Helper()
	ds, next, err := s.ListDeliveries(t.Context(), f)
	if err != nil {
		t.Fatalf("ListDeliveries(%+v): %v", f, err)
	}
	return ds, next
}

func eventIDs(evs []store.Event) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

// pageAll follows next from the first page to the last with pages of
// limit, checks that every page but the last is full and ends with next,
// and returns the records of all pages in order.
func pageAll[T any](t *testing.T, limit int, list func(cursor string) ([]T, string, error), id func(T) string) []T {
	t.Helper()
	var all []T
	cursor := ""
	for n := 1; ; n++ {
		page, next, err := list(cursor)
		if err != nil {
			t.Fatalf("page %d (cursor %q): %v", n, cursor, err)
		}
		if len(page) > limit {
			t.Fatalf("page %d holds %d records, more than the limit %d", n, len(page), limit)
		}
		all = append(all, page...)
		if next == "" {
			if n > 1 && len(page) == 0 {
				t.Errorf("page %d is empty: the page before it should have had no next", n)
			}
			return all
		}
		if len(page) != limit {
			t.Fatalf("page %d holds %d records and has a next; want a full page of %d", n, len(page), limit)
		}
		if last := id(page[len(page)-1]); next != last {
			t.Fatalf("page %d: next = %q, want its last id %q", n, next, last)
		}
		if n > 10_000 {
			t.Fatal("paging does not end")
		}
		cursor = next
	}
}

func testListEventsPages(t *testing.T, s adminStore) {
	ats := make([]time.Time, 25)
	for i := range ats {
		ats[i] = base.Add(time.Duration(i) * time.Second)
	}
	want := acceptIgnored(t, s, "orders", ats...)

	tests := []struct {
		cursor   string
		limit    int
		want     []store.Event
		wantNext string
	}{
		{"", 10, want[:10], want[9].ID},
		{want[9].ID, 10, want[10:20], want[19].ID},
		{want[19].ID, 10, want[20:], ""},
		// A page that takes exactly what is left has no next.
		{want[19].ID, 5, want[20:], ""},
		{"", 25, want, ""},
		{"", 24, want[:24], want[23].ID},
	}
	for _, tt := range tests {
		got, next := listEvents(t, s, store.EventFilter{Cursor: tt.cursor, Limit: tt.limit})
		if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
			t.Errorf("ListEvents(cursor %q, limit %d) (-want +got):\n%s", tt.cursor, tt.limit, diff)
		}
		if next != tt.wantNext {
			t.Errorf("ListEvents(cursor %q, limit %d): next = %q, want %q", tt.cursor, tt.limit, next, tt.wantNext)
		}
		for _, e := range got {
			if e.Body != nil {
				t.Errorf("listed event %s carries a body", e.ID)
			}
		}
	}
}

func testListLimits(t *testing.T, s adminStore) {
	// 1001 events, the first 101 of them with a delivery each, accepted
	// concurrently to keep the test quick.
	const n, withDelivery = 1001, 101
	evs := make([]store.Event, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				a := store.Accept{Event: evs[i], KeyTTL: time.Hour}
				if i < withDelivery {
					a.Deliveries = []store.Delivery{newDelivery(evs[i], "rule", "action", base)}
				}
				if _, err := s.Accept(context.WithoutCancel(t.Context()), a); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range evs {
		evs[i] = newEvent("orders", fmt.Sprintf("key-%d", i), base.Add(time.Duration(i)*time.Millisecond))
	}
	for i := range evs {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Accept: %v", err)
	}
	slices.SortFunc(evs, func(a, b store.Event) int { return strings.Compare(b.ID, a.ID) })

	for _, tt := range []struct {
		limit, want int
	}{{0, 100}, {-1, 100}, {1, 1}, {1000, 1000}, {1001, 1000}, {5000, 1000}} {
		got, next := listEvents(t, s, store.EventFilter{Limit: tt.limit})
		if len(got) != tt.want || next != evs[tt.want-1].ID {
			t.Errorf("ListEvents(limit %d) = %d events, next %q; want %d and next %q",
				tt.limit, len(got), next, tt.want, evs[tt.want-1].ID)
		}
		if len(got) > 0 && got[0].ID != evs[0].ID {
			t.Errorf("ListEvents(limit %d) starts at %s, want the newest %s", tt.limit, got[0].ID, evs[0].ID)
		}
	}
	if got, next := listEvents(t, s, store.EventFilter{Cursor: evs[999].ID, Limit: 5000}); len(got) != 1 || got[0].ID != evs[1000].ID || next != "" {
		t.Errorf("ListEvents after 1000 = %v, next %q; want just the oldest event and no next", eventIDs(got), next)
	}

	ds, next := listDeliveries(t, s, store.DeliveryFilter{})
	if len(ds) != 100 || next != ds[99].ID {
		t.Errorf("ListDeliveries(limit 0) = %d deliveries, next %q; want 100 and a next", len(ds), next)
	}
	ds, next = listDeliveries(t, s, store.DeliveryFilter{Limit: 5000})
	if len(ds) != withDelivery || next != "" {
		t.Errorf("ListDeliveries(limit 5000) = %d deliveries, next %q; want all %d and no next", len(ds), next, withDelivery)
	}
}

// matchEvent is what an EventFilter selects, but for the page.
func matchEvent(e store.Event, f store.EventFilter) bool {
	return (f.Hook == "" || e.Hook == f.Hook) &&
		(f.Status == "" || e.Status == f.Status) &&
		(f.Since.IsZero() || e.ReceivedAt.UnixMilli() >= f.Since.UnixMilli()) &&
		(f.Until.IsZero() || e.ReceivedAt.UnixMilli() < f.Until.UnixMilli())
}

func testListEventsFilters(t *testing.T, s adminStore) {
	var evs []store.Event
	for i := range 12 {
		hook := []string{"orders", "contacts", "orders"}[i%3]
		e := newEvent(hook, fmt.Sprintf("key-%d", i), base.Add(time.Duration(i)*time.Minute))
		if i%2 == 0 {
			acceptOne(t, s, e)
		} else {
			mustAccept(t, s, store.Accept{Event: e, KeyTTL: time.Hour}, false)
		}
		evs = append(evs, e)
	}
	all := storedEvents(t, s, evs)
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }

	tests := []struct {
		name string
		f    store.EventFilter
	}{
		{"none", store.EventFilter{}},
		{"hook", store.EventFilter{Hook: "orders"}},
		{"other hook", store.EventFilter{Hook: "contacts"}},
		{"unknown hook", store.EventFilter{Hook: "nope"}},
		{"accepted", store.EventFilter{Status: store.EventAccepted}},
		{"ignored", store.EventFilter{Status: store.EventIgnored}},
		{"since", store.EventFilter{Since: at(5)}},
		{"until", store.EventFilter{Until: at(5)}},
		{"since and until", store.EventFilter{Since: at(3), Until: at(9)}},
		{"empty window", store.EventFilter{Since: at(4), Until: at(4)}},
		{"since after all", store.EventFilter{Since: at(60)}},
		{"hook and status", store.EventFilter{Hook: "orders", Status: store.EventIgnored}},
		{"hook and window", store.EventFilter{Hook: "contacts", Since: at(1), Until: at(10)}},
		{"everything", store.EventFilter{Hook: "orders", Status: store.EventAccepted, Since: at(2), Until: at(11)}},
	}
	for _, tt := range tests {
		var want []store.Event
		for _, e := range all {
			if matchEvent(e, tt.f) {
				want = append(want, e)
			}
		}
		for _, limit := range []int{1, 2, 100} {
			got := pageAll(t, limit, func(cursor string) ([]store.Event, string, error) {
				f := tt.f
				f.Cursor, f.Limit = cursor, limit
				return s.ListEvents(t.Context(), f)
			}, func(e store.Event) string { return e.ID })
			if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
				t.Errorf("%s, pages of %d (-want +got):\n%s", tt.name, limit, diff)
			}
		}
	}
}

func testListEventsTimeEdges(t *testing.T, s adminStore) {
	since, until := base, base.Add(time.Second)
	evs := acceptIgnored(t, s, "orders",
		since.Add(-time.Millisecond), since, until.Add(-time.Millisecond), until)
	// evs is newest first: until, until-1ms, since, since-1ms.
	tests := []struct {
		name string
		f    store.EventFilter
		want []store.Event
	}{
		{"window", store.EventFilter{Since: since, Until: until}, evs[1:3]},
		{"since only", store.EventFilter{Since: since}, evs[:3]},
		{"until only", store.EventFilter{Until: until}, evs[1:]},
		{"one millisecond", store.EventFilter{Since: since, Until: since.Add(time.Millisecond)}, evs[2:3]},
	}
	for _, tt := range tests {
		got, next := listEvents(t, s, tt.f)
		if diff := cmp.Diff(eventIDs(tt.want), eventIDs(got)); diff != "" || next != "" {
			t.Errorf("%s: ListEvents (-want +got):\n%s next %q", tt.name, diff, next)
		}
	}
}

func testListCursors(t *testing.T, s adminStore) {
	ctx := t.Context()
	ats := make([]time.Time, 10)
	for i := range ats {
		ats[i] = base.Add(time.Duration(i) * time.Second)
	}
	evs := acceptIgnored(t, s, "orders", ats...)

	// Any id is a cursor, stored or not: here one from between the events
	// received at 5s and 6s.
	between := store.NewID("evt", base.Add(5500*time.Millisecond))
	got, next := listEvents(t, s, store.EventFilter{Cursor: between})
	if diff := cmp.Diff(eventIDs(evs[4:]), eventIDs(got)); diff != "" || next != "" {
		t.Errorf("ListEvents below an id never stored (-want +got):\n%s next %q", diff, next)
	}

	valid := store.NewID("evt", base)
	dlv := store.NewID("dlv", base)
	bad := []string{
		"bogus",
		"evt_",
		valid[:len(valid)-1],
		valid + "0",
		strings.ToLower(valid),
		"evt_" + strings.Repeat("U", 26), // not in the ULID alphabet
		dlv,
		"evt_" + valid[4:14] + "' OR 1=1 --" + valid[25:],
	}
	for _, cursor := range bad {
		_, _, err := s.ListEvents(ctx, store.EventFilter{Cursor: cursor})
		if err == nil || !strings.Contains(err.Error(), "invalid cursor") || errors.Is(err, store.ErrNotFound) {
			t.Errorf("ListEvents(cursor %q) error = %v, want one saying the cursor is invalid", cursor, err)
		}
	}
	for _, cursor := range []string{"bogus", valid, "dlv_" + strings.Repeat("u", 26)} {
		_, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{Cursor: cursor})
		if err == nil || !strings.Contains(err.Error(), "invalid cursor") {
			t.Errorf("ListDeliveries(cursor %q) error = %v, want one saying the cursor is invalid", cursor, err)
		}
	}
	if _, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{Cursor: dlv}); err != nil {
		t.Errorf("ListDeliveries(cursor %q): %v", dlv, err)
	}
}

func testListEmpty(t *testing.T, s adminStore) {
	evs, next := listEvents(t, s, store.EventFilter{})
	if len(evs) != 0 || next != "" {
		t.Errorf("ListEvents of an empty store = %v, next %q", eventIDs(evs), next)
	}
	ds, next := listDeliveries(t, s, store.DeliveryFilter{})
	if len(ds) != 0 || next != "" {
		t.Errorf("ListDeliveries of an empty store = %d deliveries, next %q", len(ds), next)
	}
	ks, err := s.Keys(t.Context())
	if err != nil || len(ks) != 0 {
		t.Errorf("Keys of an empty store = %v, %v", ks, err)
	}
}

func testDuplicatesNotListed(t *testing.T, s adminStore) {
	first := newEvent("orders", "key-1", base)
	d := acceptOne(t, s, first)
	dup := newEvent("orders", "key-1", base.Add(time.Second))
	dupDelivery := newDelivery(dup, "rule", "action", dup.ReceivedAt)
	mustAccept(t, s, store.Accept{Event: dup, Deliveries: []store.Delivery{dupDelivery}, KeyTTL: time.Hour}, true)

	evs, _ := listEvents(t, s, store.EventFilter{})
	if diff := cmp.Diff([]string{first.ID}, eventIDs(evs)); diff != "" {
		t.Errorf("ListEvents after a duplicate (-want +got):\n%s", diff)
	}
	ds, _ := listDeliveries(t, s, store.DeliveryFilter{Hook: "orders"})
	if len(ds) != 1 || ds[0].ID != d.ID {
		t.Errorf("ListDeliveries after a duplicate = %d deliveries, want just %s", len(ds), d.ID)
	}
}

// matchDelivery is what a DeliveryFilter selects, but for the page.
func matchDelivery(d store.Delivery, f store.DeliveryFilter) bool {
	return (f.Hook == "" || d.Hook == f.Hook) &&
		(f.Action == "" || d.Action == f.Action) &&
		(f.Status == "" || d.Status == f.Status) &&
		(f.EventID == "" || d.EventID == f.EventID)
}

func testListDeliveriesFilters(t *testing.T, s adminStore) {
	ctx := t.Context()
	later := base.Add(time.Hour)
	type spec struct {
		hook    string
		actions []string
		dues    []time.Time
	}
	var evs []store.Event
	var ids []string
	for i, sp := range []spec{
		{"orders", []string{"crm", "erp"}, []time.Time{base, base}},
		{"orders", []string{"crm"}, []time.Time{base}},
		{"contacts", []string{"crm", "erp"}, []time.Time{base, later}},
		{"contacts", nil, nil},
		{"orders", []string{"erp"}, []time.Time{later}},
	} {
		e := newEvent(sp.hook, fmt.Sprintf("key-%d", i), base.Add(time.Duration(i)*time.Second))
		a := store.Accept{Event: e, KeyTTL: time.Hour}
		for j, action := range sp.actions {
			d := newDelivery(e, "rule", action, sp.dues[j])
			a.Deliveries = append(a.Deliveries, d)
			a.Event.MatchedRules = []string{"rule"}
			ids = append(ids, d.ID)
		}
		mustAccept(t, s, a, false)
		evs = append(evs, e)
	}
	// The four due at base: one succeeds, one dies, one will be retried,
	// one stays leased. The two due later stay pending.
	ls := mustLease(t, s, base.Add(10*time.Second), 10, time.Minute)
	if len(ls) != 4 {
		t.Fatalf("Lease = %v, want the 4 deliveries due", leasedIDs(ls))
	}
	outcomes := []store.Outcome{
		{Status: store.DeliverySucceeded},
		{Status: store.DeliveryDead, Error: "HTTP 410"},
		{Status: store.DeliveryRetrying, NextAttemptAt: later, Error: "HTTP 503"},
	}
	var dead string
	for i, o := range outcomes {
		if err := finishOne(ctx, s, ls[i], attemptOf(ls[i], base.Add(10*time.Second), 500, o.Error), o); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if o.Status == store.DeliveryDead {
			dead = ls[i].Delivery.ID
		}
	}

	tests := []struct {
		name string
		f    store.DeliveryFilter
	}{
		{"none", store.DeliveryFilter{}},
		{"hook", store.DeliveryFilter{Hook: "orders"}},
		{"other hook", store.DeliveryFilter{Hook: "contacts"}},
		{"unknown hook", store.DeliveryFilter{Hook: "nope"}},
		{"action", store.DeliveryFilter{Action: "crm"}},
		{"other action", store.DeliveryFilter{Action: "erp"}},
		{"pending", store.DeliveryFilter{Status: store.DeliveryPending}},
		{"retrying", store.DeliveryFilter{Status: store.DeliveryRetrying}},
		{"succeeded", store.DeliveryFilter{Status: store.DeliverySucceeded}},
		{"dead", store.DeliveryFilter{Status: store.DeliveryDead}},
		{"event", store.DeliveryFilter{EventID: evs[0].ID}},
		{"event without deliveries", store.DeliveryFilter{EventID: evs[3].ID}},
		{"unknown event", store.DeliveryFilter{EventID: store.NewID("evt", base)}},
		{"event and action", store.DeliveryFilter{EventID: evs[2].ID, Action: "erp"}},
		{"event and status", store.DeliveryFilter{EventID: evs[0].ID, Status: store.DeliveryDead}},
		{"hook and action", store.DeliveryFilter{Hook: "orders", Action: "crm"}},
		{"hook and status", store.DeliveryFilter{Hook: "orders", Status: store.DeliveryPending}},
		{"everything", store.DeliveryFilter{Hook: "contacts", Action: "erp", Status: store.DeliveryPending, EventID: evs[2].ID}},
	}
	check := func(when string) {
		t.Helper()
		var all []store.Delivery
		for _, id := range ids {
			all = append(all, mustDelivery(t, s, id))
		}
		slices.SortFunc(all, func(a, b store.Delivery) int { return strings.Compare(b.ID, a.ID) })
		for _, tt := range tests {
			var want []store.Delivery
			for _, d := range all {
				if matchDelivery(d, tt.f) {
					want = append(want, d)
				}
			}
			for _, limit := range []int{1, 2, 100} {
				got := pageAll(t, limit, func(cursor string) ([]store.Delivery, string, error) {
					f := tt.f
					f.Cursor, f.Limit = cursor, limit
					return s.ListDeliveries(ctx, f)
				}, func(d store.Delivery) string { return d.ID })
				if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
					t.Errorf("%s: %s, pages of %d (-want +got):\n%s", when, tt.name, limit, diff)
				}
			}
		}
	}
	check("after Finish")

	// Retry and AddDeliveries move deliveries between statuses and add
	// new ones; listings follow at once.
	if _, err := s.RetryDelivery(ctx, dead, base.Add(20*time.Second)); err != nil {
		t.Fatalf("RetryDelivery: %v", err)
	}
	added := newDelivery(evs[3], "replay", "crm", base.Add(time.Minute))
	added.ID = deliveryID(evs[3], base.Add(time.Minute))
	if err := s.AddDeliveries(ctx, evs[3].ID, []string{"replay"}, []store.Delivery{added}); err != nil {
		t.Fatalf("AddDeliveries: %v", err)
	}
	ids = append(ids, added.ID)
	check("after retry and replay")
}

func wantWake(t *testing.T, wake <-chan struct{}, after string) {
	t.Helper()
	select {
	case _, ok := <-wake:
		if !ok {
			t.Fatalf("Wake channel closed, want a wake-up after %s", after)
		}
	case <-time.After(waitLimit):
		t.Fatalf("no wake-up after %s", after)
	}
}

func testRetryDead(t *testing.T, s adminStore) {
	ctx := t.Context()
	d := acceptOne(t, s, newEvent("orders", "key-1", base))
	l := mustLeaseOne(t, s, base, time.Minute, d.ID)
	dead := store.Outcome{Status: store.DeliveryDead, Error: "HTTP 410"}
	if err := finishOne(ctx, s, l, attemptOf(l, base, 410, "HTTP 410"), dead); err != nil {
		t.Fatalf("Finish: %v", err)
	}

	wakeCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	wake := s.Wake(wakeCtx)
	at := base.Add(time.Hour)
	got, err := s.RetryDelivery(ctx, d.ID, at)
	if err != nil {
		t.Fatalf("RetryDelivery: %v", err)
	}
	want := d
	want.Status, want.Attempts, want.LastError = store.DeliveryPending, 1, "HTTP 410"
	want.NextAttemptAt, want.UpdatedAt = at, at
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("RetryDelivery (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, mustDelivery(t, s, d.ID), cmpOpts); diff != "" {
		t.Errorf("Delivery after RetryDelivery (-want +got):\n%s", diff)
	}
	wantWake(t, wake, "RetryDelivery")
	wantNextDue(t, s, at)
	wantNothingDue(t, s, at.Add(-time.Millisecond))

	// One more attempt, counted after the first.
	l = mustLeaseOne(t, s, at, time.Minute, d.ID)
	if l.Delivery.Attempts != 1 {
		t.Errorf("leased after retry with Attempts %d, want 1", l.Delivery.Attempts)
	}
	second := attemptOf(l, at, 200, "")
	if second.N != 2 {
		t.Fatalf("attempt N = %d, want 2", second.N)
	}
	ok := store.Outcome{Status: store.DeliverySucceeded}
	if err := finishOne(ctx, s, l, second, ok); err != nil {
		t.Fatalf("Finish after retry: %v", err)
	}
	if diff := cmp.Diff(finishedAs(want, 2, ok), mustDelivery(t, s, d.ID), cmpOpts, ignoreAfterFinish(true)); diff != "" {
		t.Errorf("Delivery after the retried attempt (-want +got):\n%s", diff)
	}
	as := mustAttempts(t, s, d.ID)
	if len(as) != 2 || as[0].N != 1 || as[1].N != 2 {
		t.Errorf("Attempts = %+v, want attempts 1 and 2", as)
	}
	// Succeeded is final: no more retries.
	if _, err := s.RetryDelivery(ctx, d.ID, at.Add(time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("RetryDelivery of a succeeded delivery: error = %v, want ErrConflict", err)
	}
}

func testRetryStates(t *testing.T, s adminStore) {
	ctx := t.Context()
	const ttl = time.Minute
	n := 0
	// setup accepts a delivery due at base, runs prepare on it and returns
	// it as stored, with its lease if prepare leased it.
	setup := func(prepare func(d store.Delivery) *store.Lease) (store.Delivery, *store.Lease) {
		n++
		d := acceptOne(t, s, newEvent("orders", fmt.Sprintf("key-%d", n), base))
		l := prepare(d)
		return mustDelivery(t, s, d.ID), l
	}
	lease := func(d store.Delivery) *store.Lease {
		l := mustLeaseOne(t, s, base, ttl, d.ID)
		return &l
	}
	finish := func(o store.Outcome) func(d store.Delivery) *store.Lease {
		return func(d store.Delivery) *store.Lease {
			l := lease(d)
			if err := finishOne(ctx, s, *l, attemptOf(*l, base, 503, o.Error), o); err != nil {
				t.Fatalf("Finish: %v", err)
			}
			return nil
		}
	}
	untouched := func(store.Delivery) *store.Lease { return nil }

	tests := []struct {
		name    string
		prepare func(d store.Delivery) *store.Lease
		at      time.Time
		wantErr error
	}{
		{"retrying, sooner than planned", finish(store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: base.Add(time.Hour), Error: "HTTP 503"}), base.Add(time.Minute), nil},
		{"retrying, later than planned", finish(store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: base.Add(time.Hour), Error: "HTTP 503"}), base.Add(2 * time.Hour), nil},
		{"pending", untouched, base.Add(10 * time.Minute), nil},
		{"pending, lease ended", lease, base.Add(ttl), nil},
		{"pending, leased", lease, base.Add(ttl - time.Millisecond), store.ErrConflict},
		{"succeeded", finish(store.Outcome{Status: store.DeliverySucceeded}), base.Add(time.Hour), store.ErrConflict},
	}
	for _, tt := range tests {
		// Every case leaves its delivery succeeded, so that the next one's
		// is the only delivery due.
		before, l := setup(tt.prepare)
		got, err := s.RetryDelivery(ctx, before.ID, tt.at)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: RetryDelivery error = %v, want %v", tt.name, err, tt.wantErr)
			}
			if diff := cmp.Diff(before, mustDelivery(t, s, before.ID), cmpOpts); diff != "" {
				t.Errorf("%s: a refused retry changed the delivery (-before +after):\n%s", tt.name, diff)
			}
			if l != nil {
				// The worker's lease still holds.
				if err := finishOne(ctx, s, *l, attemptOf(*l, base, 200, ""), store.Outcome{Status: store.DeliverySucceeded}); err != nil {
					t.Errorf("%s: Finish with the lease a retry was refused for: %v", tt.name, err)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: RetryDelivery: %v", tt.name, err)
			continue
		}
		want := before
		want.Status, want.NextAttemptAt, want.UpdatedAt, want.LeasedUntil = store.DeliveryPending, tt.at, tt.at, time.Time{}
		if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
			t.Errorf("%s: RetryDelivery (-want +got):\n%s", tt.name, diff)
		}
		if diff := cmp.Diff(want, mustDelivery(t, s, before.ID), cmpOpts); diff != "" {
			t.Errorf("%s: Delivery after RetryDelivery (-want +got):\n%s", tt.name, diff)
		}
		if l != nil {
			// The lease had ended; the retry took the delivery from it.
			err := finishOne(ctx, s, *l, attemptOf(*l, base, 503, "HTTP 503"), store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: base, Error: "HTTP 503"})
			if !errors.Is(err, store.ErrLeaseLost) {
				t.Errorf("%s: Finish with the lease from before the retry: error = %v, want ErrLeaseLost", tt.name, err)
			}
		}
		// Due at tt.at, not before.
		wantNothingDue(t, s, tt.at.Add(-time.Millisecond))
		again := mustLeaseOne(t, s, tt.at, ttl, before.ID)
		if err := finishOne(ctx, s, again, attemptOf(again, tt.at, 200, ""), store.Outcome{Status: store.DeliverySucceeded}); err != nil {
			t.Fatalf("%s: Finish after retry: %v", tt.name, err)
		}
	}

	if _, err := s.RetryDelivery(ctx, store.NewID("dlv", base), base); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RetryDelivery of an unknown id: error = %v, want ErrNotFound", err)
	}
}

func testAddDeliveries(t *testing.T, s adminStore) {
	ctx := t.Context()
	e := newEvent("orders", "key-1", base)
	mustAccept(t, s, store.Accept{Event: e, KeyTTL: time.Hour}, false)
	replayAt := base.Add(time.Hour)

	// Whatever the caller left in them, new deliveries start pending,
	// unattempted and of this event; without CreatedAt one was created
	// when it is due, without Hook it is the event's.
	d1 := newDelivery(e, "r1", "crm", replayAt)
	d1.ID = deliveryID(e, replayAt)
	d1.CreatedAt, d1.UpdatedAt = replayAt, replayAt
	d1.Status, d1.Attempts, d1.LeasedUntil = store.DeliveryDead, 3, replayAt.Add(time.Minute)
	// A last error and a change after its creation are kept, on one
	// delivery of the two: stores that write deliveries' optional fields
	// only when set must keep each delivery's own.
	d1.LastError, d1.UpdatedAt = "replayed by hand", replayAt.Add(time.Minute)
	d2 := store.Delivery{ID: deliveryID(e, replayAt), EventID: "evt_other", Rule: "r2", Action: "erp", NextAttemptAt: replayAt.Add(time.Second)}
	want1, want2 := d1, d2
	want1.Status, want1.Attempts, want1.LeasedUntil = store.DeliveryPending, 0, time.Time{}
	want2.EventID, want2.Hook, want2.Status = e.ID, e.Hook, store.DeliveryPending
	want2.CreatedAt, want2.UpdatedAt = d2.NextAttemptAt, d2.NextAttemptAt

	wakeCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	wake := s.Wake(wakeCtx)
	if err := s.AddDeliveries(ctx, e.ID, []string{"r1", "r2", "r1"}, []store.Delivery{d1, d2}); err != nil {
		t.Fatalf("AddDeliveries: %v", err)
	}
	wantWake(t, wake, "AddDeliveries")
	wantEvent := e
	wantEvent.Status, wantEvent.MatchedRules = store.EventAccepted, []string{"r1", "r2"}
	gotEvent, err := s.Event(ctx, e.ID)
	if err != nil {
		t.Fatalf("Event: %v", err)
	}
	if diff := cmp.Diff(wantEvent, gotEvent, cmpOpts); diff != "" {
		t.Errorf("Event after AddDeliveries (-want +got):\n%s", diff)
	}
	ds, err := s.Deliveries(ctx, e.ID)
	if err != nil {
		t.Fatalf("Deliveries: %v", err)
	}
	if diff := cmp.Diff([]store.Delivery{want1, want2}, ds, cmpOpts); diff != "" {
		t.Errorf("Deliveries after AddDeliveries (-want +got):\n%s", diff)
	}

	// A second replay adds to both.
	d3 := newDelivery(e, "r3", "crm", replayAt.Add(time.Hour))
	d3.ID = deliveryID(e, replayAt.Add(time.Hour))
	if err := s.AddDeliveries(ctx, e.ID, []string{"r2", "r3"}, []store.Delivery{d3}); err != nil {
		t.Fatalf("second AddDeliveries: %v", err)
	}
	gotEvent, err = s.Event(ctx, e.ID)
	if err != nil {
		t.Fatalf("Event: %v", err)
	}
	if diff := cmp.Diff([]string{"r1", "r2", "r3"}, gotEvent.MatchedRules); diff != "" {
		t.Errorf("MatchedRules after a second AddDeliveries (-want +got):\n%s", diff)
	}
	if ds, err := s.Deliveries(ctx, e.ID); err != nil || len(ds) != 3 || ds[2].ID != d3.ID {
		t.Errorf("Deliveries after a second AddDeliveries = %d deliveries, %v; want 3, the new one last", len(ds), err)
	}

	// They are queued like any others.
	wantNextDue(t, s, replayAt)
	wantNothingDue(t, s, replayAt.Add(-time.Millisecond))
	ls := mustLease(t, s, replayAt.Add(time.Second), 10, time.Minute)
	if diff := cmp.Diff([]string{d1.ID, d2.ID}, leasedIDs(ls)); diff != "" {
		t.Errorf("leased (-want +got):\n%s", diff)
	}

	// The event is listed as accepted now.
	if evs, _ := listEvents(t, s, store.EventFilter{Status: store.EventIgnored}); len(evs) != 0 {
		t.Errorf("ListEvents(ignored) = %v, want none", eventIDs(evs))
	}
	if evs, _ := listEvents(t, s, store.EventFilter{Status: store.EventAccepted}); len(evs) != 1 || evs[0].ID != e.ID {
		t.Errorf("ListEvents(accepted) = %v, want %s", eventIDs(evs), e.ID)
	}

	// On an event that matched before, its rules come first.
	other := newEvent("orders", "key-2", base)
	acceptOne(t, s, other)
	d4 := newDelivery(other, "replay", "crm", replayAt)
	d4.ID = deliveryID(other, replayAt)
	if err := s.AddDeliveries(ctx, other.ID, []string{"rule", "replay"}, []store.Delivery{d4}); err != nil {
		t.Fatalf("AddDeliveries on an accepted event: %v", err)
	}
	if got, err := s.Event(ctx, other.ID); err != nil || !slices.Equal(got.MatchedRules, []string{"rule", "replay"}) {
		t.Errorf("MatchedRules = %v, %v; want [rule replay]", got.MatchedRules, err)
	}
}

func testAddDeliveriesRejects(t *testing.T, s adminStore) {
	ctx := t.Context()
	e := newEvent("orders", "key-1", base)
	existing := acceptOne(t, s, e)
	ignored := newEvent("orders", "key-2", base)
	mustAccept(t, s, store.Accept{Event: ignored, KeyTTL: time.Hour}, false)
	before := storedEvents(t, s, []store.Event{e, ignored})

	fresh := newDelivery(e, "r9", "crm", base)
	unknown := store.NewID("evt", base)
	stray := fresh
	stray.ID = store.NewDeliveryID(unknown, base)
	if err := s.AddDeliveries(ctx, unknown, []string{"r9"}, []store.Delivery{stray}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AddDeliveries to an unknown event: error = %v, want ErrNotFound", err)
	}
	if err := s.AddDeliveries(ctx, unknown, nil, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AddDeliveries of nothing to an unknown event: error = %v, want ErrNotFound", err)
	}
	// One delivery id exists already: nothing of the call is stored.
	if err := s.AddDeliveries(ctx, e.ID, []string{"r9"}, []store.Delivery{fresh, existing}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("AddDeliveries with a taken delivery id: error = %v, want ErrConflict", err)
	}
	if _, err := s.Delivery(ctx, fresh.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delivery(%s) of a refused AddDeliveries: error = %v, want ErrNotFound", fresh.ID, err)
	}
	// Nothing to add changes nothing.
	if err := s.AddDeliveries(ctx, ignored.ID, []string{"r9"}, nil); err != nil {
		t.Errorf("AddDeliveries of nothing: %v", err)
	}
	if diff := cmp.Diff(before, storedEvents(t, s, []store.Event{e, ignored}), cmpOpts); diff != "" {
		t.Errorf("events changed by refused or empty AddDeliveries (-before +after):\n%s", diff)
	}
	if ds, err := s.Deliveries(ctx, e.ID); err != nil || len(ds) != 1 {
		t.Errorf("Deliveries = %d, %v; want just the one accepted", len(ds), err)
	}
	mustLeaseOne(t, s, base, time.Minute, existing.ID)
	for _, d := range []store.Delivery{{}, {ID: store.NewID("dlv", base), Action: "crm"}} {
		if err := s.AddDeliveries(ctx, e.ID, nil, []store.Delivery{d}); err == nil {
			t.Errorf("AddDeliveries(%+v) succeeded, want an error for a delivery without id or time", d)
		}
	}
}

func newKey(name, hash string, id string, created time.Time, scopes ...string) store.APIKey {
	return store.APIKey{ID: id, Name: name, Prefix: "hr_" + hash[:7], Hash: hash, Scopes: scopes, CreatedAt: created}
}

func mustKeyByHash(t *testing.T, s adminStore, hash string) store.APIKey {
	t.Helper()
	k, err := s.KeyByHash(t.Context(), hash)
	if err != nil {
		t.Fatalf("KeyByHash(%s): %v", hash, err)
	}
	return k
}

func testKeys(t *testing.T, s adminStore) {
	ctx := t.Context()
	hash := func(c byte) string { return strings.Repeat(string(c), 64) }
	// k1 and k3 were created in the same millisecond: the id decides.
	k1 := newKey("deploy", hash('a'), store.NewID("key", base.Add(time.Minute)), base.Add(time.Minute), "read", "write")
	k2 := newKey("ci", hash('b'), store.NewID("key", base.Add(2*time.Minute)), base)
	k3 := newKey("dashboard", hash('c'), store.NewID("key", base.Add(3*time.Minute)), base.Add(time.Minute), "webhooks")
	for _, k := range []store.APIKey{k1, k2, k3} {
		if err := s.CreateKey(ctx, k); err != nil {
			t.Fatalf("CreateKey(%s): %v", k.Name, err)
		}
	}
	for _, k := range []store.APIKey{k1, k2, k3} {
		if diff := cmp.Diff(k, mustKeyByHash(t, s, k.Hash), cmpOpts); diff != "" {
			t.Errorf("KeyByHash(%s) (-want +got):\n%s", k.Name, diff)
		}
	}
	if _, err := s.KeyByHash(ctx, hash('d')); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("KeyByHash(unknown) error = %v, want ErrNotFound", err)
	}

	sameID := newKey("again", hash('d'), k1.ID, base)
	sameHash := newKey("copy", k2.Hash, store.NewID("key", base.Add(time.Hour)), base)
	for _, k := range []store.APIKey{sameID, sameHash} {
		if err := s.CreateKey(ctx, k); !errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateKey(%s) error = %v, want ErrConflict", k.Name, err)
		}
	}
	if _, err := s.KeyByHash(ctx, sameID.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("KeyByHash of a refused key: error = %v, want ErrNotFound", err)
	}
	for _, k := range []store.APIKey{{Hash: hash('e')}, {ID: store.NewID("key", base)}} {
		if err := s.CreateKey(ctx, k); err == nil {
			t.Errorf("CreateKey(%+v) succeeded, want an error for a key without id or hash", k)
		}
	}

	// Revoked keys stay listed and found.
	revokedAt := base.Add(time.Hour)
	if err := s.RevokeKey(ctx, k1.ID, revokedAt); err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	k1.RevokedAt = revokedAt
	if diff := cmp.Diff(k1, mustKeyByHash(t, s, k1.Hash), cmpOpts); diff != "" {
		t.Errorf("KeyByHash of a revoked key (-want +got):\n%s", diff)
	}
	if err := s.RevokeKey(ctx, k1.ID, revokedAt.Add(time.Hour)); err != nil {
		t.Fatalf("second RevokeKey: %v", err)
	}
	ks, err := s.Keys(ctx)
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	if diff := cmp.Diff([]store.APIKey{k2, k1, k3}, ks, cmpOpts); diff != "" {
		t.Errorf("Keys, oldest first, the first revocation kept (-want +got):\n%s", diff)
	}
	if err := s.RevokeKey(ctx, store.NewID("key", base), revokedAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeKey(unknown) error = %v, want ErrNotFound", err)
	}
}

func testKeyStamps(t *testing.T, s adminStore) {
	ctx := t.Context()
	k := newKey("ci", strings.Repeat("f", 64), store.NewID("key", base), base, "read")
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	steps := []struct {
		touch, want time.Time
	}{
		{base.Add(5 * time.Minute), base.Add(5 * time.Minute)},
		{base.Add(4 * time.Minute), base.Add(5 * time.Minute)}, // never backwards
		{base.Add(5 * time.Minute), base.Add(5 * time.Minute)},
		{base.Add(6 * time.Minute), base.Add(6 * time.Minute)},
	}
	for _, st := range steps {
		if err := s.TouchKey(ctx, k.ID, st.touch); err != nil {
			t.Fatalf("TouchKey(%v): %v", st.touch, err)
		}
		if got := mustKeyByHash(t, s, k.Hash).LastUsedAt; !got.Equal(st.want) {
			t.Errorf("after TouchKey(%v): LastUsedAt = %v, want %v", st.touch, got, st.want)
		}
	}
	if err := s.TouchKey(ctx, store.NewID("key", base), base); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchKey(unknown) error = %v, want ErrNotFound", err)
	}
	// A revoked key is refused by its caller, not by the store: its use
	// is still recorded.
	if err := s.RevokeKey(ctx, k.ID, base.Add(7*time.Minute)); err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	if err := s.TouchKey(ctx, k.ID, base.Add(8*time.Minute)); err != nil {
		t.Fatalf("TouchKey of a revoked key: %v", err)
	}
	want := k
	want.LastUsedAt, want.RevokedAt = base.Add(8*time.Minute), base.Add(7*time.Minute)
	if diff := cmp.Diff(want, mustKeyByHash(t, s, k.Hash), cmpOpts); diff != "" {
		t.Errorf("KeyByHash (-want +got):\n%s", diff)
	}
}
