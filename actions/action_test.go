package actions

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/rules"
)

func TestCompileErrors(t *testing.T) {
	const base = "https://api.example.com"
	tests := []struct {
		name   string
		spec   Spec
		field  string
		offset int
		msg    string // substring of the error
	}{
		{name: "no url", spec: Spec{}, field: "url", msg: "required"},
		{name: "not http", spec: Spec{URL: "ftp://api.example.com/x"}, field: "url", msg: "http:// or https://"},
		{name: "relative", spec: Spec{URL: "/v1/x"}, field: "url", msg: "http:// or https://"},
		{name: "no host", spec: Spec{URL: "https:///x"}, field: "url", offset: 8, msg: "no valid host"},
		{name: "interpolated host", spec: Spec{URL: "https://{{ body.host }}/x"}, field: "url", offset: 8, msg: "scheme and host must be written out"},
		{name: "interpolated port", spec: Spec{URL: "https://api.example.com:{{ body.port }}/x"}, field: "url", offset: 24, msg: "scheme and host"},
		{name: "interpolation right after the host", spec: Spec{URL: base + "{{ body.path }}"}, field: "url", offset: 23, msg: "scheme and host"},
		{name: "credentials in the URL", spec: Spec{URL: "https://user:pw@api.example.com/x"}, field: "url", offset: 8, msg: "credentials"},
		{name: "bad path expression", spec: Spec{URL: base + "/orders/{{ body.id + }}"}, field: "url", offset: 42, msg: "unexpected token"},
		{name: "bad query expression", spec: Spec{URL: base + "/o?id={{ bdy.id }}"}, field: "url", offset: 32, msg: "at byte 32: unknown name bdy"},
		{name: "unclosed", spec: Spec{URL: base + "/o/{{ body.id"}, field: "url", offset: 26, msg: "unclosed"},
		{name: "bad method", spec: Spec{Method: "GE T", URL: base}, field: "method", msg: "not an HTTP method"},
		{name: "bad header name", spec: Spec{URL: base, Headers: map[string]string{"X Bad": "1"}}, field: "headers.X Bad", msg: "not a valid header name"},
		{name: "bad header template", spec: Spec{URL: base, Headers: map[string]string{"X-Id": "id {{ nope }}"}}, field: "headers.X-Id", offset: 6, msg: "unknown name nope"},
		{name: "literal header with LF", spec: Spec{URL: base, Headers: map[string]string{"X-Id": "a\nX-Evil: 1"}}, field: "headers.X-Id", msg: "CR or LF"},
		{name: "Host header", spec: Spec{URL: base, Headers: map[string]string{"host": "evil.example"}}, field: "headers.host", msg: "taken from the URL"},
		{name: "Host header, any case", spec: Spec{URL: base, Headers: map[string]string{"HOST": "evil.example"}}, field: "headers.HOST", msg: "taken from the URL"},
		{name: "Host header from the event", spec: Spec{URL: base, Headers: map[string]string{"Host": "{{ body.host }}"}}, field: "headers.Host", msg: "taken from the URL"},
		{name: "literal header with CR", spec: Spec{URL: base, Headers: map[string]string{"X-Id": "a\rb"}}, field: "headers.X-Id", msg: "CR or LF"},
		{name: "Idempotency-Key header", spec: Spec{URL: base, Headers: map[string]string{"Idempotency-Key": "x"}}, field: "headers.Idempotency-Key", msg: "delivery id"},
		{name: "header twice", spec: Spec{URL: base, Headers: map[string]string{"X-A": "1", "x-a": "2"}}, field: "headers.x-a", msg: "given twice"},
		{name: "Authorization and auth", spec: Spec{URL: base, Headers: map[string]string{"Authorization": "Basic x"}, Auth: &AuthSpec{Bearer: "tok"}}, field: "headers.Authorization", msg: "auth: section sets this header"},
		{name: "bad query parameter", spec: Spec{URL: base, Query: map[string]string{"k": "{{ body. }}"}}, field: "query.k", offset: 7, msg: "unexpected"},
		{name: "bad body leaf", spec: Spec{URL: base, Body: map[string]any{"data": map[string]any{"email": "{{ body.email ++ }}", "ok": "x"}}}, field: "body.data.email", offset: 15, msg: "unexpected token"},
		{name: "bad body list item", spec: Spec{URL: base, Body: map[string]any{"items": []any{"ok", "{{ 1 + }}"}}}, field: "body.items.1", offset: 5, msg: "unexpected"},
		{name: "body value that is not JSON", spec: Spec{URL: base, Body: map[string]any{"f": func() {}}}, field: "body.f", msg: "cannot be sent as JSON"},
		{name: "bad bearer", spec: Spec{URL: base, Auth: &AuthSpec{Bearer: "{{ body.UserToken"}}, field: "auth.bearer", msg: "unclosed"},
		{name: "bearer with a space", spec: Spec{URL: base, Auth: &AuthSpec{Bearer: "two words"}}, field: "auth.bearer", msg: "spaces"},
		{name: "bearer and oauth2", spec: Spec{URL: base, Auth: &AuthSpec{Bearer: "tok", OAuth2: &OAuth2Spec{TokenURL: base + "/token", ClientID: "id"}}}, field: "auth", msg: "not both"},
		{name: "oauth2 token URL", spec: Spec{URL: base, Auth: &AuthSpec{OAuth2: &OAuth2Spec{TokenURL: "/token", ClientID: "id"}}}, field: "auth.oauth2.token_url", msg: "absolute"},
		{name: "oauth2 client id", spec: Spec{URL: base, Auth: &AuthSpec{OAuth2: &OAuth2Spec{TokenURL: base + "/token"}}}, field: "auth.oauth2.client_id", msg: "required"},
		{name: "negative timeout", spec: Spec{URL: base, Timeout: -time.Second}, field: "timeout", msg: "positive"},
		{name: "negative retry", spec: Spec{URL: base, Retry: []time.Duration{time.Minute, -time.Second}}, field: "retry", msg: "wait 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile("notify", tt.spec)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error = %T %v, want *FieldError", err, err)
			}
			if fe.Field != tt.field || fe.Offset != tt.offset || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got %s@%d %q, want %s@%d containing %q", fe.Field, fe.Offset, err, tt.field, tt.offset, tt.msg)
			}
		})
	}
}

