package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/gateway/admin"
	"github.com/hookrelay/hookrelay/store"
)

// The delivery engine end to end: each test runs the real program on its
// own store, with a config of one hook routed to the actions under test.

// relayHook is the catch URL of that one hook.
const relayHook = "/hooks/catch/in"

// relayConfig writes a config whose one hook, "in", takes any JSON from
// 127.0.0.1 and routes it with rules to actions (both YAML list and map
// entries, indented as in the file), and returns its path. Action URLs
// start with ${DEMO_API_URL}: the receiver the server was started with.
func relayConfig(t *testing.T, rules, actions string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rules.yaml"), "rules:\n"+rules)
	writeFile(t, filepath.Join(dir, "hookrelay.yaml"), `egress:
  allow_networks: [127.0.0.0/8]
hooks:
  in:
    verify:
      scheme: none
    auth:
      allow_ips: [127.0.0.1]
    rules: [rules.yaml]
actions:
`+actions)
	return filepath.Join(dir, "hookrelay.yaml")
}

// sqliteStore is a fresh embedded store for one test.
func sqliteStore(t *testing.T) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "hookrelay.db")
}

// relayProcesses is how many serve processes a test runs on a backend:
// two on Redis, which processes share, one on the embedded store.
func relayProcesses(backend string) int {
	if backend == "redis" {
		return 2
	}
	return 1
}

// sendEvent posts body to the relay tests' hook and returns the id of the
// stored event. Each body must differ: the idempotency key is its hash.
func (s *server) sendEvent(t *testing.T, body map[string]any) string {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	status, out := s.post(t, http.MethodPost, relayHook, raw, nil)
	id, _ := out["id"].(string)
	if status != http.StatusAccepted || !strings.HasPrefix(id, "evt_") {
		t.Fatalf("POST %s %s = %d %v, want 202 with an event id", relayHook, raw, status, out)
	}
	return id
}

// action reads one action as GET /api/v1/actions shows it.
func (s *server) action(t *testing.T, key, name string) admin.ActionView {
	t.Helper()
	status, raw := s.request(t, http.MethodGet, "/api/v1/actions", nil, http.Header{"Authorization": {"Bearer " + key}})
	var out struct{ Data []admin.ActionView }
	if err := json.Unmarshal(raw, &out); status != http.StatusOK || err != nil {
		t.Fatalf("GET /api/v1/actions = %d %s (%v)", status, raw, err)
	}
	for _, a := range out.Data {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("GET /api/v1/actions has no action %q: %s", name, raw)
	return admin.ActionView{}
}

// waitAction polls GET /api/v1/actions until done holds for the action;
// want says what done waits for, in the failure message.
func (s *server) waitAction(t *testing.T, key, name, want string, done func(admin.ActionView) bool) admin.ActionView {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a := s.action(t, key, name)
		if done(a) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("action %s = %+v, want %s", name, a, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// switchAction pauses or resumes an action through the admin API.
func (s *server) switchAction(t *testing.T, key, name, verb string) admin.ActionView {
	t.Helper()
	status, raw := s.request(t, http.MethodPost, "/api/v1/actions/"+name+"/"+verb, nil, http.Header{"Authorization": {"Bearer " + key}})
	var a admin.ActionView
	if err := json.Unmarshal(raw, &a); status != http.StatusOK || err != nil {
		t.Fatalf("POST /api/v1/actions/%s/%s = %d %s (%v)", name, verb, status, raw, err)
	}
	return a
}

// A destination that never answers holds only its own action's share: the
// other action's deliveries all go through, the hanging one never has more
// attempts in flight than its concurrency — on Redis counted across two
// processes sharing the store — and its deliveries wait.
func TestRelaySlowActionIsolated(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			testRelaySlowActionIsolated(t, b.url(t), relayProcesses(b.name))
		})
	}
}

