package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hookrelay/hookrelay/store"
)

// Metrics, the operators' listener, request ids and attempt traces, end to
// end: each test runs the real program on its own store.

// metricsSecret signs events to the metrics tests' "signed" hook.
const metricsSecret = "metrics-test-signing-secret"

// metricsConfig writes a config of two hooks: "in" takes any JSON of up to
// 1 KiB from 127.0.0.1 and "signed" wants a GitHub signature; body.kind
// routes an event to the action "ok" (which the receiver answers 200),
// "failing" (500, one retry, then dead) or to none.
func metricsConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rules.yaml"), `rules:
  - name: good
    when: body.kind == "good"
    actions: [ok]
  - name: bad
    when: body.kind == "bad"
    actions: [failing]
`)
	writeFile(t, filepath.Join(dir, "hookrelay.yaml"), `egress:
  allow_networks: [127.0.0.0/8]
hooks:
  in:
    verify:
      scheme: none
    auth:
      allow_ips: [127.0.0.1]
    max_body: 1KiB
    rules: [rules.yaml]
  signed:
    verify:
      scheme: github
      secret: `+metricsSecret+`
    rules: [rules.yaml]
actions:
  ok:
    url: ${DEMO_API_URL}/ok
    body: {n: "{{ body.n }}"}
  failing:
    url: ${DEMO_API_URL}/fail
    body: {n: "{{ body.n }}"}
    retry: [10ms]
