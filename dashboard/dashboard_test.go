package dashboard

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/gateway/admin"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
	"github.com/hookrelay/hookrelay/store/storetest"
)

// testDashboard serves the dashboard over the real admin API on a real
// SQLite store, and returns it with the store and a key per scope set.
type testDashboard struct {
	*httptest.Server
	st   *sqlitestore.Store
	path string            // the store's file
	keys map[string]string // secret by name
	ids  map[string]string // key id by name
}

func newTestDashboard(t *testing.T) *testDashboard {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dashboard.db")
	st, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api := admin.New(admin.Options{Store: st, Config: func() *config.Config { return &config.Config{} }, Ingress: http.NotFoundHandler()})
	td := &testDashboard{st: st, path: path, keys: map[string]string{}, ids: map[string]string{}}
	for name, scopes := range map[string][]string{"full": admin.AllScopes, "reader": {admin.ScopeRead}, "hooks": {admin.ScopeWebhooks}} {
		k, secret, err := admin.NewKey(name, scopes, time.Now().UTC())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		td.keys[name], td.ids[name] = secret, k.ID
	}
	td.Server = httptest.NewServer(New(Options{API: api.Handler()}).Handler())
	t.Cleanup(td.Close)
	return td
}

type answer struct {
	status int
	header http.Header
	body   string
}

// do sends one request as a browser would, without following redirects;
// header values are set as given.
func (td *testDashboard) do(t *testing.T, method, path string, form url.Values, header ...string) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, td.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in with the named key and returns the session cookie and
// the session's CSRF token.
func (td *testDashboard) signIn(t *testing.T, name string) (cookie, csrf string) {
	t.Helper()
	a := td.do(t, http.MethodPost, "/ui/signin", url.Values{"key": {td.keys[name]}}, "Sec-Fetch-Site", "same-origin")
	if a.status != http.StatusSeeOther {
		t.Fatalf("sign in with %s: %d %s", name, a.status, a.body)
	}
	c := (&http.Response{Header: a.header}).Cookies()
	if len(c) != 1 || c[0].Name != cookieName {
		t.Fatalf("sign in set cookies %v", a.header["Set-Cookie"])
	}
	cookie = c[0].Name + "=" + c[0].Value
	page := td.do(t, http.MethodGet, "/ui/hooks", nil, "Cookie", cookie)
	m := csrfRE.FindStringSubmatch(page.body)
	if page.status != http.StatusOK || m == nil {
		t.Fatalf("GET /ui/hooks signed in: %d, no CSRF token:\n%s", page.status, page.body)
	}
	return cookie, m[1]
}

func TestSignIn(t *testing.T) {
	td := newTestDashboard(t)
	if a := td.do(t, http.MethodGet, "/ui/", nil); a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/signin" {
		t.Errorf("GET /ui/ signed out: %d to %q, want 303 to /ui/signin", a.status, a.header.Get("Location"))
	}
	for _, bad := range []string{"", "hr_0000", "nonsense", td.keys["full"] + "x"} {
		a := td.do(t, http.MethodPost, "/ui/signin", url.Values{"key": {bad}})
		if a.status != http.StatusUnauthorized || !strings.Contains(a.body, "not valid") || len(a.header["Set-Cookie"]) != 0 {
			t.Errorf("sign in with %q: %d %v, want 401 without a cookie", bad, a.status, a.header["Set-Cookie"])
		}
	}
	a := td.do(t, http.MethodPost, "/ui/signin", url.Values{"key": {td.keys["full"]}})
	cs := (&http.Response{Header: a.header}).Cookies()
	if a.status != http.StatusSeeOther || len(cs) != 1 {
		t.Fatalf("sign in: %d %v", a.status, a.header["Set-Cookie"])
	}
	c := cs[0]
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" {
		t.Errorf("session cookie %q: want Secure, HttpOnly, SameSite=Strict, Path=/ui/", a.header.Get("Set-Cookie"))
	}
	secret := td.keys["full"]
	for _, part := range []string{secret, secret[3:13], admin.HashSecret(secret)[:16]} {
		if strings.Contains(c.Value, part) {
			t.Errorf("the session cookie %q carries the key", c.Value)
		}
	}
	page := td.do(t, http.MethodGet, "/ui/", nil, "Cookie", c.Name+"="+c.Value)
	if page.status != http.StatusOK || !strings.Contains(page.body, `id="events"`) || !strings.Contains(page.body, "full · read, write, webhooks") {
		t.Errorf("the activity log signed in: %d\n%s", page.status, page.body)
	}
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	// A browser that did not keep the cookie is told why.
	if a := td.do(t, http.MethodGet, "/ui/?signed-in=1", nil); a.header.Get("Location") != "/ui/signin?again=1" {
		t.Errorf("signed-in redirect without the cookie goes to %q", a.header.Get("Location"))
	}
	if a := td.do(t, http.MethodGet, "/ui/signin?again=1", nil); !strings.Contains(a.body, "did not keep the session cookie") {
		t.Errorf("sign-in page after a lost cookie does not say why:\n%s", a.body)
	}
}

