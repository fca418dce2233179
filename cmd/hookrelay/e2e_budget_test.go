package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

const budgetConfig = `
server:
  evaluation:
    timeout: 100ms
    memory: 8MiB
egress:
  allow_networks: [127.0.0.0/8]
hooks:
  budget:
    verify:
      scheme: none
    token: budget-hook-token-0123456789
    max_body: 4MiB
    idempotency:
      key: repeat(body.pad, body.times)
    rules: [rules.yaml]
actions:
  notify:
    url: ${DEMO_API_URL}/notify
    method: POST
    body:
      kind: "{{ body.kind }}"
  blowup:
    url: ${DEMO_API_URL}/blowup
    method: POST
    body:
      big: "{{ repeat(body.pad, 100000) }}"
`

// The quadratic rule would take minutes on its payload, the repeat rule
// a gigabyte; the ordinary rules before and after them must match all the
// same.
const budgetRules = `
rules:
  - name: ordinary
    when: body.kind == "order"
    actions: [notify]
  - name: quadratic
    when: any(body.items, {any(body.items, {# < 0})})
    actions: [notify]
  - name: repeat
    when: len(repeat(body.pad, body.times)) > 5
    actions: [notify]
  - name: late
    when: body.pad == "a"
    actions: [notify]
  - name: blow
    when: body.kind == "blow"
    actions: [blowup]
`

// A payload cannot hold the server: a quadratic rule and a string-repeat
// rule against large payloads are each answered within a bound far below
// what the unbounded evaluation would take, /healthz answers throughout,
// the event is stored with the rule error logged, a key expression over
// budget falls back to the body hash, a template over budget makes its
// delivery dead with the reason, and a payload of too many values is
// refused with 413.
func TestEvaluationBudget(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) { testEvaluationBudget(t, b.url(t)) })
}

func testEvaluationBudget(t *testing.T, storeURL string) {
	dir := t.TempDir()
	for name, content := range map[string]string{"hookrelay.yaml": budgetConfig, "rules.yaml": budgetRules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rc := newReceiver(t)
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: filepath.Join(dir, "hookrelay.yaml")})
	st := openTestStore(t, storeURL)

	// /healthz is asked every 20ms while the payloads are evaluated; every
	// answer must come, and quickly.
	var (
		probes  atomic.Int64
		slowest atomic.Int64
		failed  atomic.Value
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Second}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			start := time.Now()
			resp, err := client.Get(srv.url("/healthz"))
			if err != nil {
				failed.Store(err.Error())
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed.Store(resp.Status)
				return
			}
			probes.Add(1)
			if took := time.Since(start); took.Nanoseconds() > slowest.Load() {
				slowest.Store(took.Nanoseconds())
			}
		}
	}()

	items := make([]int, 50000)
	for i := range items {
		items[i] = i
	}
	quadratic, _ := json.Marshal(map[string]any{"kind": "order", "items": items, "pad": "a", "times": 3})
	repeat, _ := json.Marshal(map[string]any{"kind": "order", "items": []int{}, "pad": strings.Repeat("x", 1000), "times": 1000000})
	blow, _ := json.Marshal(map[string]any{"kind": "blow", "items": []int{}, "pad": strings.Repeat("y", 1000), "times": 0})

	const generous = 5 * time.Second // unbounded: minutes, or a gigabyte
	send := func(body []byte) string {
		t.Helper()
		began := time.Now()
		status, out := srv.post(t, http.MethodPost, "/hooks/catch/budget/budget-hook-token-0123456789", body, nil)
		if took := time.Since(began); took > generous {
			t.Errorf("answered after %v, want well under %v", took, generous)
		}
		if status != http.StatusAccepted {
			t.Fatalf("status %d %v, want 202", status, out)
		}
		return out["id"].(string)
	}

	for _, c := range []struct {
		name    string
		body    []byte
		rule    string
		matched string
		key     string // "" for the body hash
	}{
		{"quadratic", quadratic, "quadratic", "ordinary,late", "aaa"},
		{"repeat", repeat, "repeat", "ordinary", ""},
	} {
		id := send(c.body)
		ev, err := st.Event(context.Background(), id)
		if err != nil {
			t.Fatalf("%s: event %s not stored: %v", c.name, id, err)
		}
		if strings.Join(ev.MatchedRules, ",") != c.matched || ev.Status != store.EventAccepted {
			t.Errorf("%s: stored %s with rules %v, want accepted with %s", c.name, ev.Status, ev.MatchedRules, c.matched)
		}
		want := c.key
		if want == "" {
			sum := sha256.Sum256(c.body)
			want = "sha256:" + hex.EncodeToString(sum[:])
		}
		if ev.IdempotencyKey != want {
			t.Errorf("%s: key %q, want %q", c.name, ev.IdempotencyKey, want)
		}
		d := waitDelivery(t, st, id, store.DeliverySucceeded)
		if d.Action != "notify" || d.Rule != "ordinary" {
			t.Errorf("%s: delivery %+v, want notify for ordinary", c.name, d)
		}
		srv.waitLog(t, "rule="+c.rule, 1)
	}
	logs := srv.output()
	for _, want := range []string{
		`msg="rule failed to evaluate" hook=budget`,
		"evaluation over budget: took longer than 100ms",
		"evaluation over budget: would allocate more than 8MiB",
		`msg="idempotency key expression failed, using the body hash"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q", want)
		}
	}

	// A template over budget: the delivery is dead at once, with the reason.
	id := send(blow)
	d := waitDelivery(t, st, id, store.DeliveryDead)
	if d.Attempts != 1 || !strings.Contains(d.LastError, "evaluation over budget") {
		t.Errorf("blowup delivery: %d attempts, last error %q; want dead after 1, over budget", d.Attempts, d.LastError)
	}
	if n := len(rc.on("/blowup")); n != 0 {
		t.Errorf("the receiver got %d blowup requests", n)
	}

	// A payload of more values than the budget allows is refused.
	many := []byte("[" + strings.Repeat("0,", 200000) + "0]")
	status, out := srv.post(t, http.MethodPost, "/hooks/catch/budget/budget-hook-token-0123456789", many, nil)
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(out["error"].(string), "payload too complex") {
		t.Errorf("many values: %d %v, want 413 payload too complex", status, out)
	}

	close(stop)
	wg.Wait()
	if f := failed.Load(); f != nil {
		t.Errorf("/healthz failed while payloads were evaluated: %v", f)
	}
	if probes.Load() == 0 {
		t.Error("/healthz was never answered")
	}
	if s := time.Duration(slowest.Load()); s > 2*time.Second {
		t.Errorf("/healthz took %v at worst", s)
	}
}