func testRelaySlowActionIsolated(t *testing.T, storeURL string, processes int) {
	rc := newReceiver(t)
	hang := make(chan struct{})
	rc.respond = func(path string, _ int) int {
		if path == "/slow" {
			<-hang // until the test ends
		}
		return http.StatusOK
	}
	t.Cleanup(func() { close(hang) })
	cfg := relayConfig(t, `
  - name: slow-lane
    when: body.lane == "slow"
    actions: [slow]
  - name: fast-lane
    when: body.lane == "fast"
    actions: [fast]
`, `
  slow:
    url: ${DEMO_API_URL}/slow
    body: {n: "{{ body.n }}"}
    timeout: 30s
    concurrency: 4
  fast:
    url: ${DEMO_API_URL}/fast
    body: {n: "{{ body.n }}"}
`)
	var srvs []*server
	for range processes {
		srvs = append(srvs, start(t, serverOpts{store: storeURL, api: rc.URL, config: cfg, workers: 100}))
	}
	st := openTestStore(t, storeURL)

	var slow, fast []string
	for n := range 200 {
		srv := srvs[n%processes]
		if n%10 == 0 {
			slow = append(slow, srv.sendEvent(t, map[string]any{"n": n, "lane": "slow"}))
		} else {
			fast = append(fast, srv.sendEvent(t, map[string]any{"n": n, "lane": "fast"}))
		}
	}
	rc.waitFor(t, "/fast", len(fast))
	for _, id := range fast {
		waitDelivery(t, st, id, store.DeliverySucceeded)
	}

	// No slow request ever ends while the test runs, so every one it
	// received is still in flight. Every process has had time to lease
	// (each looks at the queue at least once a second).
	rc.waitFor(t, "/slow", 4)
	time.Sleep(1500 * time.Millisecond)
	reqs := rc.on("/slow")
	if len(reqs) != 4 {
		t.Errorf("the hanging receiver has %d requests in flight, want the action's concurrency, 4", len(reqs))
	}
	keys := map[string]bool{}
	for _, r := range reqs {
		keys[r.Header.Get("Idempotency-Key")] = true
	}
	if len(keys) != len(reqs) {
		t.Errorf("%d slow requests carry %d distinct Idempotency-Keys; want one delivery each", len(reqs), len(keys))
	}
	leased := 0
	for _, id := range slow {
		ds, err := st.Deliveries(t.Context(), id)
		if err != nil || len(ds) != 1 {
			t.Fatalf("deliveries of %s: %+v, %v", id, ds, err)
		}
		if d := ds[0]; d.Status != store.DeliveryPending || d.Attempts != 0 {
			t.Errorf("slow delivery %s is %s with %d attempts, want pending with none recorded", d.ID, d.Status, d.Attempts)
		}
		if !ds[0].LeasedUntil.IsZero() {
			leased++
		}
	}
	if leased != 4 {
		t.Errorf("%d slow deliveries are leased, want 4 (the attempts in flight)", leased)
	}
}

// An attempt that outlasts --lease keeps its lease (it is renewed while
// the attempt runs): the receiver gets the request once and its 200 ends
// the delivery.
func TestRelayAttemptOutlastsLease(t *testing.T) {
	t.Parallel()
	storeURL := sqliteStore(t)
	rc := newReceiver(t)
	rc.respond = func(string, int) int {
		time.Sleep(2500 * time.Millisecond)
		return http.StatusOK
	}
	cfg := relayConfig(t, `
  - name: all
    when: "true"
    actions: [long]
`, `
  long:
    url: ${DEMO_API_URL}/long
    body: {n: "{{ body.n }}"}
    timeout: 10s
    retry: "100ms,100ms,100ms"
`)
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: cfg, lease: time.Second})
	st := openTestStore(t, storeURL)

	id := srv.sendEvent(t, map[string]any{"n": 1})
	d := waitDelivery(t, st, id, store.DeliverySucceeded)
	// Long enough for a lost lease to show as a second request.
	time.Sleep(3 * time.Second)
	reqs := rc.on("/long")
	if len(reqs) != 1 {
		t.Fatalf("the receiver got %d requests, want 1", len(reqs))
	}
	if got := reqs[0].Header.Get("Idempotency-Key"); got != d.ID {
		t.Errorf("Idempotency-Key = %q, want the delivery id %q", got, d.ID)
	}
	d = waitDelivery(t, st, id, store.DeliverySucceeded)
	if d.Attempts != 1 {
		t.Errorf("attempts = %d, want 1", d.Attempts)
	}
	if strings.Contains(srv.output(), "lease lost") || strings.Contains(srv.output(), "lease was lost") {
		t.Errorf("the log reports a lost lease")
	}
}

