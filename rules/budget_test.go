package rules

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/expr-lang/expr"
)

// testLimits are small, so that an attack is caught quickly; the bound each
// test asserts is generous next to them and far below what the evaluation
// takes unbounded (seconds to hours, or memory the machine lacks).
var testLimits = Limits{Timeout: 50 * time.Millisecond, Memory: 1 << 20}

const generous = 3 * time.Second

// maxAllocated is what an attack may make the process allocate in all:
// a few times its budget, for the evaluation's own bookkeeping.
const maxAllocated = 64 << 20

func ints(n int) []any {
	a := make([]any, n)
	for i := range a {
		a[i] = i
	}
	return a
}

// Every shape of expression a payload can blow up is stopped by the budget:
// an over-budget error, quickly, instead of a stuck core or a heap that
// grows until the process dies.
func TestBudgetStopsAttacks(t *testing.T) {
	bigJSON := "[" + strings.Repeat("[0,1,2,3],", 20000) + "0]"
	// A time case has memory to spare, a memory case time: each must be
	// stopped by the guard it is about.
	slow, big := Limits{Timeout: testLimits.Timeout, Memory: 1 << 30}, Limits{Timeout: time.Hour, Memory: testLimits.Memory}
	tests := []struct {
		name   string
		limits Limits
		src    string
		body   map[string]any
	}{
		{"quadratic nested loops", slow, `count(body.a, {any(body.a, {# < 0})}) > 0`, map[string]any{"a": ints(50000)}},
		{"cubic ranges sized by the payload", slow, `let r = 1..body.n; any(r, {any(r, {any(r, {# < 0})})})`, map[string]any{"n": 1000}},
		{"filter inside map", slow, `len(map(body.a, {len(filter(body.a, {# > 1}))})) > 0`, map[string]any{"a": ints(50000)}},
		{"payload compared with payload in a loop", slow, `count(body.a, {body.a == body.b}) < 0`, map[string]any{"a": ints(40000), "b": ints(40000)}},
		{"nested reduce", slow, `reduce(body.a, #acc + reduce(body.a, #acc + #, 0), 0) > 0`, map[string]any{"a": ints(50000)}},
		{"repeat", big, `len(repeat(body.s, body.n)) > 0`, map[string]any{"s": strings.Repeat("x", 1000), "n": 1000000}},
		{"replace of the empty string", big, `len(replace(body.s, "", body.r)) > 0`, map[string]any{"s": strings.Repeat("x", 100000), "r": strings.Repeat("y", 10000)}},
		{"string doubling in reduce", big, `len(reduce(1..40, #acc + #acc, body.s)) > 0`, map[string]any{"s": "ab"}},
		{"array doubling with concat", big, `len(reduce(1..40, concat(#acc, #acc), [1])) > 0`, nil},
		{"toJSON in a loop", big, `len(map(1..100000, toJSON(body))) > 0`, map[string]any{"a": ints(1000)}},
		{"string() in a loop", big, `len(map(1..100000, string(body.a))) > 0`, map[string]any{"a": ints(1000)}},
		{"join of a mapped payload", big, `len(join(map(1..100000, body.s))) > 0`, map[string]any{"s": strings.Repeat("x", 10000)}},
		{"split into characters in a loop", big, `all(1..1000, {len(split(body.s, "")) > 0})`, map[string]any{"s": strings.Repeat("x", 100000)}},
		{"upper in a loop", big, `len(map(1..100000, upper(body.s))) > 0`, map[string]any{"s": strings.Repeat("x", 100000)}},
		{"fromJSON in a loop", big, `all(1..10000, {fromJSON(body.s) != nil})`, map[string]any{"s": bigJSON}},
		{"sortBy of a huge array", slow, `len(sortBy(body.a, -#)) > 0`, map[string]any{"a": ints(900000)}},
		{"sort of a huge array", slow, `len(sort(body.a)) > 0`, map[string]any{"a": ints(900000)}},
		{"uniq is quadratic", slow, `len(uniq(body.a)) > 0`, map[string]any{"a": ints(200000)}},
		{"regular expression from the payload", slow, `body.s matches body.re`, map[string]any{"s": strings.Repeat("a", 1<<20), "re": `[\s\S]{1000}b`}},
		{"trim with a long cutset", slow, `trim(body.s, body.cut) != ""`, map[string]any{"s": strings.Repeat("é", 500000), "cut": strings.Repeat("ü", 300000) + "é"}},
		{"range sized by the payload", big, `len(1..body.n) > 0`, map[string]any{"n": 900000}},
		{"string + in a loop", big, `len(map(1..100000, body.s + body.s)) > 0`, map[string]any{"s": strings.Repeat("x", 10000)}},
		{"concat in a loop", big, `len(map(1..100000, concat(body.a, body.a))) > 0`, map[string]any{"a": ints(10000)}},
		{"flatten in a loop", big, `len(map(1..100000, flatten([body.a, body.a]))) > 0`, map[string]any{"a": ints(10000)}},
		{"keys in a loop", big, `len(map(1..100000, keys(body.m))) > 0`, map[string]any{"m": func() map[string]any {
			m := map[string]any{}
			for i := range 10000 {
				m[strings.Repeat("k", i%50)+string(rune('a'+i%26))+strings.Repeat("z", i/1300)] = i
			}
			return m
		}()}},
		{"groupBy in a loop", big, `len(map(1..10000, groupBy(body.a, # % 7))) > 0`, map[string]any{"a": ints(10000)}},
		{"toBase64 in a loop", big, `len(map(1..100000, toBase64(body.s))) > 0`, map[string]any{"s": strings.Repeat("x", 10000)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CompileCondition(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			env := envWith(tt.body).Limit(tt.limits)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err = p.Run(env)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > maxAllocated {
				t.Errorf("allocated %d MiB, want at most %d", n>>20, maxAllocated>>20)
			}
			if !errors.Is(err, ErrOverBudget) {
				t.Fatalf("Run = %v, want an error wrapping ErrOverBudget", err)
			}
			want := "longer than"
			if tt.limits.Timeout == time.Hour {
				want = "would allocate more"
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Run = %v, want it to say %q", err, want)
			}
			if took > generous {
				t.Errorf("stopped after %v, want well under %v", took, generous)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines", err)
			}
		})
	}
}

// Ordinary expressions, loops included, evaluate as before under the
// default limits.
func TestBudgetLetsOrdinaryRulesThrough(t *testing.T) {
	body := mustDecode(t, `{"event":"order.paid","total":120.5,"items":[{"sku":"a","qty":2},{"sku":"b","qty":1}],"tags":["vip","new"],"name":"Ada"}`)
	tests := []struct {
		src  string
		want any
	}{
		{`body.event == "order.paid" && body.total > 100`, true},
		{`any(body.items, .sku == "b")`, true},
		{`sum(body.items, .qty)`, 3},
		{`map(body.items, .sku)`, []any{"a", "b"}},
		{`"hello " + body.name`, "hello Ada"},
		{`1 + 2`, 3},
		{`body.total + 1`, 121.5},
		{`join(body.tags, ",")`, "vip,new"},
		{`upper(body.name) + lower(body.name)`, "ADAada"},
		{`repeat("ab", 3)`, "ababab"},
		{`replace(body.name, "a", "o")`, "Ado"},
		{`len(split("a,b,c", ","))`, 3},
		{`toJSON(body.tags)`, "[\n  \"vip\",\n  \"new\"\n]"},
		{`string(body.total)`, "120.5"},
		{`sortBy(body.items, .qty)[0].sku`, "b"},
		{`len(groupBy(body.items, .sku))`, 2},
		{`uniq(concat(body.tags, body.tags))`, []any{"vip", "new"}},
		{`body.name matches "^A"`, true},
		{`body.name matches ("^" + "A")`, true},
		{`reduce(body.items, #acc + .qty, 0)`, 3},
		{`fromJSON("[1,2]")`, []any{1.0, 2.0}},
		{`flatten([[1], [2, [3]]])`, []any{1, 2, 3}},
		{`len(keys(body))`, 5},
		{`sort([3, 1, 2])`, []any{1, 2, 3}},
		{`fromBase64(toBase64("x"))`, "x"},
		{`trim("éaé", "é")`, "a"},
		{`trim("  a ")`, "a"},
		{`$env.body.name`, "Ada"},
		{`$env.hook`, "shop"},
	}
	for _, tt := range tests {
		p, err := CompileValue(tt.src)
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		got, err := p.Run(envWith(body).Limit(DefaultLimits))
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		if !equalValues(got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.src, got, tt.want)
		}
	}
}

