package rules

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/store"
)

func envWith(body any) Env {
	return NewEnv(store.Event{
		ID:         "evt_01",
		Hook:       "shop",
		ReceivedAt: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		Headers:    map[string]string{"x-delivery-id": "d-1", "content-type": "application/json"},
		Query:      map[string]string{"tenant": "acme"},
	}, body)
}

func mustDecode(t testing.TB, raw string) any {
	t.Helper()
	v, err := DecodeBody([]byte(raw), "application/json", 0)
	if err != nil {
		t.Fatalf("DecodeBody(%s): %v", raw, err)
	}
	return v
}

func TestCompileCondition(t *testing.T) {
	order := `{"event":"CONTACT_UPDATED","id":1234567890123456789,"total":120.5,"data":{"status":"ACTIVE","tags":["vip"]}}`
	tests := []struct {
		name string
		src  string
		body string
		want bool
	}{
		{"equal", `body.event == "CONTACT_UPDATED"`, order, true},
		{"not equal", `body.event == "CONTACT_CREATED"`, order, false},
		{"missing field is false", `body.type == "ORDER"`, order, false},
		{"missing nested field is false", `body.object.status == "DELIVERED"`, order, false},
		{"missing field on an empty body is false", `body.event == "X"`, ``, false},
		{"optional chaining as written", `body.data?.status == "ACTIVE"`, order, true},
		{"nested", `body.data.status == "ACTIVE" && "vip" in body.data.tags`, order, true},
		{"big integer compares exactly", `body.id == 1234567890123456789`, order, true},
		{"big integer off by one", `body.id == 1234567890123456788`, order, false},
		{"float", `body.total > 100`, order, true},
		{"header", `headers["x-delivery-id"] == "d-1"`, order, true},
		{"missing header is empty", `headers["x-nope"] == ""`, order, true},
		{"query", `query.tenant == "acme"`, order, true},
		{"hook", `hook == "shop"`, order, true},
		{"event id", `event.id startsWith "evt_"`, order, true},
		{"event time", `event.received_at.Year() == 2024`, order, true},
		{"literal true", `true`, ``, true},
		{"nil coalescing", `(body.nope ?? "x") == "x"`, order, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CompileCondition(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if p.Source() != tt.src {
				t.Errorf("Source() = %q", p.Source())
			}
			got, err := p.Run(envWith(mustDecode(t, tt.body)))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got != tt.want {
				t.Errorf("%s = %v, want %v", tt.src, got, tt.want)
			}
		})
	}
}

func TestCompileConditionErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want ExprError // Msg is a substring
	}{
		{"string result", `hook`, ExprError{1, 1, "expected bool, but got string"}},
		{"number result", `len(hook) + 1`, ExprError{1, 1, "expected bool, but got int"}},
		{"result of any type", `body.type`, ExprError{1, 1, "must be a boolean expression"}},
		{"syntax", `body.type == "order.paid" &&& body.total > 0`, ExprError{1, 29, `unexpected token Operator("&")`}},
		{"syntax on the second line", "body.a ==\n  = 3", ExprError{2, 3, `unexpected token Operator("=")`}},
		{"unknown name", `bdy.type == "x"`, ExprError{1, 1, "unknown name bdy"}},
		{"columns count characters", `"é" + 1 == 2`, ExprError{1, 5, "mismatched types string and int"}},
		{"unclosed string", `body.type == "x`, ExprError{1, 16, "literal not terminated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileCondition(tt.src)
			var ee *ExprError
			if !errors.As(err, &ee) {
				t.Fatalf("error = %T %v, want *ExprError", err, err)
			}
			if ee.Line != tt.want.Line || ee.Column != tt.want.Column || !strings.Contains(ee.Msg, tt.want.Msg) {
				t.Errorf("got %d:%d %q, want %d:%d containing %q", ee.Line, ee.Column, ee.Msg, tt.want.Line, tt.want.Column, tt.want.Msg)
			}
			if strings.Contains(ee.Msg, "\n") || strings.Contains(ee.Msg, " | ") {
				t.Errorf("Msg carries a source snippet: %q", ee.Msg)
			}
		})
	}
}

