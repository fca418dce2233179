package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/whatif"
)

// The config in force of the what-if tests: paid orders are notified and
// archived, every order is archived. X-Sent-At reads the clock, which a
// what-if run must not report as a change.
const (
	whatifConfig = `egress:
  allow_networks: [127.0.0.0/8]
hooks:
  orders:
    verify:
      scheme: none
    auth:
      allow_ips: [127.0.0.1]
    rules: [rules.yaml]
actions:
  notify:
    method: POST
    url: ${DEMO_API_URL}/v1/orders/{{ body.data.id }}
    auth:
      bearer: ${CRM_TOKEN}
    headers:
      X-Sent-At: "{{ string(now().UnixNano()) }}"
    body:
      id: "{{ body.data.id }}"
      status: "{{ body.data.status }}"
    retry: 50ms
  archive:
    method: PUT
    url: ${DEMO_API_URL}/v1/archive/{{ body.data.id }}
    auth:
      bearer: ${CRM_TOKEN}
    retry: 50ms
`
	whatifRules = `rules:
  - name: paid
    when: body.data.status == "paid"
    actions: [notify, archive]
  - name: every-order
    when: body.data.id != nil
    actions: [archive]
`
)

// whatifDir writes a config and its rules into a folder of their own and
// returns the config's path.
func whatifDir(t *testing.T, cfg, rules string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hookrelay.yaml"), cfg)
	writeFile(t, filepath.Join(dir, "rules.yaml"), rules)
	return filepath.Join(dir, "hookrelay.yaml")
}

// whatifConfigs are the config in force and the candidates the tests run.
type whatifConfigs struct {
	current, same, dropped, template, broken string
}

func newWhatifConfigs(t *testing.T) whatifConfigs {
	return whatifConfigs{
		current: whatifDir(t, whatifConfig, whatifRules),
		same:    whatifDir(t, whatifConfig, whatifRules),
		// The rule "paid" is dropped: notify is lost, archive stays (by
		// the other rule).
		dropped:  whatifDir(t, whatifConfig, "rules:\n"+whatifRules[strings.Index(whatifRules, "  - name: every-order"):]),
		template: whatifDir(t, strings.Replace(whatifConfig, `status: "{{ body.data.status }}"`, `status: "{{ upper(body.data.status) }}"`, 1), whatifRules),
		broken:   whatifDir(t, strings.Replace(whatifConfig, `{{ body.data.id }}"`, `{{ body.data.id + }}"`, 1), whatifRules),
	}
}

// whatifRun runs hookrelay whatif in-process and returns its exit code,
// standard output and standard error.
func whatifRun(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	code := m.Run(context.Background(), append([]string{"whatif"}, args...))
	return code, out.String(), errOut.String()
}

// storeSnapshot returns a function that describes everything the store
// holds, to tell whether anything was written: for SQLite every table's
// row count, for Redis the number of keys under the test's prefix and
// their names.
func storeSnapshot(t *testing.T, backend, storeURL string) func() map[string]int64 {
	t.Helper()
	if backend == "redis" {
		u, err := url.Parse(storeURL)
		if err != nil {
			t.Fatal(err)
		}
		prefix := u.Query().Get("prefix")
		if prefix == "" {
			t.Fatal("the test's Redis store has no prefix of its own")
		}
		c := redistest.Client(t)
		return func() map[string]int64 {
			t.Helper()
			snap := map[string]int64{}
			for _, k := range redistest.Keys(t, c, prefix) {
				snap["keys"]++
				snap[k] = 1
			}
			return snap
		}
	}
	path := strings.TrimPrefix(storeURL, "sqlite://")
	db, err := sql.Open("sqlite", path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return func() map[string]int64 {
		t.Helper()
		rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
		if err != nil {
			t.Fatal(err)
		}
		var tables []string
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				t.Fatal(err)
			}
			tables = append(tables, name)
		}
		rows.Close()
		if len(tables) < 3 {
			t.Fatalf("the store has tables %v: not the store the test made", tables)
		}
		snap := map[string]int64{}
		for _, tb := range tables {
			var n int64
			if err := db.QueryRow(`SELECT count(*) FROM "` + tb + `"`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			snap[tb] = n
		}
		return snap
	}
}

var whatifTotalRE = regexp.MustCompile(`(?m)^(\d+) events, (\d+) gained, (\d+) lost, (\d+) changed$`)

