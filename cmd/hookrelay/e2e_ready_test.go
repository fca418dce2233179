package main

import (
	"bytes"
	"errors"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
)

// readyWithin is the bound: a process reports a lost or full store,
// and its return, within it.
const readyWithin = 5 * time.Second

// waitReadyz polls /readyz until it answers status with a body holding
// want, and fails the test if that has not happened within readyWithin.
func waitReadyz(t *testing.T, s *server, status int, want string) string {
	t.Helper()
	deadline := time.Now().Add(readyWithin)
	var got int
	var body []byte
	for {
		got, body = s.request(t, http.MethodGet, "/readyz", nil, nil)
		if got == status && strings.Contains(string(body), want) {
			return string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %s after %v; want %d with %q", got, body, readyWithin, status, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ingestWS posts one WineSitting event (fire and forget: it must be stored)
// and returns the status.
func ingestWS(t *testing.T, s *server) int {
	t.Helper()
	body := []byte(`{"type":"ORDER","operation":"UPDATE","object":{"id":"WS-` + time.Now().Format("150405.000000000") + `"},"date":"2026-11-28T10:00:00Z"}`)
	status, _ := s.post(t, http.MethodPost, "/hooks/catch/winesitting/"+wsToken, body, nil)
	return status
}

// TestReadyStoreWiped: a Redis that loses its data under running servers
// (FLUSHALL on a redis-server of the test's own) makes every one of them
// not ready within 5 s, with an ERROR naming the loss of acknowledged
// events; a process started then is not ready either; `store reset-ack`
// makes all of them ready again.
func TestReadyStoreWiped(t *testing.T) {
	t.Parallel()
	url := redistest.Server(t)
	rc := newReceiver(t)
	a := start(t, serverOpts{store: url, api: rc.URL})
	b := start(t, serverOpts{store: url, api: rc.URL})
	for _, s := range []*server{a, b} {
		waitReadyz(t, s, http.StatusOK, "ready")
	}
	if !strings.Contains(a.output(), "level=WARN msg=\"Redis neither persists its data (no AOF, no RDB snapshots) nor is replicated") {
		t.Errorf("no warning about a Redis without persistence at start:\n%s", a.output())
	}
	if got := ingestWS(t, a); got != http.StatusAccepted {
		t.Fatalf("ingest = %d, want 202", got)
	}

	flushAll(t, url)
	for _, s := range []*server{a, b} {
		waitReadyz(t, s, http.StatusServiceUnavailable, "store lost its data")
	}
	for _, s := range []*server{a, b} {
		// The line is written before /readyz answers 503, but read from
		// the process's stderr a little later.
		s.waitLog(t, "; events acknowledged before it may be lost", 1)
		if !strings.Contains(s.output(), "level=ERROR msg=\"store lost its data") {
			t.Errorf("the loss of acknowledged events is not logged as an ERROR:\n%s", s.output())
		}
		fams, _ := scrape(t, s.addr)
		if v := metricValue(fams, "hookrelay_store_identity_lost_total"); v < 1 {
			t.Errorf("hookrelay_store_identity_lost_total = %v after the loss, want at least 1", v)
		}
	}
	// A process started now must not take the emptied store for a new one.
	c := start(t, serverOpts{store: url, api: rc.URL})
	waitReadyz(t, c, http.StatusServiceUnavailable, "store lost its data")

	out := cli(t, nil, "store", "reset-ack", "--store", url)
	if !strings.Contains(out, "accepted the loss") {
		t.Errorf("store reset-ack printed %q", out)
	}
	for _, s := range []*server{a, b, c} {
		waitReadyz(t, s, http.StatusOK, "ready")
	}
	if got := ingestWS(t, b); got != http.StatusAccepted {
		t.Errorf("ingest after reset-ack = %d, want 202", got)
	}
}

// TestReadyAcceptStoreResetAtStart: a server restarted with
// --accept-store-reset accepts the loss for every process on the store.
func TestReadyAcceptStoreResetAtStart(t *testing.T) {
	t.Parallel()
	url := redistest.Server(t)
	rc := newReceiver(t)
	a := start(t, serverOpts{store: url, api: rc.URL})
	waitReadyz(t, a, http.StatusOK, "ready")
	flushAll(t, url)
	waitReadyz(t, a, http.StatusServiceUnavailable, "store lost its data")

	b := start(t, serverOpts{store: url, api: rc.URL, args: []string{"--accept-store-reset"}})
	waitReadyz(t, b, http.StatusOK, "ready")
	waitReadyz(t, a, http.StatusOK, "ready")
	if !strings.Contains(b.output(), "store reset accepted (--accept-store-reset)") {
		t.Errorf("no log of the accepted reset:\n%s", b.output())
	}
}

// TestReadyExpectStore: a Redis emptied while no process ran (FLUSHALL
// between two runs) is taken for a new store, unless serve is started
// with --expect-store naming the identity `hookrelay store identity`
// printed: the server then says the store lost its data and stays not
// ready until `store reset-ack`; after it, a start with the old identity
// is refused, naming the new one.
func TestReadyExpectStore(t *testing.T) {
	t.Parallel()
	url := redistest.Server(t)
	rc := newReceiver(t)
	a := start(t, serverOpts{store: url, api: rc.URL})
	waitReadyz(t, a, http.StatusOK, "ready")
	pinned := strings.TrimSpace(cli(t, nil, "store", "identity", "--store", url))
	if !strings.HasPrefix(pinned, "sid_") || strings.Contains(pinned, "\n") {
		t.Fatalf("store identity printed %q, want one id", pinned)
	}
	a.waitLog(t, "store identity: start with --expect-store "+pinned, 1)
	if got := ingestWS(t, a); got != http.StatusAccepted {
		t.Fatalf("ingest = %d, want 202", got)
	}
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}

	// The same store, pinned: ready.
	b := start(t, serverOpts{store: url, api: rc.URL, args: []string{"--expect-store", pinned}})
	waitReadyz(t, b, http.StatusOK, "ready")
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}

	flushAll(t, url)
	c := start(t, serverOpts{store: url, api: rc.URL, extra: []string{"HOOKRELAY_EXPECT_STORE=" + pinned}})
	waitReadyz(t, c, http.StatusServiceUnavailable, "store lost its data")
	c.waitLog(t, "where "+pinned+" was expected", 1)
	if !strings.Contains(c.output(), "level=ERROR msg=\"store lost its data: it holds no identity") {
		t.Errorf("the loss is not logged as an ERROR:\n%s", c.output())
	}
	// A process without the pin, started now, is not ready either.
	d := start(t, serverOpts{store: url, api: rc.URL})
	waitReadyz(t, d, http.StatusServiceUnavailable, "store lost its data")

	if out := cli(t, nil, "store", "reset-ack", "--store", url); !strings.Contains(out, "accepted the loss") {
		t.Errorf("store reset-ack printed %q", out)
	}
	for _, s := range []*server{c, d} {
		waitReadyz(t, s, http.StatusOK, "ready")
	}
	reset := strings.TrimSpace(cli(t, nil, "store", "identity", "--store", url))
	if reset == pinned {
		t.Fatalf("store identity after reset-ack is still %s", pinned)
	}
	code, out := serveFailsWith(t, url, []string{"--expect-store", pinned})
	if code == 0 {
		t.Fatal("serve with the identity from before the reset exited 0")
	}
	for _, want := range []string{"the store's identity is " + reset, "not the expected " + pinned, "start with --expect-store " + reset} {
		if !strings.Contains(out, want) {
			t.Errorf("serve with the old identity printed %q, want it to say %q", out, want)
		}
	}
	if after := strings.TrimSpace(cli(t, nil, "store", "identity", "--store", url)); after != reset {
		t.Errorf("the refused start changed the store's identity from %s to %s", reset, after)
	}
}

func flushAll(t *testing.T, url string) {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestReadyDiskFull: the SQLite file on a small tmpfs. Filling the disk
// makes /readyz 503 with "disk full" while ingest answers 503 too; freeing
// space makes it ready again; starting on the full disk exits saying
// "disk full".
func TestReadyDiskFull(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs (mount -t tmpfs): skipping the disk-full readiness test")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s): skipping the disk-full readiness test", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	storeURL := "sqlite://" + filepath.Join(dir, "hookrelay.db")
	rc := newReceiver(t)
	s := start(t, serverOpts{store: storeURL, api: rc.URL})
	waitReadyz(t, s, http.StatusOK, "ready")
	if got := ingestWS(t, s); got != http.StatusAccepted {
		t.Fatalf("ingest = %d, want 202", got)
	}

	fill := filepath.Join(dir, "fill")
	fillDisk(t, fill)
	body := waitReadyz(t, s, http.StatusServiceUnavailable, "disk full")
	if !strings.Contains(body, "store cannot take a write") {
		t.Errorf("/readyz body %s does not say the store cannot take a write", body)
	}
	if got := ingestWS(t, s); got != http.StatusServiceUnavailable {
		t.Errorf("ingest on a full disk = %d, want 503", got)
	}

	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, s, http.StatusOK, "ready")
	if got := ingestWS(t, s); got != http.StatusAccepted {
		t.Errorf("ingest after space was freed = %d, want 202", got)
	}

	// Starting on a full disk, on the existing file and on a new one.
	if err := s.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	fillDisk(t, fill)
	for _, url := range []string{storeURL, "sqlite://" + filepath.Join(dir, "new.db")} {
		cmd := exec.Command(binary, "serve", "--config", "../../testdata/demo/hookrelay.yaml", "--listen", "127.0.0.1:0", "--store", url)
		cmd.Env = append(os.Environ(), "DEMO_API_URL="+rc.URL, "OCW_WEBHOOK_SECRET="+ocwSecret, "OC_HASH_KEY="+ocHashKey,
			"WS_HOOK_TOKEN="+wsToken, "CRM_TOKEN="+crmToken, "DEMO_RETRY=50ms", "GITHUB_WEBHOOK_SECRET="+githubSecret,
			"STRIPE_WEBHOOK_SECRET="+stripeSecret, "SHOPIFY_API_SECRET="+shopifySecret, "SLACK_SIGNING_SECRET="+slackSecret,
			"STANDARD_WEBHOOK_SECRET="+standardSecret, "STANDARD_WEBHOOK_SECRET_PREVIOUS=")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("serve on a full disk (%s): %v, want exit code 1\n%s", url, err, out.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("serve on a full disk (%s) did not exit\n%s", url, out.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, "disk full: ") {
			t.Errorf("serve on a full disk (%s) ended with %q, want it to start with \"disk full: \"", url, last)
		}
	}
}

// fillDisk writes path until the file system holding it is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// The last pages too, a byte at a time.
	for {
		if _, err := f.Write(chunk[:1]); err != nil {
			break
		}
	}
}

// TestReadyDurabilityWait: with durability: wait, a process on a Redis
// without a replica is not ready, saying why, and its intake answers 503;
// once a replica of that Redis has synced it is ready and accepts events.
func TestReadyDurabilityWait(t *testing.T) {
	t.Parallel()
	master := redistest.Server(t)
	dir := copyDemo(t)
	cfg := filepath.Join(dir, "hookrelay.yaml")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg, "durability: wait\n"+string(b))
	rc := newReceiver(t)
	s := start(t, serverOpts{store: master, api: rc.URL, config: cfg})
	u, err := neturl.Parse(master)
	if err != nil {
		t.Fatal(err)
	}
	body := waitReadyz(t, s, http.StatusServiceUnavailable, "durability: wait")
	if !strings.Contains(body, u.Host+" has 0 replica(s) online, 1 needed") {
		t.Errorf("/readyz without a replica says %s; want it to name %s", body, u.Host)
	}
	if got := ingestWS(t, s); got != http.StatusServiceUnavailable {
		t.Errorf("ingest without a replica = %d, want 503", got)
	}

	// The bound is hookrelay's, from the moment Redis lists the replica
	// online.
	redistest.Replica(t, master)
	waitReadyz(t, s, http.StatusOK, "ready")
	if got := ingestWS(t, s); got != http.StatusAccepted {
		t.Errorf("ingest with a replica online = %d, want 202", got)
	}
}

