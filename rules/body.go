package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strconv"
	"strings"
)

// DefaultMaxDepth is the nesting limit DecodeBody applies when given none.
const DefaultMaxDepth = 64

// DecodeBody decodes a raw payload into the value expressions see as body.
//
// JSON (any content type but a form) decodes to map[string]any, []any,
// string, bool, nil, int for integers that fit in 64 bits (so large ids keep
// every digit) and float64 for other numbers. Nesting deeper than maxDepth
// (DefaultMaxDepth when maxDepth <= 0), a key repeated in one object and
// data after the value are refused: a sender and hookrelay must never read
// the same bytes differently. An empty or blank body decodes to nil.
//
// An application/x-www-form-urlencoded body decodes to map[string]any whose
// values are strings, or []any of strings for a key given more than once.
func DecodeBody(raw []byte, contentType string, maxDepth int) (any, error) {
	// A byte order mark is legal in front of UTF-8 text and some senders
	// write one; it is not part of the JSON value.
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if mediaType(contentType) == "application/x-www-form-urlencoded" {
		return decodeForm(raw)
	}
	d := &jsonDecoder{dec: json.NewDecoder(bytes.NewReader(raw)), maxDepth: maxDepth}
	d.dec.UseNumber()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if tok, err := d.dec.Token(); err != io.EOF {
		if err == nil {
			return nil, fmt.Errorf("invalid JSON: unexpected %v after the top-level value", describe(tok))
		}
		return nil, fmt.Errorf("invalid JSON: unexpected data after the top-level value: %v", err)
	}
	return v, nil
}

func mediaType(contentType string) string {
	if mt, _, err := mime.ParseMediaType(contentType); err == nil {
		return mt
	}
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

func decodeForm(raw []byte) (any, error) {
	q, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, fmt.Errorf("invalid form body: %w", err)
	}
	m := make(map[string]any, len(q))
	for k, vs := range q {
		if len(vs) == 1 {
			m[k] = vs[0]
			continue
		}
		list := make([]any, len(vs))
		for i, v := range vs {
			list[i] = v
		}
		m[k] = list
	}
	return m, nil
}

// jsonDecoder walks the token stream so that it can check what
// encoding/json lets through: repeated keys and unbounded nesting.
type jsonDecoder struct {
	dec      *json.Decoder
	maxDepth int
}

func (d *jsonDecoder) token() (json.Token, error) {
	tok, err := d.dec.Token()
	if err == io.EOF {
		return nil, errors.New("invalid JSON: unexpected end of input")
	}
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return tok, nil
}

// value reads one value whose containers are depth levels deep.
func (d *jsonDecoder) value(depth int) (any, error) {
	tok, err := d.token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		// Only '{' and '[' can start a value; the decoder rejects a stray closer.
		if depth >= d.maxDepth {
			return nil, fmt.Errorf("invalid JSON: nested deeper than %d levels (at byte %d)", d.maxDepth, d.dec.InputOffset())
		}
		if t == '{' {
			return d.object(depth + 1)
		}
		return d.array(depth + 1)
	case json.Number:
		return number(t)
	default: // string, bool, nil
		return t, nil
	}
}

func (d *jsonDecoder) object(depth int) (any, error) {
	m := map[string]any{}
	for d.dec.More() {
		tok, err := d.token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("invalid JSON: object key is %v, not a string", describe(tok))
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("invalid JSON: duplicate key %q in an object (at byte %d)", key, d.dec.InputOffset())
		}
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		m[key] = v
	}
	if _, err := d.token(); err != nil { // '}'
		return nil, err
	}
	return m, nil
}

func (d *jsonDecoder) array(depth int) (any, error) {
	list := []any{}
	for d.dec.More() {
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	if _, err := d.token(); err != nil { // ']'
		return nil, err
	}
	return list, nil
}

// number keeps integers exact: 64-bit ids such as 1234567890123456789 do
// not survive a trip through float64.
func number(n json.Number) (any, error) {
	s := n.String()
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			if int64(int(i)) == i {
				return int(i), nil
			}
			return i, nil // a 32-bit platform: still exact
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: number %s is out of range", s)
	}
	return f, nil
}

func describe(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(t))
	case string:
		return fmt.Sprintf("string %q", t)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}
