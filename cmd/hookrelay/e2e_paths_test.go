package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/hookrelay/hookrelay/store"
)

// resolvingReceiver is a downstream API that resolves each raw request
// target the way receivers do before routing, and records what it saw.
type resolvingReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	resolved []string // one entry per reading per request
	targets  []string // the raw request targets
}

func newResolvingReceiver(t *testing.T) *resolvingReceiver {
	rr := &resolvingReceiver{}
	rr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rr.mu.Lock()
		rr.targets = append(rr.targets, r.RequestURI)
		rr.resolved = append(rr.resolved, receiverReadings(r.RequestURI)...)
		rr.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rr.Close)
	return rr
}

func (rr *resolvingReceiver) seen() (targets, resolved []string) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return append([]string(nil), rr.targets...), append([]string(nil), rr.resolved...)
}

// receiverReadings resolves a raw request target as a WHATWG URL parser
// does, and as a server that percent-decodes the path first does.
func receiverReadings(target string) []string {
	p, _, _ := strings.Cut(target, "?")
	out := []string{whatwgPath(p)}
	if d, err := url.PathUnescape(p); err == nil {
		out = append(out, whatwgPath(d))
	}
	return out
}

// whatwgPath resolves the path of a special (http, https) URL as the WHATWG
// URL Standard's path state does: '\' is a separator, "." and ".." (also
// written %2e, in any case) are removed with the segment they climb.
func whatwgPath(p string) string {
	p = strings.ReplaceAll(p, `\`, "/")
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	var out []string
	for i, s := range segs {
		last := i == len(segs)-1
		switch strings.ToLower(s) {
		case "..", ".%2e", "%2e.", "%2e%2e":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		case ".", "%2e":
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

// The receiver in the test resolves as a WHATWG parser would: without that,
// the test below would prove nothing.
func TestWhatwgPath(t *testing.T) {
	for in, want := range map[string]string{
		"/api/v1/users/%2E%2e/x":   "/api/v1/x",
		"/api/v1/users/.%2E":       "/api/v1/",
		`/api/v1/users\..\..\x`:    "/api/x",
		"/api/v1/users/%2e/x":      "/api/v1/users/x",
		"/api/v1/users/42/notes":   "/api/v1/users/42/notes",
		"/api/v1/users/..%2Fadmin": "/api/v1/users/..%2Fadmin",
	} {
		if got := whatwgPath(in); got != want {
			t.Errorf("whatwgPath(%s) = %s, want %s", in, got, want)
		}
	}
	if got := receiverReadings("/api/v1/users/..%2F..%2Fadmin?q=1"); got[1] != "/api/admin" {
		t.Errorf("decoded reading = %s, want /api/admin", got[1])
	}
}

// A value interpolated into an action's path cannot take a request out of
// the path the action names, however it is shaped, for a receiver that
// resolves paths like a WHATWG parser or decodes them first: each such
// delivery is dead at once, with the reason; every other one is sent.
func TestPathValuesStayUnderThePrefix(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) { testPathValuesStayUnderThePrefix(t, b.url(t)) })
}

func testPathValuesStayUnderThePrefix(t *testing.T, storeURL string) {
	const prefix = "/api/v1/users/"
	rr := newResolvingReceiver(t)
	cfg := relayConfig(t, `  - name: all
    when: true
    actions: [segment, dotted, pair, query]
`, `  segment:
    method: PATCH
    url: ${DEMO_API_URL}`+prefix+`{{ body.id }}/notes
    retry: []
  dotted:
    url: ${DEMO_API_URL}`+prefix+`.{{ body.id }}/x
    retry: []
  pair:
    url: ${DEMO_API_URL}`+prefix+`{{ body.a }}{{ body.b }}
    retry: []
  query:
    url: ${DEMO_API_URL}`+prefix+`x?next={{ body.id }}&b={{ body.b }}
    query:
      a: "{{ body.a }}"
    retry: []
`)
	srv := start(t, serverOpts{store: storeURL, api: rr.URL, config: cfg})
	st := openTestStore(t, storeURL)

	const (
		dot   = "dot segment"
		slash = `contains "/" or "\"`
		empty = "is empty"
	)
	// why maps each action expected dead to a part of its reason.
	tests := []struct {
		id, a, b string
		why      map[string]string
	}{
		{"42", "p", "q", nil},
		{"a.b", "v1", ".json", nil},
		{"a?b#c", "x", "y", nil},
		{".", "p", "q", map[string]string{"segment": dot, "dotted": dot}},
		{"..", "p", "q", map[string]string{"segment": dot, "dotted": dot}},
		{"%2e", "p", "q", map[string]string{"segment": dot, "dotted": dot}},
		{"%2E%2e", "p", "q", map[string]string{"segment": dot, "dotted": dot}},
		{".%2E", "p", "q", map[string]string{"segment": dot, "dotted": dot}},
		{"%252e%252e", "p", "q", map[string]string{"segment": dot, "dotted": dot}},
		{"．．", "p", "q", map[string]string{"segment": dot, "dotted": dot}},
		{"..;x", "p", "q", map[string]string{"segment": dot, "dotted": dot}},
		{"../admin", "p", "q", map[string]string{"segment": slash, "dotted": slash}},
		{`..\..\admin`, "p", "q", map[string]string{"segment": slash, "dotted": slash}},
		{"..%2F..%2Fadmin", "p", "q", map[string]string{"segment": slash, "dotted": slash}},
		{"%5C..%5C", "p", "q", map[string]string{"segment": slash, "dotted": slash}},
		{"..／admin", "p", "q", map[string]string{"segment": slash, "dotted": slash}},
		{"", "p", "q", map[string]string{"segment": empty, "dotted": empty}},
		{"42", ".", ".", map[string]string{"pair": dot}},
		{"42", "%2e", ".", map[string]string{"pair": dot}},
		{"42", ".", "%2E", map[string]string{"pair": dot}},
		{"42", "", "x", map[string]string{"pair": empty}},
	}
	ids := make([]string, len(tests))
	for i, tt := range tests {
		ids[i] = srv.sendEvent(t, map[string]any{"n": i, "id": tt.id, "a": tt.a, "b": tt.b})
	}
	sent := 0
	for i, tt := range tests {
		for _, d := range waitSettled(t, st, ids[i], 4) {
			why, refused := tt.why[d.Action]
			switch {
			case refused && (d.Status != store.DeliveryDead || d.Attempts != 1 ||
				!strings.Contains(d.LastError, "render url: ") || !strings.Contains(d.LastError, why)):
				t.Errorf("%+v %s: %s after %d attempts, last error %q; want dead after 1 with %q", tt, d.Action, d.Status, d.Attempts, d.LastError, why)
			case !refused && d.Status != store.DeliverySucceeded:
				t.Errorf("%+v %s: %s, last error %q; want succeeded", tt, d.Action, d.Status, d.LastError)
			case !refused:
				sent++
			}
		}
	}

	targets, resolved := rr.seen()
	if len(targets) != sent {
		t.Errorf("the receiver got %d requests, want %d:\n%s", len(targets), sent, strings.Join(targets, "\n"))
	}
	for _, p := range resolved {
		if !strings.HasPrefix(p, prefix) {
			t.Errorf("the receiver resolved a request to %s, outside %s", p, prefix)
		}
	}
	if t.Failed() {
		t.Logf("request targets:\n%s", strings.Join(targets, "\n"))
	}
}
