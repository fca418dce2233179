package actions

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// TokenExpiredError is a bearer token, a JWT, whose exp claim has passed:
// the receiver could only refuse it, so nothing is sent and the delivery is
// dead at once. It matches ErrPermanent.
type TokenExpiredError struct {
	At time.Time // the token's exp
}

func (e *TokenExpiredError) Error() string {
	return "token expired at " + e.At.UTC().Format(time.RFC3339)
}

// Is makes an expired token match ErrPermanent.
func (e *TokenExpiredError) Is(target error) bool { return target == ErrPermanent }

// CheckBearer returns a *TokenExpiredError when the request's
// "Authorization: Bearer" token is a JWT whose exp is not after now
// (RFC 7519 §4.1.4: the token is accepted only before exp). A token that
// is not a JWT, or has no exp, passes. An attempt checks it before it
// sends a request, and a dry run shows the same verdict.
func CheckBearer(h http.Header, now time.Time) error {
	scheme, tok, ok := strings.Cut(h.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil
	}
	exp, ok := tokenExpiry(strings.TrimSpace(tok))
	if !ok || now.Before(exp) {
		return nil
	}
	return &TokenExpiredError{At: exp}
}

// tokenExpiry reads the exp claim of tok when tok is a JWT in JWS compact
// form: three base64url segments, the first two JSON objects. The
// signature is not checked: the receiver is the token's audience and
// judges it; hookrelay only reads when the token stops being accepted.
// ok is false for anything else, and for a JWT whose exp is missing or not
// a number.
func tokenExpiry(tok string) (exp time.Time, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return time.Time{}, false
	}
	var header map[string]json.RawMessage
	if !decodeSegment(parts[0], &header) || header == nil {
		return time.Time{}, false
	}
	// A map, not a struct: claim names are case-sensitive, and
	// encoding/json matches struct fields without regard to case.
	var claims map[string]json.RawMessage
	if !decodeSegment(parts[1], &claims) || claims == nil {
		return time.Time{}, false
	}
	raw, ok := claims["exp"]
	if !ok {
		return time.Time{}, false
	}
	// A NumericDate: seconds since the epoch, possibly with a fraction.
	// The claim is valid JSON already; a string, even "1700000000", is not
	// a NumericDate.
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return time.Time{}, false
	}
	secs, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return time.Time{}, false
	}
	// Far beyond any date time.Time can hold: the token does not expire.
	const limit = 1 << 40
	switch {
	case secs >= limit:
		return time.Time{}, false
	case secs <= -limit:
		secs = -limit
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)), true
}

// decodeSegment decodes one base64url segment of a JWT into v. JWTs carry
// no padding; a padded segment is read too.
func decodeSegment(seg string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return false
	}
	return json.Unmarshal(b, v) == nil
}
