package actions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/hookrelay/hookrelay/rules"
)

// ErrPermanent marks a failure that retrying cannot fix: the action cannot
// be rendered for this event, or would send something refused (a header
// value with CR or LF, a URL pointing elsewhere). The delivery is dead at once.
var ErrPermanent = errors.New("permanent failure")

// Request is a rendered request, ready to send or to show in a dry run.
// Header may hold a bearer token: show it through Redact.
type Request struct {
	Method, URL string
	Header      http.Header
	Body        []byte
}

// renderError is a permanent failure to render one field.
type renderError struct {
	field string
	err   error
}

func (e *renderError) Error() string        { return "render " + e.field + ": " + e.err.Error() }
func (e *renderError) Unwrap() error        { return e.err }
func (e *renderError) Is(target error) bool { return target == ErrPermanent }

func permanent(field string, err error) error { return &renderError{field: field, err: err} }

// Render renders the action for env. OAuth2 tokens, the Idempotency-Key,
// the User-Agent and the signature headers (SignedHeaders) are added by
// Client.Do at each attempt, not here. Errors wrap ErrPermanent. An action
// with BodyRaw sends env.RawBody() as it is.
func (a *Action) Render(env rules.Env) (*Request, error) {
	req, _, err := a.render(env)
	return req, err
}

// render also returns the secrets it put into the request, so that the
// caller can keep them out of everything it shows.
func (a *Action) render(env rules.Env) (*Request, []string, error) {
	u, err := a.renderURL(env)
	if err != nil {
		return nil, nil, err
	}
	req := &Request{Method: a.Method, URL: u, Header: http.Header{}}
	// Forwarded headers first: a header the action renders itself wins.
	for _, name := range a.forward {
		v, ok := env.Headers[strings.ToLower(name)]
		if !ok {
			continue
		}
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, nil, permanent("forward_headers", fmt.Errorf("the inbound %s contains a control character", name))
		}
		req.Header.Set(name, v)
	}
	for _, h := range a.headers {
		v, err := h.tpl.RenderString(env)
		if err != nil {
			return nil, nil, permanent("headers."+h.name, err)
		}
		if !httpguts.ValidHeaderFieldValue(v) {
			// The value itself is not shown: it may be a secret.
			return nil, nil, permanent("headers."+h.name, errors.New("the value contains CR, LF or another control character"))
		}
		req.Header.Set(h.name, v)
	}
	var secrets []string
	if a.bearer != nil {
		tok, err := a.bearer.RenderString(env)
		if err != nil {
			return nil, nil, permanent("auth.bearer", err)
		}
		if !validToken(tok) {
			return nil, nil, permanent("auth.bearer", errors.New("the token is empty or contains spaces or control characters"))
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		secrets = append(secrets, tok)
	}
	switch {
	case a.bodyRaw:
		req.Body = env.RawBody()
		if req.Body == nil {
			req.Body = []byte{}
		}
		if req.Header.Get("Content-Type") == "" {
			ct := env.Headers["content-type"]
			if ct == "" || !httpguts.ValidHeaderFieldValue(ct) {
				ct = "application/json"
			}
			req.Header.Set("Content-Type", ct)
		}
	case a.body != nil:
		v, err := a.body.render(env)
		if err != nil {
			return nil, nil, permanent("body", err)
		}
		if err := req.setJSON(v); err != nil {
			return nil, nil, permanent("body", err)
		}
	}
	return req, secrets, nil
}

// setJSON makes v the body, encoded as JSON, with Content-Type
// application/json unless the action names another.
func (req *Request) setJSON(v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	req.Body = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return nil
}

func (a *Action) renderURL(env rules.Env) (string, error) {
	s, err := a.renderPath(env)
	if err != nil {
		return "", err
	}
	if a.query != nil {
		q, err := a.query.RenderString(env)
		if err != nil {
			return "", permanent("url", err)
		}
		s += q
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", permanent("url", fmt.Errorf("the rendered URL is not valid: %v", err))
	}
	// The literal prefix already fixes the origin; checking the result too
	// keeps that true whatever the escaping does.
	if !strings.EqualFold(u.Scheme, a.scheme) || strings.ToLower(u.Host) != a.host || u.User != nil {
		return "", permanent("url", fmt.Errorf("the rendered URL does not go to %s://%s", a.scheme, a.host))
	}
	if len(a.params) > 0 {
		vals := url.Values{}
		for _, p := range a.params {
			v, err := p.tpl.RenderString(env)
			if err != nil {
				return "", permanent("query."+p.name, err)
			}
			vals.Add(p.name, v)
		}
		if u.RawQuery == "" {
			u.RawQuery = vals.Encode()
		} else {
			u.RawQuery += "&" + vals.Encode()
		}
	}
	return u.String(), nil
}
