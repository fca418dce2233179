package relay_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/store"
)

// TestRelayAsksADrainedActionForAFew: once a lease has left an action
// drained, the leases that look again ask for a few of its deliveries
// (on a partitioned store a lease holds the room it asks for in the
// action's cap set, and the action's hand-offs meanwhile would find none);
// a burst queued meanwhile is still leased whole, the lease that took all
// it asked for followed at once by one asking for the rest.
func TestRelayAsksADrainedActionForAFew(t *testing.T) {
	const burst = 30
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	q := &leaseLog{leased: map[string]bool{}}
	st, r := setupOn(t, t.TempDir(), srv.URL, "    concurrency: 64\n", relay.Options{MaxWait: 20 * time.Millisecond},
		func(st store.Store) relay.Queue { q.Store = st; return q })
	run(t, r)

	// The first lease finds the queue empty; the next ones look again
	// every MaxWait.
	within := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("after 10s: %s (leases: %+v)", what, q.since(0))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	within("no three leases", func() bool { return len(q.since(0)) >= 3 })
	looks := q.since(0)
	if looks[0].asked != 64 {
		t.Errorf("the first lease asked for %d, want the concurrency, 64", looks[0].asked)
	}
	for i, c := range looks[1:] {
		if c.asked != 8 {
			t.Errorf("lease %d, after one that left the action drained, asked for %d, want 8", i+2, c.asked)
		}
	}

	// A burst queued in one accept: it wakes the relay.
	mark := len(q.since(0))
	now := time.Now()
	ev := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now, Body: []byte(`{"id":"burst"}`),
		Status: store.EventAccepted, Headers: map[string]string{"content-type": "application/json"}}
	a := store.Accept{Event: ev}
	for i := range burst {
		a.Deliveries = append(a.Deliveries, store.Delivery{ID: store.NewID("dlv", now.Add(time.Duration(i))), EventID: ev.ID,
			Hook: "h", Rule: "r" + strconv.Itoa(i), Action: "call", Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now})
	}
	if _, err := st.Accept(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	within("the burst was not delivered", func() bool { return calls.Load() == burst })
	took, most := 0, 0
	for _, c := range q.since(mark) {
		took += c.took
		if c.took > 0 {
			most = max(most, c.asked)
		}
	}
	if took != burst {
		t.Errorf("leases after the burst took %d, want %d", took, burst)
	}
	if most <= 8 {
		t.Errorf("no lease after the burst asked for more than 8 (%+v): the burst was leased a few at a time", q.since(mark))
	}
}
