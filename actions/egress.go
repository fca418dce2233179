package actions

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// RefusedError is a request that was not sent because its destination is
// a loopback, private, link-local, metadata or otherwise reserved address
// that the allowlist does not name. Retrying cannot change that: it
// matches ErrPermanent.
type RefusedError struct {
	Host   string     // the host as the URL names it; empty when it is Addr itself
	Addr   netip.Addr // the address that would have been dialed; invalid when Host was refused before resolving
	Reason string     // "a loopback address", "not a canonical IP address (read as 127.0.0.1 by some resolvers)"
}

func (e *RefusedError) Error() string {
	if !e.Addr.IsValid() {
		return fmt.Sprintf("refused: %s is %s; write the address out in full", e.Host, e.Reason)
	}
	what := e.Addr.String()
	if e.Host != "" && e.Host != what {
		what = e.Host + " resolves to " + what + ", which"
	}
	return fmt.Sprintf("refused: %s is %s; allow it with egress.allow_networks", what, e.Reason)
}

// Is makes a refusal match ErrPermanent.
func (e *RefusedError) Is(target error) bool { return target == ErrPermanent }

// guardian is the deny list of code.dny.dev/ssrf: the IANA special-purpose
// IPv4 ranges, and every IPv6 address outside global unicast or inside its
// special-purpose ranges (which covers IPv4-mapped, NAT64, unique local
// and link-local addresses). Any port is allowed: receivers listen where
// they like.
var guardian = ssrf.New(ssrf.WithAnyPort())

// CheckAddr reports whether actions may connect to addr: nil when allow
// names it or it is a public address, else a *RefusedError saying what
// kind of address it is. An IPv4-mapped IPv6 address is refused unless
// allow names it or the IPv4 address it maps.
func CheckAddr(addr netip.Addr, allow []netip.Prefix) error {
	plain := addr.WithZone("") // a zoned address matches no prefix
	for _, p := range allow {
		if p.Contains(plain) || (plain.Is4In6() && p.Contains(plain.Unmap())) {
			return nil
		}
	}
	if guardian.SafeAddr(plain) == nil {
		return nil
	}
	return &RefusedError{Addr: addr, Reason: describe(plain)}
}

var (
	metadataV4 = netip.MustParseAddr("169.254.169.254")
	metadataV6 = netip.MustParseAddr("fd00:ec2::254")
	cgnat      = netip.MustParsePrefix("100.64.0.0/10")
	thisNet    = netip.MustParsePrefix("0.0.0.0/8")
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
	broadcast  = netip.MustParseAddr("255.255.255.255")
)

// describe names the kind of a refused address for the operator.
func describe(a netip.Addr) string {
	switch {
	case a == metadataV4 || a == metadataV6:
		return "the cloud metadata address"
	case a.Is4In6():
		return "an IPv4-mapped IPv6 address (of " + a.Unmap().String() + ")"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsUnspecified() || thisNet.Contains(a):
		return "an unspecified (\"this network\") address"
	case a.IsPrivate():
		return "a private address"
	case cgnat.Contains(a):
		return "a carrier-grade NAT (shared) address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	case a == broadcast:
		return "the broadcast address"
	case a.IsMulticast():
		return "a multicast address"
	case nat64.Contains(a) || nat64Local.Contains(a):
		return "a NAT64 address"
	case sixToFour.Contains(a):
		return "a 6to4 address"
	}
	return "a reserved (special-purpose) address"
}

// GuardedTransport returns the transport for action requests, OAuth2
// token requests included. Its dialer checks every address it is about to
// connect to, after name resolution (so a name that resolves to a private
// address, or is rebound to one, is caught) and before anything is sent,
// with CheckAddr against the networks allow returns at that moment:
// pass a function reading the config in force so that a reload takes
// effect for the next connection. When the allowlist changes, idle
// connections are closed, so that none made under the old list is reused.
//
// Hosts that some resolvers read as IPv4 addresses but that are not
// written as one (127.1, 0x7f000001, 2130706433, 0177.0.0.1) are refused
// before any lookup. Proxies named in the environment (HTTP_PROXY) are not
// used: the guard would check the proxy's address, not the target's.
// Errors are *RefusedError, wrapped by the transport's own error types.
func GuardedTransport(allow func() []netip.Prefix) http.RoundTripper {
	if allow == nil {
		allow = func() []netip.Prefix { return nil }
	}
	g := &guardedTransport{allow: allow}
	d := &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return &RefusedError{Host: address, Reason: "not an address that can be checked"}
			}
			return CheckAddr(ap.Addr(), g.allow())
		},
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	// Connections stay open per destination across attempts: one action
	// may keep up to its concurrency busy, and a handshake per attempt
	// would cost more than the request.
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if why := numericHost(host); why != "" {
			return nil, &RefusedError{Host: host, Reason: why}
		}
		conn, err := d.DialContext(ctx, network, addr)
		var re *RefusedError
		if err != nil && errors.As(err, &re) && re.Host == "" {
			if _, perr := netip.ParseAddr(host); perr != nil {
				re.Host = host // a name: say which one resolved there
			}
		}
		return conn, err
	}
	g.t = t
	return g
}

type guardedTransport struct {
	t     *http.Transport
	allow func() []netip.Prefix

	mu   sync.Mutex
	last []netip.Prefix
}

func (g *guardedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	cur := g.allow()
	g.mu.Lock()
	if !slices.Equal(cur, g.last) {
		g.last = slices.Clone(cur)
		g.t.CloseIdleConnections()
	}
	g.mu.Unlock()
	return g.t.RoundTrip(r)
}

// CloseIdleConnections closes the pooled connections.
func (g *guardedTransport) CloseIdleConnections() { g.t.CloseIdleConnections() }

// numericHost explains why host must not be dialed when it is not a
// canonical IP address but a resolver may read it as one: the URL standard
// and the C library's inet_aton read 127.1, 0x7f000001, 2130706433 and
// 0177.0.0.1 as 127.0.0.1, while Go reads them as names. Such a host is
// refused whatever it stands for: it has no use but to confuse. It
// returns "" for canonical addresses and ordinary names.
func numericHost(host string) string {
	h := strings.TrimSuffix(host, ".")
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil && h == host {
		return ""
	}
	labels := strings.Split(h, ".")
	last := labels[len(labels)-1]
	if !numericLabel(last) {
		return ""
	}
	if a, ok := inetAton(labels); ok {
		return "not a canonical IP address (read as " + a.String() + " by some resolvers)"
	}
	return "not a canonical IP address"
}

// numericLabel reports whether a label is a number as the URL standard's
// "ends in a number" check sees it: decimal digits, or 0x and hex digits.
func numericLabel(s string) bool {
	if s == "" {
		return false
	}
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		return strings.Trim(s[2:], "0123456789abcdefABCDEF") == ""
	}
	return strings.Trim(s, "0123456789") == ""
}

// inetAton reads one to four numeric parts (decimal, 0x hex, 0 octal) as
// inet_aton does; the last part fills the remaining bytes.
func inetAton(parts []string) (netip.Addr, bool) {
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	nums := make([]uint64, len(parts))
	for i, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			base, p = 16, p[2:]
			if p == "" {
				p = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		n, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	var v uint64
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false
		}
		v |= n << (8 * (3 - i))
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}
