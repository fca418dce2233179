package redact

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRedact(t *testing.T) {
	h := http.Header{}
	for _, k := range []string{"Authorization", "Proxy-Authorization", "Cookie", "X-Auth-Token", "X-Hub-Signature-256", "X-Api-Key", "Stripe-Secret", "X-Password", "x-client-credential"} {
		h.Set(k, "s3cret-value")
	}
	h.Add("Accept", "a")
	h.Add("Accept", "b")
	h.Set("Idempotency-Key", "dlv_1")
	h.Set("Content-Type", "application/json")
	want := map[string]string{
		"Authorization": "[redacted]", "Proxy-Authorization": "[redacted]", "Cookie": "[redacted]",
		"X-Auth-Token": "[redacted]", "X-Hub-Signature-256": "[redacted]", "X-Api-Key": "[redacted]",
		"Stripe-Secret": "[redacted]", "X-Password": "[redacted]", "X-Client-Credential": "[redacted]",
		"Accept": "a, b", "Idempotency-Key": "dlv_1", "Content-Type": "application/json",
	}
	if diff := cmp.Diff(want, Header(h)); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestSensitive(t *testing.T) {
	for name, want := range map[string]bool{
		"Authorization": true, "cookie": true, "Set-Cookie": true, "UserToken": true, "client_secret": true,
		"X-Hub-Signature-256": true, "X-API-Key": true, "apiKey": true, "password": true,
		"X-oc-hash": true, "X-Shopify-Hmac-Sha256": true, "X-Hub-Signature": true, "Stripe-Signature": true,
		"pwd": true, "user_pwd": true, "Passphrase": true, "id_jwt": true, "AWS_ACCESS_KEY": true, "key": true, "sig": true,
		"X-Slack-Signature": true, "webhook-signature": true, "svix-signature": true, "X-OnCloudWine-Signature": true,
		"Idempotency-Key": false, "Content-Type": false, "email": false, "LastName": false, "id": false,
	} {
		if got := Sensitive(name); got != want {
			t.Errorf("Sensitive(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://a.example/x", "https://a.example/x"},
		{"https://a.example/x?id=1&access_token=abc&api_key=k#f", "https://a.example/x?id=1&access_token=[redacted]&api_key=[redacted]#f"},
		{"https://a.example/x?token", "https://a.example/x?token=[redacted]"},
	}
	for _, tt := range tests {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReadsCredential(t *testing.T) {
	r := New(nil, []string{"X-My-Mac"})
	for src, want := range map[string]bool{
		`body.LogID`:                           false,
		`body.id + ":" + body.UserToken`:       true,
		`headers["x-api-key"]`:                 true,
		`headers["x-my-mac"]`:                  true,
		`headers["x-github-delivery"]`:         false,
		`body.event + ":" + string(body.date)`: false,
	} {
		if got := r.ReadsCredential(src); got != want {
			t.Errorf("ReadsCredential(%q) = %v, want %v", src, got, want)
		}
	}
}

func TestRead(t *testing.T) {
	r := New([]string{"known-secret-value-42"}, nil)
	for _, c := range []struct{ src, text, want string }{
		{"body.UserToken", `"eyJhbGciOi.x.y"`, Mask},
		{`headers["x-api-key"]`, `== "k-123"`, Mask},
		{"body.data.status", `"CANCELLED"`, `"CANCELLED"`},
		{"body.note", `"has known-secret-value-42 inside"`, `"has ` + Mask + ` inside"`},
		{"body.UserToken", "", ""},
	} {
		if got := r.Read(c.src, c.text); got != c.want {
			t.Errorf("Read(%q, %q) = %q, want %q", c.src, c.text, got, c.want)
		}
	}
}
