package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/gateway"
)

// An accepted event and a duplicate write nothing at info level (the
// metrics count them) and one line each at debug level.
func TestEventLinesAtDebug(t *testing.T) {
	cfg := configFrom(t, `
hooks:
  ws:
    verify: {scheme: none}
    token: ws-token-0123456789ab
`)
	st := tempStore(t)
	for _, c := range []struct {
		level slog.Level
		want  []string
	}{
		{slog.LevelInfo, nil},
		{slog.LevelDebug, []string{`level=DEBUG msg="event accepted" hook=ws`, `level=DEBUG msg="duplicate event dropped" hook=ws`}},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: c.level}))
		h := gateway.New(st, cfg, gateway.Options{Logger: log}).Handler()
		body := `{"level":"` + c.level.String() + `"}`
		for _, want := range []int{http.StatusAccepted, http.StatusOK} {
			req := httptest.NewRequest(http.MethodPost, "/hooks/catch/ws/ws-token-0123456789ab", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != want {
				t.Fatalf("at %v: POST = %d, want %d", c.level, w.Code, want)
			}
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
		if len(lines) != len(c.want) {
			t.Fatalf("at %v: lines %q, want %q", c.level, lines, c.want)
		}
		for i, w := range c.want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("at %v: line %q, want %q", c.level, lines[i], w)
			}
		}
	}
}

// The warnings about an event's key and its ordering lane name the event
// by the id it is stored under, the one its sender is answered with.
func TestEventWarningsNameTheStoredEvent(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"hookrelay.yaml": `
hooks:
  kf:
    verify: {scheme: none}
    token: kf-token-0123456789ab
    idempotency: {key: body.order_id}
    rules: [rules.yaml]
actions:
  ordered:
    url: http://127.0.0.1:9/ordered
    order_by: body.customer_id
`,
		"rules.yaml": `
rules:
  - name: every
    when: "true"
    actions: [ordered]
`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "hookrelay.yaml"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := gateway.New(tempStore(t), cfg, gateway.Options{Logger: log}).Handler()
	// The id a request is given is the one of its key's shard from the
	// start only by chance (1 in 1024): several requests make it sure. The
	// last is a duplicate of the first, answered with the first one's id.
	const n = 6
	answered := map[string]bool{}
	for i := range n {
		req := httptest.NewRequest(http.MethodPost, "/hooks/catch/kf/kf-token-0123456789ab", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i%(n-1))))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		want := http.StatusAccepted
		if i == n-1 {
			want = http.StatusOK
		}
		var out struct{ ID string }
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != want || out.ID == "" {
			t.Fatalf("POST = %d %s, want %d {id}", w.Code, w.Body, want)
		}
		answered[out.ID] = true
	}
	if len(answered) != n-1 {
		t.Fatalf("answers named %d events, want %d", len(answered), n-1)
	}
	warnings := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var line struct {
			Msg     string `json:"msg"`
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		warnings[line.Msg]++
		if !answered[line.EventID] {
			t.Errorf("%q names event %q, which no answer named (%v)", line.Msg, line.EventID, answered)
		}
	}
	for _, msg := range []string{"idempotency key expression failed, using the body hash", "order_by has no value for this event: its delivery is not ordered"} {
		if warnings[msg] != n {
			t.Errorf("%d warnings %q, want %d:\n%s", warnings[msg], msg, n, buf.String())
		}
	}
}
