package admin

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

// testAPI serves the admin API over a real SQLite store and returns it with
// one key per scope (by scope name) and a revoked key under "revoked".
func testAPI(t *testing.T) (*httptest.Server, *gin.Engine, map[string]string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "admin.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api := New(Options{Store: st, Config: func() *config.Config { return &config.Config{} }, Ingress: http.NotFoundHandler()})
	engine := api.Handler().(*gin.Engine)
	srv := httptest.NewServer(engine)
	t.Cleanup(srv.Close)

	now := time.Now().UTC()
	secrets := map[string]string{}
	for _, scope := range append(slices.Clone(AllScopes), "revoked") {
		scopes := []string{scope}
		if scope == "revoked" {
			scopes = AllScopes
		}
		k, secret, err := NewKey(scope, scopes, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if scope == "revoked" {
			if err := st.RevokeKey(ctx, k.ID, now); err != nil {
				t.Fatal(err)
			}
		}
		secrets[scope] = secret
	}
	return srv, engine, secrets
}

// TestEveryRouteDeclaresItsScope walks every route of the router the
// server mounts: each must be in routes with the scopes that open it, and
// must really refuse a request without a key and a key with none of them.
// A route added outside routes, or with a check of its own, fails here.
func TestEveryRouteDeclaresItsScope(t *testing.T) {
	srv, engine, secrets := testAPI(t)
	served := engine.Routes()
	if len(served) != len(routes) {
		t.Errorf("the router serves %d routes, the scope table declares %d", len(served), len(routes))
	}
	for _, ri := range served {
		i := slices.IndexFunc(routes, func(r route) bool { return r.method == ri.Method && "/api/v1"+r.path == ri.Path })
		if i < 0 {
			t.Errorf("%s %s is served but declares no scope: add it to routes", ri.Method, ri.Path)
			continue
		}
		declared := routes[i].scopes
		if len(declared) == 0 {
			t.Errorf("%s %s declares no scope", ri.Method, ri.Path)
			continue
		}
		path := strings.NewReplacer(":id", "key_nope", ":name", "nope").Replace(ri.Path)
		call := func(key string) (int, string) {
			req, err := http.NewRequest(ri.Method, srv.URL+path, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		for _, key := range []string{"", "hr_0000", secrets["revoked"]} {
			if status, body := call(key); status != http.StatusUnauthorized {
				t.Errorf("%s %s with key %.8q: %d %s, want 401", ri.Method, ri.Path, key, status, body)
			}
		}
		for _, scope := range AllScopes {
			status, body := call(secrets[scope])
			switch opens := slices.Contains(declared, scope); {
			case opens && (status == http.StatusUnauthorized || status == http.StatusForbidden):
				t.Errorf("%s %s with a %s key: %d %s, want it let through", ri.Method, ri.Path, scope, status, body)
			case !opens && (status != http.StatusForbidden || !strings.Contains(body, "lacks the")):
				t.Errorf("%s %s with a %s key: %d %s, want 403 lacks the … scope", ri.Method, ri.Path, scope, status, body)
			}
		}
	}
}

func TestAuthRefusesARouteWithoutScopes(t *testing.T) {
	for _, scopes := range [][]string{nil, {"admin"}, {ScopeRead, ""}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("auth(%q) did not refuse", scopes)
				}
			}()
			(&API{}).auth(scopes...)
		}()
	}
}

func TestWithin(t *testing.T) {
	key := func(scopes ...string) store.APIKey { return store.APIKey{Scopes: scopes} }
	cases := []struct {
		caller store.APIKey
		grant  []string
		ok     bool
	}{
		{key(ScopeRead, ScopeWrite, ScopeWebhooks), AllScopes, true},
		{key(ScopeRead, ScopeWrite), []string{ScopeRead, ScopeWrite}, true},
		{key(ScopeRead, ScopeWrite), []string{ScopeWrite}, true},
		{key(ScopeRead, ScopeWrite), AllScopes, false},
		{key(ScopeWrite), []string{ScopeRead}, false},
		{key(ScopeWrite), []string{ScopeWrite, ScopeWrite, ScopeWrite}, true},
		{key(ScopeWebhooks), []string{ScopeWrite}, false},
		{key(), []string{ScopeRead}, false},
		{key("root"), []string{"root", ScopeRead}, false},
	}
	for _, c := range cases {
		err := within(c.caller, c.grant)
		if (err == nil) != c.ok {
			t.Errorf("within(%v, %v) = %v, want ok %t", c.caller.Scopes, c.grant, err, c.ok)
		}
	}
}

func TestAllows(t *testing.T) {
	cases := []struct {
		scopes          []string
		method, pattern string
		want            bool
	}{
		{[]string{ScopeRead}, http.MethodGet, "/events", true},
		{[]string{ScopeRead}, http.MethodPost, "/deliveries/:id/retry", false},
		{[]string{ScopeRead, ScopeWrite}, http.MethodPost, "/deliveries/:id/retry", true},
		{[]string{ScopeWebhooks}, http.MethodPost, "/hooks/:id/test", true},
		{[]string{ScopeWebhooks}, http.MethodPost, "/events/:id/replay", false},
		{AllScopes, http.MethodPost, "/no/such/route", false},
		{AllScopes, http.MethodGet, "/deliveries/:id/retry", false},
		{nil, http.MethodGet, "/key", false},
	}
	for _, c := range cases {
		if got := Allows(c.scopes, c.method, c.pattern); got != c.want {
			t.Errorf("Allows(%v, %s, %s) = %t, want %t", c.scopes, c.method, c.pattern, got, c.want)
		}
	}
}

// A query string that does not parse is refused, not read as none.
func TestMalformedQuery(t *testing.T) {
	srv, _, secrets := testAPI(t)
	for _, c := range []struct{ query, want string }{
		{"cursor=%%%", `{"error":"query: invalid URL escape \"%%%\""}`},
		{"hook=a;status=dead", `{"error":"query: invalid semicolon separator in query"}`},
	} {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/events?"+c.query, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+secrets["read"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.TrimSpace(string(body)) != c.want {
			t.Errorf("?%s: %d %s; want 400 %s", c.query, resp.StatusCode, body, c.want)
		}
	}
}
