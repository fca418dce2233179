package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cli runs the hookrelay binary with args and returns its stdout; it fails
// the test when the command fails.
func cli(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("hookrelay %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// createKey makes a key through the CLI and returns its secret (the last line).
func createKey(t *testing.T, storeURL, name, scopes string) string {
	t.Helper()
	out := strings.TrimSpace(cli(t, nil, "keys", "create", "--store", storeURL, "--name", name, "--scopes", scopes))
	lines := strings.Split(out, "\n")
	secret := lines[len(lines)-1]
	if !strings.HasPrefix(secret, "hr_") || strings.Contains(secret, " ") {
		t.Fatalf("keys create printed %q; want the secret alone on the last line", out)
	}
	return secret
}

// api calls the admin API and decodes the JSON answer.
func (s *server) api(t *testing.T, key, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	header := http.Header{}
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
		header.Set("Content-Type", "application/json")
	}
	if key != "" {
		header.Set("Authorization", "Bearer "+key)
	}
	status, raw := s.request(t, method, "/api/v1"+path, rd, header)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s answered non-JSON %q", method, path, raw)
	}
	return status, out
}

func list(m map[string]any, field string) []map[string]any {
	var out []map[string]any
	items, _ := m[field].([]any)
	for _, it := range items {
		if mm, ok := it.(map[string]any); ok {
			out = append(out, mm)
		}
	}
	return out
}

// copyDemo copies the demo config to a folder the test may change.
func copyDemo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"hookrelay.yaml", "rules/oncloudwine.yaml", "rules/ordercloud.yaml", "rules/winesitting.yaml", "rules/forward.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../testdata/demo", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pingRule makes test pings match: used to show replay after a reload.
const pingRule = `
  - name: test-ping
    when: body.event == "TEST"
    actions: [contact-create]
`

func TestAdminAPI(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) { testAdminAPI(t, b.url(t)) })
}

