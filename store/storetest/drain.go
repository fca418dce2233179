package storetest

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// drainActions are the actions of the drain benchmark's deliveries: one
// lease-and-finish loop runs per action, as one relay lane would.
var drainActions = []string{"crm", "erp", "slack", "billing"}

// benchAccept accepts event i (one delivery, of action i mod actions) as
// the gateway would.
func benchAccept(s store.Store, b *testing.B, i int64, at time.Time) error {
	key := "bench-" + strconv.FormatInt(i, 10)
	e := store.Event{
		ID:             store.NewEventID("bench", key, at),
		Hook:           "bench",
		ReceivedAt:     at,
		IdempotencyKey: key,
		Headers:        map[string]string{"content-type": "application/json"},
		Body:           []byte(`{"event":"CONTACT_CREATED","data":{"id":"c_1","email":"a@example.com"}}`),
		MatchedRules:   []string{"rule"},
	}
	d := store.Delivery{
		ID: store.NewDeliveryID(e.ID, at), EventID: e.ID, Hook: e.Hook, Rule: "rule",
		Action: drainActions[i%int64(len(drainActions))],
		Status: store.DeliveryPending, NextAttemptAt: at, CreatedAt: at, UpdatedAt: at,
	}
	_, err := s.Accept(b.Context(), store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour})
	return err
}

// drainLane leases up to batch deliveries of action at a time and finishes
// them all as succeeded, until done says to stop and nothing is left. It
// reports how many it finished.
func drainLane(s store.Store, b *testing.B, action string, batch int, done func() bool, finished *atomic.Int64) error {
	ctx := b.Context()
	for {
		// Read before leasing: once done, an empty lease means nothing is left.
		last := done()
		now := time.Now()
		lb, err := s.Lease(ctx, store.LeaseRequest{Now: now, TTL: time.Minute,
			Actions: []store.ActionQuota{{Action: action, N: batch}}})
		if err != nil {
			return err
		}
		if len(lb.Leases) == 0 {
			if last {
				return nil
			}
			time.Sleep(time.Millisecond)
			continue
		}
		fs := make([]store.Finish, len(lb.Leases))
		for i, l := range lb.Leases {
			fs[i] = store.Finish{Lease: l,
				Attempt: store.Attempt{N: 1, StartedAt: now, Duration: time.Millisecond, Method: "POST",
					URL: "https://receiver.example/hook", StatusCode: 200,
					RequestHeaders: map[string]string{"idempotency-key": l.Delivery.ID}},
				Outcome: store.Outcome{Status: store.DeliverySucceeded}}
		}
		errs, err := s.Finish(ctx, fs)
		if err != nil {
			return err
		}
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		finished.Add(int64(len(fs)))
	}
}

