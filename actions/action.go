package actions

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// DefaultTimeout bounds one attempt when a Spec names no timeout.
const DefaultTimeout = 10 * time.Second

// DefaultRetry is the wait before each retry when a Spec names no schedule:
// seven attempts in all over about 33 hours, the schedule senders such as
// OnCloudWine use themselves.
var DefaultRetry = []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 6 * time.Hour, 24 * time.Hour}

// Spec is an action as the config describes it. String values are
// templates with {{ expr }} interpolations (see rules.CompileTemplate).
type Spec struct {
	Method string // default POST
	// URL is a template whose scheme and host must be written out: an
	// interpolation may only come after them, in the path (values
	// url.PathEscape'd; a value that is empty, holds a slash or forms a
	// dot segment makes the delivery dead: see renderPath) or the query
	// (values url.QueryEscape'd).
	URL     string
	Headers map[string]string // templates; a rendered value with CR or LF is refused
	Query   map[string]string // templates, added to the URL's query
	// Body is a YAML structure (map[string]any, []any, scalars) whose string
	// leaves are templates; it is sent as JSON. A leaf that is exactly one
	// interpolation keeps its type. nil sends no body.
	Body any
	// BodyRaw sends the event's body as it arrived, byte for byte, with the
	// Content-Type it came with: a forward that changes nothing. Body must
	// then be nil.
	BodyRaw bool
	Auth    *AuthSpec
	// Sign signs every request at each attempt; nil sends it unsigned.
	Sign *SignSpec
	// ForwardHeaders are inbound headers of the event passed on as they
	// came (names case-insensitive; absent ones skipped). Hop-by-hop and
	// credential headers are refused. A header of Headers with the same
	// name wins.
	ForwardHeaders []string
	Timeout        time.Duration   // one attempt, token fetch included; default 10s
	Retry          []time.Duration // waits between attempts; nil means DefaultRetry, empty means one attempt

	// Concurrency caps the attempts in flight at once across every
	// process on the store; 0 means DefaultConcurrency.
	Concurrency int
	// Rate caps attempts per period across every process on the store;
	// zero means no limit.
	Rate store.Rate
	// Breaker opens the action's circuit after consecutive failures; zero
	// fields take the defaults.
	Breaker Breaker
}

// Breaker configures an action's circuit breaker: after Failures
// consecutive failed attempts (no answer, a timeout, 408, 429 or 5xx) its
// deliveries wait, without attempts, for Cooldown; then one probe is sent.
// While probes fail, the wait doubles up to MaxCooldown.
type Breaker struct {
	Failures    int
	Cooldown    time.Duration
	MaxCooldown time.Duration
}

// Defaults of an action's delivery settings.
const (
	DefaultConcurrency        = 10
	DefaultBreakerFailures    = 10
	DefaultBreakerCooldown    = 30 * time.Second
	DefaultBreakerMaxCooldown = 10 * time.Minute
)

// AuthSpec says how requests authenticate; at most one of its fields is set.
type AuthSpec struct {
	Bearer string      // template: "{{ body.UserToken }}" or a literal token
	OAuth2 *OAuth2Spec // client credentials grant
}

// OAuth2Spec is an OAuth 2.0 client credentials grant (RFC 6749 §4.4).
type OAuth2Spec struct {
	TokenURL       string
	ClientID       string
	ClientSecret   string
	Scopes         []string
	EndpointParams map[string]string
}

// FieldError locates a compile error inside a Spec. Field is a dotted path
// using the YAML key names ("url", "headers.Authorization",
// "body.data.email", "body.items.0", "auth.bearer", "retry"); Offset is a
// byte offset inside that field's string; Err is the cause, often a
// *rules.TemplateError.
type FieldError struct {
	Field  string
	Offset int
	Err    error
}

