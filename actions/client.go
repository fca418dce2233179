package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-resty/resty/v2"
	"golang.org/x/oauth2"

	"github.com/hookrelay/hookrelay/redact"
	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// DefaultMaxResponse is how much of a response body a Result keeps.
const DefaultMaxResponse = 4096

// ClientOptions configures a Client.
type ClientOptions struct {
	UserAgent string // e.g. "hookrelay/0.1.0"
	// Transport sends the requests. nil: a clone of http.DefaultTransport,
	// which reaches any address; GuardedTransport refuses private ones.
	Transport   http.RoundTripper
	MaxResponse int64 // bytes of response body kept in a Result; default 4096
	// Now is the clock for Retry-After, durations and bearer tokens' exp;
	// nil: time.Now. The relay's clock should be the same one.
	Now func() time.Time
}

// Client sends rendered actions. One per process; safe for concurrent use.
type Client struct {
	rc        *resty.Client
	transport http.RoundTripper
	ua        string
	max       int64
	now       func() time.Time

	mu     sync.Mutex
	tokens map[*Action]*tokenCache
}

type tokenCache struct {
	mu  sync.Mutex
	tok *oauth2.Token
}

// NewClient returns a Client. Redirects are never followed and resty's own
// retries stay off: one Do is one attempt, and the relay owns the schedule.
func NewClient(o ClientOptions) *Client {
	c := &Client{transport: o.Transport, ua: o.UserAgent, max: o.MaxResponse, now: o.Now, tokens: map[*Action]*tokenCache{}}
	if c.transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Connections stay open per destination across attempts: one action
		// may keep up to its concurrency busy, and a handshake per attempt
		// would cost more than the request.
		t.MaxIdleConns = 1024
		t.MaxIdleConnsPerHost = 256
		c.transport = t
	}
	if c.max <= 0 {
		c.max = DefaultMaxResponse
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.rc = resty.NewWithClient(&http.Client{Transport: c.transport, CheckRedirect: noRedirect}).
		SetRetryCount(0).
		SetAllowGetMethodPayload(true).
		SetLogger(quietLogger{})
	// resty installs its own CheckRedirect: set the policy through it.
	c.rc.SetRedirectPolicy(resty.RedirectPolicyFunc(noRedirect))
	return c
}

// noRedirect hands the 3xx itself back: following it could lead a request,
// with its credentials, somewhere the action does not name.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// ClearTokens forgets every cached OAuth2 token (after a config reload,
// when credentials may have changed).
func (c *Client) ClearTokens() {
	c.mu.Lock()
	c.tokens = map[*Action]*tokenCache{}
	c.mu.Unlock()
}

// Result is the record of one attempt. Nothing in it holds a secret: header
// values are passed through Redact, and every string is scrubbed of the
// bearer token, the OAuth2 access token and the client secret.
type Result struct {
	Method, URL    string
	RequestHeaders map[string]string
	StatusCode     int // 0 if no response
	Duration       time.Duration
	ResponseBody   string // the first MaxResponse bytes
	// Trace times the request's phases; nil when none was sent.
	Trace *store.Trace
	// Err is nil on a 2xx. Otherwise it wraps ErrPermanent when retrying
	// cannot help (render errors, refused header values, a bad URL, a
	// *TokenExpiredError), is a *RetryAfterError when a 429 or 503 said
	// when to come back, and is any other error for non-2xx answers,
	// timeouts and transport errors, which are retried on the schedule.
	Err error
}

// RetryAfterError is a 429 or 503 whose Retry-After named a time.
type RetryAfterError struct {
	At         time.Time
	StatusCode int
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("status %d, retry after %s", e.StatusCode, e.At.UTC().Format(time.RFC3339))
}

// attemptError carries a scrubbed message and, for errors.Is, only a
// sentinel: never the original error, which could print a secret.
type attemptError struct {
	msg   string
	cause error // ErrPermanent, context.DeadlineExceeded, context.Canceled or nil
}

