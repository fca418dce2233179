package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
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
// values are strings, or []any of strings (in the order sent) for a key
// given more than once. Bytes that are not UTF-8 become U+FFFD in both
// forms, as encoding/json reads them.
func DecodeBody(raw []byte, contentType string, maxDepth int) (any, error) {
	return DecodeBodyWithin(raw, contentType, maxDepth, DefaultLimits.MaxValues())
}

// ErrTooManyValues is wrapped by DecodeBodyWithin's error for a payload of
// more values than it allows.
var ErrTooManyValues = errors.New("payload too complex")

// DecodeBodyWithin is DecodeBody refusing a payload of more than maxValues
// values (scalars, lists, objects and form pairs, each counted once): a
// small body of many small values decodes to a tree tens of times its size.
// maxValues <= 0 means Limits.MaxValues of DefaultLimits.
func DecodeBodyWithin(raw []byte, contentType string, maxDepth, maxValues int) (any, error) {
	return DecodeBodyShaped(raw, contentType, maxDepth, maxValues, WholeBody())
}

// DecodeBodyShaped is DecodeBodyWithin building only the part of a JSON
// payload that shape names (see Shape): what the expressions that will
// read it can reach. Everything else is checked as DecodeBodyWithin checks
// it — the same payloads are refused, with the same errors — but not kept,
// so an object holds only the members shape names, and a nil shape gives
// nil. A form is decoded whole.
func DecodeBodyShaped(raw []byte, contentType string, maxDepth, maxValues int, shape *Shape) (any, error) {
	if maxValues <= 0 {
		maxValues = DefaultLimits.MaxValues()
	}
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
		return decodeForm(raw, maxDepth, maxValues)
	}
	p := &jsonParser{data: raw, maxDepth: maxDepth, maxValues: maxValues}
	p.skipSpace()
	v, err := p.value(0, shape)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(p.data) {
		return nil, fmt.Errorf("invalid JSON: unexpected data after the top-level value at byte %d", p.pos)
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

func tooManyValues(n int) error {
	return fmt.Errorf("%w: more than %d values", ErrTooManyValues, n)
}

func decodeForm(raw []byte, maxDepth, maxValues int) (any, error) {
	// The pairs are read in order (as url.ParseQuery reads them) so that the
	// values of a repeated key keep the order they were sent in, also when
	// two keys become one by having their invalid UTF-8 replaced.
	m := map[string]any{}
	values := 1
	for rest := string(raw); rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" {
			continue
		}
		if values++; values > maxValues {
			return nil, tooManyValues(maxValues)
		}
		if strings.Contains(pair, ";") {
			return nil, errors.New("invalid form body: ';' is not a separator, use '&'")
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("invalid form body: %w", err)
		}
		v, err = url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("invalid form body: %w", err)
		}
		k, v = validUTF8(k), validUTF8(v)
		switch prev := m[k].(type) {
		case nil:
			m[k] = v
		case string:
			if maxDepth < 2 { // the object and a list in it
				return nil, fmt.Errorf("invalid form body: key %q repeated, which nests deeper than %d level", k, maxDepth)
			}
			m[k] = []any{prev, v}
		case []any:
			m[k] = append(prev, v)
		}
	}
	return m, nil
}

// validUTF8 replaces each byte of s that is not UTF-8 with U+FFFD, as
// encoding/json does in JSON strings, so that a form value reads the same
// here as it does once marshalled into an action's JSON body.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string([]rune(s))
}

// jsonParser is a strict JSON parser that refuses what encoding/json lets
// through (a key repeated in one object, unbounded nesting) and keeps
// integers exact. It leaves the decoding of strings with escapes or invalid
// UTF-8 to encoding/json, so that every string reads exactly as it would there.
//
// Each value is parsed with the Shape wanted of it: the whole value, some
// members of an object, or nothing (nil), in which case it is checked the
// same way and not built.
type jsonParser struct {
	data      []byte
	pos       int
	maxDepth  int
	values    int
	maxValues int
	// keys holds the keys of the objects being checked without being
	// built, innermost last, for finding a key given twice.
	keys [][]byte
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) unexpected() error {
	if p.pos >= len(p.data) {
		return errors.New("invalid JSON: unexpected end of input")
	}
	return fmt.Errorf("invalid JSON: invalid character %q at byte %d", p.data[p.pos], p.pos)
}