func TestCompileTemplateErrorIsKept(t *testing.T) {
	_, err := Compile("notify", Spec{URL: "https://api.example.com/x", Body: map[string]any{"order": "{{ body.id + }}"}})
	var te *rules.TemplateError
	var ee *rules.ExprError
	if !errors.As(err, &te) || !errors.As(err, &ee) {
		t.Fatalf("error %v does not carry the template and expression errors", err)
	}
}

func TestCompileDefaults(t *testing.T) {
	tests := []struct {
		name     string
		spec     Spec
		method   string
		timeout  time.Duration
		retry    []time.Duration
		attempts int
	}{
		{"defaults", Spec{URL: "https://api.example.com/x"}, "POST", 10 * time.Second, DefaultRetry, 7},
		{"lower-case method", Spec{Method: "patch", URL: "https://api.example.com/x"}, "PATCH", 10 * time.Second, DefaultRetry, 7},
		{"own schedule", Spec{Method: "PUT", URL: "https://api.example.com/x", Timeout: 5 * time.Second, Retry: []time.Duration{10 * time.Second, time.Minute}}, "PUT", 5 * time.Second, []time.Duration{10 * time.Second, time.Minute}, 3},
		{"empty schedule is one attempt", Spec{URL: "https://api.example.com/x", Retry: []time.Duration{}}, "POST", 10 * time.Second, []time.Duration{}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustCompile(t, tt.spec)
			if a.Name != "test" || a.Method != tt.method || a.Timeout != tt.timeout || a.MaxAttempts() != tt.attempts {
				t.Errorf("got %s %s %v %d attempts", a.Name, a.Method, a.Timeout, a.MaxAttempts())
			}
			if diff := cmp.Diff(tt.retry, a.Retry); diff != "" {
				t.Errorf("retry (-want +got)\n%s", diff)
			}
		})
	}
	if len(DefaultRetry) != 6 || DefaultRetry[0] != time.Minute || DefaultRetry[5] != 24*time.Hour {
		t.Errorf("DefaultRetry = %v", DefaultRetry)
	}
}

