package actions

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		addr  string
		allow []netip.Prefix
		want  string // "" allowed, else the reason in the refusal
	}{
		{addr: "127.0.0.1", want: "a loopback address"},
		{addr: "127.255.0.9", want: "a loopback address"},
		{addr: "::1", want: "a loopback address"},
		{addr: "10.1.2.3", want: "a private address"},
		{addr: "172.16.0.1", want: "a private address"},
		{addr: "192.168.1.1", want: "a private address"},
		{addr: "fc00::1", want: "a private address"},
		{addr: "169.254.169.254", want: "the cloud metadata address"},
		{addr: "fd00:ec2::254", want: "the cloud metadata address"},
		{addr: "169.254.1.1", want: "a link-local address"},
		{addr: "fe80::1", want: "a link-local address"},
		{addr: "fe80::1%eth0", want: "a link-local address"},
		{addr: "100.64.0.1", want: "a carrier-grade NAT (shared) address"},
		{addr: "100.127.255.254", want: "a carrier-grade NAT (shared) address"},
		{addr: "::ffff:127.0.0.1", want: "an IPv4-mapped IPv6 address (of 127.0.0.1)"},
		{addr: "::ffff:8.8.8.8", want: "an IPv4-mapped IPv6 address (of 8.8.8.8)"},
		{addr: "0.0.0.0", want: `an unspecified ("this network") address`},
		{addr: "0.1.2.3", want: `an unspecified ("this network") address`},
		{addr: "::", want: `an unspecified ("this network") address`},
		{addr: "224.0.0.1", want: "a multicast address"},
		{addr: "ff02::1", want: "a multicast address"},
		{addr: "255.255.255.255", want: "the broadcast address"},
		{addr: "240.0.0.1", want: "a reserved (special-purpose) address"},
		{addr: "192.0.2.10", want: "a reserved (special-purpose) address"},
		{addr: "198.18.0.1", want: "a reserved (special-purpose) address"},
		{addr: "2001:db8::1", want: "a reserved (special-purpose) address"},
		{addr: "64:ff9b::7f00:1", want: "a NAT64 address"},
		{addr: "2002:7f00:1::1", want: "a 6to4 address"},
		{addr: "8.8.8.8"},
		{addr: "93.184.215.14"},
		{addr: "2606:4700:4700::1111"},

		// The allowlist opens exactly what it names.
		{addr: "127.0.0.1", allow: prefixes("127.0.0.0/8")},
		{addr: "::ffff:127.0.0.1", allow: prefixes("127.0.0.0/8")},
		{addr: "::1", allow: prefixes("127.0.0.0/8"), want: "a loopback address"},
		{addr: "::1", allow: prefixes("127.0.0.0/8", "::1/128")},
		{addr: "10.1.2.3", allow: prefixes("10.1.0.0/16")},
		{addr: "10.2.0.1", allow: prefixes("10.1.0.0/16"), want: "a private address"},
		{addr: "127.0.0.1", allow: prefixes("10.0.0.0/8"), want: "a loopback address"},
		{addr: "169.254.169.254", allow: prefixes("169.254.169.254/32")},
		{addr: "fe80::1%eth0", allow: prefixes("fe80::/10")},
		{addr: "8.8.8.8", allow: prefixes("10.0.0.0/8")},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s allow %v", tt.addr, tt.allow), func(t *testing.T) {
			err := CheckAddr(netip.MustParseAddr(tt.addr), tt.allow)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) || !errors.Is(err, ErrPermanent) {
				t.Fatalf("err = %v, want a permanent *RefusedError", err)
			}
			if re.Reason != tt.want {
				t.Errorf("reason = %q, want %q", re.Reason, tt.want)
			}
			want := fmt.Sprintf("refused: %s is %s; allow it with egress.allow_networks", tt.addr, tt.want)
			if err.Error() != want {
				t.Errorf("message = %q, want %q", err, want)
			}
		})
	}
}

