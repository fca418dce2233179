package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut, LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}}
	code := m.Run(context.Background(), args)
	return code, out.String(), errOut.String()
}

func TestValidate(t *testing.T) {
	code, out, errOut := run(t, nil, "validate", "--config", "../../testdata/demo/hookrelay.yaml")
	if code != 0 || !strings.Contains(out, "ok (8 hooks, 6 actions)") {
		t.Fatalf("validate demo: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = run(t, nil, "validate", "--config", "../../config/testdata/bad/rule-typo.yaml")
	if code != 2 || out != "" {
		t.Fatalf("validate bad: exit %d, stdout %q", code, out)
	}
	if !strings.HasPrefix(errOut, "../../config/testdata/bad/rules-typo.yaml:3:") {
		t.Errorf("stderr = %q, want file:line:col first", errOut)
	}
	code, _, errOut = run(t, map[string]string{"HOOKRELAY_CONFIG": "missing.yaml"}, "validate")
	if code != 2 || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("validate with HOOKRELAY_CONFIG: exit %d, stderr %q", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, nil, "version")
	if code != 0 || out != "hookrelay "+version+"\n" {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

func TestServeRefusesBadStart(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"bad config", []string{"serve", "--config", "../../config/testdata/bad/unknown-key.yaml", "--store", "sqlite://" + t.TempDir() + "/x.db"}, "unknown-key.yaml:6:5"},
		{"unknown store scheme", []string{"serve", "--config", "../../testdata/demo/hookrelay.yaml", "--store", "mongodb://localhost"}, `unknown scheme "mongodb"`},
		{"admin on the catch URLs' address", []string{"serve", "--config", "../../testdata/demo/hookrelay.yaml", "--listen", "127.0.0.1:1", "--admin-listen", "127.0.0.1:1", "--store", "sqlite://" + t.TempDir() + "/x.db"}, "--admin-listen or HOOKRELAY_ADMIN_LISTEN 127.0.0.1:1: the address of --listen; give another"},
		{"unreachable redis", []string{"serve", "--config", "../../testdata/demo/hookrelay.yaml", "--store", "redis://127.0.0.1:1/0"}, "open Redis store"},
		{"unopenable file", []string{"serve", "--config", "../../testdata/demo/hookrelay.yaml", "--store", "sqlite:///proc/hookrelay/x.db"}, "open embedded store"},
	}
	for _, c := range cases {
		code, _, errOut := run(t, nil, c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want failure mentioning %q", c.name, code, errOut, c.want)
		}
	}
}

// An environment variable that does not parse stops serve before anything
// starts, naming the variable, its value and what is wanted; it is never
// replaced by the default in silence.
func TestServeRefusesBadEnvironment(t *testing.T) {
	args := []string{"serve", "--config", "../../testdata/demo/hookrelay.yaml", "--listen", "127.0.0.1:0", "--store", "sqlite://" + t.TempDir() + "/x.db"}
	cases := []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"HOOKRELAY_WORKERS": "abc"}, []string{`HOOKRELAY_WORKERS="abc": want a whole number such as 1000`}},
		{map[string]string{"HOOKRELAY_WORKERS": "1e3"}, []string{`HOOKRELAY_WORKERS="1e3"`}},
		{map[string]string{"HOOKRELAY_LEASE": "30"}, []string{`HOOKRELAY_LEASE="30": want a duration with its unit such as 30s`}},
		{map[string]string{"HOOKRELAY_GRACE": "soon"}, []string{`HOOKRELAY_GRACE="soon": want a duration with its unit such as 10s`}},
		{map[string]string{"HOOKRELAY_WATCH": "2 s"}, []string{`HOOKRELAY_WATCH="2 s": want a duration with its unit such as 2s`}},
		{map[string]string{"HOOKRELAY_LOG_LEVEL": "verbose"}, []string{`HOOKRELAY_LOG_LEVEL "verbose": use debug, info, warn or error`}},
		{map[string]string{"HOOKRELAY_LOG_FORMAT": "xml"}, []string{`HOOKRELAY_LOG_FORMAT "xml": use text or json`}},
		// Every bad variable is named at once.
		{map[string]string{"HOOKRELAY_WORKERS": "many", "HOOKRELAY_GRACE": "10"}, []string{`HOOKRELAY_WORKERS="many"`, `HOOKRELAY_GRACE="10"`}},
		// Values that parse but that serve cannot run with, all named.
		{map[string]string{"HOOKRELAY_WORKERS": "-3"}, []string{`--workers or HOOKRELAY_WORKERS -3: want 0 (no relay in this process) or more`}},
		{map[string]string{"HOOKRELAY_LEASE": "500ms"}, []string{`--lease or HOOKRELAY_LEASE 500ms: want at least 1s`}},
		{map[string]string{"HOOKRELAY_GRACE": "-5s"}, []string{`--grace or HOOKRELAY_GRACE -5s: want 0 (stop at once) or more`}},
		{map[string]string{"HOOKRELAY_WATCH": "-1s"}, []string{`--watch or HOOKRELAY_WATCH -1s: want 0 (no checks: reload on SIGHUP or POST /api/v1/reload) or at least 100ms`}},
		{map[string]string{"HOOKRELAY_WATCH": "1ns", "HOOKRELAY_WORKERS": "-1"}, []string{`HOOKRELAY_WATCH 1ns`, `HOOKRELAY_WORKERS -1`}},
	}
	for _, c := range cases {
		code, out, errOut := run(t, c.env, args...)
		if code != 2 || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2", c.env, code, out, errOut)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr %q, want %q", c.env, errOut, w)
			}
		}
		if strings.Contains(errOut, "listening") {
			t.Errorf("%v: the server started:\n%s", c.env, errOut)
		}
	}
	// A command that reads none of them is not stopped by them.
	if code, out, errOut := run(t, map[string]string{"HOOKRELAY_WORKERS": "abc"}, "validate", "--config", "../../testdata/demo/hookrelay.yaml"); code != 0 {
		t.Errorf("validate with a bad HOOKRELAY_WORKERS: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// A command for the running server that finds none says where it looked
// and how to point it elsewhere.
func TestRemoteWithoutServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	code, out, errOut := run(t, map[string]string{"HOOKRELAY_API_KEY": "hr_x", "HOOKRELAY_SERVER": server}, "events", "list")
	want := "no server answers at " + server + " (connect: connection refused): start hookrelay serve, or point --server or HOOKRELAY_SERVER at the one that runs"
	if code != 1 || out != "" || !strings.Contains(errOut, want) {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, want)
	}
}

