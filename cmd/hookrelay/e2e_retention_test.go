package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

const retentionConfig = `
egress:
  allow_networks: ${DEMO_ALLOW_NETWORKS:-}
retention: {completed: 2s, failed: 4s}
hooks:
  shop:
    verify: {scheme: none}
    token: retention-e2e-token-5c1d
    idempotency: {key: body.kind + ":" + string(body.n), ttl: 1s}
    rules: [rules.yaml]
actions:
  ok:
    url: ${DEMO_API_URL}/ok
    retry: 50ms
  fail:
    url: ${DEMO_API_URL}/fail
    retry: 50ms
    breaker: {failures: 1000}
  slow:
    url: ${DEMO_API_URL}/slow
    retry: 1h
`

const retentionRules = `
rules:
  - name: ok
    when: body.kind == "ok"
    actions: [ok]
  - name: fail
    when: body.kind == "fail"
    actions: [fail]
  - name: slow
    when: body.kind == "slow"
    actions: [slow, ok]
`

// Old events go with their deliveries and attempts, on both stores, while
// the server runs: succeeded, ignored and dead ones once past their
// windows; one whose delivery is still retrying stays. Listings through
// the admin API agree, the idempotency key of a pruned event lets the same
// event in again once its own window ended, and the store's footprint
// (Redis keys and memory, SQLite pages) drops back.
func TestRetention(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) { testRetention(t, b) })
}

func testRetention(t *testing.T, b storeBackend) {
	dir := t.TempDir()
	for name, content := range map[string]string{"hookrelay.yaml": retentionConfig, "rules.yaml": retentionRules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	storeURL := b.url(t)
	rc := newReceiver(t)
	rc.respond = func(path string, _ int) int {
		switch path {
		case "/ok":
			return http.StatusOK
		case "/fail":
			return http.StatusGone // dead at once
		}
		return http.StatusInternalServerError
	}
	st, _, err := openStore(context.Background(), storeURL, storeOpening{create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := createKey(t, storeURL, "retention", "read")
	footprint := storeFootprint(t, b.name, storeURL)
	empty := footprint()

	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: filepath.Join(dir, "hookrelay.yaml")})
	pad := strings.Repeat("x", 4096)
	post := func(kind string, n int) string {
		t.Helper()
		status, out := srv.post(t, http.MethodPost, "/hooks/catch/shop/retention-e2e-token-5c1d",
			fmt.Appendf(nil, `{"kind":%q,"n":%d,"pad":%q}`, kind, n, pad), nil)
		if status != http.StatusAccepted || out["duplicate"] == true {
			t.Fatalf("POST %s %d: %d %v", kind, n, status, out)
		}
		id, _ := out["id"].(string)
		return id
	}
	kinds := map[string]int{"ok": 30, "ignored": 30, "fail": 10, "slow": 2}
	ids := map[string][]string{}
	for kind, n := range kinds {
		for i := range n {
			ids[kind] = append(ids[kind], post(kind, i))
		}
	}
	// The retrying event's deliveries: one retrying (due in an hour), one succeeded.
	slow := waitDeliveries(t, st, ids["slow"][0], "one retrying and one succeeded", func(ds []store.Delivery) bool {
		return len(ds) == 2 && ((ds[0].Status == store.DeliveryRetrying && ds[1].Status == store.DeliverySucceeded) ||
			(ds[1].Status == store.DeliveryRetrying && ds[0].Status == store.DeliverySucceeded))
	})
	loaded := footprint()

	// Every event but the retrying ones goes, each once past its window.
	deadline := time.Now().Add(60 * time.Second)
	for {
		evs, _, err := st.ListEvents(context.Background(), store.EventFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == kinds["slow"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events listed after 60s, want only the %d retrying ones", len(evs), kinds["slow"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv.waitLog(t, "retention: pruned", 1)

	for kind, evIDs := range ids {
		for _, id := range evIDs {
			_, err := st.Event(context.Background(), id)
			if kind == "slow" {
				if err != nil {
					t.Errorf("retrying event %s: %v, want it kept", id, err)
				}
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s event %s: %v, want it pruned", kind, id, err)
			}
		}
	}
	for _, d := range slow {
		if as, err := st.Attempts(context.Background(), d.ID); err != nil || len(as) == 0 {
			t.Errorf("attempts of the retrying event's delivery %s = %d, %v; want them kept", d.ID, len(as), err)
		}
	}

	// The admin API lists what is left, and only that.
	for _, c := range []struct {
		path string
		want int
	}{
		{"/events?limit=1000", kinds["slow"]},
		{"/events?status=ignored", 0},
		{"/events?hook=shop&limit=1000", kinds["slow"]},
		{"/deliveries?limit=1000", 2 * kinds["slow"]},
		{"/deliveries?status=succeeded&limit=1000", kinds["slow"]},
		{"/deliveries?status=dead", 0},
		{"/deliveries?action=fail", 0},
		{"/deliveries?action=ok&limit=1000", kinds["slow"]},
	} {
		status, out := srv.api(t, key, http.MethodGet, c.path, nil)
		if got := len(list(out, "data")); status != http.StatusOK || got != c.want {
			t.Errorf("GET %s: %d with %d records, want 200 with %d", c.path, status, got, c.want)
		}
	}

	// The key of a pruned event had its own window of a second: the same
	// event comes in as new.
	again := post("ok", 0)
	if again == ids["ok"][0] {
		t.Errorf("the pruned event's key still named it")
	}

	after := footprint()
	t.Logf("%s footprint: empty %d, loaded %d, pruned %d", b.name, empty, loaded, after)
	if after-empty > (loaded-empty)/4 {
		t.Errorf("%s footprint after pruning = %d, want it back near %d (loaded: %d)", b.name, after, empty, loaded)
	}
}

// storeFootprint returns a function that measures the store's size: for
// Redis the memory its keys use (MEMORY USAGE, summed over the test's
// prefix), for SQLite the database's pages.
func storeFootprint(t *testing.T, backend, storeURL string) func() int64 {
	t.Helper()
	if backend == "redis" {
		u, err := url.Parse(storeURL)
		if err != nil {
			t.Fatal(err)
		}
		prefix := u.Query().Get("prefix")
		c := redistest.Client(t)
		return func() int64 {
			t.Helper()
			var total int64
			for _, k := range redistest.Keys(t, c, prefix) {
				if strings.Contains(k, ":idem:") {
					continue // idempotency keys expire on their own TTL
				}
				n, _ := c.MemoryUsage(context.Background(), k).Result()
				total += n
			}
			return total
		}
	}
	path := strings.TrimPrefix(storeURL, "sqlite://")
	db, err := sql.Open("sqlite", path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return func() int64 {
		t.Helper()
		var pages int64
		if err := db.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
			t.Fatal(err)
		}
		return pages
	}
}
