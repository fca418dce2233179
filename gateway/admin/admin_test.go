package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/config"
)

func TestNewKey(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	k, secret, err := NewKey("ops", []string{"write", " read"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "hr_") || len(secret) != 3+48 {
		t.Errorf("secret = %q", secret)
	}
	if k.Hash != HashSecret(secret) || strings.Contains(k.Hash, secret[3:]) || k.Prefix != secret[:10] {
		t.Errorf("key = %+v", k)
	}
	if d := cmp.Diff([]string{"read", "write"}, k.Scopes); d != "" {
		t.Errorf("scopes (-want +got):\n%s", d)
	}
	if !strings.HasPrefix(k.ID, "key_") || !k.CreatedAt.Equal(now) {
		t.Errorf("id %q created %v", k.ID, k.CreatedAt)
	}
	_, other, _ := NewKey("ops", []string{"read"}, now)
	if other == secret {
		t.Error("two keys got the same secret")
	}
	for _, bad := range []struct {
		name   string
		scopes []string
		want   string
	}{
		{"", []string{"read"}, "needs a name"},
		{"x", nil, "at least one scope"},
		{"x", []string{"admin"}, `unknown scope "admin"`},
		{"x", []string{"Read"}, `unknown scope "Read"`},
		{"x", []string{"read,write"}, `unknown scope "read,write"`},
		{"x", []string{"read", "read"}, `scope "read" is given twice`},
		{"x", []string{"read", " read "}, `scope "read" is given twice`},
		{"x", []string{"read", ""}, "empty scope"},
		{strings.Repeat("n", 201), []string{"read"}, "at most 200 bytes"},
	} {
		if _, _, err := NewKey(bad.name, bad.scopes, now); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("NewKey(%q, %v) = %v, want %q", bad.name, bad.scopes, err, bad.want)
		}
	}
}

func TestCatchPathHidesToken(t *testing.T) {
	h := &config.Hook{Name: "ws", Token: "0123456789abcdefXYZ"}
	if got := catchPath(h, false); got != "/hooks/catch/ws/0123…" {
		t.Errorf("shown path = %q", got)
	}
	if got := catchPath(h, true); got != "/hooks/catch/ws/0123456789abcdefXYZ" {
		t.Errorf("full path = %q", got)
	}
	if got := catchPath(&config.Hook{Name: "gh"}, false); got != "/hooks/catch/gh" {
		t.Errorf("path without token = %q", got)
	}
}
