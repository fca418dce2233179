package actions

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// tokenEndpoint is a local OAuth2 token endpoint for the client credentials
// grant. Each token it issues is numbered.
type tokenEndpoint struct {
	*receiver
	mu        sync.Mutex
	issued    int
	expiresIn int
	failAfter int // when > 0, requests after this many tokens answer 503
	forms     []map[string]string
}

func newTokenEndpoint(t *testing.T, expiresIn int) *tokenEndpoint {
	te := &tokenEndpoint{expiresIn: expiresIn}
	te.receiver = newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if id != "hookrelay" || secret != clientSecret || r.PostForm.Get("grant_type") != "client_credentials" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		te.mu.Lock()
		if te.failAfter > 0 && te.issued >= te.failAfter {
			te.mu.Unlock()
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		te.issued++
		n := te.issued
		form := map[string]string{}
		for k := range r.PostForm {
			form[k] = r.PostForm.Get(k)
		}
		te.forms = append(te.forms, form)
		te.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"access-%d","token_type":"Bearer","expires_in":%d}`, n, te.expiresIn)
	})
	return te
}

func (te *tokenEndpoint) count() int {
	te.mu.Lock()
	defer te.mu.Unlock()
	return te.issued
}

func oauthSpec(base, tokenURL string) Spec {
	return Spec{URL: base + "/v1/contacts", Auth: &AuthSpec{OAuth2: &OAuth2Spec{
		TokenURL:       tokenURL,
		ClientID:       "hookrelay",
		ClientSecret:   clientSecret,
		Scopes:         []string{"contacts.write", "orders.read"},
		EndpointParams: map[string]string{"audience": "https://api.example.com"},
	}}}
}

func TestOAuth2TokenIsFetchedOnceAndCached(t *testing.T) {
	tokens := newTokenEndpoint(t, 3600)
	rc := newReceiver(t, nil)
	c := newTestClient()
	a := mustCompile(t, oauthSpec(rc.URL, tokens.URL+"/oauth/token"))
	do := func() Result {
		t.Helper()
		res := c.Do(context.Background(), a, env(t, `{}`), "dlv_1")
		if res.Err != nil {
			t.Fatalf("Do: %v", res.Err)
		}
		if res.RequestHeaders["Authorization"] != "[redacted]" {
			t.Errorf("result Authorization = %q", res.RequestHeaders["Authorization"])
		}
		return res
	}

	do()
	do()
	if n := tokens.count(); n != 1 {
		t.Fatalf("token endpoint called %d times for two deliveries, want 1", n)
	}
	c.ClearTokens()
	do()
	if n := tokens.count(); n != 2 {
		t.Fatalf("token endpoint called %d times after ClearTokens, want 2", n)
	}

	var auths []string
	for _, h := range rc.Hits() {
		auths = append(auths, h.Header.Get("Authorization"))
	}
	if want := []string{"Bearer access-1", "Bearer access-1", "Bearer access-2"}; strings.Join(auths, "|") != strings.Join(want, "|") {
		t.Errorf("receiver saw %q, want %q", auths, want)
	}
	form := tokens.forms[0]
	if form["scope"] != "contacts.write orders.read" || form["audience"] != "https://api.example.com" || form["grant_type"] != "client_credentials" {
		t.Errorf("token request form = %v", form)
	}
}

func TestOAuth2TokensAreCachedPerAction(t *testing.T) {
	tokens := newTokenEndpoint(t, 3600)
	rc := newReceiver(t, nil)
	c := newTestClient()
	a := mustCompile(t, oauthSpec(rc.URL, tokens.URL))
	b := mustCompile(t, oauthSpec(rc.URL, tokens.URL))
	for _, act := range []*Action{a, b, a, b} {
		if res := c.Do(context.Background(), act, env(t, `{}`), "k"); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if n := tokens.count(); n != 2 {
		t.Errorf("token endpoint called %d times for two actions, want 2", n)
	}
}

func TestOAuth2ConcurrentDeliveriesShareOneFetch(t *testing.T) {
	tokens := newTokenEndpoint(t, 3600)
	rc := newReceiver(t, nil)
	c := newTestClient()
	a := mustCompile(t, oauthSpec(rc.URL, tokens.URL))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if res := c.Do(context.Background(), a, env(t, `{}`), "k"); res.Err != nil {
				t.Error(res.Err)
			}
		})
	}
	wg.Wait()
	if n := tokens.count(); n != 1 {
		t.Errorf("token endpoint called %d times, want 1", n)
	}
}

func TestOAuth2ExpiringTokenIsFetchedAgain(t *testing.T) {
	// A token valid for one second is already inside oauth2's early-expiry
	// margin, so each delivery needs a new one.
	tokens := newTokenEndpoint(t, 1)
	rc := newReceiver(t, nil)
	c := newTestClient()
	a := mustCompile(t, oauthSpec(rc.URL, tokens.URL))
	for range 2 {
		if res := c.Do(context.Background(), a, env(t, `{}`), "k"); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if n := tokens.count(); n != 2 {
		t.Errorf("token endpoint called %d times, want 2", n)
	}
}

// unauthorizedFor answers 401 to requests carrying one of the access
// tokens named, and 200 with the token's number to any other.
func unauthorizedFor(refused ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		for _, bad := range refused {
			if tok == bad {
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintf(w, `{"error":"token %s refused"}`, strings.TrimPrefix(tok, "access-"))
				return
			}
		}
		fmt.Fprintf(w, `{"ok":"token %s"}`, strings.TrimPrefix(tok, "access-"))
	}
}

func (rc *receiver) authorizations() string {
	var auths []string
	for _, h := range rc.Hits() {
		auths = append(auths, h.Header.Get("Authorization"))
	}
	return strings.Join(auths, "|")
}

// A 401 drops the cached token and sends the request once more, at once,
// with a new one: one attempt, and its result is the second answer.
func TestOAuth2UnauthorizedIsSentAgainWithANewToken(t *testing.T) {
	tokens := newTokenEndpoint(t, 3600)
	rc := newReceiver(t, unauthorizedFor("access-1"))
	c := newTestClient()
	a := mustCompile(t, oauthSpec(rc.URL, tokens.URL))
	res := c.Do(context.Background(), a, env(t, `{"id":1}`), "dlv_1")
	if res.Err != nil || res.StatusCode != 200 {
		t.Fatalf("Do: %d %v, want 200 from the second request", res.StatusCode, res.Err)
	}
	if res.ResponseBody != `{"ok":"token 2"}` || res.Trace == nil {
		t.Errorf("result body %q, trace %v: want the second answer's", res.ResponseBody, res.Trace)
	}
	if n := tokens.count(); n != 2 {
		t.Errorf("token endpoint called %d times, want 2", n)
	}
	if got, want := rc.authorizations(), "Bearer access-1|Bearer access-2"; got != want {
		t.Errorf("receiver saw %q, want %q", got, want)
	}
	hits := rc.Hits()
	if hits[0].Body != hits[1].Body || hits[1].Header.Get("Idempotency-Key") != "dlv_1" {
		t.Errorf("the second request differs: %+v vs %+v", hits[0], hits[1])
	}
	if strings.Contains(resultText(res), "access-") {
		t.Errorf("an access token shows in the result: %s", resultText(res))
	}

	// The new token is the cached one now.
	if res := c.Do(context.Background(), a, env(t, `{}`), "dlv_2"); res.Err != nil {
		t.Fatal(res.Err)
	}
	if n, hits := tokens.count(), len(rc.Hits()); n != 2 || hits != 3 {
		t.Errorf("after a later delivery: %d token requests, %d receiver requests; want 2 and 3", n, hits)
	}
}

// A 401 to the new token too fails the attempt, retryable, after exactly
// two requests: the request is sent again once, never in a loop.
func TestOAuth2UnauthorizedTwiceFailsTheAttempt(t *testing.T) {
	tokens := newTokenEndpoint(t, 3600)
	rc := newReceiver(t, unauthorizedFor("access-1", "access-2", "access-3", "access-4"))
	c := newTestClient()
	a := mustCompile(t, oauthSpec(rc.URL, tokens.URL))
	res := c.Do(context.Background(), a, env(t, `{}`), "k")
	if res.StatusCode != 401 || res.Err == nil || errors.Is(res.Err, ErrPermanent) {
		t.Fatalf("Do: %d %v, want a retryable 401", res.StatusCode, res.Err)
	}
	if want := "status 401, with a newly fetched OAuth2 token too"; res.Err.Error() != want {
		t.Errorf("Err = %q, want %q", res.Err, want)
	}
	if res.ResponseBody != `{"error":"token 2 refused"}` {
		t.Errorf("result body %q, want the second answer's", res.ResponseBody)
	}
	if n, hits := tokens.count(), len(rc.Hits()); n != 2 || hits != 2 {
		t.Fatalf("%d token requests, %d receiver requests; want 2 and 2", n, hits)
	}
	// The next attempt starts from the token fetched last, and again sends
	// at most twice.
	if res := c.Do(context.Background(), a, env(t, `{}`), "k"); res.StatusCode != 401 {
		t.Fatalf("second attempt: %d %v", res.StatusCode, res.Err)
	}
	if got, want := rc.authorizations(), "Bearer access-1|Bearer access-2|Bearer access-2|Bearer access-3"; got != want {
		t.Errorf("receiver saw %q, want %q", got, want)
	}
}

// Without OAuth2 a 401 is an answer like any other: one request.
func TestBearerUnauthorizedIsNotSentAgain(t *testing.T) {
	rc := newReceiver(t, answer(http.StatusUnauthorized, nil))
	a := mustCompile(t, Spec{URL: rc.URL + "/x", Auth: &AuthSpec{Bearer: "static-token-0123"}})
	res := newTestClient().Do(context.Background(), a, env(t, `{}`), "k")
	if res.StatusCode != 401 || res.Err == nil || res.Err.Error() != "status 401" || len(rc.Hits()) != 1 {
		t.Errorf("%d %v after %d requests; want one 401", res.StatusCode, res.Err, len(rc.Hits()))
	}
}

// When no new token can be had after a 401, the attempt records the 401
// and why no second request was sent.
func TestOAuth2UnauthorizedThenTokenEndpointFails(t *testing.T) {
	tokens := newTokenEndpoint(t, 3600)
	tokens.failAfter = 1
	rc := newReceiver(t, unauthorizedFor("access-1"))
	res := newTestClient().Do(context.Background(), mustCompile(t, oauthSpec(rc.URL, tokens.URL)), env(t, `{}`), "k")
	if res.StatusCode != 401 || res.Err == nil || errors.Is(res.Err, ErrPermanent) {
		t.Fatalf("Do: %d %v, want a retryable 401", res.StatusCode, res.Err)
	}
	if want := "status 401; a new oauth2 token: the token endpoint answered 503 Service Unavailable"; res.Err.Error() != want {
		t.Errorf("Err = %q, want %q", res.Err, want)
	}
	if res.ResponseBody != `{"error":"token 1 refused"}` || len(rc.Hits()) != 1 {
		t.Errorf("body %q after %d requests, want the one 401", res.ResponseBody, len(rc.Hits()))
	}
}

func TestOAuth2TokenFailureIsRetryable(t *testing.T) {
	tokens := newTokenEndpoint(t, 3600)
	rc := newReceiver(t, nil)
	spec := oauthSpec(rc.URL, tokens.URL)
	spec.Auth.OAuth2.ClientSecret = "wrong-secret"
	res := newTestClient().Do(context.Background(), mustCompile(t, spec), env(t, `{}`), "k")
	if res.Err == nil || errors.Is(res.Err, ErrPermanent) {
		t.Fatalf("Err = %v, want a retryable error", res.Err)
	}
	if want := "oauth2 token: the token endpoint answered 401 Unauthorized (invalid_client)"; res.Err.Error() != want {
		t.Errorf("Err = %q, want %q", res.Err, want)
	}
	if n := len(rc.Hits()); n != 0 {
		t.Errorf("receiver got %d requests without a token", n)
	}
}
