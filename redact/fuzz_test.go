package redact

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
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
		red := New([]string{secret}, nil)
		// The value under a credential's name must not come out either,
		// whatever it is, unless it is too short to tell apart.
		credName := "user_" + []string{"password", "token", "secret", "api_key"}[int(where)%4]
		credValue := value
		if len(credValue) < MinSecretLen || strings.ContainsAny(credValue, "\x00\r\n") {
			credValue = ""
		}
		// It is only looked for when nothing else shown could hold it.
		for _, other := range []string{Mask, name, secret, credName, "prefix suffix deep free text and trailing note: end id"} {
			if strings.Contains(other, credValue) || strings.Contains(url.QueryEscape(other), credValue) {
				credValue = ""
			}
		}

		placed := place(secret, name, credName, credValue, enc, where)
		views := []string{
			show(red.Payload([]byte(placed.body), placed.contentType)),
			show(red.Map(map[string]string{name: placed.text, credName: credValue, "x-" + name: secret})),
			red.URL("https://a.example/p?" + placed.query),
			red.String(placed.text),
			red.Form(placed.text),
		}
		for i, v := range views {
			if contains(v, secret) {
				t.Fatalf("view %d shows the secret %q:\n%s\n(placed: %+v)", i, secret, v, placed)
			}
			if credValue != "" && i < 2 && contains(v, credValue) {
				t.Fatalf("view %d shows %s's value %q:\n%s\n(placed: %+v)", i, credName, credValue, v, placed)
			}
		}
	})
}

// contains reports whether shown carries s as it is or JSON-escaped.
func contains(shown, s string) bool {
	if strings.Contains(shown, s) {
		return true
	}
	b, _ := json.Marshal(s)
	return strings.Contains(shown, string(b[1:len(b)-1]))
}

func show(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return b.String()
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
		p.body, p.contentType = "free text "+secret+" and "+credName+"="+credValue, "text/plain"
	case 4:
		p.body, p.contentType = j(obj)+" trailing", "application/json" // not JSON: shown as text
	}
	return p
}
