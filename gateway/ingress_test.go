package gateway_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/gateway"
	"github.com/hookrelay/hookrelay/metrics"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

// ingressNow is the gateway's clock in these tests; timestamped signatures
// are made for it.
var ingressNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// The secrets of testdata/ingress.yaml: no answer may ever show one.
var ingressSecrets = []string{
	"basic-signing-secret", "basic-pa55word-0123", "apikey-signing-secret", "key-0123456789abcdef",
	"bearer-url-token-0123456789", "tok-0123456789abcdef", "office-signing-secret",
	"forms-signing-secret", "slack-signing-secret", "status-signing-secret",
}

func loadIngressConfig(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Load("testdata/ingress.yaml", func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type ingress struct {
	cfg *config.Config
	h   http.Handler
	st  store.Store
	rec *recordingStore
}

// recordingStore is the real store, and a list of what the gateway stored
// through it.
type recordingStore struct {
	gateway.Store
	mu     sync.Mutex
	stored []string
}

func (r *recordingStore) Accept(ctx context.Context, a store.Accept) (store.Accepted, error) {
	res, err := r.Store.Accept(ctx, a)
	if err == nil && !res.Duplicate {
		r.mu.Lock()
		r.stored = append(r.stored, res.EventID)
		r.mu.Unlock()
	}
	return res, err
}

func (r *recordingStore) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.stored)
}

func newIngress(t testing.TB) *ingress {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), t.TempDir()+"/ingress.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := loadIngressConfig(t)
	rec := &recordingStore{Store: st}
	g := gateway.New(rec, cfg, gateway.Options{Now: func() time.Time { return ingressNow }, Logger: slog.New(slog.DiscardHandler)})
	return &ingress{cfg: cfg, h: g.Handler(), st: st, rec: rec}
}

// req is one request to a hook; the zero fields leave the request as the
// hook needs it, so that each test spoils exactly one thing.
type req struct {
	path        string // default /hooks/catch/<hook>
	body        []byte
	contentType string // default application/json
	peer        string // RemoteAddr; default 203.0.113.10:40000 (allowed by office)
	header      http.Header
	unsigned    bool // send no signature
	noAuth      bool // send none of the hook's auth: credentials
	chunked     bool // send the body without Content-Length
}

// send signs r for hook (with its own verifier) and adds the hook's
// credentials, then applies r.header on top.
func (in *ingress) send(t testing.TB, hook string, r req) *httptest.ResponseRecorder {
	t.Helper()
	h := in.cfg.Hooks[hook]
	path := r.path
	if path == "" {
		path = "/hooks/catch/" + hook
		if h.Token != "" {
			path += "/" + h.Token
		}
	}
	var body io.Reader = bytes.NewReader(r.body)
	if r.chunked {
		body = io.MultiReader(bytes.NewReader(r.body)) // hides the length
	}
	hr := httptest.NewRequest(http.MethodPost, path, body)
	if r.chunked {
		hr.ContentLength = -1
	}
	hr.RemoteAddr = "203.0.113.10:40000"
	if r.peer != "" {
		hr.RemoteAddr = r.peer
	}
	ct := "application/json"
	if r.contentType != "" {
		ct = r.contentType
	}
	hr.Header.Set("Content-Type", ct)
	if !r.unsigned {
		for k, vs := range h.Verifier.Sign(r.body, ingressNow) {
			hr.Header[k] = vs
		}
	}
	if !r.noAuth {
		if h.Basic != nil {
			hr.SetBasicAuth(h.Basic.Username, h.Basic.Password)
		}
		if h.HeaderToken != nil {
			hr.Header.Set(h.HeaderToken.Name, h.HeaderToken.Value)
		}
	}
	for k, vs := range r.header {
		hr.Header[http.CanonicalHeaderKey(k)] = vs
	}
	w := httptest.NewRecorder()
	in.h.ServeHTTP(w, hr)
	return w
}

// accepted posts body to hook the right way and returns the event id; it
// fails unless the answer is 202, which proves that no earlier request with
// the same body was stored.
func (in *ingress) accepted(t testing.TB, hook string, body []byte, contentType string) string {
	t.Helper()
	w := in.send(t, hook, req{body: body, contentType: contentType})
	if w.Code != http.StatusAccepted {
		t.Fatalf("correct request to %s after the refusal: %d %s, want 202 (a duplicate means the refused one was stored)", hook, w.Code, w.Body)
	}
	return w.Header().Get("Hookrelay-Event-Id")
}

