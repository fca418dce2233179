package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const orderBody = `{"id":"a/b?c","big":1234567890123456789,"total":12.5,"user":{"name":"Ada","tags":["x","y"]},"UserToken":"ut-elevated-0123456789","q":"a&b=c","n":null}`

func TestDoSendsTheRenderedRequest(t *testing.T) {
	tests := []struct {
		name   string
		spec   func(base string) Spec
		body   string
		method string
		uri    string
		header map[string]string // headers the receiver must see (exactly these values)
		absent []string          // headers the receiver must not see
		sent   string            // exact request body
	}{
		{
			name: "path-escaped values, query and typed JSON body",
			spec: func(base string) Spec {
				return Spec{
					Method:  "PUT",
					URL:     base + "/orders/{{ body.id[2:] }}",
					Headers: map[string]string{"X-Source": "hookrelay", "X-Request": `{{ headers["x-request-id"] }}`},
					Query:   map[string]string{"hook": "{{ hook }}", "total": "{{ body.total }}"},
					Body: map[string]any{
						"id":    "{{ body.big }}",
						"total": "{{ body.total }}",
						"user":  "{{ body.user }}",
						"note":  "order {{ body.id }} paid",
						"fixed": 3,
						"list":  []any{"{{ body.user.tags[1] }}", true, nil},
						"none":  "{{ body.n }}",
					},
				}
			},
			method: "PUT",
			uri:    "/orders/b%3Fc?hook=shop&total=12.5",
			header: map[string]string{
				"X-Source":        "hookrelay",
				"X-Request":       "rq-7",
				"Content-Type":    "application/json",
				"Idempotency-Key": "dlv_1",
				"User-Agent":      "hookrelay/test",
			},
			sent: `{"fixed":3,"id":1234567890123456789,"list":["y",true,null],"none":null,"note":"order a/b?c paid","total":12.5,"user":{"name":"Ada","tags":["x","y"]}}`,
		},
		{
			name:   "value cannot reach the host",
			spec:   func(base string) Spec { return Spec{URL: base + "/users/{{ body.v }}"} },
			body:   `{"v":"@evil.example"}`,
			method: "POST",
			uri:    "/users/@evil.example",
			absent: []string{"Content-Type"},
		},
		{
			name: "values stay in their segments",
			spec: func(base string) Spec {
				return Spec{Method: "DELETE", URL: base + "/users/{{ body.v }}/{{ body.w }}.json"}
			},
			body:   `{"v":"a?b#c;d e%","w":"..."}`,
			method: "DELETE",
			uri:    "/users/a%3Fb%23c%3Bd%20e%25/....json",
		},
		{
			name:   "value in the URL's query is query-escaped",
			spec:   func(base string) Spec { return Spec{Method: "GET", URL: base + "/search?q={{ body.q }}&lit=1"} },
			body:   orderBody,
			method: "GET",
			uri:    "/search?q=a%26b%3Dc&lit=1",
		},
		{
			name: "query map is added to the URL's own query",
			spec: func(base string) Spec {
				return Spec{Method: "GET", URL: base + "/s?a=1", Query: map[string]string{"q": "{{ body.q }}", "b": "two words"}}
			},
			body:   orderBody,
			method: "GET",
			uri:    "/s?a=1&b=two+words&q=a%26b%3Dc",
		},
		{
			name: "own content type and a string body",
			spec: func(base string) Spec {
				return Spec{Method: "patch", URL: base + "/v1/x", Headers: map[string]string{"content-type": "application/merge-patch+json"}, Body: "{{ body.user.name }}"}
			},
			body:   orderBody,
			method: "PATCH",
			uri:    "/v1/x",
			header: map[string]string{"Content-Type": "application/merge-patch+json"},
			sent:   `"Ada"`,
		},
		{
			name: "bearer from the body",
			spec: func(base string) Spec {
				return Spec{Method: "PATCH", URL: base + "/v1/buyers/b1/users/{{ body.user.name }}", Auth: &AuthSpec{Bearer: "{{ body.UserToken }}"}, Body: map[string]any{"LastName": "TestLastName"}}
			},
			body:   orderBody,
			method: "PATCH",
			uri:    "/v1/buyers/b1/users/Ada",
			header: map[string]string{"Authorization": "Bearer ut-elevated-0123456789"},
			sent:   `{"LastName":"TestLastName"}`,
		},
		{
			name:   "literal bearer",
			spec:   func(base string) Spec { return Spec{URL: base + "/", Auth: &AuthSpec{Bearer: "static-token-abc"}} },
			method: "POST",
			uri:    "/",
			header: map[string]string{"Authorization": "Bearer static-token-abc"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			a := mustCompile(t, tt.spec(rc.URL))
			body := tt.body
			if body == "" {
				body = orderBody
			}
			res := newTestClient().Do(context.Background(), a, env(t, body), "dlv_1")
			if res.Err != nil {
				t.Fatalf("Do: %v", res.Err)
			}
			got := rc.only(t)
			if got.Method != tt.method || got.URI != tt.uri {
				t.Errorf("request line %s %s, want %s %s", got.Method, got.URI, tt.method, tt.uri)
			}
			if got.Host != strings.TrimPrefix(rc.URL, "http://") {
				t.Errorf("Host = %s, want the receiver's", got.Host)
			}
			if got.Body != tt.sent {
				t.Errorf("body\n got: %s\nwant: %s", got.Body, tt.sent)
			}
			want := map[string]string{"Idempotency-Key": "dlv_1", "User-Agent": "hookrelay/test"}
			for k, v := range tt.header {
				want[k] = v
			}
			for k, v := range want {
				if g := got.Header.Values(k); len(g) != 1 || g[0] != v {
					t.Errorf("header %s = %q, want %q", k, g, v)
				}
			}
			for _, k := range tt.absent {
				if v := got.Header.Values(k); len(v) > 0 {
					t.Errorf("header %s = %q, want none", k, v)
				}
			}
			if res.StatusCode != 200 || res.ResponseBody != "ok" || res.Method != tt.method || res.URL != rc.URL+tt.uri {
				t.Errorf("result %+v", res)
			}
			if res.RequestHeaders["Idempotency-Key"] != "dlv_1" || res.RequestHeaders["User-Agent"] != "hookrelay/test" {
				t.Errorf("result headers %v", res.RequestHeaders)
			}
			if _, ok := tt.header["Authorization"]; ok && res.RequestHeaders["Authorization"] != "[redacted]" {
				t.Errorf("result Authorization = %q, want [redacted]", res.RequestHeaders["Authorization"])
			}
		})
	}
}