func TestNumericHost(t *testing.T) {
	tests := []struct{ host, want string }{
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0X7F000001", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0x7f.0x0.0x0.0x1", "127.0.0.1"},
		{"127.0.0.1.", "127.0.0.1"},
		{"0", "0.0.0.0"},
		{"3232235777", "192.168.1.1"},
		{"169.254.43518", "169.254.169.254"},
		{"1.2.3.4.5", ""}, // too many parts: not an address, refused all the same
		{"example.99999999999", ""},
	}
	for _, tt := range tests {
		why := numericHost(tt.host)
		if !strings.HasPrefix(why, "not a canonical IP address") {
			t.Errorf("numericHost(%q) = %q, want a refusal", tt.host, why)
			continue
		}
		if tt.want != "" && !strings.Contains(why, "read as "+tt.want+" ") {
			t.Errorf("numericHost(%q) = %q, want it to name %s", tt.host, why, tt.want)
		}
	}
	for _, ok := range []string{"127.0.0.1", "8.8.8.8", "::1", "fe80::1%eth0", "localhost", "api.example.com", "1password.com", "123.example", "0xcafe.example", "xn--bcher-kva.example"} {
		if why := numericHost(ok); why != "" {
			t.Errorf("numericHost(%q) = %q, want it accepted", ok, why)
		}
	}
}

// canary is a TCP listener that must receive no connection; it closes
// each one at once. Counting is exact without waiting: connections() makes
// one connection of its own and counts what was accepted before it, since
// a listener accepts in order.
type canary struct {
	ln       net.Listener
	accepted chan string // remote addresses
	mu       sync.Mutex
	count    int
}

