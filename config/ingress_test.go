package config

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadIngress(t *testing.T) {
	cfg, err := Load("testdata/good/ingress.yaml", env(map[string]string{
		"SHOP_PASSWORD": "pa55word",
		"FORM_IPS":      "192.0.2.10,192.0.2.11",
		"API_KEY":       "k3y-0123456789",
	}))
	if err != nil {
		t.Fatal(err)
	}
	prefixes := func(ss ...string) []netip.Prefix {
		out := make([]netip.Prefix, len(ss))
		for i, s := range ss {
			out[i] = netip.MustParsePrefix(s)
		}
		return out
	}
	cmpPrefix := cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
	if d := cmp.Diff(prefixes("10.0.0.0/8", "2001:db8::1/128"), cfg.TrustedProxies, cmpPrefix); d != "" {
		t.Errorf("trusted proxies (-want +got)\n%s", d)
	}

	shop := cfg.Hooks["shop"]
	if d := cmp.Diff(&BasicAuth{Username: "shop", Password: "pa55word"}, shop.Basic); d != "" {
		t.Errorf("shop basic (-want +got)\n%s", d)
	}
	// A bare address is a network of one; host bits are cleared; a
	// v4-mapped network is read as the IPv4 network it names.
	if d := cmp.Diff(prefixes("203.0.113.7/32", "198.51.100.0/24", "192.0.2.0/24", "10.0.0.0/8"), shop.AllowIPs, cmpPrefix); d != "" {
		t.Errorf("shop allow_ips (-want +got)\n%s", d)
	}
	if shop.HeaderToken != nil || shop.Response != nil {
		t.Errorf("shop has header %v response %v", shop.HeaderToken, shop.Response)
	}

	forms := cfg.Hooks["forms"]
	if forms.Basic == nil || forms.Basic.Username != "shop" {
		t.Errorf("forms basic through a YAML alias = %+v", forms.Basic)
	}
	if d := cmp.Diff(prefixes("192.0.2.10/32", "192.0.2.11/32"), forms.AllowIPs, cmpPrefix); d != "" {
		t.Errorf("forms allow_ips from one variable (-want +got)\n%s", d)
	}

	if d := cmp.Diff(&HeaderToken{Name: "X-Api-Key", Value: "k3y-0123456789"}, cfg.Hooks["api"].HeaderToken); d != "" {
		t.Errorf("api header (-want +got)\n%s", d)
	}

	slack := cfg.Hooks["slack"].Response
	if slack == nil || slack.Status != 200 || slack.When == nil || slack.When.Source() != `body.type == "url_verification"` ||
		slack.Body == nil || slack.Body.Source() != "body.challenge" || slack.ContentType != "" {
		t.Errorf("slack response = %+v", slack)
	}
	plain := cfg.Hooks["plain"].Response
	if plain == nil || plain.Status != 204 || plain.When != nil || plain.Body != nil || plain.ContentType != "application/json" {
		t.Errorf("plain response = %+v", plain)
	}
	for _, name := range []string{"api", "slack", "plain"} {
		if h := cfg.Hooks[name]; h.Basic != nil || len(h.AllowIPs) != 0 {
			t.Errorf("hook %s: basic %v allow_ips %v", name, h.Basic, h.AllowIPs)
		}
	}
}
