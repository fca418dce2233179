package verify_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/verify"
)

// testNow is the clock every test injects.
var testNow = time.Unix(1700000000, 0)

// fixture describes one configured scheme for the table tests: how to build its config from
// secrets, which headers a request needs, and how to compute the MAC independently of the package.
type fixture struct {
	name        string
	cfg         func(secrets ...string) verify.Config
	secrets     [3]string // two for the verifier's rotation, one that it never holds
	sigHeader   string
	otherHdrs   []string // further headers that must be present (timestamp, id)
	timestamped bool
	// wrongEncoding rewrites a correct signature header value with the MAC in the other encoding.
	wrongEncoding func(v string) string
	// reframes rewrite a correct signature header value so that it still holds the correct MAC
	// verbatim but must be refused: the leak test shows such a MAC is never echoed.
	reframes func(v string) []string
	// mac is the expected MAC of body for secret, with the timestamp and id taken from the
	// headers the request was signed with.
	mac func(secret string, signed http.Header, body []byte) []byte
}

func hmacOf(h func() hash.Hash, key []byte, parts ...string) []byte {
	m := hmac.New(h, key)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

func mustHex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("test helper: %v", err)
	}
	return b
}

func mustB64(t testing.TB, s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("test helper: %v", err)
	}
	return b
}

func whsec(raw string) string { return "whsec_" + base64.StdEncoding.EncodeToString([]byte(raw)) }

func whsecKey(secret string) []byte {
	b, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	return b
}

// stripeParts splits a Stripe-Signature value of the form Sign produces: t=<ts>,v1=<hex>.
func stripeParts(v string) (ts, sig string) {
	for _, item := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(item, "=")
		switch k {
		case "t":
			ts = val
		case "v1":
			sig = val
		}
	}
	return ts, sig
}

var plainSecrets = [3]string{"s3cr3t-Alpha-9f1c2e7b", "s3cr3t-Bravo-4d7a0b6c", "s3cr3t-Charlie-e58b31d0"}

