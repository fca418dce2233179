package gateway_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
