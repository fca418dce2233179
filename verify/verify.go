package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Scheme names accepted in Config.Scheme.
const (
	SchemeHMAC             = "hmac"
	SchemeOnCloudWine      = "oncloudwine"
	SchemeOrderCloud       = "ordercloud"
	SchemeGitHub           = "github"
	SchemeStripe           = "stripe"
	SchemeShopify          = "shopify"
	SchemeSlack            = "slack"
	SchemeStandardWebhooks = "standard-webhooks"
	SchemeNone             = "none"
)

// DefaultTolerance is the age and future skew a timestamped scheme accepts when Config.Tolerance is zero.
const DefaultTolerance = 5 * time.Minute

var schemes = []string{
	SchemeHMAC, SchemeOnCloudWine, SchemeOrderCloud, SchemeGitHub, SchemeStripe,
	SchemeShopify, SchemeSlack, SchemeStandardWebhooks, SchemeNone,
}

// Schemes returns the names New accepts, in a stable order.
func Schemes() []string { return append([]string(nil), schemes...) }

// Config is what a hook's `verify:` block in the YAML config decodes into.
type Config struct {
	Scheme    string        // "hmac", "oncloudwine", "ordercloud", "github", "stripe", "shopify", "slack", "standard-webhooks", "none"
	Header    string        // hmac only: header carrying the signature
	Algorithm string        // hmac only: "sha1", "sha256" (default), "sha512"
	Encoding  string        // hmac only: "hex" (default) or "base64"
	Prefix    string        // hmac only: e.g. "sha256=" expected before the MAC
	Secrets   []string      // at least one non-empty secret, except for "none"
	Tolerance time.Duration // timestamped schemes (stripe, slack, standard-webhooks): max age AND max future skew; default 5m
}

// String describes c with its secrets redacted, so that printing a config never shows them.
func (c Config) String() string {
	return fmt.Sprintf("{Scheme:%q Header:%q Algorithm:%q Encoding:%q Prefix:%q Secrets:%d redacted Tolerance:%s}",
		c.Scheme, c.Header, c.Algorithm, c.Encoding, c.Prefix, len(c.Secrets), c.Tolerance)
}

// LogValue keeps secrets out of structured logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("scheme", c.Scheme),
		slog.String("header", c.Header),
		slog.String("algorithm", c.Algorithm),
		slog.String("encoding", c.Encoding),
		slog.String("prefix", c.Prefix),
		slog.Int("secrets", len(c.Secrets)),
		slog.Duration("tolerance", c.Tolerance),
	)
}

// Verifier checks that a request came from the sender holding the secret. Verifiers are
// immutable and safe for concurrent use.
type Verifier interface {
	Scheme() string
	// Verify returns nil, or an error wrapping ErrSignature. Its message says what is wrong
	// ("missing header X-Hub-Signature-256", "signature mismatch", "timestamp too old") but NEVER
	// contains the expected MAC or any part of a secret in any encoding.
	Verify(h http.Header, body []byte, now time.Time) error
	// Check is Verify that also tells what verified the request: which configured secret
	// matched and, for a timestamped scheme, the instant that was signed. It compares as Verify
	// does, every secret in constant time, so timing still says nothing about which matched.
	Check(h http.Header, body []byte, now time.Time) (Proof, error)
	// Sign returns the headers a real sender would add for body at now, using the first secret
	// (nil for "none"). Used by tests, the `hookrelay sign` command and test pings.
	Sign(body []byte, now time.Time) http.Header
	// SignedKey is the idempotency key of a request Verify accepted when the hook names none: the
	// sender's own event id where the signature covers one, read from exactly what Verify read
	// (Standard Webhooks: the id header of the family whose signature verified; Stripe: the id
	// inside the signed body). ok is false where the signature covers nothing but the body (and,
	// for Slack, a timestamp that changes on every retry): the caller then keys the event by the
	// body's hash, so that a signed body seen again is a duplicate whatever unsigned headers, such
	// as a delivery id, came with it.
	SignedKey(h http.Header, body []byte) (key string, ok bool)
	// KeySource names where SignedKey reads the key of a request with headers h ("webhook-id",
	// "svix-id", "id in the signed body"); "" for a scheme whose signature covers no id.
	KeySource(h http.Header) string
}

