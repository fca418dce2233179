package rules

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// TemplateError is a template compile error. Offset is the byte offset in
// the template of what failed: the opening "{{" of an unclosed or empty
// interpolation, or the place of the fault inside an expression. Err is an
// *ExprError (with Line and Column inside the expression) or a plain error.
type TemplateError struct {
	Offset int
	Err    error
}

func (e *TemplateError) Error() string {
	var ee *ExprError
	if errors.As(e.Err, &ee) {
		return fmt.Sprintf("at byte %d: %s", e.Offset, ee.Msg)
	}
	return fmt.Sprintf("at byte %d: %v", e.Offset, e.Err)
}

func (e *TemplateError) Unwrap() error { return e.Err }

// Template is a string with {{ expr }} interpolations, compiled once and
// safe for concurrent use.
type Template struct {
	src    string
	parts  []part
	escape func(string) string
}

// part is either literal text or an expression.
type part struct {
	lit  string
	prog *Program
}

// CompileTemplate compiles s. escape, when not nil, is applied to the string
// form of every interpolated value (never to the literal text), e.g.
// url.PathEscape for a URL.
//
// A template that is exactly one interpolation, such as "{{ body.total }}",
// renders to the expression's value with its type kept when escape is nil:
// a number stays a number and an object an object in a JSON body. Any other
// template renders to a string.
func CompileTemplate(s string, escape func(string) string) (*Template, error) {
	t := &Template{src: s, escape: escape}
	parts, err := SplitTemplate(s)
	if err != nil {
		return nil, err
	}
	for _, pt := range parts {
		if !pt.Expr {
			t.addLiteral(pt.Text)
			continue
		}
		p, err := CompileValue(pt.Text)
		if err != nil {
			var ee *ExprError
			if errors.As(err, &ee) {
				return nil, &TemplateError{Offset: pt.Offset + byteOffset(pt.Text, ee.Line, ee.Column), Err: ee}
			}
			return nil, &TemplateError{Offset: pt.Offset, Err: err}
		}
		t.parts = append(t.parts, part{prog: p})
	}
	return t, nil
}

// TemplatePart is one piece of a template's source: literal text, or the
// expression inside one {{ }} without the blanks around it. Offset is
// where Text starts in the source.
type TemplatePart struct {
	Text   string
	Expr   bool
	Offset int
}

// SplitTemplate splits s into literal text and expressions exactly as
// CompileTemplate reads it, without compiling anything; empty literal text
// is left out. Errors are *TemplateError.
func SplitTemplate(s string) ([]TemplatePart, error) {
	var parts []TemplatePart
	lit := func(from, to int) {
		if to > from {
			parts = append(parts, TemplatePart{Text: s[from:to], Offset: from})
		}
	}
	i := 0
	for {
		j := strings.Index(s[i:], "{{")
		if j < 0 {
			lit(i, len(s))
			return parts, nil
		}
		open := i + j
		lit(i, open)
		from := open + 2
		end, ok := closing(s, from)
		if !ok {
			return nil, &TemplateError{Offset: open, Err: errors.New(`unclosed "{{": add "}}" after the expression`)}
		}
		inner := s[from:end]
		code := strings.TrimSpace(inner)
		if code == "" {
			return nil, &TemplateError{Offset: open, Err: errors.New("empty {{ }}: put an expression inside")}
		}
		parts = append(parts, TemplatePart{Text: code, Expr: true, Offset: from + strings.Index(inner, code)})
		i = end + 2
	}
}

func (t *Template) addLiteral(s string) {
	if s != "" {
		t.parts = append(t.parts, part{lit: s})
	}
}

// closing finds the "}}" that ends the interpolation whose expression starts
// at from. Braces and quotes inside the expression are skipped, so that
// {{ {"a": 1} }} and {{ m["}}"] }} work.
func closing(s string, from int) (int, bool) {
	depth := 0
	for k := from; k < len(s); k++ {
		switch c := s[k]; c {
		case '"', '\'', '`':
			k = skipString(s, k)
		case '{':
			depth++
		case '}':
			if depth == 0 {
				if k+1 < len(s) && s[k+1] == '}' {
					return k, true
				}
				continue
			}
			depth--
		}
	}
	return 0, false
}