func TestDoRefusesWhatCannotBeSent(t *testing.T) {
	tests := []struct {
		name string
		spec func(base string) Spec
		body string
		msg  string
	}{
		{"CR LF in a header", func(b string) Spec { return Spec{URL: b + "/", Headers: map[string]string{"X-Name": "{{ body.v }}"}} }, `{"v":"x\r\nX-Evil: 1"}`, "headers.X-Name: the value contains CR, LF"},
		{"LF alone in a header", func(b string) Spec { return Spec{URL: b + "/", Headers: map[string]string{"X-Name": "a {{ body.v }}"}} }, `{"v":"x\nX-Evil: 1"}`, "headers.X-Name"},
		{"CR alone in a header", func(b string) Spec { return Spec{URL: b + "/", Headers: map[string]string{"X-Name": "{{ body.v }}"}} }, `{"v":"x\rX-Evil: 1"}`, "headers.X-Name"},
		{"NUL in a header", func(b string) Spec { return Spec{URL: b + "/", Headers: map[string]string{"X-Name": "{{ body.v }}"}} }, `{"v":"x\u0000X-Evil"}`, "headers.X-Name"},
		{"LF between two interpolations", func(b string) Spec {
			return Spec{URL: b + "/", Headers: map[string]string{"X-Name": "{{ body.v }}{{ hook }}"}}
		}, `{"v":"\nX-Evil: 1"}`, "headers.X-Name"},
		{"CR LF in a bearer", func(b string) Spec { return Spec{URL: b + "/", Auth: &AuthSpec{Bearer: "{{ body.v }}"}} }, `{"v":"tok\r\nX-Evil: 1"}`, "auth.bearer"},
		{"empty bearer", func(b string) Spec { return Spec{URL: b + "/", Auth: &AuthSpec{Bearer: "{{ body.v }}"}} }, `{"v":""}`, "auth.bearer: the token is empty"},
		{"missing bearer", func(b string) Spec { return Spec{URL: b + "/", Auth: &AuthSpec{Bearer: "{{ body.v }}"}} }, `{}`, "auth.bearer: body.v: the value is nil"},
		{"missing URL value", func(b string) Spec { return Spec{URL: b + "/u/{{ body.data.id }}"} }, `{}`, "render url: body.data.id: the value is nil"},
		{"missing query value", func(b string) Spec { return Spec{URL: b + "/", Query: map[string]string{"id": "{{ body.id }}"}} }, `{}`, "query.id"},
		{"body leaf fails", func(b string) Spec { return Spec{URL: b + "/", Body: map[string]any{"a": []any{"{{ body.x.y > 1 }}"}}} }, `{"x":{"y":"s"}}`, "render body: body.a.0:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			res := newTestClient().Do(context.Background(), mustCompile(t, tt.spec(rc.URL)), env(t, tt.body), "dlv_1")
			if !errors.Is(res.Err, ErrPermanent) || !strings.Contains(res.Err.Error(), tt.msg) {
				t.Fatalf("Err = %v, want a permanent error containing %q", res.Err, tt.msg)
			}
			if strings.Contains(res.Err.Error(), "X-Evil") {
				t.Errorf("the refused value is shown: %v", res.Err)
			}
			if n := len(rc.Hits()); n != 0 {
				t.Errorf("receiver got %d requests", n)
			}
			if res.StatusCode != 0 {
				t.Errorf("StatusCode = %d", res.StatusCode)
			}
		})
	}
}