func (e *FieldError) Error() string {
	if e.Err == nil {
		return e.Field + ": invalid"
	}
	return e.Field + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// Action is a compiled action, safe for concurrent use.
type Action struct {
	Name        string
	Method      string
	Retry       []time.Duration
	Timeout     time.Duration
	Concurrency int
	Rate        store.Rate
	Breaker     Breaker
	// OrderBy, when set, is the expression (order_by:) whose value for an
	// event is the ordering lane of the event's delivery of this action
	// (store.Delivery.Lane): deliveries with the same value are attempted
	// one at a time, in the order their events arrived.
	OrderBy *rules.Program

	scheme, host string          // the URL's literal origin
	origin       int             // length of "scheme://host[:port]" at the start of path
	path, query  *rules.Template // the URL before and after its '?'
	headers      []namedTemplate // canonical names, sorted
	params       []namedTemplate // query parameters, sorted
	body         *bodyValue      // nil: no body
	bodyRaw      bool            // send the event's raw body
	bearer       *rules.Template
	oauth2       *clientcredentials.Config
	sign         *signer  // nil: requests are not signed
	forward      []string // inbound headers passed on, canonical
	shape        *rules.Shape
}

type namedTemplate struct {
	name string
	tpl  *rules.Template
}

// Lane is the ordering lane of an event's delivery of the action: its
// order_by value for the event; "" without order_by. An error (the value
// is absent or empty) leaves the delivery in no lane.
func (a *Action) Lane(env rules.Env) (string, error) {
	if a == nil || a.OrderBy == nil {
		return "", nil
	}
	return a.OrderBy.KeyString(env)
}

// MaxAttempts is how many attempts a delivery of this action gets.
func (a *Action) MaxAttempts() int { return len(a.Retry) + 1 }

// BodyRaw reports whether the action sends the event's body as it arrived.
func (a *Action) BodyRaw() bool { return a.bodyRaw }

// Interpolates reports whether rendering the action reads the event at all
// (any {{ }} in its URL, query, headers, bearer token or body). One that
// does not — a plain forward of the raw body — needs no decoded payload.
func (a *Action) Interpolates() bool {
	if a.body != nil || !a.path.IsLiteral() || (a.query != nil && !a.query.IsLiteral()) ||
		(a.bearer != nil && !a.bearer.IsLiteral()) {
		return true
	}
	for _, h := range a.headers {
		if !h.tpl.IsLiteral() {
			return true
		}
	}
	for _, q := range a.params {
		if !q.tpl.IsLiteral() {
			return true
		}
	}
	return false
}

// reservedHeaders are set by hookrelay itself or by the HTTP client.
var reservedHeaders = map[string]string{
	"Host":              "it is taken from the URL",
	"Content-Length":    "it is computed from the body",
	"Transfer-Encoding": "it is chosen by the HTTP client",
	"Connection":        "it is managed by the HTTP client",
	"Idempotency-Key":   "hookrelay sets it to the delivery id",
}

// Compile checks and compiles s once, at load: a typo in any template stops
// startup instead of failing the first delivery.
func Compile(name string, s Spec) (*Action, error) {
	a := &Action{Name: name, Method: strings.ToUpper(strings.TrimSpace(s.Method)), Timeout: s.Timeout}
	if a.Method == "" {
		a.Method = http.MethodPost
	}
	if !httpguts.ValidHeaderFieldName(a.Method) { // a method is a token, as a header name is
		return nil, &FieldError{Field: "method", Err: fmt.Errorf("%q is not an HTTP method", s.Method)}
	}
	if err := a.compileURL(s.URL); err != nil {
		return nil, err
	}
	sg, err := compileSign(s.Sign)
	if err != nil {
		return nil, err
	}
	a.sign = sg

	names := slices.Sorted(maps.Keys(s.Headers))
	for _, k := range names {
		field := "headers." + k
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, &FieldError{Field: field, Err: fmt.Errorf("%q is not a valid header name", k)}
		}
		canon := http.CanonicalHeaderKey(k)
		if why, ok := reservedHeaders[canon]; ok {
			return nil, &FieldError{Field: field, Err: fmt.Errorf("%s cannot be set: %s", canon, why)}
		}
		if canon == "Authorization" && s.Auth != nil && (s.Auth.Bearer != "" || s.Auth.OAuth2 != nil) {
			return nil, &FieldError{Field: field, Err: errors.New("the auth: section sets this header already: remove one of the two")}
		}
		for _, h := range a.headers {
			if h.name == canon {
				return nil, &FieldError{Field: field, Err: fmt.Errorf("header %s is given twice", canon)}
			}
		}
		if a.sign != nil && slices.Contains(a.sign.headers(), canon) {
			return nil, &FieldError{Field: field, Err: fmt.Errorf("%s is set by sign: at each attempt: remove one of the two", canon)}
		}
		tpl, err := compileTemplate(field, s.Headers[k], nil)
		if err != nil {
			return nil, err
		}
		if tpl.IsLiteral() && !httpguts.ValidHeaderFieldValue(tpl.Source()) {
			return nil, &FieldError{Field: field, Err: errors.New("the value contains a control character such as CR or LF")}
		}
		a.headers = append(a.headers, namedTemplate{canon, tpl})
	}
	sort.Slice(a.headers, func(i, j int) bool { return a.headers[i].name < a.headers[j].name })

	if err := a.compileForward(s.ForwardHeaders); err != nil {
		return nil, err
	}

	for _, k := range slices.Sorted(maps.Keys(s.Query)) {
		tpl, err := compileTemplate("query."+k, s.Query[k], nil)
		if err != nil {
			return nil, err
		}
		a.params = append(a.params, namedTemplate{k, tpl})
	}

	if s.BodyRaw && s.Body != nil {
		return nil, &FieldError{Field: "body_raw", Err: errors.New("body_raw sends the event's body as it is, so body cannot be set too")}
	}
	a.bodyRaw = s.BodyRaw
	if s.Body != nil {
		b, err := compileBody("body", s.Body)
		if err != nil {
			return nil, err
		}
		a.body = b
	}

	if err := a.compileAuth(s.Auth); err != nil {
		return nil, err
	}

	switch {
	case s.Timeout < 0:
		return nil, &FieldError{Field: "timeout", Err: fmt.Errorf("want a positive duration, got %v", s.Timeout)}
	case s.Timeout == 0:
		a.Timeout = DefaultTimeout
	}

	a.Concurrency, a.Rate, a.Breaker = s.Concurrency, s.Rate, s.Breaker
	switch {
	case a.Concurrency < 0:
		return nil, &FieldError{Field: "concurrency", Err: fmt.Errorf("want a positive number, got %d", a.Concurrency)}
	case a.Concurrency == 0:
		a.Concurrency = DefaultConcurrency
	}
	if a.Rate.Count < 0 || a.Rate.Per < 0 {
		return nil, &FieldError{Field: "rate", Err: fmt.Errorf("want a positive rate such as 50/s, got %v", a.Rate)}
	}
	if a.Breaker.Failures < 0 || a.Breaker.Cooldown < 0 || a.Breaker.MaxCooldown < 0 {
		return nil, &FieldError{Field: "breaker", Err: errors.New("want positive values")}
	}
	if a.Breaker.Failures == 0 {
		a.Breaker.Failures = DefaultBreakerFailures
	}
	if a.Breaker.Cooldown == 0 {
		a.Breaker.Cooldown = DefaultBreakerCooldown
	}
	if a.Breaker.MaxCooldown == 0 {
		a.Breaker.MaxCooldown = max(DefaultBreakerMaxCooldown, a.Breaker.Cooldown)
	}
	if a.Breaker.MaxCooldown < a.Breaker.Cooldown {
		return nil, &FieldError{Field: "breaker.max_cooldown", Err: fmt.Errorf("%v is shorter than the cool-down %v", a.Breaker.MaxCooldown, a.Breaker.Cooldown)}
	}

	if s.Retry == nil {
		a.Retry = append([]time.Duration(nil), DefaultRetry...)
	} else {
		a.Retry = make([]time.Duration, len(s.Retry))
		for i, d := range s.Retry {
			if d < 0 {
				return nil, &FieldError{Field: "retry", Err: fmt.Errorf("wait %d is negative (%v)", i+1, d)}
			}
			a.Retry[i] = d
		}
	}
	a.shape = a.readShape()
	return a, nil
}