// After breaker.failures failures in a row an action's breaker opens:
// nothing is sent during the cool-down, then one probe; its 2xx closes the
// breaker and the deliveries that waited go through.
func TestRelayCircuitBreaker(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) { testRelayCircuitBreaker(t, b.url(t)) })
}

func testRelayCircuitBreaker(t *testing.T, storeURL string) {
	rc := newReceiver(t)
	// The receiver fails the first three requests, holds the fourth (the
	// probe) until the test lets it answer, and answers 200 from then on.
	probe := make(chan struct{})
	answerProbe := sync.OnceFunc(func() { close(probe) })
	t.Cleanup(answerProbe)
	rc.respond = func(_ string, n int) int {
		switch {
		case n <= 3:
			return http.StatusInternalServerError
		case n == 4:
			<-probe
		}
		return http.StatusOK
	}
	cfg := relayConfig(t, `
  - name: all
    when: "true"
    actions: [flaky]
`, `
  flaky:
    url: ${DEMO_API_URL}/flaky
    body: {n: "{{ body.n }}"}
    timeout: 10s
    retry: "100ms,100ms,100ms,100ms,100ms"
    breaker: {failures: 3, cooldown: 1s}
`)
	key := createKey(t, storeURL, "ops", "read,write")
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: cfg})
	st := openTestStore(t, storeURL)

	ids := []string{srv.sendEvent(t, map[string]any{"n": 0})}
	srv.waitLog(t, "circuit breaker opened", 1)
	open := srv.waitAction(t, key, "flaky", "its breaker open", func(a admin.ActionView) bool { return a.Breaker.State == "open" })
	b := open.Breaker
	if b.ConsecutiveFailures != 3 || b.Opens != 1 || b.BlockedUntil == nil || !strings.Contains(b.LastError, "500") {
		t.Fatalf("open breaker = %+v, want 3 failures, opened once, blocked until the cool-down ends, last error naming the 500", b)
	}
	if n := len(rc.on("/flaky")); n != 3 {
		t.Errorf("%d requests before the breaker opened, want 3", n)
	}

	// Deliveries that arrive during the cool-down wait with the first one.
	for n := 1; n <= 4; n++ {
		ids = append(ids, srv.sendEvent(t, map[string]any{"n": n}))
	}
	probeReq := rc.waitFor(t, "/flaky", 4)[3]
	if probeReq.At.Before(*b.BlockedUntil) {
		t.Errorf("the 4th request came at %s, before the cool-down ended at %s", probeReq.At.Format(time.StampMicro), b.BlockedUntil.Local().Format(time.StampMicro))
	}
	srv.waitAction(t, key, "flaky", "its breaker half-open while the probe runs", func(a admin.ActionView) bool { return a.Breaker.State == "half-open" })
	// Five deliveries are due, but while the probe runs no other request goes.
	time.Sleep(time.Second)
	if n := len(rc.on("/flaky")); n != 4 {
		t.Errorf("%d requests while the probe was unanswered, want the probe alone (4 in all)", n)
	}

	answerProbe()
	srv.waitLog(t, "circuit breaker closed", 1)
	closed := srv.waitAction(t, key, "flaky", "its breaker closed", func(a admin.ActionView) bool { return a.Breaker.State == "closed" })
	if closed.Breaker.ConsecutiveFailures != 0 || closed.Breaker.BlockedUntil != nil {
		t.Errorf("closed breaker = %+v, want no failures and nothing blocked", closed.Breaker)
	}
	attempts := 0
	for _, id := range ids {
		attempts += waitDelivery(t, st, id, store.DeliverySucceeded).Attempts
	}
	if n := len(rc.on("/flaky")); attempts != 8 || n != 8 {
		t.Errorf("%d attempts recorded, %d requests received; want 8: three failures, the probe, four more", attempts, n)
	}
	if n := strings.Count(srv.output(), "circuit breaker half-open"); n != 1 {
		t.Errorf("the log shows %d probes, want 1", n)
	}
}

