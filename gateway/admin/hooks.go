package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/redact"
	"github.com/hookrelay/hookrelay/store"
)

// HookView is a hook as the API shows it.
type HookView struct {
	ID       string     `json:"id"`
	URL      string     `json:"url"`
	Scheme   string     `json:"scheme"`
	HasToken bool       `json:"has_token"`
	Rules    []RuleView `json:"rules"`
}

// RuleView is one rule of a hook.
type RuleView struct {
	Name    string   `json:"name"`
	When    string   `json:"when"`
	Actions []string `json:"actions"`
}

// catchPath is the hook's catch path; the token, the hook's secret, is
// shown only as a prefix unless full is set.
func catchPath(h *config.Hook, full bool) string {
	p := "/hooks/catch/" + h.Name
	switch {
	case h.Token == "":
	case full:
		p += "/" + h.Token
	default:
		p += "/" + redact.TokenPrefix(h.Token)
	}
	return p
}

func (a *API) baseURL(c *gin.Context, cfg *config.Config) string {
	if cfg.PublicURL != "" {
		return cfg.PublicURL
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

func (a *API) listHooks(c *gin.Context) {
	cfg := a.o.Config()
	red := cfg.Redactor()
	base := a.baseURL(c, cfg)
	data := []HookView{}
	for _, name := range cfg.HookNames() {
		h := cfg.Hooks[name]
		v := HookView{ID: name, URL: base + catchPath(h, false), Scheme: h.Verifier.Scheme(), HasToken: h.Token != "", Rules: []RuleView{}}
		for _, r := range h.Rules.Rules {
			v.Rules = append(v.Rules, RuleView{Name: r.Name, When: red.String(r.When.Source()), Actions: r.Actions})
		}
		data = append(data, v)
	}
	c.JSON(http.StatusOK, gin.H{"data": data})
}

// TestPing is the payload of a test ping: it matches no rule unless one asks
// for it, so it is stored as ignored, like the ping senders send when an
// endpoint is saved.
func TestPing(hook string, id string, at string) []byte {
	b, _ := json.Marshal(map[string]any{
		"type":      "hookrelay.test",
		"event":     "TEST",
		"id":        id,
		"hook":      hook,
		"timestamp": at,
	})
	return b
}

// testHook sends a test ping through the real ingress path, signed with the
// hook's own secret, and reports what the ingress answered.
func (a *API) testHook(c *gin.Context) {
	cfg := a.o.Config()
	h, ok := cfg.Hooks[c.Param("id")]
	if !ok {
		a.fail(c, errNotFound("no such hook"))
		return
	}
	now := a.o.Now().UTC()
	body := TestPing(h.Name, store.NewID("ping", now), now.Format("2006-01-02T15:04:05.000Z07:00"))
	req := httptest.NewRequest(http.MethodPost, catchPath(h, true), bytes.NewReader(body))
	req = req.WithContext(c.Request.Context())
	req.RemoteAddr = "127.0.0.1:0"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hookrelay-test-ping")
	h.Sender().Sign(req.Header, body, now)
	w := httptest.NewRecorder()
	a.o.Ingress.ServeHTTP(w, req)
	answer := cfg.Redactor().Payload(w.Body.Bytes(), w.Header().Get("Content-Type"))
	accepted := w.Code >= 200 && w.Code < 300
	a.log.InfoContext(c.Request.Context(), "test ping sent", "hook", h.Name, "status", w.Code)
	c.JSON(http.StatusOK, gin.H{"hook": h.Name, "accepted": accepted, "status": w.Code, "response": answer})
}

func (a *API) reload(c *gin.Context) {
	if a.o.Reload == nil {
		a.fail(c, &apiError{http.StatusNotImplemented, "reload is not available"})
		return
	}
	cfg, err := a.o.Reload(c.Request.Context())
	if err != nil {
		// The error quotes the new file, whose secrets the config in force
		// may not know: credential patterns are masked all the same.
		a.fail(c, &apiError{http.StatusUnprocessableEntity, a.red().String(fmt.Sprintf("config refused, the previous one keeps serving:\n%v", err))})
		return
	}
	c.JSON(http.StatusOK, gin.H{"reloaded": true, "hooks": len(cfg.Hooks), "actions": len(cfg.Actions)})
}

func (a *API) clearCache(c *gin.Context) {
	if a.o.ClearCache != nil {
		a.o.ClearCache()
	}
	c.JSON(http.StatusOK, gin.H{"cleared": true})
}

type createKeyRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

// listKeys shows the keys within the caller's scopes: a key does not learn
// of broader ones, which it could neither make nor revoke.
func (a *API) listKeys(c *gin.Context) {
	keys, err := a.o.Store.Keys(c.Request.Context())
	if err != nil {
		a.fail(c, err)
		return
	}
	me := caller(c)
	data := []KeyView{}
	for _, k := range keys {
		if within(me, k.Scopes) == nil {
			data = append(data, newKeyView(k))
		}
	}
	c.JSON(http.StatusOK, gin.H{"data": data})
}

func (a *API) createKey(c *gin.Context) {
	var req createKeyRequest
	if err := c.ShouldBindJSON(&req); err != nil {
		a.fail(c, errBadRequest(`body: want JSON {"name": "…", "scopes": ["read"]}`))
		return
	}
	scopes, err := ParseScopes(req.Scopes)
	if err != nil {
		a.fail(c, errBadRequest("scopes: "+err.Error()))
		return
	}
	if err := within(caller(c), scopes); err != nil {
		a.fail(c, err)
		return
	}
	k, secret, err := NewKey(req.Name, scopes, a.o.Now().UTC())
	if err != nil {
		a.fail(c, errBadRequest(err.Error()))
		return
	}
	if err := a.o.Store.CreateKey(c.Request.Context(), k); err != nil {
		a.fail(c, err)
		return
	}
	a.log.InfoContext(c.Request.Context(), "API key created", "key", k.ID, "scopes", strings.Join(k.Scopes, ","), "by", caller(c).ID)
	v := newKeyView(k)
	v.Secret = secret
	c.JSON(http.StatusCreated, v)
}

// revokeKey revokes a key within the caller's scopes: a narrower key
// cannot lock out a broader one.
func (a *API) revokeKey(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("id")
	keys, err := a.o.Store.Keys(ctx)
	if err != nil {
		a.fail(c, err)
		return
	}
	i := slices.IndexFunc(keys, func(k store.APIKey) bool { return k.ID == id })
	if i < 0 {
		a.fail(c, errNotFound("no such key"))
		return
	}
	if err := within(caller(c), keys[i].Scopes); err != nil {
		a.fail(c, err)
		return
	}
	if err := a.o.Store.RevokeKey(ctx, id, a.o.Now().UTC()); err != nil {
		a.fail(c, err)
		return
	}
	a.log.InfoContext(c.Request.Context(), "API key revoked", "key", id, "by", caller(c).ID)
	c.JSON(http.StatusOK, gin.H{"id": id, "revoked": true})
}
