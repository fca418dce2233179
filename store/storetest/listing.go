package storetest

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// ListingEvents is how many events BenchListing stores unless the
// environment variable HOOKRELAY_LISTING_EVENTS says otherwise.
const ListingEvents = 1_000_000

// Listing fixture: events spread over listingHooks hooks; one in five is
// ignored (no delivery), the others have one delivery of one of
// drainActions, left pending or finished as succeeded, retrying or dead.
const listingHooks = 20

// listingEventCount reads HOOKRELAY_LISTING_EVENTS.
func listingEventCount(b *testing.B) int {
	v := os.Getenv("HOOKRELAY_LISTING_EVENTS")
	if v == "" {
		return ListingEvents
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1000 {
		b.Fatalf("HOOKRELAY_LISTING_EVENTS=%q: want a number of events >= 1000", v)
	}
	return n
}

// listingMix spreads event i over hooks, kinds (0: ignored, 1: pending,
// 2: succeeded, 3: retrying, 4: dead) and actions independently.
func listingMix(i int64) (hook, kind, action int) {
	h := uint64(i) * 0x9E3779B97F4A7C15
	h ^= h >> 31
	h *= 0xBF58476D1CE4E5B9
	h ^= h >> 29
	return int(h % listingHooks), int(h / listingHooks % 5), int(h / (listingHooks * 5) % uint64(len(drainActions)))
}

// BenchListing measures the admin listings on a store that holds
// HOOKRELAY_LISTING_EVENTS events (ListingEvents by default): for each
// filter the API offers, the first page of 50 and a page of 50 behind a
// cursor halfway down the events, reported as ms/page, calls/page and
// rows/page: a backend may answer a selective filter with a short page and
// a cursor, which the benchmark follows until it has 50 rows, as a client
// would.
// The store is filled once with Accept from 64 callers, then the deliveries
// that are not to stay pending are leased and finished; this takes minutes
// at a million events, so it is a benchmark only. open must return a new,
// empty store and arrange for it to be emptied and closed.
//
// At 1 M events (2 vCPU, Redis 7.0 on loopback) every page, first or deep,
// takes under 10 ms on SQLite and under 5 ms on Redis, in one call, but for
// a delivery filter on hook, action and status together on Redis: about
// 20 ms in two calls. A time window is bounded by ids on both backends
// (store.CheckEventID), so a window deep in the history costs what a first
// page does.
func BenchListing(b *testing.B, open func(b *testing.B) interface {
	store.Store
	store.Admin
}) {
	n := listingEventCount(b)
	s := open(b)
	// Event i is received at base+i ms, in the past, so that every due
	// delivery can be leased now; ids follow the same clock.
	base := time.Now().Add(-time.Duration(n)*time.Millisecond - time.Hour).Truncate(time.Millisecond)
	at := func(i int64) time.Time { return base.Add(time.Duration(i) * time.Millisecond) }
	later := time.Now().Add(24 * time.Hour)

	start := time.Now()
	fillListing(b, s, n, at, later)
	b.Logf("%d events accepted in %v", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	finished := finishListing(b, s, later)
	b.Logf("%d deliveries leased and finished in %v", finished, time.Since(start).Round(time.Millisecond))

	mid := at(int64(n / 2))
	deepEvt, deepDlv := store.IDsBefore("evt", mid), store.IDsBefore("dlv", mid)
	since, until := at(int64(n*2/5)), at(int64(n*3/5))
	hook := listingHookName(7)
	events := []struct {
		name string
		f    store.EventFilter
	}{
		{"all", store.EventFilter{}},
		{"hook", store.EventFilter{Hook: hook}},
		{"status=accepted", store.EventFilter{Status: store.EventAccepted}},
		{"status=ignored", store.EventFilter{Status: store.EventIgnored}},
		{"hook+status", store.EventFilter{Hook: hook, Status: store.EventIgnored}},
		{"window", store.EventFilter{Since: since, Until: until}},
		{"hook+window", store.EventFilter{Hook: hook, Since: since, Until: until}},
		{"hook+status+window", store.EventFilter{Hook: hook, Status: store.EventIgnored, Since: since, Until: until}},
	}
	for _, c := range events {
		for _, deep := range []bool{false, true} {
			f := c.f
			f.Limit = 50
			if deep {
				f.Cursor = deepEvt
			}
			b.Run("events/"+c.name+"/"+pageName(deep), func(b *testing.B) {
				timePages(b, f.Cursor, func(cursor string) (int, string, error) {
					g := f // f stays as it is for the next round
					g.Cursor = cursor
					evs, next, err := s.ListEvents(b.Context(), g)
					return len(evs), next, err
				})
			})
		}
	}
	deliveries := []struct {
		name string
		f    store.DeliveryFilter
	}{
		{"all", store.DeliveryFilter{}},
		{"hook", store.DeliveryFilter{Hook: hook}},
		{"action", store.DeliveryFilter{Action: drainActions[1]}},
		{"status=pending", store.DeliveryFilter{Status: store.DeliveryPending}},
		{"status=dead", store.DeliveryFilter{Status: store.DeliveryDead}},
		{"hook+status", store.DeliveryFilter{Hook: hook, Status: store.DeliveryDead}},
		{"action+status", store.DeliveryFilter{Action: drainActions[1], Status: store.DeliveryDead}},
		{"hook+action+status", store.DeliveryFilter{Hook: hook, Action: drainActions[1], Status: store.DeliveryDead}},
	}
	for _, c := range deliveries {
		for _, deep := range []bool{false, true} {
			f := c.f
			f.Limit = 50
			if deep {
				f.Cursor = deepDlv
			}
			b.Run("deliveries/"+c.name+"/"+pageName(deep), func(b *testing.B) {
				timePages(b, f.Cursor, func(cursor string) (int, string, error) {
					g := f // f stays as it is for the next round
					g.Cursor = cursor
					ds, next, err := s.ListDeliveries(b.Context(), g)
					return len(ds), next, err
				})
			})
		}
	}
}

func pageName(deep bool) string {
	if deep {
		return "deep"
	}
	return "first"
}

func listingHookName(h int) string { return fmt.Sprintf("hook-%02d", h) }

// timePages reads a page of 50 rows from cursor on b.N times, following
// the cursors a backend returns with a short page (as a client paging
// through would), and reports the mean time of one such page, the calls it
// took and the rows it got.
func timePages(b *testing.B, cursor string, page func(cursor string) (int, string, error)) {
	const want, maxCalls = 50, 10_000
	var rows, calls int
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		rows, calls = 0, 0
		for c := cursor; rows < want && calls < maxCalls; {
			calls++
			got, next, err := page(c)
			if err != nil {
				b.Fatal(err)
			}
			rows += got
			if next == "" {
				break
			}
			c = next
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(elapsed.Microseconds())/1000/float64(b.N), "ms/page")
	b.ReportMetric(float64(calls), "calls/page")
	b.ReportMetric(float64(rows), "rows/page")
}

// fillListing accepts events 0..n-1 from 64 callers. A delivery that is to
// stay pending is due only at later, so that finishListing leaves it.
func fillListing(b *testing.B, s store.Store, n int, at func(int64) time.Time, later time.Time) {
	body := []byte(`{"type":"ORDER","operation":"CREATE","object":{"id":"o_1","lines":[{"sku":"wine-1","qty":6}]},"date":"2030-03-14T15:09:26Z"}`)
	headers := map[string]string{"content-type": "application/json"}
	var next atomic.Int64
	next.Store(-1)
	var wg sync.WaitGroup
	var failed atomic.Bool
	for range 64 {
		wg.Go(func() {
			for i := next.Add(1); i < int64(n) && !failed.Load(); i = next.Add(1) {
				hook, kind, action := listingMix(i)
				t := at(i)
				key := strconv.FormatInt(i, 10)
				e := store.Event{ID: store.NewEventID(listingHookName(hook), key, t), Hook: listingHookName(hook), ReceivedAt: t,
					IdempotencyKey: key, Headers: headers, Body: body}
				a := store.Accept{Event: e, KeyTTL: time.Hour}
				if kind != 0 {
					due := t
					if kind == 1 {
						due = later
					}
					a.Event.MatchedRules = []string{"rule"}
					a.Deliveries = []store.Delivery{{ID: store.NewDeliveryID(e.ID, t), EventID: e.ID, Hook: e.Hook, Rule: "rule",
						Action: drainActions[action], Status: store.DeliveryPending, NextAttemptAt: due, CreatedAt: t, UpdatedAt: t}}
				}
				if _, err := s.Accept(b.Context(), a); err != nil {
					failed.Store(true)
					b.Errorf("Accept %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

// finishListing leases every due delivery, one lane per action, and
// finishes each as succeeded, retrying (due at later) or dead, as its event
// says; it returns how many it finished.
func finishListing(b *testing.B, s store.Store, later time.Time) int64 {
	var finished atomic.Int64
	var wg sync.WaitGroup
	for _, action := range drainActions {
		wg.Go(func() {
			ctx := b.Context()
			for {
				now := time.Now()
				lb, err := s.Lease(ctx, store.LeaseRequest{Now: now, TTL: time.Minute,
					Actions: []store.ActionQuota{{Action: action, N: 500}}})
				if err != nil {
					b.Error(err)
					return
				}
				if len(lb.Leases) == 0 {
					return
				}
				fs := make([]store.Finish, len(lb.Leases))
				for i, l := range lb.Leases {
					i64, err := strconv.ParseInt(l.Event.IdempotencyKey, 10, 64)
					if err != nil {
						b.Errorf("event %s: key %q", l.Event.ID, l.Event.IdempotencyKey)
						return
					}
					a := store.Attempt{N: 1, StartedAt: now, Duration: time.Millisecond, Method: "POST",
						URL: "https://receiver.example/hook", StatusCode: 200,
						RequestHeaders: map[string]string{"idempotency-key": l.Delivery.ID}}
					o := store.Outcome{Status: store.DeliverySucceeded}
					switch _, kind, _ := listingMix(i64); kind {
					case 3:
						a.StatusCode = 503
						o = store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: later, Error: "503 Service Unavailable"}
					case 4:
						a.StatusCode = 410
						o = store.Outcome{Status: store.DeliveryDead, Error: "410 Gone"}
					}
					fs[i] = store.Finish{Lease: l, Attempt: a, Outcome: o}
				}
				errs, err := s.Finish(ctx, fs)
				if err != nil {
					b.Error(err)
					return
				}
				for _, err := range errs {
					if err != nil {
						b.Error(err)
						return
					}
				}
				finished.Add(int64(len(fs)))
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return finished.Load()
}
