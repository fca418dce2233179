package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/goccy/go-yaml/ast"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// action compiles one action template, reporting errors at the field that holds them.
func (l *loader) action(name string, a *rawAction) *actions.Action {
	if a == nil {
		l.errorf(l.main, pos{}, "action %q is empty", name)
		return nil
	}
	file := a.file
	// Template fields take ${…} values as text (see templateSource).
	what := func(field string) string { return fmt.Sprintf("action %q: %s", name, field) }
	okT := l.templateText(file, &a.URL, what("url"))
	for k, v := range a.Headers {
		okT = l.templateText(file, &v, what("headers."+k)) && okT
		a.Headers[k] = v
	}
	for k, v := range a.Query {
		okT = l.templateText(file, &v, what("query."+k)) && okT
		a.Query[k] = v
	}
	if a.Auth != nil {
		okT = l.templateText(file, &a.Auth.Bearer, what("auth.bearer")) && okT
	}
	if !okT {
		return nil
	}
	leaves := map[string]scalar{"url": a.URL, "method": a.Method}
	spec := actions.Spec{Method: a.Method.Value, URL: a.URL.Value}
	if !a.URL.Set {
		l.errorf(file, a.Method.pos, "action %q: url: is required", name)
		return nil
	}
	if len(a.Headers) > 0 {
		spec.Headers = map[string]string{}
		for k, v := range a.Headers {
			spec.Headers[k] = v.Value
			leaves["headers."+k] = v
		}
	}
	if len(a.Query) > 0 {
		spec.Query = map[string]string{}
		for k, v := range a.Query {
			spec.Query[k] = v.Value
			leaves["query."+k] = v
		}
	}
	if !l.bodyReadsEnv(file, a.Body, what) {
		return nil
	}
	body, err := a.Body.value("body", l.lookup, leaves)
	if err != nil {
		l.posErr(file, err)
		return nil
	}
	spec.Body = body
	if a.BodyRaw.Set {
		leaves["body_raw"] = a.BodyRaw
		switch a.BodyRaw.Value {
		case "true":
			spec.BodyRaw = true
		case "false":
		default:
			l.errorf(file, a.BodyRaw.pos, "action %q: body_raw: want true or false, got %q", name, a.BodyRaw.Value)
			return nil
		}
	}
	if a.Auth != nil {
		spec.Auth = &actions.AuthSpec{}
		if a.Auth.Bearer.Set {
			spec.Auth.Bearer = a.Auth.Bearer.Value
			leaves["auth.bearer"] = a.Auth.Bearer
		}
		if o := a.Auth.OAuth2; o != nil {
			spec.Auth.OAuth2 = &actions.OAuth2Spec{
				TokenURL:     o.TokenURL.Value,
				ClientID:     o.ClientID.Value,
				ClientSecret: o.ClientSecret.Value,
			}
			leaves["auth.oauth2.token_url"] = o.TokenURL
			leaves["auth.oauth2.client_id"] = o.ClientID
			leaves["auth.oauth2.client_secret"] = o.ClientSecret
			for _, s := range o.Scopes {
				spec.Auth.OAuth2.Scopes = append(spec.Auth.OAuth2.Scopes, s.Value)
			}
			if len(o.EndpointParams) > 0 {
				spec.Auth.OAuth2.EndpointParams = map[string]string{}
				for k, v := range o.EndpointParams {
					spec.Auth.OAuth2.EndpointParams[k] = v.Value
				}
			}
		}
	}
	if !l.signSpec(file, name, a, &spec, leaves) {
		return nil
	}
	if a.Timeout.Set {
		d, err := time.ParseDuration(a.Timeout.Value)
		if err != nil || d <= 0 {
			l.errorf(file, a.Timeout.pos, "action %q: timeout: want a positive duration such as 10s, got %q", name, a.Timeout.Value)
			return nil
		}
		spec.Timeout = d
	}
	if !l.delivery(name, file, a, &spec) {
		return nil
	}
	if a.Retry.Node != nil {
		sched, p, err := l.schedule(a.Retry.Node)
		if err != nil {
			l.errorf(file, p, "action %q: retry: %v", name, err)
			return nil
		}
		spec.Retry = sched
	}
	act, err := actions.Compile(name, spec)
	if err != nil {
		var fe *actions.FieldError
		if errors.As(err, &fe) {
			s, ok := leaves[fe.Field]
			if !ok {
				s = a.URL
			}
			field := signField(a, fe.Field)
			if strings.HasPrefix(field, "forward_headers.") {
				field = "forward_headers"
			}
			what := fmt.Sprintf("action %q: %s", name, field)
			if fe.Err == nil {
				l.errorf(file, s.pos, "%s: invalid", what)
			} else {
				l.exprError(file, s, what, fe.Err)
			}
			return nil
		}
		l.errorf(file, a.URL.pos, "action %q: %v", name, err)
		return nil
	}
	if a.OrderBy.Set {
		if !l.exprText(file, &a.OrderBy, what("order_by")) {
			return nil
		}
		p, err := rules.CompileValue(a.OrderBy.Value)
		if err != nil {
			l.exprError(file, a.OrderBy, what("order_by"), err)
			return nil
		}
		act.OrderBy = p
	}
	return act
}

