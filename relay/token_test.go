package relay_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/store"
)

// jwt builds a token whose claims hold exp; its signature is not a real
// one, as hookrelay never checks it.
func jwt(exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." +
		enc([]byte(fmt.Sprintf(`{"usr":"webhook-elevated","exp":%d}`, exp.Unix()))) + "." + enc([]byte("sig"))
}

// bearerAction is an action "user" that sends the payload's UserToken,
// with the retry schedule given.
func bearerAction(url, retry string) string {
	return "  user:\n    method: PATCH\n    url: " + url + "/users/{{ body.id }}\n" +
		"    auth:\n      bearer: \"{{ body.UserToken }}\"\n    retry: " + retry + "\n"
}

// counter is a receiver that counts requests and answers status.
func counter(t *testing.T, status int) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func attempts(t *testing.T, st store.Store, id string) []store.Attempt {
	t.Helper()
	as, err := st.Attempts(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// An expired token in the payload makes the delivery dead at its first
// attempt, with nothing sent, though attempts are left.
func TestRelayExpiredTokenIsDeadWithoutARequest(t *testing.T) {
	srv, calls := counter(t, http.StatusOK)
	st, r := setupWith(t, srv.URL, bearerAction(srv.URL, "[10ms, 10ms]"), relay.Options{})
	exp := time.Now().Add(-time.Hour)
	id := enqueueBody(t, st, "u1", "user", fmt.Sprintf(`{"id":"u1","UserToken":%q}`, jwt(exp)))
	run(t, r)

	d := waitStatus(t, st, id, store.DeliveryDead)
	want := "token expired at " + exp.UTC().Format(time.RFC3339)
	if d.Attempts != 1 || d.LastError != want {
		t.Errorf("delivery: %d attempts, last error %q; want 1 and %q", d.Attempts, d.LastError, want)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("receiver got %d requests, want 0", n)
	}
	as := attempts(t, st, id)
	if len(as) != 1 || as[0].Error != want || as[0].StatusCode != 0 || as[0].Trace != nil {
		t.Fatalf("attempts = %+v, want one, unsent, saying %q", as, want)
	}
	if as[0].Method != http.MethodPatch || as[0].URL != srv.URL+"/users/u1" || as[0].RequestHeaders["Authorization"] != "[redacted]" {
		t.Errorf("attempt = %+v", as[0])
	}
}

// A token that expires between two attempts: the first is sent and
// answered 500, the second is not sent and the delivery is dead. The relay
// and its client share one clock, which the test moves on an hour once
// the first attempt is recorded.
func TestRelayTokenExpiresBetweenRetries(t *testing.T) {
	srv, calls := counter(t, http.StatusInternalServerError)
	var mu sync.Mutex
	var ahead time.Duration
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(ahead)
	}
	st, r := setupWith(t, srv.URL, bearerAction(srv.URL, "[1m, 1m]"), relay.Options{Now: now, MaxWait: 20 * time.Millisecond})
	exp := time.Now().Add(30 * time.Minute)
	id := enqueueBody(t, st, "u1", "user", fmt.Sprintf(`{"id":"u1","UserToken":%q}`, jwt(exp)))
	run(t, r)

	d := waitStatus(t, st, id, store.DeliveryRetrying)
	if d.Attempts != 1 || calls.Load() != 1 || d.LastError != "status 500" {
		t.Fatalf("after the first attempt: %+v, %d requests", d, calls.Load())
	}
	mu.Lock()
	ahead = time.Hour
	mu.Unlock()

	d = waitStatus(t, st, id, store.DeliveryDead)
	want := "token expired at " + exp.UTC().Format(time.RFC3339)
	if d.Attempts != 2 || d.LastError != want {
		t.Errorf("delivery: %d attempts, last error %q; want 2 and %q", d.Attempts, d.LastError, want)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("receiver got %d requests, want 1 (the second attempt is not sent)", n)
	}
	as := attempts(t, st, id)
	if len(as) != 2 || as[0].StatusCode != 500 || as[1].StatusCode != 0 || as[1].Error != want {
		t.Errorf("attempts = %+v", as)
	}
}

// tokenServer is a local OAuth2 token endpoint numbering its tokens.
func tokenServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var issued atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		n := issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"access-%d","token_type":"Bearer","expires_in":3600}`, n)
	}))
	t.Cleanup(srv.Close)
	return srv, &issued
}

// refusing is a receiver that answers 401 to the access tokens named and
// 200 to others, and keeps the Authorization of each request.
func refusing(t *testing.T, refused ...string) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		mu.Lock()
		seen = append(seen, auth)
		mu.Unlock()
		for _, tok := range refused {
			if auth == "Bearer "+tok {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func oauthAction(url, tokenURL, retry string) string {
	return "  api:\n    url: " + url + "/api/{{ body.id }}\n" +
		"    auth:\n      oauth2: {token_url: " + tokenURL + ", client_id: hookrelay, client_secret: oauth-client-secret-1}\n" +
		"    retry: " + retry + "\n"
}

func TestRelayOAuth2UnauthorizedIsSentAgainWithANewToken(t *testing.T) {
	tokens, issued := tokenServer(t)
	srv, seen := refusing(t, "access-1")
	st, r := setupWith(t, srv.URL, oauthAction(srv.URL, tokens.URL, "[1h]"), relay.Options{})
	id := enqueue(t, st, "a1", "api")
	run(t, r)

	d := waitStatus(t, st, id, store.DeliverySucceeded)
	if d.Attempts != 1 {
		t.Errorf("delivery took %d attempts, want 1", d.Attempts)
	}
	if got := strings.Join(seen(), "|"); got != "Bearer access-1|Bearer access-2" {
		t.Errorf("receiver saw %q, want the first token, then the second", got)
	}
	if n := issued.Load(); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
	if as := attempts(t, st, id); len(as) != 1 || as[0].StatusCode != 200 || as[0].Error != "" {
		t.Errorf("attempts = %+v, want one that got 200", as)
	}
}

func TestRelayOAuth2UnauthorizedTwiceIsAFailedAttempt(t *testing.T) {
	tokens, issued := tokenServer(t)
	srv, seen := refusing(t, "access-1", "access-2")
	st, r := setupWith(t, srv.URL, oauthAction(srv.URL, tokens.URL, "[1h]"), relay.Options{})
	id := enqueue(t, st, "a1", "api")
	stop := run(t, r)

	d := waitStatus(t, st, id, store.DeliveryRetrying)
	stop()
	want := "status 401, with a newly fetched OAuth2 token too"
	if d.Attempts != 1 || d.LastError != want {
		t.Errorf("delivery: %d attempts, last error %q; want 1 and %q", d.Attempts, d.LastError, want)
	}
	if got := strings.Join(seen(), "|"); got != "Bearer access-1|Bearer access-2" {
		t.Errorf("receiver saw %q, want exactly two requests", got)
	}
	if n := issued.Load(); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
	if as := attempts(t, st, id); len(as) != 1 || as[0].StatusCode != 401 || as[0].Error != want {
		t.Errorf("attempts = %+v", as)
	}
}
