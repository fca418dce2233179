package redact

import "testing"

// A catch URL's token is cut to its prefix whatever characters it holds:
// the whole segment up to the next / or ? is the token, right or wrong.
func TestPathMasksTheWholeTokenSegment(t *testing.T) {
	for in, want := range map[string]string{
		"/hooks/catch/ws/abcd&efghijklmnop-SECRET":    "/hooks/catch/ws/abcd…",
		"/hooks/catch/ws/ab'cdefgh\"ijklmnop-SECRET":  "/hooks/catch/ws/ab'c…",
		"/hooks/catch/ws/abcd#efgh ijkl<mnop>-SECRET": "/hooks/catch/ws/abcd…",
		"/hooks/catch/ws/abcd&efgh-SECRET/":           "/hooks/catch/ws/abcd…/",
		"/hooks/catch/ws/abcd&efgh-SECRET/more?x=1":   "/hooks/catch/ws/abcd…/more?x=1",
		"/hooks/catch/ws/abcd&efgh-SECRET?x=1&y=2":    "/hooks/catch/ws/abcd…?x=1&y=2",
		"/hooks/catch/we'ird\"hook/abcd&efgh-SECRET":  "/hooks/catch/we'ird\"hook/abcd…",
		"/hooks/catch/ws":                             "/hooks/catch/ws",
		"/hooks/catch/ws/":                            "/hooks/catch/ws/",
		"/hooks/catch/ws/abc":                         "/hooks/catch/ws/abc…",
		"/healthz":                                    "/healthz",
	} {
		if got := Path(in); got != want {
			t.Errorf("Path(%q) = %q, want %q", in, got, want)
		}
	}
}

// In free text a token ends where the URL does, at white space, and is
// otherwise masked whole: quotes and & inside it hide nothing.
func TestTextMasksTheWholeToken(t *testing.T) {
	for in, want := range map[string]string{
		"POST /hooks/catch/ws/abcd&efgh'ijkl\"mnop-SECRET failed": "POST /hooks/catch/ws/abcd… failed",
		"GET /hooks/catch/ws/abcd&efgh-SECRET?x=1 done":           "GET /hooks/catch/ws/abcd…?x=1 done",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}
