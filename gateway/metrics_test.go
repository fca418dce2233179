package gateway_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/gateway"
	"github.com/hookrelay/hookrelay/metrics"
	"github.com/hookrelay/hookrelay/store/redisstore"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

// Each refusal is counted under its hook with its own outcome, a hook's
// own answer does not hide that its event was stored, and a request for a
// hook that is not in the config is no hook's event.
func TestIngressOutcomes(t *testing.T) {
	st, err := sqlitestore.Open(context.Background(), t.TempDir()+"/outcomes.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := loadIngressConfig(t)
	m := metrics.New(metrics.Options{})
	h := gateway.New(st, cfg, gateway.Options{Now: func() time.Time { return ingressNow }, Logger: slog.New(slog.DiscardHandler), Metrics: m}).Handler()

	send := func(method, hook, peer string, body []byte) int {
		r := httptest.NewRequest(method, "/hooks/catch/"+hook, bytes.NewReader(body))
		r.RemoteAddr = peer
		r.Header.Set("Content-Type", "application/json")
		if hk := cfg.Hooks[hook]; hk != nil {
			for k, vs := range hk.Verifier.Sign(body, ingressNow) {
				r.Header[k] = vs
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, c := range []struct {
		method, hook, peer string
		want               int
	}{
		{http.MethodPost, "office", "198.51.100.7:5555", http.StatusForbidden},
		{http.MethodGet, "office", "203.0.113.10:5555", http.StatusMethodNotAllowed},
		{http.MethodPost, "status", "203.0.113.10:5555", http.StatusOK}, // the hook's own answer
		{http.MethodPost, "no-such-hook", "203.0.113.10:5555", http.StatusNotFound},
	} {
		if got := send(c.method, c.hook, c.peer, []byte(`{"n":1}`)); got != c.want {
			t.Fatalf("%s %s = %d, want %d", c.method, c.hook, got, c.want)
		}
	}
	want := `
# HELP hookrelay_events_received_total Requests to a configured hook, by hook and outcome: accepted, ignored (no rule matched), duplicate, or the refusal.
# TYPE hookrelay_events_received_total counter
hookrelay_events_received_total{hook="office",outcome="method_not_allowed"} 1
hookrelay_events_received_total{hook="office",outcome="unauthorized"} 1
hookrelay_events_received_total{hook="status",outcome="ignored"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "hookrelay_events_received_total"); err != nil {
		t.Error(err)
	}
}

// A store that cannot take the event is a 503, counted as the outcome
// store_unavailable and as a store error.
func TestIngressStoreDownCounted(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	down := redisstore.New(client, "down")
	t.Cleanup(func() { down.Close() })
	cfg := loadIngressConfig(t)
	m := metrics.New(metrics.Options{})
	g := gateway.New(down, cfg, gateway.Options{Now: func() time.Time { return ingressNow }, Logger: slog.New(slog.DiscardHandler), Metrics: m})
	body := []byte(`{"n":1}`)
	r := httptest.NewRequest(http.MethodPost, "/hooks/catch/status", bytes.NewReader(body))
	for k, vs := range cfg.Hooks["status"].Verifier.Sign(body, ingressNow) {
		r.Header[k] = vs
	}
	w := httptest.NewRecorder()
	g.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("answer = %d %s, want 503", w.Code, w.Body)
	}
	want := `
# HELP hookrelay_events_received_total Requests to a configured hook, by hook and outcome: accepted, ignored (no rule matched), duplicate, or the refusal.
# TYPE hookrelay_events_received_total counter
hookrelay_events_received_total{hook="status",outcome="store_unavailable"} 1
# HELP hookrelay_store_errors_total Failed store operations, by operation.
# TYPE hookrelay_store_errors_total counter
hookrelay_store_errors_total{op="accept"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "hookrelay_events_received_total", "hookrelay_store_errors_total"); err != nil {
		t.Error(err)
	}
}
