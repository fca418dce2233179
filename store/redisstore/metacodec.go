package redisstore

import (
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
)

// decodeMeta reads an event's meta JSON as encoding/json reads it into an
// eventMeta, its trace left out. The relay reads one for every delivery
// it leases, so the JSON that encodeMeta writes (no spaces, each of "k",
// "h", "q" and "t" at most once, strings without escapes but for a few)
// is read without reflection; anything else (spaces, another key, a null,
// a key twice, a value of another kind, an error) is left to
// encoding/json, which reads it its own way or says what is wrong with it.
func decodeMeta(s string) (eventMeta, error) {
	if m, ok := readMeta(s); ok {
		return m, nil
	}
	var m eventMeta
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return eventMeta{}, err
	}
	return m, nil
}

// errMetaOther stops metaReader at what it leaves to encoding/json.
var errMetaOther = errors.New("left to encoding/json")

// readMeta reads s when it is of the shape encodeMeta writes; ok is false
// when it is not, and nothing is read.
func readMeta(s string) (m eventMeta, ok bool) {
	r := metaReader{s: s}
	if r.byte() != '{' {
		return eventMeta{}, false
	}
	var seen [4]bool // k, h, q, t
	if r.peek() == '}' {
		r.pos++
	} else {
		for {
			name, err := r.string()
			i := -1
			if len(name) == 1 {
				i = strings.IndexByte("khqt", name[0])
			}
			if err != nil || i < 0 || seen[i] || r.byte() != ':' {
				return eventMeta{}, false
			}
			seen[i] = true
			switch name[0] {
			case 'k':
				m.Key, err = r.string()
			case 'h':
				m.Headers, err = r.object()
			case 'q':
				m.Query, err = r.object()
			case 't':
				err = r.skip(0)
			}
			if err != nil {
				return eventMeta{}, false
			}
			if c := r.byte(); c == '}' {
				break
			} else if c != ',' {
				return eventMeta{}, false
			}
		}
	}
	if r.pos != len(s) {
		return eventMeta{}, false
	}
	return m, true
}

// metaReader reads JSON without spaces from s; its methods return
// errMetaOther for anything else.
type metaReader struct {
	s   string
	pos int
}

// byte is the next byte, consumed; 0 at the end.
func (r *metaReader) byte() byte {
	if r.pos >= len(r.s) {
		return 0
	}
	r.pos++
	return r.s[r.pos-1]
}

func (r *metaReader) peek() byte {
	if r.pos >= len(r.s) {
		return 0
	}
	return r.s[r.pos]
}

// string reads a string. One holding an escape or invalid UTF-8 is read
// by encoding/json, which unescapes it and replaces what is not UTF-8.
func (r *metaReader) string() (string, error) {
	if r.byte() != '"' {
		return "", errMetaOther
	}
	start, plain := r.pos, true
	for i := start; i < len(r.s); i++ {
		switch c := r.s[i]; {
		case c == '"':
			r.pos = i + 1
			if raw := r.s[start:i]; plain && utf8.ValidString(raw) {
				return raw, nil
			}
			var v string
			if err := json.Unmarshal([]byte(r.s[start-1:i+1]), &v); err != nil {
				return "", errMetaOther
			}
			return v, nil
		case c == '\\':
			plain = false
			i++ // the escaped byte cannot end the string
		case c < 0x20:
			return "", errMetaOther
		}
	}
	return "", errMetaOther
}

// object reads an object of strings.
func (r *metaReader) object() (map[string]string, error) {
	if r.byte() != '{' {
		return nil, errMetaOther
	}
	m := map[string]string{}
	if r.peek() == '}' {
		r.pos++
		return m, nil
	}
	for {
		k, err := r.string()
		if err != nil || r.byte() != ':' {
			return nil, errMetaOther
		}
		if _, twice := m[k]; twice {
			return nil, errMetaOther
		}
		if m[k], err = r.string(); err != nil {
			return nil, errMetaOther
		}
		switch r.byte() {
		case '}':
			return m, nil
		case ',':
		default:
			return nil, errMetaOther
		}
	}
}

// maxSkipDepth bounds the nesting skip follows, as encoding/json bounds
// its own (10,000): deeper is left to encoding/json.
const maxSkipDepth = 1000

// skip passes over one JSON value, checking it as encoding/json would.
func (r *metaReader) skip(depth int) error {
	if depth > maxSkipDepth {
		return errMetaOther
	}
	switch c := r.peek(); {
	case c == '"':
		_, err := r.string()
		return err
	case c == '{':
		r.pos++
		if r.peek() == '}' {
			r.pos++
			return nil
		}
		for {
			if _, err := r.string(); err != nil || r.byte() != ':' {
				return errMetaOther
			}
			if err := r.skip(depth + 1); err != nil {
				return err
			}
			switch r.byte() {
			case '}':
				return nil
			case ',':
			default:
				return errMetaOther
			}
		}
	case c == '[':
		r.pos++
		if r.peek() == ']' {
			r.pos++
			return nil
		}
		for {
			if err := r.skip(depth + 1); err != nil {
				return err
			}
			switch r.byte() {
			case ']':
				return nil
			case ',':
			default:
				return errMetaOther
			}
		}
	case c == '-' || c >= '0' && c <= '9':
		return r.number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if len(r.s)-r.pos >= len(lit) && r.s[r.pos:r.pos+len(lit)] == lit {
				r.pos += len(lit)
				return nil
			}
		}
		return errMetaOther
	}
}

// number passes over a number, following the JSON grammar exactly.
func (r *metaReader) number() error {
	digits := func() int {
		n := 0
		for r.pos < len(r.s) && r.s[r.pos] >= '0' && r.s[r.pos] <= '9' {
			r.pos++
			n++
		}
		return n
	}
	if r.peek() == '-' {
		r.pos++
	}
	if r.peek() == '0' {
		r.pos++
	} else if digits() == 0 {
		return errMetaOther
	}
	if r.peek() == '.' {
		r.pos++
		if digits() == 0 {
			return errMetaOther
		}
	}
	if c := r.peek(); c == 'e' || c == 'E' {
		r.pos++
		if c := r.peek(); c == '+' || c == '-' {
			r.pos++
		}
		if digits() == 0 {
			return errMetaOther
		}
	}
	return nil
}
