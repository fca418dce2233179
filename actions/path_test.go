package actions

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Every shape in which a value could walk a receiver's path, alone, with
// literal text or with another value: each is refused as a permanent
// error naming why; values that only look alike are sent, escaped.
func TestRenderPathValues(t *testing.T) {
	const base = "https://api.example.com/v1/users/"
	tests := []struct {
		url, body string
		want      string // the rendered URL, or "" when refused
		err       string // part of the refusal
	}{
		{base + "{{ body.a }}", `{"a":"42"}`, base + "42", ""},
		{base + "{{ body.a }}", `{"a":"a.b"}`, base + "a.b", ""},
		{base + "{{ body.a }}", `{"a":"..."}`, "", "dot segment"},
		{base + "{{ body.a }}/x", `{"a":"."}`, "", `the path segment formed with {{ body.a }} reads as the dot segment "."`},
		{base + "{{ body.a }}/x", `{"a":".."}`, "", `reads as the dot segment ".."`},
		{base + "{{ body.a }}/x", `{"a":"%2e"}`, "", "dot segment"},    // a receiver decoding twice
		{base + "{{ body.a }}/x", `{"a":"%2E%2e"}`, "", "dot segment"}, // idem
		{base + "{{ body.a }}/x", `{"a":".%2E"}`, "", "dot segment"},
		{base + "{{ body.a }}/x", `{"a":"%252e%252e"}`, "", "dot segment"},
		{base + "{{ body.a }}/x", `{"a":"．．"}`, "", "dot segment"}, // fullwidth full stops, NFKC
		{base + "{{ body.a }}/x", `{"a":"‥"}`, "", "dot segment"},  // two dot leader, NFKC ".."
		{base + "{{ body.a }}/x", `{"a":". ."}`, "", "dot segment"},
		{base + "{{ body.a }}/x", `{"a":".. "}`, "", "dot segment"},
		{base + "{{ body.a }}/x", `{"a":"..;x"}`, "", "dot segment"},
		{base + "{{ body.a }}{{ body.b }}/x", `{"a":".","b":"."}`, "", "{{ body.a }} and {{ body.b }}"},
		{base + ".{{ body.a }}/x", `{"a":"."}`, "", "dot segment"},
		{base + "{{ body.a }}./x", `{"a":"."}`, "", "dot segment"},
		{base + "%2e{{ body.a }}/x", `{"a":"."}`, "", "dot segment"},
		{base + "%2E{{ body.a }}/x", `{"a":"x"}`, base + "%2Ex/x", ""},
		{base + "{{ body.a }}/x", `{"a":""}`, "", "{{ body.a }} is empty"},
		{base + "u{{ body.a }}.json", `{"a":""}`, "", "is empty"},
		{base + "{{ body.a }}/x", `{"a":"a/b"}`, "", `contains "/"`},
		{base + "{{ body.a }}/x", `{"a":"a\\b"}`, "", `contains "/" or "\"`},
		{base + "{{ body.a }}/x", `{"a":"..%2Fadmin"}`, "", `contains "/"`},
		{base + "{{ body.a }}/x", `{"a":"%5C..%5C"}`, "", `contains "/"`},
		{base + "{{ body.a }}/x", `{"a":"%252F"}`, "", `contains "/"`},
		{base + "{{ body.a }}/x", `{"a":"a／b"}`, "", `contains "/"`},      // fullwidth solidus
		{base + "{{ body.a }}/x", `{"a":"a＼b"}`, "", `contains "/"`},      // fullwidth reverse solidus
		{base + "{{ body.a }}/x", `{"a":"a∕b"}`, "", `contains "/"`},      // division slash
		{base + "{{ body.a }}/x", `{"a":"%zz..%2F"}`, "", `contains "/"`}, // a lenient decoder
		{base + "{{ body.a }}/x", `{"a":"%zz%2e%2e"}`, base + "%25zz%252e%252e/x", ""},
		{base + "{{ body.a }}/x", `{"a":"。。"}`, "", "dot segment"}, // ideographic full stops
		{base + "{{ body.a }}/x", `{"a":"a?b#c"}`, base + "a%3Fb%23c/x", ""},
		{base + "{{ body.a }}/x", `{"a":"100%"}`, base + "100%25/x", ""},
		{base + "{{ body.a }}/x?q={{ body.b }}", `{"a":"1","b":"../.."}`, base + "1/x?q=..%2F..", ""},
		{base + "{{ body.a }}/x?q={{ body.b }}", `{"a":"1","b":""}`, base + "1/x?q=", ""},
		{base + "{{ body.a }}#{{ body.b }}", `{"a":"1","b":"x"}`, base + "1#x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.url+" "+tt.body, func(t *testing.T) {
			a := mustCompile(t, Spec{URL: tt.url})
			req, err := a.Render(env(t, tt.body))
			switch {
			case tt.want != "" && err != nil:
				t.Fatalf("Render = %v, want %s", err, tt.want)
			case tt.want != "" && req.URL != tt.want:
				t.Fatalf("URL = %s, want %s", req.URL, tt.want)
			case tt.want == "" && err == nil:
				t.Fatalf("Render sent %s, want it refused", req.URL)
			case tt.want == "" && (!errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("Render = %v, want a permanent error containing %q", err, tt.err)
			}
		})
	}
}

