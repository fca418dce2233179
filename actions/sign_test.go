package actions

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// Secrets of the signing tests: two Standard Webhooks keys of 32 bytes.
var (
	whsecNew = "whsec_" + base64.StdEncoding.EncodeToString([]byte("new-signing-key-32-bytes-long!!!"))
	whsecOld = "whsec_" + base64.StdEncoding.EncodeToString([]byte("old-signing-key-32-bytes-long!!!"))
)

func TestSignStandardWebhooksVerifiesWithEachSecret(t *testing.T) {
	rc := newReceiver(t, nil)
	a := mustCompile(t, Spec{URL: rc.URL + "/in", Body: map[string]any{"id": "{{ body.id }}"},
		Sign: &SignSpec{Scheme: SignStandardWebhooks, Secrets: []string{whsecNew, whsecOld}}})
	now := time.Now()
	c := NewClient(ClientOptions{Now: func() time.Time { return now }})
	res := c.Do(context.Background(), a, env(t, `{"id":"o-1"}`), "dlv_0001")
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	h := rc.only(t)
	if got := h.Header.Get("webhook-id"); got != "dlv_0001" {
		t.Errorf("webhook-id = %q, want the delivery id", got)
	}
	if got := h.Header.Get("webhook-timestamp"); got != strconv.FormatInt(now.Unix(), 10) {
		t.Errorf("webhook-timestamp = %q, want %d", got, now.Unix())
	}
	sigs := strings.Split(h.Header.Get("webhook-signature"), " ")
	if len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || !strings.HasPrefix(sigs[1], "v1,") {
		t.Fatalf("webhook-signature = %q, want two space-separated v1 signatures", h.Header.Get("webhook-signature"))
	}
	for _, secret := range []string{whsecNew, whsecOld} {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify([]byte(h.Body), h.Header); err != nil {
			t.Errorf("the receiver holding one of the secrets cannot verify: %v", err)
		}
	}
	other, _ := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString([]byte("some-other-key-32-bytes-long!!!!")))
	if other.Verify([]byte(h.Body), h.Header) == nil {
		t.Error("a receiver with another secret verified the request")
	}
	// The record shows the id and time, never the MACs.
	if got := res.RequestHeaders["Webhook-Signature"]; got != "[redacted]" {
		t.Errorf("recorded Webhook-Signature = %q", got)
	}
	if res.RequestHeaders["Webhook-Id"] != "dlv_0001" {
		t.Errorf("recorded headers = %v", res.RequestHeaders)
	}
}

