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
// Lease hands out.
type leaseLog struct {
	store.Store
	mu     sync.Mutex
	leased map[string]bool
}

func (q *leaseLog) Lease(ctx context.Context, r store.LeaseRequest) (store.LeaseBatch, error) {
	b, err := q.Store.Lease(ctx, r)
	q.mu.Lock()
	for _, l := range b.Leases {
		q.leased[l.Delivery.ID] = true
	}
	q.mu.Unlock()
	return b, err
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

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if other := newAccept("v", "call"); r.Offer(&other) != nil {
		t.Error("a stopped relay offered a slot")
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
