package relay_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookrelay/hookrelay/metrics"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/store"
)

// leaseLog is the store as the relay's queue, noting every delivery that
// Lease hands out, and per call how many of the action "call" it asked
// for and how many deliveries it took.
type leaseLog struct {
	store.Store
	mu     sync.Mutex
	leased map[string]bool
	calls  []leaseCall
}

type leaseCall struct{ asked, took int }

func (q *leaseLog) Lease(ctx context.Context, r store.LeaseRequest) (store.LeaseBatch, error) {
	b, err := q.Store.Lease(ctx, r)
	c := leaseCall{took: len(b.Leases)}
	for _, a := range r.Actions {
		if a.Action == "call" {
			c.asked = a.N
		}
	}
	q.mu.Lock()
	for _, l := range b.Leases {
		q.leased[l.Delivery.ID] = true
	}
	q.calls = append(q.calls, c)
	q.mu.Unlock()
	return b, err
}

// since is the calls from the i-th on.
func (q *leaseLog) since(i int) []leaseCall {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]leaseCall(nil), q.calls[min(i, len(q.calls)):]...)
}

func (q *leaseLog) wasLeased(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.leased[id]
}

// newAccept is an event with one delivery to action, not yet accepted.
func newAccept(id, action string) store.Accept {
	now := time.Now()
	ev := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now, IdempotencyKey: id,
		Body: []byte(`{"id":"` + id + `"}`), Status: store.EventAccepted, Headers: map[string]string{"content-type": "application/json"}}
	d := store.Delivery{ID: store.NewID("dlv", now), EventID: ev.ID, Hook: "h", Rule: "r", Action: action,
		Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}
	return store.Accept{Event: ev, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}
}