func TestDoOutcomes(t *testing.T) {
	httpDate := time.Date(2024, 5, 6, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		status     int
		retryAfter time.Time // zero: not a RetryAfterError
		ok         bool
		msg        string
	}{
		{name: "200", handler: answer(200, nil), status: 200, ok: true},
		{name: "201", handler: answer(201, nil), status: 201, ok: true},
		{name: "204", handler: answer(204, nil), status: 204, ok: true},
		{name: "500 is retried", handler: answer(500, nil), status: 500, msg: "status 500"},
		{name: "404 is retried", handler: answer(404, nil), status: 404, msg: "status 404"},
		{name: "429 with seconds", handler: answer(429, map[string]string{"Retry-After": "120"}), status: 429, retryAfter: fixedNow.Add(120 * time.Second)},
		{name: "503 with an HTTP date", handler: answer(503, map[string]string{"Retry-After": httpDate.Format(http.TimeFormat)}), status: 503, retryAfter: httpDate},
		{name: "429 without Retry-After", handler: answer(429, nil), status: 429, msg: "status 429"},
		{name: "429 with garbage Retry-After", handler: answer(429, map[string]string{"Retry-After": "soon"}), status: 429, msg: "status 429"},
		{name: "500 with Retry-After is a plain failure", handler: answer(500, map[string]string{"Retry-After": "120"}), status: 500, msg: "status 500"},
		{name: "redirect is not followed", handler: answer(302, map[string]string{"Location": "/elsewhere"}), status: 302, msg: "status 302: redirects are not followed (Location: /elsewhere)"},
		{name: "permanent redirect is not followed", handler: answer(308, map[string]string{"Location": "/elsewhere"}), status: 308, msg: "status 308: redirects are not followed (Location: /elsewhere)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, tt.handler)
			res := newTestClient().Do(context.Background(), mustCompile(t, Spec{URL: rc.URL + "/hook"}), env(t, `{}`), "dlv_1")
			if res.StatusCode != tt.status {
				t.Errorf("StatusCode = %d, want %d", res.StatusCode, tt.status)
			}
			if n := len(rc.Hits()); n != 1 {
				t.Errorf("receiver got %d requests, want exactly 1 (no retries, no redirects)", n)
			}
			switch {
			case tt.ok:
				if res.Err != nil {
					t.Errorf("Err = %v", res.Err)
				}
			case !tt.retryAfter.IsZero():
				var ra *RetryAfterError
				if !errors.As(res.Err, &ra) || !ra.At.Equal(tt.retryAfter) || ra.StatusCode != tt.status {
					t.Errorf("Err = %#v, want RetryAfterError{At: %v, StatusCode: %d}", res.Err, tt.retryAfter, tt.status)
				}
			default:
				var ra *RetryAfterError
				if res.Err == nil || errors.Is(res.Err, ErrPermanent) || errors.As(res.Err, &ra) {
					t.Fatalf("Err = %v, want a retryable error", res.Err)
				}
				if res.Err.Error() != tt.msg {
					t.Errorf("Err = %q, want %q", res.Err, tt.msg)
				}
			}
		})
	}
}