func newCanary(t *testing.T, network, addr string) *canary {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s %s: %v", network, addr, err)
	}
	c := &canary{ln: ln, accepted: make(chan string, 1024)}
	go func() {
		defer close(c.accepted)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.accepted <- conn.RemoteAddr().String()
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

func (c *canary) port() int { return c.ln.Addr().(*net.TCPAddr).Port }

// hostPort is the canary's address as it goes into a URL.
func (c *canary) hostPort() string { return c.ln.Addr().String() }

// connections returns how many connections the canary has received.
func (c *canary) connections(t *testing.T) int {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	own, err := net.Dial(c.ln.Addr().Network(), c.ln.Addr().String())
	if err != nil {
		t.Fatalf("canary: %v", err)
	}
	defer own.Close()
	for remote := range c.accepted {
		if remote == own.LocalAddr().String() {
			return c.count
		}
		c.count++
	}
	t.Fatal("canary listener closed")
	return 0
}

func guardedClient(allow ...netip.Prefix) *Client {
	return NewClient(ClientOptions{
		UserAgent: "hookrelay/test",
		Transport: GuardedTransport(func() []netip.Prefix { return allow }),
		Now:       func() time.Time { return fixedNow },
	})
}

func TestGuardedTransportRefusesLocalTargets(t *testing.T) {
	v4 := newCanary(t, "tcp4", "127.0.0.1:0")
	v6 := newCanary(t, "tcp6", "[::1]:0")
	p := v4.port()
	tests := []struct {
		name, url, want string
	}{
		{"IPv4 loopback", fmt.Sprintf("http://127.0.0.1:%d/x", p), "refused: 127.0.0.1 is a loopback address; allow it with egress.allow_networks"},
		{"IPv6 loopback", fmt.Sprintf("http://%s/x", v6.hostPort()), "refused: ::1 is a loopback address; allow it with egress.allow_networks"},
		{"IPv4-mapped IPv6", fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/x", p), "refused: 127.0.0.1 is a loopback address"},
		{"IPv4-mapped IPv6, hex", fmt.Sprintf("http://[::ffff:7f00:1]:%d/x", p), "refused: 127.0.0.1 is a loopback address"},
		{"short form", fmt.Sprintf("http://127.1:%d/x", p), "refused: 127.1 is not a canonical IP address (read as 127.0.0.1 by some resolvers); write the address out in full"},
		{"hex form", fmt.Sprintf("http://0x7f000001:%d/x", p), "refused: 0x7f000001 is not a canonical IP address (read as 127.0.0.1"},
		{"decimal form", fmt.Sprintf("http://2130706433:%d/x", p), "refused: 2130706433 is not a canonical IP address (read as 127.0.0.1"},
		{"octal form", fmt.Sprintf("http://0177.0.0.1:%d/x", p), "refused: 0177.0.0.1 is not a canonical IP address (read as 127.0.0.1"},
		{"name of loopback", fmt.Sprintf("http://localhost:%d/x", p), "refused: localhost resolves to "},
		{"unspecified", fmt.Sprintf("http://0.0.0.0:%d/x", p), `refused: 0.0.0.0 is an unspecified ("this network") address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, tt.url, strings.NewReader(`{"a":1}`))
			if err != nil {
				t.Fatalf("%s: %v", tt.url, err)
			}
			hc := &http.Client{Transport: GuardedTransport(nil)}
			resp, err := hc.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("%s was sent (status %d)", tt.url, resp.StatusCode)
			}
			var re *RefusedError
			if !errors.As(err, &re) || !errors.Is(err, ErrPermanent) {
				t.Fatalf("err = %v, want a *RefusedError", err)
			}
			if !strings.Contains(re.Error(), tt.want) {
				t.Errorf("refusal = %q, want it to contain %q", re, tt.want)
			}
		})
	}
	if n := v4.connections(t); n != 0 {
		t.Errorf("IPv4 canary got %d connections", n)
	}
	if n := v6.connections(t); n != 0 {
		t.Errorf("IPv6 canary got %d connections", n)
	}
}

func TestDoRefusedTargetIsPermanent(t *testing.T) {
	v4 := newCanary(t, "tcp4", "127.0.0.1:0")
	a := mustCompile(t, Spec{URL: "http://" + v4.hostPort() + "/v1/contacts/{{ body.id }}", Auth: &AuthSpec{Bearer: "{{ body.UserToken }}"}})
	res := guardedClient().Do(context.Background(), a, env(t, `{"id":"c1","UserToken":"ut-elevated-0123456789"}`), "dlv_1")
	want := "refused: 127.0.0.1 is a loopback address; allow it with egress.allow_networks"
	if !errors.Is(res.Err, ErrPermanent) || res.Err.Error() != want {
		t.Fatalf("Err = %v, want the permanent %q", res.Err, want)
	}
	if res.StatusCode != 0 || res.URL != "http://"+v4.hostPort()+"/v1/contacts/c1" || res.RequestHeaders["Authorization"] != "[redacted]" {
		t.Errorf("result %+v", res)
	}
	if n := v4.connections(t); n != 0 {
		t.Errorf("canary got %d connections", n)
	}
}

func TestDoRefusedTokenEndpointIsPermanent(t *testing.T) {
	token := newCanary(t, "tcp4", "127.0.0.1:0")
	api := newCanary(t, "tcp4", "127.0.0.1:0")
	a := mustCompile(t, oauthSpec("http://"+api.hostPort(), "http://"+token.hostPort()+"/oauth/token"))
	res := guardedClient().Do(context.Background(), a, env(t, `{}`), "dlv_1")
	want := "oauth2 token: refused: 127.0.0.1 is a loopback address; allow it with egress.allow_networks"
	if !errors.Is(res.Err, ErrPermanent) || res.Err.Error() != want {
		t.Fatalf("Err = %v, want the permanent %q", res.Err, want)
	}
	if n := token.connections(t) + api.connections(t); n != 0 {
		t.Errorf("canaries got %d connections", n)
	}
}

func TestCompileRefusesNumericHosts(t *testing.T) {
	for _, host := range []string{"127.1", "0x7f000001", "2130706433", "0177.0.0.1", "10.1"} {
		_, err := Compile("notify", Spec{URL: "http://" + host + ":8080/x"})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "url" || fe.Offset != 7 || !strings.Contains(err.Error(), "is not a canonical IP address") {
			t.Errorf("%s: err = %v, want a url error at offset 7", host, err)
		}
	}
	for _, url := range []string{"http://127.0.0.1:8080/x", "http://[::1]:8080/x", "https://api.example.com/x", "https://1password.com/x"} {
		if _, err := Compile("notify", Spec{URL: url}); err != nil {
			t.Errorf("%s: %v", url, err)
		}
	}
}

func TestGuardedTransportAllowsWhatTheListNames(t *testing.T) {
	rc4 := newReceiver(t, nil)
	rc6 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	rc6.Listener = ln6
	rc6.Start()
	t.Cleanup(rc6.Close)

	c := guardedClient(prefixes("127.0.0.0/8", "::1/128")...)
	for _, base := range []string{rc4.URL, rc6.URL} {
		res := c.Do(context.Background(), mustCompile(t, Spec{URL: base + "/v1/inbox"}), env(t, `{}`), "dlv_1")
		if res.Err != nil || res.StatusCode != 200 {
			t.Errorf("%s: status %d, err %v; want it allowed", base, res.StatusCode, res.Err)
		}
	}
	// A name resolving to an allowed address is allowed too.
	local := strings.Replace(rc4.URL, "127.0.0.1", "localhost", 1)
	res := guardedClient(prefixes("127.0.0.0/8", "::1/128")...).Do(context.Background(), mustCompile(t, Spec{URL: local + "/x"}), env(t, `{}`), "dlv_1")
	if res.Err != nil {
		t.Errorf("%s: %v", local, res.Err)
	}
}

func TestGuardedTransportFollowsTheAllowlistInForce(t *testing.T) {
	var conns atomic.Int32
	rc := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	rc.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	rc.Start()
	t.Cleanup(rc.Close)

	var allow atomic.Pointer[[]netip.Prefix]
	allow.Store(&[]netip.Prefix{})
	c := NewClient(ClientOptions{Transport: GuardedTransport(func() []netip.Prefix { return *allow.Load() })})
	a := mustCompile(t, Spec{URL: rc.URL + "/x"})
	do := func() Result { return c.Do(context.Background(), a, env(t, `{}`), "dlv_1") }

	if res := do(); !errors.Is(res.Err, ErrPermanent) {
		t.Fatalf("before: Err = %v, want a refusal", res.Err)
	}
	allow.Store(&[]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	for i := range 2 {
		if res := do(); res.Err != nil {
			t.Fatalf("allowed, request %d: %v", i+1, res.Err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for two requests, want 1 kept alive", n)
	}
	// Taken off the list again: the kept-alive connection is not reused.
	allow.Store(&[]netip.Prefix{})
	if res := do(); !errors.Is(res.Err, ErrPermanent) || !strings.HasPrefix(res.Err.Error(), "refused: 127.0.0.1") {
		t.Fatalf("after: Err = %v, want a refusal", res.Err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	v4 := newCanary(t, "tcp4", "127.0.0.1:0")
	v6 := newCanary(t, "tcp6", "[::1]:0")
	for _, target := range []string{
		"http://" + v4.hostPort() + "/internal", // allowed by the list: the redirect itself is what is refused
		"http://" + v6.hostPort() + "/internal", // not allowed either
		"http://169.254.169.254/latest/meta-data/",
	} {
		t.Run(target, func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target, http.StatusFound)
			})
			a := mustCompile(t, Spec{URL: rc.URL + "/hook", Auth: &AuthSpec{Bearer: "tok-0123456789"}})
			res := guardedClient(prefixes("127.0.0.0/8")...).Do(context.Background(), a, env(t, `{}`), "dlv_1")
			if res.StatusCode != http.StatusFound || res.Err == nil || !strings.Contains(res.Err.Error(), "redirects are not followed") {
				t.Fatalf("status %d, Err %v; want the 302 itself, not followed", res.StatusCode, res.Err)
			}
			if n := len(rc.Hits()); n != 1 {
				t.Errorf("receiver got %d requests", n)
			}
		})
	}
	if n := v4.connections(t) + v6.connections(t); n != 0 {
		t.Errorf("canaries got %d connections", n)
	}
}

func TestGuardedTransportIgnoresProxiesFromTheEnvironment(t *testing.T) {
	proxy := newCanary(t, "tcp4", "127.0.0.1:0")
	t.Setenv("HTTP_PROXY", "http://"+proxy.hostPort())
	t.Setenv("HTTPS_PROXY", "http://"+proxy.hostPort())
	t.Setenv("NO_PROXY", "")

	gt := GuardedTransport(nil).(*guardedTransport)
	if gt.t.Proxy != nil {
		t.Fatal("the guarded transport has a Proxy function")
	}
	// Through a proxy the guard would see the proxy's address (allowed
	// here), not the target's.
	c := guardedClient(prefixes("127.0.0.0/8")...)
	res := c.Do(context.Background(), mustCompile(t, Spec{URL: "http://192.0.2.10/x"}), env(t, `{}`), "dlv_1")
	if !errors.Is(res.Err, ErrPermanent) || !strings.HasPrefix(res.Err.Error(), "refused: 192.0.2.10 is a reserved") {
		t.Fatalf("Err = %v, want the target refused", res.Err)
	}
	if n := proxy.connections(t); n != 0 {
		t.Errorf("proxy got %d connections", n)
	}
}