// BodyShape is what rendering the action reads of an event's payload
// (rules.DecodeBodyShaped); nil when it reads none of it.
func (a *Action) BodyShape() *rules.Shape { return a.shape }

func (a *Action) readShape() *rules.Shape {
	shapes := []*rules.Shape{a.path.BodyShape(), a.query.BodyShape(), a.bearer.BodyShape(), a.body.bodyShape()}
	for _, ts := range [][]namedTemplate{a.headers, a.params} {
		for _, t := range ts {
			shapes = append(shapes, t.tpl.BodyShape())
		}
	}
	return rules.Union(shapes...)
}

// compileURL checks that the scheme and host are written out, then compiles
// the part before the first '?' for renderPath and the rest with query
// escaping, so that a value can neither leave its path segment nor add a
// parameter.
func (a *Action) compileURL(raw string) error {
	if strings.TrimSpace(raw) == "" {
		return &FieldError{Field: "url", Err: errors.New("is required")}
	}
	lower := strings.ToLower(raw)
	var scheme string
	switch {
	case strings.HasPrefix(lower, "https://"):
		scheme = "https"
	case strings.HasPrefix(lower, "http://"):
		scheme = "http"
	default:
		return &FieldError{Field: "url", Err: errors.New("must start with http:// or https://")}
	}
	start := len(scheme) + 3
	end := len(raw)
	if i := strings.IndexAny(raw[start:], "/?#"); i >= 0 {
		end = start + i
	}
	if open := strings.Index(raw, "{{"); open >= 0 && open < end {
		return &FieldError{Field: "url", Offset: open, Err: errors.New("the scheme and host must be written out, followed by '/': an interpolation cannot choose where requests go")}
	}
	origin, err := url.Parse(raw[:end])
	if err != nil || origin.Host == "" || origin.Hostname() == "" {
		return &FieldError{Field: "url", Offset: start, Err: fmt.Errorf("%q has no valid host", raw[:end])}
	}
	if origin.User != nil {
		return &FieldError{Field: "url", Offset: start, Err: errors.New("credentials in the URL would be shown wherever the URL is (use auth or headers instead)")}
	}
	if why := numericHost(origin.Hostname()); why != "" {
		return &FieldError{Field: "url", Offset: start, Err: fmt.Errorf("host %q is %s: write the address out in full", origin.Hostname(), why)}
	}
	a.scheme, a.host = scheme, strings.ToLower(origin.Host)

	split := queryStart(raw)
	// No escape here: renderPath judges and escapes each value itself.
	path, err := compileTemplate("url", raw[:split], nil)
	if err != nil {
		return err
	}
	if err := checkLiteralPath(raw, path.Pieces(), end); err != nil {
		return err
	}
	a.path, a.origin = path, end
	if split < len(raw) {
		q, err := compileTemplate("url", raw[split:], url.QueryEscape)
		if err != nil {
			// Offsets count from the start of the whole URL.
			var fe *FieldError
			if errors.As(err, &fe) {
				fe.Offset += split
			}
			var te *rules.TemplateError
			if errors.As(err, &te) {
				te.Offset += split
			}
			return err
		}
		a.query = q
	}
	return nil
}

