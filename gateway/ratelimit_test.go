package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/gateway"
	"github.com/hookrelay/hookrelay/metrics"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

const (
	limitedToken = "limited-url-token-0123"
	limitedKey   = "limited-api-key-0123"
)

// limitedConfig loads a config whose hook "limited" takes rateLimit
// (none when empty) and wants a URL token and an X-Api-Key header.
func limitedConfig(t *testing.T, rateLimit string) *config.Config {
	t.Helper()
	line := ""
	if rateLimit != "" {
		line = "    rate_limit: " + rateLimit + "\n"
	}
	return configFrom(t, `hooks:
  limited:
    verify: {scheme: none}
    token: `+limitedToken+`
    auth:
      header: {name: X-Api-Key, value: `+limitedKey+`}
`+line)
}

// limited is a gateway on a real SQLite file, whose clock stands still so
// that the per-process limiter's budget is exact.
type limited struct {
	g  *gateway.Gateway
	h  http.Handler
	st *sqlitestore.Store
	n  int
}

func newLimited(t *testing.T, cfg *config.Config, o gateway.Options) *limited {
	t.Helper()
	st := tempStore(t)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	o.Now = func() time.Time { return now }
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	g := gateway.New(st, cfg, o)
	return &limited{g: g, h: g.Handler(), st: st}
}

