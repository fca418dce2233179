package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

const whatifCurrent = `
hooks:
  shop:
    verify: {scheme: hmac, header: X-Sig, secrets: ["${SHOP_SECRET}"]}
    rules: [rules.yaml]
actions:
  notify:
    url: https://crm.example/v1/{{ body.id }}
    headers:
      Authorization: "Bearer ${CRM_TOKEN}"
`

const whatifRules = `
rules:
  - name: all
    when: "true"
    actions: [notify]
`

// TestWhatifCandidateCannotReadSecretsOut: a key with the write scope
// sends a candidate whose templates turn the server's secrets into text
// no mask finds. It is refused before anything is evaluated, and the
// answer holds none of them.
func TestWhatifCandidateCannotReadSecretsOut(t *testing.T) {
	serverEnv := map[string]string{"SHOP_SECRET": "shopSecretValue42", "CRM_TOKEN": "crmTokenValue77"}
	lookup := func(name string) (string, bool) { v, ok := serverEnv[name]; return v, ok }
	dir := t.TempDir()
	for name, text := range map[string]string{"hookrelay.yaml": whatifCurrent, "rules.yaml": whatifRules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	current, err := config.Load(filepath.Join(dir, "hookrelay.yaml"), lookup)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "admin.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api := New(Options{Store: st, Config: func() *config.Config { return current }, Ingress: http.NotFoundHandler(), LookupEnv: lookup})
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	k, secret, err := NewKey("deploy", []string{ScopeWrite}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	post := func(candidate string) (int, string) {
		body, _ := json.Marshal(map[string]any{
			"path":  "c/hookrelay.yaml",
			"files": map[string]string{"c/hookrelay.yaml": candidate, "c/rules.yaml": whatifRules},
			"from":  time.Now().Add(-time.Hour).UTC(), "to": time.Now().UTC(),
		})
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/whatif", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}

	if status, out := post(whatifCurrent); status != http.StatusOK {
		t.Fatalf("the config in force as candidate: %d %s", status, out)
	}
	for _, header := range []string{
		`X-Up: "{{ upper('${CRM_TOKEN}') }}"`,
		`X-Rev: "{{ join(reverse(split('${SHOP_SECRET}', '')), '') }}"`,
		`X-Note: "{{ join(split('${CRM_TOKEN}', ''), ' ') }}"`,
	} {
		cand := strings.Replace(whatifCurrent, "      Authorization:", "      "+header+"\n      Authorization:", 1)
		status, out := post(cand)
		if status != http.StatusBadRequest || !strings.Contains(out, "config in force") {
			t.Errorf("%s: %d %s, want 400 naming the expression", header, status, out)
		}
		for _, v := range serverEnv {
			for _, form := range []string{v, strings.ToUpper(v), strings.Join(strings.Split(v, ""), " ")} {
				if strings.Contains(out, form) {
					t.Errorf("%s: the answer holds a secret: %s", header, out)
				}
			}
		}
	}
}