// Every change needs the session, its CSRF token and a same-origin
// request; each missing part alone is refused before the API is asked.
func TestChangesNeedTokenAndOrigin(t *testing.T) {
	td := newTestDashboard(t)
	cookie, csrf := td.signIn(t, "full")
	other, _ := td.signIn(t, "full")
	cases := []struct {
		name   string
		form   url.Values
		header []string
		want   int
		says   string
	}{
		{"no session", url.Values{"csrf": {csrf}}, []string{"Sec-Fetch-Site", "same-origin"}, http.StatusForbidden, "not signed in"},
		{"no token", url.Values{}, []string{"Cookie", cookie, "Sec-Fetch-Site", "same-origin"}, http.StatusForbidden, "did not come from this dashboard"},
		{"wrong token", url.Values{"csrf": {csrf + "x"}}, []string{"Cookie", cookie}, http.StatusForbidden, "did not come from this dashboard"},
		{"another session's token", url.Values{"csrf": {csrf}}, []string{"Cookie", other}, http.StatusForbidden, "did not come from this dashboard"},
		{"cross-site", url.Values{"csrf": {csrf}}, []string{"Cookie", cookie, "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden, "cross-origin"},
		{"same-site other origin", url.Values{"csrf": {csrf}}, []string{"Cookie", cookie, "Sec-Fetch-Site", "same-site"}, http.StatusForbidden, "cross-origin"},
		{"foreign Origin", url.Values{"csrf": {csrf}}, []string{"Cookie", cookie, "Origin", "http://attacker.example"}, http.StatusForbidden, "cross-origin"},
		{"same origin with token", url.Values{"csrf": {csrf}}, []string{"Cookie", cookie, "Sec-Fetch-Site", "same-origin"}, http.StatusSeeOther, ""},
	}
	for _, c := range cases {
		a := td.do(t, http.MethodPost, "/ui/dead/retry", c.form, c.header...)
		if a.status != c.want || !strings.Contains(a.body, c.says) {
			t.Errorf("%s: %d, want %d saying %q:\n%s", c.name, a.status, c.want, c.says, a.body)
		}
	}
}

// The API decides what a key may do: a key without the scope is refused
// with the API's own answer, whatever the form.
func TestScopesAreTheAPIs(t *testing.T) {
	td := newTestDashboard(t)
	cookie, csrf := td.signIn(t, "reader")
	a := td.do(t, http.MethodPost, "/ui/dead/retry", url.Values{"csrf": {csrf}}, "Cookie", cookie)
	if a.status != http.StatusForbidden || !strings.Contains(a.body, "lacks the write scope") {
		t.Errorf("bulk retry with a read key: %d\n%s", a.status, a.body)
	}
	hooks, _ := td.signIn(t, "hooks")
	if a := td.do(t, http.MethodGet, "/ui/", nil, "Cookie", hooks); a.status != http.StatusForbidden || !strings.Contains(a.body, "lacks the read scope") {
		t.Errorf("the activity log with a webhooks key: %d\n%s", a.status, a.body)
	}
	if a := td.do(t, http.MethodGet, "/ui/rows", nil, "Cookie", hooks); a.status != http.StatusForbidden {
		t.Errorf("the activity rows with a webhooks key: %d\n%s", a.status, a.body)
	}
}

// Every page renders for a full key, and an unknown id shows the API's 404.
func TestPagesRender(t *testing.T) {
	td := newTestDashboard(t)
	cookie, _ := td.signIn(t, "full")
	for path, want := range map[string]int{
		"/ui/": 200, "/ui/rows": 200, "/ui/dead": 200, "/ui/actions": 200, "/ui/hooks": 200,
		"/ui/?status=ignored&since=2026-11-23T09:00&hook=x": 200,
		"/ui/?since=yesterday":                              400,
		"/ui/?cursor=bogus":                                 400,
		"/ui/events/evt_nope":                               404,
		"/ui/deliveries/dlv_nope":                           404,
		"/ui/nowhere":                                       404,
		"/ui/static/style.css":                              200,
		"/ui/static/app.js":                                 200,
	} {
		if a := td.do(t, http.MethodGet, path, nil, "Cookie", cookie); a.status != want {
			t.Errorf("GET %s: %d, want %d\n%s", path, a.status, want, a.body)
		}
	}
}

// A revoked key's session ends at its next page.
func TestRevokedKeyEndsTheSession(t *testing.T) {
	td := newTestDashboard(t)
	cookie, _ := td.signIn(t, "full")
	if err := td.st.RevokeKey(context.Background(), td.ids["full"], time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	a := td.do(t, http.MethodGet, "/ui/", nil, "Cookie", cookie)
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/signin" {
		t.Fatalf("GET /ui/ after revoking the key: %d to %q", a.status, a.header.Get("Location"))
	}
	if a := td.do(t, http.MethodGet, "/ui/rows", nil, "Cookie", cookie); a.status != http.StatusUnauthorized {
		t.Errorf("GET /ui/rows after revoking: %d, want 401 for the page's script", a.status)
	}
}

func TestSignOut(t *testing.T) {
	td := newTestDashboard(t)
	cookie, csrf := td.signIn(t, "full")
	a := td.do(t, http.MethodPost, "/ui/signout", url.Values{"csrf": {csrf}}, "Cookie", cookie)
	if a.status != http.StatusSeeOther || !strings.Contains(a.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("sign out: %d %q", a.status, a.header.Get("Set-Cookie"))
	}
	if a := td.do(t, http.MethodGet, "/ui/", nil, "Cookie", cookie); a.status != http.StatusSeeOther {
		t.Errorf("the old cookie after sign-out: %d, want 303 to sign in", a.status)
	}
}

// An event sealed with a key the process lacks is listed in the activity
// log with why its payload is not shown, beside the others, and its page
// says which key it needs.
func TestUnreadableEventListed(t *testing.T) {
	td := newTestDashboard(t)
	ctx := context.Background()
	sealed, err := sqlitestore.Open(ctx, td.path, sqlitestore.WithKeys(storetest.KeyRing(t, "k1")))
	if err != nil {
		t.Fatal(err)
	}
	accept := func(s store.Store, key string) string {
		now := time.Now()
		e := store.Event{ID: store.NewEventID("h", key, now), Hook: "h", ReceivedAt: now, IdempotencyKey: key,
			Headers: map[string]string{"content-type": "application/json"}, Body: []byte(`{"n":1}`)}
		if _, err := s.Accept(ctx, store.Accept{Event: e, KeyTTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		return e.ID
	}
	unreadable := accept(sealed, "a")
	sealed.Close()
	readable := accept(td.st, "b")

	cookie, _ := td.signIn(t, "reader")
	a := td.do(t, http.MethodGet, "/ui/", nil, "Cookie", cookie)
	if a.status != http.StatusOK || !strings.Contains(a.body, readable) || !strings.Contains(a.body, unreadable) {
		t.Fatalf("GET /ui/: %d, want both events listed:\n%s", a.status, a.body)
	}
	if !strings.Contains(a.body, `<small class="error">event `+unreadable+` headers: sealed with key k1, and no keys are given</small>`) {
		t.Errorf("the activity log does not say why %s is shown without its payload:\n%s", unreadable, a.body)
	}
	a = td.do(t, http.MethodGet, "/ui/events/"+unreadable, nil, "Cookie", cookie)
	if a.status != http.StatusInternalServerError || !strings.Contains(a.body, "sealed with key k1") {
		t.Errorf("GET the unreadable event's page: %d, want 500 naming k1:\n%s", a.status, a.body)
	}
}

func TestPrettyJSON(t *testing.T) {
	for raw, want := range map[string]string{
		`{"z":1,"a":{"y":[1,2],"b":"x"}}`: "{\n  \"z\": 1,\n  \"a\": {\n    \"y\": [\n      1,\n      2\n    ],\n    \"b\": \"x\"\n  }\n}",
		`"a=1&token=[redacted]"`:          "a=1&token=[redacted]", // a form or text body, as the API shows it
		`null`:                            "",
		``:                                "",
	} {
		if got := prettyJSON([]byte(raw)); got != want {
			t.Errorf("prettyJSON(%s) = %q, want %q", raw, got, want)
		}
	}
}
