package config

import (
	"slices"
	"strings"
	"testing"
)

// candidateCurrent is the config in force: its expressions that read the
// environment are the only ones a candidate may have.
const candidateCurrent = `
hooks:
  shop:
    verify: {scheme: hmac, header: X-Sig, secrets: ["${SHOP_SECRET}"]}
    rules: [rules.yaml]
actions:
  notify:
    url: https://crm.example/v1/{{ body.id }}
    headers:
      Authorization: "Bearer ${CRM_TOKEN}"
      X-Partner: "{{ headers[\"x-partner\"] == \"${PARTNER}\" ? \"ours\" : \"theirs\" }}"
    body:
      id: "{{ body.id }}"
`

const candidateRules = `
rules:
  - name: partner
    when: headers["x-partner"] == "${PARTNER}"
    actions: [notify]
`

func loadCandidate(t *testing.T, cfg, rulesText string) (*Config, error) {
	t.Helper()
	lookup := env(map[string]string{"SHOP_SECRET": "shopSecretValue42", "CRM_TOKEN": "crmTokenValue77", "PARTNER": "partnerCodeZ9"})
	current, err := LoadFiles("c/hookrelay.yaml", map[string][]byte{
		"c/hookrelay.yaml": []byte(candidateCurrent), "c/rules.yaml": []byte(candidateRules)}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	return LoadCandidate("n/hookrelay.yaml", map[string][]byte{
		"n/hookrelay.yaml": []byte(cfg), "n/rules.yaml": []byte(rulesText)}, lookup, current)
}

// TestCandidateExpressionsReadTheEnvironmentOnlyAsInForce: a candidate
// resolved with the server's environment may have an expression that
// reads it only where the config in force has the same expression; as
// literal text, where a mask finds it, a value may go anywhere.
func TestCandidateExpressionsReadTheEnvironmentOnlyAsInForce(t *testing.T) {
	t.Run("the config in force itself", func(t *testing.T) {
		if _, err := loadCandidate(t, candidateCurrent, candidateRules); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a value as literal text anywhere", func(t *testing.T) {
		cfg := strings.Replace(candidateCurrent, "      id:", "      token: \"${CRM_TOKEN}\"\n      id:", 1)
		cfg = strings.Replace(cfg, "url: https://crm.example/v1/", "url: https://crm.example/${PARTNER}/v1/", 1)
		// Without the header, the partner code is in no field that holds
		// secrets.
		lines := strings.Split(cfg, "\n")
		cfg = strings.Join(slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, "X-Partner:") }), "\n")
		c, err := loadCandidate(t, cfg, candidateRules)
		if err != nil {
			t.Fatal(err)
		}
		// Resolved with the server's values, every one of which the
		// candidate masks, the partner code too, a secret of no field.
		if got := c.Redactor().String("crmTokenValue77 partnerCodeZ9"); strings.Contains(got, "Value77") || strings.Contains(got, "CodeZ9") {
			t.Errorf("masked %q: want both values masked", got)
		}
	})
	refused := []struct {
		name, cfg, rules, at, env string
	}{
		{"a header template", strings.Replace(candidateCurrent, "      X-Partner:", "      X-Up: \"{{ upper('${CRM_TOKEN}') }}\"\n      X-Partner:", 1), candidateRules,
			"n/hookrelay.yaml:11:", "${CRM_TOKEN}"},
		{"a body template", strings.Replace(candidateCurrent, "      id:", "      t: \"{{ join(split('${SHOP_SECRET}', ''), ' ') }}\"\n      id:", 1), candidateRules,
			"n/hookrelay.yaml:13:", "${SHOP_SECRET}"},
		{"a rule's condition, one letter at a time", candidateCurrent, strings.Replace(candidateRules, `headers["x-partner"] == "${PARTNER}"`, `'"${PARTNER}" startsWith "p"'`, 1),
			"n/rules.yaml:4:", "${PARTNER}"},
		{"an order_by", strings.Replace(candidateCurrent, "    body:", "    order_by: '\"${CRM_TOKEN}\"'\n    body:", 1), candidateRules,
			"n/hookrelay.yaml:12:", "${CRM_TOKEN}"},
		{"an idempotency key", strings.Replace(candidateCurrent, "    rules: [rules.yaml]", "    idempotency: {key: 'body.id + \"${SHOP_SECRET}\"'}\n    rules: [rules.yaml]", 1), candidateRules,
			"n/hookrelay.yaml:5:", "${SHOP_SECRET}"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadCandidate(t, tc.cfg, tc.rules)
			if err == nil {
				t.Fatal("loaded, want it refused")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.at) || !strings.Contains(msg, tc.env) || !strings.Contains(msg, "config in force") {
				t.Errorf("error %q: want it at %s naming %s", msg, tc.at, tc.env)
			}
			for _, v := range []string{"shopSecretValue42", "crmTokenValue77", "partnerCodeZ9"} {
				if strings.Contains(msg, v) {
					t.Errorf("error %q holds a value", msg)
				}
			}
		})
	}
	t.Run("Load is not limited", func(t *testing.T) {
		c, err := LoadFiles("n/hookrelay.yaml", map[string][]byte{
			"n/hookrelay.yaml": []byte(refused[0].cfg), "n/rules.yaml": []byte(candidateRules)},
			env(map[string]string{"SHOP_SECRET": "s", "CRM_TOKEN": "t", "PARTNER": "p"}))
		if err != nil || c == nil {
			t.Fatal(err)
		}
	})
}
