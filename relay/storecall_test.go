package relay_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/hookrelay/hookrelay/metrics"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/store"
)

// slowQueue is a store whose Lease and Finish each take at least delay.
type slowQueue struct {
	store.Store
	delay time.Duration
}

func (q slowQueue) Lease(ctx context.Context, r store.LeaseRequest) (store.LeaseBatch, error) {
	time.Sleep(q.delay)
	return q.Store.Lease(ctx, r)
}

func (q slowQueue) Finish(ctx context.Context, fs []store.Finish) ([]error, error) {
	time.Sleep(q.delay)
	return q.Store.Finish(ctx, fs)
}

// TestRelayTimesItsStoreCalls: hookrelay_store_call_duration_seconds
// counts every lease and finish call of the relay with the time it took,
// so that a relay waiting on its store shows.
func TestRelayTimesItsStoreCalls(t *testing.T) {
	const delay = 20 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	mx := metrics.New(metrics.Options{})
	// Before the relay runs, both operations are there, at zero.
	for _, op := range []string{"lease", "finish"} {
		if n, _ := storeCalls(t, mx, op); n != 0 {
			t.Errorf("%s calls before the relay ran: %d, want 0", op, n)
		}
	}
	st, r := setupOn(t, t.TempDir(), srv.URL, "", relay.Options{MaxWait: 50 * time.Millisecond, Metrics: mx},
		func(st store.Store) relay.Queue { return slowQueue{Store: st, delay: delay} })
	a := newAccept("x", "call")
	if _, err := st.Accept(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	waitStatus(t, st, a.Deliveries[0].ID, store.DeliverySucceeded)
	// The outcome is recorded before the delivery reads as succeeded, and
	// the call is timed once it returns.
	deadline := time.Now().Add(10 * time.Second)
	for {
		leases, leaseSum := storeCalls(t, mx, "lease")
		finishes, finishSum := storeCalls(t, mx, "finish")
		if leases >= 1 && finishes >= 1 {
			if leaseSum < float64(leases)*delay.Seconds() || finishSum < float64(finishes)*delay.Seconds() {
				t.Errorf("%d leases in %vs, %d finishes in %vs: each took at least %v", leases, leaseSum, finishes, finishSum, delay)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %d lease calls and %d finish calls timed, want one of each at least", leases, finishes)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// storeCalls reads the count and sum of hookrelay_store_call_duration_seconds{op}.
func storeCalls(t *testing.T, mx *metrics.Metrics, op string) (uint64, float64) {
	t.Helper()
	fams, err := mx.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "hookrelay_store_call_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelIs(m, "op", op) {
				return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
			}
		}
	}
	t.Fatalf("no hookrelay_store_call_duration_seconds{op=%q}", op)
	return 0, 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
