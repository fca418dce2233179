package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/hookrelay/hookrelay/config"
)

// basicChallenge is sent with a 401 for a hook that takes HTTP basic credentials.
const basicChallenge = `Basic realm="hookrelay"`

// admit applies a hook's auth: checks, which all must pass, to a request
// whose body has not been read yet: the sender's address (403), then HTTP
// basic credentials and a static header token (401). Secrets are compared
// in constant time, and no error carries what the sender sent.
func admit(cfg *config.Config, hook *config.Hook, r *http.Request) error {
	if len(hook.AllowIPs) > 0 {
		addr := clientAddr(r, cfg.TrustedProxies)
		if !addr.IsValid() {
			return fail(http.StatusForbidden, "sender address not allowed", fmt.Errorf("no usable client address (peer %q)", r.RemoteAddr))
		}
		if !inAny(hook.AllowIPs, addr) {
			return fail(http.StatusForbidden, "sender address not allowed", fmt.Errorf("client address %s is not in auth.allow_ips", addr))
		}
	}
	if b := hook.Basic; b != nil {
		user, pass, ok := r.BasicAuth()
		// Both are compared, whatever the first gives, so that timing does
		// not tell a right user name from a wrong one.
		match := equal(user, b.Username) & equal(pass, b.Password)
		if !ok || match != 1 {
			detail := "wrong user name or password"
			if !ok {
				detail = "no basic credentials"
			}
			return &Error{Status: http.StatusUnauthorized, Msg: "authentication required", Err: fmt.Errorf("auth.basic: %s", detail), Challenge: basicChallenge}
		}
	}
	if t := hook.HeaderToken; t != nil {
		vals := r.Header.Values(t.Name)
		switch {
		case len(vals) == 0:
			return fail(http.StatusUnauthorized, "authentication required", fmt.Errorf("auth.header: missing header %s", t.Name))
		case len(vals) > 1:
			return fail(http.StatusUnauthorized, "authentication required", fmt.Errorf("auth.header: header %s sent %d times", t.Name, len(vals)))
		case tokenEqual(t.Name, vals[0], t.Value) != 1:
			return fail(http.StatusUnauthorized, "authentication required", fmt.Errorf("auth.header: wrong value in header %s", t.Name))
		}
	}
	return nil
}

// equal compares a secret in constant time. Both sides are hashed first so
// that the time taken does not reveal the secret's length either.
func equal(got, want string) int {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:])
}

// tokenEqual compares a header value with the configured one. In an
// Authorization header the scheme ("Bearer") is case-insensitive, as HTTP
// says; the credentials after it are compared exactly.
func tokenEqual(name, got, want string) int {
	if strings.EqualFold(name, "Authorization") {
		gs, gc, gok := strings.Cut(got, " ")
		ws, wc, wok := strings.Cut(want, " ")
		if gok && wok {
			same := 0
			if strings.EqualFold(gs, ws) {
				same = 1
			}
			return same & equal(strings.TrimLeft(gc, " "), strings.TrimLeft(wc, " "))
		}
	}
	return equal(got, want)
}

// clientAddr is the address of the sender: the TCP peer, unless the peer
// is a trusted proxy. Then X-Forwarded-For is read from the right, each
// proxy having appended the address it received the request from, and the
// first address that is not itself a trusted proxy is the sender; what lies
// left of it was written by the sender and proves nothing. The zero Addr
// means the address is unknown, which no allow list admits.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if !peer.IsValid() || !inAny(trusted, peer) {
		return peer
	}
	var hops []string
	for _, line := range r.Header.Values("X-Forwarded-For") {
		for _, h := range strings.Split(line, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	if len(hops) == 0 {
		return peer
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseAddr(hops[i])
		if !a.IsValid() || !inAny(trusted, a) {
			return a
		}
	}
	// Every hop is a trusted proxy: the request started at the first.
	return parseAddr(hops[0])
}

// parseAddr reads "203.0.113.7", "203.0.113.7:5555", "2001:db8::1" or
// "[2001:db8::1]:5555". IPv4-mapped IPv6 addresses are read as IPv4, and
// zones are dropped, as allow lists are written.
func parseAddr(s string) netip.Addr {
	s = strings.TrimSpace(s)
	var a netip.Addr
	if ap, err := netip.ParseAddrPort(s); err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

func inAny(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