func TestConditionOnWrongShapeIsARunError(t *testing.T) {
	// A field of an array is not "missing" but a type error: it is reported
	// (and the rule counts as not matched) rather than silently false.
	p, err := CompileCondition(`body.event == "X"`)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.Run(envWith(mustDecode(t, `[1,2]`))); err == nil {
		t.Errorf("Run = %v, want an error", got)
	}
}

func TestRunErrorIsOneLine(t *testing.T) {
	p, err := CompileCondition(`body.order.total > 100`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Run(envWith(mustDecode(t, `{"order":{}}`)))
	if err == nil {
		t.Fatal("nil > 100 evaluated without error")
	}
	want := "body.order.total > 100: invalid operation: <nil> > int (1:18)"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestCompileValue(t *testing.T) {
	body := `{"id":9007199254740993,"data":{"id":"c/1"},"items":[{"sku":"a"},{"sku":"b"}]}`
	tests := []struct {
		src  string
		want any
	}{
		{`body.id`, 9007199254740993},
		{`body.id + 1`, 9007199254740994},
		{`body.data.id`, "c/1"},
		{`body.items | map(.sku)`, []any{"a", "b"}},
		{`body.items[1].sku`, "b"},
		{`body.missing.deeper`, nil},
		{`string(body.id)`, "9007199254740993"},
		{`hook + ":" + headers["x-delivery-id"]`, "shop:d-1"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, err := CompileValue(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Run(envWith(mustDecode(t, body)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestIndexOutOfRangeIsARunError(t *testing.T) {
	// Only access to a missing member is nil-safe; an index past the end
	// of a list stays an error.
	p, err := CompileValue(`body.items[5].sku`)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.Run(envWith(mustDecode(t, `{"items":[]}`))); err == nil || !strings.Contains(err.Error(), "index out of range") {
		t.Errorf("Run = %v, %v; want an index out of range error", got, err)
	}
}

func TestCompileValueErrors(t *testing.T) {
	for _, src := range []string{``, `body.`, `headers.x(`, `nosuchfunc(1)`} {
		if _, err := CompileValue(src); err == nil {
			t.Errorf("CompileValue(%q) succeeded", src)
		} else if _, ok := err.(*ExprError); !ok {
			t.Errorf("CompileValue(%q) error is %T, want *ExprError", src, err)
		}
	}
}

func TestKeyString(t *testing.T) {
	body := `{"id":1234567890123456789,"f":12.5,"big":1e21,"s":"abc","o":{"b":2,"a":"<x>"},"l":[1,"2"],"t":true,"empty":"","blank":"  ","eo":{},"el":[],"n":null}`
	tests := []struct {
		src  string
		want string
		err  string
	}{
		{src: `body.s`, want: "abc"},
		{src: `body.id`, want: "1234567890123456789"},
		{src: `body.f`, want: "12.5"},
		{src: `body.big`, want: "1000000000000000000000"},
		{src: `body.t`, want: "true"},
		{src: `body.o`, want: `{"a":"<x>","b":2}`},
		{src: `body.l`, want: `[1,"2"]`},
		{src: `body.s + ":" + string(body.id)`, want: "abc:1234567890123456789"},
		{src: `event.received_at`, want: "2024-05-06T07:08:09Z"},
		{src: `body.empty`, err: "idempotency key is empty"},
		{src: `body.blank`, err: "idempotency key is empty"},
		{src: `body.n`, err: "idempotency key is empty"},
		{src: `body.missing`, err: "idempotency key is empty"},
		{src: `body.eo`, err: "idempotency key is empty"},
		{src: `body.el`, err: "idempotency key is empty"},
		{src: `body.s.x.y > 1`, err: "invalid operation"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, err := CompileValue(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.KeyString(envWith(mustDecode(t, body)))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("KeyString = %q, %v; want error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("KeyString = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestNewEnv(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	env := NewEnv(store.Event{ID: "evt_9", Hook: "h", ReceivedAt: at, Body: []byte(`"payload"`)}, "payload")
	want := Env{Body: "payload", Headers: map[string]string{}, Query: map[string]string{}, Hook: "h", Event: EventInfo{ID: "evt_9", ReceivedAt: at}, raw: []byte(`"payload"`)}
	if diff := cmp.Diff(want, env, cmp.AllowUnexported(Env{})); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}
