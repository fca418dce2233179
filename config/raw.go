package config

import (
	"context"
	"fmt"
	"strconv"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// The raw* types mirror the YAML files. Scalars and free-form values keep
// their position so that validation errors can name line and column.

type rawConfig struct {
	PublicURL   scalar                `yaml:"public_url"`
	Hooks       map[string]*rawHook   `yaml:"hooks"`
	Actions     map[string]*rawAction `yaml:"actions"`
	ActionFiles []scalar              `yaml:"action_files"`
	Server      *rawServer            `yaml:"server"`    // see ingress.go
	Egress      *rawEgress            `yaml:"egress"`    // see egress.go
	Retention   *rawRetention         `yaml:"retention"` // see retention.go
	Durability  scalar                `yaml:"durability"`
}

type rawActionFile struct {
	Actions map[string]*rawAction `yaml:"actions"`
}

type rawHook struct {
	Verify      *rawVerify   `yaml:"verify"`
	Token       scalar       `yaml:"token"`
	MaxBody     scalar       `yaml:"max_body"`
	RateLimit   scalar       `yaml:"rate_limit"`
	Idempotency *rawIdem     `yaml:"idempotency"`
	Rules       []scalar     `yaml:"rules"`
	Auth        *rawHookAuth `yaml:"auth"`     // see ingress.go
	Response    *rawResponse `yaml:"response"` // see ingress.go
}

type rawVerify struct {
	Scheme    scalar   `yaml:"scheme"`
	Header    scalar   `yaml:"header"`
	Algorithm scalar   `yaml:"algorithm"`
	Encoding  scalar   `yaml:"encoding"`
	Prefix    scalar   `yaml:"prefix"`
	Secret    scalar   `yaml:"secret"`
	Secrets   []scalar `yaml:"secrets"`
	Tolerance scalar   `yaml:"tolerance"`
}

type rawIdem struct {
	Key scalar `yaml:"key"`
	TTL scalar `yaml:"ttl"`
}

type rawAction struct {
	Method  scalar            `yaml:"method"`
	URL     scalar            `yaml:"url"`
	Headers map[string]scalar `yaml:"headers"`
	Query   map[string]scalar `yaml:"query"`
	Body    anyNode           `yaml:"body"`
	BodyRaw scalar            `yaml:"body_raw"`
	Auth    *rawAuth          `yaml:"auth"`
	Timeout scalar            `yaml:"timeout"`
	Retry   anyNode           `yaml:"retry"`

	Sign           *rawSign `yaml:"sign"`            // see sign.go
	ForwardHeaders []scalar `yaml:"forward_headers"` // see sign.go

	Concurrency scalar      `yaml:"concurrency"`
	Rate        scalar      `yaml:"rate"`
	Breaker     *rawBreaker `yaml:"breaker"`
	OrderBy     scalar      `yaml:"order_by"`

	file string // where it was defined
}

type rawBreaker struct {
	Failures    scalar `yaml:"failures"`
	Cooldown    scalar `yaml:"cooldown"`
	MaxCooldown scalar `yaml:"max_cooldown"`
}

type rawAuth struct {
	Bearer scalar     `yaml:"bearer"`
	OAuth2 *rawOAuth2 `yaml:"oauth2"`
}

type rawOAuth2 struct {
	TokenURL       scalar            `yaml:"token_url"`
	ClientID       scalar            `yaml:"client_id"`
	ClientSecret   scalar            `yaml:"client_secret"`
	Scopes         []scalar          `yaml:"scopes"`
	EndpointParams map[string]scalar `yaml:"endpoint_params"`
}

type rawRuleFile struct {
	Rules []rawRule `yaml:"rules"`
}

type rawRule struct {
	Name    scalar   `yaml:"name"`
	When    scalar   `yaml:"when"`
	Actions []scalar `yaml:"actions"`
}

// pos is a place in a file.
type pos struct{ Line, Col int }

func tokenPos(tk *token.Token) pos {
	if tk == nil || tk.Position == nil {
		return pos{}
	}
	return pos{tk.Position.Line, tk.Position.Column}
}

// posError is an error found while decoding a value, before the file name is known.
type posError struct {
	pos
	msg string
}

func (e *posError) Error() string { return e.msg }

type lookupKey struct{}

func withLookup(ctx context.Context, lookup func(string) (string, bool)) context.Context {
	return context.WithValue(ctx, lookupKey{}, lookup)
}

func lookupFrom(ctx context.Context) func(string) (string, bool) {
	if f, ok := ctx.Value(lookupKey{}).(func(string) (string, bool)); ok {
		return f
	}
	return func(string) (string, bool) { return "", false }
}

// scalar is a string-valued YAML scalar, environment-expanded, with its position.
type scalar struct {
	Value string
	Set   bool
	// raw is the text as written, before expansion: expressions and
	// templates are expanded from it with exprSource and templateSource.
	raw string
	pos
	// contentCol is where the text itself starts (after an opening quote).
	contentCol int
	// env are the values that ${VAR} references put into Value.
	env []string
}

func (s *scalar) UnmarshalYAML(ctx context.Context, n ast.Node) error {
	tk := n.GetToken()
	s.pos = tokenPos(tk)
	s.contentCol = s.Col
	var raw string
	switch v := n.(type) {
	case *ast.NullNode:
		return nil
	case *ast.StringNode:
		raw = v.Value
		if tk != nil && (tk.Type == token.DoubleQuoteType || tk.Type == token.SingleQuoteType) {
			s.contentCol++
		}
	case *ast.LiteralNode:
		raw = v.Value.Value
		s.Line++ // the text starts on the line after the | or >
		s.Col, s.contentCol = 1, 1
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		raw = tk.Value
	default:
		return &posError{s.pos, fmt.Sprintf("expected a single value, got %s", nodeKind(n))}
	}
	s.env = nil
	v, err := expandRecord(raw, lookupFrom(ctx), func(v string) { s.env = append(s.env, v) })
	if err != nil {
		return &posError{s.pos, err.Error()}
	}
	s.Value, s.Set, s.raw = v, true, raw
	return nil
}

// at returns the position of byte offset off inside the scalar's text.
func (s scalar) at(off int) pos {
	p := pos{s.Line, s.contentCol + off}
	if off > len(s.Value) {
		off = len(s.Value)
	}
	for i := 0; i < off; i++ {
		if s.Value[i] == '\n' {
			p.Line++
			p.Col = 1
		} else {
			p.Col++
		}
	}
	if p.Line != s.Line {
		return p
	}
	return pos{s.Line, s.contentCol + off}
}

// atLineCol maps a 1-based line and column inside the scalar's text to the file.
func (s scalar) atLineCol(line, col int) pos {
	if line <= 1 {
		return pos{s.Line, s.contentCol + col - 1}
	}
	return pos{s.Line + line - 1, col}
}

func nodeKind(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	}
	return n.Type().String()
}

