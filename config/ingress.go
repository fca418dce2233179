package config

// Ingress settings: who may send to a hook besides its signature, which
// proxies are believed about a sender's address, and a hook's synchronous
// answer.

import (
	"context"
	"fmt"
	"mime"
	"net/netip"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/hookrelay/hookrelay/rules"
)

type rawServer struct {
	TrustedProxies anyNode        `yaml:"trusted_proxies"`
	Evaluation     *rawEvaluation `yaml:"evaluation"` // see evaluation.go
}

type rawHookAuth struct {
	Basic    *rawBasic       `yaml:"basic"`
	Header   *rawHeaderToken `yaml:"header"`
	AllowIPs anyNode         `yaml:"allow_ips"`
}

type rawBasic struct {
	Username scalar `yaml:"username"`
	Password scalar `yaml:"password"`
}

type rawHeaderToken struct {
	Name  scalar `yaml:"name"`
	Value scalar `yaml:"value"`
}

type rawResponse struct {
	When        scalar `yaml:"when"`
	Status      scalar `yaml:"status"`
	Body        scalar `yaml:"body"`
	ContentType scalar `yaml:"content_type"`
}

// compileServer compiles the top-level server: section.
func (l *loader) compileServer(file string, s *rawServer) []netip.Prefix {
	if s == nil {
		return nil
	}
	for _, k := range emptyKeys(l.tree(file), "server") {
		l.errorf(file, k.at, "server.%s is empty: give it a value or remove it", k.name)
	}
	if s.TrustedProxies.Node == nil {
		return nil
	}
	// An empty list is allowed: it trusts no proxy, the safe direction.
	ps, _ := l.prefixList(file, "server.trusted_proxies", s.TrustedProxies.Node)
	return ps
}

// compileIngress compiles a hook's auth: and response: sections into hook.
func (l *loader) compileIngress(file, name string, h *rawHook, hook *Hook) {
	if h.Auth == nil && h.Response == nil {
		for _, k := range emptyKeys(l.tree(file), "hooks", name) {
			if k.name == "auth" || k.name == "response" {
				l.errorf(file, k.at, "hook %q: %s: is empty: give it a value or remove it", name, k.name)
			}
		}
		return
	}
	tree := l.tree(file)
	for _, section := range []string{"auth", "response"} {
		for _, k := range emptyKeys(tree, "hooks", name, section) {
			l.errorf(file, k.at, "hook %q: %s.%s is empty: give it a value or remove it", name, section, k.name)
		}
	}
	if a := h.Auth; a != nil {
		if a.Basic != nil {
			hook.Basic = l.basicAuth(file, keyPos(tree, "hooks", name, "auth", "basic"), name, a.Basic)
		}
		if a.Header != nil {
			hook.HeaderToken = l.headerToken(file, keyPos(tree, "hooks", name, "auth", "header"), name, a.Header)
			if hook.Basic != nil && hook.HeaderToken != nil && strings.EqualFold(hook.HeaderToken.Name, "Authorization") {
				l.errorf(file, a.Header.Name.pos, "hook %q: auth.header cannot use Authorization when auth.basic is set: both would need that header", name)
			}
		}
		if a.AllowIPs.Node != nil {
			ps, at := l.prefixList(file, fmt.Sprintf("hook %q: auth.allow_ips", name), a.AllowIPs.Node)
			if len(ps) == 0 && at != nil {
				l.errorf(file, *at, "hook %q: auth.allow_ips is empty, which would let every address in: list addresses or networks, or remove the key", name)
			}
			hook.AllowIPs = ps
		}
	}
	if r := h.Response; r != nil {
		hook.Response = l.response(file, name, r)
	}
}

// basicAuth compiles auth.basic; at is where basic: is written.
func (l *loader) basicAuth(file string, at pos, hook string, b *rawBasic) *BasicAuth {
	ok := true
	switch {
	case !b.Username.Set:
		l.errorf(file, at, "hook %q: auth.basic.username is required", hook)
		ok = false
	case b.Username.Value == "":
		l.errorf(file, b.Username.pos, "hook %q: auth.basic.username is empty (is its environment variable set?)", hook)
		ok = false
	case strings.Contains(b.Username.Value, ":"):
		l.errorf(file, b.Username.pos, "hook %q: auth.basic.username must not contain ':' (HTTP basic authentication cannot carry it)", hook)
		ok = false
	}
	switch {
	case !b.Password.Set:
		l.errorf(file, at, "hook %q: auth.basic.password is required", hook)
		ok = false
	case b.Password.Value == "":
		l.errorf(file, b.Password.pos, "hook %q: auth.basic.password is empty (is its environment variable set?): an empty password protects nothing", hook)
		ok = false
	}
	if !ok {
		return nil
	}
	return &BasicAuth{Username: b.Username.Value, Password: b.Password.Value}
}

