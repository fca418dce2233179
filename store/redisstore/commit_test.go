package redisstore

import (
	"errors"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

func TestBatchAfterScriptCacheFlush(t *testing.T) {
	// A server of the test's own: SCRIPT FLUSH on the shared one would
	// make other tests, in other packages at the same time, meet NOSCRIPT.
	opt, err := redis.ParseURL(redistest.Server(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	s := New(c, "hrtest:flush")
	defer s.Close()
	s.scriptAccepts.Store(true) // new events would not need the script (plain.go)
	if err := c.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	// A pipeline cannot fall back to EVAL by itself: every call of the batch
	// meets NOSCRIPT and must still be stored once.
	now := time.Now()
	var batch []*acceptCall
	for i := range 8 {
		e := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now, IdempotencyKey: strconv.Itoa(i)}
		keys, args, _, _, err := s.acceptArgs(t.Context(), store.Accept{Event: e, KeyTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, &acceptCall{id: e.ID, keys: keys, args: args, done: make(chan struct{})})
	}
	s.runBatch(batch)
	for _, call := range batch {
		<-call.done
		if call.err != nil || !reflect.DeepEqual(call.res, store.Accepted{EventID: call.id}) {
			t.Errorf("Accept(%s) = %+v, %v; want it stored", call.id, call.res, call.err)
		}
		if _, err := s.Event(t.Context(), call.id); err != nil {
			t.Errorf("Event(%s): %v", call.id, err)
		}
	}
}

// TestOpenLoadsScripts: a store opened on a fresh server finds the scripts
// of the hot path already loaded.
func TestOpenLoadsScripts(t *testing.T) {
	u := redistest.Server(t)
	s, err := Open(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var hashes []string
	for _, sc := range []*redis.Script{acceptScript, leaseScript, finishScript, renewScript, releaseScript} {
		hashes = append(hashes, sc.Hash())
	}
	got, err := s.c.ScriptExists(t.Context(), hashes...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range got {
		if !ok {
			t.Errorf("script %d is not loaded after Open", i)
		}
	}
}

// TestBatchSharesWrites runs one batch whose events meet each other: a
// duplicate of an event earlier in the batch, a second delivery of the
// same lane, an ignored event of another hook and a delivery of another
// action. The script gathers their index and queue writes; each event
// must still come out as it would alone.
func TestBatchSharesWrites(t *testing.T) {
	c := redistest.Client(t)
	s := New(c, redistest.Prefix(t))
	defer s.Close()
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	accepts := []store.Accept{
		batchAccept(now, "h", "k1", 1, "a", "L"),
		batchAccept(now, "h", "k1", 2, "a", ""),  // the first one's duplicate
		batchAccept(now, "g", "", 3, "", ""),     // ignored
		batchAccept(now, "h", "k4", 4, "a", "L"), // waits behind the first one
		batchAccept(now, "h", "k5", 5, "b", ""),
	}
	batch := runAccepts(t, s, accepts)
	want := []store.Accepted{
		{EventID: accepts[0].Event.ID},
		{EventID: accepts[0].Event.ID, Duplicate: true},
		{EventID: accepts[2].Event.ID},
		{EventID: accepts[3].Event.ID},
		{EventID: accepts[4].Event.ID},
	}
	for i, call := range batch {
		if call.err != nil || !reflect.DeepEqual(call.res, want[i]) {
			t.Errorf("event %d: %+v, %v; want %+v", i, call.res, call.err, want[i])
		}
	}
	if _, err := s.Event(ctx, accepts[1].Event.ID); err == nil {
		t.Errorf("the duplicate %s was stored", accepts[1].Event.ID)
	}
	if e, err := s.Event(ctx, accepts[0].Event.ID); err != nil || e.Duplicates.Count != 1 {
		t.Errorf("original: %d duplicates, %v; want 1", e.Duplicates.Count, err)
	}
	list := func(hook string, status store.EventStatus) []string {
		es, _, err := s.ListEvents(ctx, store.EventFilter{Hook: hook, Status: status})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range es {
			ids = append(ids, e.ID)
		}
		return ids
	}
	if got, want := list("h", store.EventAccepted), []string{accepts[4].Event.ID, accepts[3].Event.ID, accepts[0].Event.ID}; !slices.Equal(got, want) {
		t.Errorf("accepted events of h: %v, want %v", got, want)
	}
	if got, want := list("g", store.EventIgnored), []string{accepts[2].Event.ID}; !slices.Equal(got, want) {
		t.Errorf("ignored events of g: %v, want %v", got, want)
	}
	b, err := s.Lease(ctx, store.LeaseRequest{Now: now.Add(time.Second), TTL: time.Minute,
		Actions: []store.ActionQuota{{Action: "a", N: 10}, {Action: "b", N: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	var leased []string
	for _, l := range b.Leases {
		leased = append(leased, l.Delivery.ID)
	}
	slices.Sort(leased)
	wantLeased := []string{accepts[0].Deliveries[0].ID, accepts[4].Deliveries[0].ID}
	slices.Sort(wantLeased)
	if !slices.Equal(leased, wantLeased) {
		t.Errorf("leased %v, want %v (the second of lane L waits)", leased, wantLeased)
	}
	stats, err := s.QueueStats(ctx, now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stats {
		if st.Action == "a" && (st.Lanes != 1 || st.Waiting != 1) {
			t.Errorf("action a: %d lanes, %d waiting; want 1 and 1", st.Lanes, st.Waiting)
		}
	}
}

// TestBatchIndexNamesAfterADuplicate runs a batch whose first event, which
// carries the listing index names of the whole call, is a duplicate: the
// events after it, of another hook and another action, must still be
// listed without a filter, which reads the indexes by those names.
func TestBatchIndexNamesAfterADuplicate(t *testing.T) {
	c := redistest.Client(t)
	s := New(c, redistest.Prefix(t))
	defer s.Close()
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	first := batchAccept(now, "h", "k1", 1, "a", "")
	if _, err := s.Accept(ctx, first); err != nil {
		t.Fatal(err)
	}
	accepts := []store.Accept{
		batchAccept(now, "h", "k1", 2, "a", ""), // the first one's duplicate
		batchAccept(now, "g", "k3", 3, "", ""),  // ignored, of another hook
		batchAccept(now, "h", "k4", 4, "b", ""), // another action
	}
	for i, call := range runAccepts(t, s, accepts) {
		if call.err != nil || call.res.Duplicate != (i == 0) {
			t.Fatalf("event %d: %+v, %v", i, call.res, call.err)
		}
	}
	es, _, err := s.ListEvents(ctx, store.EventFilter{})
	ds, _, err2 := s.ListDeliveries(ctx, store.DeliveryFilter{})
	if err := errors.Join(err, err2); err != nil {
		t.Fatal(err)
	}
	events := slices.Collect(func(yield func(string) bool) {
		for _, e := range es {
			yield(e.ID)
		}
	})
	if want := []string{accepts[2].Event.ID, accepts[1].Event.ID, first.Event.ID}; !slices.Equal(events, want) {
		t.Errorf("events listed: %v, want %v", events, want)
	}
	deliveries := slices.Collect(func(yield func(string) bool) {
		for _, d := range ds {
			yield(d.ID)
		}
	})
	if want := []string{accepts[2].Deliveries[0].ID, first.Deliveries[0].ID}; !slices.Equal(deliveries, want) {
		t.Errorf("deliveries listed: %v, want %v", deliveries, want)
	}
}

// batchAccept is an accept of hook's event received i ms after now, with
// its idempotency key and, when action is set, one delivery of it in lane.
func batchAccept(now time.Time, hook, key string, i int, action, lane string) store.Accept {
	at := now.Add(time.Duration(i) * time.Millisecond)
	e := store.Event{ID: store.NewID("evt", at), Hook: hook, ReceivedAt: at, IdempotencyKey: key, Body: []byte(`{}`)}
	a := store.Accept{Event: e, KeyTTL: time.Hour}
	if action != "" {
		a.Event.MatchedRules = []string{"r"}
		a.Deliveries = []store.Delivery{{ID: store.NewDeliveryID(e.ID, at), EventID: e.ID, Hook: hook, Rule: "r", Action: action,
			Status: store.DeliveryPending, NextAttemptAt: at, CreatedAt: at, UpdatedAt: at, Lane: lane}}
	}
	return a
}

// runAccepts runs accepts as one batch and returns its calls, answered.
func runAccepts(t *testing.T, s *Store, accepts []store.Accept) []*acceptCall {
	t.Helper()
	batch := acceptCalls(t, s, accepts)
	s.runBatch(batch)
	for _, call := range batch {
		<-call.done
	}
	return batch
}
