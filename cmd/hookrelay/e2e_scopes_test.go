package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// TestKeyScopesCannotBeEscalated attacks the key scopes through the real
// server and the real CLI: no key can create, see or revoke a key beyond
// its own scopes, and no spelling of a scope list gets more than it names.
func TestKeyScopesCannotBeEscalated(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) { testKeyScopes(t, b.url(t)) })
}

func testKeyScopes(t *testing.T, storeURL string) {
	keys := map[string]string{}
	for name, scopes := range map[string]string{
		"full": "read,write,webhooks", "rw": "read,write", "writer": "write", "reader": "read", "hooks": "webhooks",
	} {
		keys[name] = createKey(t, storeURL, name, scopes)
	}
	srv := start(t, serverOpts{store: storeURL, api: "http://127.0.0.1:9"})
	ids := map[string]string{}
	countKeys := func() int {
		t.Helper()
		status, out := srv.api(t, keys["full"], http.MethodGet, "/keys", nil)
		if status != http.StatusOK {
			t.Fatalf("list keys: %d %v", status, out)
		}
		for _, k := range list(out, "data") {
			ids[k["name"].(string)] = k["id"].(string)
		}
		return len(list(out, "data"))
	}
	before := countKeys()

	t.Run("create beyond its scopes", func(t *testing.T) {
		refused := []struct {
			key    string
			scopes any
			want   int
		}{
			{"writer", []string{"read"}, http.StatusForbidden},
			{"writer", []string{"write", "webhooks"}, http.StatusForbidden},
			{"writer", []string{"read", "write", "webhooks"}, http.StatusForbidden},
			{"rw", []string{"read", "write", "webhooks"}, http.StatusForbidden},
			{"rw", []string{"webhooks"}, http.StatusForbidden},
			{"reader", []string{"read"}, http.StatusForbidden},    // creating needs write
			{"hooks", []string{"webhooks"}, http.StatusForbidden}, // creating needs write
			// Spellings that could be read as more than they say.
			{"writer", []string{"write", "write", "write"}, http.StatusBadRequest},
			{"rw", []string{"read", "read", "read"}, http.StatusBadRequest},
			{"writer", []string{"write", " write"}, http.StatusBadRequest},
			{"full", []string{"admin"}, http.StatusBadRequest},
			{"full", []string{"*"}, http.StatusBadRequest},
			{"full", []string{"READ"}, http.StatusBadRequest},
			{"full", []string{"read,write"}, http.StatusBadRequest},
			{"writer", []string{"write", ""}, http.StatusBadRequest},
			{"writer", []string{}, http.StatusBadRequest},
			{"writer", nil, http.StatusBadRequest},
			{"full", "read,write,webhooks", http.StatusBadRequest},
			{"full", map[string]any{"read": true}, http.StatusBadRequest},
		}
		for _, c := range refused {
			status, out := srv.api(t, keys[c.key], http.MethodPost, "/keys", map[string]any{"name": "escalated", "scopes": c.scopes})
			if status != c.want {
				t.Errorf("%s key creating %#v: %d %v, want %d", c.key, c.scopes, status, out, c.want)
			}
			if out["secret"] != nil {
				t.Errorf("%s key creating %#v got a secret", c.key, c.scopes)
			}
		}
		if n := countKeys(); n != before {
			t.Fatalf("refused requests made keys: %d keys, want %d", n, before)
		}
	})

	t.Run("create within its scopes", func(t *testing.T) {
		for _, c := range []struct {
			key, child string
			scopes     []string
		}{
			{"writer", "writer-child", []string{"write"}},
			{"rw", "rw-child", []string{"write", "read"}},
			{"rw", "rw-reader", []string{"read"}},
			{"full", "full-child", []string{"webhooks", "read", "write"}},
		} {
			status, out := srv.api(t, keys[c.key], http.MethodPost, "/keys", map[string]any{"name": c.child, "scopes": c.scopes})
			if status != http.StatusCreated {
				t.Fatalf("%s key creating %v: %d %v", c.key, c.scopes, status, out)
			}
			var got []string
			for _, s := range out["scopes"].([]any) {
				got = append(got, s.(string))
			}
			want := slices.Clone(c.scopes)
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s key created scopes %v, want %v", c.key, got, want)
			}
			keys[c.child] = out["secret"].(string)
		}
		// The child holds exactly what it was given.
		if status, _ := srv.api(t, keys["writer-child"], http.MethodGet, "/events", nil); status != http.StatusForbidden {
			t.Errorf("a write-only child reads events: %d", status)
		}
		if status, _ := srv.api(t, keys["writer-child"], http.MethodPost, "/keys", map[string]any{"name": "x", "scopes": []string{"read"}}); status != http.StatusForbidden {
			t.Errorf("a write-only child grants read: %d", status)
		}
		countKeys()
	})

	t.Run("list and revoke beyond its scopes", func(t *testing.T) {
		seen := func(key string) []string {
			status, out := srv.api(t, keys[key], http.MethodGet, "/keys", nil)
			if status != http.StatusOK {
				t.Fatalf("%s lists keys: %d %v", key, status, out)
			}
			var names []string
			for _, k := range list(out, "data") {
				names = append(names, k["name"].(string))
			}
			slices.Sort(names)
			return names
		}
		if got, want := seen("reader"), []string{"reader", "rw-reader"}; !slices.Equal(got, want) {
			t.Errorf("a read key sees %v, want %v", got, want)
		}
		if got, want := seen("rw"), []string{"reader", "rw", "rw-child", "rw-reader", "writer", "writer-child"}; !slices.Equal(got, want) {
			t.Errorf("a read,write key sees %v, want %v", got, want)
		}
		if got := seen("full"); len(got) != len(ids) {
			t.Errorf("the full key sees %v, want all %d", got, len(ids))
		}
		for _, c := range []struct{ key, target string }{
			{"writer", "full"}, {"writer", "rw"}, {"rw", "full"}, {"rw", "hooks"}, {"writer", "reader"},
		} {
			if status, out := srv.api(t, keys[c.key], http.MethodDelete, "/keys/"+ids[c.target], nil); status != http.StatusForbidden {
				t.Errorf("%s key revoking the %s key: %d %v, want 403", c.key, c.target, status, out)
			}
			if status, _ := srv.api(t, keys[c.target], http.MethodGet, "/hooks", nil); status == http.StatusUnauthorized {
				t.Errorf("the %s key was revoked by the %s key", c.target, c.key)
			}
		}
		if status, out := srv.api(t, keys["writer"], http.MethodDelete, "/keys/"+ids["writer-child"], nil); status != http.StatusOK {
			t.Errorf("writer revoking its own kind: %d %v", status, out)
		}
		if status, _ := srv.api(t, keys["writer-child"], http.MethodPost, "/keys", map[string]any{"name": "x", "scopes": []string{"write"}}); status != http.StatusUnauthorized {
			t.Errorf("revoked key still works: %d", status)
		}
	})

	t.Run("through the CLI", func(t *testing.T) {
		remote := func(key string, args ...string) []string {
			return append(append([]string{"keys"}, args...), "--server", "http://"+srv.addr, "--api-key", keys[key])
		}
		for _, c := range []struct {
			key, scopes, want string
		}{
			{"writer", "read,write,webhooks", "does not hold the read, webhooks scope"},
			{"rw", "read,write,webhooks", "does not hold the webhooks scope"},
			{"reader", "read", "lacks the write scope"},
			{"hooks", "webhooks", "lacks the write scope"},
			{"writer", "write,write", `scope "write" is given twice`},
			{"full", "root", `unknown scope "root"`},
			{"full", "read,,write", "empty scope"},
		} {
			errOut := cliFail(t, nil, remote(c.key, "create", "--name", "cli-escalated", "--scopes", c.scopes)...)
			if !strings.Contains(errOut, c.want) {
				t.Errorf("keys create --scopes %s with the %s key: stderr %q, want %q", c.scopes, c.key, errOut, c.want)
			}
		}
		errOut := cliFail(t, nil, "keys", "create", "--store", storeURL, "--name", "x", "--scopes", "read,read")
		if !strings.Contains(errOut, "given twice") {
			t.Errorf("keys create --store with a repeated scope: %q", errOut)
		}
		errOut = cliFail(t, nil, remote("writer", "revoke", ids["full"])...)
		if !strings.Contains(errOut, "does not hold") {
			t.Errorf("keys revoke of a broader key: %q", errOut)
		}
		out := cli(t, nil, remote("rw", "list")...)
		if strings.Contains(out, " full ") || strings.Contains(out, "webhooks") {
			t.Errorf("keys list with a read,write key shows broader keys:\n%s", out)
		}
		out = strings.TrimSpace(cli(t, nil, remote("rw", "create", "--name", "cli-child", "--scopes", "read")...))
		lines := strings.Split(out, "\n")
		child := lines[len(lines)-1]
		if status, _ := srv.api(t, child, http.MethodGet, "/events", nil); status != http.StatusOK {
			t.Errorf("key made through the CLI does not read: %d", status)
		}
		if n := countKeys(); n != len(ids) || ids["cli-escalated"] != "" {
			t.Errorf("refused CLI requests made keys: %v", ids)
		}
		if errOut := cliFail(t, nil, "keys", "list", "--store", storeURL, "--server", "http://"+srv.addr); !strings.Contains(errOut, "not both") {
			t.Errorf("keys list with --store and --server: %q", errOut)
		}
	})
}

