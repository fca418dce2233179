package store

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzAppendTrace: what AppendTrace writes is JSON that ParseTrace reads
// back as it was written; text that is not valid UTF-8 comes back with
// what was invalid replaced, as encoding/json would.
func FuzzAppendTrace(f *testing.F) {
	f.Add("stripe", 2, int64(1700000000123), "body hash", "", "r", RuleNotMatched, "", "body.data.status", `"CANCELLED"`, false, `== "ACTIVE"`)
	f.Add("", 0, int64(0), "", "key: \"quoted\"\n\\", "ru\u2028le", RuleError, "bad\x00\x1f", `headers["x-k"]`, "", true, "")
	f.Add("x", 1, int64(-5), "webhook-id", "\xff\xfe", "\xc3", RuleMatched, "<&>", "body.a[0]", "\x7f", false, "in [1, 2]")
	f.Fuzz(func(t *testing.T, scheme string, secret int, signed int64, source, keyErr, rule, result, ruleErr, field, value string, absent bool, wanted string) {
		in := &EventTrace{
			Verify:    VerifyTrace{Scheme: scheme, Secret: secret},
			KeySource: source, KeyError: keyErr,
			Rules: []RuleTrace{
				{Rule: rule, Result: result, Error: ruleErr, Fields: []FieldTrace{{Field: field, Value: value, Absent: absent, Error: ruleErr, Wanted: []string{wanted}}}},
				{Rule: rule + "2", Result: RuleMatched},
			},
		}
		if signed != 0 {
			in.Verify.Signed = time.UnixMilli(signed).UTC()
		}
		b := AppendTrace([]byte("prefix"), in)
		if !strings.HasPrefix(string(b), "prefix") {
			t.Fatalf("AppendTrace lost what b held: %q", b)
		}
		b = b[len("prefix"):]
		if !json.Valid(b) {
			t.Fatalf("AppendTrace wrote %q, not JSON", b)
		}
		got, err := ParseTrace(b)
		if err != nil {
			t.Fatalf("ParseTrace(%q): %v", b, err)
		}
		want := valid(in)
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip of %q (-want +got):\n%s", b, diff)
		}
	})
}

// valid is t with every string made valid UTF-8 as encoding/json does.
func valid(t *EventTrace) *EventTrace {
	v := func(s string) string {
		if utf8.ValidString(s) {
			return s
		}
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	out := &EventTrace{Verify: VerifyTrace{Scheme: v(t.Verify.Scheme), Secret: t.Verify.Secret, Signed: t.Verify.Signed},
		KeySource: v(t.KeySource), KeyError: v(t.KeyError)}
	for _, r := range t.Rules {
		rr := RuleTrace{Rule: v(r.Rule), Result: v(r.Result), Error: v(r.Error)}
		for _, f := range r.Fields {
			ff := FieldTrace{Field: v(f.Field), Value: v(f.Value), Absent: f.Absent, Error: v(f.Error)}
			for _, w := range f.Wanted {
				ff.Wanted = append(ff.Wanted, v(w))
			}
			rr.Fields = append(rr.Fields, ff)
		}
		out.Rules = append(out.Rules, rr)
	}
	return out
}

func TestDuplicatesArrived(t *testing.T) {
	var d Duplicates
	base := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for i := range MaxDuplicateArrivals + 2 {
		prev, before := d, slices.Clone(d.Last)
		d = d.Arrived(base.Add(time.Duration(i) * time.Second))
		if !slices.Equal(prev.Last, before) {
			t.Fatalf("Arrived changed the Duplicates it was called on: %v, was %v", prev.Last, before)
		}
	}
	if d.Count != MaxDuplicateArrivals+2 || len(d.Last) != MaxDuplicateArrivals || !d.Last[0].Equal(base.Add(2*time.Second)) {
		t.Errorf("after %d arrivals: count %d, last %v", MaxDuplicateArrivals+2, d.Count, d.Last)
	}
}

func TestFieldTraceExplain(t *testing.T) {
	for _, c := range []struct {
		f    FieldTrace
		want string
	}{
		{FieldTrace{Field: "body.data.status", Value: `"CANCELLED"`, Wanted: []string{`== "ACTIVE"`}}, `body.data.status was "CANCELLED", wanted "ACTIVE"`},
		{FieldTrace{Field: "body.a", Value: `1`, Wanted: []string{`!= 1`, `not == 2`, `not != 3`}}, `body.a was 1, wanted not 1 or not 2 or 3`},
		{FieldTrace{Field: "body.k", Absent: true, Wanted: []string{`in ["x"]`, `not in ["y"]`}}, `body.k was absent, wanted one of ["x"] or none of ["y"]`},
		{FieldTrace{Field: "body.tags", Value: `[]`, Wanted: []string{`contains "vip"`, `not contains "x"`, `> 2`}}, `body.tags was [], wanted containing "vip" or without "x" or > 2`},
		{FieldTrace{Field: "body.n", Error: "not read: the evaluation budget was spent"}, `body.n not read: the evaluation budget was spent`},
		{FieldTrace{Field: "body.n", Value: `null`}, `body.n was null`},
	} {
		if got := c.f.Explain(); got != c.want {
			t.Errorf("Explain(%+v) = %q, want %q", c.f, got, c.want)
		}
	}
}