// The literal path is checked at load: a '%' a value could complete into
// an escape, a dot segment or a '\' would make every delivery walk.
func TestCompileLiteralPath(t *testing.T) {
	for _, tt := range []struct {
		url, err string
		offset   int
	}{
		{"https://api.example.com/a/%2{{ body.x }}", "'%' must begin an escape", 26},
		{"https://api.example.com/a/{{ body.x }}%", "'%' must begin an escape", 38},
		{"https://api.example.com/a/{{ body.x }}/%G1", "'%' must begin an escape", 39},
		{"https://api.example.com/a/../b", `segment "..", which receivers resolve as the dot segment ".."`, 0},
		{"https://api.example.com/a/%2E%2e/b/{{ body.x }}", `the segment "%2E%2e", which receivers resolve as the dot segment ".."`, 0},
		{"https://api.example.com/a/./{{ body.x }}", `resolve as the dot segment "."`, 0},
		{`https://api.example.com/a\{{ body.x }}`, `contains '\'`, 0},
	} {
		t.Run(tt.url, func(t *testing.T) {
			_, err := Compile("x", Spec{URL: tt.url})
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "url" || fe.Offset != tt.offset || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Compile = %v (%+v), want url error at %d containing %q", err, fe, tt.offset, tt.err)
			}
		})
	}
	for _, ok := range []string{
		"https://api.example.com/a/%2Fb/{{ body.x }}", "https://api.example.com/", "https://api.example.com",
		"https://api.example.com/a//b/{{ body.x }}", "https://api.example.com/a/.well-known/{{ body.x }}?q=%",
	} {
		if _, err := Compile("x", Spec{URL: ok}); err != nil {
			t.Errorf("Compile(%s) = %v", ok, err)
		}
	}
}

// FuzzRenderPath renders values of any shape into a path and checks it
// as receivers would resolve it: a request is either refused or, in every
// reading, keeps its four segments under /p/.
func FuzzRenderPath(f *testing.F) {
	for _, s := range []string{"42", ".", "..", "%2e", "%2E%2e", ".%2E", `\..\`, "a/b", "%2F", "．．", "‥", "..;x", ". .", "%zz..%2F", "a∕b", "%252e%252e", ""} {
		f.Add(s, "x", "y")
		f.Add("x", s, s)
	}
	a := mustCompileF(f, Spec{URL: "https://api.example.com/p/{{ body.a }}/{{ body.b }}{{ body.c }}/x.{{ body.a }}?q={{ body.b }}"})
	f.Fuzz(func(t *testing.T, va, vb, vc string) {
		if !utf8.ValidString(va) || !utf8.ValidString(vb) || !utf8.ValidString(vc) {
			t.Skip() // JSON bodies hold valid UTF-8
		}
		raw, err := json.Marshal(map[string]string{"a": va, "b": vb, "c": vc})
		if err != nil {
			t.Fatal(err)
		}
		req, err := a.Render(env(t, string(raw)))
		if err != nil {
			if !errors.Is(err, ErrPermanent) {
				t.Fatalf("Render = %v, want a permanent error", err)
			}
			return
		}
		u := parseURL(t, req.URL)
		if u.Query().Get("q") != vb {
			t.Errorf("query %v, want q=%q", u.Query(), vb)
		}
		p := u.EscapedPath()
		views := []string{p}
		for d := p; len(views) < 4; {
			d = leniently(d)
			views = append(views, d, norm.NFKC.String(d))
		}
		for _, v := range views {
			if got := resolve(v); len(got) != 4 || got[0] != "p" {
				t.Fatalf("values %q %q %q: %s resolves to %q, want 4 segments under /p/", va, vb, vc, v, got)
			}
		}
	})
}

func mustCompileF(f *testing.F, s Spec) *Action {
	a, err := Compile("test", s)
	if err != nil {
		f.Fatal(err)
	}
	return a
}

// leniently percent-decodes the valid escapes of s, as lenient servers do.
func leniently(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// resolve is the most eager receiver: '\' is '/' (WHATWG), %2e is '.'
// (WHATWG), ";params" are dropped (Tomcat), trailing dots and spaces are
// dropped (Windows), and what is left of only dots is a dot segment.
func resolve(p string) []string {
	var out []string
	for _, s := range strings.Split(strings.TrimPrefix(strings.ReplaceAll(p, `\`, "/"), "/"), "/") {
		s = strings.NewReplacer("%2e", ".", "%2E", ".").Replace(s)
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		switch t := strings.TrimRight(s, ". "); {
		case t == "" && strings.Trim(s, ". ") == "" && strings.Contains(s, ".."):
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case t == "" && strings.Contains(s, "."):
		default:
			out = append(out, s)
		}
	}
	return out
}