// Proof is what verified a request.
type Proof struct {
	// Secret is the position (from 1) in the configured list of the secret whose signature
	// matched; 0 for scheme none, which checks none.
	Secret int
	// Signed is the timestamp the signature covers; zero for a scheme that signs none.
	Signed time.Time
}

// ErrSignature is wrapped by every error Verify returns.
var ErrSignature = errors.New("signature verification failed")

// failf builds a Verify error. Callers pass only header names, lengths and fixed words: never a
// header value, since a value may hold a correct MAC sent in the wrong form.
func failf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSignature, fmt.Sprintf(format, args...))
}

var errMismatch = failf("signature mismatch")

// ConfigError names the offending field of Config ("scheme", "header", "algorithm", "encoding",
// "prefix", "secrets", "tolerance") so the config loader can point at its line and column.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Msg }

func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// New validates c and returns the Verifier for its scheme.
func New(c Config) (Verifier, error) {
	if c.Scheme == "" {
		return nil, configErr("scheme", "is required; known schemes: %s", strings.Join(schemes, ", "))
	}
	known := false
	for _, s := range schemes {
		known = known || s == c.Scheme
	}
	if !known {
		return nil, configErr("scheme", "unknown scheme %q; known schemes: %s", c.Scheme, strings.Join(schemes, ", "))
	}
	if c.Scheme != SchemeHMAC {
		for _, f := range []struct{ name, value string }{
			{"header", c.Header}, {"algorithm", c.Algorithm}, {"encoding", c.Encoding}, {"prefix", c.Prefix},
		} {
			if f.value != "" {
				return nil, configErr(f.name, "applies only to scheme hmac, not %s", c.Scheme)
			}
		}
	}
	timestamped := c.Scheme == SchemeStripe || c.Scheme == SchemeSlack || c.Scheme == SchemeStandardWebhooks
	switch {
	case c.Tolerance < 0:
		return nil, configErr("tolerance", "must not be negative")
	case c.Tolerance > 0 && !timestamped:
		return nil, configErr("tolerance", "applies only to schemes stripe, slack and standard-webhooks, not %s", c.Scheme)
	}
	tol := c.Tolerance
	if tol == 0 {
		tol = DefaultTolerance
	}

	if c.Scheme == SchemeNone {
		if len(c.Secrets) > 0 {
			return nil, configErr("secrets", "scheme none takes no secrets")
		}
		return noneVerifier{}, nil
	}
	if len(c.Secrets) == 0 {
		return nil, configErr("secrets", "at least one secret is required for scheme %s", c.Scheme)
	}
	// An empty entry is most often an unset environment variable; an empty HMAC key would let
	// anyone sign, so it is refused rather than skipped.
	for i, s := range c.Secrets {
		if s == "" {
			return nil, configErr("secrets", "secret #%d is empty", i+1)
		}
	}
	if c.Scheme == SchemeStandardWebhooks {
		return newStandardWebhooks(c.Secrets, tol)
	}
	keys := make([][]byte, len(c.Secrets))
	for i, s := range c.Secrets {
		keys[i] = []byte(s)
	}

	switch c.Scheme {
	case SchemeHMAC:
		return newGenericHMAC(c, keys)
	case SchemeOnCloudWine:
		return &macVerifier{scheme: c.Scheme, header: "X-OnCloudWine-Signature", hash: sha256.New, enc: encHex, keys: newMACKeys(sha256.New, keys)}, nil
	case SchemeOrderCloud:
		return &macVerifier{scheme: c.Scheme, header: "X-oc-hash", hash: sha256.New, enc: encBase64, keys: newMACKeys(sha256.New, keys)}, nil
	case SchemeGitHub:
		return &macVerifier{
			scheme: c.Scheme, header: "X-Hub-Signature-256", prefix: "sha256=", hash: sha256.New, enc: encHex, keys: newMACKeys(sha256.New, keys),
			idHeader: "X-GitHub-Delivery",
		}, nil
	case SchemeShopify:
		return &macVerifier{
			scheme: c.Scheme, header: "X-Shopify-Hmac-Sha256", hash: sha256.New, enc: encBase64, keys: newMACKeys(sha256.New, keys),
			idHeader: "X-Shopify-Webhook-Id",
		}, nil
	case SchemeStripe:
		return &stripeVerifier{keys: newMACKeys(sha256.New, keys), tolerance: tol}, nil
	case SchemeSlack:
		return &slackVerifier{keys: newMACKeys(sha256.New, keys), tolerance: tol}, nil
	}
	return nil, configErr("scheme", "unknown scheme %q", c.Scheme) // unreachable: every known scheme is handled above
}