// queryStart is the index of the first '?' outside {{ }} (len(s) if none).
func queryStart(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "{{"):
			depth++
			i++
		case strings.HasPrefix(s[i:], "}}") && depth > 0:
			depth--
			i++
		case s[i] == '?' && depth == 0:
			return i
		}
	}
	return len(s)
}

func (a *Action) compileAuth(s *AuthSpec) error {
	if s == nil {
		return nil
	}
	if s.Bearer != "" && s.OAuth2 != nil {
		return &FieldError{Field: "auth", Err: errors.New("set bearer or oauth2, not both")}
	}
	if s.Bearer != "" {
		tpl, err := compileTemplate("auth.bearer", s.Bearer, nil)
		if err != nil {
			return err
		}
		if tpl.IsLiteral() && !validToken(tpl.Source()) {
			return &FieldError{Field: "auth.bearer", Err: errors.New("the token contains spaces or control characters")}
		}
		a.bearer = tpl
	}
	if o := s.OAuth2; o != nil {
		u, err := url.Parse(o.TokenURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &FieldError{Field: "auth.oauth2.token_url", Err: errors.New("want an absolute http:// or https:// URL")}
		}
		if o.ClientID == "" {
			return &FieldError{Field: "auth.oauth2.client_id", Err: errors.New("is required")}
		}
		params := url.Values{}
		for k, v := range o.EndpointParams {
			params.Set(k, v)
		}
		a.oauth2 = &clientcredentials.Config{
			ClientID:       o.ClientID,
			ClientSecret:   o.ClientSecret,
			TokenURL:       o.TokenURL,
			Scopes:         append([]string(nil), o.Scopes...),
			EndpointParams: params,
		}
	}
	return nil
}

// validToken reports whether s can follow "Bearer " in a header.
func validToken(s string) bool {
	return s != "" && httpguts.ValidHeaderFieldValue(s) && !strings.ContainsAny(s, " \t")
}

func compileTemplate(field, src string, escape func(string) string) (*rules.Template, error) {
	tpl, err := rules.CompileTemplate(src, escape)
	if err != nil {
		fe := &FieldError{Field: field, Err: err}
		var te *rules.TemplateError
		if errors.As(err, &te) {
			fe.Offset = te.Offset
		}
		return nil, fe
	}
	return tpl, nil
}
