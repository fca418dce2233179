package gateway

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// maxDepth caps JSON nesting so that a hostile document cannot exhaust the stack.
const maxDepth = 64

// maxErrorDetail caps how much of a parse error is echoed to the sender:
// it may quote the payload.
const maxErrorDetail = 200

// eventIDHeader names the stored event in every successful answer, also a
// hook's own response: (whose body is the hook's to choose).
const eventIDHeader = "Hookrelay-Event-Id"

// acceptTimeout bounds how long a request waits for the store to take its
// event before it is answered 503.
const acceptTimeout = 5 * time.Second

// catch is POST /hooks/catch/{hook}[/{token}]: find hook → auth: checks
// (403, 401) → rate_limit: (429) → uncompressed body only (415) → cap body
// (413) → verify on raw bytes (401) → parse (400) → idempotency key → rules
// → one atomic store step → the hook's response:, or 202 {id} | 200 {id,
// duplicate}.
func (g *Gateway) catch(c *gin.Context) {
	if g.metrics != nil {
		start := time.Now()
		defer func() { g.observe(c, time.Since(start)) }()
	}
	cfg := g.cfg.Load()
	hook, err := findHook(cfg, c.Param("hook"), c.Param("token"), c.FullPath())
	if err != nil {
		writeError(c, g.log, err)
		return
	}
	c.Set("hook", hook.Name)
	if c.Request.Method != http.MethodPost {
		writeError(c, g.log, errMethod)
		return
	}
	// Before the body is read: a sender that may not post costs no more
	// than its headers, and is never sent 100 Continue.
	if err := admit(cfg, hook, c.Request); err != nil {
		writeError(c, g.log, err)
		return
	}
	if err := g.limit(c, hook); err != nil {
		writeError(c, g.log, err)
		return
	}
	if err := identityOnly(c.Request.Header); err != nil {
		writeError(c, g.log, err)
		return
	}
	raw, err := readBody(c.Writer, c.Request, hook.MaxBody)
	if err != nil {
		writeError(c, g.log, err)
		return
	}
	now := g.now().UTC()
	proof, err := hook.Verifier.Check(c.Request.Header, raw, now)
	if err != nil {
		writeError(c, g.log, fail(http.StatusUnauthorized, "invalid signature", err))
		return
	}
	headers := lowerHeaders(c.Request.Header)
	// The stored content-type header is what the relay decodes the stored
	// body by, so it is what decides here too. The whole payload is
	// checked; only what the hook's expressions read of it is built.
	body, err := rules.DecodeBodyShaped(raw, headers["content-type"], maxDepth, cfg.Evaluation.MaxValues(), hook.Body)
	if errors.Is(err, rules.ErrTooManyValues) {
		writeError(c, g.log, fail(http.StatusRequestEntityTooLarge, err.Error(), nil))
		return
	}
	if err != nil {
		writeError(c, g.log, fail(http.StatusBadRequest, "invalid payload: "+clip(err.Error(), maxErrorDetail), nil))
		return
	}

	ev := store.Event{
		ID:         store.NewID("evt", now),
		Hook:       hook.Name,
		ReceivedAt: now,
		Headers:    headers,
		Query:      firstValues(c.Request.URL.Query()),
		Body:       raw,
	}
	// One budget for the key, the rules and the answer: a payload that
	// makes them slow holds the request for at most its timeout.
	env := rules.NewEnv(ev, body).Limit(cfg.Evaluation)
	// The trace is what the steps below decided, kept with the event so
	// that "why did it do that?" has an answer (GET /api/v1/events/{id}).
	trace := &store.EventTrace{Verify: store.VerifyTrace{Scheme: hook.Verifier.Scheme(), Secret: proof.Secret, Signed: proof.Signed}}
	// A key expression that fails on this payload falls back to the body
	// hash: refusing the event would lose it for senders that never retry.
	var keyErr error
	ev.IdempotencyKey, trace.KeySource, keyErr = hook.KeyWithSource(c.Request.Header, env, raw)
	if keyErr != nil {
		trace.KeyError = keyErr.Error()
	}

	matched, matches, errs, rulesTrace := hook.Rules.Trace(env)
	trace.Rules = rulesTrace
	ev.Trace = trace
	deliveries := make([]store.Delivery, 0, len(matches))
	var laneErrs []laneError
	for _, m := range matches {
		// A delivery whose order_by value cannot be had is not held back.
		lane, err := cfg.Actions[m.Action].Lane(env)
		if err != nil {
			laneErrs = append(laneErrs, laneError{m.Action, err})
		}
		deliveries = append(deliveries, store.Delivery{
			Hook:          hook.Name,
			Rule:          m.Rule,
			Action:        m.Action,
			Status:        store.DeliveryPending,
			NextAttemptAt: now,
			CreatedAt:     now,
			UpdatedAt:     now,
			Lane:          lane,
		})
	}
	// Every arrival of the event gets an id in one shard, so that a
	// partitioned store keeps it with its idempotency key and its lanes.
	// The shard follows from the key and the lanes, which are expressions
	// themselves: they (and the rules that pick the lanes' actions) see
	// the id before its last two characters are set.
	if shard := store.EventShard(hook.Name, ev.IdempotencyKey, deliveries); shard >= 0 {
		ev.ID = store.InShard(ev.ID, shard)
		env.Event.ID = ev.ID
	}
	for i := range deliveries {
		deliveries[i].ID, deliveries[i].EventID = store.NewDeliveryID(ev.ID, now), ev.ID
	}
	// What failed is logged once the store has said which event this is
	// (a duplicate's is the one stored first), under the id the sender is
	// answered with.
	warn := func(id string) {
		ctx := c.Request.Context()
		if keyErr != nil {
			g.log.WarnContext(ctx, "idempotency key expression failed, using the body hash", "hook", hook.Name, "event_id", id, "error", keyErr)
		}
		for _, e := range laneErrs {
			g.log.WarnContext(ctx, "order_by has no value for this event: its delivery is not ordered", "action", e.action, "event_id", id, "error", e.err)
		}
		for _, e := range errs {
			attrs := []any{"hook", hook.Name, "event_id", id, "error", e}
			var re *rules.RuleError
			if errors.As(e, &re) {
				attrs = append(attrs, "rule", re.Rule)
			}
			g.log.WarnContext(ctx, "rule failed to evaluate", attrs...)
		}
	}
	ev.MatchedRules = matched
	ev.Status = store.EventIgnored
	if len(deliveries) > 0 {
		ev.Status = store.EventAccepted
	}

	// A store that cannot answer (a Redis master lost, not yet replaced)
	// gets a bounded wait, then the sender is told to retry: if the event
	// was stored after all, the retry is answered as its duplicate.
	ctx, cancel := context.WithTimeout(c.Request.Context(), acceptTimeout)
	accept := store.Accept{Event: ev, Deliveries: deliveries, KeyTTL: hook.KeyTTL, WaitReplicas: cfg.WaitReplicas}
	res, err := g.accept(ctx, accept)
	cancel()
	if err != nil {
		// It may have been stored after all, under ev.ID.
		warn(ev.ID)
		// Never a 2xx for something not stored: the sender must retry.
		if g.metrics != nil {
			g.metrics.StoreError("accept")
		}
		writeError(c, g.log, fail(http.StatusServiceUnavailable, "store unavailable, retry later", err))
		return
	}
	warn(res.EventID)
	c.Header(eventIDHeader, res.EventID)
	c.Set(outcomeKey, string(ev.Status))
	if res.Duplicate {
		c.Set(outcomeKey, OutcomeDuplicate)
		g.log.DebugContext(c.Request.Context(), "duplicate event dropped", "hook", hook.Name, "event_id", res.EventID)
	} else {
		g.log.DebugContext(c.Request.Context(), "event accepted", "hook", hook.Name, "event_id", ev.ID, "status", string(ev.Status), "deliveries", len(deliveries))
	}
	// Only now, with the event stored: a sender answered here must never
	// have to send it again.
	env.Event.ID = res.EventID
	if a := g.answer(c.Request.Context(), hook, env); a != nil {
		a.write(c)
		return
	}
	if res.Duplicate {
		writeAnswer(c, http.StatusOK, res.EventID, true)
		return
	}
	writeAnswer(c, http.StatusAccepted, ev.ID, false)
}

