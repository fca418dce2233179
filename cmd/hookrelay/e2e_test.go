package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/store"
)

// jsonBody decodes a request body for comparison.
func jsonBody(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q is not JSON: %v", b, err)
	}
	return m
}

// checkRequest asserts the common shape of every action request.
func checkRequest(t *testing.T, r received, method, bearer string) {
	t.Helper()
	if r.Method != method {
		t.Errorf("%s: method = %s, want %s", r.Path, r.Method, method)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+bearer {
		t.Errorf("%s: Authorization = %q, want the bearer token", r.Path, got)
	}
	if !strings.HasPrefix(r.Header.Get("Idempotency-Key"), "dlv_") {
		t.Errorf("%s: Idempotency-Key = %q, want the delivery id", r.Path, r.Header.Get("Idempotency-Key"))
	}
	if !strings.HasPrefix(r.Header.Get("User-Agent"), "hookrelay/") {
		t.Errorf("%s: User-Agent = %q", r.Path, r.Header.Get("User-Agent"))
	}
}

func TestDemo(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) { testDemo(t, b.url(t)) })
}

func testDemo(t *testing.T, storeURL string) {
	rc := newReceiver(t)
	srv := start(t, serverOpts{store: storeURL, api: rc.URL})
	st := openTestStore(t, storeURL)
	ctx := context.Background()

	accept := func(t *testing.T, path string, body []byte, h http.Header) string {
		t.Helper()
		status, out := srv.post(t, http.MethodPost, path, body, h)
		if status != http.StatusAccepted {
			t.Fatalf("POST %s = %d %v, want 202", path, status, out)
		}
		id, _ := out["id"].(string)
		if !strings.HasPrefix(id, "evt_") {
			t.Fatalf("POST %s answered id %q", path, id)
		}
		return id
	}
	wsPath := "/hooks/catch/winesitting/" + wsToken

	t.Run("oncloudwine contact updated", func(t *testing.T) {
		body := payload(t, "oncloudwine-contact-updated.json")
		accept(t, "/hooks/catch/oncloudwine", body, ocwSign(body))
		r := rc.waitFor(t, "/v1/contacts/ctc_8a41d07b", 1)[0]
		checkRequest(t, r, http.MethodPatch, crmToken)
		want := map[string]any{"email": "maria.lopez@example.com", "firstName": "Maria", "lastName": "Lopez", "source": "oncloudwine"}
		if d := cmp.Diff(want, jsonBody(t, r.Body)); d != "" {
			t.Errorf("body (-want +got):\n%s", d)
		}
	})
	t.Run("oncloudwine contact created", func(t *testing.T) {
		body := payload(t, "oncloudwine-contact-created.json")
		accept(t, "/hooks/catch/oncloudwine", body, ocwSign(body))
		r := rc.waitFor(t, "/v1/contacts", 1)[0]
		checkRequest(t, r, http.MethodPost, crmToken)
		want := map[string]any{"id": "ctc_c39e7712", "email": "sam.okafor@example.com"}
		if d := cmp.Diff(want, jsonBody(t, r.Body)); d != "" {
			t.Errorf("body (-want +got):\n%s", d)
		}
	})
	t.Run("oncloudwine contact deleted", func(t *testing.T) {
		body := payload(t, "oncloudwine-contact-deleted.json")
		accept(t, "/hooks/catch/oncloudwine", body, ocwSign(body))
		r := rc.waitFor(t, "/v1/contacts/ctc_77b0e9f4", 1)[0]
		checkRequest(t, r, http.MethodDelete, crmToken)
		if len(r.Body) != 0 {
			t.Errorf("DELETE carried a body: %q", r.Body)
		}
	})
	t.Run("ordercloud buyer user created", func(t *testing.T) {
		body := payload(t, "ordercloud-buyer-user-created.json")
		var p struct{ UserToken string }
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		accept(t, "/hooks/catch/ordercloud", body, ocSign(body))
		r := rc.waitFor(t, "/v1/buyers/buyer-northwest/users/user-4471", 1)[0]
		checkRequest(t, r, http.MethodPatch, p.UserToken)
		if d := cmp.Diff(map[string]any{"LastName": "TestLastName"}, jsonBody(t, r.Body)); d != "" {
			t.Errorf("body (-want +got):\n%s", d)
		}
	})
	t.Run("winesitting order delivered, then its duplicate", func(t *testing.T) {
		body := payload(t, "winesitting-order-delivered.json")
		id := accept(t, wsPath, body, nil)
		r := rc.waitFor(t, "/v1/orders/WS-100482/delivered", 1)[0]
		checkRequest(t, r, http.MethodPost, crmToken)
		want := map[string]any{"orderId": "WS-100482", "deliveredAt": "2026-11-23T10:05:19Z"}
		if d := cmp.Diff(want, jsonBody(t, r.Body)); d != "" {
			t.Errorf("body (-want +got):\n%s", d)
		}

		status, out := srv.post(t, http.MethodPost, wsPath, body, nil)
		if status != http.StatusOK || out["id"] != id || out["duplicate"] != true {
			t.Fatalf("duplicate answered %d %v, want 200 with id %s and duplicate true", status, out, id)
		}
		// A later event acts as a barrier: once it is delivered, a second
		// delivery of the duplicate would have been made too.
		barrier := payload(t, "oncloudwine-contact-deleted.json")
		barrier = bytes.Replace(barrier, []byte("ctc_77b0e9f4"), []byte("ctc_barrier1"), 1)
		accept(t, "/hooks/catch/oncloudwine", barrier, ocwSign(barrier))
		rc.waitFor(t, "/v1/contacts/ctc_barrier1", 1)
		if n := len(rc.on("/v1/orders/WS-100482/delivered")); n != 1 {
			t.Errorf("duplicate produced %d requests, want 1", n)
		}
	})
	t.Run("events that match no rule are stored as ignored", func(t *testing.T) {
		before := rc.total()
		for _, c := range []struct{ path, file string }{
			{"/hooks/catch/oncloudwine", "oncloudwine-test-ping.json"},
			{"/hooks/catch/oncloudwine", "oncloudwine-contact-cancelled.json"},
			{wsPath, "winesitting-putaway-created.json"},
		} {
			body := payload(t, c.file)
			var h http.Header
			if strings.Contains(c.path, "oncloudwine") {
				h = ocwSign(body)
			}
			id := accept(t, c.path, body, h)
			ev, err := st.Event(ctx, id)
			if err != nil {
				t.Fatalf("%s: %v", c.file, err)
			}
			if ev.Status != store.EventIgnored || !bytes.Equal(ev.Body, body) {
				t.Errorf("%s: stored status %q, body kept %t; want ignored with the raw body", c.file, ev.Status, bytes.Equal(ev.Body, body))
			}
			if ds, _ := st.Deliveries(ctx, id); len(ds) != 0 {
				t.Errorf("%s: %d deliveries, want none", c.file, len(ds))
			}
		}
		barrier := payload(t, "oncloudwine-contact-deleted.json")
		barrier = bytes.Replace(barrier, []byte("ctc_77b0e9f4"), []byte("ctc_barrier2"), 1)
		accept(t, "/hooks/catch/oncloudwine", barrier, ocwSign(barrier))
		rc.waitFor(t, "/v1/contacts/ctc_barrier2", 1)
		if got := rc.total(); got != before+1 {
			t.Errorf("ignored events caused %d requests", got-before-1)
		}
	})
	t.Run("bad signature is 401, nothing stored, nothing sent", func(t *testing.T) {
		before := rc.total()
		body := payload(t, "oncloudwine-contact-created.json")
		body = bytes.Replace(body, []byte("ctc_c39e7712"), []byte("ctc_forged01"), 1)
		bad := ocwSign(payload(t, "oncloudwine-contact-created.json")) // MAC of other bytes
		for _, h := range []http.Header{bad, nil, {"X-Oncloudwine-Signature": {"zz-not-hex"}}} {
			status, out := srv.post(t, http.MethodPost, "/hooks/catch/oncloudwine", body, h)
			if status != http.StatusUnauthorized {
				t.Fatalf("status = %d %v, want 401", status, out)
			}
			if _, hasID := out["id"]; hasID {
				t.Errorf("401 carried an event id: %v", out)
			}
		}
		// Same bytes signed correctly must be new, not a duplicate of a stored forgery.
		status, out := srv.post(t, http.MethodPost, "/hooks/catch/oncloudwine", body, ocwSign(body))
		if status != http.StatusAccepted {
			t.Fatalf("correctly signed copy answered %d %v, want 202 (something was stored for the forgery)", status, out)
		}
		rc.waitFor(t, "/v1/contacts", 2)
		if got := rc.total(); got != before+1 {
			t.Errorf("forged requests caused %d requests", got-before-1)
		}
	})
	t.Run("ingress refusals", func(t *testing.T) {
		big := append([]byte(`{"event":"CONTACT_CREATED","pad":"`), bytes.Repeat([]byte("x"), 1<<20)...)
		big = append(big, `"}`...)
		notJSON := []byte(`{"event": "CONTACT_CREATED",`)
		cases := []struct {
			name, method, path string
			body               []byte
			header             http.Header
			want               int
		}{
			{"too large", http.MethodPost, "/hooks/catch/oncloudwine", big, ocwSign(big), http.StatusRequestEntityTooLarge},
			{"not JSON", http.MethodPost, "/hooks/catch/oncloudwine", notJSON, ocwSign(notJSON), http.StatusBadRequest},
			{"unknown hook", http.MethodPost, "/hooks/catch/nope", []byte(`{}`), nil, http.StatusNotFound},
			{"wrong token", http.MethodPost, "/hooks/catch/winesitting/" + strings.Repeat("a", len(wsToken)), payload(t, "winesitting-order-delivered.json"), nil, http.StatusNotFound},
			{"missing token", http.MethodPost, "/hooks/catch/winesitting", payload(t, "winesitting-order-delivered.json"), nil, http.StatusNotFound},
			{"token on a hook without one", http.MethodPost, "/hooks/catch/oncloudwine/" + wsToken, []byte(`{}`), nil, http.StatusNotFound},
			{"GET", http.MethodGet, "/hooks/catch/oncloudwine", nil, nil, http.StatusMethodNotAllowed},
			{"PUT", http.MethodPut, wsPath, []byte(`{}`), nil, http.StatusMethodNotAllowed},
		}
		for _, c := range cases {
			status, out := srv.post(t, c.method, c.path, c.body, c.header)
			if status != c.want {
				t.Errorf("%s: status = %d %v, want %d", c.name, status, out, c.want)
			}
			if _, ok := out["error"].(string); !ok {
				t.Errorf("%s: answer %v has no error message", c.name, out)
			}
		}
	})
	t.Run("healthz", func(t *testing.T) {
		resp, err := http.Get(srv.url("/healthz"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("healthz = %d", resp.StatusCode)
		}
	})
	t.Run("SIGTERM exits 0", func(t *testing.T) {
		if err := srv.stop(t); err != nil {
			t.Errorf("exit: %v, want status 0", err)
		}
		if !strings.Contains(srv.output(), "stopped") {
			t.Errorf("no shutdown log line")
		}
	})
}

func TestRetries(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			storeURL := b.url(t)
			rc := newReceiver(t)
			rc.respond = func(path string, n int) int {
				switch {
				case path == "/v1/contacts/ctc_flaky":
					if n <= 2 {
						return http.StatusInternalServerError
					}
				case path == "/v1/contacts/ctc_broken":
					return http.StatusBadGateway
				}
				return http.StatusOK
			}
			srv := start(t, serverOpts{store: storeURL, api: rc.URL})
			st := openTestStore(t, storeURL)

			send := func(id string) string {
				body := bytes.Replace(payload(t, "oncloudwine-contact-deleted.json"), []byte("ctc_77b0e9f4"), []byte(id), 1)
				status, out := srv.post(t, http.MethodPost, "/hooks/catch/oncloudwine", body, ocwSign(body))
				if status != http.StatusAccepted {
					t.Fatalf("status %d %v", status, out)
				}
				return out["id"].(string)
			}
			flaky, broken := send("ctc_flaky"), send("ctc_broken")

			d := waitDelivery(t, st, flaky, store.DeliverySucceeded)
			reqs := rc.on("/v1/contacts/ctc_flaky")
			if len(reqs) != 3 || d.Attempts != 3 {
				t.Errorf("flaky receiver saw %d requests, delivery recorded %d attempts; want 3", len(reqs), d.Attempts)
			}
			for _, r := range reqs {
				if got := r.Header.Get("Idempotency-Key"); got != d.ID {
					t.Errorf("Idempotency-Key = %q, want %q on every attempt", got, d.ID)
				}
			}
			attempts, err := st.Attempts(context.Background(), d.ID)
			if err != nil || len(attempts) != 3 {
				t.Fatalf("attempt log = %d entries, %v", len(attempts), err)
			}
			if attempts[0].StatusCode != 500 || attempts[2].StatusCode != 200 {
				t.Errorf("attempt statuses = %d, %d, %d", attempts[0].StatusCode, attempts[1].StatusCode, attempts[2].StatusCode)
			}
			if got := attempts[0].RequestHeaders["Authorization"]; strings.Contains(got, crmToken) || got == "" {
				t.Errorf("attempt log Authorization = %q, want it redacted", got)
			}

			d = waitDelivery(t, st, broken, store.DeliveryDead)
			if n := len(rc.on("/v1/contacts/ctc_broken")); n != 7 || d.Attempts != 7 {
				t.Errorf("always-failing receiver saw %d requests, delivery recorded %d attempts; want 7", n, d.Attempts)
			}
			if !strings.Contains(d.LastError, "502") {
				t.Errorf("last error = %q, want it to name the status", d.LastError)
			}
			// Dead is final: no eighth attempt, even after more time passes.
			barrier := send("ctc_barrier")
			waitDelivery(t, st, barrier, store.DeliverySucceeded)
			if n := len(rc.on("/v1/contacts/ctc_broken")); n != 7 {
				t.Errorf("dead delivery was attempted again: %d requests", n)
			}
		})
	}
}

