package redact

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPayloadByName(t *testing.T) {
	body := `{"UserToken":"opaque-value-1","id":12345678901234567890,"nested":[{"password":"p","name":"n"}],"Request":{"Headers":{"X-Api-Key":"k"}}}`
	want := `{"Request":{"Headers":{"X-Api-Key":"[redacted]"}},"UserToken":"[redacted]","id":12345678901234567890,"nested":[{"name":"n","password":"[redacted]"}]}`
	for _, prefix := range []string{"", "\xef\xbb\xbf"} {
		got, err := json.Marshal((*Redactor)(nil).Payload([]byte(prefix+body), "application/json"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("payload view (prefix %q)\n got %s\nwant %s", prefix, got, want)
		}
	}
}

func TestPayloadForm(t *testing.T) {
	r := New([]string{"known-secret-9"}, nil)
	for _, ct := range []string{"application/x-www-form-urlencoded", "text/plain", ""} {
		got := r.Payload([]byte("a=1&b=2&user%5Bpassword%5D=hunter22&note=x+known-secret-9+y&memo=Bearer+abcdefgh"), ct)
		want := "a=1&b=2&user%5Bpassword%5D=[redacted]&note=x+[redacted]+y&memo=Bearer+[redacted]"
		if got != want {
			t.Errorf("form (%q)\n got %v\nwant %v", ct, got, want)
		}
	}
}

func TestStringPatterns(t *testing.T) {
	r := New([]string{"s3cret-value", "user:pa55word"}, []string{"X-My-Mac"})
	for in, want := range map[string]string{
		"plain text stays":                                  "plain text stays",
		"token endpoint: connection refused":                "token endpoint: connection refused",
		"Basic authentication required":                     "Basic authentication required",
		`WWW-Authenticate: Bearer realm="x"`:                `WWW-Authenticate: Bearer realm="x"`,
		"got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig here": "got [redacted] here",
		"Authorization: Bearer abc.def-ghi":                 "Authorization: [redacted]",
		"Authorization: Basic dXNlcjpwYTU1d29yZA==":         "Authorization: [redacted]",
		"sent Basic dXNlcjpwYTU1d29yZA== once":              "sent Basic [redacted] once",
		"sent Bearer abc.def-ghi once":                      "sent Bearer [redacted] once",
		"key s3cret-value, escaped s3cret%2Dvalue":          "key [redacted], escaped s3cret%2Dvalue",
		"b64 czNjcmV0LXZhbHVl":                              "b64 [redacted]",
		`{"access_token": "zzzzzz", "x": 1}`:                `{"access_token": "[redacted]", "x": 1}`,
		`{\"password\":\"zzzzzz\"}`:                         `{\"password\":\"[redacted]\"}`,
		"<Password>zzzzzz</Password>":                       "<Password>[redacted]</Password>",
		"GET /hooks/catch/ws/0123456789abcdefXYZ?x=1":       "GET /hooks/catch/ws/0123…?x=1",
	} {
		if got := r.String(in); got != want {
			t.Errorf("String(%q)\n got %q\nwant %q", in, got, want)
		}
	}
	if !r.Name("x-my-mac") || (*Redactor)(nil).Name("x-my-mac") {
		t.Error("a name the config marks is sensitive only with its Redactor")
	}
	if d := cmp.Diff(map[string]string{"X-My-Mac": Mask, "Accept": "*/*"}, r.Map(map[string]string{"X-My-Mac": "ab", "Accept": "*/*"})); d != "" {
		t.Errorf("Map (-want +got)\n%s", d)
	}
}

func TestStringFreeTextPairs(t *testing.T) {
	for in, want := range map[string]string{
		`password="hunter2" next`:                   `password="[redacted]" next`,
		"password= hunter2":                         "password= [redacted]",
		"x_token=&abcdef rest":                      "x_token=[redacted] rest",
		"api_key='k-123456', other":                 "api_key='[redacted]', other",
		"X-Api-Key: k-123456\nAccept: */*":          "X-Api-Key: [redacted]\nAccept: */*",
		"Authorization: Basic dXNlcjpwYXNzd29yZA==": "Authorization: [redacted]",
		"auth:\n  password: hunter22\n  user: ops":  "auth:\n  password: [redacted]\n  user: ops",
		">  7 |     secret: literal-secret":         ">  7 |     secret: [redacted]",
		"oauth2 token: connection refused":          "oauth2 token: connection refused",
		"token endpoint: status 401":                "token endpoint: status 401",
	} {
		if got := (*Redactor)(nil).String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}