// A paused action's deliveries are accepted and stored but not attempted,
// on every process; resuming delivers the backlog. Through the admin API,
// then through `hookrelay actions`.
func TestRelayPauseResume(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) { testRelayPauseResume(t, b.url(t)) })
}

func testRelayPauseResume(t *testing.T, storeURL string) {
	rc := newReceiver(t)
	cfg := relayConfig(t, `
  - name: all
    when: "true"
    actions: [notify]
`, `
  notify:
    url: ${DEMO_API_URL}/notify
    body: {n: "{{ body.n }}"}
`)
	key := createKey(t, storeURL, "ops", "read,write")
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: cfg})
	st := openTestStore(t, storeURL)

	// held sends n events while the action is paused and checks that they
	// are stored and wait, untouched, for wait.
	held := func(t *testing.T, from, n int, wait time.Duration) []string {
		t.Helper()
		before := len(rc.on("/notify"))
		var ids []string
		for i := from; i < from+n; i++ {
			ids = append(ids, srv.sendEvent(t, map[string]any{"n": i}))
		}
		srv.waitAction(t, key, "notify", fmt.Sprintf("paused with %d due", n), func(a admin.ActionView) bool { return a.Paused && a.Due == n })
		time.Sleep(wait)
		if got := len(rc.on("/notify")) - before; got != 0 {
			t.Errorf("a paused action sent %d requests", got)
		}
		for _, id := range ids {
			ev, err := st.Event(t.Context(), id)
			if err != nil || ev.Status != store.EventAccepted {
				t.Errorf("event %s: %+v, %v; want it stored as accepted", id, ev.Status, err)
			}
			ds, err := st.Deliveries(t.Context(), id)
			if err != nil || len(ds) != 1 || ds[0].Status != store.DeliveryPending || ds[0].Attempts != 0 {
				t.Errorf("deliveries of %s: %+v, %v; want one pending, never attempted", id, ds, err)
			}
		}
		return ids
	}
	delivered := func(t *testing.T, ids []string, total int) {
		t.Helper()
		rc.waitFor(t, "/notify", total)
		for _, id := range ids {
			if d := waitDelivery(t, st, id, store.DeliverySucceeded); d.Attempts != 1 {
				t.Errorf("delivery %s: %d attempts, want 1", d.ID, d.Attempts)
			}
		}
	}

	t.Run("admin API", func(t *testing.T) {
		if a := srv.switchAction(t, key, "notify", "pause"); !a.Paused || a.Name != "notify" {
			t.Fatalf("pause answered %+v", a)
		}
		ids := held(t, 0, 5, 2*time.Second)
		if a := srv.switchAction(t, key, "notify", "resume"); a.Paused {
			t.Fatalf("resume answered %+v", a)
		}
		delivered(t, ids, 5)
		srv.waitAction(t, key, "notify", "running with nothing due", func(a admin.ActionView) bool { return !a.Paused && a.Due == 0 && a.InFlight == 0 })
	})
	t.Run("CLI", func(t *testing.T) {
		env := []string{"HOOKRELAY_API_KEY=" + key, "HOOKRELAY_SERVER=http://" + srv.addr}
		if out := cli(t, env, "actions", "pause", "notify"); !strings.Contains(out, "action notify is paused") {
			t.Errorf("actions pause printed %q", out)
		}
		ids := held(t, 5, 3, time.Second)
		if out := cli(t, env, "actions", "resume", "notify"); !strings.Contains(out, "action notify is running") {
			t.Errorf("actions resume printed %q", out)
		}
		delivered(t, ids, 8)
	})
}