// value parses one value whose containers are depth levels deep, building
// what want names of it.
func (p *jsonParser) value(depth int, want *Shape) (any, error) {
	if p.pos >= len(p.data) {
		return nil, p.unexpected()
	}
	if p.values++; p.values > p.maxValues {
		return nil, tooManyValues(p.maxValues)
	}
	switch c := p.data[p.pos]; {
	case c == '{' || c == '[':
		if depth >= p.maxDepth {
			return nil, fmt.Errorf("invalid JSON: nested deeper than %d levels (at byte %d)", p.maxDepth, p.pos)
		}
		p.pos++
		if c == '[' {
			list, err := p.array(depth+1, want)
			if want == nil || err != nil {
				return nil, err
			}
			return list, nil
		}
		m, err := p.object(depth+1, want)
		if want == nil || err != nil {
			return nil, err
		}
		return m, nil
	case c == '"':
		if want == nil {
			return nil, p.skipString()
		}
		return p.string()
	case c == '-' || (c >= '0' && c <= '9'):
		if want == nil {
			return nil, p.skipNumber()
		}
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, p.unexpected()
}

func (p *jsonParser) literal(word string) error {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(word)) {
		for i := 0; i < len(word) && p.pos < len(p.data) && p.data[p.pos] == word[i]; i++ {
			p.pos++
		}
		return p.unexpected()
	}
	p.pos += len(word)
	return nil
}

// object parses an object, building the members want names, each with
// the shape wanted of it: every member when want is whole, none (and no
// map) when want is nil. Every key is checked against the others of its
// object all the same.
func (p *jsonParser) object(depth int, want *Shape) (map[string]any, error) {
	var m map[string]any
	if want != nil {
		m = map[string]any{}
	}
	whole := want != nil && want.whole
	keys := objectKeys{p: p}
	if !whole {
		// The map does not hold every key: they are kept aside.
		keys.start()
		defer keys.end()
	}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return m, nil
	}
	for {
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.unexpected()
		}
		at := p.pos
		key, plain, err := p.scanString()
		if err != nil {
			return nil, err
		}
		if !plain {
			s, err := p.unquote(at)
			if err != nil {
				return nil, err
			}
			key = []byte(s)
		}
		repeated := false
		if whole {
			_, repeated = m[string(key)]
		} else {
			repeated = keys.add(key)
		}
		if repeated {
			return nil, duplicateKey(string(key), at)
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.unexpected()
		}
		p.pos++
		p.skipSpace()
		child := want
		if !whole && want != nil {
			child = want.keys[string(key)]
		}
		v, err := p.value(depth, child)
		if err != nil {
			return nil, err
		}
		if child != nil {
			m[string(key)] = v
		}
		if end, err := p.next('}'); end || err != nil {
			return m, err
		}
	}
}

// next moves past what follows a member or an element: a comma and the
// blanks after it, or the closing byte, which ends the container (end).
func (p *jsonParser) next(closing byte) (end bool, err error) {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return false, p.unexpected()
	}
	switch p.data[p.pos] {
	case ',':
		p.pos++
		p.skipSpace()
		return false, nil
	case closing:
		p.pos++
		return true, nil
	}
	return false, p.unexpected()
}

func duplicateKey(key string, at int) error {
	return fmt.Errorf("invalid JSON: duplicate key %q in an object (at byte %d)", key, at)
}

// manyKeys is the number of keys from which an object's keys are checked
// against each other through a map instead of one by one.
const manyKeys = 32

// objectKeys are the keys of one object parsed without a map of all its
// members: in p.keys, innermost object last, then, from manyKeys keys on,
// in a map of their own.
type objectKeys struct {
	p    *jsonParser
	base int
	seen map[string]struct{}
}

func (k *objectKeys) start() {
	if k.p.keys == nil {
		k.p.keys = make([][]byte, 0, manyKeys)
	}
	k.base = len(k.p.keys)
}