func fixtures(t testing.TB) []fixture {
	simple := func(scheme string) func(...string) verify.Config {
		return func(s ...string) verify.Config { return verify.Config{Scheme: scheme, Secrets: s} }
	}
	hexToB64 := func(prefix string) func(string) string {
		return func(v string) string {
			return prefix + base64.StdEncoding.EncodeToString(mustHex(t, strings.TrimPrefix(v, prefix)))
		}
	}
	b64ToHex := func(v string) string { return hex.EncodeToString(mustB64(t, v)) }
	wrap := func(v string) []string { return []string{v + "00", "x" + v, v + "=", "\t" + v} }
	withPrefix := func(prefix string) func(string) []string {
		return func(v string) []string {
			bare := strings.TrimPrefix(v, prefix)
			return append(wrap(v), bare, strings.ToUpper(prefix)+bare, prefix+prefix+bare)
		}
	}
	bodyMAC := func(h func() hash.Hash) func(string, http.Header, []byte) []byte {
		return func(secret string, _ http.Header, body []byte) []byte { return hmacOf(h, []byte(secret), string(body)) }
	}
	return []fixture{
		{
			name: "hmac-sha1-hex", secrets: plainSecrets, sigHeader: "X-Signature",
			cfg: func(s ...string) verify.Config {
				return verify.Config{Scheme: "hmac", Header: "X-Signature", Algorithm: "sha1", Secrets: s}
			},
			wrongEncoding: hexToB64(""), reframes: wrap, mac: bodyMAC(sha1.New),
		},
		{
			name: "hmac-sha256-hex-prefix", secrets: plainSecrets, sigHeader: "X-Webhook-Signature",
			cfg: func(s ...string) verify.Config {
				return verify.Config{Scheme: "hmac", Header: "x-webhook-signature", Prefix: "sha256=", Secrets: s}
			},
			wrongEncoding: hexToB64("sha256="), reframes: withPrefix("sha256="), mac: bodyMAC(sha256.New),
		},
		{
			name: "hmac-sha512-base64", secrets: plainSecrets, sigHeader: "X-Signature",
			cfg: func(s ...string) verify.Config {
				return verify.Config{Scheme: "hmac", Header: "X-Signature", Algorithm: "sha512", Encoding: "base64", Secrets: s}
			},
			wrongEncoding: b64ToHex, reframes: wrap, mac: bodyMAC(sha512.New),
		},
		{
			name: "oncloudwine", secrets: plainSecrets, sigHeader: "X-OnCloudWine-Signature", cfg: simple("oncloudwine"),
			wrongEncoding: hexToB64(""), reframes: wrap, mac: bodyMAC(sha256.New),
		},
		{
			name: "ordercloud", secrets: plainSecrets, sigHeader: "X-oc-hash", cfg: simple("ordercloud"),
			wrongEncoding: b64ToHex, reframes: wrap, mac: bodyMAC(sha256.New),
		},
		{
			name: "github", secrets: plainSecrets, sigHeader: "X-Hub-Signature-256", cfg: simple("github"),
			wrongEncoding: hexToB64("sha256="), reframes: withPrefix("sha256="), mac: bodyMAC(sha256.New),
		},
		{
			name: "shopify", secrets: plainSecrets, sigHeader: "X-Shopify-Hmac-Sha256", cfg: simple("shopify"),
			wrongEncoding: b64ToHex, reframes: wrap, mac: bodyMAC(sha256.New),
		},
		{
			name: "stripe", secrets: plainSecrets, sigHeader: "Stripe-Signature", cfg: simple("stripe"), timestamped: true,
			wrongEncoding: func(v string) string {
				ts, sig := stripeParts(v)
				return "t=" + ts + ",v1=" + base64.StdEncoding.EncodeToString(mustHex(t, sig))
			},
			reframes: func(v string) []string {
				ts, sig := stripeParts(v)
				return []string{
					sig, "v1=" + sig, "t=" + ts + ",v2=" + sig, "t=" + ts + ",V1=" + sig, "t=" + ts + ",v1=" + sig + "00",
					"t=" + ts + ",t=" + ts + ",v1=" + sig, "t=" + ts + ",v1=" + sig + ",junk", "t=0" + ts + ",v1=" + sig,
					"t=+" + ts + ",v1=" + sig, "t= " + ts + ",v1=" + sig, "t=" + ts + ", v1=" + sig,
				}
			},
			mac: func(secret string, signed http.Header, body []byte) []byte {
				ts, _ := stripeParts(signed.Get("Stripe-Signature"))
				return hmacOf(sha256.New, []byte(secret), ts, ".", string(body))
			},
		},
		{
			name: "slack", secrets: plainSecrets, sigHeader: "X-Slack-Signature", otherHdrs: []string{"X-Slack-Request-Timestamp"},
			cfg: simple("slack"), timestamped: true, wrongEncoding: hexToB64("v0="), reframes: withPrefix("v0="),
			mac: func(secret string, signed http.Header, body []byte) []byte {
				return hmacOf(sha256.New, []byte(secret), "v0:", signed.Get("X-Slack-Request-Timestamp"), ":", string(body))
			},
		},
		{
			name:      "standard-webhooks",
			secrets:   [3]string{whsec("Q7v!k2#Lp9@Wz4$Rm8&Tx1%c"), whsec("b3N^f6*Hd0(Jg5)Ks2+Vy7=e"), whsec("Z1x;C4v:B7n<M0q>W3e[R6t]")},
			sigHeader: "webhook-signature", otherHdrs: []string{"webhook-id", "webhook-timestamp"},
			cfg: simple("standard-webhooks"), timestamped: true,
			wrongEncoding: func(v string) string {
				return "v1," + hex.EncodeToString(mustB64(t, strings.TrimPrefix(v, "v1,")))
			},
			reframes: func(v string) []string {
				bare := strings.TrimPrefix(v, "v1,")
				return []string{bare, "v2," + bare, "V1," + bare, "v1=" + bare, "v1;" + bare, "v1," + bare + "00", "xv1," + bare, "v1," + strings.TrimRight(bare, "=")}
			},
			mac: func(secret string, signed http.Header, body []byte) []byte {
				return hmacOf(sha256.New, whsecKey(secret), signed.Get("webhook-id"), ".", signed.Get("webhook-timestamp"), ".", string(body))
			},
		},
	}
}

// signer returns a verifier holding only secret, used to sign requests as a sender would.
func signer(t testing.TB, f fixture, secret string) verify.Verifier {
	t.Helper()
	v, err := verify.New(f.cfg(secret))
	if err != nil {
		t.Fatalf("New(%s): %v", f.name, err)
	}
	return v
}

// failCase is one request that must be refused.
type failCase struct {
	name string
	h    http.Header
	body []byte
	now  time.Time
	want string // substring the error message must contain; "" when several wordings are right
	// signedH and signedBody are what the sender signed, for computing the MAC a leak would reveal.
	signedH    http.Header
	signedBody []byte
}

const signedBody = `{"event": "CONTACT_CREATED", "data": {"id": "c_1", "tags": ["a", "b"]}}`