// A worker killed while it holds a delivery loses its lease; another
// process takes the delivery over and performs it with the same key.
func TestKilledWorker(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			storeURL := b.url(t)
			rc := newReceiver(t)
			const path = "/v1/contacts/ctc_hang"
			rc.hold[path] = make(chan struct{})
			first := start(t, serverOpts{store: storeURL, api: rc.URL, lease: 2 * time.Second})

			body := bytes.Replace(payload(t, "oncloudwine-contact-deleted.json"), []byte("ctc_77b0e9f4"), []byte("ctc_hang"), 1)
			status, out := first.post(t, http.MethodPost, "/hooks/catch/oncloudwine", body, ocwSign(body))
			if status != http.StatusAccepted {
				t.Fatalf("status %d %v", status, out)
			}
			rc.waitFor(t, path, 1) // the first process is mid-delivery
			first.kill()

			start(t, serverOpts{store: storeURL, api: rc.URL, lease: 2 * time.Second})
			reqs := rc.waitFor(t, path, 2)
			if reqs[0].Header.Get("Idempotency-Key") != reqs[1].Header.Get("Idempotency-Key") {
				t.Errorf("keys differ: %q vs %q", reqs[0].Header.Get("Idempotency-Key"), reqs[1].Header.Get("Idempotency-Key"))
			}
			st := openTestStore(t, storeURL)
			d := waitDelivery(t, st, out["id"].(string), store.DeliverySucceeded)
			if d.Attempts != 1 {
				t.Errorf("attempts = %d, want 1 (the killed attempt was never recorded)", d.Attempts)
			}
		})
	}
}

