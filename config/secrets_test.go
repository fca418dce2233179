package config

import (
	"encoding/base64"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/redact"
)

// The config's Redactor knows every secret of every kind, in the forms it
// is written out in, and the header names that carry this config's
// credentials; it warns about secrets too short to mask by value.
func TestConfigRedactorKnowsEverySecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("rules.yaml", "rules:\n  - {name: all, when: 'true', actions: [a, o]}\n")
	write("hookrelay.yaml", `
hooks:
  mac:
    verify: {scheme: hmac, header: X-Custom-Mac, secret: "${MAC_SECRET}"}
    auth:
      basic: {username: relay, password: "${BASIC_PW}"}
    rules: [rules.yaml]
  std:
    verify: {scheme: standard-webhooks, secrets: ["${STD_SECRET}"]}
    token: ${URL_TOKEN}
    auth:
      header: {name: X-Relay-Key, value: "Bearer ${HDR_VALUE}"}
  short:
    verify: {scheme: github, secret: "${SHORT}"}
actions:
  a:
    url: https://api.example.com/x?access_token=${URL_QUERY}&id={{ body.id }}
    headers:
      X-Api-Key: ${ACTION_KEY}
      X-Literal-Token: literal-token-value-1
      X-Trace: "{{ body.id }}"
    query:
      signature: ${QUERY_SIG}
    auth:
      bearer: "${ACTION_BEARER}"
  signed:
    url: https://api.example.com/s
    sign: {scheme: standard-webhooks, secrets: ["${SIGN_NEW}", "${SIGN_OLD}"]}
  mac-signed:
    url: https://api.example.com/m
    sign: {scheme: hmac, header: X-Out-Mac, secret: "${SIGN_MAC}"}
  o:
    url: https://api.example.com/y
    auth:
      oauth2:
        token_url: https://auth.example.com/token
        client_id: hookrelay
        client_secret: ${OAUTH_SECRET}
        endpoint_params: {audience: "${AUDIENCE}", api_key: "${PARAM_KEY}"}
`)
	secrets := map[string]string{
		"MAC_SECRET": "mac-secret-value-01", "BASIC_PW": "basic-password-02", "STD_SECRET": "whsec_c3RkLWtleS1ieXRlcy0wMw==",
		"URL_TOKEN": "url-token-value-0004", "HDR_VALUE": "header-value-05",
		"URL_QUERY": "url-query-token-07", "ACTION_KEY": "action-key-08", "QUERY_SIG": "query-sig-09",
		"ACTION_BEARER": "action-bearer-10", "OAUTH_SECRET": "oauth-secret-11", "PARAM_KEY": "param-key-12",
		"SIGN_NEW": "whsec_c2lnbi1uZXcta2V5LWJ5dGVzLTEzLXh4eHg=", "SIGN_OLD": "whsec_c2lnbi1vbGQta2V5LWJ5dGVzLTE0LXh4eHg=",
		"SIGN_MAC": "sign-mac-secret-15",
	}
	vars := map[string]string{"SHORT": "abc", "AUDIENCE": "https://api.example.com"}
	for k, v := range secrets {
		vars[k] = v
	}
	cfg, err := Load(filepath.Join(dir, "hookrelay.yaml"), env(vars))
	if err != nil {
		t.Fatal(err)
	}
	red := cfg.Redactor()
	all := []string{"literal-token-value-1", "c3RkLWtleS1ieXRlcy0wMw==",
		"c2lnbi1uZXcta2V5LWJ5dGVzLTEzLXh4eHg=", "c2lnbi1vbGQta2V5LWJ5dGVzLTE0LXh4eHg=", base64.StdEncoding.EncodeToString([]byte("relay:basic-password-02"))}
	for _, v := range secrets {
		all = append(all, v, url.QueryEscape(v), base64.StdEncoding.EncodeToString([]byte(v)))
	}
	for _, v := range all {
		if got := red.String("x " + v + " y"); strings.Contains(got, v) {
			t.Errorf("the config's Redactor shows %q: %q", v, got)
		}
	}
	// The audience is not a secret: an endpoint parameter with a harmless name.
	if got := red.String("https://api.example.com"); got != "https://api.example.com" {
		t.Errorf("a value that is no secret was masked: %q", got)
	}
	for _, name := range []string{"X-Custom-Mac", "x-relay-key", "X-Out-Mac"} {
		if !red.Name(name) {
			t.Errorf("%s is not sensitive in this config", name)
		}
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], `hook "short" verify secret`) || !strings.Contains(cfg.Warnings[0], "shorter than") {
		t.Errorf("warnings = %q, want one about the short secret", cfg.Warnings)
	}
	if redact.MinSecretLen > 6 {
		t.Errorf("MinSecretLen %d would leave short real secrets unmasked", redact.MinSecretLen)
	}
}