// anyNode keeps a free-form YAML value as its syntax tree; it is turned into
// Go values (with environment expansion of strings) when compiled.
type anyNode struct {
	Node ast.Node
}

func (a *anyNode) UnmarshalYAML(n ast.Node) error {
	if _, null := n.(*ast.NullNode); !null {
		a.Node = n
	}
	return nil
}

// value converts the tree to Go values. Every string leaf is
// environment-expanded and its position recorded in leaves under a dotted
// path rooted at prefix ("body.data.email", "body.items.0").
func (a anyNode) value(prefix string, lookup func(string) (string, bool), leaves map[string]scalar) (any, error) {
	if a.Node == nil {
		return nil, nil
	}
	return nodeValue(a.Node, prefix, lookup, leaves)
}

func nodeValue(n ast.Node, path string, lookup func(string) (string, bool), leaves map[string]scalar) (any, error) {
	switch v := n.(type) {
	case *ast.TagNode:
		return nodeValue(v.Value, path, lookup, leaves)
	case *ast.AnchorNode:
		return nodeValue(v.Value, path, lookup, leaves)
	case *ast.MappingNode:
		m := make(map[string]any, len(v.Values))
		for _, kv := range v.Values {
			if err := mappingValue(kv, path, lookup, leaves, m); err != nil {
				return nil, err
			}
		}
		return m, nil
	case *ast.MappingValueNode:
		m := map[string]any{}
		if err := mappingValue(v, path, lookup, leaves, m); err != nil {
			return nil, err
		}
		return m, nil
	case *ast.SequenceNode:
		list := make([]any, len(v.Values))
		for i, item := range v.Values {
			x, err := nodeValue(item, path+"."+strconv.Itoa(i), lookup, leaves)
			if err != nil {
				return nil, err
			}
			list[i] = x
		}
		return list, nil
	case *ast.NullNode:
		return nil, nil
	case *ast.BoolNode:
		return v.Value, nil
	case *ast.IntegerNode:
		switch x := v.Value.(type) {
		case int64:
			return int(x), nil
		case uint64:
			return x, nil
		}
		return v.Value, nil
	case *ast.FloatNode:
		return v.Value, nil
	case *ast.StringNode, *ast.LiteralNode:
		var s scalar
		if err := s.UnmarshalYAML(context.WithValue(context.Background(), lookupKey{}, lookup), n); err != nil {
			return nil, err
		}
		// Every string leaf of a body is a template.
		text, err := templateSource(s.raw, lookup)
		if err != nil {
			return nil, &posError{s.pos, err.Error()}
		}
		s.Value = text
		if leaves != nil {
			leaves[path] = s
		}
		return s.Value, nil
	}
	return nil, &posError{tokenPos(n.GetToken()), fmt.Sprintf("unsupported value %s", nodeKind(n))}
}

func mappingValue(kv *ast.MappingValueNode, path string, lookup func(string) (string, bool), leaves map[string]scalar, m map[string]any) error {
	key := kv.Key.String()
	if sk, ok := kv.Key.(*ast.StringNode); ok {
		key = sk.Value
	}
	if _, dup := m[key]; dup {
		return &posError{tokenPos(kv.Key.GetToken()), fmt.Sprintf("duplicate key %q", key)}
	}
	x, err := nodeValue(kv.Value, path+"."+key, lookup, leaves)
	if err != nil {
		return err
	}
	m[key] = x
	return nil
}