func answer(code int, headers map[string]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(code)
	}
}

func TestDoTimeoutIsRetryable(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers; returns when the client gives up
	})
	a := mustCompile(t, Spec{URL: rc.URL + "/slow", Timeout: 50 * time.Millisecond})
	res := newTestClient().Do(context.Background(), a, env(t, `{}`), "dlv_1")
	if res.Err == nil || errors.Is(res.Err, ErrPermanent) || !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want a retryable timeout", res.Err)
	}
	if !strings.HasPrefix(res.Err.Error(), "timeout: no answer within 50ms") || res.StatusCode != 0 {
		t.Errorf("Err = %q, StatusCode = %d", res.Err, res.StatusCode)
	}
}

func TestDoTransportErrorIsRetryable(t *testing.T) {
	rc := newReceiver(t, nil)
	a := mustCompile(t, Spec{URL: rc.URL + "/gone"})
	rc.Close() // nothing listens there any more
	res := newTestClient().Do(context.Background(), a, env(t, `{}`), "dlv_1")
	if res.Err == nil || errors.Is(res.Err, ErrPermanent) || res.StatusCode != 0 {
		t.Fatalf("Err = %v, StatusCode = %d; want a retryable transport error", res.Err, res.StatusCode)
	}
	if res.URL != rc.URL+"/gone" || res.RequestHeaders["Idempotency-Key"] != "dlv_1" {
		t.Errorf("result %+v", res)
	}
}

func TestDoCanceled(t *testing.T) {
	rc := newReceiver(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := newTestClient().Do(ctx, mustCompile(t, Spec{URL: rc.URL + "/"}), env(t, `{}`), "dlv_1")
	if !errors.Is(res.Err, context.Canceled) || errors.Is(res.Err, ErrPermanent) {
		t.Fatalf("Err = %v, want context.Canceled", res.Err)
	}
}

func TestDoTruncatesTheResponseBody(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1024) // 16 KiB
	tests := []struct {
		name string
		max  int64
		want string
	}{
		{"default 4 KiB", 0, big[:4096]},
		{"own limit", 10, big[:10]},
		{"short body whole", 1 << 20, big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, big) })
			c := NewClient(ClientOptions{MaxResponse: tt.max})
			res := c.Do(context.Background(), mustCompile(t, Spec{URL: rc.URL + "/"}), env(t, `{}`), "k")
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if res.ResponseBody != tt.want {
				t.Errorf("ResponseBody has %d bytes, want %d", len(res.ResponseBody), len(tt.want))
			}
		})
	}
}

func TestDoWithoutUserAgentOrKey(t *testing.T) {
	rc := newReceiver(t, nil)
	res := NewClient(ClientOptions{}).Do(context.Background(), mustCompile(t, Spec{URL: rc.URL + "/"}), env(t, `{}`), "")
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if h := rc.only(t).Header; h.Get("Idempotency-Key") != "" {
		t.Errorf("Idempotency-Key = %q", h.Get("Idempotency-Key"))
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"0", fixedNow, true},
		{"120", fixedNow.Add(2 * time.Minute), true},
		{" 30 ", fixedNow.Add(30 * time.Second), true},
		{"Wed, 21 Oct 2015 07:28:00 GMT", time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC), true},
		{"Wednesday, 21-Oct-15 07:28:00 GMT", time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC), true},
		{"99999999999999", fixedNow.Add(10 * 365 * 24 * time.Hour), true},
		{"-5", time.Time{}, false},
		{"", time.Time{}, false},
		{"1.5", time.Time{}, false},
		{"tomorrow", time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := retryAfter(tt.in, fixedNow)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// resultText is everything a Result holds, as text, for secret checks.
func resultText(res Result) string {
	s := fmt.Sprintf("%#v\n%+v\n", res, res)
	if res.Err != nil {
		s += res.Err.Error()
	}
	return s
}
