package actions

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// events is a stored-event lookup backed by a map.
type events map[string]store.Event

func (m events) Event(_ context.Context, id string) (store.Event, error) {
	ev, ok := m[id]
	if !ok {
		return store.Event{}, store.ErrNotFound
	}
	return ev, nil
}

// failingEvents is a store that cannot answer.
type failingEvents struct{}

func (failingEvents) Event(context.Context, string) (store.Event, error) {
	return store.Event{}, errors.New("connection reset")
}

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
			ev, e := rawEvent(t, tt.contentType)
			c := NewClient(ClientOptions{UserAgent: "hookrelay/test", Events: events{ev.ID: ev}})
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

func TestBodyRawFailures(t *testing.T) {
	_, e := rawEvent(t, "application/json")
	tests := []struct {
		name      string
		events    Events
		permanent bool
		msg       string
	}{
		{"no event source", nil, true, "body_raw: the stored event cannot be read here (no event source)"},
		{"event gone", events{}, true, "body_raw: event evt_raw is no longer stored"},
		{"store fails", failingEvents{}, false, "body_raw: reading the stored event: connection reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			c := NewClient(ClientOptions{Events: tt.events})
			res := c.Do(context.Background(), mustCompile(t, Spec{URL: rc.URL + "/x", BodyRaw: true}), e, "dlv_1")
			if res.Err == nil || errors.Is(res.Err, ErrPermanent) != tt.permanent || res.Err.Error() != tt.msg {
				t.Fatalf("Err = %v (permanent %t), want %q (permanent %t)", res.Err, errors.Is(res.Err, ErrPermanent), tt.msg, tt.permanent)
			}
			if n := len(rc.Hits()); n != 0 {
				t.Errorf("receiver got %d requests", n)
			}
		})
	}
}

func TestBodyRawRender(t *testing.T) {
	_, e := rawEvent(t, "application/json")
	a := mustCompile(t, Spec{URL: "https://api.example.com/v1/inbox/{{ hook }}", BodyRaw: true})
	req, err := a.RenderRaw(e, []byte(rawPayload))
	if err != nil || string(req.Body) != rawPayload || req.Header.Get("Content-Type") != "application/json" {
		t.Errorf("RenderRaw = %q %v, %v", req.Body, req.Header, err)
	}
	// Without the raw bytes, Render shows the same value as JSON.
	req, err = a.Render(e)
	want := `{"alpha":"café <b>","big":1.2345678901234568e+29,"list":[1,2],"zeta":1.1}`
	if err != nil || string(req.Body) != want {
		t.Errorf("Render body = %s, %v; want %s", req.Body, err, want)
	}
}

func TestBodyRawExcludesBody(t *testing.T) {
	_, err := Compile("forward", Spec{URL: "https://api.example.com/x", BodyRaw: true, Body: map[string]any{"a": 1}})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "body_raw" || !strings.Contains(err.Error(), "remove body: or body_raw:") {
		t.Fatalf("err = %v, want a body_raw field error", err)
	}
}
