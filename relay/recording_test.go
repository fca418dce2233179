package relay_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookrelay/hookrelay/metrics"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/store"
)

// heldFinish is the store as the relay's queue, its Finish held until
// open is closed: the outcomes of ended attempts wait to be recorded.
type heldFinish struct {
	store.Store
	open chan struct{}
}

func (q *heldFinish) Finish(ctx context.Context, fs []store.Finish) ([]error, error) {
	<-q.open
	return q.Store.Finish(ctx, fs)
}

// TestRelayLeasesPastOutcomesBeingRecorded: an attempt whose answer came
// back no longer takes a place under its action's concurrency while its
// outcome is recorded, here and in the store's cap on live leases
// (store.ActionQuota.Recording): with the store slow to record, the relay
// goes on delivering, never more than the concurrency at once, and stops
// when as many outcomes as the concurrency wait besides.
func TestRelayLeasesPastOutcomesBeingRecorded(t *testing.T) {
	const concurrency, n = 2, 8
	var inflight, most, arrived atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := inflight.Add(1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		inflight.Add(-1)
		arrived.Add(1)
	}))
	defer srv.Close()
	q := &heldFinish{open: make(chan struct{})}
	mx := metrics.New(metrics.Options{})
	st, r := setupOn(t, t.TempDir(), srv.URL, "    concurrency: 2\n", relay.Options{MaxWait: 50 * time.Millisecond, Metrics: mx},
		func(st store.Store) relay.Queue { q.Store = st; return q })
	ids := make([]string, n)
	for i := range ids {
		ids[i] = enqueue(t, st, "evt-"+string(rune('a'+i)), "call")
	}
	stop := run(t, r)
	deadline := time.Now().Add(10 * time.Second)
	for arrived.Load() < 2*concurrency {
		if time.Now().After(deadline) {
			close(q.open)
			stop()
			t.Fatalf("%d deliveries arrived while no outcome could be recorded, want %d: the leases being recorded still counted", arrived.Load(), 2*concurrency)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Held there: the relay looks again every 50 ms.
	time.Sleep(300 * time.Millisecond)
	if got := arrived.Load(); got != 2*concurrency {
		t.Errorf("%d deliveries arrived while no outcome could be recorded, want %d: twice the concurrency at most", got, 2*concurrency)
	}
	// Every attempt that ended waits to be recorded: the gauge shows them.
	recording := func(n int) string {
		return "# HELP hookrelay_delivery_outcomes_recording Delivery attempts of this process that have ended and whose outcomes wait to be written to the store, by action.\n" +
			"# TYPE hookrelay_delivery_outcomes_recording gauge\n" +
			"hookrelay_delivery_outcomes_recording{action=\"call\"} " + string(rune('0'+n)) + "\n"
	}
	if err := testutil.GatherAndCompare(mx.Registry(), strings.NewReader(recording(2*concurrency)), "hookrelay_delivery_outcomes_recording"); err != nil {
		t.Errorf("while outcomes wait: %v", err)
	}
	close(q.open)
	for _, id := range ids {
		waitStatus(t, st, id, store.DeliverySucceeded)
	}
	stop()
	if err := testutil.GatherAndCompare(mx.Registry(), strings.NewReader(recording(0)), "hookrelay_delivery_outcomes_recording"); err != nil {
		t.Errorf("once recorded: %v", err)
	}
	if m := most.Load(); m > concurrency {
		t.Errorf("%d requests at once at the destination, want at most %d", m, concurrency)
	}
	if m := most.Load(); m < 1 {
		t.Errorf("no request seen at the destination")
	}
}
