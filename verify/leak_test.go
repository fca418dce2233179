package verify_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

// windows returns every substring of s that is n bytes long, or s itself when it is shorter.
func windows(s string, n int) []string {
	if len(s) <= n {
		return []string{s}
	}
	out := make([]string, 0, len(s)-n+1)
	for i := 0; i+n <= len(s); i++ {
		out = append(out, s[i:i+n])
	}
	return out
}

// encodings lists b written every way a header or a log might carry it.
func encodings(b []byte) []string {
	return []string{
		hex.EncodeToString(b),
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
	}
}

// leaked returns the first 8-character run of a forbidden string that msg contains. Hex runs are
// compared without regard to case.
func leaked(msg string, forbidden []string) (string, bool) {
	lower := strings.ToLower(msg)
	for _, f := range forbidden {
		for _, w := range windows(f, 8) {
			if strings.Contains(msg, w) || isHex(w) && strings.Contains(lower, strings.ToLower(w)) {
				return w, true
			}
		}
	}
	return "", false
}

func assertNoLeak(t *testing.T, msg string, what string, forbidden []string) {
	t.Helper()
	if w, ok := leaked(msg, forbidden); ok {
		t.Fatalf("error %q reveals %s (contains %q)", msg, what, w)
	}
}

func isHex(s string) bool {
	_, err := hex.DecodeString(strings.ToLower(s) + strings.Repeat("0", len(s)%2))
	return err == nil
}

func TestErrorsNeverRevealMACOrSecret(t *testing.T) {
	for _, f := range fixtures(t) {
		v := newRotating(t, f)
		var secretForms []string
		for _, s := range f.secrets {
			secretForms = append(secretForms, s)
			secretForms = append(secretForms, encodings([]byte(s))...)
			if k := whsecKey(s); len(k) > 0 && strings.HasPrefix(s, "whsec_") {
				secretForms = append(secretForms, string(k))
				secretForms = append(secretForms, encodings(k)...)
			}
		}
		for _, tc := range failureCases(t, f) {
			t.Run(f.name+"/"+tc.name, func(t *testing.T) {
				err := v.Verify(tc.h, tc.body, tc.now)
				if err == nil {
					t.Fatal("Verify passed")
				}
				// The MACs the verifier could have computed: over the body received and over the
				// body signed, with every secret it holds and the one it does not.
				var macForms []string
				for _, s := range f.secrets {
					for _, body := range [][]byte{tc.body, tc.signedBody} {
						macForms = append(macForms, encodings(f.mac(s, tc.signedH, body))...)
					}
				}
				assertNoLeak(t, err.Error(), "the expected MAC", macForms)
				assertNoLeak(t, err.Error(), "a secret", secretForms)
			})
		}
	}
}

// The leak check itself must be able to fail: a message quoting part of a MAC or secret is caught.
func TestLeakCheckCatchesALeak(t *testing.T) {
	mac := hmacOf(sha256.New, []byte("k"), "body")
	for _, form := range encodings(mac) {
		for _, msg := range []string{"signature mismatch: want " + form, "got " + form[3:14] + "...", "x" + form[len(form)-9:]} {
			if _, ok := leaked(msg, []string{form}); !ok {
				t.Errorf("leak of %q in %q not caught", form, msg)
			}
		}
	}
	hexForm := hex.EncodeToString(mac)
	if _, ok := leaked("sig "+strings.ToUpper(hexForm[10:18]), []string{hexForm}); !ok {
		t.Error("upper-case hex leak not caught")
	}
	if _, ok := leaked("secret is It's a Secret", []string{"It's a Secret to Everybody"}); !ok {
		t.Error("secret leak not caught")
	}
	if _, ok := leaked("signature mismatch", []string{hexForm}); ok {
		t.Error("clean message flagged")
	}
}