func (e *attemptError) Error() string { return e.msg }
func (e *attemptError) Unwrap() error { return e.cause }

// Do renders a for env and sends it with Idempotency-Key and User-Agent.
//
// A rendered bearer token that is a JWT past its exp is not sent: Err is
// a *TokenExpiredError. An OAuth2 action whose request is answered 401
// drops its cached token and sends the request once more, at once, with a
// new one; the Result is the second request's.
func (c *Client) Do(ctx context.Context, a *Action, env rules.Env, idempotencyKey string) (res Result) {
	res.Method = a.Method
	var secrets []string
	if a.oauth2 != nil {
		secrets = append(secrets, a.oauth2.ClientSecret)
	}
	if a.sign != nil {
		secrets = append(secrets, a.sign.secrets...)
	}
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	start := c.now()
	defer func() { res.Duration = c.now().Sub(start) }()

	req, rendered, err := a.render(env)
	secrets = append(secrets, rendered...)
	if err != nil {
		res.Err = &attemptError{msg: scrub(err.Error(), secrets, "", ""), cause: ErrPermanent}
		return res
	}
	display := redact.URL(req.URL)
	clean := func(s string) string { return scrub(s, secrets, req.URL, display) }
	res.URL = clean(req.URL)

	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	if c.ua != "" {
		req.Header.Set("User-Agent", c.ua)
	}
	if a.sign != nil {
		// Signed last, over the exact bytes sent, at this attempt's time;
		// the id is the delivery's, the same on every attempt.
		id := idempotencyKey
		if id == "" {
			id = newMessageID()
		}
		macs, err := a.sign.sign(req.Header, id, req.Body, c.now())
		if err != nil {
			res.Err = &attemptError{msg: clean("sign: " + err.Error()), cause: ErrPermanent}
			return res
		}
		// The MACs are kept out of the record too, whatever the header's
		// name: whoever holds one could replay the request.
		secrets = append(secrets, macs...)
	}
	// A JWT past its exp could only be refused: nothing is sent. Only the
	// rendered token is judged; an OAuth2 token is the token endpoint's.
	if err := CheckBearer(req.Header, c.now()); err != nil {
		res.RequestHeaders = shownHeaders(req.Header, clean)
		res.Err = err
		return res
	}
	var tok *oauth2.Token
	if a.oauth2 != nil {
		tok, err = c.token(ctx, a)
		if err != nil {
			res.RequestHeaders = shownHeaders(req.Header, clean)
			res.Err = tokenFailure("oauth2 token: ", err, ctx, a.Timeout, clean)
			return res
		}
		req.Header.Set("Authorization", tok.Type()+" "+tok.AccessToken)
		secrets = append(secrets, tok.AccessToken)
	}

	r, resp, err := c.send(ctx, req)
	defer func() { res.Trace = trace(r.TraceInfo(), c.now().Sub(start)) }()
	fresh := false // the request was sent again with a new OAuth2 token
	if err == nil && resp.StatusCode() == http.StatusUnauthorized && tok != nil {
		// The token may have been revoked before its expiry: drop it and
		// send once more, at once, with a new one. Only once: a receiver
		// that refuses a token just issued refuses the client, not the
		// token, and a new token would not help.
		c.dropToken(a, tok)
		next, terr := c.token(ctx, a)
		if terr != nil {
			res.RequestHeaders = shownHeaders(r.Header, clean)
			res.StatusCode = resp.StatusCode()
			res.ResponseBody = c.readBody(resp.RawBody(), secrets, clean)
			resp.RawBody().Close()
			res.Err = tokenFailure("status 401; a new oauth2 token: ", terr, ctx, a.Timeout, clean)
			return res
		}
		// The 401's body is not kept: the attempt records the answer to
		// the request sent last.
		_, _ = io.CopyN(io.Discard, resp.RawBody(), 64<<10)
		resp.RawBody().Close()
		req.Header.Set("Authorization", next.Type()+" "+next.AccessToken)
		secrets = append(secrets, next.AccessToken)
		r, resp, err = c.send(ctx, req)
		fresh = true
	}
	// r.Header now holds what resty added too (Accept).
	res.RequestHeaders = shownHeaders(r.Header, clean)
	if err != nil {
		if resp != nil && resp.RawBody() != nil {
			resp.RawBody().Close()
		}
		var re *RefusedError
		if errors.As(err, &re) {
			// Nothing was sent: the guard refused the address before connecting.
			res.Err = &attemptError{msg: clean(re.Error()), cause: ErrPermanent}
			return res
		}
		res.Err = &attemptError{msg: clean(transportErrorText(err, ctx, a.Timeout)), cause: ctxCause(ctx)}
		return res
	}
	body := resp.RawBody()
	res.StatusCode = resp.StatusCode()
	res.ResponseBody = c.readBody(body, secrets, clean)
	body.Close()

	switch code := res.StatusCode; {
	case code >= 200 && code < 300:
		return res
	case code >= 300 && code < 400:
		msg := fmt.Sprintf("status %d: redirects are not followed", code)
		if loc := resp.Header().Get("Location"); loc != "" {
			msg += " (Location: " + loc + ")"
		}
		res.Err = &attemptError{msg: clean(msg)}
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		if at, ok := retryAfter(resp.Header().Get("Retry-After"), c.now()); ok {
			res.Err = &RetryAfterError{At: at, StatusCode: code}
			return res
		}
		res.Err = &attemptError{msg: fmt.Sprintf("status %d", code)}
	case code == http.StatusUnauthorized && fresh:
		res.Err = &attemptError{msg: fmt.Sprintf("status %d, with a newly fetched OAuth2 token too", code)}
	default:
		res.Err = &attemptError{msg: fmt.Sprintf("status %d", code)}
	}
	return res
}

