package verify_test

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/verify"
)

func TestVerifyRejects(t *testing.T) {
	for _, f := range fixtures(t) {
		v := newRotating(t, f)
		for _, tc := range failureCases(t, f) {
			t.Run(f.name+"/"+tc.name, func(t *testing.T) {
				err := v.Verify(tc.h, tc.body, tc.now)
				if err == nil {
					t.Fatal("Verify passed, want an error")
				}
				if !errors.Is(err, verify.ErrSignature) {
					t.Fatalf("error %q does not wrap ErrSignature", err)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %q does not say %q", err, tc.want)
				}
			})
		}
	}
}

// The request each failure case starts from must itself verify, or the failures prove nothing.
func TestVerifyAcceptsTheUnalteredRequest(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			body := []byte(signedBody)
			h := signer(t, f, f.secrets[0]).Sign(body, testNow)
			if err := newRotating(t, f).Verify(h, body, testNow); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	bodies := map[string][]byte{
		"empty":    nil,
		"json":     []byte(signedBody),
		"binary":   {0x00, 0xff, 0x10, 0x80, '\n', '\r'},
		"large":    bytes.Repeat([]byte(`{"k":"v"},`), 100_000),
		"not utf8": []byte("\xc3\x28 caf\xe9"),
	}
	nows := []time.Time{testNow, time.Unix(0, 0), time.Date(2099, 12, 31, 23, 59, 59, 999, time.UTC)}
	for _, f := range fixtures(t) {
		v := newRotating(t, f)
		for name, body := range bodies {
			for _, now := range nows {
				if err := v.Verify(v.Sign(body, now), body, now); err != nil {
					t.Errorf("%s/%s/%s: Verify(Sign) = %v", f.name, name, now, err)
				}
			}
		}
	}
	none, err := verify.New(verify.Config{Scheme: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if h := none.Sign([]byte("x"), testNow); h != nil {
		t.Errorf("none: Sign = %v, want nil", h)
	}
	if err := none.Verify(nil, []byte("x"), testNow); err != nil {
		t.Errorf("none: Verify = %v", err)
	}
}

// Every scheme in Schemes() has a fixture, so no scheme escapes the table tests.
func TestEverySchemeHasAFixture(t *testing.T) {
	covered := map[string]bool{"none": true}
	for _, f := range fixtures(t) {
		covered[f.cfg(f.secrets[0]).Scheme] = true
	}
	for _, s := range verify.Schemes() {
		if !covered[s] {
			t.Errorf("scheme %s has no fixture", s)
		}
	}
}

func TestRotation(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			oldS, newS := f.secrets[0], f.secrets[1]
			body := []byte(signedBody)
			byOld := signer(t, f, oldS).Sign(body, testNow)
			byNew := signer(t, f, newS).Sign(body, testNow)

			during, err := verify.New(f.cfg(newS, oldS))
			if err != nil {
				t.Fatal(err)
			}
			if err := during.Verify(byOld, body, testNow); err != nil {
				t.Errorf("second secret in rotation refused: %v", err)
			}
			if err := during.Verify(byNew, body, testNow); err != nil {
				t.Errorf("first secret in rotation refused: %v", err)
			}
			after := signer(t, f, newS)
			if err := after.Verify(byOld, body, testNow); !errors.Is(err, verify.ErrSignature) || !strings.Contains(err.Error(), "signature mismatch") {
				t.Errorf("old secret after its removal: Verify = %v, want signature mismatch", err)
			}
			// Sign uses the first secret.
			signedDuring := during.Sign(body, testNow)
			if err := after.Verify(signedDuring, body, testNow); err != nil {
				t.Errorf("Sign did not use the first secret: %v", err)
			}
			if err := signer(t, f, oldS).Verify(signedDuring, body, testNow); err == nil {
				t.Errorf("Sign used a secret other than the first")
			}
		})
	}
}