// accept stores a through the store, offering its deliveries to the
// relay of this process first (HandOff). The relay hears the answer in
// every case, a panic included: it holds slots, and its stop waits, until
// it does.
func (g *Gateway) accept(ctx context.Context, a store.Accept) (res store.Accepted, err error) {
	var handedOff func(store.Accepted, error)
	if g.handOff != nil {
		handedOff = g.handOff.Offer(&a)
	}
	if handedOff != nil {
		defer func() {
			if p := recover(); p != nil {
				handedOff(store.Accepted{}, fmt.Errorf("the accept panicked: %v", p))
				panic(p)
			}
			handedOff(res, err)
		}()
	}
	return g.store.Accept(ctx, a)
}

// writeAnswer answers {"id": id} (and "duplicate": true) as c.JSON would,
// without reflection when the id is made of letters, digits and _ only, as
// store.NewID makes them: one is written per accepted event.
func writeAnswer(c *gin.Context, status int, id string, duplicate bool) {
	if strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
		h := gin.H{"id": id}
		if duplicate {
			h["duplicate"] = true
		}
		c.JSON(status, h)
		return
	}
	b := make([]byte, 0, 48)
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	if duplicate {
		b = append(b, `","duplicate":true}`...)
	} else {
		b = append(b, `"}`...)
	}
	c.Data(status, "application/json; charset=utf-8", b)
}

