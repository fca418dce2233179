package verify_test

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/verify"
)

// The fuzz targets hold two properties for every scheme: Verify never panics and returns nil or
// an error wrapping ErrSignature; and it passes exactly when the fuzzed signature is one of the
// accepted spellings of the correct MAC, which each target computes on its own with crypto/hmac.
// Each also checks that Verify(Sign(body)) passes for the fuzzed body.

var fuzzBodies = []string{signedBody, "", "Hello, World!", "\x00\xff{\"a\":1}", `{"id":"evt_1"}`}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// spellings lists every way Verify may accept mac written in a header.
func spellings(mac []byte, b64 bool) []string {
	if b64 {
		return []string{
			base64.StdEncoding.EncodeToString(mac), base64.RawStdEncoding.EncodeToString(mac),
			base64.URLEncoding.EncodeToString(mac), base64.RawURLEncoding.EncodeToString(mac),
		}
	}
	return []string{hex.EncodeToString(mac)}
}

func spelledAs(sig string, mac []byte, b64 bool) bool {
	if !b64 {
		sig = asciiLower(sig)
	}
	for _, s := range spellings(mac, b64) {
		if sig == s {
			return true
		}
	}
	return false
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, verify.ErrSignature) {
		t.Fatalf("error %q does not wrap ErrSignature", err)
	}
}

func checkRoundTrip(t *testing.T, v verify.Verifier, body []byte) {
	t.Helper()
	if err := v.Verify(v.Sign(body, testNow), body, testNow); err != nil {
		t.Fatalf("Verify(Sign(body)) = %v", err)
	}
}

func newFuzzVerifier(f *testing.F, cfg verify.Config) verify.Verifier {
	v, err := verify.New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	return v
}

// fuzzMAC runs the properties for a scheme whose one header carries prefix + MAC(body).
func fuzzMAC(f *testing.F, cfg verify.Config, header, prefix string, alg func() hash.Hash, b64 bool) {
	secrets := plainSecrets[:2]
	cfg.Secrets = secrets
	v := newFuzzVerifier(f, cfg)
	for _, b := range fuzzBodies {
		good := prefix + spellings(hmacOf(alg, []byte(secrets[1]), b), b64)[0]
		for _, sig := range []string{good, good[:len(good)-3], strings.ToUpper(good), good + "=", "", prefix, "garbage", good[len(prefix):]} {
			f.Add(sig, []byte(b))
		}
	}
	f.Fuzz(func(t *testing.T, sig string, body []byte) {
		err := v.Verify(http.Header{header: {sig}}, body, testNow)
		checkErr(t, err)
		rest, hasPrefix := strings.CutPrefix(sig, prefix)
		correct := false
		for _, s := range secrets {
			correct = correct || hasPrefix && spelledAs(rest, hmacOf(alg, []byte(s), string(body)), b64)
		}
		if err == nil && !correct {
			t.Fatalf("signature %q verified but is not the correct MAC", sig)
		}
		if err != nil && correct {
			t.Fatalf("correct signature %q refused: %v", sig, err)
		}
		checkRoundTrip(t, v, body)
	})
}

