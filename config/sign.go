package config

// An action's outbound identity: sign: (the request signed as a webhook
// sender would) and forward_headers: (inbound headers passed on).

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/hookrelay/hookrelay/actions"
)

type rawSign struct {
	Scheme    scalar `yaml:"scheme"`
	Header    scalar `yaml:"header"`
	Algorithm scalar `yaml:"algorithm"`
	Encoding  scalar `yaml:"encoding"`
	Prefix    scalar `yaml:"prefix"`
	// Secret is one secret; a list there is refused with a pointer to
	// Secrets, the one form for several.
	Secret  anyNode  `yaml:"secret"`
	Secrets []scalar `yaml:"secrets"`

	secrets []scalar // Secret or Secrets as read, for positions and redaction
	single  bool     // the secret was given as secret:
}

// signSpec reads an action's sign: section into spec, recording the
// position of each field in leaves for the errors of actions.Compile. ok
// is false when a problem was reported.
func (l *loader) signSpec(file, name string, a *rawAction, spec *actions.Spec, leaves map[string]scalar) bool {
	tree := l.tree(file)
	for _, k := range emptyKeys(tree, "actions", name) {
		switch k.name {
		case "sign":
			l.errorf(file, k.at, "action %q: sign: is empty: give it a scheme and a secret, or remove it", name)
			return false
		case "forward_headers":
			l.errorf(file, k.at, "action %q: forward_headers: is empty: list header names, or remove it", name)
			return false
		}
	}
	for i, h := range a.ForwardHeaders {
		spec.ForwardHeaders = append(spec.ForwardHeaders, h.Value)
		leaves["forward_headers."+strconv.Itoa(i)] = h
	}
	s := a.Sign
	if s == nil {
		return true
	}
	at := keyPos(tree, "actions", name, "sign")
	for _, k := range emptyKeys(tree, "actions", name, "sign") {
		if k.name != "secret" && k.name != "secrets" {
			l.errorf(file, k.at, "action %q: sign.%s is empty: give it a value or remove it", name, k.name)
			return false
		}
	}
	// A field that is not written is reported where sign: is.
	leaf := func(v scalar) scalar {
		if v.Set {
			return v
		}
		return scalar{pos: at}
	}
	leaves["sign.scheme"] = leaf(s.Scheme)
	leaves["sign.header"] = leaf(s.Header)
	leaves["sign.algorithm"] = leaf(s.Algorithm)
	leaves["sign.encoding"] = leaf(s.Encoding)
	leaves["sign.prefix"] = leaf(s.Prefix)
	leaves["sign.secrets"] = scalar{pos: at}

	if s.Secret.Node != nil {
		if len(s.Secrets) > 0 {
			l.errorf(file, tokenPos(s.Secret.Node.GetToken()), "action %q: sign: give secret: (one) or secrets: (a list), not both", name)
			return false
		}
		if _, list := s.Secret.Node.(*ast.SequenceNode); list {
			l.errorf(file, tokenPos(s.Secret.Node.GetToken()), "action %q: sign.secret: takes one secret; for several (rotation) write secrets: [new, old]", name)
			return false
		}
		var v scalar
		if err := v.UnmarshalYAML(withLookup(context.Background(), l.lookup), s.Secret.Node); err != nil {
			l.posErr(file, err)
			return false
		}
		s.secrets, s.single = []scalar{v}, true
	} else {
		// Empty entries are dropped so that the previous secret of a
		// rotation (${SIGN_SECRET_PREVIOUS:-}) can be left unset.
		for _, v := range s.Secrets {
			if v.Value != "" {
				s.secrets = append(s.secrets, v)
			}
		}
		if len(s.Secrets) > 0 && len(s.secrets) == 0 {
			leaves["sign.secrets"] = s.Secrets[0]
		}
	}
	sp := &actions.SignSpec{
		Scheme: s.Scheme.Value, Header: s.Header.Value, Algorithm: s.Algorithm.Value,
		Encoding: s.Encoding.Value, Prefix: s.Prefix.Value,
	}
	for i, v := range s.secrets {
		sp.Secrets = append(sp.Secrets, v.Value)
		leaves["sign.secrets."+strconv.Itoa(i)] = v
	}
	spec.Sign = sp
	return true
}

// signField is how an actions.Compile field of sign: is named in an error:
// as the config writes it (sign.secret for a single secret:, sign.secrets
// with the secret's place in the list otherwise).
func signField(a *rawAction, field string) string {
	rest, ok := strings.CutPrefix(field, "sign.secrets.")
	if !ok || a.Sign == nil {
		return field
	}
	if a.Sign.single {
		return "sign.secret"
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i >= len(a.Sign.secrets) {
		return field
	}
	return fmt.Sprintf("sign.secrets: secret #%d", i+1)
}

// credentialHeaders are the inbound headers of this config's hooks that
// carry a credential but are not credentials by name everywhere: a generic
// hmac hook's signature header and an auth.header name.
func credentialHeaders(raw map[string]*rawHook) map[string]string {
	out := map[string]string{}
	for name, h := range raw {
		if h == nil {
			continue
		}
		if v := h.Verify; v != nil && strings.EqualFold(v.Scheme.Value, "hmac") && v.Header.Value != "" {
			out[strings.ToLower(v.Header.Value)] = fmt.Sprintf("it carries the signature of hook %q", name)
		}
		if au := h.Auth; au != nil && au.Header != nil && au.Header.Name.Value != "" {
			out[strings.ToLower(au.Header.Name.Value)] = fmt.Sprintf("it carries the auth.header token of hook %q", name)
		}
	}
	return out
}

// checkForwarded refuses forward_headers that name a credential header of
// one of the config's hooks.
func (l *loader) checkForwarded(all map[string]*rawAction, hooks map[string]*rawHook) {
	creds := credentialHeaders(hooks)
	if len(creds) == 0 {
		return
	}
	for name, a := range all {
		if a == nil {
			continue
		}
		for _, h := range a.ForwardHeaders {
			if why, ok := creds[strings.ToLower(strings.TrimSpace(h.Value))]; ok {
				l.errorf(a.file, h.pos, "action %q: forward_headers: %s cannot be forwarded: %s, and the receiver could replay it", name, h.Value, why)
			}
		}
	}
}
