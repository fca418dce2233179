package main

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runIn runs the hookrelay binary in dir with env added to the test's own
// and returns its exit code, stdout and stderr.
func runIn(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errOut.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, out.String(), errOut.String()
}

// HOOKRELAY_SERVER selects the admin API for keys as --server does, as the
// README's "From the terminal" has it exported; a server and a store both
// given, by flag or environment, are refused by keys and whatif alike.
func TestKeysServerFromEnvironment(t *testing.T) {
	storeURL := sqliteStore(t)
	admin := createKey(t, storeURL, "ops", "read,write,webhooks")
	srv := start(t, serverOpts{store: storeURL, api: "http://127.0.0.1:1"})
	dir := t.TempDir()
	remote := []string{"HOOKRELAY_SERVER=" + srv.url(""), "HOOKRELAY_API_KEY=" + admin}

	code, out, errOut := runIn(t, dir, remote, "keys", "create", "--name", "ci", "--scopes", "read")
	if code != 0 {
		t.Fatalf("keys create with HOOKRELAY_SERVER: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, defaultStorePath)); err == nil {
		t.Errorf("keys create with HOOKRELAY_SERVER made a local %s", defaultStorePath)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := lines[len(lines)-1]
	if status, body := srv.api(t, secret, http.MethodGet, "/key", nil); status != http.StatusOK || body["name"] != "ci" {
		t.Errorf("the key printed is not the server's: GET /api/v1/key answers %d %v", status, body)
	}
	code, out, errOut = runIn(t, dir, remote, "keys", "list")
	if code != 0 || !strings.Contains(out, " ci ") {
		t.Errorf("keys list with HOOKRELAY_SERVER: exit %d, stdout %q, stderr %q; want the key ci", code, out, errOut)
	}
	id := strings.Fields(lines[0])[2]
	code, out, errOut = runIn(t, dir, remote, "keys", "revoke", id)
	if code != 0 {
		t.Errorf("keys revoke with HOOKRELAY_SERVER: exit %d\n%s%s", code, out, errOut)
	}
	if status, _ := srv.api(t, secret, http.MethodGet, "/key", nil); status != http.StatusUnauthorized {
		t.Errorf("the key revoked through HOOKRELAY_SERVER still works: %d", status)
	}
	if _, err := os.Stat(filepath.Join(dir, defaultStorePath)); err == nil {
		t.Errorf("keys with HOOKRELAY_SERVER made a local %s", defaultStorePath)
	}

	cfg := whatifDir(t, whatifConfig, whatifRules)
	for _, c := range []struct {
		env  []string
		args []string
		want string // where the server and the store come from
	}{
		{[]string{"HOOKRELAY_STORE=" + storeURL}, []string{"--server", srv.url("")}, "--server and HOOKRELAY_STORE"},
		{[]string{"HOOKRELAY_SERVER=" + srv.url("")}, []string{"--store", storeURL}, "HOOKRELAY_SERVER and --store"},
		{[]string{"HOOKRELAY_SERVER=" + srv.url(""), "HOOKRELAY_STORE=" + storeURL}, nil, "HOOKRELAY_SERVER and HOOKRELAY_STORE"},
		{nil, []string{"--server", srv.url(""), "--store", storeURL}, "--server and --store"},
	} {
		env := append([]string{"HOOKRELAY_API_KEY=" + admin}, c.env...)
		for _, cmd := range [][]string{
			{"keys", "create", "--name", "both"}, {"keys", "list"}, {"keys", "revoke", "key_x"},
			{"whatif", "--config", cfg},
		} {
			code, out, errOut := runIn(t, dir, env, append(cmd, c.args...)...)
			if code != 2 || out != "" || !strings.Contains(errOut, "give either --server (HOOKRELAY_SERVER) or --store (HOOKRELAY_STORE), not both") || !strings.Contains(errOut, c.want) {
				t.Errorf("%v with %v %v: exit %d, stdout %q, stderr %q; want 2 naming %s", cmd, c.env, c.args, code, out, errOut, c.want)
			}
		}
	}
	if n := countKeysNamed(t, storeURL, "both"); n != 0 {
		t.Errorf("a refused keys create made %d keys", n)
	}
	if _, err := os.Stat(filepath.Join(dir, defaultStorePath)); err == nil {
		t.Errorf("a refused command made a local %s", defaultStorePath)
	}
}

// countKeysNamed counts the keys called name on the store.
func countKeysNamed(t *testing.T, storeURL, name string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(cli(t, nil, "keys", "list", "--store", storeURL), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && f[1] == name {
			n++
		}
	}
	return n
}