// checkWhatif runs the candidates of cs with args (the store or the server
// to compare on) and checks each report: events paid and open were
// stored, and nothing else is in the window.
func checkWhatif(t *testing.T, env map[string]string, cs whatifConfigs, paid, open []string, args ...string) {
	t.Helper()
	total := len(paid) + len(open)
	run := func(cfg string, extra ...string) (int, string, string) {
		t.Helper()
		return whatifRun(t, env, append(append([]string{"--config", cfg}, args...), extra...)...)
	}

	t.Run("same config", func(t *testing.T) {
		code, out, errOut := run(cs.same)
		if want := fmt.Sprintf("%d events, 0 gained, 0 lost, 0 changed\n", total); code != 0 || out != want {
			t.Errorf("exit %d, output %q (stderr %q); want 0 and %q alone", code, out, errOut, want)
		}
	})

	t.Run("dropped rule", func(t *testing.T) {
		code, out, errOut := run(cs.dropped)
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
		}
		if m := whatifTotalRE.FindStringSubmatch(out); m == nil || m[1] != fmt.Sprint(total) || m[2] != "0" || m[3] != fmt.Sprint(len(paid)) || m[4] != "0" {
			t.Errorf("totals %q, want %d events, %d lost\n%s", m, total, len(paid), out)
		}
		for _, id := range paid {
			block := regexp.MustCompile(`(?m)^event ` + id + `  hook orders  received \S+\n  - lost  rule paid → action notify\n`)
			if !block.MatchString(out) {
				t.Errorf("no lost notify for %s:\n%s", id, out)
			}
		}
		for _, id := range open {
			if strings.Contains(out, id) {
				t.Errorf("event %s, which only archive takes, is reported:\n%s", id, out)
			}
		}
		if n := strings.Count(out, "\n"); n != 2*len(paid)+1 {
			t.Errorf("%d lines, want two per paid event and the totals:\n%s", n, out)
		}
	})

	t.Run("changed template", func(t *testing.T) {
		code, out, errOut := run(cs.template)
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
		}
		if want := `  ~ changed action notify: body.status: "paid" → "PAID"`; strings.Count(out, want+"\n") != len(paid) {
			t.Errorf("want %q once per paid event:\n%s", want, out)
		}
		if m := whatifTotalRE.FindStringSubmatch(out); m == nil || m[2] != "0" || m[3] != "0" || m[4] != fmt.Sprint(len(paid)) {
			t.Errorf("totals %q, want %d changed\n%s", m, len(paid), out)
		}
		if strings.Contains(out, env["CRM_TOKEN"]) {
			t.Errorf("the bearer token is shown:\n%s", out)
		}

		code, out, _ = run(cs.template, "--json")
		var rep whatif.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 {
			t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
		}
		if rep.Totals != (whatif.Totals{Events: total, Differing: len(paid), Changed: len(paid)}) {
			t.Errorf("--json totals %+v", rep.Totals)
		}
		want := []whatif.Change{{Field: "body.status", From: json.RawMessage(`"paid"`), To: json.RawMessage(`"PAID"`)}}
		for _, e := range rep.Events {
			if len(e.Changed) != 1 || !cmp.Equal(e.Changed[0].Changes, want) {
				t.Errorf("--json event %s: %+v", e.ID, e.Changed)
			}
		}
	})

	t.Run("window and hook", func(t *testing.T) {
		code, out, _ := run(cs.dropped, "--from", "2020-01-01T00:00:00Z", "--to", "2020-01-02T00:00:00Z")
		if code != 0 || out != "0 events, 0 gained, 0 lost, 0 changed\n" {
			t.Errorf("a window of no event: exit %d\n%s", code, out)
		}
		code, out, _ = run(cs.dropped, "--hook", "nothing-here")
		if code != 0 || out != "0 events, 0 gained, 0 lost, 0 changed\n" {
			t.Errorf("--hook of no event: exit %d\n%s", code, out)
		}
		code, out, _ = run(cs.dropped, "--limit", "1")
		if code != 1 || !strings.Contains(out, "1 events, 0 gained, 1 lost, 0 changed\n") || !strings.Contains(out, "only the newest 1 were compared") {
			t.Errorf("--limit 1: exit %d\n%s", code, out)
		}
		if !strings.Contains(out, "event "+paid[len(paid)-1]+" ") {
			t.Errorf("--limit 1 did not compare the newest event, %s:\n%s", paid[len(paid)-1], out)
		}
	})

	t.Run("usage and config errors", func(t *testing.T) {
		code, out, errOut := run(cs.broken)
		if code != 2 || out != "" || !regexp.MustCompile(`hookrelay\.yaml:\d+:\d+: `).MatchString(errOut) {
			t.Errorf("broken candidate: exit %d, stdout %q, stderr %q; want 2 and file:line:col", code, out, errOut)
		}
		for _, bad := range [][]string{
			{"--since", "-1h"}, {"--from", "yesterday"}, {"--since", "1h", "--from", "2026-01-01T00:00:00Z"},
			{"--to", "2026-01-01T00:00:00Z"}, {"--limit", "0"}, {"--no-such-flag"}, {"extra-argument"},
		} {
			if code, out, errOut := run(cs.same, bad...); code != 2 || out != "" || errOut == "" {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and a message", bad, code, out, errOut)
			}
		}
	})
}