// post sends a distinct event with the hook's token and key, then applies
// edit to the request.
func (l *limited) post(t *testing.T, edit func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	l.n++
	req := httptest.NewRequest(http.MethodPost, "/hooks/catch/limited/"+limitedToken, bytes.NewReader(fmt.Appendf(nil, `{"n":%d}`, l.n)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", limitedKey)
	if edit != nil {
		edit(req)
	}
	w := httptest.NewRecorder()
	l.h.ServeHTTP(w, req)
	return w
}

func (l *limited) stored(t *testing.T) int {
	t.Helper()
	evs, _, err := l.st.ListEvents(context.Background(), store.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// Over its rate_limit: a hook answers 429 with the usual JSON error and a
// Retry-After in whole seconds, and stores nothing; a tenth of a
// period's worth may come at once ("600/m": 60), unlike an action's
// rate:, which lets a tenth of a second's worth start at once.
func TestRateLimit(t *testing.T) {
	for _, tt := range []struct {
		rate       string
		burst      int
		retryAfter string
	}{
		{"100/s", 10, "1"}, // the next one in 10ms: rounded up to a second
		{"600/m", 60, "1"}, // the next one in 100ms
		{"10/m", 1, "6"},
		{"1/h", 1, "3600"},
	} {
		t.Run(tt.rate, func(t *testing.T) {
			m := metrics.New(metrics.Options{})
			l := newLimited(t, limitedConfig(t, tt.rate), gateway.Options{Metrics: m})
			for i := range tt.burst {
				if w := l.post(t, nil); w.Code != http.StatusAccepted {
					t.Fatalf("request %d = %d %s, want 202", i+1, w.Code, w.Body)
				}
			}
			for i := range 5 {
				w := l.post(t, nil)
				if w.Code != http.StatusTooManyRequests {
					t.Fatalf("request %d over the limit = %d %s, want 429", i+1, w.Code, w.Body)
				}
				if got := w.Header().Get("Retry-After"); got != tt.retryAfter {
					t.Errorf("Retry-After = %q, want %q", got, tt.retryAfter)
				}
				var out map[string]any
				if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out["error"] != "rate limit exceeded, retry later" || len(out) != 1 {
					t.Errorf("429 body = %s (%v), want the JSON error", w.Body, err)
				}
				if w.Header().Get("Hookrelay-Event-Id") != "" {
					t.Errorf("a 429 names an event: %q", w.Header().Get("Hookrelay-Event-Id"))
				}
			}
			if n := l.stored(t); n != tt.burst {
				t.Errorf("%d events stored, want the %d accepted only", n, tt.burst)
			}
			want := fmt.Sprintf(`
# HELP hookrelay_events_received_total Requests to a configured hook, by hook and outcome: accepted, ignored (no rule matched), duplicate, or the refusal.
# TYPE hookrelay_events_received_total counter
hookrelay_events_received_total{hook="limited",outcome="ignored"} %d
hookrelay_events_received_total{hook="limited",outcome="rate_limited"} 5
`, tt.burst)
			if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "hookrelay_events_received_total"); err != nil {
				t.Error(err)
			}
		})
	}
}

// Requests that the URL token or the auth: checks refuse spend nothing of
// the hook's budget: a flood of them leaves the sender its whole rate. A
// request over the limit is refused before its body is read.
func TestRateLimitAfterAuth(t *testing.T) {
	l := newLimited(t, limitedConfig(t, "10/m"), gateway.Options{})
	for range 20 {
		if w := l.post(t, func(r *http.Request) { r.Header.Set("X-Api-Key", "wrong-key-0123456789") }); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong key = %d %s, want 401", w.Code, w.Body)
		}
		if w := l.post(t, func(r *http.Request) { r.URL.Path = "/hooks/catch/limited/wrong-url-token-0123" }); w.Code != http.StatusNotFound {
			t.Fatalf("wrong URL token = %d %s, want 404", w.Code, w.Body)
		}
		if w := l.post(t, func(r *http.Request) { r.Method = http.MethodPut }); w.Code != http.StatusMethodNotAllowed {
			t.Fatalf("PUT = %d %s, want 405", w.Code, w.Body)
		}
	}
	if w := l.post(t, nil); w.Code != http.StatusAccepted {
		t.Fatalf("the sender's first request after a flood of refused ones = %d %s, want 202", w.Code, w.Body)
	}
	// Over the limit, a body is not even read: one that would be refused
	// with 400 or 413 is answered 429.
	w := l.post(t, func(r *http.Request) { r.Body = http.NoBody; r.ContentLength = 1 << 40 })
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("over the limit with a huge body = %d %s, want 429", w.Code, w.Body)
	}
	if n := l.stored(t); n != 1 {
		t.Errorf("%d events stored, want 1", n)
	}
}

// The limit follows the config: a reload that raises it admits at once,
// one that removes it lets everything through.
func TestRateLimitReload(t *testing.T) {
	l := newLimited(t, limitedConfig(t, "1/h"), gateway.Options{})
	if w := l.post(t, nil); w.Code != http.StatusAccepted {
		t.Fatalf("first = %d %s", w.Code, w.Body)
	}
	if w := l.post(t, nil); w.Code != http.StatusTooManyRequests {
		t.Fatalf("second at 1/h = %d %s, want 429", w.Code, w.Body)
	}
	l.g.SetConfig(limitedConfig(t, "100/s"))
	for i := range 10 {
		if w := l.post(t, nil); w.Code != http.StatusAccepted {
			t.Fatalf("request %d at 100/s = %d %s, want 202", i+1, w.Code, w.Body)
		}
	}
	if w := l.post(t, nil); w.Code != http.StatusTooManyRequests {
		t.Fatalf("11th at 100/s = %d %s, want 429", w.Code, w.Body)
	}
	l.g.SetConfig(limitedConfig(t, ""))
	for i := range 50 {
		if w := l.post(t, nil); w.Code != http.StatusAccepted {
			t.Fatalf("request %d without a limit = %d %s, want 202", i+1, w.Code, w.Body)
		}
	}
}

// A limiter that fails (its Redis unreachable) lets requests through, so
// that a blip of the limiter never refuses every sender: the events are
// stored, and the failure is counted and logged.
func TestRateLimitFailsOpen(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	down := redisstore.New(client, "down")
	t.Cleanup(func() { down.Close() })
	var logs bytes.Buffer
	m := metrics.New(metrics.Options{})
	l := newLimited(t, limitedConfig(t, "1/h"), gateway.Options{
		Limiter: down.Limiter(), Metrics: m,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	for i := range 3 {
		if w := l.post(t, nil); w.Code != http.StatusAccepted {
			t.Fatalf("request %d with the limiter down = %d %s, want 202", i+1, w.Code, w.Body)
		}
	}
	if n := l.stored(t); n != 3 {
		t.Errorf("%d events stored, want 3", n)
	}
	want := `
# HELP hookrelay_events_received_total Requests to a configured hook, by hook and outcome: accepted, ignored (no rule matched), duplicate, or the refusal.
# TYPE hookrelay_events_received_total counter
hookrelay_events_received_total{hook="limited",outcome="ignored"} 3
# HELP hookrelay_store_errors_total Failed store operations, by operation.
# TYPE hookrelay_store_errors_total counter
hookrelay_store_errors_total{op="rate_limit"} 3
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "hookrelay_events_received_total", "hookrelay_store_errors_total"); err != nil {
		t.Error(err)
	}
	if !strings.Contains(logs.String(), "rate limit unavailable") {
		t.Errorf("the failure is not logged:\n%s", logs.String())
	}
}
