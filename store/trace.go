package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// EventTrace is why an event did what it did, as decided when it arrived:
// how it was verified, where its idempotency key came from and what each
// rule of its hook made of it. Its deliveries and their attempts are
// records of their own and are not repeated here; the duplicates that
// arrived later are the event's Duplicates.
type EventTrace struct {
	Verify VerifyTrace
	// KeySource is where the event's IdempotencyKey came from: KeyFromBody,
	// KeyFromExpression, or the signed field the scheme names
	// (verify.Verifier.KeySource: "webhook-id", "id in the signed body").
	KeySource string
	// KeyError is why the key expression failed, when the body hash was
	// used in its place.
	KeyError string
	Rules    []RuleTrace // in the order the hook lists them
}

// Where an idempotency key came from, besides a scheme's signed field.
const (
	KeyFromBody       = "body hash"
	KeyFromExpression = "expression"
)

// VerifyTrace is how an event's signature was verified.
type VerifyTrace struct {
	Scheme string
	// Secret is the position (from 1) in the hook's configured list of the
	// secret that matched, never the secret; 0 when none was checked.
	Secret int
	// Signed is the timestamp the signature covers; zero for a scheme
	// that signs none. ReceivedAt minus Signed is the skew.
	Signed time.Time
}

// The results of a rule (RuleTrace.Result).
const (
	RuleMatched    = "matched"
	RuleNotMatched = "not matched"
	RuleError      = "error"
)

// RuleTrace is what one rule made of an event.
type RuleTrace struct {
	Rule   string
	Result string // RuleMatched, RuleNotMatched or RuleError
	Error  string // with RuleError
	Fields []FieldTrace
}

// FieldTrace is one field of the event that a rule's condition reads, with
// the value the event had there.
type FieldTrace struct {
	Field  string // as the condition reads it: body.data.status, headers["x-kind"]
	Value  string // its value as JSON, possibly shortened; "" when Absent or on Error
	Absent bool   // the event has no such field
	Error  string // why it could not be read
	// Wanted lists what the condition compares the field with, each an
	// operator and a constant as written: `== "ACTIVE"`, `in ["A", "B"]`,
	// `contains "vip"` (for "vip" in field). The rules that trace an
	// event share it with their compiled condition: it is not to be
	// changed.
	Wanted []string
}

// Explain says in words what the field was and what the condition wanted
// of it: body.data.status was "CANCELLED", wanted "ACTIVE".
func (f FieldTrace) Explain() string {
	var b strings.Builder
	b.WriteString(f.Field)
	switch {
	case f.Error != "":
		b.WriteString(" ")
		b.WriteString(f.Error)
	case f.Absent:
		b.WriteString(" was absent")
	default:
		b.WriteString(" was ")
		b.WriteString(f.Value)
	}
	for i, w := range f.Wanted {
		if i == 0 {
			b.WriteString(", wanted ")
		} else {
			b.WriteString(" or ")
		}
		b.WriteString(wanted(w))
	}
	return b.String()
}

// wanted reads a comparison as the field's wanted value: == "A" is "A",
// in [...] is one of [...].
func wanted(w string) string {
	for _, p := range []struct{ op, say string }{
		{"== ", ""}, {"!= ", "not "}, {"not == ", "not "}, {"not != ", ""},
		{"not in ", "none of "}, {"in ", "one of "},
		{"not contains ", "without "}, {"contains ", "containing "},
	} {
		if rest, ok := strings.CutPrefix(w, p.op); ok {
			return p.say + rest
		}
	}
	return w
}

// Duplicates are the later arrivals of an event answered as its
// duplicates: how many, and when the last few arrived.
type Duplicates struct {
	Count int
	Last  []time.Time // oldest first, at most MaxDuplicateArrivals
}

// MaxDuplicateArrivals bounds how many duplicate arrivals an event keeps
// the time of: a sender that repeats itself forever must not grow it.
const MaxDuplicateArrivals = 10

// Arrived is d with one more arrival at at.
func (d Duplicates) Arrived(at time.Time) Duplicates {
	last := append(d.Last[:len(d.Last):len(d.Last)], at)
	if len(last) > MaxDuplicateArrivals {
		last = last[len(last)-MaxDuplicateArrivals:]
	}
	return Duplicates{Count: d.Count + 1, Last: last}
}

