package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// Secrets of the replay test's hooks that the demo does not have.
const hmacSecret = "generic-hmac-secret-7d2e"

// replayConfig has one hook per signature scheme, none with an
// idempotency.key, each forwarding its events to /inbox/<hook>.
func replayConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rules.yaml"), "rules:\n  - name: forward\n    when: true\n    actions: [forward]\n")
	hooks := map[string]string{
		"github":      `{scheme: github, secret: "` + githubSecret + `"}`,
		"shopify":     `{scheme: shopify, secret: "` + shopifySecret + `"}`,
		"oncloudwine": `{scheme: oncloudwine, secret: "` + ocwSecret + `"}`,
		"ordercloud":  `{scheme: ordercloud, secret: "` + ocHashKey + `"}`,
		"hmac":        `{scheme: hmac, header: X-Signature, prefix: "sha256=", secret: "` + hmacSecret + `"}`,
		"stripe":      `{scheme: stripe, secret: "` + stripeSecret + `"}`,
		"slack":       `{scheme: slack, secret: "` + slackSecret + `"}`,
		"standard":    `{scheme: standard-webhooks, secret: "` + standardSecret + `"}`,
		"none":        `{scheme: none}`,
	}
	cfg := "egress:\n  allow_networks: [127.0.0.0/8]\nhooks:\n"
	for name, v := range hooks {
		cfg += "  " + name + ":\n    verify: " + v + "\n    rules: [rules.yaml]\n"
		if name == "none" {
			cfg += "    auth:\n      allow_ips: [127.0.0.1]\n"
		}
	}
	cfg += `actions:
  forward:
    url: ${DEMO_API_URL}/inbox/{{ hook }}
    body_raw: true
    retry: []
`
	writeFile(t, filepath.Join(dir, "hookrelay.yaml"), cfg)
	return filepath.Join(dir, "hookrelay.yaml")
}

// with returns h with the headers of extra set (replacing their values).
func with(h http.Header, extra ...string) http.Header {
	c := h.Clone()
	for i := 0; i+1 < len(extra); i += 2 {
		c.Set(extra[i], extra[i+1])
	}
	return c
}

// svixSpelling writes a Standard Webhooks request with Svix's header names.
func svixSpelling(h http.Header) http.Header {
	return http.Header{
		"Svix-Id":        {h.Get("Webhook-Id")},
		"Svix-Timestamp": {h.Get("Webhook-Timestamp")},
		"Svix-Signature": {h.Get("Webhook-Signature")},
	}
}

// replayCase is one scheme: how to sign an event, the replays of it that
// must be duplicates, and a distinct event that must not be.
type replayCase struct {
	hook     string
	sign     func(t *testing.T, body []byte, at time.Time) http.Header
	replays  func(t *testing.T, body []byte, first http.Header, at time.Time) map[string]http.Header
	distinct func(t *testing.T, body []byte, at time.Time) ([]byte, http.Header)
}

// sameHeadersNewBody signs another body: a genuinely new event.
func sameHeadersNewBody(c *replayCase) func(t *testing.T, body []byte, at time.Time) ([]byte, http.Header) {
	return func(t *testing.T, body []byte, at time.Time) ([]byte, http.Header) {
		b := []byte(strings.NewReplacer(`"n":1`, `"n":2`, `_1"`, `_2"`).Replace(string(body)))
		return b, c.sign(t, b, at)
	}
}