func testAdminAPI(t *testing.T, storeURL string) {
	dir := copyDemo(t)
	rc := newReceiver(t)
	broken := true
	rc.respond = func(path string, n int) int {
		if strings.HasPrefix(path, "/v1/contacts/ctc_down") && broken {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	admin := createKey(t, storeURL, "ops", "read,write,webhooks")
	reader := createKey(t, storeURL, "dashboard", "read")
	hooksOnly := createKey(t, storeURL, "ci", "webhooks")
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, retry: "10ms", config: filepath.Join(dir, "hookrelay.yaml"), extra: []string{"HOOKRELAY_WATCH=100ms"}})

	send := func(file string, replace ...string) string {
		t.Helper()
		body := payload(t, file)
		for i := 0; i+1 < len(replace); i += 2 {
			body = bytes.ReplaceAll(body, []byte(replace[i]), []byte(replace[i+1]))
		}
		status, out := srv.post(t, http.MethodPost, "/hooks/catch/oncloudwine", body, ocwSign(body))
		if status != http.StatusAccepted {
			t.Fatalf("send %s: %d %v", file, status, out)
		}
		return out["id"].(string)
	}

	t.Run("authentication and scopes", func(t *testing.T) {
		cases := []struct {
			key, method, path string
			want              int
		}{
			{"", http.MethodGet, "/events", http.StatusUnauthorized},
			{"hr_0000000000000000", http.MethodGet, "/events", http.StatusUnauthorized},
			{"Basic abc", http.MethodGet, "/events", http.StatusUnauthorized},
			{reader, http.MethodGet, "/events", http.StatusOK},
			{reader, http.MethodPost, "/deliveries/retry", http.StatusForbidden},
			{reader, http.MethodPost, "/keys", http.StatusForbidden},
			{hooksOnly, http.MethodGet, "/events", http.StatusForbidden},
			{hooksOnly, http.MethodGet, "/hooks", http.StatusOK},
			{reader, http.MethodPost, "/reload", http.StatusForbidden},
			{admin, http.MethodGet, "/nothing-here", http.StatusNotFound},
		}
		for _, c := range cases {
			status, out := srv.api(t, c.key, c.method, c.path, nil)
			if status != c.want {
				t.Errorf("%s %s with key %.6s: %d %v, want %d", c.method, c.path, c.key, status, out, c.want)
			}
			if status >= 400 && out["error"] == nil {
				t.Errorf("%s %s: error answer without message: %v", c.method, c.path, out)
			}
		}
	})

	t.Run("hooks", func(t *testing.T) {
		status, out := srv.api(t, hooksOnly, http.MethodGet, "/hooks", nil)
		if status != http.StatusOK {
			t.Fatalf("%d %v", status, out)
		}
		hooks := list(out, "data")
		if len(hooks) != 8 {
			t.Fatalf("hooks = %v", hooks)
		}
		raw, _ := json.Marshal(out)
		if bytes.Contains(raw, []byte(wsToken)) {
			t.Errorf("hook list shows the whole URL token: %s", raw)
		}
		for _, h := range hooks {
			if h["id"] == "winesitting" && !strings.Contains(h["url"].(string), "/hooks/catch/winesitting/"+wsToken[:4]) {
				t.Errorf("winesitting url = %v", h["url"])
			}
			if h["id"] == "oncloudwine" && len(list(h, "rules")) != 3 {
				t.Errorf("oncloudwine rules = %v", h["rules"])
			}
		}
	})

	created := send("oncloudwine-contact-created.json")
	ignored := send("oncloudwine-test-ping.json")
	rc.waitFor(t, "/v1/contacts", 1)

	t.Run("events list, filters and paging", func(t *testing.T) {
		status, out := srv.api(t, reader, http.MethodGet, "/events?limit=1", nil)
		first := list(out, "data")
		if status != http.StatusOK || len(first) != 1 || first[0]["id"] != ignored || out["next"] == "" {
			t.Fatalf("first page: %d %v", status, out)
		}
		status, out = srv.api(t, reader, http.MethodGet, "/events?limit=1&cursor="+out["next"].(string), nil)
		second := list(out, "data")
		if status != http.StatusOK || len(second) != 1 || second[0]["id"] != created {
			t.Fatalf("second page: %d %v", status, out)
		}
		_, out = srv.api(t, reader, http.MethodGet, "/events?status=ignored&hook=oncloudwine", nil)
		if ev := list(out, "data"); len(ev) != 1 || ev[0]["id"] != ignored {
			t.Errorf("status filter: %v", out)
		}
		_, out = srv.api(t, reader, http.MethodGet, "/events?hook=winesitting", nil)
		if ev := list(out, "data"); len(ev) != 0 {
			t.Errorf("hook filter: %v", out)
		}
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		_, out = srv.api(t, reader, http.MethodGet, "/events?since="+future, nil)
		if ev := list(out, "data"); len(ev) != 0 {
			t.Errorf("since filter: %v", out)
		}
		for param, query := range map[string]string{
			"status": "status=bogus", "limit": "limit=0", "since": "since=yesterday",
			"until": "until=2026-13-01", "cursor": "cursor=abc",
		} {
			status, out := srv.api(t, reader, http.MethodGet, "/events?"+query, nil)
			if msg, _ := out["error"].(string); status != http.StatusBadRequest || !strings.HasPrefix(msg, param+":") {
				t.Errorf("?%s: %d %v, want 400 naming %s", query, status, out, param)
			}
		}
	})

	t.Run("event detail redacts secrets", func(t *testing.T) {
		body := payload(t, "ordercloud-buyer-user-created.json")
		status, out := srv.post(t, http.MethodPost, "/hooks/catch/ordercloud", body, ocSign(body))
		if status != http.StatusAccepted {
			t.Fatalf("%d %v", status, out)
		}
		id := out["id"].(string)
		status, ev := srv.api(t, reader, http.MethodGet, "/events/"+id, nil)
		if status != http.StatusOK {
			t.Fatalf("%d %v", status, ev)
		}
		raw, _ := json.Marshal(ev)
		var p struct{ UserToken string }
		_ = json.Unmarshal(body, &p)
		if bytes.Contains(raw, []byte(p.UserToken)) {
			t.Errorf("event detail shows the UserToken")
		}
		if h, _ := ev["headers"].(map[string]any); h["x-oc-hash"] == nil || h["content-type"] != "application/json" {
			t.Errorf("headers = %v", ev["headers"])
		}
		if ev["idempotency_key"] != "4b1f6a0c-7e1d-4a52-9c43-2f8d1e6b7a90" || len(list(ev, "deliveries")) != 1 {
			t.Errorf("event = %v", ev)
		}
		d := list(ev, "deliveries")[0]
		for _, f := range []string{"id", "action", "status", "attempts", "next_attempt_at", "last_error"} {
			if _, ok := d[f]; !ok {
				t.Errorf("delivery summary lacks %s: %v", f, d)
			}
		}
		for _, path := range []string{"/events/evt_01M8000000000000000000000X", "/deliveries/dlv_01M8000000000000000000000X", "/events/nope"} {
			if status, _ := srv.api(t, reader, http.MethodGet, path, nil); status != http.StatusNotFound {
				t.Errorf("GET %s = %d, want 404", path, status)
			}
		}
	})

	t.Run("test ping goes through the real ingress and is stored ignored", func(t *testing.T) {
		for _, hook := range []string{"oncloudwine", "ordercloud", "winesitting"} {
			status, out := srv.api(t, hooksOnly, http.MethodPost, "/hooks/"+hook+"/test", nil)
			if status != http.StatusOK || out["accepted"] != true || out["status"] != float64(http.StatusAccepted) {
				t.Errorf("test ping %s: %d %v", hook, status, out)
				continue
			}
			id := out["response"].(map[string]any)["id"].(string)
			_, ev := srv.api(t, reader, http.MethodGet, "/events/"+id, nil)
			if ev["status"] != "ignored" {
				t.Errorf("test ping %s stored as %v", hook, ev["status"])
			}
		}
		if status, _ := srv.api(t, hooksOnly, http.MethodPost, "/hooks/nope/test", nil); status != http.StatusNotFound {
			t.Errorf("test ping of unknown hook = %d", status)
		}
	})

	t.Run("replay after a rule is added by reload", func(t *testing.T) {
		status, out := srv.api(t, admin, http.MethodPost, "/events/"+ignored+"/replay", nil)
		if status != http.StatusOK || len(out["deliveries"].([]any)) != 0 {
			t.Fatalf("replay before the rule: %d %v", status, out)
		}
		rules := filepath.Join(dir, "rules/oncloudwine.yaml")
		orig, _ := os.ReadFile(rules)
		writeFile(t, rules, string(orig)+pingRule)
		status, out = srv.api(t, hooksOnly, http.MethodPost, "/reload", nil)
		if status != http.StatusOK {
			t.Fatalf("reload: %d %v", status, out)
		}
		status, out = srv.api(t, admin, http.MethodPost, "/events/"+ignored+"/replay", nil)
		if status != http.StatusAccepted || len(out["deliveries"].([]any)) != 1 {
			t.Fatalf("replay after the rule: %d %v", status, out)
		}
		rc.waitFor(t, "/v1/contacts", 2)
		_, ev := srv.api(t, reader, http.MethodGet, "/events/"+ignored, nil)
		if ev["status"] != "accepted" || len(list(ev, "deliveries")) != 1 {
			t.Errorf("replayed event = %v", ev)
		}

		// A bad config is refused; the rules in force keep serving.
		writeFile(t, rules, string(orig)+pingRule+"  - name: broken\n    when: body.event ==\n    actions: [contact-create]\n")
		status, out = srv.api(t, admin, http.MethodPost, "/reload", nil)
		if msg, _ := out["error"].(string); status != http.StatusUnprocessableEntity || !strings.Contains(msg, "oncloudwine.yaml:") {
			t.Errorf("bad reload: %d %v, want 422 naming file:line:col", status, out)
		}
		ping := send("oncloudwine-test-ping.json", "08:59:00.000Z", "09:59:00.000Z")
		rc.waitFor(t, "/v1/contacts", 3)
		_, ev = srv.api(t, reader, http.MethodGet, "/events/"+ping, nil)
		if ev["status"] != "accepted" {
			t.Errorf("after a refused reload the old rules stopped serving: %v", ev)
		}

		// A file change on disk reloads by itself.
		writeFile(t, rules, string(orig))
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, out := srv.api(t, admin, http.MethodGet, "/hooks", nil)
			n := 0
			for _, h := range list(out, "data") {
				if h["id"] == "oncloudwine" {
					n = len(list(h, "rules"))
				}
			}
			if n == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("file change was not picked up: oncloudwine has %d rules", n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("retry dead deliveries one by one and in bulk", func(t *testing.T) {
		ids := []string{
			send("oncloudwine-contact-deleted.json", "ctc_77b0e9f4", "ctc_down1"),
			send("oncloudwine-contact-deleted.json", "ctc_77b0e9f4", "ctc_down2"),
			send("oncloudwine-contact-deleted.json", "ctc_77b0e9f4", "ctc_down3"),
		}
		st := openTestStore(t, storeURL)
		var dlv []string
		for _, id := range ids {
			dlv = append(dlv, waitDelivery(t, st, id, "dead").ID)
		}
		status, out := srv.api(t, reader, http.MethodGet, "/deliveries?status=dead&action=contact-delete", nil)
		if got := list(out, "data"); status != http.StatusOK || len(got) != 3 || got[0]["event_id"] == nil {
			t.Fatalf("dead deliveries: %d %v", status, out)
		}
		status, out = srv.api(t, reader, http.MethodGet, "/deliveries/"+dlv[0], nil)
		if log := list(out, "attempt_log"); status != http.StatusOK || len(log) != 2 || log[0]["status_code"] != float64(503) {
			t.Errorf("delivery detail: %d %v", status, out)
		}
		if status, out := srv.api(t, reader, http.MethodGet, "/deliveries?status=gone", nil); status != http.StatusBadRequest {
			t.Errorf("bad status filter: %d %v", status, out)
		}

		broken = false
		status, out = srv.api(t, admin, http.MethodPost, "/deliveries/"+dlv[0]+"/retry", nil)
		if status != http.StatusAccepted {
			t.Fatalf("retry one: %d %v", status, out)
		}
		waitDelivery(t, st, ids[0], "succeeded")
		if status, _ := srv.api(t, admin, http.MethodPost, "/deliveries/"+dlv[0]+"/retry", nil); status != http.StatusConflict {
			t.Errorf("retrying a succeeded delivery = %d, want 409", status)
		}

		out2 := cli(t, []string{"HOOKRELAY_API_KEY=" + admin}, "deliveries", "retry", "--all", "--status", "dead", "--server", "http://"+srv.addr)
		if !strings.Contains(out2, "retried 2 deliveries") {
			t.Errorf("bulk retry printed %q", out2)
		}
		waitDelivery(t, st, ids[1], "succeeded")
		waitDelivery(t, st, ids[2], "succeeded")
		for _, p := range []string{"/v1/contacts/ctc_down2", "/v1/contacts/ctc_down3"} {
			if n := len(rc.on(p)); n != 3 {
				t.Errorf("%s saw %d requests, want 2 failures and the retry", p, n)
			}
		}
	})

	t.Run("CLI tables and JSON", func(t *testing.T) {
		env := []string{"HOOKRELAY_API_KEY=" + reader, "HOOKRELAY_SERVER=http://" + srv.addr}
		out := cli(t, env, "events", "list", "--hook", "oncloudwine")
		if !strings.Contains(out, created) || !strings.HasPrefix(out, "ID") {
			t.Errorf("events list:\n%s", out)
		}
		out = cli(t, env, "events", "list", "--json", "--limit", "2")
		var page struct {
			Data []map[string]any
			Next string
		}
		if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Data) != 2 || page.Next == "" {
			t.Errorf("events list --json: %v %q", err, out)
		}
		out = cli(t, env, "events", "show", created)
		if !strings.Contains(out, "contact-create") || !strings.Contains(out, "succeeded") {
			t.Errorf("events show:\n%s", out)
		}
		out = cli(t, env, "deliveries", "list", "--status", "succeeded")
		if !strings.Contains(out, "contact-create") {
			t.Errorf("deliveries list:\n%s", out)
		}
		out = cli(t, []string{"HOOKRELAY_API_KEY=" + admin, "HOOKRELAY_SERVER=http://" + srv.addr}, "events", "replay", created)
		if !strings.Contains(out, "enqueued 1 deliveries") {
			t.Errorf("events replay: %q", out)
		}
	})

	t.Run("keys: create, list, last used, revoke everywhere at once", func(t *testing.T) {
		status, out := srv.api(t, admin, http.MethodPost, "/keys", map[string]any{"name": "temp", "scopes": []string{"read"}})
		secret, _ := out["secret"].(string)
		if status != http.StatusCreated || !strings.HasPrefix(secret, "hr_") {
			t.Fatalf("create key: %d %v", status, out)
		}
		id := out["id"].(string)
		if status, out := srv.api(t, admin, http.MethodPost, "/keys", map[string]any{"name": "x", "scopes": []string{"root"}}); status != http.StatusBadRequest {
			t.Errorf("bad scope: %d %v", status, out)
		}
		second := start(t, serverOpts{store: storeURL, api: rc.URL, config: filepath.Join(dir, "hookrelay.yaml"), workers: -1})
		if status, _ := second.api(t, secret, http.MethodGet, "/events", nil); status != http.StatusOK {
			t.Fatalf("new key on the second process: %d", status)
		}
		_, out = srv.api(t, admin, http.MethodGet, "/keys", nil)
		raw, _ := json.Marshal(out)
		if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(`"hash"`)) {
			t.Errorf("key list shows a secret or hash: %s", raw)
		}
		for _, k := range list(out, "data") {
			if k["id"] == id && k["last_used_at"] == nil {
				t.Errorf("last_used_at not recorded: %v", k)
			}
		}
		if status, out := srv.api(t, admin, http.MethodDelete, "/keys/"+id, nil); status != http.StatusOK {
			t.Fatalf("revoke: %d %v", status, out)
		}
		if status, _ := second.api(t, secret, http.MethodGet, "/events", nil); status != http.StatusUnauthorized {
			t.Errorf("revoked key on the second process = %d, want 401 at once", status)
		}
		if status, _ := srv.api(t, admin, http.MethodDelete, "/keys/key_nope", nil); status != http.StatusNotFound {
			t.Errorf("revoke unknown = %d", status)
		}
		if status, _ := srv.api(t, admin, http.MethodPost, "/cache/clear", nil); status != http.StatusOK {
			t.Errorf("cache clear = %d", status)
		}
	})
}

// SIGHUP reloads the config; a refused one leaves the old config serving.
// With --watch 0 the files are never checked: only the signal reloads.
func TestReloadOnSIGHUP(t *testing.T) {
	dir := copyDemo(t)
	rc := newReceiver(t)
	srv := start(t, serverOpts{store: "sqlite://" + filepath.Join(t.TempDir(), "h.db"), api: rc.URL,
		config: filepath.Join(dir, "hookrelay.yaml"), extra: []string{"HOOKRELAY_WATCH=0"}})
	rules := filepath.Join(dir, "rules/oncloudwine.yaml")
	orig, _ := os.ReadFile(rules)

	writeFile(t, rules, string(orig)+"  - name: broken\n    when: body.event ==\n")
	// Longer than the default interval of checks, which 0 must not fall back to.
	time.Sleep(2500 * time.Millisecond)
	if out := srv.output(); strings.Contains(out, "config reload") {
		t.Fatalf("a file change reloaded with --watch 0:\n%s", out)
	}
	_ = srv.cmd.Process.Signal(syscall.SIGHUP)
	srv.waitLog(t, "config reload refused", 1)

	writeFile(t, rules, string(orig)+pingRule)
	_ = srv.cmd.Process.Signal(syscall.SIGHUP)
	srv.waitLog(t, `msg="config reloaded" trigger=SIGHUP`, 1)
	body := payload(t, "oncloudwine-test-ping.json")
	if status, out := srv.post(t, http.MethodPost, "/hooks/catch/oncloudwine", body, ocwSign(body)); status != http.StatusAccepted {
		t.Fatalf("%d %v", status, out)
	}
	rc.waitFor(t, "/v1/contacts", 1) // the rule added by the reload fired
}

// A config refused for a rule file it names for the first time is tried
// again when that file is fixed, or made when it was missing; a refused
// config is not tried again while nothing changes.
func TestReloadWatchesFilesOfRefusedConfig(t *testing.T) {
	dir := copyDemo(t)
	rc := newReceiver(t)
	cfgPath := filepath.Join(dir, "hookrelay.yaml")
	srv := start(t, serverOpts{store: sqliteStore(t), api: rc.URL, config: cfgPath, args: []string{"--watch", "200ms"}})
	orig, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	nameRules := func(files string) {
		t.Helper()
		cfg := strings.Replace(string(orig), "rules: [rules/oncloudwine.yaml]", "rules: [rules/oncloudwine.yaml, "+files+"]", 1)
		if cfg == string(orig) {
			t.Fatal("the demo config names its oncloudwine rules otherwise")
		}
		writeFile(t, cfgPath, cfg)
	}
	reloads := func() (refused, done int) {
		out := srv.output()
		return strings.Count(out, "config reload refused"), strings.Count(out, `msg="config reloaded" trigger="file changed"`)
	}
	quiet := func(refused, done int) {
		t.Helper()
		time.Sleep(time.Second) // five checks
		if r, d := reloads(); r != refused || d != done {
			t.Fatalf("with nothing changed: %d refused and %d reloads, want %d and %d\n%s", r, d, refused, done, srv.output())
		}
	}
	send := func() {
		t.Helper()
		body := payload(t, "oncloudwine-test-ping.json")
		if status, out := srv.post(t, http.MethodPost, "/hooks/catch/oncloudwine", body, ocwSign(body)); status != http.StatusAccepted {
			t.Fatalf("%d %v", status, out)
		}
	}

	// A new rule file with an error, named by the main config.
	extra := filepath.Join(dir, "rules/extra.yaml")
	writeFile(t, extra, "rules:\n  - name: broken\n    when: body.event ==\n    actions: [contact-create]\n")
	nameRules("rules/extra.yaml")
	srv.waitLog(t, "config reload refused", 1)
	quiet(1, 0)

	// Fixing it reloads, without touching the main config.
	writeFile(t, extra, "rules:"+pingRule)
	srv.waitLog(t, `msg="config reloaded" trigger="file changed"`, 1)
	send()
	rc.waitFor(t, "/v1/contacts", 1) // the rule of the fixed file fires
	quiet(1, 1)

	// A rule file named before it is there: making it reloads.
	later := filepath.Join(dir, "rules/later.yaml")
	nameRules("rules/extra.yaml, rules/later.yaml")
	srv.waitLog(t, "config reload refused", 2)
	quiet(2, 1)
	writeFile(t, later, "rules:\n  - name: later\n    when: body.event == \"TEST\"\n    actions: [contact-update]\n")
	srv.waitLog(t, `msg="config reloaded" trigger="file changed"`, 2)
	quiet(2, 2)
}
