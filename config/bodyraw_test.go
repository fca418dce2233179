package config

import (
	"strings"
	"testing"
)

func TestLoadBodyRaw(t *testing.T) {
	const hooks = "hooks:\n  shop:\n    verify: {scheme: github, secret: s3cret}\n"
	cfg, err := Load(writeConfig(t, "actions:\n  forward:\n    url: https://api.example.com/inbox\n    body_raw: true\n  plain:\n    url: https://api.example.com/x\n    body_raw: false\n"+hooks), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Actions["forward"].BodyRaw() || cfg.Actions["plain"].BodyRaw() {
		t.Errorf("body_raw: forward %t, plain %t", cfg.Actions["forward"].BodyRaw(), cfg.Actions["plain"].BodyRaw())
	}

	for _, tt := range []struct{ name, text, want string }{
		{"not a boolean", "actions:\n  forward:\n    url: https://api.example.com/inbox\n    body_raw: yes please\n",
			`:4:15: action "forward": body_raw: want true or false, got "yes please"`},
		{"with a body", "actions:\n  forward:\n    url: https://api.example.com/inbox\n    body: {a: 1}\n    body_raw: true\n",
			`:5:15: action "forward": body_raw: body_raw sends the event's body as it is, so body cannot be set too`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.text+hooks)
			_, err := Load(path, env(nil))
			if err == nil || !strings.HasPrefix(err.Error(), path+tt.want) {
				t.Errorf("error\n got: %v\nwant: %s%s", err, path, tt.want)
			}
		})
	}
}
