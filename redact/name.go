package redact

import (
	"regexp"
	"strings"
)

// Mask is what a hidden value is replaced with.
const Mask = "[redacted]"

// sensitiveParts are the pieces of a header, parameter or field name that
// mark its value as a credential.
var sensitiveParts = []string{
	"token", "secret", "signature", "api-key", "api_key", "apikey", "password", "passwd",
	"credential", "hmac", "session", "private-key", "private_key", "privatekey",
	"passphrase", "pwd", "jwt", "bearer", "authorization", "cookie",
	"access-key", "access_key", "accesskey",
}

// sensitiveNames are whole names that carry a credential or a MAC that
// would let someone replay a request: every header a verify scheme reads
// its MAC from, and the HTTP credentials.
var sensitiveNames = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "set-cookie": true,
	"x-oc-hash": true, "x-shopify-hmac-sha256": true, "x-hub-signature": true, "x-hub-signature-256": true,
	"stripe-signature": true, "x-slack-signature": true, "webhook-signature": true, "svix-signature": true,
	"x-oncloudwine-signature": true, "x-api-key": true, "api-key": true, "apikey": true,
	// Short names that carry a credential by custom (?key=, ?sig=).
	"key": true, "sig": true, "auth": true, "pass": true, "otp": true,
}

// Sensitive reports whether a header, parameter or field of this name holds
// a credential whose value must not be shown: Authorization,
// Proxy-Authorization, Cookie, Set-Cookie, the MAC header of every verify
// scheme, the short names key, sig, auth, pass and otp, or a name
// containing token, secret, signature, api-key, access-key, password,
// passphrase, pwd, credential, hmac, session, jwt, bearer, cookie or
// private-key (in any case).
func Sensitive(name string) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	if sensitiveNames[n] {
		return true
	}
	for _, p := range sensitiveParts {
		if strings.Contains(n, p) {
			return true
		}
	}
	return false
}

var identRE = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_-]*`)

// ReadsCredential reports whether an expression's source names a
// credential (body.UserToken, headers["x-api-key"]): its value, such as an
// idempotency key computed from it, is then a credential too.
func (r *Redactor) ReadsCredential(src string) bool {
	for _, id := range identRE.FindAllString(src, -1) {
		if r.Name(id) {
			return true
		}
	}
	return false
}

// Read masks text derived from what the expression src reads (a field's
// value in a rule's trace, the constant a rule compares it with): wholly
// when src names a credential, else by value and pattern. Empty text stays
// empty.
func (r *Redactor) Read(src, text string) string {
	if text == "" {
		return ""
	}
	if r.ReadsCredential(src) {
		return Mask
	}
	return r.String(text)
}
