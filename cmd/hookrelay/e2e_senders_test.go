package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Secrets of the five forwarding senders of the demo, as the end-to-end
// tests run it.
const (
	githubSecret           = "gh-webhook-secret-3e9d71"
	stripeSecret           = "whsec_stripe-signing-secret-b84c20"
	shopifySecret          = "shpss_api-secret-5a17f3"
	slackSecret            = "slack-signing-secret-c0e6d9"
	standardSecret         = "whsec_c3RhbmRhcmQtd2ViaG9va3Mta2V5LWN1cnJlbnQ=" // "standard-webhooks-key-current"
	standardSecretPrevious = "whsec_c3RhbmRhcmQtd2ViaG9va3Mta2V5LXByZXZpb3Vz" // "standard-webhooks-key-previous"
)

// Signatures in each sender's documented format, computed here
// independently of the verify package.

func hmacSHA256(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// githubSign: X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>.
func githubSign(secret string, body []byte, delivery string) http.Header {
	return http.Header{
		"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(hmacSHA256([]byte(secret), string(body)))},
		"X-Github-Event":      {"push"},
		"X-Github-Delivery":   {delivery},
		"X-Github-Hook-Id":    {"498207131"},
	}
}

// stripeSign: Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">.
func stripeSign(secret string, body []byte, at time.Time) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	return http.Header{"Stripe-Signature": {"t=" + ts + ",v1=" + hex.EncodeToString(hmacSHA256([]byte(secret), ts, ".", string(body)))}}
}

// shopifySign: X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the body.
func shopifySign(secret string, body []byte, webhookID string) http.Header {
	return http.Header{
		"X-Shopify-Hmac-Sha256":  {base64.StdEncoding.EncodeToString(hmacSHA256([]byte(secret), string(body)))},
		"X-Shopify-Topic":        {"orders/create"},
		"X-Shopify-Shop-Domain":  {"oncloudwine-demo.myshopify.com"},
		"X-Shopify-Api-Version":  {"2024-10"},
		"X-Shopify-Webhook-Id":   {webhookID},
		"X-Shopify-Triggered-At": {"2026-11-23T10:14:33.405Z"},
	}
}

// slackSign: X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:ts:body">.
func slackSign(secret string, body []byte, at time.Time) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	return http.Header{
		"X-Slack-Request-Timestamp": {ts},
		"X-Slack-Signature":         {"v0=" + hex.EncodeToString(hmacSHA256([]byte(secret), "v0:", ts, ":", string(body)))},
	}
}

// standardSign: webhook-signature: v1,<base64 HMAC-SHA256 of "id.ts.body">
// keyed with the base64-decoded whsec_ secret.
func standardSign(t *testing.T, secret string, body []byte, id string, at time.Time) http.Header {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	return http.Header{
		"Webhook-Id":        {id},
		"Webhook-Timestamp": {ts},
		"Webhook-Signature": {"v1," + base64.StdEncoding.EncodeToString(hmacSHA256(key, id, ".", ts, ".", string(body)))},
	}
}

// sender is one forwarding hook of the demo with a way to sign for it.
type sender struct {
	hook, payload string
	sign          func(t *testing.T, body []byte, at time.Time, n int) http.Header
	stale         bool // the scheme carries a timestamp and refuses an old one
}

func senders() []sender {
	return []sender{
		{"github", "github-push.json", func(_ *testing.T, b []byte, _ time.Time, n int) http.Header {
			return githubSign(githubSecret, b, fmt.Sprintf("72d3162e-cc78-11e3-81ab-4c9367dc%04d", n))
		}, false},
		{"stripe", "stripe-payment-intent-succeeded.json", func(_ *testing.T, b []byte, at time.Time, _ int) http.Header {
			return stripeSign(stripeSecret, b, at)
		}, true},
		{"shopify", "shopify-orders-create.json", func(_ *testing.T, b []byte, _ time.Time, n int) http.Header {
			return shopifySign(shopifySecret, b, fmt.Sprintf("b54557e4-bdd9-4b37-8a5f-bf7d7024%04d", n))
		}, false},
		{"slack", "slack-app-mention.json", func(_ *testing.T, b []byte, at time.Time, _ int) http.Header {
			return slackSign(slackSecret, b, at)
		}, true},
		{"standard", "standard-webhooks-invoice-paid.json", func(t *testing.T, b []byte, at time.Time, n int) http.Header {
			return standardSign(t, standardSecret, b, fmt.Sprintf("msg_2pQ8wN4kTzR7vX%04d", n), at)
		}, true},
	}
}

// wrongSignature replaces the value of every signature header with one of
// the same form made with another secret.
func wrongSignature(t *testing.T, s sender, body []byte, at time.Time) http.Header {
	t.Helper()
	switch s.hook {
	case "github":
		return githubSign("not-the-secret", body, "72d3162e-cc78-11e3-81ab-4c9367dc9999")
	case "stripe":
		return stripeSign("whsec_not-the-secret", body, at)
	case "shopify":
		return shopifySign("shpss_not-the-secret", body, "b54557e4-bdd9-4b37-8a5f-bf7d70249999")
	case "slack":
		return slackSign("not-the-secret", body, at)
	case "standard":
		return standardSign(t, "whsec_bm90LXRoZS1zZWNyZXQ=", body, "msg_2pQ8wN4kTzR7vX9999", at)
	}
	t.Fatalf("no wrong signature for %s", s.hook)
	return nil
}

