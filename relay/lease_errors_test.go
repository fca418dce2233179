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

	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
	"github.com/hookrelay/hookrelay/store/storetest"
)

// An event the store cannot open (sealed with a key this process's ring
// lacks) fails its own delivery's attempts without a request: the other
// deliveries of the action, leased with it, are delivered, the action's
// breaker (opening at the first failure here) does not count them, and
// the delivery is retried on its schedule, then dead.
func TestRelayUnreadableEvent(t *testing.T) {
	var (
		mu    sync.Mutex
		paths []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
	}))
	defer srv.Close()

	dir := t.TempDir()
	before, err := sqlitestore.Open(context.Background(), dir+"/relay.db", sqlitestore.WithKeys(storetest.KeyRing(t, "k1")))
	if err != nil {
		t.Fatal(err)
	}
	lost := enqueue(t, before, "lost", "call")
	if err := before.Close(); err != nil {
		t.Fatal(err)
	}

	st, r := setupIn(t, dir, srv.URL, "    breaker: {failures: 1}\n",
		relay.Options{MaxInFlight: 4, OrphanScan: 50 * time.Millisecond}, sqlitestore.WithKeys(storetest.KeyRing(t, "k2")))
	ok := []string{enqueue(t, st, "ok-1", "call"), enqueue(t, st, "ok-2", "call")}
	run(t, r)
	for _, id := range ok {
		waitStatus(t, st, id, store.DeliverySucceeded)
	}
	d := waitStatus(t, st, lost, store.DeliveryDead)
	if d.Attempts != 3 {
		t.Errorf("the unreadable delivery is dead after %d attempts, want 3 (the schedule's)", d.Attempts)
	}
	as, err := st.Attempts(context.Background(), lost)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if !strings.Contains(a.Error, "cannot be read by this process, nothing was sent") || !strings.Contains(a.Error, "k1") ||
			a.StatusCode != 0 || a.URL != "" {
			t.Errorf("attempt %d of the unreadable delivery: %+v; want the reason naming k1 and no request", a.N, a)
		}
	}
	states, err := st.ActionStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if s.Action == "call" && (s.Breaker != "" || s.Failures != 0) {
			t.Errorf("action state %+v: the unreadable attempts counted against the breaker", s)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 2 || !strings.HasPrefix(paths[0], "/call/ok-") || !strings.HasPrefix(paths[1], "/call/ok-") {
		t.Errorf("the receiver got %v, want the two readable deliveries only", paths)
	}
}

// failingLease is a store whose first Lease call fails after taking its
// leases, as a partitioned store's call does when one partition fails:
// the leases come back with the error.
type failingLease struct {
	store.Store
	failed atomic.Bool
}

func (f *failingLease) Lease(ctx context.Context, r store.LeaseRequest) (store.LeaseBatch, error) {
	b, err := f.Store.Lease(ctx, r)
	if err == nil && len(b.Leases) > 0 && f.failed.CompareAndSwap(false, true) {
		return b, errors.New("one partition did not answer")
	}
	return b, err
}

// The leases a failed Lease call hands back with its error are given back
// at once: delivered on the next call, not after the lease (an hour here)
// ends.
func TestRelayReleasesLeasesOfAFailedCall(t *testing.T) {
	var got atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	defer srv.Close()
	var q *failingLease
	st, r := setupOn(t, t.TempDir(), srv.URL, "", relay.Options{Lease: time.Hour, OrphanScan: 50 * time.Millisecond},
		func(st store.Store) relay.Queue { q = &failingLease{Store: st}; return q })
	id := enqueue(t, st, "a", "call")
	run(t, r)
	waitStatus(t, st, id, store.DeliverySucceeded)
	if !q.failed.Load() || got.Load() != 1 {
		t.Errorf("failed call %v, %d requests; want the failure, then one request", q.failed.Load(), got.Load())
	}
}