// clip shortens s to at most n bytes, on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// findHook resolves the hook and checks its URL token in constant time. A
// wrong or missing token answers exactly like an unknown hook.
func findHook(cfg *config.Config, name, token, route string) (*config.Hook, error) {
	hook, ok := cfg.Hooks[name]
	if !ok {
		return nil, errHookNotFound
	}
	hasToken := strings.HasSuffix(route, "/:token")
	switch {
	case hook.Token == "" && hasToken, hook.Token != "" && !hasToken:
		return nil, errHookNotFound
	case hook.Token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(hook.Token)) != 1:
		return nil, errHookNotFound
	}
	return hook, nil
}

// maxCodingShown caps how much of a Content-Encoding is echoed to the sender.
const maxCodingShown = 40

// identityOnly refuses a body sent with a content coding (gzip, br…)
// before it is read: its signature would be checked on the coded bytes,
// and its payload would not parse.
func identityOnly(h http.Header) error {
	for _, v := range h.Values("Content-Encoding") {
		for _, coding := range strings.Split(v, ",") {
			coding = strings.TrimSpace(coding)
			if coding != "" && !strings.EqualFold(coding, "identity") {
				return fail(http.StatusUnsupportedMediaType, "Content-Encoding "+clip(coding, maxCodingShown)+" is not supported: send the body uncompressed", nil)
			}
		}
	}
	return nil
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fail(http.StatusRequestEntityTooLarge, "payload too large", nil)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var raw []byte
	var err error
	if n := r.ContentLength; n >= 0 {
		// The length is known (and within the limit): one buffer of that
		// size, where io.ReadAll would grow one several times. The server
		// ends the body after n bytes.
		raw = make([]byte, n)
		_, err = io.ReadFull(body, raw)
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) && n > 0 {
			err = fmt.Errorf("body ended before its Content-Length of %d bytes: %w", n, err)
		}
	} else {
		raw, err = io.ReadAll(body)
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fail(http.StatusRequestEntityTooLarge, "payload too large", err)
		}
		return nil, fail(http.StatusBadRequest, "could not read body", err)
	}
	return raw, nil
}

// laneError is why an order_by had no value for one of an event's
// deliveries.
type laneError struct {
	action string
	err    error
}

func lowerHeaders(h http.Header) map[string]string {
	m := make(map[string]string, len(h))
	for k, v := range h {
		m[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	return m
}

func firstValues(q map[string][]string) map[string]string {
	m := make(map[string]string, len(q))
	for k, v := range q {
		if len(v) > 0 {
			m[k] = v[0]
		}
	}
	return m
}
