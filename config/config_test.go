package config

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

var update = flag.Bool("update", false, "rewrite golden .err files")

var positioned = regexp.MustCompile(`^testdata/bad/[a-z-]+\.yaml:\d+:\d+: \S`)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// Every testdata/bad/*.yaml whose name does not start with "rules-" is a
// config that must be refused with exactly the message in its .err file.
func TestLoadBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "rules-") {
			continue
		}
		n++
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			_, err := Load(f, env(map[string]string{"HOOKRELAY_TEST_EMPTY": "", "HOOKRELAY_TEST_HOSTILE": "}} {{ headers.authorization }} {{"}))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run go test ./config -update to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("error mismatch\n got: %s\nwant: %s", got, want)
			}
			for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
				if !positioned.MatchString(line) {
					t.Errorf("error line %q does not start with file:line:col", line)
				}
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d bad configs found", n)
	}
}

func TestDurability(t *testing.T) {
	for _, tt := range []struct {
		line string
		want int
	}{{"", 0}, {"durability: default\n", 0}, {"durability: wait\n", 1}} {
		path := filepath.Join(t.TempDir(), "hookrelay.yaml")
		text := tt.line + "hooks:\n  shop:\n    verify:\n      scheme: github\n      secret: s3cret-s3cret\n"
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, env(nil))
		if err != nil {
			t.Fatalf("%q: %v", tt.line, err)
		}
		if cfg.WaitReplicas != tt.want {
			t.Errorf("%q: WaitReplicas = %d, want %d", tt.line, cfg.WaitReplicas, tt.want)
		}
	}
}