// The five senders of the demo that forward their events: each signed
// request is verified and its body forwarded byte for byte to
// POST /v1/inbox/<hook>; a wrong or stale signature is refused and sends
// nothing.
func TestDemoForwardingSenders(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) { testForwardingSenders(t, b.url(t)) })
}

func testForwardingSenders(t *testing.T, storeURL string) {
	rc := newReceiver(t)
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, extra: []string{"STANDARD_WEBHOOK_SECRET_PREVIOUS=" + standardSecretPrevious}})

	for _, s := range senders() {
		t.Run(s.hook, func(t *testing.T) {
			path := "/v1/inbox/" + s.hook
			body := payload(t, s.payload)
			now := time.Now()

			// Refused first, so that a forged event would be delivered
			// before the genuine one that the test waits for.
			refusals := []http.Header{wrongSignature(t, s, body, now), nil}
			if s.stale {
				refusals = append(refusals, s.sign(t, body, now.Add(-10*time.Minute), 1), s.sign(t, body, now.Add(10*time.Minute), 1))
			}
			for i, h := range refusals {
				status, out := srv.post(t, http.MethodPost, "/hooks/catch/"+s.hook, body, h)
				if status != http.StatusUnauthorized {
					t.Fatalf("refusal %d: status %d %v, want 401", i+1, status, out)
				}
				if _, ok := out["id"]; ok {
					t.Errorf("refusal %d: answer carries an event id: %v", i+1, out)
				}
			}

			status, out := srv.post(t, http.MethodPost, "/hooks/catch/"+s.hook, body, s.sign(t, body, now, 1))
			if status != http.StatusAccepted {
				t.Fatalf("signed: status %d %v, want 202", status, out)
			}
			r := rc.waitFor(t, path, 1)[0]
			if r.Method != http.MethodPost {
				t.Errorf("method %s, want POST", r.Method)
			}
			if !bytes.Equal(r.Body, body) {
				t.Errorf("forwarded body differs from the payload\n got: %q\nwant: %q", r.Body, body)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			checkRequest(t, r, http.MethodPost, crmToken)

			// A resend of the signed event is a duplicate (docs/idempotency.md).
			again := s.sign(t, body, now, 1)
			status, dup := srv.post(t, http.MethodPost, "/hooks/catch/"+s.hook, body, again)
			if status != http.StatusOK || dup["duplicate"] != true || dup["id"] != out["id"] {
				t.Errorf("resend: %d %v, want 200 duplicate of %v", status, dup, out["id"])
			}
			if n := len(rc.on(path)); n != 1 {
				t.Errorf("%s received %d requests, want 1: refused and duplicate requests were forwarded", path, n)
			}
		})
	}

	t.Run("the previous standard-webhooks secret, while set", func(t *testing.T) {
		body := bytes.Replace(payload(t, "standard-webhooks-invoice-paid.json"), []byte("inv_2pQ8wN4kTz"), []byte("inv_rotated001"), 1)
		h := standardSign(t, standardSecretPrevious, body, "msg_rotated0001", time.Now())
		status, out := srv.post(t, http.MethodPost, "/hooks/catch/standard", body, h)
		if status != http.StatusAccepted {
			t.Fatalf("status %d %v, want 202", status, out)
		}
		reqs := rc.waitFor(t, "/v1/inbox/standard", 2)
		if !bytes.Equal(reqs[1].Body, body) {
			t.Errorf("forwarded body %q, want the payload signed with the previous secret", reqs[1].Body)
		}
	})

	t.Run("nothing else was forwarded", func(t *testing.T) {
		// A later event acts as a barrier: anything accepted before it
		// would have been delivered by the time it is.
		body := bytes.Replace(payload(t, "github-push.json"), []byte("cellar-site"), []byte("barrier-site"), 1)
		if status, out := srv.post(t, http.MethodPost, "/hooks/catch/github", body, githubSign(githubSecret, body, "barrier-0001")); status != http.StatusAccepted {
			t.Fatalf("barrier: %d %v", status, out)
		}
		rc.waitFor(t, "/v1/inbox/github", 2)
		want := map[string]int{"github": 2, "stripe": 1, "shopify": 1, "slack": 1, "standard": 2}
		for hook, n := range want {
			if got := len(rc.on("/v1/inbox/" + hook)); got != n {
				t.Errorf("/v1/inbox/%s received %d requests, want %d", hook, got, n)
			}
		}
	})
}

// Without STANDARD_WEBHOOK_SECRET_PREVIOUS the empty entry is dropped and
// only the current secret verifies.
func TestDemoStandardWebhooksPreviousSecretUnset(t *testing.T) {
	rc := newReceiver(t)
	srv := start(t, serverOpts{store: "sqlite://" + t.TempDir() + "/hookrelay.db", api: rc.URL})
	body := payload(t, "standard-webhooks-invoice-paid.json")
	if status, out := srv.post(t, http.MethodPost, "/hooks/catch/standard", body, standardSign(t, standardSecretPrevious, body, "msg_prev", time.Now())); status != http.StatusUnauthorized {
		t.Errorf("signed with the unset previous secret: %d %v, want 401", status, out)
	}
	if status, out := srv.post(t, http.MethodPost, "/hooks/catch/standard", body, standardSign(t, standardSecret, body, "msg_cur", time.Now())); status != http.StatusAccepted {
		t.Errorf("signed with the current secret: %d %v, want 202", status, out)
	}
	rc.waitFor(t, "/v1/inbox/standard", 1)
}
