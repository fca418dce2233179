package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// canary is a TCP listener that must receive no connection; it closes each
// one at once. connections() is exact without waiting: it connects once
// itself and counts what was accepted before, since a listener accepts in
// order.
type canary struct {
	ln       net.Listener
	accepted chan string
	mu       sync.Mutex
	count    int
}

func newCanary(t *testing.T) *canary {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &canary{ln: ln, accepted: make(chan string, 1024)}
	go func() {
		defer close(c.accepted)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.accepted <- conn.RemoteAddr().String()
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

func (c *canary) url() string { return "http://" + c.ln.Addr().String() }

func (c *canary) connections(t *testing.T) int {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	own, err := net.Dial("tcp4", c.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	for remote := range c.accepted {
		if remote == own.LocalAddr().String() {
			return c.count
		}
		c.count++
	}
	t.Fatal("canary closed")
	return 0
}

const refusedLoopback = "refused: 127.0.0.1 is a loopback address; allow it with egress.allow_networks"

// With DEMO_ALLOW_NETWORKS unset the demo may not reach a downstream API on
// loopback: each delivery is dead after its first attempt, which records
// the refusal, and the API never sees a connection.
func TestEgressGuard(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			storeURL := b.url(t)
			api := newCanary(t)
			srv := start(t, serverOpts{store: storeURL, api: api.url(), noEgressAllow: true})
			st := openTestStore(t, storeURL)

			ocw := payload(t, "oncloudwine-contact-updated.json")
			gh := payload(t, "github-push.json")
			var ids []string
			for _, c := range []struct {
				path   string
				body   []byte
				header http.Header
			}{
				{"/hooks/catch/oncloudwine", ocw, ocwSign(ocw)},
				{"/hooks/catch/github", gh, githubSign(githubSecret, gh, "guard-0001")},
			} {
				status, out := srv.post(t, http.MethodPost, c.path, c.body, c.header)
				if status != http.StatusAccepted {
					t.Fatalf("%s: %d %v", c.path, status, out)
				}
				ids = append(ids, out["id"].(string))
			}
			for _, id := range ids {
				d := waitDelivery(t, st, id, store.DeliveryDead)
				if d.Attempts != 1 || d.LastError != refusedLoopback {
					t.Errorf("delivery %s: %d attempts, last error %q; want dead after 1 with %q", d.Action, d.Attempts, d.LastError, refusedLoopback)
				}
				as, err := st.Attempts(context.Background(), d.ID)
				if err != nil || len(as) != 1 {
					t.Fatalf("attempts of %s: %v, %v", d.ID, as, err)
				}
				if as[0].Error != refusedLoopback || as[0].StatusCode != 0 || !strings.HasPrefix(as[0].URL, api.url()+"/v1/") {
					t.Errorf("attempt = %+v", as[0])
				}
			}
			if n := api.connections(t); n != 0 {
				t.Errorf("the downstream API got %d connections", n)
			}
			if !strings.Contains(srv.output(), refusedLoopback) {
				t.Errorf("the refusal is not in the log")
			}
		})
	}
}

// copyDemoTree copies the whole demo folder to one the test may change.
func copyDemoTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := "../../testdata/demo"
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// The allowlist follows the config in force: a reload that adds a network
// lets the next delivery through, one that removes it refuses the next
// delivery again, even though a connection to the API was kept alive.
func TestEgressAllowlistFollowsReload(t *testing.T) {
	storeURL := "sqlite://" + filepath.Join(t.TempDir(), "hookrelay.db")
	dir := copyDemoTree(t)
	cfgPath := filepath.Join(dir, "hookrelay.yaml")
	original, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	const unset = "allow_networks: ${DEMO_ALLOW_NETWORKS:-}"
	if !bytes.Contains(original, []byte(unset)) {
		t.Fatalf("the demo config has no %q", unset)
	}
	rc := newReceiver(t)
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: cfgPath, noEgressAllow: true, extra: []string{"HOOKRELAY_WATCH=1h"}})
	st := openTestStore(t, storeURL)

	send := func(contact string) store.Delivery {
		t.Helper()
		body := bytes.Replace(payload(t, "oncloudwine-contact-deleted.json"), []byte("ctc_77b0e9f4"), []byte(contact), 1)
		status, out := srv.post(t, http.MethodPost, "/hooks/catch/oncloudwine", body, ocwSign(body))
		if status != http.StatusAccepted {
			t.Fatalf("%d %v", status, out)
		}
		return waitSettled(t, st, out["id"].(string), 1)[0]
	}
	reload := func(content []byte, n int) {
		t.Helper()
		if err := os.WriteFile(cfgPath, content, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		srv.waitLog(t, "config reloaded", n)
	}

	if d := send("ctc_before"); d.Status != store.DeliveryDead || d.LastError != refusedLoopback {
		t.Fatalf("before the reload: %s %q, want dead with the refusal", d.Status, d.LastError)
	}
	reload(bytes.Replace(original, []byte(unset), []byte("allow_networks: 127.0.0.0/8"), 1), 1)
	for _, c := range []string{"ctc_allowed1", "ctc_allowed2"} {
		if d := send(c); d.Status != store.DeliverySucceeded {
			t.Fatalf("%s after allowing loopback: %s %q, want succeeded", c, d.Status, d.LastError)
		}
	}
	reload(original, 2)
	if d := send("ctc_after"); d.Status != store.DeliveryDead || d.LastError != refusedLoopback {
		t.Errorf("after removing loopback again: %s %q, want dead with the refusal", d.Status, d.LastError)
	}
	if n := len(rc.on("/v1/contacts/ctc_before")) + len(rc.on("/v1/contacts/ctc_after")); n != 0 {
		t.Errorf("refused deliveries reached the API %d times", n)
	}
}