// delivery reads how the relay schedules the action: concurrency:, rate:
// and breaker:.
func (l *loader) delivery(name, file string, a *rawAction, spec *actions.Spec) bool {
	if a.Concurrency.Set {
		n, err := strconv.Atoi(strings.TrimSpace(a.Concurrency.Value))
		if err != nil || n <= 0 {
			l.errorf(file, a.Concurrency.pos, "action %q: concurrency: want a positive number of attempts in flight such as 10, got %q", name, a.Concurrency.Value)
			return false
		}
		spec.Concurrency = n
	}
	if a.Rate.Set {
		r, err := parseRate(a.Rate.Value, "attempts")
		if err != nil {
			l.errorf(file, a.Rate.pos, "action %q: rate: %v", name, err)
			return false
		}
		spec.Rate = r
	}
	if b := a.Breaker; b != nil {
		if b.Failures.Set {
			n, err := strconv.Atoi(strings.TrimSpace(b.Failures.Value))
			if err != nil || n <= 0 {
				l.errorf(file, b.Failures.pos, "action %q: breaker.failures: want a positive number of consecutive failures such as 10, got %q", name, b.Failures.Value)
				return false
			}
			spec.Breaker.Failures = n
		}
		for _, f := range []struct {
			field string
			s     scalar
			to    *time.Duration
		}{{"cooldown", b.Cooldown, &spec.Breaker.Cooldown}, {"max_cooldown", b.MaxCooldown, &spec.Breaker.MaxCooldown}} {
			if !f.s.Set {
				continue
			}
			d, err := time.ParseDuration(strings.TrimSpace(f.s.Value))
			if err != nil || d <= 0 {
				l.errorf(file, f.s.pos, "action %q: breaker.%s: want a positive duration such as 30s, got %q", name, f.field, f.s.Value)
				return false
			}
			*f.to = d
		}
		cool := spec.Breaker.Cooldown
		if cool == 0 {
			cool = actions.DefaultBreakerCooldown
		}
		if spec.Breaker.MaxCooldown > 0 && spec.Breaker.MaxCooldown < cool {
			l.errorf(file, b.MaxCooldown.pos, "action %q: breaker.max_cooldown: %v is shorter than the cool-down of %v", name, spec.Breaker.MaxCooldown, cool)
			return false
		}
	}
	return true
}

// parseRate reads a rate of what (attempts, requests) such as 50/s,
// 1000/m or 10/h.
func parseRate(s, what string) (store.Rate, error) {
	count, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.Atoi(strings.TrimSpace(count))
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[strings.TrimSpace(unit)]
	if !ok || err != nil || n <= 0 || per == 0 {
		return store.Rate{}, fmt.Errorf("want %s per second, minute or hour such as 50/s or 1000/m, got %q", what, s)
	}
	return store.Rate{Count: n, Per: per}, nil
}

