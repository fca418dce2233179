package redact

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
)

type userValue struct{ token string }

func (u userValue) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", "ops"), slog.String("token", u.token), slog.String("note", "Bearer "+u.token))
}

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

// Every part of a log line goes through the Redactor: the message, plain
// attributes, groups, errors, LogValuers, Stringers, attributes bound with
// With, and a log.Logger such as http.Server's ErrorLog; the Redactor swapped in at reload
// applies to loggers made before it.
func TestHandlerMasksEveryPart(t *testing.T) {
	const known, jwt = "config-secret-abc123", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln"
	const path = "/hooks/catch/ws/ws-token-0123456789abcdef"
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		var inner slog.Handler = slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
		if format == "json" {
			inner = slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
		}
		h := NewHandler(inner)
		log1 := slog.New(h).With("bound", "Authorization: Bearer bound-credential-1")
		h.SetRedactor(New([]string{known}, nil)) // as at reload, after the logger was made
		log1.Debug("refused "+path+" with "+known, "path", path, "err", errors.New("upstream said "+known),
			"user", userValue{"user-token-value-77"}, "s", stringer{"jwt " + jwt}, "raw", []byte(known),
			slog.Group("req", slog.String("Authorization", "Basic dXNlcjpwYXNzd29yZA=="), slog.Any("m", map[string]string{"k": known})))
		log1.WithGroup("g").Info("grouped", "password", "hunter22", "v", known)
		slog.NewLogLogger(h, slog.LevelWarn).Print("http: TLS handshake error from 1.2.3.4 for " + path)
		out := buf.String()
		for _, secret := range []string{known, jwt, "user-token-value-77", "bound-credential-1", "dXNlcjpwYXNzd29yZA==", "hunter22", "ws-token-0123456789abcdef"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s log shows %q:\n%s", format, secret, out)
			}
		}
		for _, want := range []string{"/hooks/catch/ws/ws-t…", "name=ops", `"name":"ops"`} {
			if strings.Contains(out, want) {
				continue
			}
			if (want == "name=ops" && format == "json") || (want == `"name":"ops"` && format == "text") {
				continue
			}
			t.Errorf("%s log has no %q:\n%s", format, want, out)
		}
	}
}

// TestHandlerAddKeepsOldSecrets: after reloads that dropped them, the
// secrets of every earlier config stay masked, with the new ones.
func TestHandlerAddKeepsOldSecrets(t *testing.T) {
	var buf bytes.Buffer
	h := NewHandler(slog.NewTextHandler(&buf, nil))
	secrets := []string{"first-config-secret", "second-config-secret", "third-config-secret"}
	h.SetRedactor(New(secrets[:1], []string{"x-first-mac"}))
	h.Add(New(secrets[1:2], nil))
	h.Add(New(secrets[2:], nil))
	log := slog.New(h)
	for _, s := range secrets {
		log.Info("quoted "+s, "v", s)
	}
	log.Info("header", "x-first-mac", "a-mac-value-12345")
	out := buf.String()
	for _, s := range append(secrets, "a-mac-value-12345") {
		if strings.Contains(out, s) {
			t.Errorf("the log shows %q after the reloads:\n%s", s, out)
		}
	}
	if n := strings.Count(out, Mask); n < 7 {
		t.Errorf("%d masks in the log, want at least 7:\n%s", n, out)
	}
}

// BenchmarkHandler is the cost the redacting handler adds to the log line
// written for every accepted event.
func BenchmarkHandler(b *testing.B) {
	h := NewHandler(slog.NewTextHandler(io.Discard, nil))
	h.SetRedactor(New([]string{"hook-secret-0001", "url-token-00000000002", "action-key-0003"}, nil))
	log := slog.New(h)
	b.ReportAllocs()
	for b.Loop() {
		log.Info("event accepted", "hook", "ordercloud", "event_id", "evt_01M8GW1WSHNBJDNY80207DPK1E", "status", "accepted", "deliveries", 2)
	}
}
