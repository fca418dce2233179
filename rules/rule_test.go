package rules

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustRule(t *testing.T, name, when string, actions ...string) Rule {
	t.Helper()
	p, err := CompileCondition(when)
	if err != nil {
		t.Fatalf("rule %s: %v", name, err)
	}
	return Rule{Name: name, When: p, Actions: actions}
}

func TestSetMatch(t *testing.T) {
	set := &Set{Rules: []Rule{
		mustRule(t, "paid", `body.type == "order.paid"`, "notify", "audit"),
		mustRule(t, "paid-audit", `body.type == "order.paid"`, "audit"),
		mustRule(t, "big", `body.total > 100`, "notify", "review"),
		mustRule(t, "broken", `body.total / body.count > 1`, "broken-action"),
		mustRule(t, "never", `false`, "never-action"),
		mustRule(t, "vip", `body.customer.tier == "vip"`, "audit", "vip-desk"),
	}}
	tests := []struct {
		name    string
		body    string
		want    []Match
		fired   []string // rules whose condition held
		errRule []string // rules expected to report an error
	}{
		{
			name: "first rule wins a shared action",
			body: `{"type":"order.paid","total":150,"count":1,"customer":{"tier":"vip"}}`,
			want: []Match{
				{"paid", "notify"}, {"paid", "audit"},
				{"big", "review"},
				{"broken", "broken-action"},
				{"vip", "vip-desk"},
			},
			fired: []string{"paid", "paid-audit", "big", "broken", "vip"},
		},
		{
			name:    "a failing rule does not stop the others",
			body:    `{"type":"order.paid","total":"lots","customer":{"tier":"vip"}}`,
			want:    []Match{{"paid", "notify"}, {"paid", "audit"}, {"vip", "vip-desk"}},
			fired:   []string{"paid", "paid-audit", "vip"},
			errRule: []string{"big", "broken"},
		},
		{
			// A missing field compares equal to nothing (no error), but
			// ordering nil against a number is an error, reported.
			name:    "missing fields",
			body:    `{"type":"order.created"}`,
			errRule: []string{"big", "broken"},
		},
		{
			name:    "empty body",
			body:    ``,
			errRule: []string{"big", "broken"},
		},
		{
			name:  "only the later rule",
			body:  `{"type":"x","total":5,"count":10,"customer":{"tier":"vip"}}`,
			want:  []Match{{"vip", "audit"}, {"vip", "vip-desk"}},
			fired: []string{"vip"},
		},
		{
			name:  "a rule whose actions were all taken still fired",
			body:  `{"type":"order.paid","total":5,"count":10,"customer":{"tier":"gold"}}`,
			want:  []Match{{"paid", "notify"}, {"paid", "audit"}},
			fired: []string{"paid", "paid-audit"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := envWith(mustDecode(t, tt.body))
			got, errs := set.Match(e)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("matches (-want +got)\n%s", diff)
			}
			fired, matches, evalErrs := set.Evaluate(e)
			if diff := cmp.Diff(tt.fired, fired); diff != "" {
				t.Errorf("fired (-want +got)\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, matches); diff != "" || len(evalErrs) != len(errs) {
				t.Errorf("Evaluate differs from Match: %s %v", diff, evalErrs)
			}
			if len(errs) != len(tt.errRule) {
				t.Fatalf("errors = %v, want one for each of %v", errs, tt.errRule)
			}
			for i, e := range errs {
				if !strings.HasPrefix(e.Error(), `rule "`+tt.errRule[i]+`"`) {
					t.Errorf("error %d = %q, want one naming rule %q", i, e, tt.errRule[i])
				}
			}
		})
	}
}

func TestSetMatchEdgeCases(t *testing.T) {
	value, err := CompileValue(`body.type`)
	if err != nil {
		t.Fatal(err)
	}
	set := &Set{Rules: []Rule{
		{Name: "no-condition", Actions: []string{"a"}},
		{Name: "not-bool", When: value, Actions: []string{"b"}},
		mustRule(t, "ok", `true`, "c", "c"),
	}}
	got, errs := set.Match(envWith(mustDecode(t, `{"type":"x"}`)))
	if diff := cmp.Diff([]Match{{"ok", "c"}}, got); diff != "" {
		t.Errorf("matches (-want +got)\n%s", diff)
	}
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "no condition") || !strings.Contains(errs[1].Error(), "not a boolean") {
		t.Errorf("errors = %v", errs)
	}

	var none *Set
	if m, e := none.Match(Env{}); m != nil || e != nil {
		t.Errorf("nil set matched %v, %v", m, e)
	}
}
