package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// hostileEnv are values an operator's environment could hold (by mistake
// or by someone else's hand) that would rewrite an expression if pasted
// into its source.
var hostileEnv = []string{
	`plain`,
	``,
	`"`,
	`x" || true || "`,
	`x' || true || '`,
	"x` || true || `",
	`\`,
	`\" || true || \"`,
	`}} {{ headers.authorization }}`,
	`{{ body.secret }}`,
	`{`,
	`}`,
	"line\nbreak\" || true || \"",
	"cr\r\x00\x1b[2J\x7f",
	`${OTHER}`,
	`$${OTHER}`,
	`*/ true || /*`,
	`// comment`,
	`"+body.secret+"`,
	"bidi\u202eevil",
}

func envWith(v string) func(string) (string, bool) {
	return env(map[string]string{"ORG": v, "OTHER": "other-value"})
}

func run(t *testing.T, src string, body map[string]any, cond bool) any {
	t.Helper()
	compile := rules.CompileValue
	if cond {
		compile = rules.CompileCondition
	}
	p, err := compile(src)
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	out, err := p.Run(rules.NewEnv(store.Event{Headers: map[string]string{"authorization": "Bearer secret-token"}}, body))
	if err != nil {
		t.Fatalf("run %q: %v", src, err)
	}
	return out
}

// TestEnvInExpressionIsAString: wherever a ${VAR} stands in an expression,
// its value is the content of one string literal and nothing else.
func TestEnvInExpressionIsAString(t *testing.T) {
	for _, v := range hostileEnv {
		for _, src := range []string{
			`body.org == "${ORG}"`,
			`body.org == '${ORG}'`,
			"body.org == `${ORG}`",
			`body.org == ${ORG}`,
			`body.org == "" + ${ORG} + ""`,
			`(body.org == "${ORG}") && true`,
		} {
			got, err := exprSource(src, envWith(v))
			if err != nil {
				t.Errorf("exprSource(%q) with ORG=%q: %v", src, v, err)
				continue
			}
			if run(t, got, map[string]any{"org": v, "secret": "s"}, true) != true {
				t.Errorf("%q with ORG=%q → %q does not match the value itself", src, v, got)
			}
			if run(t, got, map[string]any{"org": "someone else", "secret": "s"}, true) != false {
				t.Errorf("%q with ORG=%q → %q matches another value", src, v, got)
			}
		}
		// Inside a string with text around it.
		got, err := exprSource(`"<${ORG}>"`, envWith(v))
		if err != nil {
			t.Errorf("exprSource in a string with ORG=%q: %v", v, err)
		} else if out := run(t, got, nil, false); out != "<"+v+">" {
			t.Errorf("ORG=%q in a string gives %q", v, out)
		}
		// In a comment, a value may be refused, never obeyed.
		for _, src := range []string{`/* ${ORG} */ body.org == "x"`, "body.org == \"x\" // ${ORG}"} {
			got, err := exprSource(src, envWith(v))
			if err != nil {
				continue
			}
			if run(t, got, map[string]any{"org": "y"}, true) != false || run(t, got, map[string]any{"org": "x"}, true) != true {
				t.Errorf("%q with ORG=%q → %q changed meaning", src, v, got)
			}
		}
	}
	if _, err := exprSource(`body.org == "${ORG}"`, envWith("bad\xff")); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("invalid UTF-8: %v", err)
	}
	if got, err := exprSource(`"$${ORG}"`, envWith("x")); err != nil || got != `"${ORG}"` {
		t.Errorf("$${ORG} = %q, %v; want the literal text", got, err)
	}
}

