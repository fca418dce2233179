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

func TestOAuth2UnauthorizedDropsTheToken(t *testing.T) {
	tokens := newTokenEndpoint(t, 3600)
	first := true
	var mu sync.Mutex
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if first {
			first = false
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	c := newTestClient()
	a := mustCompile(t, oauthSpec(rc.URL, tokens.URL))
	res := c.Do(context.Background(), a, env(t, `{}`), "k")
	if res.StatusCode != 401 || res.Err == nil || errors.Is(res.Err, ErrPermanent) {
		t.Fatalf("first attempt: %d %v, want a retryable 401", res.StatusCode, res.Err)
	}
	if res = c.Do(context.Background(), a, env(t, `{}`), "k"); res.Err != nil {
		t.Fatal(res.Err)
	}
	if n := tokens.count(); n != 2 {
		t.Errorf("token endpoint called %d times, want 2 (a new token after the 401)", n)
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