// encoding is how a MAC is written in a header.
type encoding int

const (
	encHex encoding = iota
	encBase64
)

func (e encoding) String() string {
	if e == encBase64 {
		return "base64"
	}
	return "hex"
}

// encode writes mac the way senders do: lower-case hex, or padded standard base64.
func (e encoding) encode(mac []byte) string {
	if e == encBase64 {
		return base64.StdEncoding.EncodeToString(mac)
	}
	return hex.EncodeToString(mac)
}

// decode reads a MAC written in e. Hex is case-insensitive. Base64 may use the standard or the
// URL-safe alphabet (not both), padded or not, and is decoded strictly: those four spellings of
// a MAC are accepted, and no others (stray bits past the MAC, wrong padding, line breaks).
func (e encoding) decode(s string) ([]byte, bool) {
	if e == encHex {
		b, err := hex.DecodeString(s)
		return b, err == nil
	}
	// The base64 decoder skips CR and LF; refuse them so they cannot pad out a signature.
	if strings.ContainsAny(s, "\r\n") {
		return nil, false
	}
	// The alphabet is picked by its own characters; the other alphabet's then fail to decode.
	url := strings.ContainsAny(s, "-_")
	padded := strings.HasSuffix(s, "=")
	var enc *base64.Encoding
	switch {
	case url && padded:
		enc = base64.URLEncoding
	case url:
		enc = base64.RawURLEncoding
	case padded:
		enc = base64.StdEncoding
	default:
		enc = base64.RawStdEncoding
	}
	b, err := enc.Strict().DecodeString(s)
	return b, err == nil
}

// decodeMAC decodes a signature of size bytes, naming what is wrong with it when it is unusable.
func decodeMAC(e encoding, s string, size int) ([]byte, error) {
	if s == "" {
		return nil, failf("signature is empty")
	}
	b, ok := e.decode(s)
	if !ok {
		return nil, failf("signature is not valid %s", e)
	}
	if len(b) != size {
		return nil, failf("signature is %d bytes, want %d", len(b), size)
	}
	return b, nil
}

// macKeys are a verifier's secrets, each keying HMACs of one hash.
// Keying an HMAC hashes two blocks and allocates its state; every request
// would pay that for every secret, so each secret keeps a pool of keyed
// HMACs that are reset for the next request instead.
type macKeys []*sync.Pool

func newMACKeys(h func() hash.Hash, secrets [][]byte) macKeys {
	keys := make(macKeys, len(secrets))
	for i, secret := range secrets {
		keys[i] = &sync.Pool{New: func() any { return hmac.New(h, secret) }}
	}
	return keys
}

// sum is the HMAC of parts, one after the other, under the i-th secret.
func (k macKeys) sum(i int, parts ...[]byte) []byte {
	m := k[i].Get().(hash.Hash)
	m.Reset()
	for _, p := range parts {
		m.Write(p)
	}
	out := m.Sum(nil)
	k[i].Put(m)
	return out
}

