package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/gateway/admin"
)

// cliFail runs the hookrelay binary with args, expecting it to fail, and
// returns its stderr.
func cliFail(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err == nil {
		t.Fatalf("hookrelay %s succeeded, want a failure\nstdout: %s", strings.Join(args, " "), out.String())
	}
	return errOut.String()
}

func TestActionsCLI(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) { testActionsCLI(t, b.url(t)) })
}

func testActionsCLI(t *testing.T, storeURL string) {
	dir := copyDemo(t)
	cfgPath := filepath.Join(dir, "hookrelay.yaml")
	orig, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	limited := strings.Replace(string(orig), "  contact-create:\n", "  contact-create:\n    concurrency: 2\n    rate: 50/s\n", 1)
	if limited == string(orig) {
		t.Fatal("the demo config has no contact-create action to limit")
	}
	writeFile(t, cfgPath, limited)
	rc := newReceiver(t)
	ops := createKey(t, storeURL, "ops", "read,write")
	reader := createKey(t, storeURL, "dashboard", "read")
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: cfgPath})
	env := []string{"HOOKRELAY_API_KEY=" + ops, "HOOKRELAY_SERVER=http://" + srv.addr}

	listJSON := func() map[string]admin.ActionView {
		t.Helper()
		var out struct{ Data []admin.ActionView }
		raw := cli(t, env, "actions", "list", "--json")
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatalf("actions list --json: %v in %q", err, raw)
		}
		m := map[string]admin.ActionView{}
		for _, a := range out.Data {
			m[a.Name] = a
		}
		return m
	}

	if out := cli(t, env, "actions", "pause", "contact-create"); !strings.Contains(out, "action contact-create is paused") {
		t.Errorf("actions pause printed %q", out)
	}
	// Pausing twice is no error.
	cli(t, env, "actions", "pause", "contact-create")

	body := payload(t, "oncloudwine-contact-created.json")
	if status, out := srv.post(t, http.MethodPost, "/hooks/catch/oncloudwine", body, ocwSign(body)); status != http.StatusAccepted {
		t.Fatalf("send: %d %v", status, out)
	}
	// The delivery is stored due; the paused action holds it back.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, out := srv.api(t, ops, http.MethodGet, "/actions", nil)
		due := -1.0
		for _, a := range list(out, "data") {
			if a["name"] == "contact-create" {
				due, _ = a["due"].(float64)
			}
		}
		if due == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("contact-create never showed its delivery due: %v", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(rc.on("/v1/contacts")); n != 0 {
		t.Fatalf("a paused action sent %d requests", n)
	}

	acts := listJSON()
	if len(acts) != 6 {
		t.Errorf("actions list --json has %d actions, want the demo's 6: %v", len(acts), acts)
	}
	cc := acts["contact-create"]
	if !cc.Paused || !cc.InConfig || cc.Due != 1 || cc.OldestDueAt == nil ||
		cc.Rate == nil || *cc.Rate != "50/s" || cc.Concurrency == nil || *cc.Concurrency != 2 || cc.Breaker.State != "closed" {
		t.Errorf("contact-create = %+v", cc)
	}
	if cu := acts["contact-update"]; cu.Paused || cu.Rate != nil || cu.Concurrency == nil || *cu.Concurrency != 10 {
		t.Errorf("contact-update = %+v", cu)
	}

	table := cli(t, env, "actions", "list")
	if !strings.HasPrefix(table, "NAME") {
		t.Errorf("actions list:\n%s", table)
	}
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "contact-create" && (f[1] != "paused" || f[3] != "1" || f[5] != "50/s" || f[6] != "2") {
			t.Errorf("contact-create row %q", line)
		}
		if len(f) > 0 && f[0] == "forward" && f[1] != "running" {
			t.Errorf("forward row %q", line)
		}
	}

	readEnv := []string{"HOOKRELAY_API_KEY=" + reader, "HOOKRELAY_SERVER=http://" + srv.addr}
	if msg := cliFail(t, readEnv, "actions", "resume", "contact-create"); !strings.Contains(msg, "write scope") || !strings.Contains(msg, "403") {
		t.Errorf("resume with a read key: %q", msg)
	}
	if msg := cliFail(t, env, "actions", "pause", "nope"); !strings.Contains(msg, "no such action") || !strings.Contains(msg, "404") {
		t.Errorf("pause of an unknown action: %q", msg)
	}
	if msg := cliFail(t, env, "actions", "pause"); !strings.Contains(msg, "arg") {
		t.Errorf("pause without a name: %q", msg)
	}

	if out := cli(t, env, "actions", "resume", "contact-create"); !strings.Contains(out, "action contact-create is running") {
		t.Errorf("actions resume printed %q", out)
	}
	rc.waitFor(t, "/v1/contacts", 1)
	if cc := listJSON()["contact-create"]; cc.Paused {
		t.Errorf("contact-create after resume = %+v", cc)
	}
	srv.waitLog(t, "action=contact-create paused=false", 1)
}
