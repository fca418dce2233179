package redact

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/url"
	"strings"
	"unicode/utf8"
)

// bom is the byte order mark some senders write before UTF-8 JSON.
var bom = []byte("\xef\xbb\xbf")

// Payload shows a stored body as the API shows it: JSON (with or without a
// byte order mark) as JSON, with the values of credential-named fields (an
// OrderCloud UserToken, a password) masked and every string masked by
// value and pattern; a form body as text with the same done to each pair;
// anything else as text masked by value and pattern.
func (r *Redactor) Payload(body []byte, contentType string) any {
	trimmed := bytes.TrimPrefix(body, bom)
	if isForm(contentType) {
		return r.Form(string(trimmed))
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber() // large ids keep every digit
	var v any
	if err := dec.Decode(&v); err == nil && !dec.More() {
		return r.Value(v)
	}
	if !utf8.Valid(body) {
		body = []byte(strings.ToValidUTF8(string(body), "\uFFFD"))
	}
	return r.Form(string(body))
}

func isForm(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt, _, _ = strings.Cut(strings.ToLower(contentType), ";")
		mt = strings.TrimSpace(mt)
	}
	return mt == "application/x-www-form-urlencoded"
}

// Value masks a decoded JSON value in place and returns it.
func (r *Redactor) Value(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			nk := r.String(k)
			if nk != k {
				delete(x, k)
			}
			if r.Name(k) {
				x[nk] = Mask
			} else {
				x[nk] = r.Value(val)
			}
		}
	case []any:
		for i := range x {
			x[i] = r.Value(x[i])
		}
	case string:
		return r.String(x)
	}
	return v
}

// Form masks text that may be a form body (a=1&b=2): a pair whose decoded
// name is a credential's has its value masked, and every pair whose decoded
// value holds a known secret or credential pattern is masked too; the text
// as a whole is masked by value and pattern before and after. Text that is not a form
// passes through the last step only.
func (r *Redactor) Form(text string) string {
	// Known secrets go first, as the text holds them: cutting it into pairs
	// could split one across a name and its value, and re-escaping a value
	// could write one in a form no longer recognised.
	text = r.String(text)
	if strings.ContainsAny(text, "&=") {
		parts := strings.Split(text, "&")
		for i, p := range parts {
			k, v, ok := strings.Cut(p, "=")
			name, err := url.QueryUnescape(k)
			if err != nil {
				name = k
			}
			val, err := url.QueryUnescape(v)
			if err != nil {
				val = v
			}
			switch {
			case !ok:
				if r.String(name) != name {
					parts[i] = Mask
				}
			case r.Name(name) || r.String(name) != name:
				parts[i] = k + "=" + Mask
			case r.String(val) != val:
				parts[i] = k + "=" + strings.ReplaceAll(url.QueryEscape(r.String(val)), url.QueryEscape(Mask), Mask)
			}
		}
		text = strings.Join(parts, "&")
	}
	return r.String(text)
}