func (k *objectKeys) end() { k.p.keys = k.p.keys[:k.base] }

// add records key and reports whether the object had it already.
func (k *objectKeys) add(key []byte) bool {
	mine := k.p.keys[k.base:]
	if k.seen == nil && len(mine) == manyKeys {
		k.seen = make(map[string]struct{}, 2*manyKeys)
		for _, x := range mine {
			k.seen[string(x)] = struct{}{}
		}
	}
	if k.seen != nil {
		if _, ok := k.seen[string(key)]; ok {
			return true
		}
		k.seen[string(key)] = struct{}{}
		return false
	}
	for _, x := range mine {
		if bytes.Equal(x, key) {
			return true
		}
	}
	k.p.keys = append(k.p.keys, key)
	return false
}

// array parses a list: whole when any of it is wanted (an expression that
// reads into a list reads it by position), checked only when want is nil.
func (p *jsonParser) array(depth int, want *Shape) ([]any, error) {
	var list []any
	if want != nil {
		list, want = []any{}, wholeShape
	}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return list, nil
	}
	for {
		v, err := p.value(depth, want)
		if err != nil {
			return nil, err
		}
		if want != nil {
			list = append(list, v)
		}
		if end, err := p.next(']'); end || err != nil {
			return list, err
		}
	}
}

// string parses the string starting at the opening quote at p.pos.
func (p *jsonParser) string() (string, error) {
	start := p.pos
	raw, plain, err := p.scanString()
	if err != nil {
		return "", err
	}
	if plain {
		return string(raw), nil
	}
	return p.unquote(start)
}

// skipString checks the string starting at the opening quote at p.pos.
func (p *jsonParser) skipString() error {
	start := p.pos
	_, plain, err := p.scanString()
	if err == nil && !plain {
		_, err = p.unquote(start)
	}
	return err
}

// scanString moves past the string starting at the opening quote at
// p.pos and returns what is between its quotes. plain reports that this
// is the string's value: no escapes, and valid UTF-8.
func (p *jsonParser) scanString() (raw []byte, plain bool, err error) {
	start := p.pos
	plain = true
	for i := start + 1; i < len(p.data); i++ {
		switch c := p.data[i]; {
		case c == '"':
			p.pos = i + 1
			raw = p.data[start+1 : i]
			return raw, plain && utf8.Valid(raw), nil
		case c == '\\':
			plain = false
			i++ // the escaped byte cannot end the string
		case c < 0x20:
			return nil, false, fmt.Errorf("invalid JSON: control character in a string at byte %d", i)
		}
	}
	p.pos = len(p.data)
	return nil, false, p.unexpected()
}

// unquote is the value of the string from start to p.pos, as
// encoding/json reads it.
func (p *jsonParser) unquote(start int) (string, error) {
	var s string
	if err := json.Unmarshal(p.data[start:p.pos], &s); err != nil {
		return "", fmt.Errorf("invalid JSON: bad string at byte %d: %w", start, err)
	}
	return s, nil
}

// number parses a number, following the JSON grammar exactly.
func (p *jsonParser) number() (any, error) {
	start := p.pos
	if err := p.scanNumber(); err != nil {
		return nil, err
	}
	return number(string(p.data[start:p.pos]))
}

// skipNumber checks a number as number does.
func (p *jsonParser) skipNumber() error {
	start := p.pos
	if err := p.scanNumber(); err != nil {
		return err
	}
	s := p.data[start:p.pos]
	if len(s) <= 18 && !bytes.ContainsAny(s, ".eE") {
		return nil // an integer that fits in 64 bits
	}
	_, err := number(string(s))
	return err
}

// scanNumber moves past a number, following the JSON grammar exactly.
func (p *jsonParser) scanNumber() error {
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.data[p.pos] == '-' {
		p.pos++
	}
	if p.pos < len(p.data) && p.data[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		return p.unexpected()
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return p.unexpected()
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return p.unexpected()
		}
	}
	return nil
}

// number keeps integers exact: 64-bit ids such as 1234567890123456789 do
// not survive a trip through float64.
func number(s string) (any, error) {
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
