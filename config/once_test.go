package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// countingRead reads files as Load does and counts the reads of each.
type countingRead struct {
	mu    sync.Mutex
	reads map[string]int
}

func (c *countingRead) read(file string) ([]byte, error) {
	c.mu.Lock()
	c.reads[file]++
	c.mu.Unlock()
	return readFile(file)
}

// sharedRules writes a config of n hooks that all name rules.yaml, and
// each the auth: block that positions are looked up for.
func sharedRules(t *testing.T, n int, rulesYAML string) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("actions:\n  a:\n    url: https://example.com/a\nserver:\n  trusted_proxies: [10.0.0.0/8]\n  evaluation: {timeout: 100ms}\nhooks:\n")
	for i := range n {
		fmt.Fprintf(&b, "  h%02d:\n    verify: {scheme: none}\n    auth: {allow_ips: [10.0.0.0/8], basic: {username: u, password: p-%02d}}\n    rules: [rules.yaml]\n", i, i)
	}
	for name, text := range map[string]string{"c.yaml": b.String(), "rules.yaml": rulesYAML} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "c.yaml")
}

// One load reads and parses each file once, however many hooks name a
// rule file, and the hooks share its compiled rules.
func TestLoadReadsEachFileOnce(t *testing.T) {
	path := sharedRules(t, 50, "rules:\n  - name: all\n    when: body.kind == \"x\"\n    actions: [a]\n")
	c := &countingRead{reads: map[string]int{}}
	cfg, err := loadWith(path, env(nil), c.read, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Hooks) != 50 {
		t.Fatalf("%d hooks, want 50", len(cfg.Hooks))
	}
	rulesPath := filepath.Join(filepath.Dir(path), "rules.yaml")
	if len(c.reads) != 2 || c.reads[path] != 1 || c.reads[rulesPath] != 1 {
		t.Errorf("reads per file = %v, want the config and the rule file read once each", c.reads)
	}
	if len(cfg.Files) != 2 {
		t.Errorf("Files = %v, want each file once", cfg.Files)
	}
	first := cfg.Hooks["h00"].Rules.Rules[0].When
	for name, h := range cfg.Hooks {
		if len(h.Rules.Rules) != 1 || h.Rules.Rules[0].When != first {
			t.Errorf("hook %s: rules %+v, want the one rule compiled once and shared", name, h.Rules.Rules)
		}
	}
}

// A problem in a shared rule file is reported once, in the file; a rule
// file that cannot be read is reported where each hook names it.
func TestSharedRuleFileErrors(t *testing.T) {
	path := sharedRules(t, 3, "rules:\n  - name: all\n    when: body.kind ==\n    actions: [nope]\n")
	c := &countingRead{reads: map[string]int{}}
	_, err := loadWith(path, env(nil), c.read, nil)
	if err == nil {
		t.Fatal("loaded a rule file with errors")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "rules.yaml:3:") || !strings.Contains(lines[1], `rules.yaml:4:15: rule "all": unknown action "nope"`) {
		t.Errorf("errors:\n%v\nwant the expression and the unknown action, once each", err)
	}

	if err := os.Remove(filepath.Join(filepath.Dir(path), "rules.yaml")); err != nil {
		t.Fatal(err)
	}
	c = &countingRead{reads: map[string]int{}}
	_, err = loadWith(path, env(nil), c.read, nil)
	lines = strings.Split(fmt.Sprint(err), "\n")
	if len(lines) != 3 {
		t.Fatalf("errors:\n%v\nwant one per hook naming the missing file", err)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("c.yaml:%d:13: rule file ", 11+4*i); !strings.Contains(l, want) || !strings.Contains(l, "no such file") {
			t.Errorf("error %q, want %q… no such file", l, want)
		}
	}
	if n := c.reads[filepath.Join(filepath.Dir(path), "rules.yaml")]; n != 1 {
		t.Errorf("the missing rule file was tried %d times, want once", n)
	}
}
