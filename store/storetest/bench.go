package storetest

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// ServerCounter reads a cumulative figure of a backend's server (Redis:
// INFO cpu, INFO commandstats) in the unit of Metric, so that a benchmark
// can report what one event added to it: Metric names the per-event
// figure, e.g. "redis-µs/event".
type ServerCounter struct {
	Metric string
	Read   func(b *testing.B) float64
}

// benchBody is a ~1 KiB JSON event body, the size of a typical provider
// webhook.
var benchBody = []byte(`{"event":"CONTACT_CREATED","timestamp":"2030-03-14T15:09:26Z","organizationId":"org_1","data":{"id":"c_1","email":"a@example.com","note":"` +
	strings.Repeat("x", 880) + `"}}`)

// Bench measures Accept throughput with 1, 16 and 64 concurrent callers and
// reports it as events/s. Every Accept carries a ~1 KiB JSON body, a new
// idempotency key and one delivery, like a typical inbound webhook that
// matched one rule. open must return a new, empty store for the benchmark
// it is given. It reports this process's CPU time per event too
// ("cpu-µs/event": the callers' and the store's work in the process),
// which a machine shared with others disturbs less than the rate does.
// Each counter is reported per event too (a counter of a shared server
// counts whatever else it did meanwhile).
func Bench(b *testing.B, open func(b *testing.B) store.Store, counters ...ServerCounter) {
	headers := map[string]string{"content-type": "application/json", "x-oncloudwine-signature": "5d41402abc4b2a76b9719d911017c592"}
	for _, callers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			s := open(b)
			ctx := b.Context()
			var next atomic.Int64
			var (
				errOnce  sync.Once
				firstErr error
			)
			before := ReadCounters(b, counters)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			self0, selfOK := ProcessCPU()
			for range callers {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						now := time.Now()
						key := "bench-" + strconv.FormatInt(i, 10)
						e := store.Event{
							ID:             store.NewEventID("bench", key, now),
							Hook:           "bench",
							ReceivedAt:     now,
							IdempotencyKey: key,
							Headers:        headers,
							Body:           benchBody,
							MatchedRules:   []string{"rule"},
						}
						d := store.Delivery{
							ID: store.NewDeliveryID(e.ID, now), EventID: e.ID, Hook: e.Hook, Rule: "rule", Action: "action",
							Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now,
						}
						if _, err := s.Accept(ctx, store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: 24 * time.Hour}); err != nil {
							errOnce.Do(func() { firstErr = err })
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			self1, _ := ProcessCPU()
			b.StopTimer()
			if firstErr != nil {
				b.Fatalf("Accept: %v", firstErr)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			if selfOK {
				b.ReportMetric(float64((self1-self0).Microseconds())/float64(b.N), "cpu-µs/event")
			}
			ReportCounters(b, counters, before)
		})
	}
}

// ReadCounters reads every counter, for ReportCounters: a benchmark of
// its own reads them before its timed part.
func ReadCounters(b *testing.B, counters []ServerCounter) []float64 {
	before := make([]float64, len(counters))
	for i, c := range counters {
		before[i] = c.Read(b)
	}
	return before
}

// ReportCounters reports what each counter added since before, per one of
// the b.N operations, under its Metric.
func ReportCounters(b *testing.B, counters []ServerCounter, before []float64) {
	for i, c := range counters {
		b.ReportMetric((c.Read(b)-before[i])/float64(b.N), c.Metric)
	}
}
