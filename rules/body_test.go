package rules

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeBody(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name     string
		raw      string
		ct       string
		maxDepth int
		want     any
		err      string // substring; empty for success
	}{
		{name: "object", raw: `{"a":"x","b":true,"c":null,"d":[1,2.5]}`, ct: "application/json",
			want: map[string]any{"a": "x", "b": true, "c": nil, "d": []any{1, 2.5}}},
		{name: "big integer keeps every digit", raw: `{"id":1234567890123456789}`, want: map[string]any{"id": 1234567890123456789}},
		{name: "max int64", raw: `9223372036854775807`, want: 9223372036854775807},
		{name: "min int64", raw: `-9223372036854775808`, want: -9223372036854775808},
		{name: "beyond int64 becomes float", raw: `9223372036854775808`, want: 9223372036854775808.0},
		{name: "exponent is a float", raw: `1e3`, want: 1000.0},
		{name: "fraction is a float", raw: `-0.5`, want: -0.5},
		{name: "integer-valued fraction stays float", raw: `2.0`, want: 2.0},
		{name: "string", raw: `"plain"`, want: "plain"},
		{name: "empty array", raw: `[]`, want: []any{}},
		{name: "empty body", raw: ``, want: nil},
		{name: "blank body", raw: " \r\n\t", want: nil},
		{name: "empty form body", raw: ``, ct: form, want: nil},
		{name: "byte order mark is skipped", raw: "\xef\xbb\xbf{\"a\":1}", want: map[string]any{"a": 1}},
		{name: "whitespace around is fine", raw: " {\"a\":1}\n", want: map[string]any{"a": 1}},
		{name: "depth at the limit", raw: `{"a":{"b":[1]}}`, maxDepth: 3, want: map[string]any{"a": map[string]any{"b": []any{1}}}},
		{name: "depth over the limit", raw: `{"a":{"b":[[1]]}}`, maxDepth: 3, err: "nested deeper than 3 levels"},
		{name: "default depth limit", raw: strings.Repeat("[", 65) + strings.Repeat("]", 65), err: "nested deeper than 64 levels"},
		{name: "default depth allows 64", raw: strings.Repeat("[", 64) + strings.Repeat("]", 64), want: nest(64)},
		{name: "duplicate key", raw: `{"a":1,"b":2,"a":3}`, err: `duplicate key "a"`},
		{name: "duplicate key spelt with an escape", raw: `{"a":1,"\u0061":2}`, err: `duplicate key "a"`},
		{name: "duplicate key nested", raw: `{"o":{"k":1,"k":1}}`, err: `duplicate key "k"`},
		{name: "same key in two objects is fine", raw: `[{"k":1},{"k":2}]`, want: []any{map[string]any{"k": 1}, map[string]any{"k": 2}}},
		{name: "trailing value", raw: `{"a":1} {"a":2}`, err: "after the top-level value"},
		{name: "trailing garbage", raw: `{"a":1}x`, err: "after the top-level value"},
		{name: "trailing brace", raw: `{"a":1}}`, err: "after the top-level value"},
		{name: "truncated", raw: `{"a":`, err: "invalid JSON"},
		{name: "not JSON", raw: `hello`, err: "invalid JSON"},
		{name: "number out of range", raw: `1e400`, err: "out of range"},
		{name: "escapes", raw: `"a\"b\\c\/d\u00e9\ud83d\ude00\n"`, want: "a\"b\\c/d\u00e9\U0001F600\n"},
		{name: "bad escape", raw: `"\x41"`, err: "bad string"},
		{name: "invalid UTF-8 reads as encoding/json reads it", raw: "\"a\xffb\"", want: "a\ufffdb"},
		{name: "control character in a string", raw: "\"a\tb\"", err: "control character"},
		{name: "unterminated string", raw: `{"a":"b`, err: "unexpected end of input"},
		{name: "leading zero", raw: `01`, err: "after the top-level value"},
		{name: "bare minus", raw: `-`, err: "unexpected end of input"},
		{name: "fraction without digits", raw: `1.`, err: "unexpected end of input"},
		{name: "exponent without digits", raw: `1e+`, err: "unexpected end of input"},
		{name: "plus sign", raw: `+1`, err: "invalid character '+' at byte 0"},
		{name: "misspelt literal", raw: `[tru]`, err: "invalid character ']' at byte 4"},
		{name: "missing comma", raw: `[1 2]`, err: "invalid character '2' at byte 3"},
		{name: "trailing comma", raw: `{"a":1,}`, err: "invalid character '}' at byte 7"},
		{name: "unquoted key", raw: `{a:1}`, err: "invalid character 'a' at byte 1"},
		{name: "missing colon", raw: `{"a" 1}`, err: "invalid character '1' at byte 5"},
		{name: "stray closer", raw: `]`, err: "invalid character ']' at byte 0"},
		{name: "literals", raw: ` [ true , false , null , -0 , 0.5e-3 , 1E2 ] `, want: []any{true, false, nil, 0, 0.0005, 100.0}},
		{name: "form", raw: "a=1&b=x+y&c=%2F", ct: form, want: map[string]any{"a": "1", "b": "x y", "c": "/"}},
		{name: "form with charset", raw: "a=1", ct: "Application/X-WWW-Form-Urlencoded; charset=utf-8", want: map[string]any{"a": "1"}},
		{name: "form key repeated", raw: "tag=a&tag=b&one=1", ct: form, want: map[string]any{"tag": []any{"a", "b"}, "one": "1"}},
		{name: "form bad escape", raw: "a=%zz", ct: form, err: "invalid form body"},
		{name: "form semicolon", raw: "a=1;b=2", ct: form, err: "';' is not a separator"},
		{name: "form invalid UTF-8 reads as in JSON", raw: "k%FF=1&k%FE=2&v=%C3", ct: form, want: map[string]any{"k\ufffd": []any{"1", "2"}, "v": "\ufffd"}},
		{name: "form empty pairs", raw: "&a=1&&b&", ct: form, want: map[string]any{"a": "1", "b": ""}},
		{name: "form repeated key over the limit", raw: "a=1&a=2", ct: form, maxDepth: 1, err: "nests deeper than 1 level"},
		{name: "JSON content type with charset", raw: `{"a":1}`, ct: "application/json; charset=utf-8", want: map[string]any{"a": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeBody([]byte(tt.raw), tt.ct, tt.maxDepth)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("DecodeBody = %#v, %v; want error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// reflect.DeepEqual first: cmp is slow on deeply nested values.
			if !reflect.DeepEqual(tt.want, got) {
				t.Errorf("(-want +got)\n%s", cmp.Diff(tt.want, got))
			}
		})
	}
}