func equalValues(a, b any) bool {
	ja, err1 := marshalJSON(a)
	jb, err2 := marshalJSON(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// The guards cannot be named from an expression, and the budget cannot be
// reached through $env.
func TestBudgetIsOutOfReach(t *testing.T) {
	for _, src := range []string{`guard tick($env, 1)`, `$env.budget`, `$env["budget"] != nil`} {
		p, err := CompileValue(src)
		if err != nil {
			continue
		}
		if v, err := p.Run(envWith(nil)); err == nil && v != nil {
			t.Errorf("%s = %v, want nothing", src, v)
		}
	}
}

// One Env's budget is shared by every expression run against it: once its
// time is spent, the next run that loops fails at once, while one that
// does not still evaluates.
func TestBudgetTimeIsPerEvent(t *testing.T) {
	slow, err := CompileCondition(`any(body.a, {any(body.a, {# < 0})})`)
	if err != nil {
		t.Fatal(err)
	}
	quick, err := CompileCondition(`any([1, 2], {# == 2})`)
	if err != nil {
		t.Fatal(err)
	}
	env := envWith(map[string]any{"a": ints(100000)}).Limit(testLimits)
	if _, err := slow.Run(env); !errors.Is(err, ErrOverBudget) {
		t.Fatalf("slow run = %v, want over budget", err)
	}
	if _, err := quick.Run(env); !errors.Is(err, ErrOverBudget) || !strings.Contains(err.Error(), "was spent by earlier expressions") {
		t.Fatalf("quick run after the budget was spent = %v, want over budget", err)
	}
	plain, err := CompileCondition(`body.a[1] == 1`)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := plain.Run(env); err != nil || ok != true {
		t.Fatalf("a run without loops after the budget was spent = %v, %v", ok, err)
	}
	if ok, err := quick.Run(envWith(nil).Limit(testLimits)); err != nil || ok != true {
		t.Fatalf("quick run on a fresh budget = %v, %v", ok, err)
	}
}

// Memory is counted per run: one run's allocations do not count against
// the next.
func TestBudgetMemoryIsPerRun(t *testing.T) {
	p, err := CompileCondition(`len(repeat(body.s, 600)) > 0`)
	if err != nil {
		t.Fatal(err)
	}
	env := envWith(map[string]any{"s": strings.Repeat("x", 1000)}).Limit(testLimits)
	for i := range 3 {
		if _, err := p.Run(env); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
}

// BenchmarkRuleGuard compares typical rules run as before the guard
// (expr.Run, no patcher, no budget) with the same rules guarded, each
// event with its own budget. Compare the pairs: go test ./rules -run x
// -bench RuleGuard.
func BenchmarkRuleGuard(b *testing.B) {
	body := mustDecode(b, `{"event":"order.paid","total":120.5,"currency":"EUR","items":[{"sku":"a","qty":2},{"sku":"b","qty":1},{"sku":"c","qty":5},{"sku":"d","qty":1}],"customer":{"email":"ada@example.com","tags":["vip","new"]}}`)
	for _, rule := range []struct{ name, src string }{
		{"fields", `body.event == "order.paid" && body.total > 100 && body.currency in ["EUR", "USD"]`},
		{"loop", `any(body.items, .qty > 3) && "vip" in body.customer.tags`},
		{"string", `body.customer.email endsWith "@example.com" && lower(body.currency) + "-" + body.event != ""`},
	} {
		plain, err := expr.Compile(rule.src, expr.Env(Env{}), expr.Patch(nilSafe{}), expr.AsBool())
		if err != nil {
			b.Fatal(err)
		}
		guarded, err := CompileCondition(rule.src)
		if err != nil {
			b.Fatal(err)
		}
		env := envWith(body)
		b.Run(rule.name+"/unguarded", func(b *testing.B) {
			for b.Loop() {
				if v, err := expr.Run(plain, env); err != nil || v != true {
					b.Fatal(v, err)
				}
			}
		})
		b.Run(rule.name+"/guarded", func(b *testing.B) {
			for b.Loop() {
				if v, err := guarded.Run(env.Limit(DefaultLimits)); err != nil || v != true {
					b.Fatal(v, err)
				}
			}
		})
	}
}

// Time between runs (the store write between the rules and the answer)
// does not count against the budget.
func TestBudgetCountsOnlyEvaluation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := CompileCondition(`any(body.a, {# == 2})`)
		if err != nil {
			t.Fatal(err)
		}
		env := envWith(map[string]any{"a": ints(3)}).Limit(testLimits)
		for i := range 3 {
			if ok, err := p.Run(env); err != nil || ok != true {
				t.Fatalf("run %d = %v, %v", i, ok, err)
			}
			time.Sleep(time.Hour)
		}
	})
}

// A type error in a guarded call is still found at load, and named as
// written.
func TestBudgetKeepsCompileErrors(t *testing.T) {
	for src, want := range map[string]string{
		`repeat(1, 2) == ""`:   "cannot use int as argument (type string) to call repeat",
		`"a" + 1 == ""`:        "invalid operation: + (mismatched types string and int)",
		`toJSON() == ""`:       "not enough arguments to call toJSON",
		`len(keys(1)) > 0`:     "cannot get keys from int",
		`upper("a", "b") > ""`: "too many arguments to call upper",
	} {
		_, err := CompileCondition(src)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "guard") {
			t.Errorf("%s: err = %v, want %q", src, err, want)
		}
	}
}