// 410 Gone is final: the delivery is dead after its one attempt, though
// attempts are left in its schedule.
func TestRelayGoneIsFinal(t *testing.T) {
	t.Parallel()
	storeURL := sqliteStore(t)
	rc := newReceiver(t)
	rc.respond = func(string, int) int { return http.StatusGone }
	cfg := relayConfig(t, `
  - name: all
    when: "true"
    actions: [gone]
`, `
  gone:
    url: ${DEMO_API_URL}/gone
    body: {n: "{{ body.n }}"}
    retry: "50ms,50ms,50ms"
`)
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: cfg})
	st := openTestStore(t, storeURL)

	id := srv.sendEvent(t, map[string]any{"n": 1})
	d := waitDelivery(t, st, id, store.DeliveryDead)
	if d.Attempts != 1 || !strings.Contains(d.LastError, "410") {
		t.Errorf("dead delivery: %d attempts, last error %q; want 1 attempt and the error naming 410", d.Attempts, d.LastError)
	}
	attempts, err := st.Attempts(t.Context(), d.ID)
	if err != nil || len(attempts) != 1 || attempts[0].StatusCode != http.StatusGone {
		t.Errorf("attempt log = %+v, %v; want one attempt answered 410", attempts, err)
	}
	// Ten times the retry schedule's wait: a retry would have come.
	time.Sleep(500 * time.Millisecond)
	if n := len(rc.on("/gone")); n != 1 {
		t.Errorf("the receiver got %d requests, want 1", n)
	}
	if d := waitDelivery(t, st, id, store.DeliveryDead); d.Attempts != 1 {
		t.Errorf("attempts = %d after dead, want 1", d.Attempts)
	}
}

// An action's rate holds across every process that shares a Redis store:
// two processes deliver 120 events of a 20/s action, no second of arrivals
// at the receivers holds many more than 20, and all arrive in about the six
// seconds the rate needs. The embedded store, with one process, too.
func TestRelayRate(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			testRelayRate(t, b.url(t), relayProcesses(b.name))
		})
	}
}

