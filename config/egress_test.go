package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const egressHooks = `hooks:
  shop:
    verify:
      scheme: github
      secret: s3cret
`

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hookrelay.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadEgress(t *testing.T) {
	tests := []struct {
		name string
		text string
		env  map[string]string
		want []string
	}{
		{"no egress section", "", nil, nil},
		{"a list", "egress:\n  allow_networks: [127.0.0.0/8, \"::1/128\", 10.1.2.3, 192.168.7.9/16]\n", nil,
			[]string{"127.0.0.0/8", "::1/128", "10.1.2.3/32", "192.168.0.0/16"}},
		{"one string from the environment", "egress:\n  allow_networks: ${NETS}\n", map[string]string{"NETS": "127.0.0.0/8, ::1/128"},
			[]string{"127.0.0.0/8", "::1/128"}},
		{"an unset variable allows nothing", "egress:\n  allow_networks: ${NETS:-}\n", nil, nil},
		{"an empty list allows nothing", "egress:\n  allow_networks: []\n", nil, nil},
		{"no value allows nothing", "egress:\n  allow_networks:\n", nil, nil},
		{"a mapped network is the IPv4 one", "egress:\n  allow_networks: [\"::ffff:10.0.0.0/104\"]\n", nil, []string{"10.0.0.0/8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, tt.text+egressHooks), env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			var want []netip.Prefix
			for _, s := range tt.want {
				want = append(want, netip.MustParsePrefix(s))
			}
			if d := cmp.Diff(want, cfg.AllowNetworks, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
				t.Errorf("allow_networks (-want +got)\n%s", d)
			}
		})
	}
}

func TestLoadEgressErrors(t *testing.T) {
	tests := []struct {
		name, text string
		env        map[string]string
		want       string // after the file name
	}{
		{"bad entry in a list", "egress:\n  allow_networks: [127.0.0.0/8, loopback]\n", nil,
			`:2:33: egress.allow_networks: "loopback" is not an IP address or CIDR network (such as 203.0.113.7, 10.0.0.0/8 or 2001:db8::/32)`},
		{"bad entry in a string", "egress:\n  allow_networks: \"127.0.0.0/8, 10.0.0.0/33\"\n", nil,
			`:2:33: egress.allow_networks: "10.0.0.0/33" is not an IP address or CIDR network (such as 203.0.113.7, 10.0.0.0/8 or 2001:db8::/32)`},
		{"bad entry from the environment", "egress:\n  allow_networks: ${NETS}\n", map[string]string{"NETS": "127.0.0.0/8,localhost"},
			`:2:19: egress.allow_networks: "localhost" is not an IP address or CIDR network (such as 203.0.113.7, 10.0.0.0/8 or 2001:db8::/32)`},
		{"a mapping", "egress:\n  allow_networks: {lo: 127.0.0.0/8}\n", nil,
			`:2:19: egress.allow_networks: want a list of addresses or networks such as [203.0.113.7, 10.0.0.0/8] or one string "203.0.113.7, 10.0.0.0/8"`},
		{"an unknown key", "egress:\n  allow_network: [127.0.0.0/8]\n", nil, `:2:3: unknown field "allow_network"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.text+egressHooks)
			_, err := Load(path, env(tt.env))
			if err == nil {
				t.Fatal("Load succeeded")
			}
			got := err.Error()
			if len(got) < len(path) || got[:len(path)] != path || !strings.HasPrefix(got[len(path):], tt.want) {
				t.Errorf("error\n got: %s\nwant: %s%s", got, path, tt.want)
			}
		})
	}
}
