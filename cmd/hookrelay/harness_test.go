package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

// binary is the hookrelay program built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hookrelay-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "hookrelay")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building hookrelay:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Demo secrets the end-to-end tests run the demo config with.
const (
	ocwSecret = "ocw-signing-secret-4f7a"
	ocHashKey = "oc-hash-key-91b2"
	wsToken   = "ws-url-token-0d8e3c5a7b19"
	crmToken  = "crm-api-token-6c21"
)

// received is one request the downstream receiver got.
type received struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time // when it arrived
}

// receiver is a local downstream API that records every request and answers
// according to a per-path script.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []received
	changed chan struct{}
	// respond decides the answer to the n-th (1-based) request on a path.
	respond func(path string, n int) int
	// hold, when set for a path, blocks its first request until released.
	hold map[string]chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{changed: make(chan struct{}, 1), hold: map[string]chan struct{}{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{r.Method, r.URL.Path, r.Header.Clone(), body, time.Now()})
		n := 0
		for _, q := range rc.reqs {
			if q.Path == r.URL.Path {
				n++
			}
		}
		hold := rc.hold[r.URL.Path]
		respond := rc.respond
		rc.mu.Unlock()
		select {
		case rc.changed <- struct{}{}:
		default:
		}
		if hold != nil && n == 1 {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		status := http.StatusOK
		if respond != nil {
			status = respond(r.URL.Path, n)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"ok":%t}`, status < 300)
	}))
	t.Cleanup(func() {
		rc.mu.Lock()
		for _, h := range rc.hold {
			select {
			case <-h:
			default:
				close(h)
			}
		}
		rc.mu.Unlock()
		rc.Close()
	})
	return rc
}

// on returns the requests received on path.
func (rc *receiver) on(path string) []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []received
	for _, r := range rc.reqs {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (rc *receiver) total() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.reqs)
}

// waitFor waits until path has received n requests; it fails the test if
// that has not happened within a generous bound.
func (rc *receiver) waitFor(t *testing.T, path string, n int) []received {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if got := rc.on(path); len(got) >= n {
			return got
		}
		select {
		case <-rc.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s received %d requests, want %d", path, len(rc.on(path)), n)
		}
	}
}

// server is one running hookrelay process.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
	err  error
}

type serverOpts struct {
	store   string
	api     string
	retry   string
	lease   time.Duration
	grace   time.Duration
	workers int // 0: 4; below 0: no relay (--workers 0)
	config  string
	extra   []string // extra environment
	args    []string // extra serve flags
	// noEgressAllow leaves DEMO_ALLOW_NETWORKS empty, so that actions may
	// reach no loopback or private address; by default the demo may reach
	// loopback, where the tests' receivers listen.
	noEgressAllow bool
}

// listenRE finds the listening address in a text or a JSON log.
var listenRE = regexp.MustCompile(`msg=listening addr=(\S+)|"msg":"listening","addr":"([^"]+)"`)

// start runs `hookrelay serve` with the demo config and waits until it listens.
func start(t *testing.T, o serverOpts) *server {
	t.Helper()
	if o.config == "" {
		o.config = "../../testdata/demo/hookrelay.yaml"
	}
	if o.retry == "" {
		o.retry = "50ms,50ms,50ms,50ms,50ms,50ms"
	}
	if o.lease == 0 {
		o.lease = 30 * time.Second
	}
	if o.grace == 0 {
		o.grace = 5 * time.Second
	}
	switch {
	case o.workers == 0:
		o.workers = 4
	case o.workers < 0:
		o.workers = 0
	}
	cmd := exec.Command(binary, "serve", "--config", o.config, "--listen", "127.0.0.1:0",
		"--store", o.store, "--lease", o.lease.String(), "--workers", fmt.Sprint(o.workers), "--grace", o.grace.String())
	cmd.Args = append(cmd.Args, o.args...)
	cmd.Env = append(os.Environ(),
		"DEMO_API_URL="+o.api,
		"OCW_WEBHOOK_SECRET="+ocwSecret,
		"OC_HASH_KEY="+ocHashKey,
		"WS_HOOK_TOKEN="+wsToken,
		"CRM_TOKEN="+crmToken,
		"DEMO_RETRY="+o.retry,
		"GITHUB_WEBHOOK_SECRET="+githubSecret,
		"STRIPE_WEBHOOK_SECRET="+stripeSecret,
		"SHOPIFY_API_SECRET="+shopifySecret,
		"SLACK_SIGNING_SECRET="+slackSecret,
		"STANDARD_WEBHOOK_SECRET="+standardSecret,
		"STANDARD_WEBHOOK_SECRET_PREVIOUS=",
	)
	if o.noEgressAllow {
		cmd.Env = append(cmd.Env, "DEMO_ALLOW_NETWORKS=")
	} else {
		cmd.Env = append(cmd.Env, "DEMO_ALLOW_NETWORKS=127.0.0.0/8,::1/128")
	}
	cmd.Env = append(cmd.Env, o.extra...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs.WriteString(line + "\n")
			s.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				addr <- m[1] + m[2]
			}
		}
		s.err = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("hookrelay logs:\n%s", s.output())
		}
	})
	select {
	case s.addr = <-addr:
	case <-s.done:
		t.Fatalf("hookrelay exited before listening: %v\n%s", s.err, s.output())
	case <-time.After(30 * time.Second):
		t.Fatalf("hookrelay did not start listening\n%s", s.output())
	}
	return s
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

