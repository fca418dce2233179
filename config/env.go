package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser/lexer"

	"github.com/hookrelay/hookrelay/rules"
)

// envSegment is a piece of a value as written: text (with "$${" already
// read as "${"), or a ${VAR} or ${VAR:-default} reference.
type envSegment struct {
	text   string
	ref    bool
	name   string
	def    string
	hasDef bool
}

// envSegments splits s into text and environment references.
func envSegments(s string) ([]envSegment, error) {
	var segs []envSegment
	var text strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			text.WriteString(s)
			break
		}
		if i > 0 && s[i-1] == '$' {
			text.WriteString(s[:i-1])
			text.WriteString("${")
			s = s[i+2:]
			continue
		}
		text.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return nil, fmt.Errorf("unclosed ${ in %q", s[i:])
		}
		ref := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validEnvName(name) {
			return nil, fmt.Errorf("invalid environment variable name %q in ${%s}", name, ref)
		}
		if text.Len() > 0 {
			segs = append(segs, envSegment{text: text.String()})
			text.Reset()
		}
		segs = append(segs, envSegment{ref: true, name: name, def: def, hasDef: hasDef})
	}
	if text.Len() > 0 {
		segs = append(segs, envSegment{text: text.String()})
	}
	return segs, nil
}

// envNames are the variables src refers to, each once, in order; none when
// it refers to none or does not split (its expansion says what is wrong).
func envNames(src string) []string {
	if !strings.Contains(src, "${") {
		return nil
	}
	segs, err := envSegments(src)
	if err != nil {
		return nil
	}
	var names []string
	for _, sg := range segs {
		if sg.ref && !slices.Contains(names, sg.name) {
			names = append(names, sg.name)
		}
	}
	return names
}

// value is the text a segment stands for.
func (sg envSegment) value(lookup func(string) (string, bool)) (string, error) {
	if !sg.ref {
		return sg.text, nil
	}
	v, ok := lookup(sg.name)
	switch {
	case sg.hasDef && v == "":
		v = sg.def
	case !ok:
		return "", fmt.Errorf("environment variable %s is not set (write ${%s:-default} to give a default)", sg.name, sg.name)
	}
	return v, nil
}

// expand replaces ${VAR} and ${VAR:-default} in s with values from lookup;
// "$${" stands for a literal "${". It runs on scalar values after parsing, so
// a value from the environment can never change the structure of the YAML.
// Expressions and templates are expanded by exprSource and templateSource
// instead, for the same reason.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	return expandRecord(s, lookup, nil)
}