// Each attempt is signed at its own time, with the same id; the body
// signed is the body sent, byte for byte.
func TestSignEachAttempt(t *testing.T) {
	rc := newReceiver(t, nil)
	raw := []byte("{\"b\": 1,  \"a\": \"x\"}\n")
	a := mustCompile(t, Spec{URL: rc.URL + "/in", BodyRaw: true,
		Sign: &SignSpec{Scheme: SignStandardWebhooks, Secrets: []string{whsecNew}}})
	ev := rules.NewEnv(store.Event{ID: "evt_1", Hook: "h", Headers: map[string]string{"content-type": "application/json"}, Body: raw}, nil)
	now := time.Unix(1_700_000_000, 0)
	c := NewClient(ClientOptions{Now: func() time.Time { return now }})
	for i := range 2 {
		now = now.Add(time.Duration(i) * time.Minute)
		if res := c.Do(context.Background(), a, ev, "dlv_same"); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	hits := rc.Hits()
	if len(hits) != 2 {
		t.Fatalf("%d requests", len(hits))
	}
	wh, _ := standardwebhooks.NewWebhookRaw([]byte("new-signing-key-32-bytes-long!!!"))
	for _, h := range hits {
		if h.Body != string(raw) {
			t.Errorf("body sent %q, want the raw body", h.Body)
		}
		if h.Header.Get("webhook-id") != "dlv_same" {
			t.Errorf("webhook-id = %q", h.Header.Get("webhook-id"))
		}
		if err := wh.VerifyIgnoringTimestamp([]byte(h.Body), h.Header); err != nil {
			t.Errorf("verify: %v", err)
		}
	}
	if hits[0].Header.Get("webhook-timestamp") == hits[1].Header.Get("webhook-timestamp") {
		t.Error("both attempts carry the same timestamp")
	}
	if hits[0].Header.Get("webhook-signature") == hits[1].Header.Get("webhook-signature") {
		t.Error("both attempts carry the same signature")
	}
}

func TestSignHMAC(t *testing.T) {
	tests := []struct {
		alg, enc, prefix string
		hash             func() hash.Hash
	}{
		{"sha256", "hex", "sha256=", sha256.New},
		{"", "", "", sha256.New}, // the defaults: sha256, hex
		{"sha256", "base64", "", sha256.New},
		{"sha1", "hex", "sha1=", sha1.New},
		{"sha512", "base64", "v1=", sha512.New},
	}
	for _, tt := range tests {
		t.Run(tt.alg+"-"+tt.enc+"-"+tt.prefix, func(t *testing.T) {
			rc := newReceiver(t, nil)
			secrets := []string{"hmac-secret-new-1", "hmac-secret-old-2"}
			a := mustCompile(t, Spec{URL: rc.URL + "/in", Body: map[string]any{"id": "{{ body.id }}", "n": 1},
				Sign: &SignSpec{Scheme: SignHMAC, Header: "x-signature", Algorithm: tt.alg, Encoding: tt.enc, Prefix: tt.prefix, Secrets: secrets}})
			res := newTestClient().Do(context.Background(), a, env(t, `{"id":"o-2"}`), "dlv_2")
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			h := rc.only(t)
			parts := strings.Split(h.Header.Get("X-Signature"), ", ")
			if len(parts) != 2 {
				t.Fatalf("X-Signature = %q, want one MAC per secret", h.Header.Get("X-Signature"))
			}
			for i, secret := range secrets {
				m := hmac.New(tt.hash, []byte(secret))
				m.Write([]byte(h.Body))
				want := hex.EncodeToString(m.Sum(nil))
				if tt.enc == "base64" {
					want = base64.StdEncoding.EncodeToString(m.Sum(nil))
				}
				if parts[i] != tt.prefix+want {
					t.Errorf("MAC %d = %q, want %q", i+1, parts[i], tt.prefix+want)
				}
			}
			if got := res.RequestHeaders["X-Signature"]; got != "[redacted]" {
				t.Errorf("recorded X-Signature = %q", got)
			}
		})
	}
}

// A MAC in a header whose name says nothing is still kept out of the
// record, and so is a secret the receiver echoes back.
func TestSignKeepsMACsAndSecretsOutOfTheRecord(t *testing.T) {
	rc := newReceiver(t, echo(500))
	const secret = "plain-hmac-secret-77"
	a := mustCompile(t, Spec{URL: rc.URL + "/in", Body: map[string]any{"s": secret},
		Sign: &SignSpec{Scheme: SignHMAC, Header: "X-Mac", Secrets: []string{secret}}})
	res := newTestClient().Do(context.Background(), a, env(t, `{}`), "dlv_3")
	mac := rc.only(t).Header.Get("X-Mac")
	if mac == "" {
		t.Fatal("no X-Mac sent")
	}
	shown := res.URL + res.ResponseBody + res.Err.Error()
	for _, v := range res.RequestHeaders {
		shown += v
	}
	for _, s := range []string{secret, mac} {
		if strings.Contains(shown, s) {
			t.Errorf("the result shows %q: %s %v", s, res.ResponseBody, res.RequestHeaders)
		}
	}
	if !strings.Contains(res.ResponseBody, "X-Mac: [redacted]") {
		t.Errorf("the echoed MAC was not masked: %s", res.ResponseBody)
	}
}

func TestSignSpecRefused(t *testing.T) {
	tests := []struct {
		name  string
		spec  SignSpec
		field string
		want  string
	}{
		{"no scheme", SignSpec{Secrets: []string{"x"}}, "sign.scheme", "is required"},
		{"unknown scheme", SignSpec{Scheme: "pgp", Secrets: []string{"x"}}, "sign.scheme", `unknown scheme "pgp"`},
		{"no secret", SignSpec{Scheme: SignStandardWebhooks}, "sign.secrets", "a secret is required"},
		{"empty secret", SignSpec{Scheme: SignHMAC, Header: "X-Sig", Secrets: []string{"abc", ""}}, "sign.secrets.1", "empty"},
		{"hmac without header", SignSpec{Scheme: SignHMAC, Secrets: []string{"abc"}}, "sign.header", "is required"},
		{"hmac bad header", SignSpec{Scheme: SignHMAC, Header: "X Sig", Secrets: []string{"abc"}}, "sign.header", "not a valid header name"},
		{"hmac host", SignSpec{Scheme: SignHMAC, Header: "host", Secrets: []string{"abc"}}, "sign.header", "cannot carry"},
		{"hmac algorithm", SignSpec{Scheme: SignHMAC, Header: "X-Sig", Algorithm: "md5", Secrets: []string{"abc"}}, "sign.algorithm", "unknown algorithm"},
		{"hmac encoding", SignSpec{Scheme: SignHMAC, Header: "X-Sig", Encoding: "base32", Secrets: []string{"abc"}}, "sign.encoding", "unknown encoding"},
		{"hmac prefix", SignSpec{Scheme: SignHMAC, Header: "X-Sig", Prefix: "a\nb", Secrets: []string{"abc"}}, "sign.prefix", "control"},
		{"whsec header", SignSpec{Scheme: SignStandardWebhooks, Header: "X-Sig", Secrets: []string{whsecNew}}, "sign.header", "only to scheme hmac"},
		{"whsec without prefix", SignSpec{Scheme: SignStandardWebhooks, Secrets: []string{strings.TrimPrefix(whsecNew, "whsec_")}}, "sign.secrets.0", "want whsec_"},
		{"whsec not base64", SignSpec{Scheme: SignStandardWebhooks, Secrets: []string{whsecNew, "whsec_***"}}, "sign.secrets.1", "base64"},
		{"whsec short", SignSpec{Scheme: SignStandardWebhooks, Secrets: []string{"whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))}}, "sign.secrets.0", "5 bytes"},
		{"whsec long", SignSpec{Scheme: SignStandardWebhooks, Secrets: []string{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65))}}, "sign.secrets.0", "65 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile("a", Spec{URL: "https://example.com/x", Sign: &tt.spec})
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compile = %v, want a %s error saying %q", err, tt.field, tt.want)
			}
			for _, s := range tt.spec.Secrets {
				if len(s) > 3 && strings.Contains(err.Error(), s) {
					t.Errorf("the error quotes the secret: %v", err)
				}
			}
		})
	}
}