// Headers that HTTP itself consumes or rewrites; a token in one of them
// could never be compared reliably.
var reservedHeaders = map[string]bool{
	"connection": true, "content-length": true, "host": true, "keep-alive": true,
	"proxy-connection": true, "te": true, "trailer": true, "transfer-encoding": true, "upgrade": true,
}

// headerToken compiles auth.header; at is where header: is written.
func (l *loader) headerToken(file string, at pos, hook string, t *rawHeaderToken) *HeaderToken {
	ok := true
	switch n := t.Name.Value; {
	case !t.Name.Set:
		l.errorf(file, at, "hook %q: auth.header.name is required (such as Authorization or X-Api-Key)", hook)
		ok = false
	case !validHeaderName(n):
		l.errorf(file, t.Name.pos, "hook %q: auth.header.name %q is not a valid header name: use letters, digits and - (such as X-Api-Key)", hook, n)
		ok = false
	case reservedHeaders[strings.ToLower(n)]:
		l.errorf(file, t.Name.pos, "hook %q: auth.header.name %s is used by HTTP itself and cannot carry a token: pick another header", hook, n)
		ok = false
	}
	switch v := t.Value.Value; {
	case !t.Value.Set:
		l.errorf(file, at, "hook %q: auth.header.value is required", hook)
		ok = false
	case v == "":
		l.errorf(file, t.Value.pos, "hook %q: auth.header.value is empty (is its environment variable set?): an empty token protects nothing", hook)
		ok = false
	case strings.TrimSpace(v) != v:
		l.errorf(file, t.Value.pos, "hook %q: auth.header.value starts or ends with white space, which HTTP strips from header values: it could never match", hook)
		ok = false
	case !validHeaderValue(v):
		l.errorf(file, t.Value.pos, "hook %q: auth.header.value contains a control character (a line break?), which a header cannot carry", hook)
		ok = false
	}
	if !ok {
		return nil
	}
	return &HeaderToken{Name: t.Name.Value, Value: t.Value.Value}
}

func (l *loader) response(file, hook string, r *rawResponse) *Response {
	resp := &Response{Status: 200}
	ok := true
	if r.When.Set && !l.exprText(file, &r.When, fmt.Sprintf("hook %q: response.when", hook)) {
		ok = false
	} else if r.When.Set {
		p, err := rules.CompileCondition(r.When.Value)
		if err != nil {
			l.exprError(file, r.When, fmt.Sprintf("hook %q: response.when", hook), err)
			ok = false
		}
		resp.When = p
	}
	if r.Status.Set {
		n, err := strconv.Atoi(strings.TrimSpace(r.Status.Value))
		if err != nil || n < 200 || n > 299 {
			l.errorf(file, r.Status.pos, "hook %q: response.status: want a 2xx status such as 200, got %q (the event is stored, so the sender must not be told that it failed)", hook, r.Status.Value)
			ok = false
		}
		resp.Status = n
	}
	if r.Body.Set {
		if resp.Status == 204 || resp.Status == 205 {
			l.errorf(file, r.Body.pos, "hook %q: response.body: a %d answer has no body; remove body: or use status 200", hook, resp.Status)
			ok = false
		}
		if !l.exprText(file, &r.Body, fmt.Sprintf("hook %q: response.body", hook)) {
			return nil
		}
		p, err := rules.CompileValue(r.Body.Value)
		if err != nil {
			l.exprError(file, r.Body, fmt.Sprintf("hook %q: response.body", hook), err)
			ok = false
		}
		resp.Body = p
	}
	if r.ContentType.Set {
		ct := r.ContentType.Value
		if _, _, err := mime.ParseMediaType(ct); err != nil || !validHeaderValue(ct) {
			l.errorf(file, r.ContentType.pos, "hook %q: response.content_type %q is not a media type such as application/json or text/plain; charset=utf-8", hook, ct)
			ok = false
		}
		resp.ContentType = ct
	}
	if !ok {
		return nil
	}
	return resp
}