func (l *loader) posErr(file string, err error) {
	var pe *posError
	if errors.As(err, &pe) {
		l.errorf(file, pe.pos, "%s", pe.msg)
		return
	}
	l.errorf(file, pos{}, "%v", err)
}

// bodyReadsEnv is templateReadsEnv for every string of a body template,
// each read as written.
func (l *loader) bodyReadsEnv(file string, body anyNode, what func(field string) string) bool {
	written := map[string]scalar{}
	if _, err := body.value("body", func(string) (string, bool) { return "", true }, written); err != nil {
		return true // the body's own expansion says what is wrong
	}
	ok := true
	for path, s := range written {
		ok = l.templateReadsEnv(file, s, what(path)) && ok
	}
	return ok
}

// schedule reads a retry schedule: a list of durations, or one string of
// comma-separated durations (so that it can come from one environment variable).
// An empty list means a single attempt.
func (l *loader) schedule(n ast.Node) ([]time.Duration, pos, error) {
	v, err := nodeValue(n, "retry", l.lookup, nil)
	p := tokenPos(n.GetToken())
	if err != nil {
		var pe *posError
		if errors.As(err, &pe) {
			return nil, pe.pos, errors.New(pe.msg)
		}
		return nil, p, err
	}
	var items []string
	switch x := v.(type) {
	case string:
		for _, s := range strings.Split(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
	case []any:
		for _, it := range x {
			items = append(items, fmt.Sprint(it))
		}
	default:
		return nil, p, fmt.Errorf("want a list of durations such as [1m, 5m, 30m] or \"1m,5m,30m\"")
	}
	sched := make([]time.Duration, 0, len(items))
	for _, it := range items {
		d, err := time.ParseDuration(it)
		if err != nil || d < 0 {
			return nil, p, fmt.Errorf("%q is not a duration such as 30s, 5m or 2h", it)
		}
		sched = append(sched, d)
	}
	return sched, p, nil
}

// MaxBodyLimit is the largest max_body: a body is read into memory whole
// and stored whole.
const MaxBodyLimit = 1 << 30

var sizeUnits = map[string]int64{
	"": 1, "B": 1, "KB": 1000, "MB": 1000 * 1000, "GB": 1000 * 1000 * 1000,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
}

// parseSize reads a byte size: 1048576, 512KiB, 1MiB, 10MB. It refuses a
// size that is not positive or is above MaxBodyLimit, checking before it
// multiplies, so that no value can wrap around to a small or negative one.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	end := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '-' && r != '+' })
	if end < 0 {
		end = len(s)
	}
	num, unit := s[:end], strings.TrimSpace(s[end:])
	mult, ok := sizeUnits[unit]
	switch {
	case !ok && num != "" && strings.IndexFunc(unit, func(r rune) bool { return !unicode.IsLetter(r) }) < 0:
		return 0, fmt.Errorf("%s: unknown unit %q: use B, KB, MB, GB, KiB, MiB or GiB", s, unit)
	case !ok:
		return 0, fmt.Errorf("%q is not a size: want a positive whole number of bytes or a size such as 1MiB or 512KiB", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	negative := strings.HasPrefix(num, "-")
	switch {
	case negative:
		return 0, fmt.Errorf("%s is negative: want a positive size such as 1MiB or 512KiB", s)
	case errors.Is(err, strconv.ErrRange) || (err == nil && n > MaxBodyLimit/mult):
		return 0, fmt.Errorf("%s is too large: at most 1GiB, as a body is held in memory and stored whole", s)
	case err != nil:
		return 0, fmt.Errorf("%q is not a size: want a positive whole number of bytes or a size such as 1MiB or 512KiB", s)
	case n == 0:
		return 0, fmt.Errorf("%s: want a positive size such as 1MiB or 512KiB", s)
	}
	return n * mult, nil
}
