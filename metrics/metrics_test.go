package metrics_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/hookrelay/hookrelay/metrics"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

// countingQueue is a real store that counts how often the queue is read.
type countingQueue struct {
	*sqlitestore.Store
	reads atomic.Int64
}

func (q *countingQueue) QueueStats(ctx context.Context, now time.Time) ([]store.QueueStats, error) {
	q.reads.Add(1)
	return q.Store.QueueStats(ctx, now)
}

func openQueue(t *testing.T) *countingQueue {
	t.Helper()
	st, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "hookrelay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &countingQueue{Store: st}
}

// enqueue stores an event with one pending delivery per action, due at due.
func enqueue(t *testing.T, st store.Store, due time.Time, actions ...string) {
	t.Helper()
	ev := store.Event{ID: store.NewID("evt", due), Hook: "in", ReceivedAt: due, IdempotencyKey: store.NewID("key", due),
		Headers: map[string]string{}, Body: []byte(`{}`)}
	var ds []store.Delivery
	for _, a := range actions {
		ds = append(ds, store.Delivery{ID: store.NewID("dlv", due), EventID: ev.ID, Hook: "in", Rule: "r", Action: a,
			Status: store.DeliveryPending, NextAttemptAt: due, CreatedAt: due, UpdatedAt: due})
	}
	if _, err := st.Accept(t.Context(), store.Accept{Event: ev, Deliveries: ds, KeyTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
}

// Scrapes within CacheFor share one read of the store, and the queue
// gauges name only the actions of the config in force, even when the
// store still holds deliveries of another.
func TestQueueGauges(t *testing.T) {
	q := openQueue(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	enqueue(t, q, now.Add(-90*time.Second), "crm", "removed")
	enqueue(t, q, now.Add(-30*time.Second), "crm")
	m := metrics.New(metrics.Options{
		Queue:    q,
		Actions:  func() []string { return []string{"crm", "idle"} },
		CacheFor: time.Hour,
		Now:      func() time.Time { return now },
	})
	want := `
# HELP hookrelay_deliveries_due Deliveries due now and not held by a worker, by action: the backlog.
# TYPE hookrelay_deliveries_due gauge
hookrelay_deliveries_due{action="crm"} 2
hookrelay_deliveries_due{action="idle"} 0
# HELP hookrelay_deliveries_oldest_due_age_seconds How long the delivery due the longest has waited, by action; 0 when none is due.
# TYPE hookrelay_deliveries_oldest_due_age_seconds gauge
hookrelay_deliveries_oldest_due_age_seconds{action="crm"} 90
hookrelay_deliveries_oldest_due_age_seconds{action="idle"} 0
`
	for range 3 {
		if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
			"hookrelay_deliveries_due", "hookrelay_deliveries_oldest_due_age_seconds"); err != nil {
			t.Fatal(err)
		}
	}
	if n := q.reads.Load(); n != 1 {
		t.Errorf("three scrapes read the queue %d times, want 1", n)
	}
}

// A store that fails gives no queue gauges, not stale or zero ones, and
// counts a store error.
func TestQueueGaugesStoreDown(t *testing.T) {
	q := openQueue(t)
	m := metrics.New(metrics.Options{Queue: q, Actions: func() []string { return []string{"crm"} }})
	q.Close()
	n, err := testutil.GatherAndCount(m.Registry(), "hookrelay_deliveries_due", "hookrelay_action_breaker_state")
	if err != nil || n != 0 {
		t.Errorf("queue gauges with the store closed: %d, %v; want none", n, err)
	}
	if n, err := testutil.GatherAndCount(m.Registry(), "hookrelay_store_errors_total"); err != nil || n != 1 {
		t.Errorf("store error series: %d, %v; want 1", n, err)
	}
}

// timedWrites is a store.WriteTimer of known durations.
type timedWrites struct{ flush, commit store.Durations }

func (w *timedWrites) WriteTimes() []store.WriteTime {
	return []store.WriteTime{{Step: "commit", Histogram: w.commit.Histogram()}, {Step: "flush", Histogram: w.flush.Histogram()}}
}

// The store's own histograms are given as they are, one series per step,
// with their bounds as le labels.
func TestStoreWriteDurations(t *testing.T) {
	w := &timedWrites{}
	w.flush.Observe(3 * time.Millisecond)
	w.flush.Observe(200 * time.Millisecond)
	w.commit.Observe(400 * time.Microsecond)
	m := metrics.New(metrics.Options{Writes: w})
	want := []string{
		`hookrelay_store_write_duration_seconds_bucket{step="flush",le="0.0025"} 0`,
		`hookrelay_store_write_duration_seconds_bucket{step="flush",le="0.005"} 1`,
		`hookrelay_store_write_duration_seconds_bucket{step="flush",le="0.1"} 1`,
		`hookrelay_store_write_duration_seconds_bucket{step="flush",le="0.25"} 2`,
		`hookrelay_store_write_duration_seconds_bucket{step="flush",le="+Inf"} 2`,
		`hookrelay_store_write_duration_seconds_sum{step="flush"} 0.203`,
		`hookrelay_store_write_duration_seconds_count{step="flush"} 2`,
		`hookrelay_store_write_duration_seconds_bucket{step="commit",le="0.0005"} 1`,
		`hookrelay_store_write_duration_seconds_count{step="commit"} 1`,
	}
	got, err := testutil.GatherAndFormat(m.Registry(), expfmt.TypeTextPlain, "hookrelay_store_write_duration_seconds")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range want {
		if !strings.Contains(string(got), line+"\n") {
			t.Errorf("the exposition lacks %s:\n%s", line, got)
		}
	}
}
