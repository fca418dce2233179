package actions

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// A payload whose bytes a decode and re-encode would change: spacing, key
// order, an escaped character, a number written 1.10, a float beyond int64.
const rawPayload = "{ \"zeta\": 1.10,\n  \"alpha\": \"caf\\u00e9 <b>\",\n  \"big\": 123456789012345678901234567890,\n  \"list\": [ 1, 2 ] }\n"

func rawEvent(t *testing.T, contentType string) (store.Event, rules.Env) {
	t.Helper()
	ev := store.Event{ID: "evt_raw", Hook: "github", ReceivedAt: fixedNow, Headers: map[string]string{"content-type": contentType}, Body: []byte(rawPayload)}
	body, err := rules.DecodeBody(ev.Body, contentType, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ev, rules.NewEnv(ev, body)
}

func TestBodyRawSendsTheEventAsItArrived(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		headers     map[string]string
		wantType    string
	}{
		{"the sender's content type", "application/json; charset=utf-8", nil, "application/json; charset=utf-8"},
		{"no content type", "", nil, "application/json"},
		{"the action's own content type", "application/json", map[string]string{"Content-Type": "application/vnd.inbox+json"}, "application/vnd.inbox+json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			_, e := rawEvent(t, tt.contentType)
			c := NewClient(ClientOptions{UserAgent: "hookrelay/test"})
			a := mustCompile(t, Spec{URL: rc.URL + "/v1/inbox/{{ hook }}", Headers: tt.headers, BodyRaw: true, Auth: &AuthSpec{Bearer: "crm-token-0123"}})
			if !a.BodyRaw() {
				t.Fatal("BodyRaw() = false")
			}
			res := c.Do(context.Background(), a, e, "dlv_9")
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			got := rc.only(t)
			if got.Method != "POST" || got.URI != "/v1/inbox/github" || got.Body != rawPayload {
				t.Errorf("got %s %s %q, want POST /v1/inbox/github with the raw bytes", got.Method, got.URI, got.Body)
			}
			if ct := got.Header.Get("Content-Type"); ct != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", ct, tt.wantType)
			}
			if got.Header.Get("Idempotency-Key") != "dlv_9" || got.Header.Get("Authorization") != "Bearer crm-token-0123" {
				t.Errorf("headers %v", got.Header)
			}
		})
	}
}

func TestBodyRawRender(t *testing.T) {
	_, e := rawEvent(t, "application/json")
	a := mustCompile(t, Spec{URL: "https://api.example.com/v1/inbox/{{ hook }}", BodyRaw: true})
	req, err := a.Render(e)
	if err != nil || string(req.Body) != rawPayload || req.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Render = %q %v, %v; want the raw bytes", req.Body, req.Header, err)
	}
}

func TestBodyRawExcludesBody(t *testing.T) {
	_, err := Compile("forward", Spec{URL: "https://api.example.com/x", BodyRaw: true, Body: map[string]any{"a": 1}})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "body_raw" || !strings.Contains(err.Error(), "so body cannot be set too") {
		t.Fatalf("err = %v, want a body_raw field error", err)
	}
}