func replayCases() []*replayCase {
	// Every scheme that signs only the body: the signed request again, with
	// the sender's delivery-id header (or any other header) changed.
	unsignedIDs := func(ids ...string) func(t *testing.T, body []byte, first http.Header, at time.Time) map[string]http.Header {
		return func(_ *testing.T, _ []byte, first http.Header, _ time.Time) map[string]http.Header {
			out := map[string]http.Header{"the same request": first, "a new X-Request-Id": with(first, "X-Request-Id", "req-forged-1")}
			for _, id := range ids {
				out["a new "+id] = with(first, id, "forged-0002")
			}
			return out
		}
	}
	cases := []*replayCase{
		{
			hook: "github",
			sign: func(_ *testing.T, b []byte, _ time.Time) http.Header {
				return githubSign(githubSecret, b, "72d3162e-cc78-11e3-81ab-4c9367dc0001")
			},
			replays: unsignedIDs("X-GitHub-Delivery", "X-GitHub-Hook-Id"),
		},
		{
			hook: "shopify",
			sign: func(_ *testing.T, b []byte, _ time.Time) http.Header {
				return shopifySign(shopifySecret, b, "b54557e4-bdd9-4b37-8a5f-bf7d70240001")
			},
			replays: unsignedIDs("X-Shopify-Webhook-Id", "X-Shopify-Event-Id", "X-Shopify-Triggered-At"),
		},
		{
			hook: "oncloudwine",
			sign: func(_ *testing.T, b []byte, _ time.Time) http.Header {
				return with(ocwSign(b), "X-Delivery-Id", "ocw-0001")
			},
			replays: unsignedIDs("X-Delivery-Id"),
		},
		{
			hook: "ordercloud",
			sign: func(_ *testing.T, b []byte, _ time.Time) http.Header {
				return with(ocSign(b), "X-Delivery-Id", "oc-0001")
			},
			replays: unsignedIDs("X-Delivery-Id"),
		},
		{
			hook: "hmac",
			sign: func(_ *testing.T, b []byte, _ time.Time) http.Header {
				return http.Header{"X-Signature": {"sha256=" + hex.EncodeToString(hmacSHA256([]byte(hmacSecret), string(b)))}, "X-Delivery-Id": {"h-0001"}}
			},
			replays: unsignedIDs("X-Delivery-Id"),
		},
		{
			hook:    "none",
			sign:    func(_ *testing.T, _ []byte, _ time.Time) http.Header { return http.Header{"X-Delivery-Id": {"n-0001"}} },
			replays: unsignedIDs("X-Delivery-Id"),
		},
		{
			// The body, with its event id, is signed with a timestamp; a
			// retry is signed again later.
			hook: "stripe",
			sign: func(_ *testing.T, b []byte, at time.Time) http.Header { return stripeSign(stripeSecret, b, at) },
			replays: func(_ *testing.T, b []byte, first http.Header, at time.Time) map[string]http.Header {
				return map[string]http.Header{
					"the same request":        first,
					"signed again later":      stripeSign(stripeSecret, b, at.Add(30*time.Second)),
					"with a new X-Request-Id": with(first, "X-Request-Id", "req-forged-1"),
				}
			},
		},
		{
			hook: "slack",
			sign: func(_ *testing.T, b []byte, at time.Time) http.Header { return slackSign(slackSecret, b, at) },
			replays: func(_ *testing.T, b []byte, first http.Header, at time.Time) map[string]http.Header {
				return map[string]http.Header{
					"the same request":           first,
					"a retry signed again later": with(slackSign(slackSecret, b, at.Add(30*time.Second)), "X-Slack-Retry-Num", "1", "X-Slack-Retry-Reason", "http_timeout"),
				}
			},
		},
		{
			// The id is signed: whichever spelling verified, its id is the key.
			hook: "standard",
			sign: func(t *testing.T, b []byte, at time.Time) http.Header {
				return standardSign(t, standardSecret, b, "msg_replay0001", at)
			},
			replays: func(t *testing.T, b []byte, first http.Header, at time.Time) map[string]http.Header {
				second := first.Clone()
				second.Add("Webhook-Id", "msg_forged0002")
				svix := svixSpelling(first)
				svixSecond := svix.Clone()
				svixSecond.Add("Svix-Id", "msg_forged0002")
				return map[string]http.Header{
					"the same request":                         first,
					"a svix-id added":                          with(first, "Svix-Id", "msg_forged0002"),
					"a second webhook-id":                      second,
					"in Svix's spelling":                       svix,
					"in Svix's spelling with a webhook-id":     with(svix, "Webhook-Id", "msg_forged0002"),
					"in Svix's spelling, signed again later":   svixSpelling(standardSign(t, standardSecret, b, "msg_replay0001", at.Add(30*time.Second))),
					"in Svix's spelling with a second svix-id": svixSecond,
				}
			},
			distinct: func(t *testing.T, b []byte, at time.Time) ([]byte, http.Header) {
				// The same body under a new signed id is a new message.
				return b, svixSpelling(standardSign(t, standardSecret, b, "msg_replay0002", at))
			},
		},
	}
	for _, c := range cases {
		if c.distinct == nil {
			c.distinct = sameHeadersNewBody(c)
		}
	}
	return cases
}

// A signed event sent again, with every header the signature does not
// cover changed, is a duplicate for each scheme: nothing new is stored or
// delivered. A Standard Webhooks request is keyed by the id of the header
// family that verified, so adding or swapping the other spelling changes
// nothing. Genuinely distinct events are still accepted and delivered.
func TestReplayThroughUnsignedHeaders(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) { testReplayThroughUnsignedHeaders(t, b.url(t)) })
}

func testReplayThroughUnsignedHeaders(t *testing.T, storeURL string) {
	rc := newReceiver(t)
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: replayConfig(t)})
	st := openTestStore(t, storeURL)

	for _, c := range replayCases() {
		t.Run(c.hook, func(t *testing.T) {
			catch := "/hooks/catch/" + c.hook
			body := []byte(fmt.Sprintf(`{"id":"evt_%s_1","object":"event","n":1,"type":"replay.test"}`, c.hook))
			now := time.Now()
			first := c.sign(t, body, now)
			status, out := srv.post(t, http.MethodPost, catch, body, first)
			id, _ := out["id"].(string)
			if status != http.StatusAccepted || id == "" {
				t.Fatalf("first: %d %v, want 202", status, out)
			}
			for name, h := range c.replays(t, body, first, now) {
				status, dup := srv.post(t, http.MethodPost, catch, body, h)
				if status != http.StatusOK || dup["duplicate"] != true || dup["id"] != id {
					t.Errorf("replay (%s): %d %v, want 200 duplicate of %s", name, status, dup, id)
				}
			}
			b2, h2 := c.distinct(t, body, now)
			status, out = srv.post(t, http.MethodPost, catch, b2, h2)
			id2, _ := out["id"].(string)
			if status != http.StatusAccepted || id2 == "" || id2 == id {
				t.Fatalf("distinct event: %d %v, want 202 with a new id", status, out)
			}

			for _, e := range []string{id, id2} {
				if ds := waitSettled(t, st, e, 1); ds[0].Status != store.DeliverySucceeded {
					t.Errorf("delivery of %s: %+v", e, ds[0])
				}
			}
			if n := len(rc.on("/inbox/" + c.hook)); n != 2 {
				t.Errorf("/inbox/%s received %d requests, want 2: a replay was delivered", c.hook, n)
			}
			evs, _, err := st.(store.Admin).ListEvents(context.Background(), store.EventFilter{Hook: c.hook, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 2 {
				t.Errorf("hook %s has %d events stored, want 2: a replay was stored", c.hook, len(evs))
			}
		})
	}
}
