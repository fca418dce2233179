package config

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"

	"github.com/hookrelay/hookrelay/redact"
)

// secretSet gathers, while loading, every secret value the config knows and
// the names whose values are credentials in this config only.
type secretSet struct {
	values []string
	names  []string
	short  []string // where a secret too short to be masked by value is set
}

func (s *secretSet) add(where string, vs ...string) {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if len(v) < redact.MinSecretLen {
			s.short = append(s.short, where)
			continue
		}
		s.values = append(s.values, v)
	}
}

// credential adds a credential value and, when it is written as
// "<scheme> <credential>" (Bearer abc), the credential alone.
func (s *secretSet) credential(where, v string) {
	s.add(where, v)
	if scheme, cred, ok := strings.Cut(strings.TrimSpace(v), " "); ok && !strings.Contains(scheme, "{{") {
		s.add(where, cred)
	}
}

// literal reports whether a template has no interpolation: its whole value
// is then known at load.
func literal(v string) bool { return !strings.Contains(v, "{{") }

func (s *secretSet) hook(name string, h *rawHook, hook *Hook) {
	where := fmt.Sprintf("hook %q", name)
	if v := h.Verify; v != nil {
		if strings.EqualFold(v.Scheme.Value, "hmac") && v.Header.Value != "" {
			s.names = append(s.names, v.Header.Value)
		}
		all := append([]scalar{v.Secret}, v.Secrets...)
		for _, sec := range all {
			s.add(where+" verify secret", sec.Value)
			// Standard Webhooks secrets are whsec_ and the key in base64.
			if k, ok := strings.CutPrefix(sec.Value, "whsec_"); ok {
				s.add(where+" verify secret", k)
			}
		}
	}
	s.add(where+" token", hook.Token)
	if b := hook.Basic; b != nil {
		s.add(where+" auth.basic.password", b.Password)
		cred := b.Username + ":" + b.Password
		s.values = append(s.values, cred, base64.StdEncoding.EncodeToString([]byte(cred)))
	}
	if t := hook.HeaderToken; t != nil {
		s.names = append(s.names, t.Name)
		s.credential(where+" auth.header.value", t.Value)
	}
}

func (s *secretSet) action(name string, a *rawAction) {
	where := fmt.Sprintf("action %q", name)
	for k, v := range a.Headers {
		s.add(where+" headers."+k, v.env...)
		if redact.Sensitive(k) && literal(v.Value) {
			s.credential(where+" headers."+k, v.Value)
		}
	}
	for k, v := range a.Query {
		s.add(where+" query."+k, v.env...)
		if redact.Sensitive(k) && literal(v.Value) {
			s.add(where+" query."+k, v.Value)
		}
	}
	if u, err := url.Parse(a.URL.Value); err == nil {
		if p, ok := u.User.Password(); ok {
			s.add(where+" url password", p)
		}
		// A credential written into the URL's query (?access_token=…).
		for k, vs := range u.Query() {
			for _, v := range vs {
				if redact.Sensitive(k) && literal(v) {
					s.add(where+" url query "+k, v)
				}
			}
		}
	}
	if sg := a.Sign; sg != nil {
		for _, v := range sg.secrets {
			s.add(where+" sign secret", v.Value)
			s.add(where+" sign secret", v.env...)
			// A Standard Webhooks secret is whsec_ and the key in base64.
			if k, ok := strings.CutPrefix(v.Value, "whsec_"); ok {
				s.add(where+" sign secret", k)
			}
		}
		if strings.EqualFold(sg.Scheme.Value, "hmac") && sg.Header.Value != "" {
			s.names = append(s.names, sg.Header.Value)
		}
	}
	if au := a.Auth; au != nil {
		s.add(where+" auth.bearer", au.Bearer.env...)
		if au.Bearer.Set && literal(au.Bearer.Value) {
			s.credential(where+" auth.bearer", au.Bearer.Value)
		}
		if o := au.OAuth2; o != nil {
			s.add(where+" auth.oauth2.client_secret", o.ClientSecret.Value)
			// Endpoint parameters are mostly an audience or a resource URL;
			// only credential-named ones are secret.
			for k, v := range o.EndpointParams {
				if redact.Sensitive(k) {
					s.add(where+" auth.oauth2.endpoint_params."+k, v.Value)
				}
			}
		}
	}
}

// Redactor masks every secret this config knows, by value, and the
// credential names and patterns every config masks. The admin API, the
// CLI and the logs show nothing that has not passed through it.
func (c *Config) Redactor() *redact.Redactor {
	if c == nil {
		return nil
	}
	return c.redactor
}

// ShownKey is an event's idempotency key as it may be shown: masked
// whole when the hook's key expression reads a credential, as
// body.UserToken would, and masked by value and pattern otherwise.
func (c *Config) ShownKey(hook, key string) string {
	if c == nil {
		return (*redact.Redactor)(nil).String(key)
	}
	red := c.Redactor()
	if h := c.Hooks[hook]; h != nil && h.Key != nil && red.ReadsCredential(h.Key.Source()) {
		return redact.Mask
	}
	return red.String(key)
}