// A command on a Redis that does not answer says so once: the Redis
// client's own lines about each failed dial stay out of its output.
// (The binary, for what the client prints goes to the process's stderr.)
func TestStoreCommandOnRedisDown(t *testing.T) {
	errOut := cliFail(t, nil, "keys", "list", "--store", "redis://127.0.0.1:1/0")
	want := "error: open Redis store redis://127.0.0.1:1/0: redisstore: ping 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused\n"
	if errOut != want {
		t.Errorf("stderr %q; want %q", errOut, want)
	}
}

// echo prints each request it gets and answers the status asked for; a
// status that is not a final one is refused before it listens.
func TestEcho(t *testing.T) {
	for _, bad := range []string{"50", "0", "103", "600"} {
		if code, _, errOut := run(t, nil, "echo", "--listen", "127.0.0.1:0", "--status", bad); code != 2 || !strings.Contains(errOut, "--status "+bad+": want a final HTTP status, 200 to 599") {
			t.Errorf("--status %s: exit %d, stderr %q", bad, code, errOut)
		}
	}

	cmd := exec.Command(binary, "echo", "--listen", "127.0.0.1:0", "--status", "503")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("echo printed nothing: %v", lines.Err())
	}
	addr, ok := strings.CutPrefix(lines.Text(), "echo receiver listening on ")
	addr, _, _ = strings.Cut(addr, " ")
	if !ok {
		t.Fatalf("first line %q", lines.Text())
	}
	resp, err := http.Post(addr+"/v1/contacts?x=1", "application/json", strings.NewReader(`{"id":7}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", resp.StatusCode)
	}
	var seen []string
	for lines.Scan() && !strings.Contains(lines.Text(), `{"id":7}`) {
		seen = append(seen, lines.Text())
	}
	if !slices.ContainsFunc(seen, func(l string) bool { return strings.HasSuffix(l, " POST /v1/contacts?x=1") }) {
		t.Errorf("the request line is not printed: %q", seen)
	}
}