func nest(n int) any {
	var v any = []any{}
	for i := 1; i < n; i++ {
		v = []any{v}
	}
	return v
}

func BenchmarkDecodeBody(b *testing.B) {
	raw := []byte(`{"event":"CONTACT_UPDATED","timestamp":"2024-05-06T07:08:09Z","organizationId":"org_1","data":{"id":"c_123","email":"a@example.com","firstName":"Ada","lastName":"Lovelace","status":"ACTIVE","tags":["vip","wine"],"score":12.5}}`)
	for b.Loop() {
		if _, err := DecodeBody(raw, "application/json", 0); err != nil {
			b.Fatal(err)
		}
	}
}

// A payload of more values than allowed is refused before its tree is
// built: a megabyte of {"a":0} would otherwise take tens of megabytes.
func TestDecodeBodyValueLimit(t *testing.T) {
	tests := []struct {
		name, raw, ct string
		max           int
		ok            bool
	}{
		{"array at the limit", `[1,2,3]`, "application/json", 4, true},
		{"array over the limit", `[1,2,3,4]`, "application/json", 4, false},
		{"objects count their values", `{"a":{"b":1},"c":[true]}`, "", 5, true},
		{"objects over the limit", `{"a":{"b":1},"c":[true,false]}`, "", 5, false},
		{"form at the limit", `a=1&b=2&a=3`, "application/x-www-form-urlencoded", 4, true},
		{"form over the limit", `a=1&b=2&a=3&c=4`, "application/x-www-form-urlencoded", 4, false},
	}
	for _, tt := range tests {
		_, err := DecodeBodyWithin([]byte(tt.raw), tt.ct, 0, tt.max)
		if tt.ok && err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, ErrTooManyValues) {
			t.Errorf("%s: err = %v, want ErrTooManyValues", tt.name, err)
		}
	}
	huge := []byte("[" + strings.Repeat(`{"a":0},`, DefaultLimits.MaxValues()/2) + "0]")
	if _, err := DecodeBody(huge, "application/json", 0); !errors.Is(err, ErrTooManyValues) {
		t.Errorf("DecodeBody of %d objects: err = %v, want ErrTooManyValues", DefaultLimits.MaxValues()/2, err)
	}
}
