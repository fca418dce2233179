package relay_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

// setup returns a store, a config whose actions point at url, and a relay.
func setup(t *testing.T, url string, o relay.Options) (store.Store, *relay.Relay) {
	t.Helper()
	return setupWith(t, url, "", o)
}

// setupWith is setup with more settings for the action "call" (YAML lines
// indented by four spaces).
func setupWith(t *testing.T, url, extra string, o relay.Options) (store.Store, *relay.Relay) {
	t.Helper()
	return setupIn(t, t.TempDir(), url, extra, o)
}

// setupIn is setupWith on the store file relay.db of dir, opened with
// opts.
func setupIn(t *testing.T, dir, url, extra string, o relay.Options, opts ...sqlitestore.Option) (store.Store, *relay.Relay) {
	t.Helper()
	return setupOn(t, dir, url, extra, o, func(st store.Store) relay.Queue { return st }, opts...)
}

// setupOn is setupIn with the relay's queue made from the store by queue.
func setupOn(t *testing.T, dir, url, extra string, o relay.Options, queue func(store.Store) relay.Queue, opts ...sqlitestore.Option) (store.Store, *relay.Relay) {
	t.Helper()
	cfgFile := dir + "/hookrelay.yaml"
	yaml := `hooks:
  h:
    verify: {scheme: none}
    token: 0123456789abcdef
actions:
  call:
    url: ` + url + `/call/{{ body.id }}
    retry: [10ms, 10ms]
` + extra
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(context.Background(), dir+"/relay.db", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// The client keeps the relay's clock, as in serve.
	client := actions.NewClient(actions.ClientOptions{UserAgent: "hookrelay/test", Now: o.Now})
	return st, relay.New(queue(st), client, func() map[string]*actions.Action { return cfg.Actions }, o)
}

func enqueue(t *testing.T, st store.Store, id, action string) string {
	t.Helper()
	return enqueueBody(t, st, id, action, `{"id":"`+id+`"}`)
}

// enqueueBody is enqueue with the event's body given.
func enqueueBody(t *testing.T, st store.Store, id, action, body string) string {
	t.Helper()
	now := time.Now()
	ev := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now, IdempotencyKey: id,
		Body: []byte(body), Status: store.EventAccepted, Headers: map[string]string{"content-type": "application/json"}}
	d := store.Delivery{ID: store.NewID("dlv", now), EventID: ev.ID, Hook: "h", Rule: "r", Action: action,
		Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}
	if _, err := st.Accept(context.Background(), store.Accept{Event: ev, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	return d.ID
}

func waitStatus(t *testing.T, st store.Store, id string, want store.DeliveryStatus) store.Delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := st.Delivery(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status == want {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s is %s, want %s", id, d.Status, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRelayDeliversRetriesAndGivesUp(t *testing.T) {
	var okCalls, badCalls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/call/ok":
			okCalls.Add(1)
		case "/call/bad":
			badCalls.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	st, r := setup(t, srv.URL, relay.Options{MaxInFlight: 2, OrphanScan: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	ok := enqueue(t, st, "ok", "call")
	bad := enqueue(t, st, "bad", "call")
	gone := enqueue(t, st, "gone", "removed-action")

	d := waitStatus(t, st, ok, store.DeliverySucceeded)
	if d.Attempts != 1 || okCalls.Load() != 1 {
		t.Errorf("ok: attempts %d, calls %d", d.Attempts, okCalls.Load())
	}
	d = waitStatus(t, st, bad, store.DeliveryDead)
	if d.Attempts != 3 || badCalls.Load() != 3 {
		t.Errorf("bad: attempts %d, calls %d; want 3 (schedule of two waits)", d.Attempts, badCalls.Load())
	}
	attempts, err := st.Attempts(context.Background(), bad)
	if err != nil || len(attempts) != 3 {
		t.Fatalf("attempts: %d, %v", len(attempts), err)
	}
	for i, a := range attempts {
		if a.N != i+1 || a.StatusCode != 500 || a.Method != http.MethodPost || a.URL != srv.URL+"/call/bad" {
			t.Errorf("attempt %d = %+v", i, a)
		}
	}
	d = waitStatus(t, st, gone, store.DeliveryDead)
	if d.Attempts != 1 || d.LastError == "" {
		t.Errorf("missing action: %+v", d)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// At stop, an attempt that does not finish within the grace period is
// cancelled and not recorded: the delivery stays due for another worker.
func TestRelayStopAbandonsAttemptAfterGrace(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	st, r := setup(t, srv.URL, relay.Options{MaxInFlight: 1, Grace: 50 * time.Millisecond, Lease: time.Hour})
	id := enqueue(t, st, "slow", "call")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	d, err := st.Delivery(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != store.DeliveryPending || d.Attempts != 0 {
		t.Errorf("after abandoned attempt: %+v, want pending with no attempt", d)
	}
	if a, _ := st.Attempts(context.Background(), id); len(a) != 0 {
		t.Errorf("abandoned attempt was recorded: %+v", a)
	}
}

// An attempt in flight at stop that finishes within the grace period is recorded.
func TestRelayStopFinishesWithinGrace(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
	}))
	defer srv.Close()
	st, r := setup(t, srv.URL, relay.Options{MaxInFlight: 1, Grace: 10 * time.Second})
	id := enqueue(t, st, "inflight", "call")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-started
	cancel()
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if d, _ := st.Delivery(context.Background(), id); d.Status != store.DeliverySucceeded {
		t.Errorf("status = %s, want succeeded", d.Status)
	}
}

// A new delivery wakes a waiting relay at once: with a poll interval of an
// hour, only the store's wake-up can get it delivered in time.
func TestRelayWakesOnNewDelivery(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	st, r := setup(t, srv.URL, relay.Options{MaxInFlight: 1, MaxWait: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for i, id := range []string{"first", "second"} {
		d := enqueue(t, st, id, "call")
		waitStatus(t, st, d, store.DeliverySucceeded)
		if got := calls.Load(); got != int32(i+1) {
			t.Errorf("calls = %d, want %d", got, i+1)
		}
	}
	cancel()
	<-done
}

// run starts r and returns a stop function that waits for Run to return.
func run(t *testing.T, r *relay.Relay) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// An attempt that outlives the lease keeps it (it is renewed while the
// request runs): the receiver sees one request and the delivery succeeds.
func TestRelayRenewsTheLeaseOfASlowAttempt(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		// Several leases long; a lease is renewed every third of it, so a
		// renewal may be late by most of a second on a busy machine.
		time.Sleep(4 * time.Second)
	}))
	defer srv.Close()
	st, r := setup(t, srv.URL, relay.Options{Lease: 1500 * time.Millisecond, MaxWait: 50 * time.Millisecond})
	id := enqueue(t, st, "slow", "call")
	stop := run(t, r)
	d := waitStatus(t, st, id, store.DeliverySucceeded)
	time.Sleep(500 * time.Millisecond) // a second request would have come by now
	stop()
	if n := calls.Load(); n != 1 || d.Attempts != 1 {
		t.Errorf("receiver saw %d requests, delivery %d attempts; want 1 and 1", n, d.Attempts)
	}
}

// A stop that outlasts the grace period releases the abandoned delivery at
// once: it is due again now, not when its lease would have ended.
func TestRelayReleasesAbandonedDeliveriesAtStop(t *testing.T) {
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The body is read first: only then does the server notice the
		// client hanging up, which ends r.Context().
		_, _ = io.Copy(io.Discard, r.Body)
		started <- struct{}{}
		<-r.Context().Done()
	}))
	defer srv.Close()
	st, r := setup(t, srv.URL, relay.Options{Grace: 50 * time.Millisecond, Lease: time.Hour})
	id := enqueue(t, st, "hang", "call")
	stop := run(t, r)
	<-started
	stop()
	d, err := st.Delivery(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != store.DeliveryPending || d.Attempts != 0 || !d.LeasedUntil.IsZero() {
		t.Fatalf("after stop: %+v, want pending, not attempted, not leased", d)
	}
	b, err := st.Lease(context.Background(), store.LeaseRequest{Now: time.Now(), TTL: time.Minute, Actions: []store.ActionQuota{{Action: "call", N: 5}}})
	if err != nil || len(b.Leases) != 1 || b.Leases[0].Delivery.ID != id {
		t.Errorf("Lease right after stop = %d leases, %v; want the released delivery", len(b.Leases), err)
	}
}

// A hanging destination holds only its own action's concurrency: another
// action's deliveries flow meanwhile.
func TestRelayIsolatesAHangingAction(t *testing.T) {
	var hanging, inFlight, maxInFlight atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/call/hang") {
			hanging.Add(1)
			n := inFlight.Add(1)
			for {
				m := maxInFlight.Load()
				if n <= m || maxInFlight.CompareAndSwap(m, n) {
					break
				}
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
			inFlight.Add(-1)
		}
	}))
	defer srv.Close()
	defer close(release)
	extra := "    concurrency: 2\n  fast:\n    url: " + srv.URL + "/fast\n"
	st, r := setupWith(t, srv.URL, extra, relay.Options{Grace: 50 * time.Millisecond})
	// setupWith's "call" goes to /call/{id}: point it at the hanging path.
	var slow, fast []string
	for i := range 6 {
		slow = append(slow, enqueue(t, st, "hang-"+strconv.Itoa(i), "call"))
	}
	run(t, r)
	for i := range 20 {
		fast = append(fast, enqueue(t, st, "f"+strconv.Itoa(i), "fast"))
	}
	for _, id := range fast {
		waitStatus(t, st, id, store.DeliverySucceeded)
	}
	if m := maxInFlight.Load(); m > 2 {
		t.Errorf("the hanging destination had %d requests in flight, want at most its concurrency 2", m)
	}
	pending := 0
	for _, id := range slow {
		if d, _ := st.Delivery(context.Background(), id); d.Status == store.DeliveryPending {
			pending++
		}
	}
	if pending != len(slow) {
		t.Errorf("%d of %d hanging deliveries pending, want all", pending, len(slow))
	}
}