func TestSignedHeaderCannotBeTemplated(t *testing.T) {
	_, err := Compile("a", Spec{URL: "https://example.com/x", Headers: map[string]string{"x-signature": "v"},
		Sign: &SignSpec{Scheme: SignHMAC, Header: "X-Signature", Secrets: []string{"abc"}}})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "headers.x-signature" {
		t.Fatalf("Compile = %v, want a headers.x-signature error", err)
	}
}

func TestForwardHeaders(t *testing.T) {
	rc := newReceiver(t, nil)
	a := mustCompile(t, Spec{URL: rc.URL + "/in", BodyRaw: true,
		ForwardHeaders: []string{"X-GitHub-Event", "x-github-delivery", "X-Absent", "X-Overridden"},
		Headers:        map[string]string{"X-Overridden": "from the template"}})
	ev := rules.NewEnv(store.Event{ID: "evt_1", Hook: "h", Body: []byte(`{}`), Headers: map[string]string{
		"content-type": "application/json", "x-github-event": "push", "x-github-delivery": "d-1",
		"x-hub-signature-256": "sha256=abc", "x-custom": "not named", "x-overridden": "inbound",
	}}, nil)
	if res := newTestClient().Do(context.Background(), a, ev, "dlv_4"); res.Err != nil {
		t.Fatal(res.Err)
	}
	h := rc.only(t).Header
	if h.Get("X-Github-Event") != "push" || h.Get("X-Github-Delivery") != "d-1" {
		t.Errorf("forwarded headers missing: %v", h)
	}
	if h.Get("X-Overridden") != "from the template" {
		t.Errorf("X-Overridden = %q, want the template's value", h.Get("X-Overridden"))
	}
	for _, absent := range []string{"X-Absent", "X-Hub-Signature-256", "X-Custom"} {
		if _, ok := h[absent]; ok {
			t.Errorf("%s was sent: %v", absent, h)
		}
	}
}

func TestForwardHeadersRefused(t *testing.T) {
	for _, name := range []string{"Authorization", "cookie", "Set-Cookie", "Proxy-Authorization", "X-Hub-Signature-256",
		"Stripe-Signature", "webhook-signature", "X-OC-Hash", "X-OnCloudWine-Signature", "X-Shopify-Hmac-Sha256",
		"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Host",
		"Content-Length", "Idempotency-Key", "bad name"} {
		_, err := Compile("a", Spec{URL: "https://example.com/x", ForwardHeaders: []string{"X-Fine", name}})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "forward_headers.1" {
			t.Errorf("forwarding %s: Compile = %v, want a forward_headers.1 error", name, err)
		}
	}
	_, err := Compile("a", Spec{URL: "https://example.com/x", ForwardHeaders: []string{"Webhook-Timestamp"},
		Sign: &SignSpec{Scheme: SignStandardWebhooks, Secrets: []string{whsecNew}}})
	if err == nil || !strings.Contains(err.Error(), "set by sign") {
		t.Errorf("forwarding a header sign: sets: %v", err)
	}
}

// Render shows forwarded headers but no signature: that is made at send
// time. Signing says how, without a secret.
func TestRenderAndSigningDescription(t *testing.T) {
	a := mustCompile(t, Spec{URL: "https://example.com/x", ForwardHeaders: []string{"X-Request-Id"},
		Sign: &SignSpec{Scheme: SignHMAC, Header: "X-Sig", Prefix: "sha256=", Secrets: []string{"hmac-secret-abc"}}})
	req, err := a.Render(env(t, `{}`))
	if err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("X-Request-Id") != "rq-7" || req.Header.Get("X-Sig") != "" {
		t.Errorf("rendered headers = %v", req.Header)
	}
	if got, want := a.Signing(), `hmac sha256 hex with prefix "sha256=" in X-Sig, 1 secret`; got != want {
		t.Errorf("Signing = %q, want %q", got, want)
	}
	if got := a.SignedHeaders(); len(got) != 1 || got[0] != "X-Sig" {
		t.Errorf("SignedHeaders = %v", got)
	}
	b := mustCompile(t, Spec{URL: "https://example.com/x", Sign: &SignSpec{Scheme: SignStandardWebhooks, Secrets: []string{whsecNew, whsecOld}}})
	if got := b.Signing(); got != "standard-webhooks, 2 secrets" {
		t.Errorf("Signing = %q", got)
	}
	if got := mustCompile(t, Spec{URL: "https://example.com/x"}).Signing(); got != "" {
		t.Errorf("an unsigned action's Signing = %q", got)
	}
}