// leakyReceiver is a downstream API that answers with everything it was
// sent (request line, headers, body), as a careless or debugging endpoint
// would, so that any credential hookrelay sends comes back in the response
// it records. It also serves an OAuth2 token endpoint.
type leakyReceiver struct {
	*httptest.Server
	mu      sync.Mutex
	n       map[string]int
	respond func(path string, n int) int
}

const (
	oauthClientSecret = "oauth-client-secret-2b7e51"
	oauthAccessToken  = "oauth-access-token-d41f9b"
	userToken         = "oc-usertoken-elevated-7f3a9c1e"
)

func newLeakyReceiver(t *testing.T, respond func(path string, n int) int) *leakyReceiver {
	lr := &leakyReceiver{n: map[string]int{}, respond: respond}
	lr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		lr.mu.Lock()
		lr.n[r.URL.Path]++
		n := lr.n[r.URL.Path]
		lr.mu.Unlock()
		var echo bytes.Buffer
		fmt.Fprintf(&echo, "%s %s\n", r.Method, r.URL)
		for k, v := range r.Header {
			fmt.Fprintf(&echo, "%s: %s\n", k, strings.Join(v, ", "))
		}
		echo.Write(body)
		if r.URL.Path == "/oauth/token" {
			_ = r.ParseForm()
			_, secret, _ := r.BasicAuth()
			if n <= 2 || (secret != oauthClientSecret && r.PostForm.Get("client_secret") != oauthClientSecret) {
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintf(w, `{"error":"invalid_client","error_description":%q}`, echo.String())
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, oauthAccessToken)
			return
		}
		w.Header().Set("X-Echo-Authorization", r.Header.Get("Authorization"))
		w.WriteHeader(lr.respond(r.URL.Path, n))
		w.Write(echo.Bytes())
	}))
	t.Cleanup(lr.Close)
	return lr
}

func (lr *leakyReceiver) count(path string) int {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.n[path]
}

// seen collects everything hookrelay showed: logs, attempt records, API
// answers.
type seen struct {
	mu    sync.Mutex
	texts map[string]*strings.Builder
}

func (s *seen) add(where string, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.texts == nil {
		s.texts = map[string]*strings.Builder{}
	}
	b := s.texts[where]
	if b == nil {
		b = &strings.Builder{}
		s.texts[where] = b
	}
	switch x := v.(type) {
	case string:
		b.WriteString(x)
	case []byte:
		b.Write(x)
	default:
		j, _ := json.Marshal(x)
		b.Write(j)
	}
	b.WriteByte('\n')
}

// Secrets never appear in hookrelay's logs, attempt records, API answers
// or error messages: hook secrets, the downstream bearer token, the
// elevated UserToken that came in an OrderCloud payload, an OAuth2 client
// secret and the access token it bought, across successes, receiver
// failures that echo them back, refused targets and refused signatures.
func TestSecretsNeverShown(t *testing.T) {
	onEachStore(t, testSecretsNeverShown)
}

