package actions

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/text/unicode/norm"

	"github.com/hookrelay/hookrelay/rules"
)

// A value interpolated into a URL's path must stay inside its segment for
// every receiver, and no segment it helps to form may be one a receiver
// resolves as "." or "..". Receivers differ in what they normalise before
// routing: WHATWG URL parsers read "%2e" as "." and "\" as "/"; servers
// that percent-decode first (once, or more than once, leniently) also read
// "%2F" as "/"; Tomcat-style servers drop ";params" from a segment; a
// server that NFKC-normalises reads "．" (U+FF0E) as "." and "／" (U+FF0F)
// as "/", and best-fit conversions read "∕" (U+2215) as "/"; Windows-style
// servers drop trailing dots and spaces. So a value and each
// segment a value is part of are judged in all of those readings at once:
//
//   - a value may not be empty (the request would go to another path),
//   - a value may not contain "/" or "\" in any reading,
//   - a segment holding a value may not read as dots only in any reading,
//     nor hold more "/" or "\" in any reading than its literal text alone:
//     values harmless one by one may join into an escape ("%2" and "F"
//     make "%2F" to a receiver that decodes twice).
//
// Literal text cannot combine with a value into an escape: a '%' in the
// literal path must begin a complete %XX escape, checked at load, and a
// value's own '%' is escaped as %25. A literal segment that is a dot
// segment, or a '\' in the literal path, is refused at load.

// maxDecodes bounds how many percent-decodings a reading goes through: a
// receiver that decodes twice is already unusual.
const maxDecodes = 3

// lookalikes are characters that are not '/', '\' or '.' even under NFKC
// but that some receivers map to them (best-fit code page conversion, IDNA
// style dot mapping).
var lookalikes = strings.NewReplacer(
	"\u2215", "/", "\u2044", "/", "\u29f8", "/", // division slash, fraction slash, big solidus
	"\u2216", `\`, "\u29f5", `\`, "\u29f9", `\`, // set minus, reverse solidus operator, big reverse solidus
	"\u3002", ".", "\uff61", ".", // ideographic full stop, halfwidth ideographic full stop
)

// readings returns s as receivers may read it: as it is and after each
// round of percent-decoding, each also NFKC-normalised and with lookalikes
// mapped.
func readings(s string) []string {
	var out []string
	for i := 0; ; i++ {
		n := norm.NFKC.String(s)
		out = append(out, s, n, lookalikes.Replace(n))
		d := percentDecode(s)
		if i == maxDecodes || d == s {
			return out
		}
		s = d
	}
}

// percentDecode decodes every valid %XX triple and keeps anything else as
// it is, as lenient servers do (url.PathUnescape gives up on the whole
// string at the first bad escape).
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// dotSegment returns how a receiver that resolves the segment seg as "."
// or ".." reads it ("." or ".." or another run of dots), or "".
func dotSegment(seg string) string {
	for _, r := range readings(seg) {
		if i := strings.IndexByte(r, ';'); i >= 0 {
			r = r[:i] // path parameters, which some servers drop
		}
		if strings.Contains(r, ".") && strings.Trim(r, ". \t") == "" {
			return strings.Trim(r, " \t")
		}
	}
	return ""
}

// checkPathValue says why value v cannot go into a path segment, or "".
func checkPathValue(v string) string {
	if v == "" {
		return "is empty: the request would go to another path"
	}
	for _, r := range readings(v) {
		if strings.ContainsAny(r, `/\`) {
			return `contains "/" or "\" (or a form of them that a receiver may decode): it would leave its path segment`
		}
	}
	return ""
}

