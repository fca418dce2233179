package actions

import (
	"net/http"
	"net/url"
	"strings"
)

const redacted = "[redacted]"

// sensitiveParts are the pieces of a header or parameter name that mark its
// value as a credential.
var sensitiveParts = []string{"token", "secret", "signature", "api-key", "api_key", "apikey", "password", "passwd", "credential"}

// Sensitive reports whether a header, parameter or field of this name holds
// a credential whose value must not be shown: Authorization,
// Proxy-Authorization, Cookie, Set-Cookie, or a name containing token,
// secret, signature, api-key, password or credential (in any case).
func Sensitive(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "cookie", "set-cookie":
		return true
	}
	for _, p := range sensitiveParts {
		if strings.Contains(n, p) {
			return true
		}
	}
	return false
}

// Redact flattens h for display, with the values of Authorization,
// Proxy-Authorization, Cookie and any header whose name contains token,
// secret, signature, api-key, password or credential replaced by
// "[redacted]".
func Redact(h http.Header) map[string]string {
	m := make(map[string]string, len(h))
	for k, v := range h {
		name := http.CanonicalHeaderKey(k)
		if Sensitive(name) {
			m[name] = redacted
			continue
		}
		m[name] = strings.Join(v, ", ")
	}
	return m
}

// redactURL hides the values of query parameters with sensitive names
// (?access_token=...), leaving the rest of the URL as it is.
func redactURL(raw string) string {
	base, query, ok := strings.Cut(raw, "?")
	if !ok {
		return raw
	}
	query, frag, hasFrag := strings.Cut(query, "#")
	parts := strings.Split(query, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if name, err := url.QueryUnescape(k); err == nil && Sensitive(name) {
			parts[i] = k + "=" + redacted
		}
	}
	out := base + "?" + strings.Join(parts, "&")
	if hasFrag {
		out += "#" + frag
	}
	return out
}