// TestEnvInTemplateIsText: in a template, a value is literal text outside
// {{ }} and a string literal inside; it can never open or close one.
func TestEnvInTemplateIsText(t *testing.T) {
	body := map[string]any{"id": "42", "secret": "s"}
	for _, v := range hostileEnv {
		cases := []struct{ src, want string }{
			{`${ORG}/contacts/{{ body.id }}`, v + "/contacts/42"},
			{`{{ body.id }}-${ORG}`, "42-" + v},
			{`{{ "${ORG}" + body.id }}`, v + "42"},
			{`{{ ${ORG} }}`, v},
			{`pre{{ body.id }}${ORG}{{ body.id }}post`, "pre42" + v + "42post"},
		}
		for _, c := range cases {
			got, err := templateSource(c.src, envWith(v))
			if err != nil {
				// Only a value that would make a {{ or }} in literal text may be refused.
				if !strings.Contains(v, "{") && !strings.Contains(v, "}") {
					t.Errorf("templateSource(%q) with ORG=%q: %v", c.src, v, err)
				}
				continue
			}
			tpl, err := rules.CompileTemplate(got, nil)
			if err != nil {
				t.Errorf("%q with ORG=%q → %q does not compile: %v", c.src, v, got, err)
				continue
			}
			out, err := tpl.RenderString(rules.NewEnv(store.Event{}, body))
			if err != nil || out != c.want {
				t.Errorf("%q with ORG=%q renders %q, %v; want %q", c.src, v, out, err, c.want)
			}
		}
	}
	for _, v := range []string{"{{ body.secret }}", "}} {{ body.secret", "{", "a{{b"} {
		if got, err := templateSource("${ORG}{{ body.id }}", envWith(v)); err == nil {
			tpl, err := rules.CompileTemplate(got, nil)
			if err == nil {
				out, _ := tpl.RenderString(rules.NewEnv(store.Event{}, body))
				if out != v+"42" {
					t.Errorf("ORG=%q before an interpolation renders %q", v, out)
				}
			}
		}
	}
}

// TestEnvInLoadedConfig loads a config whose rule, idempotency key, response,
// action URL, header and body take hostile values from the environment.
func TestEnvInLoadedConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("hookrelay.yaml", `hooks:
  shop:
    verify: {scheme: none}
    token: abcdefghijklmnopqrstuvwxyz
    idempotency:
      key: body.id + "-${ORG}"
    rules: [rules.yaml]
actions:
  notify:
    url: https://example.com/${ORG_PATH}/{{ body.id }}
    headers:
      X-Org: "{{ body.id }} ${ORG}"
    body:
      org: ${ORG}
      both: "{{ body.id + \"${ORG}\" }}"
`)
	write("rules.yaml", `rules:
  - name: org
    when: body.org == "${ORG}"
    actions: [notify]
  - name: unquoted
    when: body.org == ${ORG}
    actions: [notify]
`)
	const org = `x" || true || "`
	cfg, err := Load(filepath.Join(dir, "hookrelay.yaml"), env(map[string]string{"ORG": org, "ORG_PATH": "p"}))
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Hooks["shop"]
	for _, c := range []struct {
		org     string
		matches int
	}{{"y", 0}, {org, 2}} {
		ev := rules.NewEnv(store.Event{}, map[string]any{"org": c.org, "id": "7"})
		matched, _, errs := h.Rules.Evaluate(ev)
		if len(matched) != c.matches || len(errs) > 0 {
			t.Errorf("body.org %q: rules %v matched %v, want %d", c.org, matched, errs, c.matches)
		}
		if k, err := h.IdempotencyKey(nil, ev, nil); err != nil || k != "7-"+org {
			t.Errorf("key = %q, %v", k, err)
		}
	}
	req, err := cfg.Actions["notify"].Render(rules.NewEnv(store.Event{}, map[string]any{"id": "7"}))
	if err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("X-Org") != "7 "+org || !strings.Contains(string(req.Body), `"both":"7x\" || true || \""`) || !strings.Contains(string(req.Body), `"org":"x\" || true || \""`) {
		t.Errorf("rendered %v %s", req.Header, req.Body)
	}

	// A value that would open an interpolation in a URL is refused at load.
	_, err = Load(filepath.Join(dir, "hookrelay.yaml"), env(map[string]string{"ORG": "o", "ORG_PATH": "{{ headers.authorization }}"}))
	if err == nil || !strings.Contains(err.Error(), `hookrelay.yaml:10:10: action "notify": url: `) || !strings.Contains(err.Error(), "{{ }}") {
		t.Errorf("ORG_PATH opening an interpolation: %v", err)
	}
}