// failureCases lists the refused requests for f, checked against a verifier holding
// f.secrets[0] and f.secrets[1].
func failureCases(t testing.TB, f fixture) []failCase {
	body := []byte(signedBody)
	signed := signer(t, f, f.secrets[0]).Sign(body, testNow)
	sig := signed.Get(f.sigHeader)
	if sig == "" {
		t.Fatalf("%s: Sign set no %s", f.name, f.sigHeader)
	}
	with := func(name, value string) http.Header {
		h := signed.Clone()
		h.Set(name, value)
		return h
	}
	without := func(name string) http.Header {
		h := signed.Clone()
		h.Del(name)
		return h
	}
	c := func(name string, h http.Header, b []byte, want string) failCase {
		return failCase{name: name, h: h, body: b, now: testNow, want: want, signedH: signed, signedBody: body}
	}
	unpadded := strings.TrimRight(sig, "=")
	flipped := append([]byte(nil), body...)
	flipped[len(flipped)/2] ^= 0x01
	compact := []byte(`{"event":"CONTACT_CREATED","data":{"id":"c_1","tags":["a","b"]}}`)
	otherSecret := signer(t, f, f.secrets[2]).Sign(body, testNow)

	cases := []failCase{
		c("missing signature header", without(f.sigHeader), body, "missing header "+f.sigHeader),
		c("empty signature header", with(f.sigHeader, ""), body, "empty header "+f.sigHeader),
		c("no headers at all", http.Header{}, body, "missing header"),
		c("nil headers", nil, body, "missing header"),
		c("truncated to half", with(f.sigHeader, sig[:len(sig)/2]), body, ""),
		// Base64 padding may be left out, so truncation starts after it.
		c("truncated by one character", with(f.sigHeader, unpadded[:len(unpadded)-1]), body, ""),
		c("truncated by two characters", with(f.sigHeader, unpadded[:len(unpadded)-2]), body, ""),
		c("garbage", with(f.sigHeader, "not a signature at all!"), body, ""),
		c("binary garbage", with(f.sigHeader, "\x00\xff\xfe\r\n"), body, ""),
		c("wrong encoding", with(f.sigHeader, f.wrongEncoding(sig)), body, ""),
		c("one body byte flipped", signed, flipped, "signature mismatch"),
		c("MAC over re-serialized JSON", signed, compact, "signature mismatch"),
		c("empty body", signed, nil, "signature mismatch"),
		c("body with trailing newline", signed, append(append([]byte(nil), body...), '\n'), "signature mismatch"),
		c("signed with a secret the verifier does not hold", otherSecret, body, "signature mismatch"),
	}
	for i, r := range f.reframes(sig) {
		cases = append(cases, c("correct MAC in a wrong frame #"+strconv.Itoa(i), with(f.sigHeader, r), body, ""))
	}
	for _, o := range f.otherHdrs {
		cases = append(cases,
			c("missing header "+o, without(o), body, "missing header "+o),
			c("empty header "+o, with(o, ""), body, "empty header "+o),
		)
	}
	if f.timestamped {
		tol := verify.DefaultTolerance
		stale := signer(t, f, f.secrets[0]).Sign(body, testNow.Add(-tol-time.Second))
		future := signer(t, f, f.secrets[0]).Sign(body, testNow.Add(tol+time.Second))
		cases = append(cases,
			failCase{name: "stale timestamp", h: stale, body: body, now: testNow, want: "timestamp too old", signedH: stale, signedBody: body},
			failCase{name: "future timestamp", h: future, body: body, now: testNow, want: "timestamp too far in the future", signedH: future, signedBody: body},
			failCase{name: "a year old", h: signed, body: body, now: testNow.AddDate(1, 0, 0), want: "timestamp too old", signedH: signed, signedBody: body},
		)
		ts := strings.TrimPrefix(strings.Split(sig, ",")[0], "t=") // stripe
		tsHeader := f.sigHeader
		rebuild := func(newTS string) string { return strings.Replace(sig, "t="+ts, "t="+newTS, 1) }
		if len(f.otherHdrs) > 0 { // slack and standard-webhooks carry it in its own header
			tsHeader = f.otherHdrs[len(f.otherHdrs)-1]
			ts = signed.Get(tsHeader)
			rebuild = func(newTS string) string { return newTS }
		}
		for _, bad := range []struct{ name, ts string }{
			{"timestamp moved by one second", "1700000001"},
			{"timestamp not a number", "yesterday"},
			{"timestamp negative", "-" + ts},
			{"timestamp with sign", "+" + ts},
			{"timestamp with leading zero", "0" + ts},
			{"timestamp in milliseconds", ts + "000"},
			{"timestamp fractional", ts + ".5"},
			{"timestamp overflowing int64", "99999999999999999999999"},
		} {
			cases = append(cases, c(bad.name, with(tsHeader, rebuild(bad.ts)), body, ""))
		}
	}
	return cases
}

func newRotating(t testing.TB, f fixture) verify.Verifier {
	t.Helper()
	v, err := verify.New(f.cfg(f.secrets[0], f.secrets[1]))
	if err != nil {
		t.Fatalf("New(%s): %v", f.name, err)
	}
	return v
}
