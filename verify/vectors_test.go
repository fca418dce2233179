package verify_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/verify"
)

// Known-answer vectors. Published ones are quoted from the senders' documentation; the others
// were computed with Python's hmac and base64 modules, not with this package.
const (
	// docs.github.com, "Validating webhook deliveries".
	githubDocSecret = "It's a Secret to Everybody"
	githubDocBody   = "Hello, World!"
	githubDocSig    = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

	// Slack, "Verifying requests from Slack".
	slackDocSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	slackDocTS     = "1531420618"
	slackDocBody   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	slackDocSig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

	// The Standard Webhooks specification's test vector, also used by Svix's libraries.
	swDocSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swDocID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	swDocTS     = "1614265330"
	swDocBody   = `{"test": 2432232314}`
	swDocSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func unix(s int64) time.Time { return time.Unix(s, 0) }

func TestKnownAnswers(t *testing.T) {
	const genericBody = `{"ok":true}`
	tests := []struct {
		name string
		cfg  verify.Config
		body string
		now  time.Time
		h    http.Header
		// signs is set when Sign(body, now) must reproduce h exactly (no delivery id, or one the vector lacks).
		signs bool
	}{
		{
			name: "github published", cfg: verify.Config{Scheme: "github", Secrets: []string{githubDocSecret}},
			body: githubDocBody, h: hdr("X-Hub-Signature-256", githubDocSig), signs: true,
		},
		{
			name: "slack published", cfg: verify.Config{Scheme: "slack", Secrets: []string{slackDocSecret}},
			body: slackDocBody, now: unix(1531420618), h: hdr("X-Slack-Request-Timestamp", slackDocTS, "X-Slack-Signature", slackDocSig), signs: true,
		},
		{
			name: "standard-webhooks published", cfg: verify.Config{Scheme: "standard-webhooks", Secrets: []string{swDocSecret}},
			body: swDocBody, now: unix(1614265330), h: hdr("webhook-id", swDocID, "webhook-timestamp", swDocTS, "webhook-signature", swDocSig),
		},
		{
			name: "standard-webhooks published, svix header names", cfg: verify.Config{Scheme: "standard-webhooks", Secrets: []string{swDocSecret}},
			body: swDocBody, now: unix(1614265330), h: hdr("svix-id", swDocID, "svix-timestamp", swDocTS, "svix-signature", swDocSig),
		},
		{
			name: "standard-webhooks published, secret without whsec_ prefix", cfg: verify.Config{Scheme: "standard-webhooks", Secrets: []string{swDocSecret[len("whsec_"):]}},
			body: swDocBody, now: unix(1614265330), h: hdr("webhook-id", swDocID, "webhook-timestamp", swDocTS, "webhook-signature", swDocSig),
		},
		{
			name: "standard-webhooks published among other signatures", cfg: verify.Config{Scheme: "standard-webhooks", Secrets: []string{swDocSecret}},
			body: swDocBody, now: unix(1614265330),
			h: hdr("webhook-id", swDocID, "webhook-timestamp", swDocTS, "webhook-signature",
				"v1a,bm90IGFuIGVkMjU1MTkgc2lnbmF0dXJl v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= "+swDocSig),
		},
		{
			name: "oncloudwine", cfg: verify.Config{Scheme: "oncloudwine", Secrets: []string{"ocw_signing_3f9a7c"}},
			body: `{"event":"CONTACT_CREATED","timestamp":"2025-01-02T03:04:05Z","organizationId":"org_42","data":{"id":"c_1","email":"a@example.com"}}`,
			h:    hdr("X-OnCloudWine-Signature", "e73d65e0bf2cd0b1b25795ad944e6751fe62f2168c1273a6fc686d8e4e960dc1"), signs: true,
		},
		{
			name: "ordercloud", cfg: verify.Config{Scheme: "ordercloud", Secrets: []string{"oc-hash-key-Zq81"}},
			body: `{"Route":"v1/buyers/{buyerID}/users/{userID}","RouteParams":{"buyerID":"b1","userID":"u1"},"Verb":"PATCH","Date":"2025-01-02T03:04:05Z","LogID":"log1","UserToken":"tok","Request":{"Body":{},"Headers":{}},"Response":{"Body":{},"Headers":{}},"ConfigData":{}}`,
			h:    hdr("X-oc-hash", "AN49zddvRY0bH1abQbbEdfs6KQcPzXI3WS9yIBHENvI="), signs: true,
		},
		{
			name: "shopify", cfg: verify.Config{Scheme: "shopify", Secrets: []string{"shpss_0d9f2e"}},
			body: `{"id":820982911946154508,"email":"jon@example.com"}`,
			h:    hdr("X-Shopify-Hmac-Sha256", "UTgzoC62/8OMC/xJrUgBuC4fKODY+u1TTQ34v+Ae+BU="), signs: true,
		},
		{
			name: "stripe", cfg: verify.Config{Scheme: "stripe", Secrets: []string{"whsec_stripe_test_8b1e"}},
			body: `{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}`, now: unix(1700000000),
			h: hdr("Stripe-Signature", "t=1700000000,v1=51d7aefb4bebd19ae1e62de94568c8a2d2031ace0eb03d1a631b8cf957755414"), signs: true,
		},
		{
			name: "stripe with v0 and a second v1", cfg: verify.Config{Scheme: "stripe", Secrets: []string{"whsec_stripe_test_8b1e"}},
			body: `{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}`, now: unix(1700000000),
			h: hdr("Stripe-Signature", "t=1700000000,v1=00000000000000000000000000000000000000000000000000000000000000ff,"+
				"v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39,v1=51d7aefb4bebd19ae1e62de94568c8a2d2031ace0eb03d1a631b8cf957755414"),
		},
		{
			name: "hmac sha1 hex", cfg: verify.Config{Scheme: "hmac", Header: "X-Signature", Algorithm: "sha1", Secrets: []string{"generic-key-77"}},
			body: genericBody, h: hdr("X-Signature", "b0ffecf4857a21e89fb799f71bf99678619571c7"), signs: true,
		},
		{
			name: "hmac sha256 hex with prefix (default algorithm)", cfg: verify.Config{Scheme: "hmac", Header: "X-Signature", Prefix: "sha256=", Secrets: []string{"generic-key-77"}},
			body: genericBody, h: hdr("X-Signature", "sha256=d2551bd14db757f053d31c5e77316611009ab194c060f343cc7e98bce5db27af"), signs: true,
		},
		{
			name: "hmac sha256 upper-case hex", cfg: verify.Config{Scheme: "hmac", Header: "X-Signature", Algorithm: "sha256", Encoding: "hex", Secrets: []string{"generic-key-77"}},
			body: genericBody, h: hdr("X-Signature", "D2551BD14DB757F053D31C5E77316611009AB194C060F343CC7E98BCE5DB27AF"),
		},
		{
			name: "hmac sha512 base64", cfg: verify.Config{Scheme: "hmac", Header: "X-Signature", Algorithm: "sha512", Encoding: "base64", Secrets: []string{"generic-key-77"}},
			body: genericBody, h: hdr("X-Signature", "lHnRoMhHCOVAjBBQI7snxvrte+gqpE5kgcNneKAE8WIq8vObfg33FpXEBqVeykXZhvApqcSEAc5IZ0m9E5gGRw=="), signs: true,
		},
		{
			name: "hmac sha512 base64 unpadded", cfg: verify.Config{Scheme: "hmac", Header: "X-Signature", Algorithm: "sha512", Encoding: "base64", Secrets: []string{"generic-key-77"}},
			body: genericBody, h: hdr("X-Signature", "lHnRoMhHCOVAjBBQI7snxvrte+gqpE5kgcNneKAE8WIq8vObfg33FpXEBqVeykXZhvApqcSEAc5IZ0m9E5gGRw"),
		},
		{
			name: "hmac sha256 base64 URL-safe unpadded", cfg: verify.Config{Scheme: "hmac", Header: "X-Signature", Encoding: "base64", Secrets: []string{"generic-key-77"}},
			body: genericBody, h: hdr("X-Signature", "0lUb0U23V_BT0xxedzFmEQCasZTAYPNDzH6YvOXbJ68"),
		},
		{
			name: "hmac sha256 base64 URL-safe padded", cfg: verify.Config{Scheme: "hmac", Header: "X-Signature", Encoding: "base64", Secrets: []string{"generic-key-77"}},
			body: genericBody, h: hdr("X-Signature", "0lUb0U23V_BT0xxedzFmEQCasZTAYPNDzH6YvOXbJ68="),
		},
		{
			name: "hmac sha256 base64 standard", cfg: verify.Config{Scheme: "hmac", Header: "X-Signature", Encoding: "base64", Secrets: []string{"generic-key-77"}},
			body: genericBody, h: hdr("X-Signature", "0lUb0U23V/BT0xxedzFmEQCasZTAYPNDzH6YvOXbJ68="),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := verify.New(tt.cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if err := v.Verify(tt.h, []byte(tt.body), tt.now); err != nil {
				t.Fatalf("Verify of the published signature: %v", err)
			}
			if !tt.signs {
				return
			}
			got := v.Sign([]byte(tt.body), tt.now)
			for k := range tt.h {
				if got.Get(k) != tt.h.Get(k) {
					t.Errorf("Sign: %s = %q, want %q", k, got.Get(k), tt.h.Get(k))
				}
			}
		})
	}
}

// The Standard Webhooks vector must also fail once the body changes: a check that a test of
// the vector above cannot pass by accepting everything.
func TestKnownAnswerRejectsAlteredBody(t *testing.T) {
	v, err := verify.New(verify.Config{Scheme: "standard-webhooks", Secrets: []string{swDocSecret}})
	if err != nil {
		t.Fatal(err)
	}
	h := hdr("webhook-id", swDocID, "webhook-timestamp", swDocTS, "webhook-signature", swDocSig)
	if err := v.Verify(h, []byte(`{"test": 2432232315}`), unix(1614265330)); err == nil {
		t.Fatal("altered body verified")
	}
	g, _ := verify.New(verify.Config{Scheme: "github", Secrets: []string{githubDocSecret}})
	if err := g.Verify(hdr("X-Hub-Signature-256", githubDocSig), []byte("Hello, World?"), time.Time{}); err == nil {
		t.Fatal("altered body verified")
	}
}
