package gateway_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/gateway"
	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// The gateway decodes of a payload only what the hook's expressions read
// (config.Hook.Body): the key, the rules, the response and the order_by of
// the actions the rules name must each still see their fields, and a
// payload malformed where nothing reads it is still refused.
func TestCatchBuildsWhatItsExpressionsRead(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"hookrelay.yaml": `
hooks:
  shop:
    verify: {scheme: none}
    token: shop-token-0123456789ab
    idempotency:
      key: body.order.id
    rules: [rules.yaml]
    response:
      when: body.reply != nil
      body: body.reply.text
actions:
  ship:
    url: http://127.0.0.1:9/ship
    order_by: body.customer.id
  unused:
    url: http://127.0.0.1:9/unused
    order_by: body.elsewhere
`,
		"rules.yaml": `
rules:
  - name: paid
    when: body.type == "order.paid" && body.order.total > 100
    actions: [ship]
`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "hookrelay.yaml"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Hooks["shop"].Body.String(), "body.customer.id, body.order.id, body.order.total, body.reply, body.type"; got != want {
		t.Errorf("hook reads %q, want %q", got, want)
	}
	st := tempStore(t)
	h := gateway.New(st, cfg, gateway.Options{}).Handler()
	post := func(body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/hooks/catch/shop/shop-token-0123456789ab", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}

	body := `{"type":"order.paid","order":{"id":"o-7","total":250,"lines":[{"sku":"r-1"},{"sku":"r-2"}]},` +
		`"customer":{"id":"c-9","name":"Ada"},"reply":{"text":"thanks"},"noise":{"a":[1,2,{"b":null}],"c":"d"}}`
	w := post(body)
	if w.Code != http.StatusOK || w.Body.String() != "thanks" {
		t.Fatalf("POST = %d %q, want the response's 200 thanks", w.Code, w.Body)
	}
	ctx := context.Background()
	ev, err := st.Event(ctx, w.Header().Get("Hookrelay-Event-Id"))
	if err != nil {
		t.Fatal(err)
	}
	if ev.IdempotencyKey != "o-7" || !bytes.Equal(ev.Body, []byte(body)) || strings.Join(ev.MatchedRules, ",") != "paid" {
		t.Errorf("event key %q, rules %v, body %s", ev.IdempotencyKey, ev.MatchedRules, ev.Body)
	}
	if ev.Trace == nil || len(ev.Trace.Rules) != 1 || len(ev.Trace.Rules[0].Fields) != 2 ||
		ev.Trace.Rules[0].Fields[0].Value != `"order.paid"` || ev.Trace.Rules[0].Fields[1].Value != "250" {
		t.Errorf("trace %+v", ev.Trace)
	}
	whole, err := rules.DecodeBody([]byte(body), "application/json", 0)
	if err != nil {
		t.Fatal(err)
	}
	lane, err := cfg.Actions["ship"].Lane(rules.NewEnv(ev, whole))
	if err != nil || lane == "" {
		t.Fatalf("lane of the whole payload: %q, %v", lane, err)
	}
	ds, err := st.Deliveries(ctx, ev.ID)
	if err != nil || len(ds) != 1 || ds[0].Action != "ship" || ds[0].Lane != lane {
		t.Errorf("deliveries %+v (%v), want one to ship in lane %q", ds, err, lane)
	}

	// Malformed where no expression reads: refused, nothing stored.
	for _, bad := range []string{
		`{"type":"order.paid","order":{"id":"o-8","total":250},"noise":{"a":1,"a":2}}`,
		`{"type":"order.paid","order":{"id":"o-8","total":250},"noise":[1,2,}`,
		`{"type":"order.paid","order":{"id":"o-8","total":250},"noise":"\q"}`,
	} {
		if w := post(bad); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "invalid payload") {
			t.Errorf("POST %s = %d %s, want 400 invalid payload", bad, w.Code, w.Body)
		}
	}
	if evs, _, err := st.ListEvents(ctx, store.EventFilter{Limit: 10}); err != nil || len(evs) != 1 {
		t.Errorf("stored events: %d, %v, want the one", len(evs), err)
	}
}