// TestReusedMACsKeepNothingBetweenRequests checks verifiers that keep keyed
// HMACs between requests: many goroutines verify different bodies signed
// with either of two secrets, one at a time and at once, so that an HMAC
// handed back with the state of another body, or another secret, or shared
// by two requests, shows as a refusal, a wrong secret or a race.
func TestReusedMACsKeepNothingBetweenRequests(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			v, err := verify.New(f.cfg(f.secrets[0], f.secrets[1]))
			if err != nil {
				t.Fatal(err)
			}
			signers := []verify.Verifier{signer(t, f, f.secrets[0]), signer(t, f, f.secrets[1])}
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 50 {
						body := []byte(fmt.Sprintf(`{"id":"evt_%d_%d","pad":"%s"}`, g, i, strings.Repeat("x", g*i)))
						secret := (g + i) % 2
						h := signers[secret].Sign(body, testNow)
						proof, err := v.Check(h, body, testNow)
						if err != nil || proof.Secret != secret+1 {
							t.Errorf("body %d/%d signed with secret %d: proof %+v, %v", g, i, secret+1, proof, err)
							return
						}
						tampered := append(slices.Clone(body[:len(body)-1]), '!')
						if err := v.Verify(h, tampered, testNow); !errors.Is(err, verify.ErrSignature) {
							t.Errorf("body %d/%d altered: Verify = %v, want a refusal", g, i, err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

func TestToleranceBoundaries(t *testing.T) {
	for _, f := range fixtures(t) {
		if !f.timestamped {
			continue
		}
		for _, tol := range []time.Duration{0, 30 * time.Second, time.Hour} {
			eff := tol
			if eff == 0 {
				eff = verify.DefaultTolerance
			}
			cfg := f.cfg(f.secrets[0])
			cfg.Tolerance = tol
			v, err := verify.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			body := []byte(signedBody)
			for _, tc := range []struct {
				offset time.Duration
				want   string
			}{
				{0, ""},
				{-eff, ""},
				{eff, ""},
				{-eff - time.Second, "timestamp too old"},
				{eff + time.Second, "timestamp too far in the future"},
			} {
				err := v.Verify(v.Sign(body, testNow.Add(tc.offset)), body, testNow)
				switch {
				case tc.want == "" && err != nil:
					t.Errorf("%s tolerance %s, signed %s from now: %v", f.name, eff, tc.offset, err)
				case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
					t.Errorf("%s tolerance %s, signed %s from now: Verify = %v, want %q", f.name, eff, tc.offset, err, tc.want)
				}
			}
		}
	}
}

func TestStandardWebhooksSvixHeaders(t *testing.T) {
	secret := whsec("Q7v!k2#Lp9@Wz4$Rm8&Tx1%c")
	v, err := verify.New(verify.Config{Scheme: "standard-webhooks", Secrets: []string{secret}})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(signedBody)
	signed := v.Sign(body, testNow)
	svix := hdr("svix-id", signed.Get("webhook-id"), "svix-timestamp", signed.Get("webhook-timestamp"), "svix-signature", signed.Get("webhook-signature"))
	if err := v.Verify(svix, body, testNow); err != nil {
		t.Fatalf("svix headers: %v", err)
	}
	if err := v.Verify(svix, body, testNow.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "timestamp too old") {
		t.Errorf("stale svix request: Verify = %v", err)
	}
	svix.Del("svix-id")
	if err := v.Verify(svix, body, testNow); err == nil || !strings.Contains(err.Error(), "missing header svix-id") {
		t.Errorf("svix request without svix-id: Verify = %v", err)
	}
	// The two families are not mixed: a webhook-signature with only svix-id is missing webhook-id.
	mixed := hdr("svix-id", signed.Get("webhook-id"), "webhook-timestamp", signed.Get("webhook-timestamp"), "webhook-signature", signed.Get("webhook-signature"))
	if err := v.Verify(mixed, body, testNow); err == nil || !strings.Contains(err.Error(), "missing header webhook-id") {
		t.Errorf("mixed header families: Verify = %v", err)
	}
}

// Headers built by hand need not be canonical; net/http's always are.
func TestVerifyFindsNonCanonicalHeaderKeys(t *testing.T) {
	for _, f := range fixtures(t) {
		v := newRotating(t, f)
		body := []byte(signedBody)
		lower := http.Header{}
		for k, vals := range v.Sign(body, testNow) {
			lower[strings.ToLower(k)] = vals
		}
		if err := v.Verify(lower, body, testNow); err != nil {
			t.Errorf("%s: lower-case header keys: %v", f.name, err)
		}
	}
}

func TestNewConfigErrors(t *testing.T) {
	ok := []string{"a-secret"}
	tests := []struct {
		name      string
		cfg       verify.Config
		wantField string
		wantMsg   string
	}{
		{"no scheme", verify.Config{Secrets: ok}, "scheme", "is required"},
		{"unknown scheme", verify.Config{Scheme: "paypal", Secrets: ok}, "scheme", `unknown scheme "paypal"`},
		{"scheme in capitals", verify.Config{Scheme: "GitHub", Secrets: ok}, "scheme", "unknown scheme"},
		{"no secrets", verify.Config{Scheme: "github"}, "secrets", "at least one secret"},
		{"empty secret list", verify.Config{Scheme: "stripe", Secrets: []string{}}, "secrets", "at least one secret"},
		{"only an empty secret", verify.Config{Scheme: "shopify", Secrets: []string{""}}, "secrets", "secret #1 is empty"},
		{"an empty secret among good ones", verify.Config{Scheme: "slack", Secrets: []string{"a", ""}}, "secrets", "secret #2 is empty"},
		{"none with a secret", verify.Config{Scheme: "none", Secrets: ok}, "secrets", "takes no secrets"},
		{"hmac without header", verify.Config{Scheme: "hmac", Secrets: ok}, "header", "is required"},
		{"hmac with an invalid header name", verify.Config{Scheme: "hmac", Header: "X Sig", Secrets: ok}, "header", "not a valid HTTP header name"},
		{"hmac with a header name holding a colon", verify.Config{Scheme: "hmac", Header: "X-Sig:", Secrets: ok}, "header", "not a valid"},
		{"hmac with an unknown algorithm", verify.Config{Scheme: "hmac", Header: "X-Sig", Algorithm: "md5", Secrets: ok}, "algorithm", `unknown algorithm "md5"`},
		{"hmac with an unknown encoding", verify.Config{Scheme: "hmac", Header: "X-Sig", Encoding: "base32", Secrets: ok}, "encoding", `unknown encoding "base32"`},
		{"hmac with a control character in the prefix", verify.Config{Scheme: "hmac", Header: "X-Sig", Prefix: "sha256=\r\n", Secrets: ok}, "prefix", "control characters"},
		{"header on github", verify.Config{Scheme: "github", Header: "X-Sig", Secrets: ok}, "header", "applies only to scheme hmac"},
		{"algorithm on shopify", verify.Config{Scheme: "shopify", Algorithm: "sha1", Secrets: ok}, "algorithm", "applies only to scheme hmac"},
		{"encoding on oncloudwine", verify.Config{Scheme: "oncloudwine", Encoding: "base64", Secrets: ok}, "encoding", "applies only to scheme hmac"},
		{"prefix on ordercloud", verify.Config{Scheme: "ordercloud", Prefix: "x=", Secrets: ok}, "prefix", "applies only to scheme hmac"},
		{"header on none", verify.Config{Scheme: "none", Header: "X-Sig"}, "header", "applies only to scheme hmac"},
		{"negative tolerance", verify.Config{Scheme: "stripe", Secrets: ok, Tolerance: -time.Second}, "tolerance", "must not be negative"},
		{"tolerance on an untimed scheme", verify.Config{Scheme: "github", Secrets: ok, Tolerance: time.Minute}, "tolerance", "applies only to schemes stripe, slack and standard-webhooks"},
		{"standard-webhooks secret not base64", verify.Config{Scheme: "standard-webhooks", Secrets: []string{"whsec_not base64!"}}, "secrets", "secret #1 is not of the form whsec_<base64>"},
		{"standard-webhooks secret that decodes to nothing", verify.Config{Scheme: "standard-webhooks", Secrets: []string{"whsec_"}}, "secrets", "secret #1 decodes to an empty key"},
		{"standard-webhooks second secret bad", verify.Config{Scheme: "standard-webhooks", Secrets: []string{whsec("fine-key-0123456789abcd"), "whsec_%%%"}}, "secrets", "secret #2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := verify.New(tt.cfg)
			if err == nil {
				t.Fatalf("New returned %v, want an error", v)
			}
			var ce *verify.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *ConfigError", err, err)
			}
			if ce.Field != tt.wantField {
				t.Errorf("Field = %q, want %q (msg %q)", ce.Field, tt.wantField, ce.Msg)
			}
			if !strings.Contains(ce.Msg, tt.wantMsg) {
				t.Errorf("Msg = %q, want it to contain %q", ce.Msg, tt.wantMsg)
			}
			if want := ce.Field + ": " + ce.Msg; err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
			for _, s := range tt.cfg.Secrets {
				if len(s) > 6 && strings.Contains(err.Error(), strings.TrimPrefix(s, "whsec_")) {
					t.Errorf("error %q reveals a secret", err)
				}
			}
		})
	}
}

func TestUnknownSchemeListsKnownOnes(t *testing.T) {
	_, err := verify.New(verify.Config{Scheme: "paypal", Secrets: []string{"x"}})
	if err == nil {
		t.Fatal("unknown scheme accepted")
	}
	for _, s := range verify.Schemes() {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not list scheme %s", err, s)
		}
	}
}

func TestSchemes(t *testing.T) {
	want := []string{"hmac", "oncloudwine", "ordercloud", "github", "stripe", "shopify", "slack", "standard-webhooks", "none"}
	got := verify.Schemes()
	if !slices.Equal(got, want) {
		t.Fatalf("Schemes() = %v, want %v", got, want)
	}
	got[0] = "changed"
	if verify.Schemes()[0] != "hmac" {
		t.Fatal("Schemes() returns the package's own slice")
	}
	for _, f := range fixtures(t) {
		v := newRotating(t, f)
		if v.Scheme() != f.cfg().Scheme {
			t.Errorf("%s: Scheme() = %q", f.name, v.Scheme())
		}
	}
}

func TestDefaults(t *testing.T) {
	// Algorithm sha256 and encoding hex by default: a 64-hex-digit signature of the right MAC passes.
	v, err := verify.New(verify.Config{Scheme: "hmac", Header: "X-Sig", Secrets: []string{"k"}})
	if err != nil {
		t.Fatal(err)
	}
	got := v.Sign([]byte("b"), testNow).Get("X-Sig")
	if want := fmt.Sprintf("%x", hmacOf(sha256.New, []byte("k"), "b")); got != want {
		t.Errorf("default hmac signature = %q, want %q", got, want)
	}
	// Algorithm and encoding names are not case-sensitive.
	if _, err := verify.New(verify.Config{Scheme: "hmac", Header: "X-Sig", Algorithm: "SHA512", Encoding: "Base64", Secrets: []string{"k"}}); err != nil {
		t.Errorf("upper-case algorithm and encoding: %v", err)
	}
}

// The default idempotency key comes only from what the signature covers: the id a scheme signs,
// or nothing (the caller then keys by the body hash); never from an unsigned header.
func TestSignedKey(t *testing.T) {
	body := []byte(`{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event"}`)
	tests := []struct {
		name string
		cfg  verify.Config
		want string // "" when the key is the body hash
	}{
		{"github", verify.Config{Scheme: "github", Secrets: []string{"k"}}, ""},
		{"stripe", verify.Config{Scheme: "stripe", Secrets: []string{"k"}}, "evt_1NG8Du2eZvKYlo2CUI79vXWy"},
		{"shopify", verify.Config{Scheme: "shopify", Secrets: []string{"k"}}, ""},
		{"hmac", verify.Config{Scheme: "hmac", Header: "X-Sig", Secrets: []string{"k"}}, ""},
		{"oncloudwine", verify.Config{Scheme: "oncloudwine", Secrets: []string{"k"}}, ""},
		{"ordercloud", verify.Config{Scheme: "ordercloud", Secrets: []string{"k"}}, ""},
		{"slack", verify.Config{Scheme: "slack", Secrets: []string{"k"}}, ""},
		{"none", verify.Config{Scheme: "none"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := verify.New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			signed := v.Sign(body, testNow)
			if signed == nil {
				signed = http.Header{}
			}
			if err := v.Verify(signed, body, testNow); err != nil {
				t.Fatal(err)
			}
			// Unsigned delivery-id headers, as the sender's or any other, change nothing.
			forged := signed.Clone()
			for _, h := range []string{"X-GitHub-Delivery", "X-Shopify-Webhook-Id", "X-Request-Id", "Webhook-Id", "Svix-Id"} {
				forged.Set(h, "forged-"+h)
			}
			for _, h := range []http.Header{signed, forged} {
				got, ok := v.SignedKey(h, body)
				if got != tt.want || ok != (tt.want != "") {
					t.Errorf("SignedKey = %q, %t; want %q, %t", got, ok, tt.want, tt.want != "")
				}
			}
		})
	}
	t.Run("stripe without an id", func(t *testing.T) {
		v, _ := verify.New(verify.Config{Scheme: "stripe", Secrets: []string{"k"}})
		for _, b := range []string{`{"ID":"evt_1"}`, `{"id":7}`, `{"id":""}`, `[1]`, `not json`} {
			if got, ok := v.SignedKey(nil, []byte(b)); ok {
				t.Errorf("SignedKey(%s) = %q, want none", b, got)
			}
		}
	})
}

// Standard Webhooks: the key is the id of the header family whose signature verified, read as
// Verify read it; the other family's id, or a second id header, cannot give a signed request a
// new key.
func TestSignedKeyStandardWebhooks(t *testing.T) {
	v, err := verify.New(verify.Config{Scheme: "standard-webhooks", Secrets: []string{whsec("k")}})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"invoice.paid"}`)
	signed := v.Sign(body, testNow)
	id := signed.Get("webhook-id")
	svix := hdr("svix-id", id, "svix-timestamp", signed.Get("webhook-timestamp"), "svix-signature", signed.Get("webhook-signature"))
	tests := []struct {
		name string
		h    http.Header
	}{
		{"webhook-*", signed},
		{"svix-*", svix},
		{"webhook-* with a svix-id added", with(signed, "svix-id", "msg_forged")},
		{"svix-* with a webhook-id added", with(svix, "webhook-id", "msg_forged")},
		{"webhook-* with a second webhook-id", add(signed, "webhook-id", "msg_forged")},
		{"svix-* with a second svix-id", add(svix, "svix-id", "msg_forged")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := v.Verify(tt.h, body, testNow); err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if got, ok := v.SignedKey(tt.h, body); got != id || !ok {
				t.Errorf("SignedKey = %q, %t; want %q", got, ok, id)
			}
		})
	}
}

func with(h http.Header, k, v string) http.Header {
	c := h.Clone()
	c.Set(k, v)
	return c
}

func add(h http.Header, k, v string) http.Header {
	c := h.Clone()
	c.Add(k, v)
	return c
}

func TestSignIsDeterministic(t *testing.T) {
	for _, f := range fixtures(t) {
		v := newRotating(t, f)
		a, b := v.Sign([]byte("x"), testNow), v.Sign([]byte("x"), testNow)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("%s: Sign differs between calls: %v vs %v", f.name, a, b)
		}
		if c := v.Sign([]byte("y"), testNow); fmt.Sprint(a) == fmt.Sprint(c) {
			t.Errorf("%s: Sign ignores the body", f.name)
		}
	}
}

func TestSecretsStayOutOfPrintedConfigAndVerifier(t *testing.T) {
	const secret = "printed-secret-value-123"
	cfg := verify.Config{Scheme: "github", Secrets: []string{secret}}
	v, err := verify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("loaded", "verify", cfg)
	for _, out := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%v", &cfg), logged.String(), fmt.Sprint(v), fmt.Sprintf("%+v", v)} {
		if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", secret)) {
			t.Errorf("printed form reveals the secret: %s", out)
		}
	}
	if !strings.Contains(logged.String(), `"scheme":"github"`) {
		t.Errorf("log lost the scheme: %s", logged.String())
	}
}

// Each MAC has a fixed set of accepted spellings; anything else that a lenient decoder would
// map onto the same bytes is refused.
func TestSignatureSpellings(t *testing.T) {
	body := []byte(signedBody)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	// Find a secret whose MAC has two characters that differ between the base64 alphabets.
	var secret string
	var mac []byte
	for i := 0; ; i++ {
		secret = fmt.Sprintf("spelling-secret-%d", i)
		mac = hmacOf(sha256.New, []byte(secret), string(body))
		if s := base64.StdEncoding.EncodeToString(mac); strings.Count(s, "+")+strings.Count(s, "/") >= 2 {
			break
		}
	}
	std := base64.StdEncoding.EncodeToString(mac)
	raw := strings.TrimRight(std, "=")
	last := strings.IndexByte(alphabet, raw[len(raw)-1])
	unusedBits := raw[:len(raw)-1] + string(alphabet[last^1]) // differs only in the 2 bits past the MAC
	i := strings.IndexAny(std, "+/")
	mixed := std[:i] + map[byte]string{'+': "-", '/': "_"}[std[i]] + std[i+1:] // one URL-safe, one standard character
	hexMAC := hex.EncodeToString(mac)

	tests := []struct {
		name, scheme, sig string
		ok                bool
	}{
		{"base64 standard padded", "shopify", std, true},
		{"base64 standard unpadded", "shopify", raw, true},
		{"base64 URL-safe padded", "shopify", base64.URLEncoding.EncodeToString(mac), true},
		{"base64 URL-safe unpadded", "shopify", base64.RawURLEncoding.EncodeToString(mac), true},
		{"base64 with non-zero unused bits", "shopify", unusedBits, false},
		{"base64 with non-zero unused bits, padded", "shopify", unusedBits + "=", false},
		{"base64 with a line break inside", "shopify", std[:20] + "\n" + std[20:], false},
		{"base64 with a carriage return at the end", "shopify", std + "\r", false},
		{"base64 with a space inside", "shopify", std[:20] + " " + std[20:], false},
		{"base64 with too much padding", "shopify", raw + "==", false},
		{"base64 mixing both alphabets", "shopify", mixed, false},
		{"base64 written in hex", "shopify", hexMAC, false},
		{"hex lower case", "oncloudwine", hexMAC, true},
		{"hex upper case", "oncloudwine", strings.ToUpper(hexMAC), true},
		{"hex mixed case", "oncloudwine", strings.ToUpper(hexMAC[:10]) + hexMAC[10:], true},
		{"hex with a space inside", "oncloudwine", hexMAC[:10] + " " + hexMAC[10:], false},
		{"hex with a 0x prefix", "oncloudwine", "0x" + hexMAC, false},
		{"hex written in base64", "oncloudwine", std, false},
	}
	header := map[string]string{"shopify": "X-Shopify-Hmac-Sha256", "oncloudwine": "X-OnCloudWine-Signature"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := verify.New(verify.Config{Scheme: tt.scheme, Secrets: []string{secret}})
			if err != nil {
				t.Fatal(err)
			}
			err = v.Verify(hdr(header[tt.scheme], tt.sig), body, testNow)
			if tt.ok && err != nil {
				t.Fatalf("Verify(%q) = %v, want it accepted", tt.sig, err)
			}
			if !tt.ok && err == nil {
				t.Fatalf("Verify(%q) passed, want it refused", tt.sig)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	body := bytes.Repeat([]byte(`{"k":"v"},`), 400) // about 4 KiB
	for _, f := range fixtures(b) {
		b.Run(f.name, func(b *testing.B) {
			v := newRotating(b, f)
			h := signer(b, f, f.secrets[1]).Sign(body, testNow) // the second secret: the slower path
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := v.Verify(h, body, testNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A generic hmac header may carry several signatures separated by commas,
// as a sender signing with two secrets during a rotation sends them
// (hookrelay's own sign: {scheme: hmac, secrets: [new, old]} among them):
// any one that matches passes, and each must be a well-formed signature.
func TestHMACSeveralSignatures(t *testing.T) {
	body := []byte(signedBody)
	const newS, oldS, otherS = "rotation-new-secret", "rotation-old-secret", "rotation-other-secret"
	macOf := func(secret string) string {
		return "sha1=" + hex.EncodeToString(hmacOf(sha1.New, []byte(secret), signedBody))
	}
	verifier := func(secrets ...string) verify.Verifier {
		v, err := verify.New(verify.Config{Scheme: "hmac", Header: "X-Sig", Algorithm: "sha1", Prefix: "sha1=", Secrets: secrets})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	both := macOf(newS) + ", " + macOf(oldS)
	for _, c := range []struct {
		name    string
		header  []string
		secrets []string
		secret  int // the Proof's, 0: refused
		want    string
	}{
		{"one signature", []string{macOf(oldS)}, []string{oldS}, 1, ""},
		{"both, receiver holds the new secret", []string{both}, []string{newS}, 1, ""},
		{"both, receiver holds the old secret", []string{both}, []string{oldS}, 1, ""},
		{"both, receiver rotating the other way", []string{both}, []string{otherS, oldS}, 2, ""},
		{"without spaces", []string{macOf(otherS) + "," + macOf(oldS)}, []string{oldS}, 1, ""},
		{"with more spaces", []string{macOf(otherS) + "  ,   " + macOf(oldS)}, []string{oldS}, 1, ""},
		{"as repeated header lines", []string{macOf(otherS), macOf(oldS)}, []string{oldS}, 1, ""},
		{"neither matches", []string{both}, []string{otherS}, 0, "signature mismatch"},
		{"an empty signature last", []string{macOf(oldS) + ", "}, []string{oldS}, 0, "signature is empty"},
		{"an empty signature first", []string{", " + macOf(oldS)}, []string{oldS}, 0, "signature is empty"},
		{"an empty signature between", []string{macOf(newS) + ",," + macOf(oldS)}, []string{oldS}, 0, "signature is empty"},
		{"only commas", []string{" , "}, []string{oldS}, 0, "signature is empty"},
		{"a prefix with nothing after it", []string{macOf(oldS) + ", sha1="}, []string{oldS}, 0, "signature is empty"},
		{"one without its prefix", []string{macOf(newS) + ", " + strings.TrimPrefix(macOf(oldS), "sha1=")}, []string{newS}, 0, `does not start with "sha1="`},
		{"one malformed", []string{macOf(oldS) + ", sha1=xyz"}, []string{oldS}, 0, "not valid hex"},
		{"a tab is not a space", []string{macOf(newS) + ",\t" + macOf(oldS)}, []string{oldS}, 0, `does not start with "sha1="`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{"X-Sig": c.header}
			p, err := verifier(c.secrets...).Check(h, body, testNow)
			switch {
			case c.secret == 0 && err == nil:
				t.Fatalf("Check(%q) passed, want it refused with %q", c.header, c.want)
			case c.secret == 0 && (!errors.Is(err, verify.ErrSignature) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Check(%q) = %v, want %q", c.header, err, c.want)
			case c.secret != 0 && err != nil:
				t.Fatalf("Check(%q) = %v, want it accepted", c.header, err)
			case p.Secret != c.secret:
				t.Fatalf("Check(%q) matched secret %d, want %d", c.header, p.Secret, c.secret)
			}
			if err != nil {
				assertNoLeak(t, err.Error(), "a MAC", []string{macOf(newS)[5:], macOf(oldS)[5:], macOf(otherS)[5:]})
			}
		})
	}
}
