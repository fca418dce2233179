package config

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// Without idempotency.key, a hook's key is what its signature covers; with
// one, the expression as written.
func TestHookIdempotencyKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hookrelay.yaml")
	if err := os.WriteFile(path, []byte(`hooks:
  github:
    verify: {scheme: github, secret: gh}
  standard:
    verify: {scheme: standard-webhooks, secret: "whsec_c3RhbmRhcmQ="}
  stripe:
    verify: {scheme: stripe, secret: whsec_st}
  keyed:
    verify: {scheme: github, secret: gh}
    idempotency:
      key: headers["x-github-delivery"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"evt_1","n":1}`)
	sum := sha256.Sum256(body)
	bodyHash := "sha256:" + hex.EncodeToString(sum[:])
	now := time.Now()
	for _, tt := range []struct {
		hook string
		h    http.Header
		want string
	}{
		{"github", http.Header{"X-Github-Delivery": {"d-1"}}, bodyHash},
		{"github", http.Header{"X-Github-Delivery": {"d-2"}}, bodyHash},
		{"standard", cfg.Hooks["standard"].Verifier.Sign(body, now), ""}, // its signed webhook-id, checked below
		{"stripe", http.Header{}, "evt_1"},
		{"keyed", http.Header{"X-Github-Delivery": {"d-1"}}, "d-1"},
	} {
		hook := cfg.Hooks[tt.hook]
		decoded, err := rules.DecodeBody(body, "application/json", 0)
		if err != nil {
			t.Fatal(err)
		}
		lower := map[string]string{}
		for k := range tt.h {
			lower[strings.ToLower(k)] = tt.h.Get(k)
		}
		env := rules.NewEnv(store.Event{Hook: tt.hook, Headers: lower, Body: body}, decoded)
		want := tt.want
		if want == "" {
			if want = tt.h.Get("Webhook-Id"); !strings.HasPrefix(want, "msg_") {
				t.Fatalf("Sign gave webhook-id %q", want)
			}
		}
		if got, err := hook.IdempotencyKey(tt.h, env, body); got != want || err != nil {
			t.Errorf("%s %v: key %q, %v; want %q", tt.hook, tt.h, got, err, want)
		}
	}
}