// A process killed with SIGKILL while a delivery waits for its next attempt
// performs it after restart, with the same Idempotency-Key; the event
// acknowledged before the crash is still there.
func TestRestartWhileRetrying(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			storeURL := b.url(t)
			rc := newReceiver(t)
			const path = "/v1/contacts/ctc_restart"
			rc.respond = func(p string, n int) int {
				if p == path && n == 1 {
					return http.StatusServiceUnavailable
				}
				return http.StatusOK
			}
			opts := serverOpts{store: storeURL, api: rc.URL, retry: "2s,2s"}
			first := start(t, opts)
			body := bytes.Replace(payload(t, "oncloudwine-contact-deleted.json"), []byte("ctc_77b0e9f4"), []byte("ctc_restart"), 1)
			status, out := first.post(t, http.MethodPost, "/hooks/catch/oncloudwine", body, ocwSign(body))
			if status != http.StatusAccepted {
				t.Fatalf("status %d %v", status, out)
			}
			id := out["id"].(string)
			st := openTestStore(t, storeURL)
			waitDelivery(t, st, id, store.DeliveryRetrying)
			first.kill()

			start(t, opts)
			reqs := rc.waitFor(t, path, 2)
			if reqs[0].Header.Get("Idempotency-Key") != reqs[1].Header.Get("Idempotency-Key") {
				t.Errorf("keys differ across the restart: %q vs %q", reqs[0].Header.Get("Idempotency-Key"), reqs[1].Header.Get("Idempotency-Key"))
			}
			d := waitDelivery(t, st, id, store.DeliverySucceeded)
			if d.Attempts != 2 {
				t.Errorf("attempts = %d, want 2", d.Attempts)
			}
			ev, err := st.Event(context.Background(), id)
			if err != nil || !bytes.Equal(ev.Body, body) {
				t.Errorf("event after restart: %v, body kept %t", err, bytes.Equal(ev.Body, body))
			}
		})
	}
}

// With no --store, serve uses the embedded file in the working folder,
// creating it, and says where.
func TestDefaultEmbeddedStore(t *testing.T) {
	dir := t.TempDir()
	cfg, err := filepath.Abs("../../testdata/demo/hookrelay.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--config", cfg, "--listen", "127.0.0.1:0")
	cmd.Dir = dir
	cmd.Env = os.Environ()
	var logs lockedBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "msg=listening") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, logs.String())
	}
	want := filepath.Join(dir, "hookrelay.db")
	if _, err := os.Stat(want); err != nil {
		t.Errorf("embedded store not created: %v", err)
	}
	if !strings.Contains(logs.String(), "sqlite://"+want+" (the embedded default") {
		t.Errorf("no log line naming %s:\n%s", want, logs.String())
	}
}

// lockedBuffer is a bytes.Buffer that a process may write while a test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
