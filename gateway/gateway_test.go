package gateway_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/gateway"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

func loadConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("testdata/hookrelay.yaml", func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// configFrom loads a config written as yaml.
func configFrom(t *testing.T, yaml string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hookrelay.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// tempStore is a store in a SQLite file of the test's own.
func tempStore(t testing.TB) *sqlitestore.Store {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

type fixture struct {
	h  http.Handler
	st store.Store
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	st := tempStore(t)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	g := gateway.New(st, loadConfig(t), gateway.Options{Now: func() time.Time { return now }})
	return fixture{g.Handler(), st}
}

func (f fixture) post(t *testing.T, path string, body []byte, sig string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Trace", "abc")
	if sig != "" {
		req.Header.Set("X-Signature", sig)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w, out
}

func TestCatchStoresEventAndDeliveries(t *testing.T) {
	f := newFixture(t)
	body := []byte(`{"type":"order.paid","order":{"id":"o-1","total":250}}`)
	w, out := f.post(t, "/hooks/catch/shop?source=test", body, sign("new-secret", body))
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
	id := out["id"].(string)
	ev, err := f.st.Event(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Hook != "shop" || ev.Status != store.EventAccepted || ev.IdempotencyKey != "o-1" || !bytes.Equal(ev.Body, body) {
		t.Errorf("event = %+v", ev)
	}
	if ev.Headers["x-trace"] != "abc" || ev.Query["source"] != "test" {
		t.Errorf("headers %v query %v", ev.Headers, ev.Query)
	}
	if strings.Join(ev.MatchedRules, ",") != "paid,big" {
		t.Errorf("matched rules = %v", ev.MatchedRules)
	}
	ds, err := f.st.Deliveries(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	// notify is named by both rules but is one delivery.
	var got []string
	for _, d := range ds {
		got = append(got, d.Rule+"/"+d.Action+"/"+string(d.Status))
	}
	if strings.Join(got, " ") != "paid/notify/pending paid/audit/pending" && strings.Join(got, " ") != "paid/audit/pending paid/notify/pending" {
		t.Errorf("deliveries = %v", got)
	}

	// The old secret still verifies (rotation); same key → duplicate.
	w, out = f.post(t, "/hooks/catch/shop", body, sign("old-secret", body))
	if w.Code != http.StatusOK || out["id"] != id || out["duplicate"] != true {
		t.Errorf("duplicate: %d %v", w.Code, out)
	}
}

func TestCatchRefusals(t *testing.T) {
	big := []byte(`{"type":"x","pad":"` + strings.Repeat("a", 2000) + `"}`)
	garbage := []byte(`{"type":`)
	cases := []struct {
		name string
		body []byte
		sig  string
		want int
	}{
		{"body cap comes before verification", big, "sha256=00", http.StatusRequestEntityTooLarge},
		{"verification comes before parsing", garbage, "sha256=00", http.StatusUnauthorized},
		{"missing signature", []byte(`{}`), "", http.StatusUnauthorized},
		{"removed secret", []byte(`{}`), sign("older-secret", []byte(`{}`)), http.StatusUnauthorized},
		{"not JSON", garbage, sign("new-secret", garbage), http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			w, out := f.post(t, "/hooks/catch/shop", c.body, c.sig)
			if w.Code != c.want {
				t.Fatalf("status = %d %s, want %d", w.Code, w.Body, c.want)
			}
			if out["error"] == nil || out["id"] != nil {
				t.Errorf("answer = %v", out)
			}
			if strings.Contains(w.Body.String(), sign("new-secret", c.body)[7:15]) {
				t.Errorf("answer reveals the expected MAC: %s", w.Body)
			}
			// Nothing stored: the same body, correctly signed, is not a duplicate.
			ok := []byte(`{"type":"probe","order":{"id":"probe"}}`)
			if w, _ := f.post(t, "/hooks/catch/shop", ok, sign("new-secret", ok)); w.Code != http.StatusAccepted {
				t.Errorf("probe after refusal: %d", w.Code)
			}
		})
	}
}

// An event that matches no rule is stored as ignored; a key expression that
// fails on a payload falls back to the body hash rather than losing the event.
func TestCatchIgnoredAndKeyFallback(t *testing.T) {
	f := newFixture(t)
	body := []byte(`{"type":"ping"}`)
	w, out := f.post(t, "/hooks/catch/shop", body, sign("new-secret", body))
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
	ev, err := f.st.Event(context.Background(), out["id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if ev.Status != store.EventIgnored || ev.IdempotencyKey != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("event status %q key %q", ev.Status, ev.IdempotencyKey)
	}
}

// When the store cannot take the event the sender gets 503, never a 2xx.
func TestCatchStoreDown(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	down := redisstore.New(client, "down")
	t.Cleanup(func() { down.Close() })
	g := gateway.New(down, loadConfig(t), gateway.Options{})
	body := []byte(`{"type":"order.paid","order":{"id":"o-9"}}`)
	req := httptest.NewRequest(http.MethodPost, "/hooks/catch/shop", bytes.NewReader(body))
	req.Header.Set("X-Signature", sign("new-secret", body))
	w := httptest.NewRecorder()
	g.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("status = %d %s, want 503", w.Code, w.Body)
	}
	req = httptest.NewRequest(http.MethodGet, "/readyz", nil)
	w = httptest.NewRecorder()
	g.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("readyz = %d, want 503", w.Code)
	}
}

func TestCatchMethodAndUnknownHook(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/hooks/catch/shop", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/hooks/catch/shop", http.StatusMethodNotAllowed},
		{http.MethodPost, "/hooks/catch/other", http.StatusNotFound},
		{http.MethodPost, "/hooks/catch/shop/some-token-value", http.StatusNotFound},
	} {
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, httptest.NewRequest(c.method, c.path, strings.NewReader("{}")))
		if w.Code != c.want {
			t.Errorf("%s %s = %d, want %d", c.method, c.path, w.Code, c.want)
		}
		if c.want == http.StatusMethodNotAllowed && w.Header().Get("Allow") != http.MethodPost {
			t.Errorf("405 without Allow: POST")
		}
	}
}

// TestReadyzReason: /readyz answers 503 with the readiness's reason in the
// body, and 200 once it is ready again.
func TestReadyzReason(t *testing.T) {
	st, err := sqlitestore.Open(t.Context(), t.TempDir()+"/gw.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rd := store.NewReadiness(st, store.ReadinessOptions{})
	if err := rd.Init(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	h := gateway.New(st, loadConfig(t), gateway.Options{Ready: rd.Ready}).Handler()
	readyz := func() (int, map[string]any) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		return w.Code, body
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Fatalf("/readyz = %d %v, want 200", code, body)
	}
	id, err := st.Identity(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Another identity in its place: the store is not the one this process knew.
	if err := st.PutIdentity(t.Context(), id.ID, store.Identity{ID: "sid_other", CreatedAt: time.Now(), State: store.IdentityNew}); err != nil {
		t.Fatal(err)
	}
	code, body := readyz()
	if reason, _ := body["error"].(string); code != http.StatusServiceUnavailable || !strings.Contains(reason, "store lost its data") {
		t.Errorf("/readyz = %d %v, want 503 with the loss as reason", code, body)
	}
	if _, _, err := store.AcceptReset(t.Context(), st, time.Now()); err != nil {
		t.Fatal(err)
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Errorf("/readyz after the reset was accepted = %d %v, want 200", code, body)
	}
}

// A catch URL with a trailing slash is not redirected (a sender takes a 3xx
// for a failure and is not told why): it is answered and logged as any
// other URL that names no hook.
func TestCatchTrailingSlashIsNotFound(t *testing.T) {
	const token = "tok-token-0123456789"
	cfg := configFrom(t, `
hooks:
  ws:
    verify: {scheme: none}
    auth:
      header: {name: X-Key, value: header-value-123}
  tok:
    verify: {scheme: none}
    token: `+token+`
`)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := gateway.New(tempStore(t), cfg, gateway.Options{Logger: log}).Handler()
	for path, logged := range map[string]string{
		"/hooks/catch/ws/":                "path=/hooks/catch/ws/ ",
		"/hooks/catch/tok/" + token + "/": "path=/hooks/catch/tok/tok-…/ ",
	} {
		buf.Reset()
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{"a":1}`))
		req.Header.Set("X-Key", "header-value-123")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != http.StatusNotFound || out["error"] != "no such hook" {
			t.Errorf("POST %s = %d %q %s, want 404 {\"error\": \"no such hook\"}", path, w.Code, w.Body, w.Header().Get("Location"))
		}
		if line := buf.String(); !strings.Contains(line, `msg="request refused" status=404 `+logged) {
			t.Errorf("POST %s logged %q, want a refusal with %q", path, line, logged)
		}
	}
}

// A sender rotating its secret (hookrelay's own sign: with two secrets
// among them) sends one MAC per secret in the header, separated by commas:
// the hook takes the request when one of them is right.
func TestCatchAcceptsSignaturesOfARotatingSender(t *testing.T) {
	f := newFixture(t)
	body := []byte(`{"type":"order.paid","order":{"id":"o-rotating"}}`)
	w, out := f.post(t, "/hooks/catch/shop", body, sign("sender-next-secret", body)+", "+sign("new-secret", body))
	if w.Code != http.StatusAccepted || out["id"] == nil {
		t.Fatalf("status = %d %s, want 202", w.Code, w.Body)
	}
	other := []byte(`{"type":"order.paid","order":{"id":"o-neither"}}`)
	if w, _ := f.post(t, "/hooks/catch/shop", other, sign("sender-next-secret", other)+", "+sign("sender-last-secret", other)); w.Code != http.StatusUnauthorized {
		t.Errorf("neither secret held: status = %d %s, want 401", w.Code, w.Body)
	}
}