// send makes one request. The returned request is never nil, so that its
// trace and headers can be read whatever happened.
func (c *Client) send(ctx context.Context, req *Request) (*resty.Request, *resty.Response, error) {
	r := c.rc.R().SetContext(ctx).SetDoNotParseResponse(true).EnableTrace()
	r.Header = req.Header
	if req.Body != nil {
		r.SetBody(req.Body)
	}
	resp, err := r.Execute(req.Method, req.URL)
	return r, resp, err
}

// shownHeaders is h as a Result may show it: redacted, then scrubbed.
func shownHeaders(h http.Header, clean func(string) string) map[string]string {
	out := redact.Header(h)
	for k, v := range out {
		out[k] = clean(v)
	}
	return out
}

// tokenFailure is the error of an attempt whose OAuth2 token could not be
// had. A refused token endpoint address is permanent, as a refused
// destination is; anything else is retried.
func tokenFailure(prefix string, err error, ctx context.Context, timeout time.Duration, clean func(string) string) error {
	var re *RefusedError
	if errors.As(err, &re) {
		return &attemptError{msg: clean(prefix + re.Error()), cause: ErrPermanent}
	}
	return &attemptError{msg: clean(prefix + tokenErrorText(err, ctx, timeout)), cause: ctxCause(ctx)}
}

// trace is resty's record of a request. Its total is the attempt's own
// duration when resty saw no answer to end the request with.
func trace(ti resty.TraceInfo, total time.Duration) *store.Trace {
	t := &store.Trace{
		DNS:       max(ti.DNSLookup, 0),
		Connect:   max(ti.TCPConnTime, 0),
		TLS:       max(ti.TLSHandshake, 0),
		FirstByte: max(ti.ServerTime, 0),
		Total:     ti.TotalTime,
		Reused:    ti.IsConnReused,
	}
	if t.Total <= 0 {
		t.Total = total
	}
	return t
}