// storeWhatifEvents stores events as the gateway would, directly: paid
// ones and open ones, received over the last hour, oldest first.
func storeWhatifEvents(t *testing.T, storeURL string) (paid, open []string) {
	t.Helper()
	ctx := context.Background()
	st, _, err := openStore(ctx, storeURL, storeOpening{create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := time.Now().UTC().Add(-time.Hour)
	for i, status := range []string{"paid", "open", "paid", "open", "paid"} {
		at := start.Add(time.Duration(i) * time.Minute)
		id := store.NewID("evt", at)
		ev := store.Event{
			ID: id, Hook: "orders", ReceivedAt: at, IdempotencyKey: id, Status: store.EventIgnored,
			Headers: map[string]string{"content-type": "application/json"},
			Body:    []byte(fmt.Sprintf(`{"data":{"id":"o-%d","status":%q}}`, i, status)),
		}
		if _, err := st.Accept(ctx, store.Accept{Event: ev, KeyTTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if status == "paid" {
			paid = append(paid, id)
		} else {
			open = append(open, id)
		}
	}
	return paid, open
}

// TestWhatifStore runs whatif on the store directly: no server, no relay.
func TestWhatifStore(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) {
		rc := newReceiver(t)
		env := map[string]string{"DEMO_API_URL": rc.URL, "CRM_TOKEN": crmToken}
		storeURL := b.url(t)
		paid, open := storeWhatifEvents(t, storeURL)
		snapshot := storeSnapshot(t, b.name, storeURL)
		before := snapshot()
		cs := newWhatifConfigs(t)

		checkWhatif(t, env, cs, paid, open, "--store", storeURL, "--current", cs.current)

		t.Run("the config in force is required", func(t *testing.T) {
			code, out, errOut := whatifRun(t, env, "--config", cs.same, "--store", storeURL)
			if code != 2 || out != "" || !strings.Contains(errOut, "--current") {
				t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			code, _, errOut = whatifRun(t, env, "--config", cs.same, "--store", storeURL, "--current", cs.broken)
			if code != 2 || !strings.Contains(errOut, "current config: ") {
				t.Errorf("a broken --current: exit %d, stderr %q", code, errOut)
			}
		})
		if b.name == "sqlite" {
			missing := filepath.Join(t.TempDir(), "none.db")
			code, _, errOut := whatifRun(t, env, "--config", cs.same, "--current", cs.current, "--store", "sqlite://"+missing)
			if _, err := os.Stat(missing); code != 2 || err == nil {
				t.Errorf("a store file that is not there: exit %d (%s), created: %v", code, errOut, err == nil)
			}
		}

		if after := snapshot(); !cmp.Equal(before, after) {
			t.Errorf("whatif wrote to the store: %s", cmp.Diff(before, after))
		}
		if n := rc.total(); n != 0 {
			t.Errorf("the receiver got %d requests, want none", n)
		}
	})
}

// TestWhatifServer runs whatif through a running server, whose relay and
// receiver are live: the run must reach neither.
func TestWhatifServer(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) {
		rc := newReceiver(t)
		env := map[string]string{"DEMO_API_URL": rc.URL, "CRM_TOKEN": crmToken}
		storeURL := b.url(t)
		writeKey := createKey(t, storeURL, "deploy", "write")
		readKey := createKey(t, storeURL, "viewer", "read")
		cs := newWhatifConfigs(t)
		srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: cs.current})

		var paid, open []string
		for i, status := range []string{"paid", "open", "paid", "open", "paid"} {
			status, out := srv.post(t, http.MethodPost, "/hooks/catch/orders", []byte(fmt.Sprintf(`{"data":{"id":"o-%d","status":%q}}`, i, status)), nil)
			if status != http.StatusAccepted {
				t.Fatalf("catch: %d %v", status, out)
			}
			// Events received in one millisecond have no order: "the
			// newest" must be one event for --limit 1.
			time.Sleep(2 * time.Millisecond)
			if i%2 == 0 {
				paid = append(paid, out["id"].(string))
			} else {
				open = append(open, out["id"].(string))
			}
		}
		// Every delivery done: three notify and five archive.
		rc.waitFor(t, "/v1/archive/o-4", 1)
		st := openTestStore(t, storeURL)
		for _, id := range paid {
			waitSettled(t, st, id, 2)
		}
		for _, id := range open {
			waitSettled(t, st, id, 1)
		}
		received := rc.total()
		if received != 8 {
			t.Fatalf("the receiver got %d requests, want 8", received)
		}
		snapshot := storeSnapshot(t, b.name, storeURL)
		before := snapshot()

		checkWhatif(t, env, cs, paid, open, "--server", srv.url(""), "--api-key", writeKey)

		t.Run("a read key is refused", func(t *testing.T) {
			code, out, errOut := whatifRun(t, env, "--config", cs.dropped, "--server", srv.url(""), "--api-key", readKey)
			if code != 2 || out != "" || !strings.Contains(errOut, "(403)") || !strings.Contains(errOut, "write scope") {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and the 403", code, out, errOut)
			}
			status, body := srv.api(t, readKey, http.MethodPost, "/whatif", map[string]any{})
			if status != http.StatusForbidden {
				t.Errorf("POST /api/v1/whatif with a read key: %d %v", status, body)
			}
		})
		t.Run("bad requests", func(t *testing.T) {
			files := map[string]string{"c.yaml": "hooks: {}\n"}
			for _, body := range []map[string]any{
				{},
				{"path": "c.yaml", "files": files},
				{"path": "c.yaml", "files": files, "from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
				{"path": "c.yaml", "files": files, "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}, // no hooks
				{"path": "c.yaml", "files": map[string]string{"c.yaml": "hooks:\n  h:\n    verify: {scheme: none}\n    token: 0123456789abcdef\n    rules: [/etc/passwd]\n"},
					"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}, // the server's disk is not read
			} {
				status, out := srv.api(t, writeKey, http.MethodPost, "/whatif", body)
				if status != http.StatusBadRequest {
					t.Errorf("%v: %d %v, want 400", body, status, out)
				}
				if msg, _ := out["error"].(string); strings.Contains(msg, "root:") {
					t.Errorf("%v: the answer quotes a file of the server: %s", body, msg)
				}
			}
		})

		t.Run("only the variables the config in force names", func(t *testing.T) {
			// PATH is set in the server's environment, but the config in
			// force does not name it: to a candidate it is unset.
			cfg := strings.Replace(whatifConfig, "X-Sent-At:", "X-Path: ${PATH:-unset}\n      X-Sent-At:", 1)
			status, out := srv.api(t, writeKey, http.MethodPost, "/whatif", map[string]any{
				"path": "c/hookrelay.yaml", "files": map[string]string{"c/hookrelay.yaml": cfg, "c/rules.yaml": whatifRules},
				"from": time.Now().Add(-time.Hour).UTC(), "to": time.Now().UTC(),
			})
			raw, _ := json.Marshal(out)
			if status != http.StatusOK || !strings.Contains(string(raw), `{"field":"header X-Path","to":"unset"}`) {
				t.Errorf("%d %s, want header X-Path added as \"unset\" and nothing else", status, raw)
			}
			if p := os.Getenv("PATH"); len(p) > 6 && strings.Contains(string(raw), p) {
				t.Errorf("the server's PATH is in the answer: %s", raw)
			}
		})

		if after := snapshot(); !cmp.Equal(before, after) {
			t.Errorf("whatif wrote to the store: %s", cmp.Diff(before, after))
		}
		if n := rc.total(); n != received {
			t.Errorf("the receiver got %d requests during whatif", n-received)
		}
	})
}

// Through --server the server resolves ${VAR} with its own environment:
// whatif checks the candidate with stand-in values, so a machine without
// the variables (a CI runner) can send it, and a candidate that does not
// validate is still refused with its file:line:col before anything is sent.
func TestWhatifServerVariables(t *testing.T) {
	rc := newReceiver(t)
	storeURL := sqliteStore(t)
	writeKey := createKey(t, storeURL, "deploy", "write")
	cs := newWhatifConfigs(t)
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: cs.current})
	status, out := srv.post(t, http.MethodPost, "/hooks/catch/orders", []byte(`{"data":{"id":"o-1","status":"paid"}}`), nil)
	if status != http.StatusAccepted {
		t.Fatalf("catch: %d %v", status, out)
	}
	id := out["id"].(string)
	noEnv := map[string]string{}

	// The candidate reads DEMO_API_URL and CRM_TOKEN, which only the
	// server has, and a variable nobody sets, with a default.
	candidate := whatifDir(t, strings.Replace(
		strings.Replace(whatifConfig, `status: "{{ body.data.status }}"`, `status: "{{ upper(body.data.status) }}"`, 1),
		"retry: 50ms", "retry: ${WHATIF_RETRY:-50ms}", 1), whatifRules)
	code, stdout, stderr := whatifRun(t, noEnv, "--config", candidate, "--server", srv.url(""), "--api-key", writeKey)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (the candidate differs)\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	want := "event " + id + "  hook orders  received "
	if !strings.Contains(stdout, want) || !strings.Contains(stdout, `  ~ changed action notify: body.status: "paid" → "PAID"`+"\n") ||
		!strings.Contains(stdout, "1 events, 0 gained, 0 lost, 1 changed\n") {
		t.Errorf("report:\n%s\nwant notify changed for %s", stdout, id)
	}
	if strings.Contains(stdout+stderr, "stand-in") {
		t.Errorf("a stand-in value shows:\n%s%s", stdout, stderr)
	}
	code, stdout, stderr = whatifRun(t, noEnv, "--config", cs.same, "--server", srv.url(""), "--api-key", writeKey)
	if code != 0 || stdout != "1 events, 0 gained, 0 lost, 0 changed\n" {
		t.Errorf("the config in force as the candidate: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// A broken candidate is refused here: no server answers at the URL
	// given, and the error is the candidate's own.
	code, stdout, stderr = whatifRun(t, noEnv, "--config", cs.broken, "--server", "http://127.0.0.1:1", "--api-key", writeKey)
	if code != 2 || stdout != "" || !regexp.MustCompile(`hookrelay\.yaml:\d+:\d+: `).MatchString(stderr) || strings.Contains(stderr, "no server answers") {
		t.Errorf("broken candidate: exit %d, stdout %q, stderr %q; want 2 and its file:line:col, before sending", code, stdout, stderr)
	}
	if strings.Contains(stderr, "DEMO_API_URL") || strings.Contains(stderr, "CRM_TOKEN") {
		t.Errorf("broken candidate: the variables the server resolves are reported:\n%s", stderr)
	}
}

// checkCandidate finds for each variable a stand-in its field takes, and
// refuses only what no value fixes, with the errors of that alone.
func TestCheckCandidate(t *testing.T) {
	if _, err := checkCandidate("../../testdata/demo/hookrelay.yaml"); err != nil {
		t.Errorf("the demo config, every variable with its default: %v", err)
	}
	typed := strings.Replace(whatifConfig, "retry: 50ms\n  archive:", `retry: ${RETRY}
    timeout: ${TIMEOUT}
    concurrency: ${CONCURRENCY}
    rate: ${RATE}
  archive:`, 1)
	typed = strings.Replace(typed, "hooks:\n", `hooks:
  github:
    verify:
      scheme: github
      secret: ${GITHUB_SECRET}
    rules: [rules.yaml]
  standard:
    verify:
      scheme: standard-webhooks
      secret: ${STANDARD_SECRET}
    token: ${HOOK_TOKEN}
    rules: [rules.yaml]
`, 1)
	if _, err := checkCandidate(whatifDir(t, typed, whatifRules)); err != nil {
		t.Errorf("variables without defaults in typed fields: %v", err)
	}

	broken := strings.Replace(whatifConfig, "url: ${DEMO_API_URL}/v1/orders/{{ body.data.id }}", "url: ${DEMO_API_URL}/v1/orders/{{ body.data.id + }}", 1)
	broken = strings.Replace(broken, "hooks:\n", "hooks:\n  nowhere:\n    verify: {scheme: none}\n    token: ${HOOK_TOKEN}\n    rules: [nowhere.yaml]\n", 1)
	path := whatifDir(t, broken, whatifRules)
	_, err := checkCandidate(path)
	real := map[string]string{"DEMO_API_URL": "http://127.0.0.1:9090", "CRM_TOKEN": crmToken, "HOOK_TOKEN": wsToken}
	_, want := config.Load(path, func(k string) (string, bool) { v, ok := real[k]; return v, ok })
	// The column of an error after a ${VAR} on its line counts the value's
	// length: only file and line are compared.
	// The url's line reads a variable: the message says so.
	const note = "\n(checked here with stand-in values for ${DEMO_API_URL}, which the server resolves)"
	lineOnly := regexp.MustCompile(`(?m)^(\S+:\d+):\d+:`)
	if want == nil || lineOnly.ReplaceAllString(fmt.Sprint(err), "$1:") != lineOnly.ReplaceAllString(want.Error(), "$1:")+note || !strings.Contains(want.Error(), `action "notify": url: `) {
		t.Errorf("errors:\n%v\nwant those with the real values, and the note:\n%v%s", err, want, note)
	}
}
