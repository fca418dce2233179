package rules_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// traceOf evaluates one rule with condition when against body (JSON) and
// headers, and returns its trace.
func traceOf(t *testing.T, when, body string, headers map[string]string) store.RuleTrace {
	t.Helper()
	p, err := rules.CompileCondition(when)
	if err != nil {
		t.Fatalf("compile %q: %v", when, err)
	}
	b, err := rules.DecodeBody([]byte(body), "application/json", 64)
	if err != nil {
		t.Fatal(err)
	}
	set := &rules.Set{Rules: []rules.Rule{{Name: "r", When: p, Actions: []string{"a"}}}}
	env := rules.NewEnv(store.Event{ID: "evt_1", Hook: "h", Headers: headers}, b).Limit(rules.DefaultLimits)
	_, _, _, tr := set.Trace(env)
	if len(tr) != 1 {
		t.Fatalf("trace has %d rules, want 1", len(tr))
	}
	return tr[0]
}

func TestTraceFields(t *testing.T) {
	const contact = `{"event":"CONTACT_UPDATED","data":{"status":"CANCELLED","tags":["vip","wine"],
		"items":[{"sku":"A1","qty":1},{"sku":"B2","qty":5}],"note":null}}`
	tests := []struct {
		name, when string
		result     string
		fields     []store.FieldTrace
	}{
		{"nested member", `body.event == "CONTACT_UPDATED" && body.data.status == "ACTIVE"`, store.RuleNotMatched, []store.FieldTrace{
			{Field: "body.event", Value: `"CONTACT_UPDATED"`, Wanted: []string{`== "CONTACT_UPDATED"`}},
			{Field: "body.data.status", Value: `"CANCELLED"`, Wanted: []string{`== "ACTIVE"`}},
		}},
		{"index access", `body.data.items[0].sku == "A1" && body.data.items[-1].qty > 2`, store.RuleMatched, []store.FieldTrace{
			{Field: "body.data.items[0].sku", Value: `"A1"`, Wanted: []string{`== "A1"`}},
			{Field: "body.data.items[-1].qty", Value: `5`, Wanted: []string{`> 2`}},
		}},
		{"constant on the left", `2 < body.data.items[1].qty`, store.RuleMatched, []store.FieldTrace{
			{Field: "body.data.items[1].qty", Value: `5`, Wanted: []string{`> 2`}},
		}},
		{"in a list", `body.data.status in ["ACTIVE", "PAUSED"]`, store.RuleNotMatched, []store.FieldTrace{
			{Field: "body.data.status", Value: `"CANCELLED"`, Wanted: []string{`in ["ACTIVE", "PAUSED"]`}},
		}},
		{"not in", `body.data.status not in ["CANCELLED"]`, store.RuleNotMatched, []store.FieldTrace{
			{Field: "body.data.status", Value: `"CANCELLED"`, Wanted: []string{`not in ["CANCELLED"]`}},
		}},
		{"contains", `"gold" in body.data.tags`, store.RuleNotMatched, []store.FieldTrace{
			{Field: "body.data.tags", Value: `["vip", "wine"]`, Wanted: []string{`contains "gold"`}},
		}},
		{"string operators", `body.data.status startsWith "CAN" && body.event matches "^CONTACT_" && not (body.event endsWith "_DELETED")`, store.RuleMatched, []store.FieldTrace{
			{Field: "body.data.status", Value: `"CANCELLED"`, Wanted: []string{`startsWith "CAN"`}},
			{Field: "body.event", Value: `"CONTACT_UPDATED"`, Wanted: []string{`matches "^CONTACT_"`, `not endsWith "_DELETED"`}},
		}},
		{"a negation flips only its own comparison", `!(body.event == "CONTACT_DELETED") && not (body.data.items[0].qty > body.data.items[1].qty)`, store.RuleMatched, []store.FieldTrace{
			{Field: "body.event", Value: `"CONTACT_UPDATED"`, Wanted: []string{`not == "CONTACT_DELETED"`}},
			{Field: "body.data.items[0].qty", Value: `1`},
			{Field: "body.data.items[1].qty", Value: `5`},
		}},
		{"not equal", `body.data.status != "CANCELLED"`, store.RuleNotMatched, []store.FieldTrace{
			{Field: "body.data.status", Value: `"CANCELLED"`, Wanted: []string{`!= "CANCELLED"`}},
		}},
		{"one field, two comparisons", `body.data.status == "ACTIVE" || body.data.status == "PAUSED"`, store.RuleNotMatched, []store.FieldTrace{
			{Field: "body.data.status", Value: `"CANCELLED"`, Wanted: []string{`== "ACTIVE"`, `== "PAUSED"`}},
		}},
		{"absent fields", `body.data.email == "a@b.c" || body.missing.deep == 1`, store.RuleNotMatched, []store.FieldTrace{
			{Field: "body.data.email", Absent: true, Wanted: []string{`== "a@b.c"`}},
			{Field: "body.missing.deep", Absent: true, Wanted: []string{`== 1`}},
		}},
		{"null is not absent", `body.data.note == nil`, store.RuleMatched, []store.FieldTrace{
			{Field: "body.data.note", Value: `null`, Wanted: []string{`== nil`}},
		}},
		{"headers and optional chains, written plainly", `headers["x-kind"] == "update" && body?.data?.status == "CANCELLED"`, store.RuleMatched, []store.FieldTrace{
			{Field: `headers["x-kind"]`, Value: `"update"`, Wanted: []string{`== "update"`}},
			{Field: "body.data.status", Value: `"CANCELLED"`, Wanted: []string{`== "CANCELLED"`}},
		}},
		{"a predicate's own fields are not the event's", `any(body.data.items, .sku == "B2")`, store.RuleMatched, []store.FieldTrace{
			{Field: "body.data.items", Value: `[{"qty": 1, "sku": "A1"}, {"qty": 5, "sku": "B2"}]`},
		}},
		{"a whole object, no comparison", `len(body.data) > 3`, store.RuleMatched, []store.FieldTrace{
			{Field: "body.data", Value: `{"items": [{"qty": 1, "sku": "A1"}, {"qty": 5, "sku": "B2"}], "note": null, "status": "CANCELLED", "tags": ["vip", "wine"]}`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := traceOf(t, tt.when, contact, map[string]string{"x-kind": "update"})
			want := store.RuleTrace{Rule: "r", Result: tt.result, Fields: tt.fields}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("trace of %s (-want +got):\n%s", tt.when, diff)
			}
		})
	}
}

