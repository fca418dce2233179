package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// maxDepth caps JSON nesting so that a hostile document cannot exhaust the stack.
const maxDepth = 64

// catch is POST /hooks/catch/{hook}[/{token}]: find hook → cap body (413) →
// verify on raw bytes (401) → parse (400) → idempotency key → rules →
// one atomic store step → 202 {id} | 200 {id, duplicate}.
func (g *Gateway) catch(c *gin.Context) {
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
	raw, err := readBody(c.Writer, c.Request, hook.MaxBody)
	if err != nil {
		writeError(c, g.log, err)
		return
	}
	now := g.now().UTC()
	if err := hook.Verifier.Verify(c.Request.Header, raw, now); err != nil {
		writeError(c, g.log, fail(http.StatusUnauthorized, "invalid signature", err))
		return
	}
	body, err := rules.DecodeBody(raw, c.ContentType(), maxDepth)
	if err != nil {
		writeError(c, g.log, fail(http.StatusBadRequest, "invalid payload: "+err.Error(), nil))
		return
	}

	ev := store.Event{
		ID:         store.NewID("evt", now),
		Hook:       hook.Name,
		ReceivedAt: now,
		Headers:    lowerHeaders(c.Request.Header),
		Query:      firstValues(c.Request.URL.Query()),
		Body:       raw,
	}
	env := rules.NewEnv(ev, body)
	ev.IdempotencyKey = g.key(hook, env, raw)

	matches, errs := hook.Rules.Match(env)
	for _, e := range errs {
		g.log.Warn("rule failed to evaluate", "hook", hook.Name, "event_id", ev.ID, "error", e)
	}
	deliveries := make([]store.Delivery, 0, len(matches))
	for _, m := range matches {
		deliveries = append(deliveries, store.Delivery{
			ID:            store.NewID("dlv", now),
			EventID:       ev.ID,
			Hook:          hook.Name,
			Rule:          m.Rule,
			Action:        m.Action,
			Status:        store.DeliveryPending,
			NextAttemptAt: now,
			CreatedAt:     now,
			UpdatedAt:     now,
		})
		ev.MatchedRules = appendOnce(ev.MatchedRules, m.Rule)
	}
	ev.Status = store.EventIgnored
	if len(deliveries) > 0 {
		ev.Status = store.EventAccepted
	}

	res, err := g.store.Accept(c.Request.Context(), store.Accept{Event: ev, Deliveries: deliveries, KeyTTL: hook.KeyTTL})
	if err != nil {
		// Never a 2xx for something not stored: the sender must retry.
		writeError(c, g.log, fail(http.StatusServiceUnavailable, "store unavailable, retry later", err))
		return
	}
	if res.Duplicate {
		g.log.Info("duplicate event dropped", "hook", hook.Name, "event_id", res.EventID)
		c.JSON(http.StatusOK, gin.H{"id": res.EventID, "duplicate": true})
		return
	}
	g.log.Info("event accepted", "hook", hook.Name, "event_id", ev.ID, "status", string(ev.Status), "deliveries", len(deliveries))
	c.JSON(http.StatusAccepted, gin.H{"id": ev.ID})
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

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fail(http.StatusRequestEntityTooLarge, "payload too large", nil)
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fail(http.StatusRequestEntityTooLarge, "payload too large", err)
		}
		return nil, fail(http.StatusBadRequest, "could not read body", err)
	}
	return raw, nil
}

// key computes the idempotency key. A key expression that fails on this
// payload falls back to the body hash: refusing the event would lose it for
// senders that never retry.
func (g *Gateway) key(hook *config.Hook, env rules.Env, raw []byte) string {
	if hook.Key != nil {
		k, err := hook.Key.KeyString(env)
		if err == nil {
			return k
		}
		g.log.Warn("idempotency key expression failed, using the body hash", "hook", hook.Name, "event_id", env.Event.ID, "error", err)
	}
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
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

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
