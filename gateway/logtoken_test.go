package gateway_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/gateway"
)

// A catch URL's token reaches the log only as its prefix, whether it is the
// right one or not, on every path that logs a request: refusals (wrong
// token, missing credential, wrong method) and panics. The logger here has
// no redacting handler: the gateway itself must not hand it the token.
func TestLogsShowTokenPrefixOnly(t *testing.T) {
	const right, wrong = "right-token-0123456789", "wrong-token-9876543210"
	cfg := configFrom(t, `
hooks:
  ws:
    verify: {scheme: none}
    token: `+right+`
  hdr:
    verify: {scheme: none}
    token: `+right+`
    auth:
      header: {name: X-Key, value: header-value-123}
`)
	st := tempStore(t)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := gateway.New(st, cfg, gateway.Options{Logger: log}).Handler()

	send := func(method, path string, header http.Header, want int) {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(`{"a":1}`))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header[k] = v
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("%s %s: %d, want %d", method, path, w.Code, want)
		}
	}
	send(http.MethodPost, "/hooks/catch/ws/"+wrong, nil, http.StatusNotFound)
	send(http.MethodPost, "/hooks/catch/nohook/"+wrong, nil, http.StatusNotFound)
	send(http.MethodGet, "/hooks/catch/ws/"+right, nil, http.StatusMethodNotAllowed)
	send(http.MethodPost, "/hooks/catch/hdr/"+right, nil, http.StatusUnauthorized)
	send(http.MethodPost, "/hooks/catch/hdr/"+right, http.Header{"X-Key": {"nope"}}, http.StatusUnauthorized)

	// A panic while serving a token URL.
	r := gateway.NewRouter(log)
	r.POST("/hooks/catch/:hook/:token", func(*gin.Context) { panic("boom") })
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/hooks/catch/ws/"+right, nil))
	if w.Code != http.StatusInternalServerError {
		t.Errorf("panic answered %d", w.Code)
	}

	out := buf.String()
	for _, secret := range []string{right, wrong, right[5:], wrong[5:]} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"path=/hooks/catch/ws/wron…", "path=/hooks/catch/nohook/wron…", "path=/hooks/catch/ws/righ…", "path=/hooks/catch/hdr/righ…", "panic while serving"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log has no %q:\n%s", want, out)
		}
	}
}

// A token may hold any character but / (config allows &, ' and "): the
// log shows none of it past its prefix, for the right token and for wrong
// ones alike.
func TestLogsMaskTokensHoldingQuotesAndAmpersands(t *testing.T) {
	const right = `abcd&efghijklmnop-SECRET`
	cfg := configFrom(t, `
hooks:
  amp:
    verify: {scheme: none}
    token: '`+right+`'
`)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := gateway.New(tempStore(t), cfg, gateway.Options{Logger: log}).Handler()
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/hooks/catch/amp/" + right, http.StatusMethodNotAllowed},
		{http.MethodPost, "/hooks/catch/amp/abcd&efghijklmnop-WRONGTAIL", http.StatusNotFound},
		{http.MethodPost, "/hooks/catch/amp/wr%22ng%27token&QUOTETAIL", http.StatusNotFound},
		{http.MethodPost, "/hooks/catch/nohook/abcd&efghijklmnop-NOHOOKTAIL", http.StatusNotFound},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(c.method, c.path, strings.NewReader(`{"a":1}`)))
		if w.Code != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, w.Code, c.want)
		}
	}
	out := buf.String()
	for _, secret := range []string{"efgh", "SECRET", "WRONGTAIL", "token", "QUOTETAIL", "NOHOOKTAIL"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"path=/hooks/catch/amp/abcd…", "path=/hooks/catch/nohook/abcd…"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log has no %q:\n%s", want, out)
		}
	}
}
