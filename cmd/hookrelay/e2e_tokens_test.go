package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// The demo's OrderCloud callback, which sends the payload's UserToken.
const userCallback = "/v1/buyers/buyer-northwest/users/user-4471"

// expiringJWT is a token shaped like OrderCloud's UserToken whose exp is
// exp; its signature is not a real one, as hookrelay never checks it.
func expiringJWT(exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." +
		enc([]byte(fmt.Sprintf(`{"usr":"webhook-elevated","role":["BuyerUserAdmin"],"exp":%d}`, exp.Unix()))) + "." +
		enc([]byte("signature-e2e"))
}

// postUserToken sends the demo's OrderCloud payload carrying tok as its
// UserToken and returns the event's id.
func postUserToken(t *testing.T, srv *server, tok string) string {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(payload(t, "ordercloud-buyer-user-created.json"), &p); err != nil {
		t.Fatal(err)
	}
	p["UserToken"] = tok
	p["LogID"] = fmt.Sprintf("log-%d", time.Now().UnixNano()) // the idempotency key
	body, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	status, out := srv.post(t, http.MethodPost, "/hooks/catch/ordercloud", body, ocSign(body))
	if status != http.StatusAccepted {
		t.Fatalf("ordercloud answered %d %v, want 202", status, out)
	}
	return out["id"].(string)
}

func attemptsOf(t *testing.T, st store.Store, deliveryID string) []store.Attempt {
	t.Helper()
	as, err := st.Attempts(context.Background(), deliveryID)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// An elevated token that has expired by the time the webhook is relayed
// makes the delivery dead at its first attempt, with nothing sent.
func TestExpiredUserTokenIsNotSent(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) {
		storeURL := b.url(t)
		rc := newReceiver(t)
		srv := start(t, serverOpts{store: storeURL, api: rc.URL})
		st := openTestStore(t, storeURL)

		exp := time.Now().Add(-time.Hour)
		id := postUserToken(t, srv, expiringJWT(exp))
		d := waitDelivery(t, st, id, store.DeliveryDead)
		want := "token expired at " + exp.UTC().Format(time.RFC3339)
		if d.Attempts != 1 || d.LastError != want {
			t.Errorf("delivery: %d attempts, last error %q; want 1 and %q", d.Attempts, d.LastError, want)
		}
		if n := rc.total(); n != 0 {
			t.Errorf("the receiver got %d requests, want 0", n)
		}
		as := attemptsOf(t, st, d.ID)
		if len(as) != 1 || as[0].Error != want || as[0].StatusCode != 0 || as[0].Trace != nil {
			t.Errorf("attempts = %+v, want one, not sent, saying %q", as, want)
		}
		srv.waitLog(t, `msg="delivery dead"`, 1)
		if !strings.Contains(srv.output(), want) {
			t.Errorf("the log does not say %q", want)
		}

		// A token whose exp is ahead is sent as before.
		id = postUserToken(t, srv, expiringJWT(time.Now().Add(time.Hour)))
		waitDelivery(t, st, id, store.DeliverySucceeded)
		if n := len(rc.on(userCallback)); n != 1 {
			t.Errorf("the receiver got %d callbacks for a valid token, want 1", n)
		}
	})
}

// A token that expires between two attempts: the first is sent and
// answered 500; the second, due after exp, is not sent and the delivery is
// dead though the schedule has an attempt left.
func TestUserTokenExpiresBetweenRetries(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) {
		storeURL := b.url(t)
		rc := newReceiver(t)
		rc.respond = func(string, int) int { return http.StatusInternalServerError }
		// Each wait is 4 s ± 20 %, so the second attempt comes at least
		// 3.2 s after the first, which is after exp (at most 3 s from now).
		srv := start(t, serverOpts{store: storeURL, api: rc.URL, retry: "4s,4s"})
		st := openTestStore(t, storeURL)

		exp := time.Now().Truncate(time.Second).Add(3 * time.Second)
		id := postUserToken(t, srv, expiringJWT(exp))
		first := rc.waitFor(t, userCallback, 1)[0]
		if !first.At.Before(exp) {
			t.Fatalf("the first attempt came at %v, after exp %v: the machine is too slow for this test", first.At, exp)
		}
		d := waitDelivery(t, st, id, store.DeliveryDead)
		want := "token expired at " + exp.UTC().Format(time.RFC3339)
		if d.Attempts != 2 || d.LastError != want {
			t.Errorf("delivery: %d attempts, last error %q; want 2 and %q", d.Attempts, d.LastError, want)
		}
		if n := len(rc.on(userCallback)); n != 1 {
			t.Errorf("the receiver got %d requests, want 1", n)
		}
		as := attemptsOf(t, st, d.ID)
		if len(as) != 2 || as[0].StatusCode != 500 || as[1].StatusCode != 0 || as[1].Error != want || as[1].StartedAt.Before(exp) {
			t.Errorf("attempts = %+v", as)
		}
	})
}

