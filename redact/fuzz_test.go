package redact

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRedact places a random secret the config knows, and a random value
// under a credential's name, into a random field of a random encoding, and
// checks that neither comes out of any view: the payload view, headers,
// the query, a URL, free text or a log line.
func FuzzRedact(f *testing.F) {
	f.Add("hook-secret-1234", "UserToken", "opaque-user-token", uint8(0), uint8(0))
	f.Add("p@ss w0rd/with+chars", "data", "x", uint8(1), uint8(3))
	f.Add("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "password", "hunter2hunter2", uint8(2), uint8(5))
	f.Add("ünïcödé-sêcret", "Authorization", "Bearer abc.def.ghi", uint8(3), uint8(7))
	f.Add("quote\"back\\slash", "note", "text", uint8(4), uint8(9))
	f.Fuzz(func(t *testing.T, secret, name, value string, enc, where uint8) {
		if len(secret) < MinSecretLen || len(secret) > 200 || strings.ContainsAny(secret, "\x00") ||
			strings.Contains(Mask+"…", secret) {
			t.Skip()
		}
		for _, r := range secret {
			if r < 0x20 || r == 0x7f || r == '\uFFFD' {
				t.Skip() // JSON would not carry it as it is
			}
		}
		if len(name) == 0 || len(name) > 64 || strings.ContainsAny(name, "\x00\r\n\"\\") {
			t.Skip()
		}
		// JSON carries only valid UTF-8: invalid bytes come out as U+FFFD,
		// which tells nothing about where they came from.
		if !utf8.ValidString(secret) || !utf8.ValidString(name) || !utf8.ValidString(value) {
			t.Skip()
		}
		red := New([]string{secret}, nil)
		// The value under a credential's name must not come out either,
		// whatever it is, unless it is too short to tell apart.
		credName := "user_" + []string{"password", "token", "secret", "api_key"}[int(where)%4]
		credValue := value
		if len(credValue) < MinSecretLen || strings.ContainsAny(credValue, "\x00\r\n") {
			credValue = ""
		}
		// It is only looked for when nothing else shown could hold it.
		// (as written, query-escaped, or JSON-escaped: a name "\x1000" is
		// shown as "\u001000", which holds a value "001000").
		for _, other := range []string{Mask, name, "x-" + name, secret, credName, "prefix suffix deep free text and trailing note: end id"} {
			quoted, _ := json.Marshal(other)
			if strings.Contains(other, credValue) || strings.Contains(url.QueryEscape(other), credValue) || strings.Contains(string(quoted), credValue) {
				credValue = ""
			}
		}

		views := func(credValue string) [][]string {
			placed := place(secret, name, credName, credValue, enc, where)
			return [][]string{
				strs(red.Payload([]byte(placed.body), placed.contentType)),
				strs(red.Map(map[string]string{name: placed.text, credName: credValue, "x-" + name: secret})),
				{red.URL("https://a.example/p?" + placed.query)},
				{red.String(placed.text)},
				{red.Form(placed.text)},
			}
		}
		// Nor when the views shape it themselves: a form of a field "00000"
		// shows "00000=" whatever the credential holds. The same views with
		// another value under the credential's name tell.
		if credValue != "" {
			for _, v := range views(other(credValue))[:2] {
				for _, shown := range v {
					if strings.Contains(shown, credValue) {
						credValue = ""
					}
				}
			}
		}
		placed := place(secret, name, credName, credValue, enc, where)
		for i, v := range views(credValue) {
			for _, shown := range v {
				if strings.Contains(shown, secret) {
					t.Fatalf("view %d shows the secret %q in %q\n(placed: %+v)", i, secret, shown, placed)
				}
				if credValue != "" && i < 2 && strings.Contains(shown, credValue) {
					t.Fatalf("view %d shows %s's value %q in %q\n(placed: %+v)", i, credName, credValue, shown, placed)
				}
			}
		}
	})
}

// other is a value of v's length that differs from it in every byte.
func other(v string) string {
	b := []byte(v)
	for i := range b {
		if b[i] == 'Q' {
			b[i] = 'Z'
		} else {
			b[i] = 'Q'
		}
	}
	return string(b)
}

// strs is every string a view holds: keys and values, at any depth.
func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case map[string]string:
		var out []string
		for k, v := range x {
			out = append(out, k, v)
		}
		return out
	case map[string]any:
		var out []string
		for k, v := range x {
			out = append(out, k)
			out = append(out, strs(v)...)
		}
		return out
	case []any:
		var out []string
		for _, v := range x {
			out = append(out, strs(v)...)
		}
		return out
	}
	return []string{fmt.Sprint(v)}
}

type placement struct {
	body, contentType, query, text string
}

// place writes secret into a field (or a key) of one encoding, next to a
// credential-named field holding credValue.
func place(secret, name, credName, credValue string, enc, where uint8) placement {
	j := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	var field any = secret
	switch where % 5 {
	case 1:
		field = "prefix " + secret + " suffix"
	case 2:
		field = []any{1, map[string]any{"deep": secret}}
	case 3:
		field = base64.StdEncoding.EncodeToString([]byte(secret))
	case 4:
		field = url.QueryEscape(secret)
	}
	obj := map[string]any{name: field, "id": 1}
	if credValue != "" {
		obj[credName] = credValue
	}
	if where%7 == 6 {
		obj = map[string]any{"k-" + secret: 1}
	}
	form := url.Values{name: {fmt.Sprint(secret)}}
	if credValue != "" {
		form.Set(credName, credValue)
	}
	p := placement{query: form.Encode(), text: "note: " + secret + " end"}
	switch enc % 5 {
	case 0:
		p.body, p.contentType = j(obj), "application/json"
	case 1:
		p.body, p.contentType = "\xef\xbb\xbf"+j(obj), "application/json; charset=utf-8"
	case 2:
		p.body, p.contentType = form.Encode(), "application/x-www-form-urlencoded"
	case 3:
		// Free text has no quoting: a value is taken to end at a space or
		// a separator, so only a value without them is placed there.
		p.body, p.contentType = "free text "+secret, "text/plain"
		if !strings.ContainsAny(credValue, " \t\"'&,;<>\\") {
			p.body += " and " + credName + "=" + credValue
		}
	case 4:
		p.body, p.contentType = j(obj)+" trailing", "application/json" // not JSON: shown as text
	}
	return p
}