// readBody keeps the first c.max bytes of a response body, with secrets
// scrubbed. It reads a little past the limit so that a secret cut by the
// limit is still recognised and removed whole.
func (c *Client) readBody(body io.Reader, secrets []string, clean func(string) string) string {
	extra := int64(0)
	for _, s := range secrets {
		extra = max(extra, int64(len(s)))
	}
	data, _ := io.ReadAll(io.LimitReader(body, c.max+extra))
	// Drain a little more so that the connection can be reused.
	_, _ = io.CopyN(io.Discard, body, 64<<10)
	s := clean(string(data))
	if int64(len(s)) > c.max {
		s = s[:c.max]
	}
	return s
}

func (c *Client) token(ctx context.Context, a *Action) (*oauth2.Token, error) {
	c.mu.Lock()
	tc := c.tokens[a]
	if tc == nil {
		tc = &tokenCache{}
		c.tokens[a] = tc
	}
	c.mu.Unlock()

	// One fetch per action at a time: concurrent deliveries wait for it.
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.tok.Valid() {
		return tc.tok, nil
	}
	// The oauth2 package flattens transport errors into text: keep a
	// refusal of the token endpoint's address as it is.
	rt := &refusalCatcher{next: c.transport}
	hc := &http.Client{Transport: rt, CheckRedirect: noRedirect}
	tok, err := a.oauth2.Token(context.WithValue(ctx, oauth2.HTTPClient, hc))
	if err != nil {
		if rt.refused != nil {
			return nil, rt.refused
		}
		return nil, err
	}
	tc.tok = tok
	return tok, nil
}

// refusalCatcher remembers a *RefusedError from the transport.
type refusalCatcher struct {
	next    http.RoundTripper
	refused *RefusedError
}

func (r *refusalCatcher) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	var re *RefusedError
	if err != nil && errors.As(err, &re) {
		r.refused = re
	}
	return resp, err
}

func (c *Client) dropToken(a *Action, tok *oauth2.Token) {
	c.mu.Lock()
	tc := c.tokens[a]
	c.mu.Unlock()
	if tc == nil {
		return
	}
	tc.mu.Lock()
	if tc.tok == tok {
		tc.tok = nil
	}
	tc.mu.Unlock()
}

// retryAfter reads a Retry-After value: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return time.Time{}, false
		}
		const limit = 10 * 365 * 24 * 60 * 60 // keeps the Duration from overflowing
		return now.Add(time.Duration(min(secs, limit)) * time.Second), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// ctxCause is the sentinel behind a failure caused by the context.
func ctxCause(ctx context.Context) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return context.DeadlineExceeded
	case errors.Is(ctx.Err(), context.Canceled):
		return context.Canceled
	}
	return nil
}

func transportErrorText(err error, ctx context.Context, timeout time.Duration) string {
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("timeout: no answer within %v: %v", timeout, err)
	case errors.Is(ctx.Err(), context.Canceled):
		return "canceled: " + err.Error()
	}
	return err.Error()
}

// tokenErrorText describes a failed token fetch without the token
// endpoint's response body, which could echo credentials.
func tokenErrorText(err error, ctx context.Context, timeout time.Duration) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := "the token endpoint answered"
		if re.Response != nil {
			msg += " " + re.Response.Status
		}
		if re.ErrorCode != "" {
			msg += " (" + re.ErrorCode + ")"
		}
		return msg
	}
	return transportErrorText(err, ctx, timeout)
}

// scrub replaces every secret in s with "[redacted]", and the raw URL with
// its redacted form.
func scrub(s string, secrets []string, rawURL, displayURL string) string {
	if rawURL != "" && rawURL != displayURL {
		s = strings.ReplaceAll(s, rawURL, displayURL)
	}
	for _, sec := range secrets {
		// A secret of a few characters would redact half of any text; such
		// a value does not protect anything anyway.
		if len(sec) >= minSecretLen {
			s = strings.ReplaceAll(s, sec, redact.Mask)
		}
	}
	return s
}

const minSecretLen = 4

// quietLogger keeps resty from writing to stderr: hookrelay logs through
// slog, with its own attribute names.
type quietLogger struct{}

func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Debugf(string, ...any) {}
