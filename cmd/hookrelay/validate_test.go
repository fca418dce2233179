package main

import (
	"strings"
	"testing"
)

// TestValidateReads: validate --reads names, per hook, the payload's
// members its expressions read at intake (its rules and the order_by of
// the actions they name), the whole payload when an expression reaches
// body other than by constant names, and nothing when none reads it.
func TestValidateReads(t *testing.T) {
	const action = `
  ordered:
    url: http://127.0.0.1:9/orders
    order_by: body.object.id
  plain:
    url: http://127.0.0.1:9/plain
`
	cases := []struct {
		rules string
		want  string
	}{
		{`
  - name: typed
    when: body.type == "order.paid" && body.object.status != "void"
    actions: [ordered]
`, "in  body.object.id · body.object.status · body.type"},
		{`
  - name: sized
    when: len(body) > 0
    actions: [plain]
`, "in  the whole payload"},
		{`
  - name: all
    when: headers["x-kind"] == "a"
    actions: [plain]
`, "in  nothing"},
	}
	for _, c := range cases {
		cfg := relayConfig(t, c.rules, action)
		code, out, errOut := run(t, nil, "validate", "--reads", "--config", cfg)
		if code != 0 || !strings.Contains(out, "\n  "+c.want+"\n") {
			t.Errorf("rules %s: exit %d, stdout:\n%s\nstderr: %s\nwant the line %q", c.rules, code, out, errOut, c.want)
		}
	}
	code, out, _ := run(t, nil, "validate", "--config", relayConfig(t, cases[0].rules, action))
	if code != 0 || strings.Contains(out, "reads of a payload") || strings.Contains(out, "body.type") {
		t.Errorf("validate without --reads printed the reads:\n%s", out)
	}
}