// expandRecord is expand that also passes each value taken from the
// environment to record, when record is not nil: such values are often
// secrets, which the config must know to mask them.
func expandRecord(s string, lookup func(string) (string, bool), record func(string)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	segs, err := envSegments(s)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, sg := range segs {
		v, err := sg.value(lookup)
		if err != nil {
			return "", err
		}
		if record != nil && sg.ref && v != "" {
			record(v)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func validEnvName(n string) bool {
	if n == "" {
		return false
	}
	for i, r := range n {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// errEnvStructure: an environment value would have changed what an
// expression or template means, not only the text of one string in it.
var errEnvStructure = errors.New("an environment value would change the structure of the expression, not only the text of a string in it; check the ${…} references here")

// exprSource expands ${VAR} references in expression source so that each
// value can only ever be the content of a string literal: a reference
// inside a string literal ("org-${ORG}") puts the value there escaped for
// that literal, and a reference anywhere else becomes a whole string
// literal. Whatever the value holds (quotes, ||, }}, newlines, "${"), the
// expression keeps the tokens it was written with, which is checked by
// lexing the result against the same source with every value empty.
func exprSource(src string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(src, "${") {
		return src, nil
	}
	segs, err := envSegments(src)
	if err != nil {
		return "", err
	}
	// Lex the source with a neutral name in place of each reference, to
	// learn which references stand inside a string literal.
	var probe strings.Builder
	spans := make([][2]int, len(segs)) // rune offsets of each placeholder
	n := 0
	for i, sg := range segs {
		if !sg.ref {
			probe.WriteString(sg.text)
			n += utf8.RuneCountInString(sg.text)
			continue
		}
		ph := fmt.Sprintf("hookrelayEnv%d", i)
		probe.WriteString(ph)
		spans[i] = [2]int{n, n + len(ph)}
		n += len(ph)
	}
	probeSrc := probe.String()
	toks, lexErr := lexer.Lex(file.NewSource(probeSrc))
	runes := []rune(probeSrc)
	// quoteOf is the quote of the literal holding reference i, 0 outside one.
	quoteOf := func(i int) rune {
		for _, tk := range toks {
			if (tk.Kind == lexer.String || tk.Kind == lexer.Bytes) && tk.From <= spans[i][0] && spans[i][1] <= tk.To {
				q := runes[tk.From]
				if q == 'b' && tk.From+1 < len(runes) {
					q = runes[tk.From+1]
				}
				return q
			}
		}
		return 0
	}
	var out, skeleton strings.Builder
	for i, sg := range segs {
		if !sg.ref {
			out.WriteString(sg.text)
			skeleton.WriteString(sg.text)
			continue
		}
		if lexErr != nil {
			// The expression does not lex as written: compiling it
			// without any value reports where.
			out.WriteString(`""`)
			continue
		}
		v, err := sg.value(lookup)
		if err != nil {
			return "", err
		}
		if !utf8.ValidString(v) {
			return "", fmt.Errorf("environment variable %s is not valid UTF-8 and cannot be used in an expression", sg.name)
		}
		switch q := quoteOf(i); q {
		case 0:
			out.WriteString(quoteExpr(v, '"'))
			skeleton.WriteString(`""`)
		case '`':
			out.WriteString(strings.ReplaceAll(v, "`", "``"))
		default:
			out.WriteString(escapeExpr(v, q))
		}
	}
	if lexErr != nil {
		return out.String(), nil
	}
	if err := sameTokens(out.String(), skeleton.String()); err != nil {
		return "", err
	}
	return out.String(), nil
}

// quoteExpr is v as an expr string literal in quote q.
func quoteExpr(v string, q rune) string {
	return string(q) + escapeExpr(v, q) + string(q)
}

// escapeExpr escapes v for the inside of an expr string literal in quote q.
func escapeExpr(v string, q rune) string {
	var b strings.Builder
	for _, r := range v {
		switch {
		case r == '\\' || r == q:
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// sameTokens checks that got lexes to the tokens of want, string literals'
// contents aside.
func sameTokens(got, want string) error {
	wt, err := lexer.Lex(file.NewSource(want))
	if err != nil {
		return errEnvStructure
	}
	gt, err := lexer.Lex(file.NewSource(got))
	if err != nil || len(gt) != len(wt) {
		return errEnvStructure
	}
	for i := range wt {
		g, w := gt[i], wt[i]
		if g.Kind != w.Kind || (g.Kind != lexer.String && g.Kind != lexer.Bytes && g.Value != w.Value) {
			return errEnvStructure
		}
	}
	return nil
}

// templateSource expands ${VAR} references in a template: in its literal
// text a value is literal text, and inside {{ }} it is a string literal (see
// exprSource). A value cannot open or close an interpolation: the result
// must split into the same parts as the template as written.
func templateSource(src string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(src, "${") {
		return src, nil
	}
	parts, err := rules.SplitTemplate(src)
	if err != nil {
		return "", err
	}
	var out strings.Builder
	var want []rules.TemplatePart
	for _, p := range parts {
		var text string
		var err error
		if p.Expr {
			text, err = exprSource(p.Text, lookup)
		} else {
			text, err = expand(p.Text, lookup)
		}
		if err != nil {
			return "", err
		}
		if p.Expr {
			out.WriteString("{{ " + text + " }}")
		} else {
			out.WriteString(text)
		}
		if text != "" || p.Expr {
			want = append(want, rules.TemplatePart{Text: text, Expr: p.Expr})
		}
	}
	got, err := rules.SplitTemplate(out.String())
	if err != nil || len(got) != len(want) {
		return "", errTemplateStructure
	}
	for i := range got {
		if got[i].Text != want[i].Text || got[i].Expr != want[i].Expr {
			return "", errTemplateStructure
		}
	}
	return out.String(), nil
}

var errTemplateStructure = errors.New(`an environment value would open or close a {{ }} in this template; a value from the environment is text, never an expression`)