// sums is the HMAC of parts under each secret, in their order.
func (k macKeys) sums(parts ...[]byte) [][]byte {
	out := make([][]byte, len(k))
	for i := range k {
		out[i] = k.sum(i, parts...)
	}
	return out
}

// matchIndex is the position (from 1) of the first expected MAC that equals a candidate, 0
// when none does. It compares every pair in constant time and neither stops nor branches at a
// match, so timing says nothing about which secret or which of several signatures matched.
func matchIndex(candidates, expected [][]byte) int {
	idx := 0
	for i, e := range expected {
		m := 0
		for _, c := range candidates {
			m |= subtle.ConstantTimeCompare(c, e)
		}
		idx = subtle.ConstantTimeSelect(m&subtle.ConstantTimeEq(int32(idx), 0), i+1, idx)
	}
	return idx
}

// headerValue returns the first value of the named header. It also finds keys that were not
// canonicalized (a hand-built http.Header with "webhook-id"), which net/http never produces but
// tests and tools do.
func headerValue(h http.Header, name string) (string, bool) {
	if v, ok := h[http.CanonicalHeaderKey(name)]; ok && len(v) > 0 {
		return v[0], true
	}
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

// requireHeader returns the non-empty value of the named header.
func requireHeader(h http.Header, name string) (string, error) {
	v, ok := headerValue(h, name)
	if !ok {
		return "", failf("missing header %s", name)
	}
	if v == "" {
		return "", failf("empty header %s", name)
	}
	return v, nil
}

// parseUnix reads a timestamp of decimal seconds. Signs, spaces, leading zeros and other forms
// ParseInt would take are refused: the MAC covers the header text, and one instant must have one
// spelling (the Standard Webhooks library re-formats the number before signing it).
func parseUnix(s, where string) (int64, error) {
	if s == "" {
		return 0, failf("empty timestamp in %s", where)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, failf("timestamp in %s is not decimal seconds", where)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, failf("timestamp in %s has leading zeros", where)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, failf("timestamp in %s is out of range", where)
	}
	return n, nil
}

// checkWindow refuses a timestamp older than tolerance or more than tolerance ahead of now,
// which bounds how long a captured request can be replayed.
func checkWindow(unix int64, now time.Time, tolerance time.Duration) error {
	t := time.Unix(unix, 0)
	if now.Sub(t) > tolerance {
		return failf("timestamp too old (tolerance %s)", tolerance)
	}
	if t.Sub(now) > tolerance {
		return failf("timestamp too far in the future (tolerance %s)", tolerance)
	}
	return nil
}

// deliveryID derives a sender-style delivery id from the signing instant and the body, so that
// Sign stays a pure function and signing the same body at the same instant names the same delivery.
func deliveryID(body []byte, now time.Time) [16]byte {
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(now.UnixNano()))
	sum := sha256.Sum256(append(ts[:], body...))
	var id [16]byte
	copy(id[:], sum[:])
	id[6] = id[6]&0x0f | 0x40 // shaped like a version 4 UUID, as GitHub and Shopify send
	id[8] = id[8]&0x3f | 0x80
	return id
}

func uuidString(id [16]byte) string {
	h := hex.EncodeToString(id[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// noneVerifier accepts every request: the hook is protected by the secret token in its URL.
type noneVerifier struct{}

func (noneVerifier) Scheme() string                              { return SchemeNone }
func (noneVerifier) Verify(http.Header, []byte, time.Time) error { return nil }
func (noneVerifier) Check(http.Header, []byte, time.Time) (Proof, error) {
	return Proof{}, nil
}
func (noneVerifier) KeySource(http.Header) string                 { return "" }
func (noneVerifier) Sign([]byte, time.Time) http.Header           { return nil }
func (noneVerifier) SignedKey(http.Header, []byte) (string, bool) { return "", false }
func (noneVerifier) String() string                               { return "verify.Verifier(none)" }
