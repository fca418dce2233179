package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"
)

// Stored values (payload fields, headers, key names, error texts) come from
// whoever sent them. Printed as they are, an ESC sequence, a carriage
// return or a bidi override could rewrite what an operator sees on the
// terminal, and a tab or newline could forge a table row. Every value is
// printed through safe or a table, and everything the CLI writes passes a
// terminalWriter as well.

// safe returns s with every character that a terminal would act on, or
// that would break a line or a table column, written as an escape:
// \t, \n and \r, \u001b for other control characters, \u202e for format
// characters such as bidi overrides, \xff for bytes that are not UTF-8.
func safe(s string) string { return escapeTerminal(s, false) }

// safeText is safe for multi-line text: newlines and tabs are kept.
func safeText(s string) string { return escapeTerminal(s, true) }

func escapeTerminal(s string, keepLayout bool) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, size) && !(keepLayout && (r == '\n' || r == '\t')) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case keepLayout && (r == '\n' || r == '\t'):
			b.WriteByte(byte(r))
		case unsafeRune(r, size):
			writeEscape(&b, r, s[i])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// unsafeRune reports whether r (of size bytes) must not reach a terminal
// as it is: control characters (C0, DEL, C1), format characters (bidi
// controls, zero-width joiners, tag characters), line and paragraph
// separators, and bytes that are not UTF-8.
func unsafeRune(r rune, size int) bool {
	if r == utf8.RuneError && size == 1 {
		return true
	}
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}

// writeEscape writes r as an escape that reads the same inside a JSON
// string, so that escaped JSON output stays valid JSON.
func writeEscape(b *strings.Builder, r rune, first byte) {
	switch {
	case r == utf8.RuneError:
		fmt.Fprintf(b, `\x%02x`, first)
	case r == '\t':
		b.WriteString(`\t`)
	case r == '\n':
		b.WriteString(`\n`)
	case r == '\r':
		b.WriteString(`\r`)
	case r > 0xFFFF:
		r -= 0x10000
		fmt.Fprintf(b, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
	default:
		fmt.Fprintf(b, `\u%04x`, r)
	}
}

// table writes aligned columns; every cell is escaped with safe.
type table struct{ w *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	fmt.Fprintln(t.w, strings.Join(header, "\t"))
	return t
}

func (t *table) row(cells ...any) {
	for i, c := range cells {
		if i > 0 {
			io.WriteString(t.w, "\t")
		}
		io.WriteString(t.w, safe(fmt.Sprint(c)))
	}
	io.WriteString(t.w, "\n")
}

func (t *table) flush() error { return t.w.Flush() }

// terminalWriter passes text through with every unsafe character escaped,
// newlines and tabs kept: the last line of defence for output that does not
// go through safe. A character split across two writes is held back until
// the next write completes it.
type terminalWriter struct {
	w       io.Writer
	pending []byte
}

func (t *terminalWriter) Write(p []byte) (int, error) {
	buf := append(t.pending, p...)
	t.pending = nil
	// Hold back an incomplete character at the end.
	if tail := incompleteTail(buf); tail > 0 {
		t.pending = append([]byte(nil), buf[len(buf)-tail:]...)
		buf = buf[:len(buf)-tail]
	}
	s := string(buf)
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == '\n' || r == '\t') || !unsafeRune(r, size) {
			b.WriteString(s[i : i+size])
		} else {
			writeEscape(&b, r, s[i])
		}
		i += size
	}
	if _, err := io.WriteString(t.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// incompleteTail is how many bytes at the end of b start a UTF-8 character
// that is not complete yet.
func incompleteTail(b []byte) int {
	for n := 1; n <= 3 && n <= len(b); n++ {
		c := b[len(b)-n]
		if c < 0x80 {
			return 0
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-n:]) {
				return n
			}
			return 0
		}
	}
	return 0
}
