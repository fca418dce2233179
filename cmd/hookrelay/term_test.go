package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// hostile holds what a sender could put in a field to steer a terminal.
var hostile = []string{
	"\x1b[2J\x1b[1;1Hfake prompt$ ", // clear screen, move cursor
	"ok\rEVIL",                      // carriage return overwrites the line
	"bell\a",
	"\x1b]0;title\x07",   // OSC: set the window title
	"\u009b31mred",       // C1 CSI
	"abc\u202edcba",      // right-to-left override
	"x\u2066y\u2069",     // bidi isolates
	"zero\u200bwidth",    // zero-width space
	"tag\U000E0041",      // tag character
	"line\u2028sep",      // line separator
	"bad\xffutf8",        // not UTF-8
	"row\tcol\nnext row", // layout
	"del\x7f",
}

func TestSafeEscapesEveryTerminalControl(t *testing.T) {
	for _, s := range hostile {
		got := safe(s)
		for _, r := range got {
			if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == '\u202e' || r == '\u2066' || r == '\u2069' || r == '\u200b' || r == '\U000E0041' || r == '\u2028' || r == '\ufffd' {
				t.Errorf("safe(%q) = %q still holds %U", s, got, r)
			}
		}
		if !strings.Contains(got, `\`) {
			t.Errorf("safe(%q) = %q, want an escape", s, got)
		}
	}
	if got := safe("plain — text, ünïcode 日本"); got != "plain — text, ünïcode 日本" {
		t.Errorf("printable text changed: %q", got)
	}
	if got := safe("a\x1b[31mb\u202ec"); got != `a\u001b[31mb\u202ec` {
		t.Errorf("safe = %q", got)
	}
	if got := safeText("one\n\ttwo\rthree"); got != "one\n\ttwo\\rthree" {
		t.Errorf("safeText = %q", got)
	}
}

func TestTerminalWriterKeepsJSONValid(t *testing.T) {
	var out bytes.Buffer
	w := &terminalWriter{w: &out}
	in, _ := json.Marshal(map[string]string{"a": "x\u202ey\u0085z\x7f\U000E0041"})
	// Write one byte at a time: characters split across writes must come
	// out whole.
	for i := range in {
		if _, err := w.Write(in[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	var back map[string]string
	if err := json.Unmarshal(out.Bytes(), &back); err != nil {
		t.Fatalf("escaped JSON %q does not parse: %v", out.String(), err)
	}
	if back["a"] != "x\u202ey\u0085z\x7f\U000E0041" {
		t.Errorf("round trip = %q", back["a"])
	}
	if strings.ContainsAny(out.String(), "\u202e\u0085\x7f") {
		t.Errorf("output %q holds raw control characters", out.String())
	}
}
