package rules

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/store"
)

func TestTemplateRender(t *testing.T) {
	body := `{"id":1234567890123456789,"total":12.5,"name":"a/b?c","o":{"k":[1,"x"]},"flag":false,"n":null,"uid":"u 1"}`
	tests := []struct {
		name    string
		src     string
		escape  func(string) string
		want    any
		literal bool
	}{
		{name: "literal", src: "hello", want: "hello", literal: true},
		{name: "empty", src: "", want: "", literal: true},
		{name: "literal with a lone brace", src: "a } b { c }}", want: "a } b { c }}", literal: true},
		{name: "whole number stays a number", src: "{{ body.total }}", want: 12.5},
		{name: "whole big int stays exact", src: "{{body.id}}", want: 1234567890123456789},
		{name: "whole object stays an object", src: "{{ body.o }}", want: map[string]any{"k": []any{1, "x"}}},
		{name: "whole bool", src: "{{ body.flag }}", want: false},
		{name: "whole nil", src: "{{ body.n }}", want: nil},
		{name: "whole with blanks around", src: "  {{ body.total }}\n", want: 12.5},
		{name: "whole expression with a map literal", src: `{{ {"a": body.total} }}`, want: map[string]any{"a": 12.5}},
		{name: "braces inside a string", src: `{{ "}}" + body.name }}`, want: "}}a/b?c"},
		{name: "mixed", src: "order {{ body.id }} paid {{ body.total }}", want: "order 1234567890123456789 paid 12.5"},
		{name: "mixed object is JSON", src: "o={{ body.o }}", want: `o={"k":[1,"x"]}`},
		{name: "two adjacent", src: "{{ hook }}{{ event.id }}", want: "shopevt_01"},
		{name: "escape applies to values only", src: "/users/{{ body.name }}?x=1", escape: url.PathEscape, want: "/users/a%2Fb%3Fc?x=1"},
		{name: "escape on a whole expression gives a string", src: "{{ body.total }}", escape: url.PathEscape, want: "12.5"},
		{name: "escape with space", src: "/u/{{ body.uid }}", escape: url.PathEscape, want: "/u/u%201"},
		{name: "headers", src: `Bearer {{ headers["x-delivery-id"] }}`, want: "Bearer d-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, err := CompileTemplate(tt.src, tt.escape)
			if err != nil {
				t.Fatal(err)
			}
			if tpl.IsLiteral() != tt.literal {
				t.Errorf("IsLiteral() = %v", tpl.IsLiteral())
			}
			if tpl.Source() != tt.src {
				t.Errorf("Source() = %q", tpl.Source())
			}
			env := envWith(mustDecode(t, body))
			got, err := tpl.Render(env)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Render (-want +got)\n%s", diff)
			}
			if s, ok := tt.want.(string); ok {
				if got, err := tpl.RenderString(env); err != nil || got != s {
					t.Errorf("RenderString = %q, %v; want %q", got, err, s)
				}
			}
		})
	}
}