// refused checks the status of a refusal, that the answer is a short JSON
// error revealing no secret and no expected signature, and that nothing
// was stored.
func (in *ingress) refused(t testing.TB, hook string, r req, want int) *httptest.ResponseRecorder {
	t.Helper()
	before := in.rec.count()
	w := in.send(t, hook, r)
	if n := in.rec.count() - before; n != 0 {
		t.Errorf("%d events stored for a refused request", n)
	}
	if w.Code != want {
		t.Fatalf("status = %d %s, want %d", w.Code, w.Body, want)
	}
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out["error"] == nil || out["id"] != nil {
		t.Errorf("answer = %s, want {\"error\": ...}", w.Body)
	}
	if id := w.Header().Get("Hookrelay-Event-Id"); id != "" {
		t.Errorf("refusal names event %s", id)
	}
	revealsNothing(t, in.cfg, hook, r.body, w)
	in.accepted(t, hook, r.body, r.contentType)
	return w
}

// revealsNothing fails when an answer holds a secret of the config or the
// signature the hook expects for body, in any encoding.
func revealsNothing(t testing.TB, cfg *config.Config, hook string, body []byte, w *httptest.ResponseRecorder) {
	t.Helper()
	var answer strings.Builder
	answer.Write(w.Body.Bytes())
	for k, vs := range w.Header() {
		answer.WriteString(k + ": " + strings.Join(vs, ", ") + "\n")
	}
	got := answer.String()
	for _, s := range ingressSecrets {
		if strings.Contains(got, s) {
			t.Errorf("answer reveals the secret %q:\n%s", s, got)
		}
	}
	for _, v := range cfg.Hooks[hook].Verifier.Sign(body, ingressNow) {
		for _, sig := range v {
			for _, part := range strings.FieldsFunc(sig, func(r rune) bool { return r == ',' || r == '=' || r == ' ' }) {
				if len(part) >= 16 && strings.Contains(got, part) {
					t.Errorf("answer reveals the expected signature %q:\n%s", part, got)
				}
			}
		}
	}
	for _, secret := range ingressSecrets {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		mac := m.Sum(nil)
		for _, enc := range []string{hex.EncodeToString(mac), base64.StdEncoding.EncodeToString(mac), base64.RawURLEncoding.EncodeToString(mac)} {
			if strings.Contains(got, enc[:16]) {
				t.Errorf("answer reveals a MAC of the body: %s", got)
			}
		}
	}
}

func basicHeader(user, pass string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}

func TestIngressBasicAuth(t *testing.T) {
	cases := []struct {
		name string
		r    req
	}{
		{"no credentials", req{noAuth: true}},
		{"wrong password", req{header: basicHeader("sender", "basic-pa55word-0124")}},
		{"wrong user name", req{header: basicHeader("Sender", "basic-pa55word-0123")}},
		{"password as user name", req{header: basicHeader("basic-pa55word-0123", "")}},
		{"not basic", req{header: http.Header{"Authorization": {"Bearer basic-pa55word-0123"}}}},
		{"garbage", req{header: http.Header{"Authorization": {"Basic %%%"}}}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := newIngress(t)
			c.r.body = []byte(`{"n":` + string(rune('0'+i)) + `}`)
			w := in.refused(t, "basic", c.r, http.StatusUnauthorized)
			if got := w.Header().Get("WWW-Authenticate"); got != `Basic realm="hookrelay"` {
				t.Errorf("WWW-Authenticate = %q", got)
			}
		})
	}
	// Right credentials do not excuse a wrong signature: every check must pass.
	t.Run("right credentials, no signature", func(t *testing.T) {
		in := newIngress(t)
		w := in.refused(t, "basic", req{body: []byte(`{"n":"sig"}`), unsigned: true}, http.StatusUnauthorized)
		if !strings.Contains(w.Body.String(), "invalid signature") {
			t.Errorf("answer = %s", w.Body)
		}
	})
}