// checkLiteralPath refuses, at load, literal path text that a value could
// combine with or that walks the path by itself. pieces is the path
// template's (rules.Template.Pieces); origin is the length of the literal
// "scheme://host[:port]" at its start.
func checkLiteralPath(raw string, pieces []rules.Piece, origin int) error {
	pos := 0                     // where the search for the next literal starts in raw
	var skeleton strings.Builder // the path with each value as "v"
	for _, p := range pieces {
		if p.Value {
			skeleton.WriteString("v")
			pos += len("{{}}") + len(p.Expr)
			continue
		}
		lit := p.Text
		if i := strings.Index(raw[min(pos, len(raw)):], lit); i >= 0 {
			pos += i
		}
		for i := 0; i < len(lit); i++ {
			if lit[i] == '%' && (i+2 >= len(lit) || !isHex(lit[i+1]) || !isHex(lit[i+2])) {
				return &FieldError{Field: "url", Offset: pos + i, Err: errors.New(`'%' must begin an escape such as %20 (write %25 for '%' itself)`)}
			}
		}
		skeleton.WriteString(lit)
		pos += len(lit)
	}
	s := skeleton.String()[origin:]
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	if strings.Contains(s, `\`) {
		return &FieldError{Field: "url", Err: errors.New(`the path contains '\', which receivers read as '/': write '/'`)}
	}
	// A value stands as "v" in the skeleton, so only segments of literal
	// text alone can read as dots here; the others are judged at render.
	for _, seg := range strings.Split(s, "/") {
		if dot := dotSegment(seg); dot != "" {
			return &FieldError{Field: "url", Err: fmt.Errorf("the path has the segment %q, which receivers resolve as the dot segment %q: write the path as it is meant to be reached", seg, dot)}
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// renderPath renders the URL up to its query: the literal text as written,
// each value path-escaped once it has been judged (see above).
func (a *Action) renderPath(env rules.Env) (string, error) {
	pieces, err := a.path.RenderPieces(env)
	if err != nil {
		return "", permanent("url", err)
	}
	// b is the URL; skel is the same with each value as "v", so that a
	// segment's readings can be set against what its literal text alone
	// reads as. Escaped values hold no '/', so both have the same segments.
	var b, skel strings.Builder
	exprs := map[int][]string{} // segment index (from the origin) -> its values
	for _, p := range pieces {
		if !p.Value {
			b.WriteString(p.Text)
			skel.WriteString(p.Text)
			continue
		}
		if why := checkPathValue(p.Text); why != "" {
			return "", permanent("url", fmt.Errorf("the value of {{ %s }} %s", p.Expr, why))
		}
		// The value goes into the last segment written so far.
		i := len(pathSegments(b.String(), a.origin)) - 1
		exprs[i] = append(exprs[i], "{{ "+p.Expr+" }}")
		b.WriteString(url.PathEscape(p.Text))
		skel.WriteString("v")
	}
	s := b.String()
	segs, skels := pathSegments(s, a.origin), pathSegments(skel.String(), a.origin)
	for i, seg := range segs {
		names := exprs[i]
		if len(names) == 0 || i >= len(skels) {
			continue
		}
		// The segment itself is not shown: it may hold anything the
		// payload put there.
		if dot := dotSegment(seg); dot != "" {
			return "", permanent("url", fmt.Errorf("the path segment formed with %s reads as the dot segment %q to receivers: it would walk the path", strings.Join(names, " and "), dot))
		}
		// Values that are harmless one by one may join into an escape
		// ("%2" and "F"): judge the segment as a whole too.
		if slashesAdded(seg, skels[i]) {
			return "", permanent("url", fmt.Errorf(`the path segment formed with %s contains "/" or "\" to receivers that decode it: it would leave its path segment`, strings.Join(names, " and ")))
		}
	}
	return s, nil
}

// pathSegments splits the path of raw URL s, which starts at origin and
// ends at a '#' or the end, into its segments (the first one after the
// leading '/').
func pathSegments(s string, origin int) []string {
	p := s[min(origin, len(s)):]
	if i := strings.IndexByte(p, '#'); i >= 0 {
		p = p[:i]
	}
	return strings.Split(strings.TrimPrefix(p, "/"), "/")
}

// slashesAdded reports whether any reading of segment seg holds more '/'
// or ” than the same reading of skel, the segment's literal text alone.
func slashesAdded(seg, skel string) bool {
	slashes := func(r string) int { return strings.Count(r, "/") + strings.Count(r, `\`) }
	rs, ks := readings(seg), readings(skel)
	for i, r := range rs {
		if slashes(r) > slashes(ks[min(i, len(ks)-1)]) {
			return true
		}
	}
	return false
}
