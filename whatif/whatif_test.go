package whatif

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/redact"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

const baseRules = `rules:
  - name: paid
    when: body.data.status == "paid"
    actions: [notify, archive]
  - name: everything
    when: hook == "orders"
    actions: [archive]
`

const baseConfig = `egress:
  allow_networks: [127.0.0.0/8]
hooks:
  orders:
    verify:
      scheme: none
    auth:
      allow_ips: [127.0.0.1]
    rules: [rules.yaml]
actions:
  notify:
    method: POST
    url: http://127.0.0.1:9/v1/orders/{{ body.data.id }}
    headers:
      X-Source: shop
      X-Sent-At: "{{ string(now().UnixNano()) }}"
    auth:
      bearer: ${CRM_TOKEN}
    body:
      status: "{{ body.data.status }}"
      lines: "{{ body.data.lines }}"
  archive:
    method: PUT
    url: http://127.0.0.1:9/v1/archive/{{ body.data.id }}
`

// load writes a config and its rules to a folder of their own and loads it.
func load(t *testing.T, cfg, rules string, env map[string]string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	for name, text := range map[string]string{"hookrelay.yaml": cfg, "rules.yaml": rules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := config.Load(filepath.Join(dir, "hookrelay.yaml"), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var token = map[string]string{"CRM_TOKEN": "crm-token-1f2e3d4c"}

func event(id, status string, at time.Time) store.Event {
	return store.Event{
		ID: id, Hook: "orders", ReceivedAt: at,
		Headers: map[string]string{"content-type": "application/json"},
		Body:    []byte(fmt.Sprintf(`{"data":{"id":"o-%s","status":%q,"lines":[{"sku":"A","qty":1},{"sku":"B","qty":2}]}}`, id, status)),
	}
}

func TestCompareSameConfigReportsNothing(t *testing.T) {
	cur := load(t, baseConfig, baseRules, token)
	cand := load(t, baseConfig, baseRules, token)
	ev := event("evt_1", "paid", time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC))
	// now() in a template renders the event's time in both configs.
	got := Compare(cur, cand, ev, nil)
	if got.Differs() {
		t.Errorf("the same config differs: %+v", got)
	}
	plan, err := Plan(cur, ev, ev.ReceivedAt)
	if err != nil || len(plan) != 2 {
		t.Fatalf("plan = %+v, %v; want notify and archive", plan, err)
	}
	if v := plan[0].Request.Header.Get("X-Sent-At"); v != fmt.Sprint(ev.ReceivedAt.UnixNano()) {
		t.Errorf("now() rendered %s, want the event's time %d", v, ev.ReceivedAt.UnixNano())
	}
}

func TestCompareTemplateChange(t *testing.T) {
	cur := load(t, baseConfig, baseRules, token)
	changed := strings.Replace(baseConfig, `status: "{{ body.data.status }}"`, `status: "{{ upper(body.data.status) }}"`, 1)
	changed = strings.Replace(changed, "X-Source: shop", "X-Source: shop-v2", 1)
	cand := load(t, changed, baseRules, token)
	got := Compare(cur, cand, event("evt_1", "paid", time.Now()), nil)
	if len(got.Gained)+len(got.Lost) != 0 || len(got.Changed) != 1 {
		t.Fatalf("got %+v, want one changed action", got)
	}
	want := []Change{
		{Field: "header X-Source", From: json.RawMessage(`"shop"`), To: json.RawMessage(`"shop-v2"`)},
		{Field: "body.status", From: json.RawMessage(`"paid"`), To: json.RawMessage(`"PAID"`)},
	}
	if d := got.Changed[0]; d.Action != "notify" || d.Rule != "paid" || !cmp.Equal(d.Changes, want) {
		t.Errorf("changed = %+v, want notify by rule paid with %s", d, cmp.Diff(want, d.Changes))
	}
	// An event the changed template renders the same for differs in nothing.
	if got := Compare(cur, cand, event("evt_2", "open", time.Now()), nil); got.Differs() {
		t.Errorf("an event only archived differs: %+v", got)
	}
}

func TestCompareDroppedRule(t *testing.T) {
	cur := load(t, baseConfig, baseRules, token)
	dropped := `rules:
  - name: everything
    when: hook == "orders"
    actions: [archive]
`
	cand := load(t, baseConfig, dropped, token)
	got := Compare(cur, cand, event("evt_1", "paid", time.Now()), nil)
	// archive is still made, by the other rule: it is not a change.
	want := []Delivery{{Action: "notify", Rule: "paid", Method: "POST", URL: "http://127.0.0.1:9/v1/orders/o-evt_1"}}
	if !cmp.Equal(got.Lost, want) || len(got.Gained) != 0 || len(got.Changed) != 0 {
		t.Errorf("got %+v, want lost %+v alone", got, want)
	}
	// The other way round, the action is gained.
	back := Compare(cand, cur, event("evt_1", "paid", time.Now()), nil)
	if !cmp.Equal(back.Gained, want) || len(back.Lost) != 0 {
		t.Errorf("reversed: %+v, want gained %+v", back, want)
	}
}

func TestCompareMasksSecrets(t *testing.T) {
	cur := load(t, baseConfig, baseRules, token)
	rotated := map[string]string{"CRM_TOKEN": "crm-token-9a8b7c6d"}
	// The new token is also put in the body, where no name marks it.
	leaky := strings.Replace(baseConfig, `lines: "{{ body.data.lines }}"`, "lines: \"{{ body.data.lines }}\"\n      note: ${CRM_TOKEN}", 1)
	cand, err := loadWith(t, leaky, func(k string) (string, bool) { v, ok := rotated[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	red := redact.Join(cur.Redactor(), cand.Redactor())
	got := Compare(cur, cand, event("evt_1", "paid", time.Now()), red)
	raw, _ := json.Marshal(got)
	for _, secret := range []string{token["CRM_TOKEN"], rotated["CRM_TOKEN"]} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("a secret is shown: %s", raw)
		}
	}
	if len(got.Changed) != 1 {
		t.Fatalf("got %s, want notify changed", raw)
	}
	want := []Change{
		{Field: "header Authorization", From: json.RawMessage(`"[redacted]"`), To: json.RawMessage(`"[redacted]"`), SecretDiffers: true},
		{Field: "body.note", To: json.RawMessage(`"[redacted]"`)},
	}
	if !cmp.Equal(got.Changed[0].Changes, want) {
		t.Errorf("changes: %s", cmp.Diff(want, got.Changed[0].Changes))
	}
	var b strings.Builder
	_ = (&Report{Events: []Event{got}}).WriteText(&b)
	if !strings.Contains(b.String(), `header Authorization: "[redacted]" → "[redacted]" (the secret differs)`) ||
		!strings.Contains(b.String(), `body.note: (none) → "[redacted]"`) {
		t.Errorf("text:\n%s", b.String())
	}
}

func loadWith(t *testing.T, cfg string, lookup func(string) (string, bool)) (*config.Config, error) {
	dir := t.TempDir()
	for name, text := range map[string]string{"hookrelay.yaml": cfg, "rules.yaml": baseRules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return config.Load(filepath.Join(dir, "hookrelay.yaml"), lookup)
}

func TestDiffBodyPaths(t *testing.T) {
	var out []Change
	a := map[string]any{"a": map[string]any{"b": "x", "gone": true}, "list": []any{"1", "2"}, "odd key": 1, "password": "p1"}
	b := map[string]any{"a": map[string]any{"b": "y", "new": nil}, "list": []any{"1", "3", "4"}, "odd key": 2, "password": "p2"}
	diffValue("body", "", a, b, true, true, nil, &out)
	var got []string
	for _, c := range out {
		got = append(got, fmt.Sprintf("%s: %s → %s %v", c.Field, orNone(c.From), orNone(c.To), c.SecretDiffers))
	}
	want := []string{
		`body.a.b: "x" → "y" false`,
		`body.a.gone: true → (none) false`,
		`body.a.new: (none) → null false`,
		`body.list[1]: "2" → "3" false`,
		`body.list[2]: (none) → "4" false`,
		`body["odd key"]: 1 → 2 false`,
		`body.password: "[redacted]" → "[redacted]" true`,
	}
	if !cmp.Equal(got, want) {
		t.Errorf("%s", cmp.Diff(want, got))
	}
}

// openStore opens a store on a new SQLite file, closed when t ends.
func openStore(t *testing.T) *sqlitestore.Store {
	t.Helper()
	st, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "hookrelay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestRun reads a real store: the window, the hook, the limit, newest
// first, and nothing written.
func TestRun(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	base := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	for i := range 7 {
		ev := event(store.NewID("evt", base.Add(time.Duration(i)*time.Minute)), "paid", base.Add(time.Duration(i)*time.Minute))
		ev.IdempotencyKey = ev.ID
		if i == 6 {
			ev.Hook = "other"
		}
		if _, err := st.Accept(ctx, store.Accept{Event: ev, KeyTTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	cur := load(t, baseConfig, baseRules, token)
	cand := load(t, baseConfig, strings.Replace(baseRules, "[notify, archive]", "[archive]", 1), token)
	w := Window{From: base.Add(time.Minute), To: base.Add(6 * time.Minute), Limit: 3}
	rep, err := Run(ctx, st, cur, cand, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Minutes 1 to 5 are in the window; the newest three are compared.
	if rep.Totals != (Totals{Events: 3, Differing: 3, Lost: 3}) || !rep.Truncated {
		t.Errorf("totals %+v truncated %v, want 3 lost of 3 events, truncated", rep.Totals, rep.Truncated)
	}
	var at []time.Time
	for _, e := range rep.Events {
		at = append(at, e.ReceivedAt)
	}
	if want := []time.Time{base.Add(5 * time.Minute), base.Add(4 * time.Minute), base.Add(3 * time.Minute)}; !cmp.Equal(at, want) {
		t.Errorf("events at %v, want the newest first %v", at, want)
	}
	w.Limit = 5
	if rep, err = Run(ctx, st, cur, cand, w, nil); err != nil {
		t.Fatal(err)
	}
	if rep.Totals.Events != 5 || rep.Truncated {
		t.Errorf("a limit of exactly the window's events: %+v truncated %v", rep.Totals, rep.Truncated)
	}
	w.Limit = 10
	w.To = base.Add(time.Hour)
	if rep, err = Run(ctx, st, cur, cand, w, nil); err != nil {
		t.Fatal(err)
	}
	if rep.Totals != (Totals{Events: 6, Differing: 5, Lost: 5}) || rep.Truncated {
		t.Errorf("whole window: %+v truncated %v, want 6 events (one of a hook neither config has), 5 lost", rep.Totals, rep.Truncated)
	}
	w.Hook = "other"
	if rep, err = Run(ctx, st, cur, cand, w, nil); err != nil {
		t.Fatal(err)
	}
	if rep.Totals != (Totals{Events: 1}) || rep.Differs() {
		t.Errorf("hook other: %+v, want one event, nothing differing", rep.Totals)
	}
	if _, err := Run(ctx, st, cur, cand, Window{From: base, To: base}, nil); err == nil {
		t.Error("an empty window ran")
	}
}

// A change of how an action signs is reported by its description; a
// rotated secret, which reads the same, as a secret that differs.
func TestCompareSigning(t *testing.T) {
	const signed = "\n  signed:\n    url: http://127.0.0.1:9/v1/signed\n    sign: {scheme: standard-webhooks, secrets: [\"${SIGN_A}\", \"${SIGN_B:-}\"]}\n"
	rules := strings.Replace(baseRules, "actions: [archive]", "actions: [archive, signed]", 1)
	keys := map[string]string{
		"SIGN_A": "whsec_" + "c2lnbmluZy1rZXktYS0wMTIzNDU2Nzg5YWJjZGVm", "SIGN_B": "whsec_" + "c2lnbmluZy1rZXktYi0wMTIzNDU2Nzg5YWJjZGVm",
		"SIGN_C": "whsec_" + "c2lnbmluZy1rZXktYy0wMTIzNDU2Nzg5YWJjZGVm", "CRM_TOKEN": token["CRM_TOKEN"],
	}
	with := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range keys {
			out[k] = v
		}
		for k, v := range m {
			if v == "" {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
		return out
	}
	cur := load(t, baseConfig+signed, rules, keys)
	ev := event("evt_1", "open", time.Now())
	if got := Compare(cur, load(t, baseConfig+signed, rules, keys), ev, nil); got.Differs() {
		t.Errorf("the same signing differs: %+v", got)
	}
	red := cur.Redactor()
	dropped := Compare(cur, load(t, baseConfig+signed, rules, with(map[string]string{"SIGN_B": ""})), ev, red)
	want := []Change{{Field: "sign", From: json.RawMessage(`"standard-webhooks, 2 secrets"`), To: json.RawMessage(`"standard-webhooks, 1 secret"`)}}
	if len(dropped.Changed) != 1 || !cmp.Equal(dropped.Changed[0].Changes, want) {
		t.Errorf("old secret dropped: %+v, want %+v", dropped.Changed, want)
	}
	rotated := Compare(cur, load(t, baseConfig+signed, rules, with(map[string]string{"SIGN_B": keys["SIGN_C"]})), ev, red)
	want = []Change{{Field: "sign", From: json.RawMessage(`"standard-webhooks, 2 secrets"`), To: json.RawMessage(`"standard-webhooks, 2 secrets"`), SecretDiffers: true}}
	if len(rotated.Changed) != 1 || !cmp.Equal(rotated.Changed[0].Changes, want) {
		t.Errorf("secret rotated: %+v, want %+v", rotated.Changed, want)
	}
	raw, _ := json.Marshal([]Event{dropped, rotated})
	for _, k := range []string{"SIGN_A", "SIGN_B", "SIGN_C"} {
		if strings.Contains(string(raw), strings.TrimPrefix(keys[k], "whsec_")) {
			t.Errorf("the comparison shows %s: %s", k, raw)
		}
	}
}

// slowSource reads a store's events as a remote one would, a little slowly,
// and counts how many reads run at once; the event gone is reported gone,
// as one pruned between the listing and its read.
type slowSource struct {
	Source
	gone     string
	mu       sync.Mutex
	inflight int
	most     int
}

func (s *slowSource) Event(ctx context.Context, id string) (store.Event, error) {
	s.mu.Lock()
	s.inflight++
	s.most = max(s.most, s.inflight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight--
		s.mu.Unlock()
	}()
	time.Sleep(2 * time.Millisecond)
	if id == s.gone {
		return store.Event{}, fmt.Errorf("event %s: %w", id, store.ErrNotFound)
	}
	return s.Source.Event(ctx, id)
}

// TestRunReadsAPageAtOnce: the events of a page are read several at a
// time, and compared and reported in the listing's order, newest first; one
// gone meanwhile is skipped.
func TestRunReadsAPageAtOnce(t *testing.T) {
	ctx := t.Context()
	st := openStore(t)
	base := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 40 {
		at := base.Add(time.Duration(i) * time.Second)
		ev := event(store.NewID("evt", at), "paid", at)
		if _, err := st.Accept(ctx, store.Accept{Event: ev}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	src := &slowSource{Source: st, gone: ids[30]}
	cur := load(t, baseConfig, baseRules, token)
	cand := load(t, baseConfig, strings.Replace(baseRules, "[notify, archive]", "[archive]", 1), token)
	rep, err := Run(ctx, src, cur, cand, Window{From: base, To: base.Add(time.Hour), Limit: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals != (Totals{Events: 39, Differing: 39, Lost: 39}) {
		t.Errorf("totals %+v, want 39 events compared (one gone), each losing a delivery", rep.Totals)
	}
	var got []string
	for _, e := range rep.Events {
		got = append(got, e.ID)
	}
	var want []string
	for i := len(ids) - 1; i >= 0; i-- {
		if i != 30 {
			want = append(want, ids[i])
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events reported (-want +got), newest first:\n%s", diff)
	}
	if src.most < 2 {
		t.Errorf("at most %d read at once, want a page's events read together", src.most)
	}
}
