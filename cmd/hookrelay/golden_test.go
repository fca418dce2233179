package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// The output of `test` and `validate` is part of the interface: these
// golden files pin it.
func TestGoldenOutput(t *testing.T) {
	demo := "../../testdata/demo/hookrelay.yaml"
	p := "../../testdata/demo/payloads/"
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"test-oncloudwine-signed", []string{"test", "--config", demo, "--hook", "oncloudwine", "--payload", p + "oncloudwine-contact-updated.json", "--sign"}, 0},
		{"test-oncloudwine-ping", []string{"test", "--config", demo, "--hook", "oncloudwine", "--payload", p + "oncloudwine-test-ping.json", "--sign"}, 0},
		{"test-ordercloud-unsigned", []string{"test", "--config", demo, "--hook", "ordercloud", "--payload", p + "ordercloud-buyer-user-created.json"}, 1},
		{"test-winesitting", []string{"test", "--config", demo, "--hook", "winesitting", "--payload", p + "winesitting-order-delivered.json"}, 0},
		{"test-bad-header", []string{"test", "--config", demo, "--hook", "oncloudwine", "--payload", p + "oncloudwine-test-ping.json", "--header", "no colon"}, 2},
		{"validate-demo", []string{"validate", "--config", demo}, 0},
		{"validate-demo-reads", []string{"validate", "--reads", "--config", demo}, 0},
		{"validate-bad", []string{"validate", "--config", "../../config/testdata/bad/rule-typo.yaml"}, 2},
		{"validate-max-body-overflow", []string{"validate", "--config", "../../config/testdata/bad/max-body-overflow.yaml"}, 2},
		{"sign-oncloudwine", []string{"sign", "--config", demo, "--hook", "oncloudwine", "--payload", p + "oncloudwine-contact-updated.json"}, 0},
		{"sign-winesitting-curl", []string{"sign", "--config", demo, "--hook", "winesitting", "--payload", p + "winesitting-order-delivered.json", "--curl", "http://127.0.0.1:8080"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := run(t, nil, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, c.code, stderr)
			}
			got := "$ hookrelay " + joinArgs(c.args) + "\n" + stdout
			if stderr != "" {
				got += "--- stderr\n" + stderr
			}
			file := filepath.Join("testdata/golden", c.name+".txt")
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/hookrelay -run TestGoldenOutput -update)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s\n--- got\n%s\n--- want\n%s", file, got, want)
			}
		})
	}
}

func joinArgs(args []string) string {
	s := ""
	for i, a := range args {
		if i > 0 {
			s += " "
		}
		s += shellQuote(a)
	}
	return s
}
