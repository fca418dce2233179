package actions

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// hit is one request as a receiver saw it.
type hit struct {
	Method string
	URI    string // as sent on the request line
	Host   string
	Header http.Header
	Body   string
}

// receiver is a real HTTP server on 127.0.0.1 that records every request
// and answers with handler (200 "ok" when nil).
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	hits []hit
}

func newReceiver(t *testing.T, handler http.HandlerFunc) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rc.mu.Lock()
		rc.hits = append(rc.hits, hit{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: string(body)})
		rc.mu.Unlock()
		if handler == nil {
			_, _ = io.WriteString(w, "ok")
			return
		}
		handler(w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) Hits() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

// only returns the single request the receiver got.
func (rc *receiver) only(t *testing.T) hit {
	t.Helper()
	hits := rc.Hits()
	if len(hits) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(hits))
	}
	return hits[0]
}

var fixedNow = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func newTestClient() *Client {
	return NewClient(ClientOptions{UserAgent: "hookrelay/test", Now: func() time.Time { return fixedNow }})
}

func env(t *testing.T, body string) rules.Env {
	t.Helper()
	v, err := rules.DecodeBody([]byte(body), "application/json", 0)
	if err != nil {
		t.Fatalf("DecodeBody: %v", err)
	}
	return rules.NewEnv(store.Event{
		ID:         "evt_01",
		Hook:       "shop",
		ReceivedAt: fixedNow,
		Headers:    map[string]string{"x-request-id": "rq-7"},
	}, v)
}

func mustCompile(t *testing.T, s Spec) *Action {
	t.Helper()
	a, err := Compile("test", s)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return a
}
