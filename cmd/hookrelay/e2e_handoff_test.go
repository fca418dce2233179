package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

// Below saturation, on either store, the relay takes each event's delivery
// in the accept that stores it (Hand-off at accept): the deliveries are
// counted as handed off, and each reaches the receiver once.
func TestHandOffEndToEnd(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) { testHandOffEndToEnd(t, b.url(t)) })
}

// TestClusterHandOffEndToEnd is TestHandOffEndToEnd on a Redis Cluster,
// where the hand-off is reserved in the store's partition 0 and made in
// the event's.
func TestClusterHandOffEndToEnd(t *testing.T) {
	storeURL, _ := clusterStore(t)
	testHandOffEndToEnd(t, storeURL)
}

func testHandOffEndToEnd(t *testing.T, storeURL string) {
	rc := newReceiver(t)
	rc.respond = func(string, int) int { return http.StatusOK }
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: metricsConfig(t)})
	st := openTestStore(t, storeURL)

	// The first event may come before the relay's first lease has found
	// the queue empty; the ones after it come to an idle relay.
	waitDelivery(t, st, srv.sendEvent(t, map[string]any{"kind": "good", "n": 0}), store.DeliverySucceeded)
	before, _ := scrape(t, srv.addr)
	const n = 5
	for i := 1; i <= n; i++ {
		d := waitDelivery(t, st, srv.sendEvent(t, map[string]any{"kind": "good", "n": i}), store.DeliverySucceeded)
		if d.Attempts != 1 {
			t.Errorf("delivery %s took %d attempts, want 1", d.ID, d.Attempts)
		}
	}
	after, _ := scrape(t, srv.addr)
	handed := metricValue(after, "hookrelay_deliveries_handed_off_total", "action", "ok") -
		metricValue(before, "hookrelay_deliveries_handed_off_total", "action", "ok")
	if handed != n {
		t.Errorf("%v of %d deliveries to an idle relay were handed off at their accept, want all", handed, n)
	}
	offers := metricValue(after, "hookrelay_deliveries_offered_total", "action", "ok") -
		metricValue(before, "hookrelay_deliveries_offered_total", "action", "ok")
	if offers != n {
		t.Errorf("%v of %d deliveries to an idle relay were offered at their accept, want all", offers, n)
	}
	if got := len(rc.waitFor(t, "/ok", n+1)); got != n+1 {
		t.Errorf("the receiver got %d requests, want %d", got, n+1)
	}
}

// On Redis the way accepts are written follows the process: with the
// relay in it, every batch runs the accept script (which can hand off),
// never a transaction; an intake-only process (--workers 0) writes
// batches of new events as transactions. Each case has a Redis of its
// own, whose command counts are the process's alone.
func TestRedisAcceptWayFollowsTheRelay(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantExec bool
	}{
		{"relay", nil, false},
		{"intake only", []string{"--workers", "0"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := redistest.Server(t)
			rc := newReceiver(t)
			rc.respond = func(string, int) int { return http.StatusOK }
			srv := start(t, serverOpts{store: url, api: rc.URL, config: metricsConfig(t), args: tc.args})

			// Many senders at once, so that accepts meet in batches.
			const senders, each = 64, 16
			var wg sync.WaitGroup
			var accepted atomic.Int64
			for g := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						body := fmt.Sprintf(`{"kind":"good","n":%d}`, g*each+i)
						resp, err := http.Post(srv.url(relayHook), "application/json", strings.NewReader(body))
						if err != nil {
							continue
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusAccepted {
							accepted.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			if n := accepted.Load(); n != senders*each {
				t.Fatalf("%d of %d events accepted", n, senders*each)
			}

			c := redis.NewClient(mustParseRedisURL(t, url))
			defer c.Close()
			stats, err := c.Info(t.Context(), "commandstats").Result()
			if err != nil {
				t.Fatal(err)
			}
			execs := strings.Contains(stats, "cmdstat_exec:")
			if !strings.Contains(stats, "cmdstat_evalsha:") && !strings.Contains(stats, "cmdstat_eval:") {
				t.Errorf("no accept script ran:\n%s", stats)
			}
			if execs != tc.wantExec {
				t.Errorf("transactions run: %v, want %v (%d events from %d senders at once)\n%s", execs, tc.wantExec, senders*each, senders, stats)
			}
		})
	}
}

func mustParseRedisURL(t *testing.T, url string) *redis.Options {
	t.Helper()
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
