package storetest

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// BenchMemory measures what a stored event costs a backend's memory, as
// used reports it (Redis: INFO memory's used_memory): b.N events are
// accepted as Bench accepts them (a ~1 KiB body, headers, an idempotency
// key kept a day, one delivery), then every delivery is leased and
// finished succeeded, with one attempt recorded. It reports bytes per
// event with the delivery queued ("bytes/event-queued") and once
// delivered ("bytes/event-delivered"). Run it with a fixed count, e.g.
// -benchtime 20000x: the per-event figure is what matters, not the time.
func BenchMemory(b *testing.B, open func(b *testing.B) store.Store, used func(b *testing.B) int64) {
	s := open(b)
	ctx := b.Context()
	headers := map[string]string{"content-type": "application/json", "x-oncloudwine-signature": "5d41402abc4b2a76b9719d911017c592"}
	before := used(b)
	b.ResetTimer()
	for i := range b.N {
		now := time.Now()
		e := store.Event{ID: store.NewID("evt", now), Hook: "bench", ReceivedAt: now,
			IdempotencyKey: "bench-" + strconv.Itoa(i), Headers: headers, Body: benchBody, MatchedRules: []string{"rule"}}
		d := store.Delivery{ID: store.NewID("dlv", now), EventID: e.ID, Hook: e.Hook, Rule: "rule", Action: "action",
			Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}
		if _, err := s.Accept(ctx, store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: 24 * time.Hour}); err != nil {
			b.Fatalf("Accept: %v", err)
		}
	}
	queued := used(b)
	var finished atomic.Int64
	if err := drainLane(s, b, "action", 256, func() bool { return true }, &finished); err != nil {
		b.Fatalf("drain: %v", err)
	}
	b.StopTimer()
	if finished.Load() != int64(b.N) {
		b.Fatalf("delivered %d of %d", finished.Load(), b.N)
	}
	b.ReportMetric(float64(queued-before)/float64(b.N), "bytes/event-queued")
	b.ReportMetric(float64(used(b)-before)/float64(b.N), "bytes/event-delivered")
}