// The breaker opens after its failures, holds the deliveries without
// attempts during the cool-down, sends one probe, and closes on success.
func TestRelayBreakerProbesAfterTheCooldown(t *testing.T) {
	var calls atomic.Int32
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if !healthy.Load() {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	// Three attempts per delivery (retry: [10ms, 10ms]): two failures
	// open the breaker before any delivery runs out of attempts.
	extra := "    concurrency: 1\n    breaker: {failures: 2, cooldown: 700ms}\n"
	st, r := setupWith(t, srv.URL, extra, relay.Options{MaxWait: 20 * time.Millisecond})
	var ids []string
	for i := range 4 {
		ids = append(ids, enqueue(t, st, "b"+strconv.Itoa(i), "call"))
	}
	run(t, r)
	deadline := time.Now().Add(10 * time.Second)
	var s store.ActionState
	for s.Breaker != store.BreakerOpen {
		if time.Now().After(deadline) {
			t.Fatalf("breaker not open after %d calls: %+v", calls.Load(), s)
		}
		time.Sleep(5 * time.Millisecond)
		sts, _ := st.ActionStates(context.Background())
		if len(sts) == 1 {
			s = sts[0]
		}
	}
	opened := calls.Load()
	if opened != 2 {
		t.Errorf("the breaker opened after %d calls, want 2", opened)
	}
	time.Sleep(300 * time.Millisecond) // well inside the cool-down
	if n := calls.Load(); n != opened {
		t.Errorf("%d calls during the cool-down, want none", n-opened)
	}
	healthy.Store(true)
	for _, id := range ids {
		waitStatus(t, st, id, store.DeliverySucceeded)
	}
	sts, _ := st.ActionStates(context.Background())
	if len(sts) != 1 || sts[0].Breaker != store.BreakerClosed || sts[0].Failures != 0 {
		t.Errorf("state after recovery = %+v, want closed", sts)
	}
}

// A paused action sends nothing; resumed, its backlog goes out.
func TestRelayPause(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	st, r := setup(t, srv.URL, relay.Options{MaxWait: 20 * time.Millisecond})
	paused, err := st.PutActionState(context.Background(), store.ActionState{Action: "call", Paused: true, ChangedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 5 {
		ids = append(ids, enqueue(t, st, "p"+strconv.Itoa(i), "call"))
	}
	run(t, r)
	time.Sleep(300 * time.Millisecond)
	if n := calls.Load(); n != 0 {
		t.Fatalf("a paused action made %d calls", n)
	}
	paused.Paused = false
	if _, err := st.PutActionState(context.Background(), paused); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		waitStatus(t, st, id, store.DeliverySucceeded)
	}
	if n := calls.Load(); n != 5 {
		t.Errorf("%d calls after resume, want 5", n)
	}
}

// A rate holds: at 20/s, 30 deliveries take about a second and a half.
func TestRelayRate(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
	}))
	defer srv.Close()
	st, r := setupWith(t, srv.URL, "    rate: 20/s\n", relay.Options{MaxWait: 20 * time.Millisecond})
	var ids []string
	for i := range 30 {
		ids = append(ids, enqueue(t, st, "r"+strconv.Itoa(i), "call"))
	}
	run(t, r)
	for _, id := range ids {
		waitStatus(t, st, id, store.DeliverySucceeded)
	}
	mu.Lock()
	defer mu.Unlock()
	// Any window of one second holds at most the rate and its burst.
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < time.Second; j++ {
			n++
		}
		if n > 20+(store.Rate{Count: 20, Per: time.Second}).Burst() {
			t.Fatalf("%d requests within one second from request %d, want at most 22", n, i)
		}
	}
}