func TestLoadGood(t *testing.T) {
	cfg, err := Load("testdata/good/full.yaml", env(map[string]string{"SHOP_SECRET": "s3cret", "API_TOKEN": "tok"}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.HookNames(), []string{"drop", "shop"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("hooks = %v, want %v", got, want)
	}
	shop := cfg.Hooks["shop"]
	if shop.MaxBody != 512<<10 {
		t.Errorf("max_body = %d, want %d", shop.MaxBody, 512<<10)
	}
	if shop.KeyTTL != 48*time.Hour {
		t.Errorf("ttl = %v", shop.KeyTTL)
	}
	if shop.Key == nil || shop.Key.Source() != `headers["x-delivery-id"]` {
		t.Errorf("key program = %v", shop.Key)
	}
	if len(shop.Rules.Rules) != 1 || shop.Rules.Rules[0].Name != "paid" {
		t.Errorf("rules = %+v", shop.Rules.Rules)
	}
	if shop.Verifier.Scheme() != "hmac" {
		t.Errorf("scheme = %q", shop.Verifier.Scheme())
	}
	drop := cfg.Hooks["drop"]
	if drop.Token != "abcdefghijklmnopqrstuvwx" || drop.MaxBody != DefaultMaxBody || drop.KeyTTL != DefaultKeyTTL {
		t.Errorf("drop hook = %+v", drop)
	}
	act := cfg.Actions["notify"]
	if act == nil {
		t.Fatal("action notify missing")
	}
	if act.Method != "PUT" || act.Timeout != 5*time.Second {
		t.Errorf("action = %+v", act)
	}
	if len(act.Retry) != 2 || act.Retry[0] != 10*time.Second || act.Retry[1] != time.Minute {
		t.Errorf("retry = %v", act.Retry)
	}
	if cfg.PublicURL != "https://hooks.example.com" {
		t.Errorf("public_url = %q", cfg.PublicURL)
	}
	if len(cfg.Files) != 2 {
		t.Errorf("files = %v, want the config and its rule file", cfg.Files)
	}
}

func TestLoadDemo(t *testing.T) {
	cfg, err := Load("../testdata/demo/hookrelay.yaml", env(map[string]string{
		"DEMO_API_URL":       "http://127.0.0.1:9",
		"OCW_WEBHOOK_SECRET": "a", "OC_HASH_KEY": "b", "CRM_TOKEN": "c",
		"WS_HOOK_TOKEN": "0123456789abcdef0123",
		"DEMO_RETRY":    "1s,2s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Hooks) != 8 {
		t.Errorf("hooks = %v", cfg.HookNames())
	}
	for name, a := range cfg.Actions {
		if len(a.Retry) != 2 {
			t.Errorf("action %s retry = %v, want DEMO_RETRY", name, a.Retry)
		}
	}
}

func TestExpand(t *testing.T) {
	lookup := env(map[string]string{"A": "x", "EMPTY": ""})
	tests := []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "x"},
		{in: "pre-${A}-post", want: "pre-x-post"},
		{in: "${EMPTY}", want: ""},
		{in: "${EMPTY:-d}", want: "d"},
		{in: "${UNSET:-d,e}", want: "d,e"},
		{in: "$${A}", want: "${A}"},
		{in: "${UNSET}", err: "environment variable UNSET is not set"},
		{in: "${A", err: "unclosed ${"},
		{in: "${1A}", err: "invalid environment variable name"},
	}
	for _, tt := range tests {
		got, err := expand(tt.in, lookup)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("expand(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{{"1024", 1024}, {"1MiB", 1 << 20}, {"512KiB", 512 << 10}, {"2MB", 2e6}, {"10 B", 10}}
	for _, tt := range tests {
		if got, err := parseSize(tt.in); err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []struct{ in, want string }{
		{"", "not a size"},
		{"lots", "not a size"},
		{"1.5MiB", "not a size"},
		{"0", "want a positive size"},
		{"-1", "negative"},
		{"-1MiB", "negative"},
		{"-9999999999999999999999", "negative"},
		{"1TiB", `unknown unit "TiB"`},
		{"8EiB", `unknown unit "EiB"`},
		{"9999999999999999999999", "too large"},
		{"9223372036854775807", "too large"},
		{"17179869184GiB", "too large"}, // 2^64 bytes: wraps to 0 if multiplied first
		{"8589934592GiB", "too large"},  // 2^63 bytes: wraps to a negative
		{"2GiB", "too large"},
		{"1073741825", "too large"},
	} {
		if n, err := parseSize(bad.in); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("parseSize(%q) = %d, %v; want an error saying %q", bad.in, n, err, bad.want)
		}
	}
	if n, err := parseSize("1GiB"); err != nil || n != MaxBodyLimit {
		t.Errorf("parseSize(1GiB) = %d, %v", n, err)
	}
}

// TestFilesAreReadWithACap: the config, a rule file and an action file over
// MaxFileSize are each refused with the file's name, without being read
// whole, and so is a path that is not a regular file.
func TestFilesAreReadWithACap(t *testing.T) {
	big := "# " + strings.Repeat("x", MaxFileSize) + "\n"
	main := `hooks:
  shop:
    verify: {scheme: none}
    token: abcdefghijklmnopqrstuvwxyz
    rules: [rules.yaml]
action_files: [actions.yaml]
`
	rulesFile := "rules:\n  - name: all\n    when: \"true\"\n    actions: [a]\n"
	actionsFile := "actions:\n  a:\n    url: https://example.com/x\n"
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"main", map[string]string{"hookrelay.yaml": main + big, "rules.yaml": rulesFile, "actions.yaml": actionsFile},
			"hookrelay.yaml:1:1: larger than 4MiB"},
		{"rule file", map[string]string{"hookrelay.yaml": main, "rules.yaml": rulesFile + big, "actions.yaml": actionsFile},
			"hookrelay.yaml:5:13: rule file DIR/rules.yaml: larger than 4MiB"},
		{"action file", map[string]string{"hookrelay.yaml": main, "rules.yaml": rulesFile, "actions.yaml": actionsFile + big},
			"hookrelay.yaml:6:16: action file DIR/actions.yaml: larger than 4MiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range c.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(filepath.Join(dir, "hookrelay.yaml"), env(nil))
			want := filepath.Join(dir, strings.ReplaceAll(c.want, "DIR/", dir+"/"))
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Load = %v, want %q", err, want)
			}
		})
	}
	t.Run("within the cap", func(t *testing.T) {
		dir := t.TempDir()
		for name, content := range map[string]string{"hookrelay.yaml": main, "rules.yaml": rulesFile, "actions.yaml": actionsFile} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Load(filepath.Join(dir, "hookrelay.yaml"), env(nil)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("not a regular file", func(t *testing.T) {
		_, err := Load("/dev/zero", env(nil))
		if err == nil || err.Error() != "/dev/zero: not a regular file" {
			t.Errorf("Load(/dev/zero) = %v", err)
		}
	})
}

func TestLoadEvaluation(t *testing.T) {
	dir := t.TempDir()
	write := func(server string) string {
		p := filepath.Join(dir, "hookrelay.yaml")
		cfg := server + "hooks:\n  shop:\n    verify:\n      scheme: github\n      secret: s3cret\n"
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := Load(write(""), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Evaluation != rules.DefaultLimits {
		t.Errorf("default evaluation = %+v, want %+v", cfg.Evaluation, rules.DefaultLimits)
	}
	cfg, err = Load(write("server:\n  evaluation:\n    timeout: 250ms\n    memory: 16MiB\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := (rules.Limits{Timeout: 250 * time.Millisecond, Memory: 16 << 20}); cfg.Evaluation != want {
		t.Errorf("evaluation = %+v, want %+v", cfg.Evaluation, want)
	}
	cfg, err = Load(write("server:\n  evaluation:\n    memory: 1MiB\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := (rules.Limits{Timeout: rules.DefaultLimits.Timeout, Memory: 1 << 20}); cfg.Evaluation != want {
		t.Errorf("evaluation = %+v, want %+v", cfg.Evaluation, want)
	}
}

// rate_limit: reads as an action's rate:, per second, minute or hour, with
// a tenth of a period's worth at once; a hook without one has no limit.
func TestHookRateLimit(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want store.Rate
	}{
		{"", store.Rate{}},
		{"rate_limit: 100/s", store.Rate{Count: 100, Per: time.Second, AtOnce: 10}},
		{"rate_limit: 1000/m", store.Rate{Count: 1000, Per: time.Minute, AtOnce: 100}},
		{`rate_limit: " 10 / h "`, store.Rate{Count: 10, Per: time.Hour, AtOnce: 1}},
		{"rate_limit: ${HOOK_RATE}", store.Rate{Count: 5, Per: time.Second, AtOnce: 1}},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "hookrelay.yaml")
		if err := os.WriteFile(path, []byte("hooks:\n  shop:\n    verify: {scheme: none}\n    token: 0123456789abcdef\n    "+tt.in+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, env(map[string]string{"HOOK_RATE": "5/s"}))
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if got := c.Hooks["shop"].RateLimit; got != tt.want {
			t.Errorf("%s: RateLimit = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// TestLoadFiles: a config given as files loads as it does from disk, reads
// nothing from disk, and a file it names but was not given is an error
// placed where the config names it.
func TestLoadFiles(t *testing.T) {
	lookup := env(map[string]string{"CRM_TOKEN": "crm-token-123456"})
	disk, err := Load("../testdata/demo/hookrelay.yaml", lookup)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range disk.Files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		files[f] = b
	}
	got, err := LoadFiles(disk.Path, files, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.HookNames(), ",") != strings.Join(disk.HookNames(), ",") || len(got.Actions) != len(disk.Actions) {
		t.Errorf("from files: hooks %v, %d actions; from disk: hooks %v, %d actions", got.HookNames(), len(got.Actions), disk.HookNames(), len(disk.Actions))
	}
	if want := []string{"CRM_TOKEN", "DEMO_ALLOW_NETWORKS", "DEMO_API_URL"}; !slices.Equal(got.EnvNames[:3], want) || !slices.Contains(got.EnvNames, "WS_HOOK_TOKEN") {
		t.Errorf("EnvNames = %v, want every variable the config names, set or not", got.EnvNames)
	}
	if got.Redactor().String("Bearer crm-token-123456") == "Bearer crm-token-123456" {
		t.Error("the config loaded from files does not mask its secret")
	}

	delete(files, "../testdata/demo/rules/ordercloud.yaml")
	_, err = LoadFiles(disk.Path, files, lookup)
	if err == nil || !strings.Contains(err.Error(), "../testdata/demo/hookrelay.yaml:") || !strings.Contains(err.Error(), "rules/ordercloud.yaml") {
		t.Errorf("a rule file not given: %v, want an error placed in the config naming the file", err)
	}
	if _, err := LoadFiles("nowhere/hookrelay.yaml", nil, lookup); err == nil {
		t.Error("no files at all: loaded")
	}
}

// An idempotency ttl that ends before a signed request of a timestamped
// scheme stops verifying is refused where it is written: a captured
// request sent again after its key expired would be a new event.
func TestReplayWindowOutlivedByKeys(t *testing.T) {
	for _, tt := range []struct {
		verify, idem string
		err          string // "" loads
	}{
		{"{scheme: slack, secret: '${S}'}", "", ""},
		{"{scheme: slack, secret: '${S}'}", "idempotency: {ttl: 10m}", ""},
		{"{scheme: slack, secret: '${S}'}", "idempotency: {ttl: 3s}", "c.yaml:6:24: hook \"shop\": idempotency ttl 3s is shorter than twice verify.tolerance (5m0s)"},
		{"{scheme: stripe, secret: '${S}', tolerance: 1h}", "idempotency: {ttl: 90m}", "c.yaml:6:24: hook \"shop\": idempotency ttl 1h30m0s is shorter than twice verify.tolerance (1h0m0s)"},
		{"{scheme: standard-webhooks, secret: '${S}', tolerance: 13h}", "", "c.yaml:4:68: hook \"shop\": idempotency ttl 24h0m0s is shorter than twice verify.tolerance (13h0m0s)"},
		{"{scheme: hmac, header: X-Sig, secret: '${S}'}", "idempotency: {ttl: 3s}", ""},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "c.yaml")
		text := "hooks:\n  shop:\n    token: 0123456789abcdef\n    verify: " + tt.verify + "\n    rules: []\n    " + tt.idem + "\n"
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path, env(map[string]string{"S": "whsec_" + strings.Repeat("c2VjcmV0", 4)}))
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s %s: %v", tt.verify, tt.idem, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s %s: error %v, want %q", tt.verify, tt.idem, err, tt.err)
		}
	}
}

// Every problem with a hook's block is reported where the block is
// written, even when the block has no value of its own to point at.
func TestHookBlockErrorsHavePositions(t *testing.T) {
	for _, tt := range []struct{ text, want string }{
		{"hooks:\n  ok:\n    verify: {scheme: none}\n    token: 0123456789abcdef\n  a:\n", "c.yaml:5:3: hook \"a\" is empty"},
		{"hooks:\n  \"a b\":\n    verify: {scheme: none}\n    token: 0123456789abcdef\n", "c.yaml:2:3: hook name \"a b\""},
		{"hooks:\n  ok:\n    verify: {scheme: none}\n    token: 0123456789abcdef\n  nov:\n    token: 0123456789abcdef\n", "c.yaml:5:3: hook \"nov\": verify: is required"},
		{"hooks:\n  ok:\n    verify: {scheme: none}\n    token: 0123456789abcdef\n  h:\n    verify: {secret: x}\n", "c.yaml:6:5: hook \"h\": verify.scheme is required"},
	} {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(tt.text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path, env(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.text, err, tt.want)
		}
	}
}