func testSecretsNeverShown(t *testing.T, b storeBackend) {
	var all seen
	ctx := context.Background()
	secrets := map[string]string{
		"OnCloudWine secret":             ocwSecret,
		"OrderCloud hash key":            ocHashKey,
		"WineSitting URL token":          wsToken,
		"CRM bearer token":               crmToken,
		"GitHub secret":                  githubSecret,
		"Stripe secret":                  stripeSecret,
		"Shopify secret":                 shopifySecret,
		"Slack secret":                   slackSecret,
		"Standard Webhooks secret":       standardSecret,
		"Standard Webhooks key":          strings.TrimPrefix(standardSecret, "whsec_"),
		"previous Standard secret":       standardSecretPrevious,
		"OrderCloud UserToken":           userToken,
		"OAuth2 client secret":           oauthClientSecret,
		"OAuth2 client secret, as Basic": base64.StdEncoding.EncodeToString([]byte("hookrelay:" + oauthClientSecret)),
		"OAuth2 access token":            oauthAccessToken,
	}

	// Every path fails at first; the OnCloudWine update never succeeds.
	respond := func(path string, n int) int {
		switch {
		case path == "/v1/contacts/ctc_8a41d07b":
			return http.StatusInternalServerError
		case n == 1:
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	oc := bytes.Replace(payload(t, "ordercloud-buyer-user-created.json"), []byte(`"UserToken": "eyJ`), []byte(`"UserToken": "`+userToken+`.eyJ`), 1)
	if !bytes.Contains(oc, []byte(userToken)) {
		t.Fatal("the OrderCloud payload has no UserToken to replace")
	}

	// send posts the demo's events and returns their ids.
	send := func(t *testing.T, srv *server) []string {
		t.Helper()
		var ids []string
		post := func(path string, body []byte, h http.Header, want int) {
			status, out := srv.post(t, http.MethodPost, path, body, h)
			all.add("ingress answers", out)
			if status != want {
				t.Fatalf("POST %s: %d %v, want %d", path, status, out, want)
			}
			if id, ok := out["id"].(string); ok && want == http.StatusAccepted {
				ids = append(ids, id)
			}
		}
		ocw := payload(t, "oncloudwine-contact-updated.json")
		post("/hooks/catch/oncloudwine", ocw, ocwSign(ocw), http.StatusAccepted)
		post("/hooks/catch/oncloudwine", ocw, http.Header{"X-Oncloudwine-Signature": {"00ff"}}, http.StatusUnauthorized)
		post("/hooks/catch/ordercloud", oc, ocSign(oc), http.StatusAccepted)
		ws := payload(t, "winesitting-order-delivered.json")
		post("/hooks/catch/winesitting/"+wsToken, ws, nil, http.StatusAccepted)
		post("/hooks/catch/winesitting/"+wsToken[:len(wsToken)-1]+"x", ws, nil, http.StatusNotFound)
		now := time.Now()
		for i, s := range senders() {
			body := payload(t, s.payload)
			post("/hooks/catch/"+s.hook, body, s.sign(t, body, now, 100+i), http.StatusAccepted)
			post("/hooks/catch/"+s.hook, body, wrongSignature(t, s, body, now), http.StatusUnauthorized)
		}
		return ids
	}
	// record waits until the events settle and keeps their deliveries and attempts.
	record := func(t *testing.T, st store.Store, ids []string) {
		t.Helper()
		for _, id := range ids {
			ds := waitSettled(t, st, id, 1)
			all.add("deliveries", ds)
			for _, d := range ds {
				as, err := st.Attempts(ctx, d.ID)
				if err != nil {
					t.Fatal(err)
				}
				all.add("attempts", as)
			}
		}
	}

	t.Run("successes and receiver failures", func(t *testing.T) {
		storeURL := b.url(t)
		admin := createKey(t, storeURL, "ops", "read")
		rc := newLeakyReceiver(t, respond)
		srv := start(t, serverOpts{store: storeURL, api: rc.URL, retry: "20ms,20ms"})
		st := openTestStore(t, storeURL)
		ids := send(t, srv)
		record(t, st, ids)

		// The scenario really went through failures and successes.
		if n := rc.count("/v1/contacts/ctc_8a41d07b"); n != 3 {
			t.Errorf("the failing path got %d requests, want 3", n)
		}
		if n := rc.count("/v1/buyers/buyer-northwest/users/user-4471"); n != 2 {
			t.Errorf("the OrderCloud callback got %d requests, want 2", n)
		}
		for _, p := range []string{"/hooks", "/events", "/deliveries", "/events?status=accepted"} {
			_, out := srv.api(t, admin, http.MethodGet, p, nil)
			all.add("admin API", out)
		}
		for _, id := range ids {
			_, ev := srv.api(t, admin, http.MethodGet, "/events/"+id, nil)
			all.add("admin API", ev)
			ds, _ := st.Deliveries(ctx, id)
			for _, d := range ds {
				_, out := srv.api(t, admin, http.MethodGet, "/deliveries/"+d.ID, nil)
				all.add("admin API", out)
			}
		}
		if err := srv.stop(t); err != nil {
			t.Errorf("exit: %v", err)
		}
		all.add("log", srv.output())
	})

	t.Run("refused targets", func(t *testing.T) {
		storeURL := b.url(t)
		api := newCanary(t)
		srv := start(t, serverOpts{store: storeURL, api: api.url(), noEgressAllow: true})
		st := openTestStore(t, storeURL)
		record(t, st, send(t, srv))
		if n := api.connections(t); n != 0 {
			t.Errorf("the refused API got %d connections", n)
		}
		if err := srv.stop(t); err != nil {
			t.Errorf("exit: %v", err)
		}
		out := srv.output()
		if !strings.Contains(out, refusedLoopback) {
			t.Errorf("no refusal logged")
		}
		all.add("log", out)
	})

	t.Run("OAuth2 client credentials", func(t *testing.T) {
		storeURL := b.url(t)
		rc := newLeakyReceiver(t, respond)
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "rules.yaml"), "rules:\n  - name: all\n    when: true\n    actions: [crm]\n")
		writeFile(t, filepath.Join(dir, "hookrelay.yaml"), `
egress:
  allow_networks: ${DEMO_ALLOW_NETWORKS}
hooks:
  github:
    verify: {scheme: github, secret: "${GITHUB_WEBHOOK_SECRET}"}
    rules: [rules.yaml]
actions:
  crm:
    method: PUT
    url: ${DEMO_API_URL}/v1/crm/commits/{{ body.after }}
    auth:
      oauth2:
        token_url: ${DEMO_API_URL}/oauth/token
        client_id: hookrelay
        client_secret: ${OAUTH_CLIENT_SECRET}
    body: {ref: "{{ body.ref }}"}
    retry: ${DEMO_RETRY}
`)
		srv := start(t, serverOpts{store: storeURL, api: rc.URL, retry: "20ms,20ms,20ms", config: filepath.Join(dir, "hookrelay.yaml"),
			extra: []string{"OAUTH_CLIENT_SECRET=" + oauthClientSecret}})
		st := openTestStore(t, storeURL)
		body := payload(t, "github-push.json")
		status, out := srv.post(t, http.MethodPost, "/hooks/catch/github", body, githubSign(githubSecret, body, "oauth-0001"))
		all.add("ingress answers", out)
		if status != http.StatusAccepted {
			t.Fatalf("%d %v", status, out)
		}
		ds := waitSettled(t, st, out["id"].(string), 1)
		// The token endpoint refuses the first fetch (both ways of sending
		// the credentials), the API fails once, then it succeeds.
		if ds[0].Status != store.DeliverySucceeded || ds[0].Attempts != 3 {
			t.Errorf("delivery %s after %d attempts, want succeeded after 3", ds[0].Status, ds[0].Attempts)
		}
		record(t, st, []string{out["id"].(string)})
		if err := srv.stop(t); err != nil {
			t.Errorf("exit: %v", err)
		}
		all.add("log", srv.output())
	})

	// Each place was really looked at.
	for _, where := range []string{"log", "attempts", "deliveries", "ingress answers", "admin API"} {
		if all.texts[where] == nil || all.texts[where].Len() < 100 {
			t.Fatalf("too little seen in %s to check", where)
		}
	}
	if !strings.Contains(all.texts["attempts"].String(), "[redacted]") {
		t.Errorf("no attempt shows a redaction: the echoed credentials were not recorded")
	}
	places := make([]string, 0, len(all.texts))
	for where := range all.texts {
		places = append(places, where)
	}
	sort.Strings(places)
	for name, secret := range secrets {
		for _, where := range places {
			text := all.texts[where].String()
			if i := strings.Index(text, secret); i >= 0 {
				t.Errorf("%s appears in %s: …%s…", name, where, text[max(0, i-120):min(len(text), i+len(secret)+40)])
			}
		}
	}
}