func TestIngressHeaderToken(t *testing.T) {
	cases := []struct {
		name, hook string
		r          req
	}{
		{"missing", "apikey", req{noAuth: true}},
		{"wrong", "apikey", req{header: http.Header{"X-Api-Key": {"key-0123456789abcdeF"}}}},
		{"prefix of the token", "apikey", req{header: http.Header{"X-Api-Key": {"key-0123456789"}}}},
		{"sent twice", "apikey", req{header: http.Header{"X-Api-Key": {"key-0123456789abcdef", "other"}}}},
		{"in another header", "apikey", req{noAuth: true, header: http.Header{"X-Api-Token": {"key-0123456789abcdef"}}}},
		{"wrong bearer", "bearer", req{header: http.Header{"Authorization": {"Bearer tok-0123456789abcdeg"}}}},
		{"bearer without scheme", "bearer", req{header: http.Header{"Authorization": {"tok-0123456789abcdef"}}}},
		{"bearer with another scheme", "bearer", req{header: http.Header{"Authorization": {"Basic tok-0123456789abcdef"}}}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := newIngress(t)
			c.r.body = []byte(`{"n":` + string(rune('0'+i)) + `}`)
			in.refused(t, c.hook, c.r, http.StatusUnauthorized)
		})
	}
	t.Run("bearer scheme in any case", func(t *testing.T) {
		in := newIngress(t)
		w := in.send(t, "bearer", req{body: []byte(`{}`), header: http.Header{"Authorization": {"bEARER tok-0123456789abcdef"}}})
		if w.Code != http.StatusAccepted {
			t.Errorf("status = %d %s, want 202", w.Code, w.Body)
		}
	})
}

func TestIngressAllowIPs(t *testing.T) {
	refusedCases := []struct {
		name string
		peer string
		xff  []string
	}{
		{"peer not allowed", "198.51.100.7:5555", nil},
		{"peer in no list at all", "[2001:db8:2::1]:5555", nil},
		{"X-Forwarded-For from an untrusted peer is ignored", "198.51.100.7:5555", []string{"203.0.113.5"}},
		{"a trusted proxy's sender is not allowed", "10.1.2.3:5555", []string{"198.51.100.7"}},
		{"an address the sender wrote itself proves nothing", "10.1.2.3:5555", []string{"203.0.113.5, 198.51.100.7"}},
		{"garbage where the sender's address should be", "10.1.2.3:5555", []string{"203.0.113.5, unknown"}},
		{"unusable peer", "@", nil},
	}
	for i, c := range refusedCases {
		t.Run(c.name, func(t *testing.T) {
			in := newIngress(t)
			r := req{body: []byte(`{"n":` + string(rune('0'+i)) + `}`), peer: c.peer}
			if c.xff != nil {
				r.header = http.Header{"X-Forwarded-For": c.xff}
			}
			w := in.refused(t, "office", r, http.StatusForbidden)
			if !strings.Contains(w.Body.String(), "sender address not allowed") {
				t.Errorf("answer = %s", w.Body)
			}
		})
	}
	allowedCases := []struct {
		name string
		peer string
		xff  []string
	}{
		{"peer allowed", "203.0.113.200:5555", nil},
		{"IPv6 peer allowed", "[2001:db8:1::99]:5555", nil},
		{"IPv4-mapped peer", "[::ffff:203.0.113.9]:5555", nil},
		{"X-Forwarded-For from a trusted proxy", "10.1.2.3:5555", []string{"198.51.100.7, 203.0.113.5"}},
		{"through two trusted proxies", "10.1.2.3:5555", []string{"203.0.113.5, 10.9.9.9"}},
		{"over several header lines", "[2001:db8:ffff::1]:5555", []string{"198.51.100.7", "203.0.113.5", "10.0.0.1"}},
		{"with a port", "10.1.2.3:5555", []string{"[2001:db8:1::5]:443"}},
	}
	for i, c := range allowedCases {
		t.Run(c.name, func(t *testing.T) {
			in := newIngress(t)
			r := req{body: []byte(`{"ok":` + string(rune('0'+i)) + `}`), peer: c.peer}
			if c.xff != nil {
				r.header = http.Header{"X-Forwarded-For": c.xff}
			}
			if w := in.send(t, "office", r); w.Code != http.StatusAccepted {
				t.Errorf("status = %d %s, want 202", w.Code, w.Body)
			}
		})
	}
}

