package verify_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/verify"
)

func TestSenderSignsAsTheHookRequires(t *testing.T) {
	v, err := verify.New(verify.Config{Scheme: verify.SchemeGitHub, Secrets: []string{"s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"zen":"ok"}`)
	s := verify.Sender{Verifier: v, Basic: &verify.BasicAuth{Username: "u", Password: "p"}, Header: &verify.HeaderToken{Name: "X-Token", Value: "t0k"}}
	h := http.Header{}
	s.Sign(h, body, now)
	if err := v.Verify(h, body, now); err != nil {
		t.Fatalf("a signed request does not verify: %v", err)
	}
	r := http.Request{Header: h}
	if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
		t.Errorf("basic credentials = %q %q %v", u, p, ok)
	}
	if got := h.Get("X-Token"); got != "t0k" {
		t.Errorf("X-Token = %q", got)
	}
	if err := v.Verify(h, []byte(`{"zen":"changed"}`), now); err == nil {
		t.Error("the signature verifies another body")
	}

	h = http.Header{}
	verify.Sender{}.Sign(h, body, now)
	if len(h) != 0 {
		t.Errorf("a sender with nothing to add added %v", h)
	}
}