// offered waits until the relay offers its room to a (it does once its
// first lease found the queue drained) and returns what to call with the
// accept's answer.
func offered(t *testing.T, r *relay.Relay, a *store.Accept) func(store.Accepted, error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if take := r.Offer(a); take != nil {
			if a.HandOff == nil || len(a.HandOff.Actions) != 1 || a.HandOff.Actions[0].N != 1 {
				t.Fatalf("Offer set HandOff %+v, want one slot of one action", a.HandOff)
			}
			return take
		}
		if time.Now().After(deadline) {
			t.Fatal("the relay offered nothing to an accept while idle")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The relay takes a delivery handed off at its accept and performs it
// without leasing it from the queue; the slot it reserved is given back
// when the accept hands nothing off, and no offer is made beyond the
// process's room.
func TestRelayHandOff(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/call/x" {
			calls.Add(1)
		}
	}))
	defer srv.Close()
	var log *leaseLog
	mx := metrics.New(metrics.Options{})
	st, r := setupOn(t, t.TempDir(), srv.URL, "", relay.Options{MaxInFlight: 1, MaxWait: time.Hour, Metrics: mx},
		func(st store.Store) relay.Queue {
			log = &leaseLog{Store: st, leased: map[string]bool{}}
			return log
		})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	a := newAccept("x", "call")
	take := offered(t, r, &a)
	if other := newAccept("y", "call"); r.Offer(&other) != nil {
		t.Error("the relay offered a second slot with MaxInFlight 1 and one reserved")
	}
	res, err := st.Accept(context.Background(), a)
	take(res, err)
	if err != nil || len(res.Leases) != 1 {
		t.Fatalf("Accept = %+v, %v; want the delivery handed off", res, err)
	}
	id := a.Deliveries[0].ID
	d := waitStatus(t, st, id, store.DeliverySucceeded)
	if d.Attempts != 1 || calls.Load() != 1 {
		t.Errorf("attempts %d, calls %d; want 1 and 1", d.Attempts, calls.Load())
	}
	if log.wasLeased(id) {
		t.Error("the handed-off delivery was leased from the queue too")
	}
	want := "# HELP hookrelay_deliveries_handed_off_total Deliveries this process's relay took in the accept that stored them, instead of leasing them from the queue, by action.\n" +
		"# TYPE hookrelay_deliveries_handed_off_total counter\n" +
		"hookrelay_deliveries_handed_off_total{action=\"call\"} 1\n"
	if err := testutil.GatherAndCompare(mx.Registry(), strings.NewReader(want), "hookrelay_deliveries_handed_off_total"); err != nil {
		t.Error(err)
	}

	// An accept that fails gives the reserved slot back.
	b := newAccept("z", "call")
	take = offered(t, r, &b)
	take(store.Accepted{}, errors.New("store unavailable"))
	c := newAccept("w", "call")
	take = offered(t, r, &c)
	take(store.Accepted{}, errors.New("store unavailable"))
	// Each accept offered a slot is counted, whatever became of it.
	want = "# HELP hookrelay_deliveries_offered_total Deliveries this process's relay offered to take in the accept that stored them, by action; those the store did not hand it are offered less handed off.\n" +
		"# TYPE hookrelay_deliveries_offered_total counter\n" +
		"hookrelay_deliveries_offered_total{action=\"call\"} 3\n"
	if err := testutil.GatherAndCompare(mx.Registry(), strings.NewReader(want), "hookrelay_deliveries_offered_total"); err != nil {
		t.Error(err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if other := newAccept("v", "call"); r.Offer(&other) != nil {
		t.Error("a stopped relay offered a slot")
	}
}

// An offer the store refuses (the action's concurrency, shared by every
// process, is taken by another worker's lease) is counted as offered and
// not as handed off, and the delivery is queued.
func TestRelayCountsOffersTheStoreRefuses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	mx := metrics.New(metrics.Options{})
	mx.Configure(nil, []string{"call"}, nil, nil) // every counter at zero
	st, r := setupWith(t, srv.URL, "    concurrency: 1\n", relay.Options{MaxWait: time.Hour, Metrics: mx})
	// Another worker holds the action's one place.
	enqueue(t, st, "held", "call")
	b, err := st.Lease(context.Background(), store.LeaseRequest{Now: time.Now(), TTL: time.Minute,
		Actions: []store.ActionQuota{{Action: "call", N: 1, Max: 1}}})
	if err != nil || len(b.Leases) != 1 {
		t.Fatalf("Lease = %+v, %v; want the delivery", b, err)
	}
	run(t, r)
	a := newAccept("x", "call")
	take := offered(t, r, &a)
	res, err := st.Accept(context.Background(), a)
	take(res, err)
	if err != nil || len(res.Leases) != 0 {
		t.Fatalf("Accept = %+v, %v; want the delivery queued, the action's place taken", res, err)
	}
	if d, err := st.Delivery(context.Background(), a.Deliveries[0].ID); err != nil || d.Status != store.DeliveryPending || d.LeasedUntil.After(time.Now()) {
		t.Errorf("the refused delivery: %+v, %v; want it pending and not held", d, err)
	}
	want := "# HELP hookrelay_deliveries_handed_off_total Deliveries this process's relay took in the accept that stored them, instead of leasing them from the queue, by action.\n" +
		"# TYPE hookrelay_deliveries_handed_off_total counter\n" +
		"hookrelay_deliveries_handed_off_total{action=\"call\"} 0\n" +
		"# HELP hookrelay_deliveries_offered_total Deliveries this process's relay offered to take in the accept that stored them, by action; those the store did not hand it are offered less handed off.\n" +
		"# TYPE hookrelay_deliveries_offered_total counter\n" +
		"hookrelay_deliveries_offered_total{action=\"call\"} 1\n"
	if err := testutil.GatherAndCompare(mx.Registry(), strings.NewReader(want),
		"hookrelay_deliveries_offered_total", "hookrelay_deliveries_handed_off_total"); err != nil {
		t.Error(err)
	}
}

// The relay offers nothing for an action with a rate (its limiter decides
// at each lease), nor for a delivery in a lane (it waits behind its lane),
// nor while the store would not hand off (Options.HandsOff).
func TestRelayOfferDeclines(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	var storeTakes atomic.Bool
	storeTakes.Store(true)
	_, r := setupWith(t, srv.URL, "  rated:\n    url: "+srv.URL+"/rated\n    rate: 10/s\n",
		relay.Options{MaxWait: time.Hour, HandsOff: storeTakes.Load})
	if a := newAccept("x", "call"); r.Offer(&a) != nil {
		t.Fatal("a relay that does not run offered a slot")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	a := newAccept("x", "call")
	offered(t, r, &a)(store.Accepted{}, errors.New("not sent"))
	// Offered once idle: the rated action is idle too by now.
	b := newAccept("y", "rated")
	if take := r.Offer(&b); take != nil {
		take(store.Accepted{}, errors.New("not sent"))
		t.Error("the relay offered a slot of an action with a rate")
	}
	c := newAccept("z", "call")
	c.Deliveries[0].Lane = "order-1"
	if take := r.Offer(&c); take != nil {
		take(store.Accepted{}, errors.New("not sent"))
		t.Error("the relay offered a slot to a delivery in a lane")
	}
	storeTakes.Store(false)
	d := newAccept("w", "call")
	if take := r.Offer(&d); take != nil {
		take(store.Accepted{}, errors.New("not sent"))
		t.Error("the relay offered a slot while the store would not hand off")
	}
	storeTakes.Store(true)
	offered(t, r, &d)(store.Accepted{}, errors.New("not sent"))
}

// Stopping waits for an accept that was offered slots: what it hands off
// is performed within the grace period, not lost or left held.
func TestRelayStopWaitsForHandOff(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	st, r := setupOn(t, t.TempDir(), srv.URL, "", relay.Options{MaxWait: time.Hour, Grace: 10 * time.Second},
		func(st store.Store) relay.Queue { return st })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	a := newAccept("x", "call")
	take := offered(t, r, &a)
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) before the accept it offered slots to had answered", err)
	case <-time.After(200 * time.Millisecond):
	}
	res, err := st.Accept(context.Background(), a)
	if err != nil || len(res.Leases) != 1 {
		t.Fatalf("Accept = %+v, %v; want the delivery handed off", res, err)
	}
	take(res, err)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if d, err := st.Delivery(context.Background(), a.Deliveries[0].ID); err != nil || d.Status != store.DeliverySucceeded {
		t.Fatalf("handed-off delivery after stop: %+v, %v; want succeeded", d, err)
	}
}

