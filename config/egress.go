package config

// Egress settings: where actions may go.

import "net/netip"

type rawEgress struct {
	AllowNetworks anyNode `yaml:"allow_networks"`
}

// compileEgress compiles the top-level egress: section: the private or
// reserved networks actions may reach all the same. An empty list, or an
// empty string (an unset ${VAR:-}), allows none of them.
func (l *loader) compileEgress(file string, e *rawEgress) []netip.Prefix {
	if e == nil {
		return nil
	}
	if e.AllowNetworks.Node == nil {
		return nil
	}
	ps, _ := l.prefixList(file, "egress.allow_networks", e.AllowNetworks.Node)
	return ps
}
