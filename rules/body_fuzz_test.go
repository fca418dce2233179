package rules

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecodeBody holds DecodeBody to these properties for any input, as
// JSON or as a form, under any nesting limit: it never panics; what it
// accepts nests no deeper than the limit and re-encodes to JSON that decodes
// to the same value; a JSON document it accepts is one encoding/json accepts
// with the same value; and a document encoding/json accepts is refused only
// for a reason DecodeBody gives on purpose (nesting, a repeated key, a
// number out of range). The seed corpus is in testdata/fuzz/FuzzDecodeBody.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{
		`{"a":"x","b":true,"c":null,"d":[1,2.5]}`, `{"id":1234567890123456789}`, `-0.5e-7`, `"\u00e9\ud83d\ude00"`,
		"\"a\xffb\"", `[[[]]]`, `{"a":1,"a":2}`, `{"a":1} x`, `01`, `1.`, `[tru]`, `{"a" 1}`, `"\x41"`, ` null `,
	} {
		f.Add([]byte(seed), false, uint8(0))
	}
	f.Add([]byte("a=1&a=2&b=%zz"), true, uint8(0))
	f.Fuzz(func(t *testing.T, raw []byte, form bool, limit uint8) {
		ct, maxDepth := "application/json", int(limit%20) // 0: the default
		if form {
			ct = "application/x-www-form-urlencoded"
		}
		got, err := DecodeBody(raw, ct, maxDepth)
		if maxDepth == 0 {
			maxDepth = DefaultMaxDepth
		}
		doc := bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
		if err != nil {
			if !form && json.Valid(doc) && !strings.Contains(err.Error(), "nested deeper than") &&
				!strings.Contains(err.Error(), "duplicate key") && !strings.Contains(err.Error(), "out of range") {
				t.Fatalf("refused %q, which encoding/json accepts: %v", raw, err)
			}
			return
		}
		if d := depth(got); d > maxDepth {
			t.Fatalf("accepted %q nested %d deep, over the limit %d", raw, d, maxDepth)
		}
		enc, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("accepted %q as %#v, which does not encode to JSON: %v", raw, got, err)
		}
		again, err := DecodeBody(enc, "application/json", maxDepth)
		if err != nil {
			t.Fatalf("%q re-encoded as %s, which does not decode: %v", raw, enc, err)
		}
		if !reflect.DeepEqual(floats(got), floats(again)) {
			t.Fatalf("%q decoded to %#v, re-encoded as %s, decoded again to %#v", raw, got, enc, again)
		}
		if form || len(bytes.TrimSpace(doc)) == 0 {
			return
		}
		if !json.Valid(doc) {
			t.Fatalf("accepted %q, which encoding/json refuses", raw)
		}
		if n := nesting(doc); n > maxDepth {
			t.Fatalf("accepted %q, nested %d deep, over the limit %d", raw, n, maxDepth)
		}
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if want, ok := exactNumbers(want); !ok {
			t.Fatalf("accepted %q, which holds a number out of range", raw)
		} else if !reflect.DeepEqual(want, got) {
			t.Fatalf("DecodeBody(%q) = %#v, encoding/json gives %#v", raw, got, want)
		}
	})
}

// exactNumbers turns encoding/json's json.Number values into what
// DecodeBody gives; false when one is out of range.
func exactNumbers(v any) (any, bool) {
	ok := true
	switch x := v.(type) {
	case json.Number:
		n, err := number(x.String())
		return n, err == nil
	case map[string]any:
		for k, e := range x {
			var eok bool
			x[k], eok = exactNumbers(e)
			ok = ok && eok
		}
	case []any:
		for i, e := range x {
			var eok bool
			x[i], eok = exactNumbers(e)
			ok = ok && eok
		}
	}
	return v, ok
}

// floats makes every number a float64, so that 2.0 (a float) and its
// encoding 2 (an integer) compare equal.
func floats(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = floats(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = floats(e)
		}
		return l
	}
	return v
}

// depth is how deeply a decoded value nests objects and arrays.
func depth(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			d = max(d, depth(e))
		}
		return d + 1
	case []any:
		for _, e := range x {
			d = max(d, depth(e))
		}
		return d + 1
	}
	return 0
}

// nesting is how deeply a JSON text nests, counted on its brackets outside
// strings, without decoding it.
func nesting(doc []byte) int {
	n, deepest, inString := 0, 0, false
	for i := 0; i < len(doc); i++ {
		switch c := doc[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			n++
			deepest = max(deepest, n)
		case c == ']' || c == '}':
			n--
		}
	}
	return deepest
}