// heldLease is the store as the relay's queue, whose Lease, once armed,
// takes its deliveries and then waits to answer until let go.
type heldLease struct {
	store.Store
	armed  atomic.Bool
	leased chan int      // what the armed Lease took, once taken
	letGo  chan struct{} // closed: the armed Lease answers
}

func (q *heldLease) Lease(ctx context.Context, r store.LeaseRequest) (store.LeaseBatch, error) {
	b, err := q.Store.Lease(ctx, r)
	if len(b.Leases) > 0 && q.armed.CompareAndSwap(true, false) {
		q.leased <- len(b.Leases)
		<-q.letGo
	}
	return b, err
}

// While a lease runs, an accept is still offered the room of an action
// the last lease drained, and what the lease then brings beyond the room
// the offer left is given back: the process never runs more attempts at
// once than MaxInFlight.
func TestRelayOffersWhileLeasing(t *testing.T) {
	var running, most atomic.Int32
	hold := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-hold
	}))
	defer srv.Close()
	q := &heldLease{leased: make(chan int, 1), letGo: make(chan struct{})}
	st, r := setupOn(t, t.TempDir(), srv.URL, "", relay.Options{MaxInFlight: 2, MaxWait: time.Hour},
		func(st store.Store) relay.Queue {
			q.Store = st
			return q
		})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var letGo sync.Once
	defer func() {
		letGo.Do(func() { close(q.letGo) })
		close(hold)
		cancel()
		<-done
	}()
	// Idle and drained: then two deliveries are queued, and the lease that
	// takes them is held.
	first := newAccept("first", "call")
	offered(t, r, &first)(store.Accepted{}, errors.New("not sent"))
	q.armed.Store(true)
	two := newAccept("ab", "call")
	second := two.Deliveries[0]
	second.ID = store.NewID("dlv", time.Now())
	two.Deliveries = append(two.Deliveries, second)
	if _, err := st.Accept(context.Background(), two); err != nil {
		t.Fatal(err)
	}
	queued := []string{two.Deliveries[0].ID, second.ID}
	select {
	case n := <-q.leased:
		if n != 2 {
			t.Fatalf("the held lease took %d deliveries, want 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no lease took the queued deliveries")
	}
	a := newAccept("x", "call")
	take := r.Offer(&a)
	if take == nil {
		t.Fatal("the relay offered nothing while a lease ran, after the last one drained the action")
	}
	res, err := st.Accept(context.Background(), a)
	take(res, err)
	if err != nil || len(res.Leases) != 1 {
		t.Fatalf("Accept = %+v, %v; want the delivery handed off", res, err)
	}
	letGo.Do(func() { close(q.letGo) })
	// The lease's two deliveries meet one slot left: one runs, the other
	// is given back and waits.
	deadline := time.Now().Add(10 * time.Second)
	for running.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if m := most.Load(); m != 2 {
		t.Errorf("at most %d attempts ran at once, want MaxInFlight 2", m)
	}
	leased := 0
	for _, id := range append(queued, a.Deliveries[0].ID) {
		d, err := st.Delivery(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !d.LeasedUntil.IsZero() {
			leased++
		}
	}
	if leased != 2 {
		t.Errorf("%d deliveries held by leases, want 2: the one given back is not held", leased)
	}
}