func TestIngressLimits(t *testing.T) {
	deep := []byte(strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000))
	deepArrays := []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000))
	big := []byte(`{"pad":"` + strings.Repeat("a", 2000) + `"}`)
	cases := []struct {
		name, hook string
		r          req
		want       int
		msg        string
	}{
		{"oversized", "basic", req{body: big}, http.StatusRequestEntityTooLarge, "payload too large"},
		{"oversized without a length", "basic", req{body: big, chunked: true}, http.StatusRequestEntityTooLarge, "payload too large"},
		{"deeply nested objects", "apikey", req{body: deep}, http.StatusBadRequest, "nested deeper than 64 levels"},
		{"deeply nested arrays", "apikey", req{body: deepArrays}, http.StatusBadRequest, "nested deeper than 64 levels"},
		{"duplicate key", "apikey", req{body: []byte(`{"type":"refund","amount":5,"type":"charge"}`)}, http.StatusBadRequest, `duplicate key \"type\"`},
		{"duplicate key spelt with an escape", "apikey", req{body: []byte(`{"id":1,"\u0069d":2}`)}, http.StatusBadRequest, `duplicate key \"id\"`},
		{"form that is not a form", "forms", req{body: []byte("a=%zz"), contentType: "application/x-www-form-urlencoded"}, http.StatusBadRequest, "invalid form body"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := newIngress(t)
			w := in.send(t, c.hook, c.r)
			if in.rec.count() != 0 {
				t.Errorf("%d events stored for a refused request", in.rec.count())
			}
			if w.Code != c.want || !strings.Contains(w.Body.String(), c.msg) {
				t.Fatalf("answer = %d %s, want %d with %q", w.Code, w.Body, c.want, c.msg)
			}
			if len(w.Body.String()) > 300 {
				t.Errorf("answer is %d bytes long", w.Body.Len())
			}
			revealsNothing(t, in.cfg, c.hook, c.r.body, w)
			// The same body sent again within the limits would be stored:
			// nothing was stored the first time, and the gateway still serves.
			ok := []byte(`{"probe":true}`)
			if c.r.contentType != "" {
				ok = []byte("probe=true")
			}
			w = in.send(t, c.hook, req{body: ok, contentType: c.r.contentType})
			if w.Code != http.StatusAccepted {
				t.Fatalf("probe: %d %s", w.Code, w.Body)
			}
		})
	}
}

// A sender that posts a form is matched by rules on its fields, and its
// signature is checked over the bytes it sent.
func TestIngressFormBody(t *testing.T) {
	in := newIngress(t)
	form := url.Values{"command": {"/deploy"}, "text": {"prod"}, "user": {"ada"}}.Encode()
	const ct = "application/x-www-form-urlencoded; charset=utf-8"
	w := in.send(t, "forms", req{body: []byte(form), contentType: ct})
	if w.Code != http.StatusAccepted {
		t.Fatalf("status = %d %s", w.Code, w.Body)
	}
	id := w.Header().Get("Hookrelay-Event-Id")
	ev, err := in.st.Event(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev.Body, []byte(form)) || ev.Status != store.EventAccepted || strings.Join(ev.MatchedRules, ",") != "deploy" {
		t.Errorf("event = %+v", ev)
	}
	ds, err := in.st.Deliveries(context.Background(), id)
	if err != nil || len(ds) != 1 || ds[0].Action != "notify" {
		t.Errorf("deliveries = %+v, %v", ds, err)
	}

	other := url.Values{"command": {"/deploy"}, "text": {"staging"}}.Encode()
	w = in.send(t, "forms", req{body: []byte(other), contentType: ct})
	if w.Code != http.StatusAccepted {
		t.Fatalf("status = %d %s", w.Code, w.Body)
	}
	if ev, err := in.st.Event(context.Background(), w.Header().Get("Hookrelay-Event-Id")); err != nil || ev.Status != store.EventIgnored {
		t.Errorf("a form matching no rule: %+v, %v", ev, err)
	}

	// The signature covers the raw bytes: the same fields in another order
	// do not carry the signature of the first.
	reordered := "text=prod&command=%2Fdeploy&user=ada"
	r := req{body: []byte(reordered), contentType: ct, header: in.cfg.Hooks["forms"].Verifier.Sign([]byte(form), ingressNow)}
	in.refused(t, "forms", r, http.StatusUnauthorized)
}