// BenchDrain measures how many deliveries per second go through Lease and
// Finish, with the queues filled beforehand ("backlog") and with the
// gateway's Accepts arriving meanwhile ("with-accepts"), and the store's
// work per event when each event is accepted, leased and finished before
// the next ("one-at-a-time"). open must return
// a new, empty store for the benchmark it is given and arrange for it to be
// closed. Each counter is reported per delivery: in "backlog" what Lease
// and Finish alone added to it, in "one-at-a-time" the Accept too.
func BenchDrain(b *testing.B, open func(b *testing.B) store.Store, counters ...ServerCounter) {
	const batch = 64
	b.Run("backlog", func(b *testing.B) {
		s := open(b)
		var wg sync.WaitGroup
		var next atomic.Int64
		for range 64 {
			wg.Go(func() {
				for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
					if err := benchAccept(s, b, i, time.Now().Add(-time.Minute)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		before := ReadCounters(b, counters)
		b.ResetTimer()
		drainLanes(b, s, batch, time.Now(), func() bool { return true })
		ReportCounters(b, counters, before)
	})
	b.Run("with-accepts", func(b *testing.B) {
		s := open(b)
		var (
			producers sync.WaitGroup
			next      atomic.Int64
			accepted  atomic.Bool
		)
		b.ResetTimer()
		start := time.Now()
		for range 32 {
			producers.Go(func() {
				for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
					if err := benchAccept(s, b, i, time.Now()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		go func() {
			producers.Wait()
			accepted.Store(true)
		}()
		drainLanes(b, s, batch, start, accepted.Load)
	})
	// At moderate load the relay leases each event as it arrives, alone,
	// with as much room as its attempts in flight leave: a count that
	// changes from one lease to the next.
	b.Run("one-at-a-time", func(b *testing.B) {
		s := open(b)
		ctx := b.Context()
		before := ReadCounters(b, counters)
		b.ResetTimer()
		self0, selfOK := ProcessCPU()
		for i := range int64(b.N) {
			now := time.Now()
			if err := benchAccept(s, b, i, now); err != nil {
				b.Fatal(err)
			}
			action := drainActions[i%int64(len(drainActions))]
			lb, err := s.Lease(ctx, store.LeaseRequest{Now: now, TTL: time.Minute,
				Actions: []store.ActionQuota{{Action: action, N: batch - int(i%batch), Max: batch}}})
			if err != nil {
				b.Fatal(err)
			}
			if len(lb.Leases) != 1 || lb.Leases[0].Err != nil {
				b.Fatalf("event %d: leased %+v, want its one delivery", i, lb.Leases)
			}
			errs, err := s.Finish(ctx, []store.Finish{{Lease: lb.Leases[0],
				Attempt: store.Attempt{N: 1, StartedAt: now, Duration: time.Millisecond, Method: "POST",
					URL: "https://receiver.example/hook", StatusCode: 200},
				Outcome: store.Outcome{Status: store.DeliverySucceeded}}})
			if err == nil {
				err = errs[0]
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		self1, _ := ProcessCPU()
		b.StopTimer()
		if selfOK {
			b.ReportMetric(float64((self1-self0).Microseconds())/float64(b.N), "cpu-µs/event")
		}
		ReportCounters(b, counters, before)
	})
}

// drainLanes runs one lane per drain action until done holds and nothing
// is left, requires every one of the b.N deliveries finished, and reports
// the rate since start.
func drainLanes(b *testing.B, s store.Store, batch int, start time.Time, done func() bool) {
	var wg sync.WaitGroup
	var finished atomic.Int64
	for _, a := range drainActions {
		wg.Go(func() {
			if err := drainLane(s, b, a, batch, done, &finished); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if got := finished.Load(); got != int64(b.N) {
		b.Fatalf("finished %d deliveries, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
}

// BenchIdleActions measures what the configured actions that have nothing
// due add to each lease: one action has a delivery due at each lease, and
// 0, 9 or 49 others with nothing queued are asked along with it, as a
// relay asks every action of its config. Each iteration accepts the
// delivery, leases it and finishes it; only the Lease is timed, reported
// as "lease-µs/call", and each counter is read around it alone and
// reported per call under its Metric.
func BenchIdleActions(b *testing.B, open func(b *testing.B) store.Store, counters ...ServerCounter) {
	for _, idle := range []int{0, 9, 49} {
		b.Run(fmt.Sprintf("idle=%d", idle), func(b *testing.B) {
			s := open(b)
			ctx := b.Context()
			qs := []store.ActionQuota{{Action: "busy", N: 16, Max: 64}}
			for i := range idle {
				qs = append(qs, store.ActionQuota{Action: "idle-" + strconv.Itoa(i), N: 16, Max: 64})
			}
			var took time.Duration
			added := make([]float64, len(counters))
			b.ResetTimer()
			for i := range int64(b.N) {
				now := time.Now()
				key := "idle-" + strconv.FormatInt(i, 10)
				e := store.Event{ID: store.NewEventID("bench", key, now), Hook: "bench", ReceivedAt: now, IdempotencyKey: key}
				d := store.Delivery{ID: store.NewDeliveryID(e.ID, now), EventID: e.ID, Hook: e.Hook, Rule: "rule", Action: "busy",
					Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}
				if _, err := s.Accept(ctx, store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}); err != nil {
					b.Fatal(err)
				}
				before := ReadCounters(b, counters)
				t0 := time.Now()
				lb, err := s.Lease(ctx, store.LeaseRequest{Now: now, TTL: time.Minute, Actions: qs})
				took += time.Since(t0)
				for j, c := range counters {
					added[j] += c.Read(b) - before[j]
				}
				if err != nil {
					b.Fatal(err)
				}
				if len(lb.Leases) != 1 || lb.Leases[0].Delivery.ID != d.ID {
					b.Fatalf("lease %d: got %d leases, want the one delivery due", i, len(lb.Leases))
				}
				errs, err := s.Finish(ctx, []store.Finish{{Lease: lb.Leases[0],
					Attempt: store.Attempt{N: 1, StartedAt: now, Duration: time.Millisecond, Method: "POST", URL: "https://receiver.example/hook", StatusCode: 200},
					Outcome: store.Outcome{Status: store.DeliverySucceeded}}})
				if err == nil {
					err = errs[0]
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(took.Microseconds())/float64(b.N), "lease-µs/call")
			for j, c := range counters {
				b.ReportMetric(added[j]/float64(b.N), c.Metric)
			}
		})
	}
}
