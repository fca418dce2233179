package actions

import (
	"reflect"
	"testing"

	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// An action reads of a payload what its templates read, wherever they
// are, and renders the same from that part as from the whole.
func TestActionBodyShape(t *testing.T) {
	a, err := Compile("ship", Spec{
		URL:     "http://127.0.0.1:9/orders/{{ body.order.id }}?c={{ body.customer }}",
		Headers: map[string]string{"X-Kind": "{{ body.type }}", "X-Static": "plain"},
		Query:   map[string]string{"zone": "{{ body.shipping.zone }}"},
		Auth:    &AuthSpec{Bearer: "{{ body.auth.token }}"},
		Body: map[string]any{
			"first": "{{ body.items[0] }}",
			"deep":  map[string]any{"list": []any{"{{ body.data.x }}", 1, "literal"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "body.auth.token, body.customer, body.data.x, body.items, body.order.id, body.shipping.zone, body.type"
	if got := a.BodyShape().String(); got != want {
		t.Errorf("reads %q, want %q", got, want)
	}
	raw := []byte(`{"order":{"id":"o-1","lines":[1,2]},"customer":"c 9","type":"paid","shipping":{"zone":"EU","cost":3},` +
		`"auth":{"token":"t0k3n","user":"u"},"items":[{"sku":"a"},{"sku":"b"}],"data":{"x":{"y":[true]},"z":0},"noise":{"n":[1]}}`)
	ev := store.Event{ID: "evt_1", Hook: "shop", Body: raw, Headers: map[string]string{"content-type": "application/json"}}
	whole, err := rules.DecodeBody(raw, "application/json", 0)
	if err != nil {
		t.Fatal(err)
	}
	shaped, err := rules.DecodeBodyShaped(raw, "application/json", 0, 0, a.BodyShape())
	if err != nil {
		t.Fatal(err)
	}
	w, err := a.Render(rules.NewEnv(ev, whole))
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.Render(rules.NewEnv(ev, shaped))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w, s) {
		t.Errorf("rendered from the shaped payload:\n%+v\nfrom the whole:\n%+v", s, w)
	}

	plain, err := Compile("forward", Spec{URL: "http://127.0.0.1:9/in", BodyRaw: true, Headers: map[string]string{"X-A": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if plain.BodyShape() != nil {
		t.Errorf("a plain forward reads %q", plain.BodyShape())
	}
}
