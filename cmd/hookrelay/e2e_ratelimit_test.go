package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// A hook's rate_limit: holds across every process on one Redis store and
// per process on the embedded store: 10/m lets one request through at once
// and one more every 6s, so however long the requests take, no more than
// 1 + elapsed/6s of them are accepted in all — two processes each with a
// budget of their own would accept at least two. The others are answered
// 429 with a Retry-After of whole seconds, nothing of them is stored, and
// each is counted as rate_limited.
func TestHookRateLimit(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			testHookRateLimit(t, b.url(t), relayProcesses(b.name))
		})
	}
}

func testHookRateLimit(t *testing.T, storeURL string, processes int) {
	const perProcess = 12
	interval := 6 * time.Second // 10/m
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hookrelay.yaml"), `hooks:
  in:
    verify:
      scheme: none
    auth:
      allow_ips: [127.0.0.1]
    rate_limit: 10/m
`)
	var srvs []*server
	for range processes {
		srvs = append(srvs, start(t, serverOpts{store: storeURL, config: filepath.Join(dir, "hookrelay.yaml")}))
	}

	var accepted []string
	limited := 0
	began := time.Now()
	for n := range perProcess * processes {
		s := srvs[n%processes]
		req, err := http.NewRequest(http.MethodPost, s.url("/hooks/catch/in"), strings.NewReader(fmt.Sprintf(`{"n":%d}`, n)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusAccepted:
			id, _ := out["id"].(string)
			accepted = append(accepted, id)
		case http.StatusTooManyRequests:
			limited++
			ra, raErr := strconv.Atoi(resp.Header.Get("Retry-After"))
			if raErr != nil || ra < 1 || ra > int(interval/time.Second) {
				t.Errorf("429 Retry-After = %q, want whole seconds from 1 to %d", resp.Header.Get("Retry-After"), int(interval/time.Second))
			}
			if err != nil || out["error"] != "rate limit exceeded, retry later" {
				t.Errorf("429 body = %v (%v), want the JSON error", out, err)
			}
		default:
			t.Fatalf("POST %d to process %d = %d %v, want 202 or 429", n, n%processes+1, resp.StatusCode, out)
		}
	}
	elapsed := time.Since(began)
	most := 1 + int(elapsed/interval)
	t.Logf("%d accepted, %d limited in %v by %d processes", len(accepted), limited, elapsed, processes)
	if len(accepted) < 1 || len(accepted) > most {
		t.Errorf("%d requests accepted in %v, want 1 to %d at 10/m across %d processes", len(accepted), elapsed, most, processes)
	}
	if limited != perProcess*processes-len(accepted) {
		t.Errorf("%d limited, want the other %d", limited, perProcess*processes-len(accepted))
	}

	// Only the accepted requests are stored.
	st, _, err := openStore(context.Background(), storeURL, storeOpening{create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	evs, _, err := st.ListEvents(context.Background(), store.EventFilter{Hook: "in", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, e := range evs {
		stored = append(stored, e.ID)
	}
	slices.Sort(stored)
	slices.Sort(accepted)
	if !slices.Equal(stored, accepted) {
		t.Errorf("stored events %v, want the accepted ones %v", stored, accepted)
	}

	// Every 429 is counted, by the process that answered it.
	total := 0.0
	for _, s := range srvs {
		fams, _ := scrape(t, s.addr)
		if v := metricValue(fams, "hookrelay_events_received_total", "hook", "in", "outcome", "rate_limited"); v > 0 {
			total += v
		}
	}
	if int(total) != limited {
		t.Errorf("hookrelay_events_received_total{outcome=rate_limited} = %v in all, want %d", total, limited)
	}
}