func TestRenderKeepsTheHost(t *testing.T) {
	a := mustCompile(t, Spec{URL: "https://api.example.com/users/{{ body.id }}/x?ref={{ body.id }}"})
	q := mustCompile(t, Spec{URL: "https://api.example.com/users/x?ref={{ body.id }}", Query: map[string]string{"p": "{{ body.id }}"}})
	for _, evil := range []string{
		"@evil.example", "../", "..", ".", "//evil.example", "http://evil.example/", `\\evil.example`, "%2F%2Fevil.example", "a#frag", "evil.example:443@x", " ",
		"\r\nHost: evil.example", "%0d%0aHost:%20evil.example", "\uff20evil.example", "evil.example\x00", "?x=1", "a/../../b", "[::1]", "127.0.0.1:80", "",
	} {
		t.Run(evil, func(t *testing.T) {
			ev := env(t, `{"id":`+quote(evil)+`}`)
			// In the path, a value either stays in its segment or is refused.
			req, err := a.Render(ev)
			if err != nil {
				if !errors.Is(err, ErrPermanent) {
					t.Fatalf("Render = %v, want a permanent error or a request", err)
				}
			} else {
				u := parseURL(t, req.URL)
				if !strings.HasPrefix(u.EscapedPath(), "/users/") || !strings.HasSuffix(u.EscapedPath(), "/x") || strings.Count(u.EscapedPath(), "/") != 3 {
					t.Errorf("path %s does not keep the value in one segment", u.EscapedPath())
				}
				if u.Query().Get("ref") != evil || len(u.Query()) != 1 {
					t.Errorf("query %v does not keep the value in one parameter", u.Query())
				}
			}
			// In the query, every value is sent, in its own parameter.
			req, err = q.Render(ev)
			if err != nil {
				t.Fatalf("Render with the value in the query: %v", err)
			}
			u := parseURL(t, req.URL)
			if u.EscapedPath() != "/users/x" {
				t.Errorf("path %s, want /users/x: a query value changed the path", u.EscapedPath())
			}
			if u.Query().Get("ref") != evil || u.Query().Get("p") != evil || len(u.Query()) != 2 {
				t.Errorf("query %v does not keep the value in one parameter", u.Query())
			}
		})
	}
}

// parseURL parses a rendered URL and checks that it goes where the action says.
func parseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "https" || u.Host != "api.example.com" || u.User != nil {
		t.Errorf("URL %s goes to %s://%s", s, u.Scheme, u.Host)
	}
	return u
}

// quote returns s as a JSON string.
func quote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestCompileDeliveryDefaults(t *testing.T) {
	a := mustCompile(t, Spec{URL: "https://api.example.com/x"})
	want := Breaker{Failures: DefaultBreakerFailures, Cooldown: DefaultBreakerCooldown, MaxCooldown: DefaultBreakerMaxCooldown}
	if a.Concurrency != DefaultConcurrency || !a.Rate.IsZero() || a.Breaker != want {
		t.Errorf("concurrency %d, rate %v, breaker %+v; want %d, none, %+v", a.Concurrency, a.Rate, a.Breaker, DefaultConcurrency, want)
	}
	// A cool-down above the default maximum raises the maximum with it.
	a = mustCompile(t, Spec{URL: "https://api.example.com/x", Breaker: Breaker{Cooldown: time.Hour}})
	if a.Breaker.MaxCooldown != time.Hour {
		t.Errorf("max cool-down %v with a cool-down of 1h, want 1h", a.Breaker.MaxCooldown)
	}
	for _, s := range []Spec{
		{URL: "https://api.example.com/x", Concurrency: -1},
		{URL: "https://api.example.com/x", Breaker: Breaker{Cooldown: time.Minute, MaxCooldown: time.Second}},
	} {
		if _, err := Compile("test", s); err == nil {
			t.Errorf("Compile(%+v) succeeded, want an error", s)
		}
	}
}

func TestInterpolates(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		want bool
	}{
		{Spec{URL: "https://api.example.com/inbox", BodyRaw: true}, false},
		{Spec{URL: "https://api.example.com/inbox", Headers: map[string]string{"X-Source": "hookrelay"}, Query: map[string]string{"a": "b"}}, false},
		{Spec{URL: "https://api.example.com/orders/{{ body.id }}"}, true},
		{Spec{URL: "https://api.example.com/x?hook={{ hook }}"}, true},
		{Spec{URL: "https://api.example.com/x", Headers: map[string]string{"X-Event": "{{ headers[\"x-event\"] }}"}}, true},
		{Spec{URL: "https://api.example.com/x", Query: map[string]string{"id": "{{ event.id }}"}}, true},
		{Spec{URL: "https://api.example.com/x", Auth: &AuthSpec{Bearer: "{{ body.UserToken }}"}}, true},
		{Spec{URL: "https://api.example.com/x", Body: map[string]any{"fixed": "yes"}}, true},
	} {
		if got := mustCompile(t, c.spec).Interpolates(); got != c.want {
			t.Errorf("Interpolates(%+v) = %t, want %t", c.spec, got, c.want)
		}
	}
}
