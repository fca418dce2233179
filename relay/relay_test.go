package relay_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
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
	dir := t.TempDir()
	cfgFile := dir + "/hookrelay.yaml"
	yaml := `hooks:
  h:
    verify: {scheme: none}
    token: 0123456789abcdef
actions:
  call:
    url: ` + url + `/call/{{ body.id }}
    retry: [10ms, 10ms]
`
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(context.Background(), dir+"/relay.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	client := actions.NewClient(actions.ClientOptions{UserAgent: "hookrelay/test"})
	return st, relay.New(st, client, func() map[string]*actions.Action { return cfg.Actions }, o)
}

func enqueue(t *testing.T, st store.Store, id, action string) string {
	t.Helper()
	now := time.Now()
	ev := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now, IdempotencyKey: id,
		Body: []byte(`{"id":"` + id + `"}`), Status: store.EventAccepted, Headers: map[string]string{"content-type": "application/json"}}
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