// terminalControl reports a character that must never reach a terminal
// from stored data; it is written independently of term.go.
func terminalControl(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return false
	case r < 0x20, r >= 0x7f && r < 0xa0, r == '\ufffd':
		return true
	}
	return unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}

func checkNoControls(t *testing.T, where, out string) {
	t.Helper()
	for _, r := range out {
		if terminalControl(r) {
			t.Errorf("%s prints %U raw:\n%q", where, r, out)
			return
		}
	}
}

// TestCLIEscapesStoredValues sends values that would steer a terminal
// (ESC sequences, a carriage return, bidi overrides) in a payload and a key
// name, and reads them back with every CLI table and detail view, through
// the server and on the store directly.
func TestCLIEscapesStoredValues(t *testing.T) {
	storeURL := sqliteStore(t)
	admin := createKey(t, storeURL, "ops", "read,write,webhooks")
	const evil = "\x1b[2J\x1b]0;owned\x07ok\rEVIL\u202eRTL\u2066\u0085\x7f"
	hostileName := "night\x1b[31m-ops\r\u202eshift"
	createKey(t, storeURL, hostileName, "read")
	rc := newReceiver(t)
	rc.respond = func(string, int) int { return http.StatusServiceUnavailable }
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, retry: "10ms"})
	if status, out := srv.api(t, admin, http.MethodPost, "/keys", map[string]any{"name": "api" + evil, "scopes": []string{"read"}}); status != http.StatusCreated {
		t.Fatalf("create key with a hostile name: %d %v", status, out)
	}

	body, _ := json.Marshal(map[string]any{
		"event": "CONTACT_UPDATED" + evil, "timestamp": "2026-11-23T09:14:07.512Z" + evil, "organizationId": "org" + evil,
		"data": map[string]any{"id": "ctc\t" + evil, "firstName" + evil: "Maria" + evil},
	})
	status, out := srv.post(t, http.MethodPost, "/hooks/catch/oncloudwine", body, ocwSign(body))
	if status != http.StatusAccepted {
		t.Fatalf("send: %d %v", status, out)
	}
	id := out["id"].(string)

	remote := []string{"HOOKRELAY_API_KEY=" + admin, "HOOKRELAY_SERVER=http://" + srv.addr}
	views := map[string]string{
		"events list":        cli(t, remote, "events", "list"),
		"events list --json": cli(t, remote, "events", "list", "--json"),
		"events show":        cli(t, remote, "events", "show", id),
		"events show --json": cli(t, remote, "events", "show", id, "--json"),
		"deliveries list":    cli(t, remote, "deliveries", "list"),
		"actions list":       cli(t, remote, "actions", "list"),
		"keys list --server": cli(t, nil, "keys", "list", "--server", "http://"+srv.addr, "--api-key", admin),
		"keys list --store":  cli(t, nil, "keys", "list", "--store", storeURL),
		"keys list --json":   cli(t, nil, "keys", "list", "--store", storeURL, "--json"),
	}
	for where, out := range views {
		checkNoControls(t, where, out)
	}
	show := views["events show"]
	if !strings.Contains(show, `\u001b[2J\u001b]0;owned\u0007ok\rEVIL\u202eRTL`) || !strings.Contains(show, `ctc\t`) {
		t.Errorf("events show does not show the key escaped:\n%s", show)
	}
	for _, where := range []string{"keys list --server", "keys list --store"} {
		if !strings.Contains(views[where], `night\u001b[31m-ops\r\u202eshift`) {
			t.Errorf("%s does not show the hostile name escaped:\n%s", where, views[where])
		}
		// A key name cannot forge a row: one line per key and the header.
		if lines := strings.Count(strings.TrimSpace(views[where]), "\n") + 1; lines != 4 {
			t.Errorf("%s has %d lines, want 4:\n%s", where, lines, views[where])
		}
	}
	for _, where := range []string{"events show --json", "events list --json", "keys list --json"} {
		var v any
		if err := json.Unmarshal([]byte(views[where]), &v); err != nil {
			t.Errorf("%s is not JSON any more: %v\n%s", where, err, views[where])
		}
	}
	if raw, _ := json.Marshal(views); !strings.Contains(string(raw), "Maria") {
		t.Errorf("payload missing from the views")
	}
}