// oauthAPI is a local token endpoint (/oauth/<action>, tokens numbered
// per action: <action>-1, <action>-2…) and API (/v1/<action>/…) that
// answers 401 to the tokens refuse names.
type oauthAPI struct {
	*httptest.Server
	mu       sync.Mutex
	tokens   map[string]int      // tokens issued, by action
	requests map[string][]string // the Authorization of each API request, by action
	refuse   func(action, token string) bool
}

func newOAuthAPI(t *testing.T, refuse func(action, token string) bool) *oauthAPI {
	api := &oauthAPI{tokens: map[string]int{}, requests: map[string][]string{}, refuse: refuse}
	api.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.mu.Lock()
		defer api.mu.Unlock()
		if action, ok := strings.CutPrefix(r.URL.Path, "/oauth/"); ok {
			_ = r.ParseForm()
			id, secret, _ := r.BasicAuth()
			if id == "" {
				id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
			}
			if id != "hookrelay" || secret != oauthClientSecret || r.PostForm.Get("grant_type") != "client_credentials" {
				http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
				return
			}
			api.tokens[action]++
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":"%s-%d","token_type":"Bearer","expires_in":3600}`, action, api.tokens[action])
			return
		}
		action := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")[0]
		auth := r.Header.Get("Authorization")
		api.requests[action] = append(api.requests[action], auth)
		if api.refuse(action, strings.TrimPrefix(auth, "Bearer ")) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"token refused"}`)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(api.Close)
	return api
}

// seen is what the API saw for action: token requests and the
// Authorization of each request.
func (api *oauthAPI) seen(action string) (int, []string) {
	api.mu.Lock()
	defer api.mu.Unlock()
	return api.tokens[action], append([]string(nil), api.requests[action]...)
}

const oauthConfig = `
egress:
  allow_networks: ${DEMO_ALLOW_NETWORKS}
hooks:
  h:
    verify: {scheme: none}
    token: h-url-token-5e6f7a8b9c
    rules: [rules.yaml]
actions:
  revoked:
    url: ${DEMO_API_URL}/v1/revoked/{{ body.id }}
    auth:
      oauth2: {token_url: "${DEMO_API_URL}/oauth/revoked", client_id: hookrelay, client_secret: "${OAUTH_CLIENT_SECRET}"}
    body: {id: "{{ body.id }}"}
    retry: ${DEMO_RETRY}
  forbidden:
    url: ${DEMO_API_URL}/v1/forbidden/{{ body.id }}
    auth:
      oauth2: {token_url: "${DEMO_API_URL}/oauth/forbidden", client_id: hookrelay, client_secret: "${OAUTH_CLIENT_SECRET}"}
    body: {id: "{{ body.id }}"}
    retry: ${DEMO_RETRY}
`

const oauthRules = `rules:
  - name: revoked
    when: body.kind == "revoked"
    actions: [revoked]
  - name: forbidden
    when: body.kind == "forbidden"
    actions: [forbidden]