// Slack's url_verification is answered with its challenge, and stored like
// any other event; other events get the usual answer.
func TestIngressSlackChallenge(t *testing.T) {
	in := newIngress(t)
	const challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
	body := []byte(`{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"` + challenge + `","type":"url_verification"}`)
	for _, attempt := range []string{"first", "retry"} {
		w := in.send(t, "slack", req{body: body})
		if w.Code != http.StatusOK || w.Body.String() != challenge {
			t.Fatalf("%s: answer = %d %q, want 200 %q", attempt, w.Code, w.Body, challenge)
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("%s: content type %q", attempt, ct)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", attempt)
		}
		ev, err := in.st.Event(context.Background(), w.Header().Get("Hookrelay-Event-Id"))
		if err != nil || !bytes.Equal(ev.Body, body) || ev.Hook != "slack" {
			t.Errorf("%s: stored event = %+v, %v", attempt, ev, err)
		}
	}

	// A wrong signature gets no challenge back.
	forged := []byte(strings.Replace(string(body), "3eZ", "4eZ", 1))
	before := in.rec.count()
	w := in.send(t, "slack", req{body: forged, header: in.cfg.Hooks["slack"].Verifier.Sign(body, ingressNow)})
	if w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), "eZbrw") || in.rec.count() != before {
		t.Errorf("forged challenge: %d %s, %d stored", w.Code, w.Body, in.rec.count()-before)
	}
	revealsNothing(t, in.cfg, "slack", forged, w)

	event := []byte(`{"type":"event_callback","event":{"type":"app_mention"}}`)
	w = in.send(t, "slack", req{body: event})
	var out map[string]any
	if w.Code != http.StatusAccepted || json.Unmarshal(w.Body.Bytes(), &out) != nil || out["id"] != w.Header().Get("Hookrelay-Event-Id") {
		t.Errorf("event_callback: %d %s", w.Code, w.Body)
	}
}

// A response: body that is not a string is sent as JSON.
func TestIngressJSONResponse(t *testing.T) {
	in := newIngress(t)
	w := in.send(t, "status", req{body: []byte(`{"type":"<script>"}`)})
	id := w.Header().Get("Hookrelay-Event-Id")
	var out map[string]any
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &out) != nil {
		t.Fatalf("answer = %d %s", w.Code, w.Body)
	}
	if out["ok"] != true || out["event"] != id || out["type"] != "<script>" {
		t.Errorf("answer = %s (event %s)", w.Body, id)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
	if strings.Contains(w.Body.String(), "<script>") {
		t.Errorf("HTML is not escaped in %s", w.Body)
	}
}

// The challenge is answered only once the event is stored: a store that
// cannot take it answers 503 like any other event.
func TestIngressSlackChallengeStoreDown(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	down := redisstore.New(client, "down")
	t.Cleanup(func() { down.Close() })
	cfg := loadIngressConfig(t)
	g := gateway.New(down, cfg, gateway.Options{Now: func() time.Time { return ingressNow }})
	body := []byte(`{"challenge":"abc","type":"url_verification"}`)
	r := httptest.NewRequest(http.MethodPost, "/hooks/catch/slack", bytes.NewReader(body))
	for k, vs := range cfg.Hooks["slack"].Verifier.Sign(body, ingressNow) {
		r.Header[k] = vs
	}
	w := httptest.NewRecorder()
	g.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable || strings.Contains(w.Body.String(), "abc") {
		t.Errorf("answer = %d %s, want 503 without the challenge", w.Code, w.Body)
	}
}

// A client that sends half a header line and stalls is cut off by the
// server built by NewServer, and does not hold the connection.
func TestServerCutsSlowHeaders(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := gateway.NewServer(newIngress(t).h, gateway.ServerOptions{ReadHeaderTimeout: 200 * time.Millisecond})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /hooks/catch/apikey HTTP/1.1\r\nHost: hookrelay\r\nX-Api-K"); err != nil {
		t.Fatal(err)
	}
	// The deadline only keeps a broken server from hanging the test: it is
	// far beyond the 200ms the server allows.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the stalled connection open (read %d bytes)", n)
	}
	// A well-behaved client on the same server is served.
	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	io.WriteString(c2, "GET /healthz HTTP/1.1\r\nHost: hookrelay\r\nConnection: close\r\n\r\n")
	c2.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
}

func TestNewServerLimits(t *testing.T) {
	h := http.NotFoundHandler()
	srv := gateway.NewServer(h, gateway.ServerOptions{})
	if srv.Handler == nil || srv.ReadHeaderTimeout != gateway.DefaultReadHeaderTimeout || srv.ReadTimeout != gateway.DefaultReadTimeout ||
		srv.WriteTimeout != gateway.DefaultWriteTimeout || srv.IdleTimeout != gateway.DefaultIdleTimeout ||
		srv.MaxHeaderBytes != gateway.DefaultMaxHeaderBytes || srv.ErrorLog == nil {
		t.Errorf("defaults: %+v", srv)
	}
	srv = gateway.NewServer(h, gateway.ServerOptions{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second,
		WriteTimeout: 3 * time.Second, IdleTimeout: 4 * time.Second, MaxHeaderBytes: 5})
	if srv.ReadHeaderTimeout != time.Second || srv.ReadTimeout != 2*time.Second || srv.WriteTimeout != 3*time.Second ||
		srv.IdleTimeout != 4*time.Second || srv.MaxHeaderBytes != 5 {
		t.Errorf("options not kept: %+v", srv)
	}
}

