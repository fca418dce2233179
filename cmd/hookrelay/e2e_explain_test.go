package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/gateway/admin"
	"github.com/hookrelay/hookrelay/store"
)

// TestExplain runs the real program on each store and reads events' traces
// back through the admin API and `hookrelay events explain`: an ignored
// OnCloudWine update of a cancelled contact explains which rule wanted
// what; the second of two configured secrets is named by its position; a
// duplicate shows on the original; a delivery answered 500 then 200 shows
// why its first attempt was retried and when the next was due; a Stripe
// event shows its timestamp skew.
func TestExplain(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) { testExplain(t, b.url(t)) })
}

func testExplain(t *testing.T, storeURL string) {
	dir := copyDemo(t)
	// A rotation: the OnCloudWine hook holds an older secret first and the
	// one the sender signs with second.
	cfgPath := filepath.Join(dir, "hookrelay.yaml")
	cfg := strings.Replace(readFile(t, cfgPath), "      secret: ${OCW_WEBHOOK_SECRET:-ocw-demo-secret}",
		"      secrets: [ocw-rotated-out-secret-77aa, \"${OCW_WEBHOOK_SECRET:-ocw-demo-secret}\"]", 1)
	if !strings.Contains(cfg, "ocw-rotated-out-secret-77aa") {
		t.Fatal("the demo config no longer names the OnCloudWine secret as this test expects")
	}
	writeFile(t, cfgPath, cfg)

	rc := newReceiver(t)
	rc.respond = func(path string, n int) int {
		if path == "/v1/contacts/ctc_8a41d07b" && n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	key := createKey(t, storeURL, "ops", "read")
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, retry: "200ms,200ms", config: cfgPath})
	st := openTestStore(t, storeURL)

	trace := func(t *testing.T, id string) *admin.EventTraceView {
		t.Helper()
		status, raw := srv.request(t, http.MethodGet, "/api/v1/events/"+id, nil, http.Header{"Authorization": {"Bearer " + key}})
		var ev admin.EventView
		if status != http.StatusOK || json.Unmarshal(raw, &ev) != nil {
			t.Fatalf("GET /api/v1/events/%s: %d %s", id, status, raw)
		}
		if ev.Trace == nil {
			t.Fatalf("event %s has no trace: %s", id, raw)
		}
		return ev.Trace
	}

	cancelled := payload(t, "oncloudwine-contact-cancelled.json")
	status, out := srv.post(t, http.MethodPost, "/hooks/catch/oncloudwine", cancelled, ocwSign(cancelled))
	if status != http.StatusAccepted {
		t.Fatalf("cancelled contact: %d %v", status, out)
	}
	ignored := out["id"].(string)
	// The same signed body again: a duplicate of the first.
	dupAt := time.Now().UTC()
	status, out = srv.post(t, http.MethodPost, "/hooks/catch/oncloudwine", cancelled, ocwSign(cancelled))
	if status != http.StatusOK || out["id"] != ignored || out["duplicate"] != true {
		t.Fatalf("repeat of the cancelled contact: %d %v, want a duplicate of %s", status, out, ignored)
	}

	t.Run("an ignored event explains itself through the API", func(t *testing.T) {
		tr := trace(t, ignored)
		if v := tr.Verification; v == nil || v.Scheme != "oncloudwine" || v.Secret != 2 || v.SkewMS != nil {
			t.Errorf("verification = %+v, want oncloudwine, secret 2, no skew (the scheme signs no time)", v)
		}
		if len(tr.Rules) != 3 {
			t.Fatalf("rules = %+v, want the hook's three", tr.Rules)
		}
		r := tr.Rules[0]
		if r.Rule != "active-contact-updated" || r.Result != store.RuleNotMatched {
			t.Errorf("first rule = %+v, want active-contact-updated not matched", r)
		}
		var status *admin.FieldView
		for i, f := range r.Fields {
			if f.Field == "body.data.status" {
				status = &r.Fields[i]
			}
		}
		if status == nil || status.Value != `"CANCELLED"` || len(status.Wanted) != 1 || status.Wanted[0] != `== "ACTIVE"` {
			t.Fatalf("field body.data.status = %+v in %+v", status, r.Fields)
		}
		if want := `body.data.status was "CANCELLED", wanted "ACTIVE"`; !strings.Contains(r.Explanation, want) {
			t.Errorf("explanation %q does not say %q", r.Explanation, want)
		}
		for _, r := range tr.Rules {
			if r.Result != store.RuleNotMatched {
				t.Errorf("rule %s: %s, want not matched", r.Rule, r.Result)
			}
		}
		if len(tr.Deliveries) != 0 {
			t.Errorf("deliveries = %+v, want none", tr.Deliveries)
		}
	})

	t.Run("a duplicate shows on the original", func(t *testing.T) {
		id := trace(t, ignored).Idempotency
		if id.Source != store.KeyFromExpression || id.Key == "" {
			t.Errorf("idempotency = %+v, want a key from the hook's expression", id)
		}
		if id.Duplicates != 1 || len(id.Arrivals) != 1 || id.Arrivals[0].Answer != "duplicate" {
			t.Fatalf("idempotency = %+v, want one duplicate arrival", id)
		}
		if at := id.Arrivals[0].At; at.Before(dupAt.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
			t.Errorf("duplicate arrived at %v, want about %v", at, dupAt)
		}
	})

	t.Run("events explain names the rule, the field, its value and the wanted value", func(t *testing.T) {
		text := cli(t, []string{"HOOKRELAY_API_KEY=" + key}, "events", "explain", ignored, "--server", srv.url(""))
		for _, want := range []string{
			"event       " + ignored,
			"oncloudwine, secret #2 matched",
			"rule active-contact-updated: not matched",
			`body.data.status was "CANCELLED", wanted "ACTIVE"`,
			`body.event was "CONTACT_UPDATED", wanted "CONTACT_UPDATED"`,
			"duplicates  1",
			"answered as a duplicate",
			"none: no rule matched",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("explain output lacks %q:\n%s", want, text)
			}
		}
		if strings.Contains(text, ocwSecret) || strings.Contains(text, "ocw-rotated-out-secret-77aa") {
			t.Errorf("explain output shows a secret:\n%s", text)
		}
	})

	t.Run("a retried delivery's attempts carry their reasons", func(t *testing.T) {
		body := payload(t, "oncloudwine-contact-updated.json")
		status, out := srv.post(t, http.MethodPost, "/hooks/catch/oncloudwine", body, ocwSign(body))
		if status != http.StatusAccepted {
			t.Fatalf("contact update: %d %v", status, out)
		}
		id := out["id"].(string)
		waitDelivery(t, st, id, store.DeliverySucceeded)
		tr := trace(t, id)
		if len(tr.Rules) == 0 || tr.Rules[0].Result != store.RuleMatched {
			t.Errorf("rules = %+v, want active-contact-updated matched", tr.Rules)
		}
		if len(tr.Deliveries) != 1 {
			t.Fatalf("deliveries = %+v, want one", tr.Deliveries)
		}
		d := tr.Deliveries[0]
		if d.Rule != "active-contact-updated" || d.Action != "contact-update" || d.Status != string(store.DeliverySucceeded) || !strings.HasPrefix(d.ID, "dlv_") {
			t.Errorf("delivery = %+v", d)
		}
		if len(d.Attempts) != 2 {
			t.Fatalf("attempts = %+v, want two", d.Attempts)
		}
		a1, a2 := d.Attempts[0], d.Attempts[1]
		if a1.N != 1 || a1.StatusCode != 500 || a1.Outcome != string(store.DeliveryRetrying) || a1.Reason != store.ReasonRetry {
			t.Errorf("attempt 1 = %+v, want 500, retrying, reason retry", a1)
		}
		if a1.NextAttemptAt == nil || a1.NextAttemptAt.Before(a1.StartedAt) || a1.NextAttemptAt.After(a1.StartedAt.Add(5*time.Second)) {
			t.Errorf("attempt 1 next try due %v, want shortly after %v", a1.NextAttemptAt, a1.StartedAt)
		} else if a2.StartedAt.Before(a1.NextAttemptAt.Add(-time.Millisecond)) {
			t.Errorf("attempt 2 started at %v, before attempt 1's next due time %v", a2.StartedAt, a1.NextAttemptAt)
		}
		if !strings.Contains(a1.Explanation, "retried because of 500") || !strings.Contains(a1.Explanation, "next try due") {
			t.Errorf("attempt 1 explanation = %q", a1.Explanation)
		}
		if a2.N != 2 || a2.StatusCode != 200 || a2.Outcome != string(store.DeliverySucceeded) || a2.Reason != store.ReasonSucceeded || a2.NextAttemptAt != nil {
			t.Errorf("attempt 2 = %+v, want 200, succeeded", a2)
		}
		text := cli(t, []string{"HOOKRELAY_API_KEY=" + key}, "events", "explain", id, "--server", srv.url(""))
		for _, want := range []string{"rule active-contact-updated → action contact-update: succeeded", "attempt 1 retried because of 500", "attempt 2 succeeded: 200"} {
			if !strings.Contains(text, want) {
				t.Errorf("explain output lacks %q:\n%s", want, text)
			}
		}
		if strings.Contains(text, crmToken) {
			t.Errorf("explain output shows the CRM token:\n%s", text)
		}
	})

	t.Run("a timestamped scheme shows its skew", func(t *testing.T) {
		body := payload(t, "stripe-payment-intent-succeeded.json")
		signed := time.Now().Add(-3 * time.Second)
		status, out := srv.post(t, http.MethodPost, "/hooks/catch/stripe", body, stripeSign(stripeSecret, body, signed))
		if status != http.StatusAccepted {
			t.Fatalf("stripe: %d %v", status, out)
		}
		tr := trace(t, out["id"].(string))
		v := tr.Verification
		if v == nil || v.Scheme != "stripe" || v.Secret != 1 || v.SignedAt == nil || v.SkewMS == nil {
			t.Fatalf("verification = %+v, want stripe, secret 1, a signed time and a skew", v)
		}
		if *v.SkewMS < 2000 || *v.SkewMS > 10000 {
			t.Errorf("skew = %dms, want about 3s", *v.SkewMS)
		}
		if tr.Idempotency.Source != "id in the signed body" {
			t.Errorf("key source = %q", tr.Idempotency.Source)
		}
	})

	raw, _ := json.Marshal(srv.output())
	if bytes.Contains(raw, []byte(ocwSecret)) {
		t.Error("the server logged the OnCloudWine secret")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