func (s *server) url(path string) string { return "http://" + s.addr + path }

// kill stops the process at once (SIGKILL), as a crash would.
func (s *server) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// stop sends SIGTERM and returns the exit error once the process is gone.
func (s *server) stop(t *testing.T) error {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return s.err
	case <-time.After(30 * time.Second):
		t.Fatalf("hookrelay did not exit after SIGTERM\n%s", s.output())
		return nil
	}
}

// request sends a request to the server and returns its status and body.
func (s *server) request(t *testing.T, method, path string, body io.Reader, header http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.url(path), body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// post sends body to path with headers and returns status and decoded JSON.
func (s *server) post(t *testing.T, method, path string, body []byte, header http.Header) (int, map[string]any) {
	t.Helper()
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range header {
		h[k] = v
	}
	status, raw := s.request(t, method, path, bytes.NewReader(body), h)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return status, out
}

func payload(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../testdata/demo/payloads", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Signatures computed here independently of the verify package.
func ocwSign(body []byte) http.Header {
	m := hmac.New(sha256.New, []byte(ocwSecret))
	m.Write(body)
	return http.Header{"X-Oncloudwine-Signature": {hex.EncodeToString(m.Sum(nil))}}
}

func ocSign(body []byte) http.Header {
	m := hmac.New(sha256.New, []byte(ocHashKey))
	m.Write(body)
	return http.Header{"X-Oc-Hash": {base64.StdEncoding.EncodeToString(m.Sum(nil))}}
}

// storeBackend names a store for one test: a fresh Redis key prefix or a fresh SQLite file.
type storeBackend struct {
	name string
	url  func(t *testing.T) string
}

func backends() []storeBackend {
	return []storeBackend{
		{"redis", func(t *testing.T) string {
			return redistest.WithPrefix(redistest.URL(t), redistest.Prefix(t))
		}},
		{"sqlite", func(t *testing.T) string {
			return "sqlite://" + filepath.Join(t.TempDir(), "hookrelay.db")
		}},
	}
}

// onEachStore runs test once per store backend, the runs in parallel.
func onEachStore(t *testing.T, test func(t *testing.T, b storeBackend)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b)
		})
	}
}

// openTestStore opens the same store the server uses, to inspect it.
func openTestStore(t *testing.T, url string) store.Store {
	t.Helper()
	st, _, err := openStore(context.Background(), url, storeOpening{create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// waitDeliveries polls the event's deliveries until done holds for them;
// want says what done waits for, in the failure message.
func waitDeliveries(t *testing.T, st store.Store, eventID, want string, done func([]store.Delivery) bool) []store.Delivery {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds, err := st.Deliveries(context.Background(), eventID)
		if err != nil {
			t.Fatal(err)
		}
		if done(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries of %s = %+v, want %s", eventID, ds, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDelivery waits until the event's only delivery reaches status.
func waitDelivery(t *testing.T, st store.Store, eventID string, status store.DeliveryStatus) store.Delivery {
	t.Helper()
	return waitDeliveries(t, st, eventID, "one "+string(status), func(ds []store.Delivery) bool {
		return len(ds) == 1 && ds[0].Status == status
	})[0]
}

// waitSettled waits until the event has n deliveries, each succeeded or dead.
func waitSettled(t *testing.T, st store.Store, eventID string, n int) []store.Delivery {
	t.Helper()
	return waitDeliveries(t, st, eventID, fmt.Sprintf("%d settled", n), func(ds []store.Delivery) bool {
		settled := len(ds) == n
		for _, d := range ds {
			settled = settled && (d.Status == store.DeliverySucceeded || d.Status == store.DeliveryDead)
		}
		return settled
	})
}

// waitLog waits until the server has logged want n times.
func (s *server) waitLog(t *testing.T, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(s.output(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log after 30s", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