func TestTemplateRenderString(t *testing.T) {
	env := envWith(mustDecode(t, `{"total":12.5,"o":{"a":"<b>"},"n":null}`))
	tests := []struct {
		src, want, err string
	}{
		{src: "{{ body.total }}", want: "12.5"},
		{src: "{{ body.o }}", want: `{"a":"<b>"}`},
		{src: "{{ body.n }}", err: "body.n: the value is nil"},
		{src: "id {{ body.missing.id }}", err: "body.missing.id: the value is nil"},
		{src: `{{ body.missing ?? "none" }}`, want: "none"},
		{src: "{{ body.total.x.y > 1 }}", err: "cannot fetch x from float64"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			tpl, err := CompileTemplate(tt.src, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tpl.RenderString(env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("RenderString = %q, %v; want error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("RenderString = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCompileTemplateErrors(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		offset int
		msg    string // substring of the cause
		expr   bool   // the cause is an *ExprError
	}{
		{name: "unclosed", src: "/orders/{{ body.id", offset: 8, msg: "unclosed"},
		{name: "unclosed after a good one", src: "{{ hook }}x{{ b", offset: 11, msg: "unclosed"},
		{name: "bad first expression", src: "{{ a }}x{{ hook }}", offset: 3, msg: "unknown name a", expr: true},
		{name: "second unclosed", src: "{{ hook }}/x/{{ body.id } ", offset: 13, msg: "unclosed"},
		{name: "unclosed string hides the end", src: `{{ "abc }}`, offset: 0, msg: "unclosed"},
		{name: "empty", src: "a {{  }} b", offset: 2, msg: "empty"},
		{name: "syntax error points into the expression", src: "order: {{ body.id + }}", offset: 18, msg: "unexpected token", expr: true},
		{name: "unknown name", src: "x={{   bdy.id }}", offset: 7, msg: "unknown name bdy", expr: true},
		{name: "second line of an expression", src: "{{ body.a ==\n  = 3 }}", offset: 15, msg: "unexpected token", expr: true},
		{name: "offset counts bytes", src: `é {{ "é" + 1 }}`, offset: 11, msg: "mismatched types", expr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileTemplate(tt.src, nil)
			var te *TemplateError
			if !errors.As(err, &te) {
				t.Fatalf("error = %T %v, want *TemplateError", err, err)
			}
			if te.Offset != tt.offset {
				t.Errorf("Offset = %d (%q), want %d (%q)", te.Offset, tt.src[te.Offset:], tt.offset, tt.src[tt.offset:])
			}
			if !strings.Contains(te.Err.Error(), tt.msg) {
				t.Errorf("Err = %v, want it to contain %q", te.Err, tt.msg)
			}
			var ee *ExprError
			if errors.As(err, &ee) != tt.expr {
				t.Errorf("cause %T; want *ExprError: %v", te.Err, tt.expr)
			}
			if !strings.HasPrefix(te.Error(), "at byte ") {
				t.Errorf("Error() = %q", te.Error())
			}
		})
	}
}

// RenderPieces gives each value unescaped, with its expression, between
// the literals, so that a caller can judge where each value lands.
func TestTemplateRenderPieces(t *testing.T) {
	tpl, err := CompileTemplate("/u/{{ body.a }}{{body.n}}.json", url.PathEscape)
	if err != nil {
		t.Fatal(err)
	}
	want := []Piece{{Text: "/u/"}, {Value: true, Text: "body.a", Expr: "body.a"}, {Value: true, Text: "body.n", Expr: "body.n"}, {Text: ".json"}}
	if got := tpl.Pieces(); !cmp.Equal(got, want) {
		t.Errorf("Pieces = %+v, want %+v", got, want)
	}
	got, err := tpl.RenderPieces(envWith(mustDecode(t, `{"a":"../x","n":1.5}`)))
	if err != nil {
		t.Fatal(err)
	}
	want[1].Text, want[2].Text = "../x", "1.5"
	if !cmp.Equal(got, want) {
		t.Errorf("RenderPieces = %+v, want %+v", got, want)
	}
	if _, err := tpl.RenderPieces(envWith(mustDecode(t, `{"a":null,"n":1}`))); err == nil || !strings.Contains(err.Error(), "nil") {
		t.Errorf("RenderPieces with a nil value = %v, want an error", err)
	}
}

func BenchmarkTemplateRenderString(b *testing.B) {
	tpl, err := CompileTemplate("/v1/buyers/{{ body.RouteParams.buyerID }}/users/{{ body.Request.Body.ID }}", url.PathEscape)
	if err != nil {
		b.Fatal(err)
	}
	body, err := DecodeBody([]byte(`{"RouteParams":{"buyerID":"b1"},"Request":{"Body":{"ID":"u/1"}}}`), "", 0)
	if err != nil {
		b.Fatal(err)
	}
	env := envWith(body)
	for b.Loop() {
		if _, err := tpl.RenderString(env); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTemplateNowAt: an Env given a time answers now() with it, in every
// form now() takes; one without reads the clock.
func TestTemplateNowAt(t *testing.T) {
	at := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
	env := NewEnv(store.Event{ID: "evt_1", Hook: "h", ReceivedAt: at}, nil)
	for src, want := range map[string]string{
		`{{ now().Format("2006-01-02T15:04:05Z07:00") }}`:                     "2026-11-20T09:30:00Z",
		`{{ now(timezone("Europe/Paris")).Format("15:04") }}`:                 "10:30",
		`{{ (now() - duration("1h")).Format("15:04") }}`:                      "08:30",
		`{{ now() == event.received_at ? "same" : "other" }}`:                 "same",
		`{{ string(now().Unix() - event.received_at.Unix()) }}`:               "0",
		`{{ date("2026-11-20T09:30:00Z").Before(now()) ? "before" : "not" }}`: "not",
	} {
		tpl, err := CompileTemplate(src, nil)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		got, err := tpl.RenderString(env.At(at))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if got != want {
			t.Errorf("%s at %v = %q, want %q", src, at, got, want)
		}
	}
	tpl, err := CompileTemplate(`{{ now().Year() }}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpl.RenderString(env)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint(time.Now().Year()); got != want {
		t.Errorf("now().Year() without At = %s, want the clock's %s", got, want)
	}
}