// AppendTrace appends t as compact JSON to b. It is written by hand
// because it is written for every event: with reflection it would cost as
// much as the rest of the event's encoding. ParseTrace reads it back.
func AppendTrace(b []byte, t *EventTrace) []byte {
	b = append(b, `{"v":{"s":`...)
	b = AppendJSONString(b, t.Verify.Scheme)
	if t.Verify.Secret != 0 {
		b = append(b, `,"n":`...)
		b = strconv.AppendInt(b, int64(t.Verify.Secret), 10)
	}
	if !t.Verify.Signed.IsZero() {
		b = append(b, `,"t":`...)
		b = strconv.AppendInt(b, t.Verify.Signed.UnixMilli(), 10)
	}
	b = append(b, '}')
	if t.KeySource != "" {
		b = append(b, `,"k":`...)
		b = AppendJSONString(b, t.KeySource)
	}
	if t.KeyError != "" {
		b = append(b, `,"ke":`...)
		b = AppendJSONString(b, t.KeyError)
	}
	if len(t.Rules) > 0 {
		b = append(b, `,"r":[`...)
		for i, r := range t.Rules {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"n":`...)
			b = AppendJSONString(b, r.Rule)
			b = append(b, `,"o":`...)
			b = AppendJSONString(b, r.Result)
			if r.Error != "" {
				b = append(b, `,"e":`...)
				b = AppendJSONString(b, r.Error)
			}
			if len(r.Fields) > 0 {
				b = append(b, `,"f":[`...)
				for j, f := range r.Fields {
					if j > 0 {
						b = append(b, ',')
					}
					b = appendField(b, f)
				}
				b = append(b, ']')
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendField(b []byte, f FieldTrace) []byte {
	b = append(b, `{"p":`...)
	b = AppendJSONString(b, f.Field)
	if f.Value != "" {
		b = append(b, `,"v":`...)
		b = AppendJSONString(b, f.Value)
	}
	if f.Absent {
		b = append(b, `,"a":true`...)
	}
	if f.Error != "" {
		b = append(b, `,"e":`...)
		b = AppendJSONString(b, f.Error)
	}
	if len(f.Wanted) > 0 {
		b = append(b, `,"w":[`...)
		for i, w := range f.Wanted {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, w)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// AppendJSONString appends s as a JSON string; what is not valid UTF-8 is
// replaced, as encoding/json does.
func AppendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// traceRecord is the JSON AppendTrace writes.
type traceRecord struct {
	Verify struct {
		Scheme string `json:"s"`
		Secret int    `json:"n"`
		Signed int64  `json:"t"`
	} `json:"v"`
	KeySource string `json:"k"`
	KeyError  string `json:"ke"`
	Rules     []struct {
		Rule   string `json:"n"`
		Result string `json:"o"`
		Error  string `json:"e"`
		Fields []struct {
			Field  string   `json:"p"`
			Value  string   `json:"v"`
			Absent bool     `json:"a"`
			Error  string   `json:"e"`
			Wanted []string `json:"w"`
		} `json:"f"`
	} `json:"r"`
}

// ParseTrace reads what AppendTrace wrote; nil for nothing (an event
// stored before traces were kept).
func ParseTrace(b []byte) (*EventTrace, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var r traceRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	t := &EventTrace{
		Verify:    VerifyTrace{Scheme: r.Verify.Scheme, Secret: r.Verify.Secret},
		KeySource: r.KeySource,
		KeyError:  r.KeyError,
	}
	if r.Verify.Signed != 0 {
		t.Verify.Signed = time.UnixMilli(r.Verify.Signed).UTC()
	}
	for _, rr := range r.Rules {
		rt := RuleTrace{Rule: rr.Rule, Result: rr.Result, Error: rr.Error}
		for _, f := range rr.Fields {
			rt.Fields = append(rt.Fields, FieldTrace{Field: f.Field, Value: f.Value, Absent: f.Absent, Error: f.Error, Wanted: f.Wanted})
		}
		t.Rules = append(t.Rules, rt)
	}
	return t, nil
}