// TestEnvCannotRewriteRules starts the real server with a rule and an
// action that take a hostile value from the environment: the rule matches
// only a payload holding that very text, and the action sends it as text.
func TestEnvCannotRewriteRules(t *testing.T) {
	const hostile = `x" || true || "`
	rc := newReceiver(t)
	cfg := relayConfig(t, `
  - name: org
    when: body.org == "${HOSTILE_ORG}"
    actions: [notify]
`, `
  notify:
    url: ${DEMO_API_URL}/notify
    headers:
      X-Org: "${HOSTILE_ORG}"
    body: {org: "${HOSTILE_ORG}", n: "{{ body.n }}"}
`)
	storeURL := sqliteStore(t)
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: cfg, extra: []string{"HOSTILE_ORG=" + hostile}})
	st := openTestStore(t, storeURL)
	ignored := srv.sendEvent(t, map[string]any{"org": "someone else", "n": 1})
	srv.sendEvent(t, map[string]any{"org": hostile, "n": 2})
	got := rc.waitFor(t, "/notify", 1)
	if h := got[0].Header.Get("X-Org"); h != hostile {
		t.Errorf("X-Org = %q, want %q", h, hostile)
	}
	var body map[string]any
	if err := json.Unmarshal(got[0].Body, &body); err != nil || body["org"] != hostile || body["n"] != float64(2) {
		t.Errorf("body = %s", got[0].Body)
	}
	if ds, err := st.Deliveries(t.Context(), ignored); err != nil || len(ds) != 0 {
		t.Errorf("the other org's event has deliveries %v, %v", ds, err)
	}
}
