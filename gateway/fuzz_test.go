package gateway_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// Request parts the fuzzer can choose to send right (a bit set in fix) or
// as it wrote them.
const (
	fixSignature = 1 << iota // the hook's own signature over the body
	fixBasic                 // the hook's basic credentials, else cred as the password
	fixHeader                // the hook's header token, else cred as its value
	fixToken                 // the hook's URL token, else cred as the token
)

// FuzzIngress drives the whole catch handler, with a real SQLite store, with
// any hook, body, content type, credentials, peer and X-Forwarded-For. It
// holds that the gateway never answers 5xx but 503 (the store is up, so not
// that either), never 2xx unless the event is readable from the store with
// the body it was sent, never 2xx to a sender without the hook's basic
// credentials or header token, and never shows a secret in a refusal. The
// seed corpus is in testdata/fuzz/FuzzIngress.
func FuzzIngress(f *testing.F) {
	in := newIngress(f)
	hooks := in.cfg.HookNames()
	f.Add(uint8(0), uint8(0xff), "application/json", []byte(`{"a":1}`), "", "", "203.0.113.10:1")
	f.Fuzz(func(t *testing.T, hookIndex, fix uint8, contentType string, body []byte, cred, xff, peer string) {
		name := hooks[int(hookIndex)%len(hooks)]
		hook := in.cfg.Hooks[name]
		path := "/hooks/catch/" + name
		if hook.Token != "" {
			tok := cred
			if fix&fixToken != 0 {
				tok = hook.Token
			}
			path += "/" + url.PathEscape(tok)
		}
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		r.RemoteAddr = peer
		r.Header.Set("Content-Type", contentType)
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		if fix&fixSignature != 0 {
			for k, vs := range hook.Verifier.Sign(body, ingressNow) {
				r.Header[k] = vs
			}
		}
		basicOK, headerOK := true, true
		if b := hook.Basic; b != nil {
			pass := cred
			if fix&fixBasic != 0 {
				pass = b.Password
			}
			r.SetBasicAuth(b.Username, pass)
			basicOK = pass == b.Password
		}
		if h := hook.HeaderToken; h != nil {
			v := cred
			if fix&fixHeader != 0 {
				v = h.Value
			}
			r.Header.Set(h.Name, v)
			headerOK = sameToken(h.Name, v, h.Value)
		}

		w := httptest.NewRecorder()
		in.h.ServeHTTP(w, r)
		t.Logf("%s: %d %.100s", name, w.Code, w.Body)

		if w.Code >= 500 {
			t.Fatalf("%s: %d %s", name, w.Code, w.Body)
		}
		if w.Code < 200 || w.Code > 299 {
			var sent strings.Builder
			sent.Write(body)
			sent.WriteString(cred + xff + contentType + path)
			for _, s := range ingressSecrets {
				if strings.Contains(w.Body.String(), s) && !strings.Contains(sent.String(), s) {
					t.Fatalf("%s: refusal %d reveals %q: %s", name, w.Code, s, w.Body)
				}
			}
			return
		}
		if !basicOK || !headerOK {
			t.Fatalf("%s: %d for a sender without the hook's credentials", name, w.Code)
		}
		id := w.Header().Get("Hookrelay-Event-Id")
		ev, err := in.st.Event(context.Background(), id)
		if err != nil {
			t.Fatalf("%s: %d, but event %q is not in the store: %v", name, w.Code, id, err)
		}
		if ev.Hook != name {
			t.Fatalf("%s: %d names event %s of hook %s", name, w.Code, id, ev.Hook)
		}
		if w.Code == http.StatusAccepted && !bytes.Equal(ev.Body, body) {
			t.Fatalf("%s: 202 for event %s, stored with another body", name, id)
		}
	})
}

// sameToken is whether a header value carries the token: exactly, but for
// the scheme of an Authorization header, which HTTP makes case-insensitive.
func sameToken(name, got, want string) bool {
	if strings.EqualFold(name, "Authorization") {
		gs, gc, gok := strings.Cut(got, " ")
		ws, wc, wok := strings.Cut(want, " ")
		if gok && wok {
			return strings.EqualFold(gs, ws) && strings.TrimLeft(gc, " ") == strings.TrimLeft(wc, " ")
		}
	}
	return got == want
}