func FuzzVerifyHMAC(f *testing.F) {
	algs := []struct {
		name string
		h    func() hash.Hash
	}{{"sha1", sha1.New}, {"sha256", sha256.New}, {"sha512", sha512.New}}
	for i, a := range algs {
		for _, b64 := range []bool{false, true} {
			key := []byte(plainSecrets[i%2])
			for _, b := range fuzzBodies {
				mac := hmacOf(a.h, key, b)
				for _, s := range spellings(mac, b64) {
					f.Add("sig=", uint8(i), b64, "sig="+s, []byte(b))
					f.Add("", uint8(i), b64, s[1:], []byte(b))
					f.Add("sig=", uint8(i), b64, "sig="+s[1:]+", sig="+s, []byte(b))
					f.Add("sig=", uint8(i), b64, "sig="+s+",", []byte(b))
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, prefix string, alg uint8, b64 bool, sig string, body []byte) {
		a := algs[int(alg)%len(algs)]
		enc := "hex"
		if b64 {
			enc = "base64"
		}
		v, err := verify.New(verify.Config{Scheme: "hmac", Header: "X-Signature", Algorithm: a.name, Encoding: enc, Prefix: prefix, Secrets: plainSecrets[:2]})
		if err != nil {
			var ce *verify.ConfigError
			if !errors.As(err, &ce) || ce.Field != "prefix" {
				t.Fatalf("New: %v", err)
			}
			return
		}
		err = v.Verify(http.Header{"X-Signature": {sig}}, body, testNow)
		checkErr(t, err)
		// The header lists signatures separated by commas (unless the
		// prefix holds one), each with spaces around it: it passes when
		// one of them is correct and every one is well formed.
		parts, listed := []string{sig}, !strings.Contains(prefix, ",")
		if listed {
			parts = strings.Split(sig, ",")
			prefix = strings.TrimLeft(prefix, " ")
		}
		correct, allCorrect := false, true
		for _, p := range parts {
			if listed {
				p = strings.Trim(p, " ")
			}
			rest, hasPrefix := strings.CutPrefix(p, prefix)
			ok := false
			for _, s := range plainSecrets[:2] {
				ok = ok || hasPrefix && spelledAs(rest, hmacOf(a.h, []byte(s), string(body)), b64)
			}
			correct = correct || ok
			allCorrect = allCorrect && ok
		}
		if err == nil && !correct {
			t.Fatalf("signature %q verified but is not the correct MAC", sig)
		}
		// A list with one correct signature passes only when the others
		// are well formed, which this target does not decide.
		if err != nil && allCorrect {
			t.Fatalf("correct signature %q refused: %v", sig, err)
		}
		checkRoundTrip(t, v, body)
	})
}

func FuzzVerifyOnCloudWine(f *testing.F) {
	fuzzMAC(f, verify.Config{Scheme: "oncloudwine"}, "X-Oncloudwine-Signature", "", sha256.New, false)
}

func FuzzVerifyOrderCloud(f *testing.F) {
	fuzzMAC(f, verify.Config{Scheme: "ordercloud"}, "X-Oc-Hash", "", sha256.New, true)
}

func FuzzVerifyGitHub(f *testing.F) {
	fuzzMAC(f, verify.Config{Scheme: "github"}, "X-Hub-Signature-256", "sha256=", sha256.New, false)
}

func FuzzVerifyShopify(f *testing.F) {
	fuzzMAC(f, verify.Config{Scheme: "shopify"}, "X-Shopify-Hmac-Sha256", "", sha256.New, true)
}

// inWindow reports whether ts is the canonical decimal spelling of a second within the default
// tolerance of testNow.
func inWindow(ts string) bool {
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != ts || n < 0 {
		return false
	}
	d := testNow.Sub(time.Unix(n, 0))
	return d <= verify.DefaultTolerance && d >= -verify.DefaultTolerance
}

func FuzzVerifyStripe(f *testing.F) {
	secrets := plainSecrets[:2]
	v := newFuzzVerifier(f, verify.Config{Scheme: "stripe", Secrets: secrets})
	now := strconv.FormatInt(testNow.Unix(), 10)
	for _, b := range fuzzBodies {
		mac := hex.EncodeToString(hmacOf(sha256.New, []byte(secrets[0]), now, ".", b))
		for _, hv := range []string{
			"t=" + now + ",v1=" + mac,
			"t=" + now + ",v0=" + mac + ",v1=" + strings.Repeat("0", 64) + ",v1=" + mac,
			"v1=" + mac + ",t=" + now,
			"t=" + now + ",v1=" + mac[:63],
			"t=" + now + ",v1=",
			"t=,v1=" + mac,
			"t=" + now,
			",,,",
			"t=1,v1=" + mac,
		} {
			f.Add(hv, []byte(b))
		}
	}
	f.Fuzz(func(t *testing.T, hv string, body []byte) {
		err := v.Verify(http.Header{"Stripe-Signature": {hv}}, body, testNow)
		checkErr(t, err)
		if err == nil {
			// Some t=<T> entry is in the window, and the header holds v1=<hex MAC over T.body>.
			ok := false
			for _, item := range strings.Split(hv, ",") {
				ts, isT := strings.CutPrefix(item, "t=")
				if !isT || !inWindow(ts) {
					continue
				}
				for _, s := range secrets {
					want := "v1=" + hex.EncodeToString(hmacOf(sha256.New, []byte(s), ts, ".", string(body)))
					ok = ok || strings.Contains(asciiLower(hv), want)
				}
			}
			if !ok {
				t.Fatalf("header %q verified but holds no correct MAC", hv)
			}
		}
		exact := "t=" + now + ",v1=" + hex.EncodeToString(hmacOf(sha256.New, []byte(secrets[1]), now, ".", string(body)))
		if err := v.Verify(http.Header{"Stripe-Signature": {exact}}, body, testNow); err != nil {
			t.Fatalf("correct header refused: %v", err)
		}
		checkRoundTrip(t, v, body)
	})
}

func FuzzVerifySlack(f *testing.F) {
	secrets := plainSecrets[:2]
	v := newFuzzVerifier(f, verify.Config{Scheme: "slack", Secrets: secrets})
	now := strconv.FormatInt(testNow.Unix(), 10)
	f.Add("v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", slackDocTS, []byte(slackDocBody))
	for _, b := range fuzzBodies {
		mac := hex.EncodeToString(hmacOf(sha256.New, []byte(secrets[1]), "v0:", now, ":", b))
		for _, sig := range []string{"v0=" + mac, "v0=" + strings.ToUpper(mac), "v1=" + mac, mac, "v0=" + mac[2:], "v0="} {
			f.Add(sig, now, []byte(b))
		}
		f.Add("v0="+mac, "0"+now, []byte(b))
		f.Add("v0="+mac, " "+now, []byte(b))
		f.Add("v0="+mac, "", []byte(b))
	}
	f.Fuzz(func(t *testing.T, sig, ts string, body []byte) {
		err := v.Verify(http.Header{"X-Slack-Signature": {sig}, "X-Slack-Request-Timestamp": {ts}}, body, testNow)
		checkErr(t, err)
		rest, hasPrefix := strings.CutPrefix(sig, "v0=")
		correct := false
		for _, s := range secrets {
			correct = correct || hasPrefix && spelledAs(rest, hmacOf(sha256.New, []byte(s), "v0:", ts, ":", string(body)), false)
		}
		correct = correct && inWindow(ts)
		if err == nil && !correct {
			t.Fatalf("signature %q at %q verified but is not correct", sig, ts)
		}
		if err != nil && correct {
			t.Fatalf("correct signature %q at %q refused: %v", sig, ts, err)
		}
		checkRoundTrip(t, v, body)
	})
}

func FuzzVerifyStandardWebhooks(f *testing.F) {
	secrets := []string{whsec("Q7v!k2#Lp9@Wz4$Rm8&Tx1%c"), whsec("b3N^f6*Hd0(Jg5)Ks2+Vy7=e")}
	v := newFuzzVerifier(f, verify.Config{Scheme: "standard-webhooks", Secrets: secrets})
	now := strconv.FormatInt(testNow.Unix(), 10)
	for _, b := range fuzzBodies {
		for _, id := range []string{"msg_p5jXN8AQM9LWM0D4loKWxJek", "1", "id with spaces"} {
			good := "v1," + base64.StdEncoding.EncodeToString(hmacOf(sha256.New, whsecKey(secrets[0]), id, ".", now, ".", b))
			for _, sigs := range []string{good, "v1,bad " + good, good + " v1a,xyz", good[:len(good)-1], good[3:], "v1,", " ", "v2," + good[3:]} {
				f.Add(id, now, sigs, []byte(b), false)
				f.Add(id, now, sigs, []byte(b), true)
			}
			f.Add(id, "0"+now, good, []byte(b), false)
		}
	}
	f.Fuzz(func(t *testing.T, id, ts, sigs string, body []byte, svix bool) {
		family := "webhook-"
		if svix {
			family = "svix-"
		}
		h := http.Header{}
		h.Set(family+"id", id)
		h.Set(family+"timestamp", ts)
		h.Set(family+"signature", sigs)
		err := v.Verify(h, body, testNow)
		checkErr(t, err)
		var want []string
		for _, s := range secrets {
			want = append(want, "v1,"+base64.StdEncoding.EncodeToString(hmacOf(sha256.New, whsecKey(s), id, ".", ts, ".", string(body))))
		}
		if err == nil {
			ok := false
			for _, w := range want {
				ok = ok || strings.Contains(sigs, w)
			}
			if !ok || !inWindow(ts) || id == "" {
				t.Fatalf("id %q, timestamp %q, signatures %q verified but are not correct", id, ts, sigs)
			}
		}
		if id != "" && inWindow(ts) && (sigs == want[0] || sigs == want[1]) && err != nil {
			t.Fatalf("correct signature refused: %v", err)
		}
		checkRoundTrip(t, v, body)
	})
}

// FuzzNew feeds arbitrary configs to New: it never panics, refuses with a *ConfigError naming a
// known field, and every verifier it builds round-trips and survives a hostile header.
func FuzzNew(f *testing.F) {
	for _, s := range verify.Schemes() {
		f.Add(s, "", "", "", "", "a-secret", int64(0))
	}
	f.Add("hmac", "X-Sig", "sha512", "base64", "sha512=", "k", int64(0))
	f.Add("hmac", "X Sig", "md5", "base32", "\n", "", int64(-1))
	f.Add("standard-webhooks", "", "", "", "", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", int64(time.Minute))
	f.Add("standard-webhooks", "", "", "", "", "whsec_", int64(0))
	fields := map[string]bool{"scheme": true, "header": true, "algorithm": true, "encoding": true, "prefix": true, "secrets": true, "tolerance": true}
	f.Fuzz(func(t *testing.T, scheme, header, alg, enc, prefix, secret string, tol int64) {
		cfg := verify.Config{Scheme: scheme, Header: header, Algorithm: alg, Encoding: enc, Prefix: prefix, Tolerance: time.Duration(tol)}
		if secret != "" {
			cfg.Secrets = []string{secret}
		}
		v, err := verify.New(cfg)
		if err != nil {
			var ce *verify.ConfigError
			if !errors.As(err, &ce) || !fields[ce.Field] {
				t.Fatalf("New error %v is not a ConfigError naming a known field", err)
			}
			if len(secret) >= 8 && strings.Contains(err.Error(), secret) {
				t.Fatalf("New error %q reveals the secret", err)
			}
			return
		}
		body := []byte(signedBody)
		checkRoundTrip(t, v, body)
		hostile := http.Header{}
		for k := range v.Sign(body, testNow) {
			hostile[k] = []string{prefix + "\x00" + header}
		}
		checkErr(t, v.Verify(hostile, body, testNow))
	})
}