// The commands for a lost store work on a Redis that lost every key of
// it, whether or not a running process marked the loss, where the other
// commands on a store refuse one that is not there.
func TestResetAckWithoutRestart(t *testing.T) {
	t.Parallel()
	url := redistest.Server(t)
	rc := newReceiver(t)
	first := start(t, serverOpts{store: url, api: rc.URL})
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	flushAll(t, url) // with no process to notice
	if out := cli(t, nil, "store", "reset-ack", "--store", url); !strings.Contains(out, "the store had no identity; wrote sid_") {
		t.Errorf("store reset-ack on the emptied Redis printed %q", out)
	}
	if out := cli(t, nil, "store", "identity", "--store", url); !strings.HasPrefix(out, "sid_") {
		t.Errorf("store identity printed %q", out)
	}

	a := start(t, serverOpts{store: url, api: rc.URL})
	waitReadyz(t, a, http.StatusOK, "ready")
	flushAll(t, url)
	waitReadyz(t, a, http.StatusServiceUnavailable, "store lost its data")
	if out := cli(t, nil, "store", "reset-ack", "--store", url); !strings.Contains(out, "accepted the loss") {
		t.Errorf("store reset-ack printed %q", out)
	}
	waitReadyz(t, a, http.StatusOK, "ready")
}