`)
	return filepath.Join(dir, "hookrelay.yaml")
}

// scrape reads addr's /metrics, checks that it parses with the Prometheus
// text parser, and returns the families and the raw exposition.
func scrape(t *testing.T, addr string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics Content-Type = %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, raw)
	}
	return fams, string(raw)
}

// sample finds the sample of family name whose labels include want; ok is
// false when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (*dto.Metric, bool) {
	f := fams[name]
	if f == nil {
		return nil, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

// metricValue is the value of a counter or gauge sample, or a histogram's
// count; -1 when there is no such sample.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	m, ok := sample(fams, name, want)
	switch {
	case !ok:
		return -1
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

// waitMetric scrapes addr until done holds for the value of name{labels};
// the queue gauges are read from the store at most every few seconds.
func waitMetric(t *testing.T, addr, want string, done func(float64) bool, name string, labels ...string) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		fams, _ := scrape(t, addr)
		v := metricValue(fams, name, labels...)
		if done(v) {
			return fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %s", name, labels, v, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The counters move as events arrive, are refused and are delivered; the
// queue and breaker gauges follow the store; reloads are counted; a hook
// name that is not in the config never becomes a label value.
func TestMetrics(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) {
		storeURL := b.url(t)
		rc := newReceiver(t)
		rc.respond = func(path string, _ int) int {
			if path == "/fail" {
				return http.StatusInternalServerError
			}
			return http.StatusOK
		}
		cfg := metricsConfig(t)
		key := createKey(t, storeURL, "ops", "read,write")
		srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: cfg})
		st := openTestStore(t, storeURL)

		// Before any event: every hook's and action's counters exist at zero.
		fams, _ := scrape(t, srv.addr)
		for _, c := range []struct {
			name   string
			labels []string
		}{
			{"hookrelay_events_received_total", []string{"hook", "in", "outcome", "accepted"}},
			{"hookrelay_events_received_total", []string{"hook", "signed", "outcome", "unauthorized"}},
			{"hookrelay_delivery_attempts_total", []string{"action", "ok", "result", "success"}},
			{"hookrelay_delivery_attempts_total", []string{"action", "failing", "result", "dead"}},
			{"hookrelay_delivery_attempts_in_flight", []string{"action", "ok"}},
			{"hookrelay_deliveries_handed_off_total", []string{"action", "ok"}},
			{"hookrelay_deliveries_offered_total", []string{"action", "ok"}},
			{"hookrelay_store_call_duration_seconds", []string{"op", "finish"}},
			{"hookrelay_config_reloads_total", []string{"result", "failure"}},
		} {
			if v := metricValue(fams, c.name, c.labels...); v != 0 {
				t.Errorf("before any event %s%v = %v, want 0", c.name, c.labels, v)
			}
		}
		for _, name := range []string{"go_goroutines", "process_start_time_seconds", "hookrelay_build_info"} {
			if fams[name] == nil {
				t.Errorf("no %s in the exposition", name)
			}
		}

		good := srv.sendEvent(t, map[string]any{"kind": "good", "n": 1})
		bad := srv.sendEvent(t, map[string]any{"kind": "bad", "n": 2})
		srv.sendEvent(t, map[string]any{"kind": "other", "n": 3}) // ignored
		for _, c := range []struct {
			hook   string
			body   []byte
			header http.Header
			want   int
		}{
			{"in", []byte(`{"kind":"good","n":1}`), nil, http.StatusOK}, // duplicate
			{"in", []byte(`{"kind":`), nil, http.StatusBadRequest},      // bad payload
			{"in", []byte(`{"pad":"` + strings.Repeat("x", 2048) + `"}`), nil, http.StatusRequestEntityTooLarge},
			{"signed", []byte(`{"kind":"good","n":4}`), nil, http.StatusUnauthorized}, // no signature
			{"signed", []byte(`{"kind":"other","n":5}`), githubSign(metricsSecret, []byte(`{"kind":"other","n":5}`), "d-5"), http.StatusAccepted},
			{"nosuch-hook", []byte(`{}`), nil, http.StatusNotFound},
		} {
			if status, out := srv.post(t, http.MethodPost, "/hooks/catch/"+c.hook, c.body, c.header); status != c.want {
				t.Fatalf("POST /hooks/catch/%s %.40s = %d %v, want %d", c.hook, c.body, status, out, c.want)
			}
		}
		waitDelivery(t, st, good, store.DeliverySucceeded)
		waitDelivery(t, st, bad, store.DeliveryDead)

		fams, raw := scrape(t, srv.addr)
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"hookrelay_events_received_total", []string{"hook", "in", "outcome", "accepted"}, 2},
			{"hookrelay_events_received_total", []string{"hook", "in", "outcome", "ignored"}, 1},
			{"hookrelay_events_received_total", []string{"hook", "in", "outcome", "duplicate"}, 1},
			{"hookrelay_events_received_total", []string{"hook", "in", "outcome", "bad_payload"}, 1},
			{"hookrelay_events_received_total", []string{"hook", "in", "outcome", "too_large"}, 1},
			{"hookrelay_events_received_total", []string{"hook", "signed", "outcome", "unauthorized"}, 1},
			{"hookrelay_events_received_total", []string{"hook", "signed", "outcome", "ignored"}, 1},
			{"hookrelay_ingest_duration_seconds", []string{"hook", "in"}, 6},
			{"hookrelay_ingest_duration_seconds", []string{"hook", "signed"}, 2},
			{"hookrelay_delivery_attempts_total", []string{"action", "ok", "result", "success"}, 1},
			{"hookrelay_delivery_attempts_total", []string{"action", "failing", "result", "server_error"}, 1},
			{"hookrelay_delivery_attempts_total", []string{"action", "failing", "result", "dead"}, 1},
			{"hookrelay_delivery_attempts_total", []string{"action", "failing", "result", "success"}, 0},
			{"hookrelay_delivery_attempt_duration_seconds", []string{"action", "failing"}, 2},
			{"hookrelay_delivery_attempts_in_flight", []string{"action", "ok"}, 0},
			{"hookrelay_http_requests_total", []string{"route", "/hooks/catch/:hook", "method", "POST", "code", "202"}, 4},
			{"hookrelay_http_requests_total", []string{"route", "/hooks/catch/:hook", "method", "POST", "code", "404"}, 1},
		} {
			if v := metricValue(fams, c.name, c.labels...); v != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
			}
		}
		// The relay timed its calls: the failing action's retry was leased
		// from the queue, and every outcome was recorded.
		for _, op := range []string{"lease", "finish"} {
			if v := metricValue(fams, "hookrelay_store_call_duration_seconds", "op", op); v < 1 {
				t.Errorf("hookrelay_store_call_duration_seconds{op=%s} counts %v calls, want some", op, v)
			}
		}
		// The embedded store times its commits and the WAL's flushes,
		// which every accept above waited for; Redis has neither.
		for _, step := range []string{"commit", "flush"} {
			v := metricValue(fams, "hookrelay_store_write_duration_seconds", "step", step)
			if b.name == "sqlite" && v < 1 || b.name != "sqlite" && v != -1 {
				t.Errorf("hookrelay_store_write_duration_seconds{step=%s} counts %v on %s", step, v, b.name)
			}
		}
		// A name from a request URL is not a label value.
		if strings.Contains(raw, "nosuch") {
			t.Errorf("the exposition names the unknown hook:\n%s", raw)
		}

		// The queue gauges come from the store: a paused action's event
		// waits, due, and the oldest due delivery ages.
		srv.switchAction(t, key, "ok", "pause")
		srv.sendEvent(t, map[string]any{"kind": "good", "n": 6})
		fams = waitMetric(t, srv.addr, "1 due", func(v float64) bool { return v == 1 }, "hookrelay_deliveries_due", "action", "ok")
		if v := metricValue(fams, "hookrelay_action_paused", "action", "ok"); v != 1 {
			t.Errorf("hookrelay_action_paused{action=ok} = %v, want 1", v)
		}
		if v := metricValue(fams, "hookrelay_action_breaker_state", "action", "ok", "state", "closed"); v != 1 {
			t.Errorf("hookrelay_action_breaker_state{action=ok,state=closed} = %v, want 1", v)
		}
		if v := metricValue(fams, "hookrelay_deliveries_due", "action", "failing"); v != 0 {
			t.Errorf("hookrelay_deliveries_due{action=failing} = %v, want 0", v)
		}
		waitMetric(t, srv.addr, "an age above zero", func(v float64) bool { return v > 0 }, "hookrelay_deliveries_oldest_due_age_seconds", "action", "ok")

		// Reloads, and their result.
		_ = srv.cmd.Process.Signal(syscall.SIGHUP)
		srv.waitLog(t, "config reloaded", 1)
		writeFile(t, cfg, "hooks: [")
		_ = srv.cmd.Process.Signal(syscall.SIGHUP)
		srv.waitLog(t, "config reload refused", 1)
		fams, _ = scrape(t, srv.addr)
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"hookrelay_config_reloads_total", []string{"result", "success"}, 1},
			{"hookrelay_config_reloads_total", []string{"result", "failure"}, 1},
			{"hookrelay_config_last_reload_successful", nil, 0},
		} {
			if v := metricValue(fams, c.name, c.labels...); v != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
			}
		}
	})
}

var adminListenRE = regexp.MustCompile(`msg="admin listening" addr=(\S+)`)

// adminAddr is the address of the server's --admin-listen listener.
func (s *server) adminAddr(t *testing.T) string {
	t.Helper()
	s.waitLog(t, `msg="admin listening"`, 1)
	m := adminListenRE.FindStringSubmatch(s.output())
	if m == nil {
		t.Fatalf("no admin listener address in the log:\n%s", s.output())
	}
	return m[1]
}

// With --admin-listen, the public listener carries the catch URLs (and
// health checks) only; the operators' listener has the metrics and the
// admin API. Without it, the one listener serves both.
func TestAdminListen(t *testing.T) {
	t.Parallel()
	storeURL := sqliteStore(t)
	rc := newReceiver(t)
	key := createKey(t, storeURL, "ops", "read")
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: metricsConfig(t),
		extra: []string{"HOOKRELAY_ADMIN_LISTEN=127.0.0.1:0"}})
	admin := srv.adminAddr(t)
	if admin == srv.addr {
		t.Fatalf("admin listener on the public address %s", admin)
	}
	get := func(addr, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		addr, path string
		want       int
	}{
		{srv.addr, "/metrics", http.StatusNotFound},
		{srv.addr, "/api/v1/hooks", http.StatusNotFound},
		{srv.addr, "/ui/", http.StatusNotFound},
		{srv.addr, "/healthz", http.StatusOK},
		{admin, "/metrics", http.StatusOK},
		{admin, "/api/v1/hooks", http.StatusOK},
		{admin, "/healthz", http.StatusOK},
		{admin, "/readyz", http.StatusOK},
		{admin, "/hooks/catch/in", http.StatusNotFound},
	} {
		if status, body := get(c.addr, c.path); status != c.want {
			t.Errorf("GET %s on %s = %d %.200s, want %d", c.path, map[bool]string{true: "the admin listener", false: "the public listener"}[c.addr == admin], status, body, c.want)
		}
	}
	// The public listener still takes events, and the admin one counts them.
	srv.sendEvent(t, map[string]any{"kind": "other", "n": 1})
	fams, _ := scrape(t, admin)
	if v := metricValue(fams, "hookrelay_events_received_total", "hook", "in", "outcome", "ignored"); v != 1 {
		t.Errorf("events ignored on the admin listener's /metrics = %v, want 1", v)
	}

	// Without the flag, one listener serves everything.
	one := start(t, serverOpts{store: sqliteStore(t), api: rc.URL, config: metricsConfig(t)})
	for _, path := range []string{"/metrics", "/healthz"} {
		if status, body := get(one.addr, path); status != http.StatusOK {
			t.Errorf("GET %s on the one listener = %d %.200s, want 200", path, status, body)
		}
	}
	if status, _ := get(one.addr, "/api/v1/hooks"); status != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/hooks on the one listener with another store's key = %d, want 401 from the API", status)
	}
	if strings.Contains(one.output(), "admin listening") {
		t.Errorf("a second listener without --admin-listen:\n%s", one.output())
	}
}

var requestIDRE = regexp.MustCompile(`^req_[0-9A-Z]{26}$`)

// Every answer carries its request's id, and every line logged while
// serving the request carries the same id; an id the client sends is not
// taken.
func TestRequestID(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	// An accepted event is logged at debug level only.
	srv := start(t, serverOpts{store: sqliteStore(t), api: rc.URL, config: metricsConfig(t), extra: []string{"HOOKRELAY_LOG_LEVEL=debug"}})
	send := func(body string, header http.Header) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.url("/hooks/catch/in"), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Hookrelay-Request-Id")
	}
	status, accepted := send(`{"kind":"other","n":1}`, http.Header{"Hookrelay-Request-Id": {"forged-id"}})
	if status != http.StatusAccepted || !requestIDRE.MatchString(accepted) {
		t.Fatalf("POST = %d with request id %q, want 202 and a req_ id", status, accepted)
	}
	status, refused := send(`{"kind":`, nil)
	if status != http.StatusBadRequest || !requestIDRE.MatchString(refused) || refused == accepted {
		t.Fatalf("POST of a broken body = %d with request id %q (the first was %q), want 400 and a new id", status, refused, accepted)
	}
	if strings.Contains(srv.output(), "forged-id") {
		t.Errorf("an id sent by the client reached the log")
	}
	for _, c := range []struct{ id, msg string }{{accepted, "msg=\"event accepted\""}, {refused, "msg=\"request refused\""}} {
		srv.waitLog(t, "request_id="+c.id, 1)
		var lines []string
		for _, l := range strings.Split(srv.output(), "\n") {
			if strings.Contains(l, "request_id="+c.id) {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 || !strings.Contains(lines[0], c.msg) {
			t.Errorf("lines with request_id=%s = %q, want the one %s line", c.id, lines, c.msg)
		}
	}
	// The admin API and /metrics answer with ids too.
	for _, path := range []string{"/api/v1/hooks", "/metrics", "/healthz"} {
		resp, err := http.Get(srv.url(path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if id := resp.Header.Get("Hookrelay-Request-Id"); !requestIDRE.MatchString(id) {
			t.Errorf("GET %s: request id %q, want a req_ id", path, id)
		}
	}
}

// Each attempt's request trace is kept and shown in the attempt log, on
// each store: the time to first byte of a slow receiver stands out from
// the connection's phases.
func TestAttemptTrace(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) {
		storeURL := b.url(t)
		rc := newReceiver(t)
		rc.respond = func(string, int) int {
			time.Sleep(50 * time.Millisecond) // a receiver slow to answer
			return http.StatusOK
		}
		key := createKey(t, storeURL, "ops", "read")
		srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: metricsConfig(t)})
		st := openTestStore(t, storeURL)
		id := srv.sendEvent(t, map[string]any{"kind": "good", "n": 1})
		d := waitDelivery(t, st, id, store.DeliverySucceeded)

		status, out := srv.api(t, key, http.MethodGet, "/deliveries/"+d.ID, nil)
		log := list(out, "attempt_log")
		if status != http.StatusOK || len(log) != 1 {
			t.Fatalf("GET /deliveries/%s = %d %v, want one attempt", d.ID, status, out)
		}
		raw, _ := json.Marshal(log[0]["trace"])
		var tr struct {
			DNS       *float64 `json:"dns_ms"`
			Connect   *float64 `json:"connect_ms"`
			TLS       *float64 `json:"tls_ms"`
			FirstByte *float64 `json:"first_byte_ms"`
			Total     *float64 `json:"total_ms"`
			Reused    *bool    `json:"reused"`
		}
		if err := json.Unmarshal(raw, &tr); err != nil || tr.DNS == nil || tr.Connect == nil || tr.TLS == nil || tr.FirstByte == nil || tr.Total == nil || tr.Reused == nil {
			t.Fatalf("attempt trace = %s, want every phase", raw)
		}
		// The receiver waits 50ms before its first byte; the connect to
		// loopback and the handshake-less plain HTTP take far less.
		if *tr.FirstByte < 50 || *tr.Total < *tr.FirstByte {
			t.Errorf("trace %s: want first_byte_ms >= 50 and total_ms >= first_byte_ms", raw)
		}
		if *tr.TLS != 0 || *tr.DNS != 0 {
			t.Errorf("trace %s: want no TLS and no name lookup to http://127.0.0.1", raw)
		}

		// The store holds the same trace.
		as, err := st.Attempts(t.Context(), d.ID)
		if err != nil || len(as) != 1 || as[0].Trace == nil || as[0].Trace.FirstByte < 50*time.Millisecond {
			t.Errorf("stored attempts = %+v, %v; want one with its trace", as, err)
		}
	})
}