`

// A destination that answers 401 gets the request once more, at once,
// with a new OAuth2 token: "revoked" accepts the second token, and its
// delivery succeeds at the first attempt; "forbidden" refuses every
// token, and its attempt fails after exactly two requests and is retried
// on the schedule.
func TestOAuth2UnauthorizedIsSentAgainOnce(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) {
		storeURL := b.url(t)
		api := newOAuthAPI(t, func(action, token string) bool {
			return action == "forbidden" || token == "revoked-1"
		})
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "hookrelay.yaml"), oauthConfig)
		writeFile(t, filepath.Join(dir, "rules.yaml"), oauthRules)
		srv := start(t, serverOpts{store: storeURL, api: api.URL, retry: "1h", config: filepath.Join(dir, "hookrelay.yaml"),
			extra: []string{"OAUTH_CLIENT_SECRET=" + oauthClientSecret}})
		st := openTestStore(t, storeURL)
		post := func(body string) string {
			t.Helper()
			status, out := srv.post(t, http.MethodPost, "/hooks/catch/h/h-url-token-5e6f7a8b9c", []byte(body), nil)
			if status != http.StatusAccepted {
				t.Fatalf("%d %v", status, out)
			}
			return out["id"].(string)
		}

		d := waitDelivery(t, st, post(`{"kind":"revoked","id":"r1"}`), store.DeliverySucceeded)
		tokens, reqs := api.seen("revoked")
		if d.Attempts != 1 || tokens != 2 || strings.Join(reqs, "|") != "Bearer revoked-1|Bearer revoked-2" {
			t.Errorf("revoked: %d attempts, %d token requests, requests %q; want 1, 2 and the first token then the second", d.Attempts, tokens, reqs)
		}
		if as := attemptsOf(t, st, d.ID); len(as) != 1 || as[0].StatusCode != 200 || as[0].Error != "" {
			t.Errorf("revoked attempts = %+v, want one that got 200", as)
		}

		d = waitDelivery(t, st, post(`{"kind":"forbidden","id":"f1"}`), store.DeliveryRetrying)
		want := "status 401, with a newly fetched OAuth2 token too"
		tokens, reqs = api.seen("forbidden")
		if d.Attempts != 1 || d.LastError != want || tokens != 2 || strings.Join(reqs, "|") != "Bearer forbidden-1|Bearer forbidden-2" {
			t.Errorf("forbidden: %d attempts, last error %q, %d token requests, requests %q; want 1, %q, 2 and two requests",
				d.Attempts, d.LastError, tokens, reqs, want)
		}
		if as := attemptsOf(t, st, d.ID); len(as) != 1 || as[0].StatusCode != 401 || as[0].Error != want {
			t.Errorf("forbidden attempts = %+v", as)
		}
		if strings.Contains(srv.output(), "forbidden-2") || strings.Contains(srv.output(), "revoked-1") {
			t.Error("an access token shows in the log")
		}
	})
}

// TestDryRunSaysTokenExpired: hookrelay test says that a request whose
// bearer token has expired would not be sent, as an attempt would find,
// and shows it as usual when the token is still good.
func TestDryRunSaysTokenExpired(t *testing.T) {
	cfg := relayConfig(t, `
  - name: all
    when: "true"
    actions: [callback]
`, `
  callback:
    url: https://api.example.com/users
    method: PATCH
    auth:
      bearer: "{{ body.UserToken }}"
`)
	dir := t.TempDir()
	expired, good := filepath.Join(dir, "expired.json"), filepath.Join(dir, "good.json")
	exp := time.Now().Add(-time.Hour).UTC()
	writeFile(t, expired, `{"UserToken":"`+expiringJWT(exp)+`"}`)
	writeFile(t, good, `{"UserToken":"`+expiringJWT(time.Now().Add(time.Hour))+`"}`)
	code, out, errOut := run(t, nil, "test", "--config", cfg, "--hook", "in", "--payload", expired)
	want := "would not be sent, the delivery would be dead: token expired at " + exp.Truncate(time.Second).Format(time.RFC3339)
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("test with an expired token: exit %d, want %q in stdout:\n%s\nstderr: %s", code, want, out, errOut)
	}
	code, out, errOut = run(t, nil, "test", "--config", cfg, "--hook", "in", "--payload", good)
	if code != 0 || strings.Contains(out, "would not be sent") || !strings.Contains(out, "PATCH https://api.example.com/users") {
		t.Errorf("test with a good token: exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
}