// An answer that is too long to be an error message is not echoed back
// whole: a parse error quoting a long key is cut short.
func TestIngressErrorIsShort(t *testing.T) {
	in := newIngress(t)
	key := strings.Repeat("k", 5000)
	w := in.send(t, "apikey", req{body: []byte(`{"` + key + `":1,"` + key + `":2}`)})
	if w.Code != http.StatusBadRequest || w.Body.Len() > 300 {
		t.Errorf("answer = %d, %d bytes", w.Code, w.Body.Len())
	}
}

// failingReader fails the test that reads it.
type failingReader struct{ t testing.TB }

func (r failingReader) Read([]byte) (int, error) {
	r.t.Error("the body was read")
	return 0, io.ErrUnexpectedEOF
}

// A compressed body is refused with 415 before it is read: its signature
// and its payload would be checked on the compressed bytes. Nothing is
// stored, and the refusal is counted under its hook. identity is no
// encoding at all.
func TestIngressContentEncoding(t *testing.T) {
	st, err := sqlitestore.Open(context.Background(), t.TempDir()+"/encoding.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := loadIngressConfig(t)
	rec := &recordingStore{Store: st}
	m := metrics.New(metrics.Options{})
	h := gateway.New(rec, cfg, gateway.Options{Now: func() time.Time { return ingressNow }, Logger: slog.New(slog.DiscardHandler), Metrics: m}).Handler()
	send := func(encoding string, body io.Reader, length int64, sig http.Header) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/hooks/catch/apikey", body)
		r.ContentLength = length
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-Api-Key", "key-0123456789abcdef")
		if encoding != "" {
			r.Header.Set("Content-Encoding", encoding)
		}
		for k, vs := range sig {
			r.Header[k] = vs
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"type":"compressed"}`))
	zw.Close()
	verifier := cfg.Hooks["apikey"].Verifier
	for _, c := range []struct {
		encoding, named string
		body            io.Reader
		length          int64
		sig             http.Header
	}{
		// Signed as a sender signs it: over the bytes it sends.
		{"gzip", "gzip", bytes.NewReader(gz.Bytes()), int64(gz.Len()), verifier.Sign(gz.Bytes(), ingressNow)},
		{"gzip", "gzip", failingReader{t}, 1000, nil},
		{"br", "br", failingReader{t}, -1, nil},
		{"identity, gzip", "gzip", failingReader{t}, 1000, nil},
	} {
		w := send(c.encoding, c.body, c.length, c.sig)
		var out map[string]any
		want := "Content-Encoding " + c.named + " is not supported: send the body uncompressed"
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != http.StatusUnsupportedMediaType || out["error"] != want || len(out) != 1 {
			t.Errorf("Content-Encoding %s: %d %s, want 415 {\"error\": %q}", c.encoding, w.Code, w.Body, want)
		}
		if got := w.Header().Get("Accept-Encoding"); got != "identity" {
			t.Errorf("Content-Encoding %s: Accept-Encoding %q, want identity", c.encoding, got)
		}
	}
	if n := rec.count(); n != 0 {
		t.Errorf("%d events stored for compressed bodies", n)
	}
	for _, encoding := range []string{"identity", "Identity", ""} {
		body := []byte(`{"type":"plain","encoding":"` + encoding + `"}`)
		if w := send(encoding, bytes.NewReader(body), int64(len(body)), verifier.Sign(body, ingressNow)); w.Code != http.StatusAccepted {
			t.Errorf("Content-Encoding %q: %d %s, want 202", encoding, w.Code, w.Body)
		}
	}
	want := `
# HELP hookrelay_events_received_total Requests to a configured hook, by hook and outcome: accepted, ignored (no rule matched), duplicate, or the refusal.
# TYPE hookrelay_events_received_total counter
hookrelay_events_received_total{hook="apikey",outcome="ignored"} 3
hookrelay_events_received_total{hook="apikey",outcome="unsupported_encoding"} 4
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "hookrelay_events_received_total"); err != nil {
		t.Error(err)
	}
}