func testRelayRate(t *testing.T, storeURL string, processes int) {
	const events, rate, slack = 120, 20, 30
	cfg := relayConfig(t, `
  - name: all
    when: "true"
    actions: [rated]
`, fmt.Sprintf(`
  rated:
    url: ${DEMO_API_URL}/rated
    body: {n: "{{ body.n }}"}
    rate: %d/s
`, rate))
	// One receiver per process, so that the test sees that each delivered.
	var (
		rcs  []*receiver
		srvs []*server
	)
	for range processes {
		rc := newReceiver(t)
		rcs = append(rcs, rc)
		srvs = append(srvs, start(t, serverOpts{store: storeURL, api: rc.URL, config: cfg, workers: 50}))
	}
	for n := range events {
		srvs[n%processes].sendEvent(t, map[string]any{"n": n})
	}

	// At the rate they take 6s; a relay that lets a rated action idle
	// between looks at the queue would take many times longer.
	all := func() []received {
		var reqs []received
		for _, rc := range rcs {
			reqs = append(reqs, rc.on("/rated")...)
		}
		return reqs
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(all()) < events && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	reqs := all()
	seen := map[float64]bool{}
	for _, r := range reqs {
		seen[jsonBody(t, r.Body)["n"].(float64)] = true
	}
	if len(reqs) != events || len(seen) != events {
		t.Fatalf("after 20s the receivers got %d requests for %d events, want %d each once", len(reqs), len(seen), events)
	}
	var split []int
	for i, rc := range rcs {
		split = append(split, len(rc.on("/rated")))
		if split[i] == 0 {
			t.Errorf("process %d delivered nothing: the test shows no shared rate", i+1)
		}
	}

	at := make([]time.Time, len(reqs))
	for i, r := range reqs {
		at[i] = r.At
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	// Every window of one second that starts at an arrival.
	busiest, busiestAt := 0, at[0]
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < time.Second; j++ {
			n++
		}
		if n > busiest {
			busiest, busiestAt = n, at[i]
		}
	}
	perSecond := make([]int, int(at[len(at)-1].Sub(at[0])/time.Second)+1)
	for _, a := range at {
		perSecond[int(a.Sub(at[0])/time.Second)]++
	}
	t.Logf("requests per second at the receivers: %v; busiest second: %d; per process: %v", perSecond, busiest, split)
	if busiest > slack {
		t.Errorf("%d requests arrived within one second (from %+.3fs after the first), want at most %d at a rate of %d/s; per second: %v",
			busiest, busiestAt.Sub(at[0]).Seconds(), slack, rate, perSecond)
	}
}

// A process stopping with an attempt that outlasts --grace cancels it and
// releases its delivery at once: another process takes it over long before
// the 30s lease would have run out, with the same Idempotency-Key, and the
// abandoned attempt is not counted. On Redis the other process runs
// alongside; the embedded store is used by one process at a time.
func TestRelayReleaseAtShutdown(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			storeURL := b.url(t)
			hang, answer := newReceiver(t), newReceiver(t)
			hang.hold["/work"] = make(chan struct{})
			cfg := relayConfig(t, `
  - name: all
    when: "true"
    actions: [work]
`, `
  work:
    url: ${DEMO_API_URL}/work
    body: {n: "{{ body.n }}"}
    timeout: 30s
`)
			first := start(t, serverOpts{store: storeURL, api: hang.URL, config: cfg, grace: 200 * time.Millisecond, lease: 30 * time.Second})
			id := first.sendEvent(t, map[string]any{"n": 1})
			abandoned := hang.waitFor(t, "/work", 1)[0]

			startSecond := func() { start(t, serverOpts{store: storeURL, api: answer.URL, config: cfg, lease: 30 * time.Second}) }
			if b.name == "redis" {
				startSecond()
			}
			stopped := time.Now()
			if err := first.stop(t); err != nil {
				t.Errorf("the first process exited with %v, want status 0", err)
			}
			for _, want := range []string{"grace period over", "attempt abandoned at shutdown"} {
				if !strings.Contains(first.output(), want) {
					t.Errorf("the first process did not log %q", want)
				}
			}
			if b.name != "redis" {
				startSecond()
			}
			taken := answer.waitFor(t, "/work", 1)[0]
			if took := taken.At.Sub(stopped); took > 15*time.Second {
				t.Errorf("the other process took the delivery over %v after the stop; a released delivery is due at once, not when the 30s lease ends", took)
			}
			if k := taken.Header.Get("Idempotency-Key"); k != abandoned.Header.Get("Idempotency-Key") || k == "" {
				t.Errorf("Idempotency-Key %q after the takeover, %q before; want the same delivery id", k, abandoned.Header.Get("Idempotency-Key"))
			}
			st := openTestStore(t, storeURL)
			if d := waitDelivery(t, st, id, store.DeliverySucceeded); d.Attempts != 1 {
				t.Errorf("attempts = %d, want 1 (the abandoned attempt is not recorded)", d.Attempts)
			}
			if n := len(hang.on("/work")); n != 1 {
				t.Errorf("the first receiver got %d requests, want 1", n)
			}
		})
	}
}