// A condition that fails to evaluate is traced as an error, with the
// error and the fields it read.
func TestTraceError(t *testing.T) {
	got := traceOf(t, `body.data.count + 1 > 2`, `{"data":{"count":"seven"}}`, nil)
	if got.Result != store.RuleError || got.Error == "" {
		t.Fatalf("trace = %+v, want result error with its message", got)
	}
	if strings.Contains(got.Error, `rule "r"`) {
		t.Errorf("error %q repeats the rule's name, which the trace already holds", got.Error)
	}
	want := []store.FieldTrace{{Field: "body.data.count", Value: `"seven"`}}
	if diff := cmp.Diff(want, got.Fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}

	// An index past the end is an error of expr's; the trace shows the
	// element absent.
	got = traceOf(t, `body.items[7].sku == "x"`, `{"items":[{"sku":"a"}]}`, nil)
	if got.Result != store.RuleError || !strings.Contains(got.Error, "index out of range") {
		t.Errorf("trace = %+v, want an index error", got)
	}
	want = []store.FieldTrace{{Field: "body.items[7].sku", Absent: true, Wanted: []string{`== "x"`}}}
	if diff := cmp.Diff(want, got.Fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
}

// A long value is shortened; the trace is not a second copy of the payload.
func TestTraceLongValue(t *testing.T) {
	got := traceOf(t, `body.text == "x"`, `{"text":"`+strings.Repeat("é", 500)+`"}`, nil)
	v := got.Fields[0].Value
	if len(v) > 210 || !strings.HasSuffix(v, "…") || !strings.HasPrefix(v, `"éé`) {
		t.Errorf("value = %q (%d bytes), want it cut near 200 bytes with …", v, len(v))
	}
}

// Fields are read within the event's budget: once it is spent by a
// condition, the fields are not read and say so.
func TestTraceBudget(t *testing.T) {
	p, err := rules.CompileCondition(`body.n == 1 && any(body.a, {any(body.a, {# < 0})})`)
	if err != nil {
		t.Fatal(err)
	}
	set := &rules.Set{Rules: []rules.Rule{{Name: "slow", When: p}}}
	a := strings.Repeat("1,", 20000) + "1"
	b, _ := rules.DecodeBody([]byte(`{"n":1,"a":[`+a+`]}`), "application/json", 64)
	env := rules.NewEnv(store.Event{}, b).Limit(rules.Limits{Timeout: 20 * time.Millisecond})
	_, _, errs, tr := set.Trace(env)
	if len(errs) != 1 || tr[0].Result != store.RuleError {
		t.Fatalf("errs = %v, trace = %+v; want the slow rule over budget", errs, tr)
	}
	if f := tr[0].Fields[0]; f.Error == "" || f.Value != "" {
		t.Errorf("field = %+v, want it unread with an error", f)
	}
}