// skipString returns the index of the quote closing the string literal that
// opens at s[k] (or the end of s).
func skipString(s string, k int) int {
	q := s[k]
	for k++; k < len(s); k++ {
		switch s[k] {
		case '\\':
			if q != '`' {
				k++
			}
		case q:
			return k
		}
	}
	return len(s)
}

// byteOffset converts a 1-based line and character column inside code into
// a byte offset.
func byteOffset(code string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		nl := strings.IndexByte(code[off:], '\n')
		if nl < 0 {
			return len(code)
		}
		off += nl + 1
	}
	for c := 1; c < col && off < len(code); c++ {
		_, size := utf8.DecodeRuneInString(code[off:])
		off += size
	}
	return off
}

// Source is the template as written.
func (t *Template) Source() string { return t.src }

// IsLiteral reports whether the template has no interpolation.
func (t *Template) IsLiteral() bool {
	for _, p := range t.parts {
		if p.prog != nil {
			return false
		}
	}
	return true
}

// whole returns the program of a template that is one interpolation and
// nothing else but blanks around it.
func (t *Template) whole() *Program {
	var prog *Program
	for _, p := range t.parts {
		switch {
		case p.prog != nil && prog == nil:
			prog = p.prog
		case p.prog != nil, strings.TrimSpace(p.lit) != "":
			return nil
		}
	}
	return prog
}

// Render evaluates the template. A template that is one interpolation
// without escape gives the expression's value as it is (nil included);
// anything else gives a string, as RenderString.
func (t *Template) Render(env Env) (any, error) {
	if p := t.whole(); p != nil && t.escape == nil {
		return p.Run(env)
	}
	return t.RenderString(env)
}

// RenderString evaluates the template into a string. An interpolation whose
// value is nil is an error: a missing field must not silently become "" in a
// URL or a header.
func (t *Template) RenderString(env Env) (string, error) {
	if len(t.parts) == 1 && t.parts[0].prog == nil {
		return t.parts[0].lit, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.prog == nil {
			b.WriteString(p.lit)
			continue
		}
		s, err := p.prog.stringValue(env)
		if err != nil {
			return "", err
		}
		if t.escape != nil {
			s = t.escape(s)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// stringValue runs p for an interpolation into a string. A nil value is an
// error: a missing field must not silently become "".
func (p *Program) stringValue(env Env) (string, error) {
	v, err := p.Run(env)
	if err != nil {
		return "", err
	}
	if v == nil {
		return "", fmt.Errorf("%s: the value is nil (missing field?); use ?? to give a default", p.Source())
	}
	s, err := formatValue(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p.Source(), err)
	}
	return s, nil
}

// Piece is one part of a template: literal text, or an interpolation.
type Piece struct {
	// Value is true for an interpolation.
	Value bool
	// Text is the literal text as written, or the interpolation's string
	// value before any escape (Pieces gives its expression instead).
	Text string
	// Expr is the interpolation's expression as written ("" for a literal).
	Expr string
}

// Pieces returns the template as compiled: each literal, and each
// interpolation with its expression in Text and Expr.
func (t *Template) Pieces() []Piece {
	out := make([]Piece, len(t.parts))
	for i, p := range t.parts {
		if p.prog == nil {
			out[i] = Piece{Text: p.lit}
		} else {
			out[i] = Piece{Value: true, Text: p.prog.Source(), Expr: p.prog.Source()}
		}
	}
	return out
}

// RenderPieces evaluates the template into its pieces, in order, with each
// value in its string form and the template's escape NOT applied: for a
// caller that must judge every value where it lands (a URL path checks the
// segment each value ends up in). A nil value is an error, as in
// RenderString.
func (t *Template) RenderPieces(env Env) ([]Piece, error) {
	out := make([]Piece, len(t.parts))
	for i, p := range t.parts {
		if p.prog == nil {
			out[i] = Piece{Text: p.lit}
			continue
		}
		s, err := p.prog.stringValue(env)
		if err != nil {
			return nil, err
		}
		out[i] = Piece{Value: true, Text: s, Expr: p.prog.Source()}
	}
	return out, nil
}