// prefixList reads addresses and networks: a YAML list, or one string of
// comma-separated entries (so that it can come from one environment
// variable). A bare address is a network of one. what names the key in
// errors. at is where the list is written, nil when it could not be read.
func (l *loader) prefixList(file, what string, n ast.Node) ([]netip.Prefix, *pos) {
	n = unwrap(n)
	at := tokenPos(n.GetToken())
	var items []ast.Node
	switch v := n.(type) {
	case *ast.SequenceNode:
		items = v.Values
	case *ast.StringNode, *ast.LiteralNode:
		items = []ast.Node{n}
	default:
		l.errorf(file, at, "%s: want a list of addresses or networks such as [203.0.113.7, 10.0.0.0/8] or one string \"203.0.113.7, 10.0.0.0/8\"", what)
		return nil, nil
	}
	ctx := withLookup(context.Background(), l.lookup)
	var out []netip.Prefix
	bad := false
	for _, item := range items {
		var s scalar
		if err := s.UnmarshalYAML(ctx, item); err != nil {
			pe, _ := err.(*posError)
			if pe == nil {
				pe = &posError{tokenPos(item.GetToken()), err.Error()}
			}
			l.errorf(file, pe.pos, "%s: %s", what, pe.msg)
			bad = true
			continue
		}
		// Columns inside the text are exact only when it was written as it is
		// read, not filled in from the environment.
		literal := false
		if sn, ok := item.(*ast.StringNode); ok && sn.Value == s.Value {
			literal = true
		}
		off := 0
		for _, entry := range strings.Split(s.Value, ",") {
			lead := len(entry) - len(strings.TrimLeft(entry, " \t"))
			e := strings.TrimSpace(entry)
			p := s.pos
			if literal {
				p = s.at(off + lead)
			}
			off += len(entry) + 1
			if e == "" {
				continue
			}
			pfx, err := parsePrefix(e)
			if err != nil {
				l.errorf(file, p, "%s: %v", what, err)
				bad = true
				continue
			}
			out = append(out, pfx)
		}
	}
	if bad {
		return nil, nil
	}
	return out, &at
}

// parsePrefix reads 203.0.113.7, 10.0.0.0/8, 2001:db8::1 or 2001:db8::/32.
// Host bits after the prefix length are cleared: 10.1.2.3/8 is 10.0.0.0/8.
func parsePrefix(s string) (netip.Prefix, error) {
	bad := fmt.Errorf("%q is not an IP address or CIDR network (such as 203.0.113.7, 10.0.0.0/8 or 2001:db8::/32)", s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, bad
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			// ::ffff:10.0.0.0/104 means 10.0.0.0/8; senders' addresses are compared unmapped.
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, bad
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: an address with a zone (%%%s) cannot be matched; leave the zone out", s, a.Zone())
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// validHeaderName reports whether s is an HTTP field name (RFC 9110 token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s can be sent as a header value: no
// control characters but tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// emptyKey is a key written with no value.
type emptyKey struct {
	name string
	at   pos
}

// emptyKeys lists the keys of the mapping at path in tree that were given
// no value. Decoding cannot tell "basic:" with nothing under it from no
// basic: at all; for a security setting, the first is a mistake to report.
func emptyKeys(tree ast.Node, path ...string) []emptyKey {
	n, _ := findKey(tree, path...)
	var out []emptyKey
	for _, kv := range mappingValues(n) {
		if _, null := kv.Value.(*ast.NullNode); null {
			out = append(out, emptyKey{keyName(kv.Key), tokenPos(kv.Key.GetToken())})
		}
	}
	return out
}

// keyPos is where the last key of path that exists in tree is written, for
// problems with a block that has no value of its own to point at.
func keyPos(tree ast.Node, path ...string) pos {
	_, p := findKey(tree, path...)
	return p
}

// findKey walks the mappings of tree along path. It returns the value at
// the end (nil when the path does not exist) and the position of the
// deepest key found.
func findKey(tree ast.Node, path ...string) (ast.Node, pos) {
	n := tree
	var at pos
	for _, key := range path {
		var next ast.Node
		for _, kv := range mappingValues(n) {
			if keyName(kv.Key) == key {
				next = kv.Value
				at = tokenPos(kv.Key.GetToken())
				break
			}
		}
		if next == nil {
			return nil, at
		}
		n = next
	}
	return unwrap(n), at
}

func mappingValues(n ast.Node) []*ast.MappingValueNode {
	switch m := unwrap(n).(type) {
	case *ast.MappingNode:
		return m.Values
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}
	}
	return nil
}

func unwrap(n ast.Node) ast.Node {
	for {
		switch v := n.(type) {
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		default:
			return n
		}
	}
}

func keyName(k ast.MapKeyNode) string {
	if s, ok := k.(*ast.StringNode); ok {
		return s.Value
	}
	return k.String()
}
