package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/redistest"
)

// laneRetry is the wait before the second attempt of a delivery whose
// first one failed: long enough that a lane not held back by another is
// done well before any retry comes.
const laneRetry = 8 * time.Second

// TestOrderingLanes sends 1,000 events over 50 keys to an action with
// order_by: body.key, whose receiver fails the first attempt of the first
// event of 10 keys. For every key, the receiver's successful requests
// arrive in the order the events were sent (each key's events are sent one
// after the other), each once; the 40 keys without a failure are all
// delivered before the first retry of the others is due, so a retrying
// lane holds back only its own key. On SQLite with one process, on Redis
// with two processes sharing the store, and on the Redis Cluster (a store
// of 16 partitions) with two.
func TestOrderingLanes(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 1,000 events and waits out their retries")
	}
	type target struct {
		name      string
		url       func(t *testing.T) string
		processes int
	}
	targets := []target{
		{"sqlite", sqliteStore, 1},
		{"redis", func(t *testing.T) string { return redistest.WithPrefix(redistest.URL(t), redistest.Prefix(t)) }, 2},
		{"cluster", func(t *testing.T) string { u, _ := clusterStore(t); return u }, 2},
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			testOrderingLanes(t, tg.url(t), tg.processes)
		})
	}
}

// laneRequest is one request the lanes receiver got.
type laneRequest struct {
	key, n int
	ok     bool
	at     time.Time
}

func testOrderingLanes(t *testing.T, storeURL string, processes int) {
	const keys, perKey, failing = 50, 20, 10
	var mu sync.Mutex
	var got []laneRequest
	seen := map[string]int{} // attempts per Idempotency-Key
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Key, N int }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		idem := r.Header.Get("Idempotency-Key")
		seen[idem]++
		// The first event of each failing key fails its first attempt.
		fail := body.Key < failing && body.N == 0 && seen[idem] == 1
		got = append(got, laneRequest{body.Key, body.N, !fail, time.Now()})
		mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer rc.Close()

	cfg := relayConfig(t, `
  - name: all
    when: "true"
    actions: [ordered]
`, fmt.Sprintf(`
  ordered:
    url: ${DEMO_API_URL}/ordered
    body: {key: "{{ body.key }}", n: "{{ body.n }}"}
    order_by: body.key
    concurrency: 16
    retry: [%s]
`, laneRetry))
	srvs := make([]*server, processes)
	for i := range srvs {
		srvs[i] = start(t, serverOpts{store: storeURL, api: rc.URL, config: cfg})
	}

	// Each key's events are sent one after the other, keys side by side.
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	sent := time.Now()
	for k := range keys {
		wg.Go(func() {
			for n := range perKey {
				body := fmt.Appendf(nil, `{"key":%d,"n":%d}`, k, n)
				resp, err := client.Post(srvs[(k+n)%processes].url(relayHook), "application/json", bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					errs <- fmt.Errorf("key %d event %d: status %d", k, n, resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d events sent in %v", keys*perKey, time.Since(sent).Round(time.Millisecond))

	// While the failing keys wait for their retry, their lanes show as
	// blocked, in the metrics and in the admin API.
	waitMetric(t, srvs[0].addr, "10 blocked lanes", func(v float64) bool { return v == failing },
		"hookrelay_lanes_blocked", "action", "ordered")
	fams, _ := scrape(t, srvs[0].addr)
	if age := metricValue(fams, "hookrelay_lane_oldest_head_age_seconds", "action", "ordered"); age <= 0 {
		t.Errorf("hookrelay_lane_oldest_head_age_seconds = %v while lanes are blocked, want their head's age", age)
	}
	key := createKey(t, storeURL, "lanes", "read")
	if a := srvs[0].action(t, key, "ordered"); a.BlockedLanes != failing || a.OrderBy == nil || *a.OrderBy != "body.key" || a.OldestLaneHeadAgeSeconds <= 0 {
		t.Errorf("GET /api/v1/actions: ordered = %+v, want %d blocked lanes, order_by body.key and a head's age", a, failing)
	}

	deadline := time.Now().Add(laneRetry + 60*time.Second)
	for {
		mu.Lock()
		ok := 0
		for _, r := range got {
			if r.ok {
				ok++
			}
		}
		mu.Unlock()
		if ok >= keys*perKey || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a late duplicate would arrive by now

	mu.Lock()
	defer mu.Unlock()
	order := map[int][]int{}
	var firstRetry time.Time
	lastFree := map[int]time.Time{} // per key without failures, its last success
	for _, r := range got {
		if r.ok {
			order[r.key] = append(order[r.key], r.n)
			if r.key >= failing {
				lastFree[r.key] = r.at
			}
		}
		if r.ok && r.key < failing && r.n == 0 && (firstRetry.IsZero() || r.at.Before(firstRetry)) {
			firstRetry = r.at
		}
	}
	for k := range keys {
		ns := order[k]
		inOrder := len(ns) == perKey
		for i := range ns {
			inOrder = inOrder && ns[i] == i
		}
		if !inOrder {
			t.Errorf("key %d: successful requests for events %v, want 0 to %d once each, in order", k, ns, perKey-1)
		}
	}
	if firstRetry.IsZero() {
		t.Fatal("no retry of a failing key's first event arrived")
	}
	for k, at := range lastFree {
		if !at.Before(firstRetry) {
			t.Errorf("key %d, which never failed, was done %v after the first retry of another key: held back by a lane not its own",
				k, at.Sub(firstRetry).Round(time.Millisecond))
		}
	}
}

// TestDryRunShowsLane: hookrelay test names the lane an ordered action's
// delivery would wait in, and says when the value is missing; a bad
// order_by stops the config with its place.
func TestDryRunShowsLane(t *testing.T) {
	cfg := relayConfig(t, `
  - name: all
    when: "true"
    actions: [ordered]
`, `
  ordered:
    url: https://api.example.com/orders
    order_by: body.object.id
`)
	dir := t.TempDir()
	with, without := filepath.Join(dir, "with.json"), filepath.Join(dir, "without.json")
	writeFile(t, with, `{"object":{"id":"ord_42"}}`)
	writeFile(t, without, `{"object":{}}`)
	code, out, errOut := run(t, nil, "test", "--config", cfg, "--hook", "in", "--payload", with)
	if code != 0 || !strings.Contains(out, "lane: ord_42 (order_by body.object.id)") {
		t.Errorf("test with an order id: exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
	code, out, errOut = run(t, nil, "test", "--config", cfg, "--hook", "in", "--payload", without)
	if code != 0 || !strings.Contains(out, "lane: none, delivered unordered") {
		t.Errorf("test without an order id: exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}

	bad := strings.Replace(readFile(t, cfg), "order_by: body.object.id", "order_by: body.object.(", 1)
	writeFile(t, cfg, bad)
	code, _, errOut = run(t, nil, "validate", "--config", cfg)
	if code != 2 || !strings.Contains(errOut, `action "ordered": order_by`) || !strings.Contains(errOut, "hookrelay.yaml:") {
		t.Errorf("validate with a bad order_by: exit %d, stderr %q; want the place and the field", code, errOut)
	}
}
