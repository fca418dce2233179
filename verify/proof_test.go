package verify_test

import (
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/verify"
)

// Check names the secret that matched by its position in the configured list, and the signed
// instant of a timestamped scheme; a failed check names neither.
func TestCheckProof(t *testing.T) {
	body := []byte(signedBody)
	now := testNow.Add(7 * time.Second) // received seven seconds after it was signed
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			v := newRotating(t, f)
			for i, secret := range f.secrets[:2] {
				h := signer(t, f, secret).Sign(body, testNow)
				p, err := v.Check(h, body, now)
				if err != nil {
					t.Fatalf("Check with secret %d: %v", i+1, err)
				}
				if p.Secret != i+1 {
					t.Errorf("signed with secret %d: Proof.Secret = %d", i+1, p.Secret)
				}
				switch {
				case f.timestamped && !p.Signed.Equal(testNow):
					t.Errorf("Proof.Signed = %v, want %v", p.Signed, testNow)
				case !f.timestamped && !p.Signed.IsZero():
					t.Errorf("Proof.Signed = %v for a scheme that signs no timestamp", p.Signed)
				}
			}
			h := signer(t, f, f.secrets[2]).Sign(body, testNow)
			if p, err := v.Check(h, body, now); err == nil || p != (verify.Proof{}) {
				t.Errorf("Check with a secret not held = %+v, %v; want an error and no proof", p, err)
			}
		})
	}
}

func TestKeySource(t *testing.T) {
	for scheme, want := range map[string]string{
		verify.SchemeGitHub: "", verify.SchemeStripe: "id in the signed body", verify.SchemeStandardWebhooks: "webhook-id",
	} {
		secret := "s3cret"
		if scheme == verify.SchemeStandardWebhooks {
			secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		}
		v, err := verify.New(verify.Config{Scheme: scheme, Secrets: []string{secret}})
		if err != nil {
			t.Fatal(err)
		}
		h := v.Sign([]byte(`{"id":"evt_1"}`), testNow)
		if got := v.KeySource(h); got != want {
			t.Errorf("%s: KeySource = %q, want %q", scheme, got, want)
		}
	}
}
