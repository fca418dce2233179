package admin

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/store"
)

// route is one admin endpoint and the scopes that open it. Every endpoint
// is in routes and nowhere else, so that none can be served without a
// scope check; TestEveryRouteDeclaresItsScope walks the real router to keep
// it that way.
type route struct {
	method string
	path   string   // under /api/v1
	scopes []string // a key needs one of these
	handle func(*API, *gin.Context)
}

var routes = []route{
	{http.MethodGet, "/hooks", []string{ScopeRead, ScopeWebhooks}, (*API).listHooks},
	{http.MethodPost, "/hooks/:id/test", []string{ScopeWebhooks, ScopeWrite}, (*API).testHook},
	{http.MethodPost, "/reload", []string{ScopeWebhooks, ScopeWrite}, (*API).reload},
	{http.MethodPost, "/cache/clear", []string{ScopeWrite, ScopeWebhooks}, (*API).clearCache},

	{http.MethodGet, "/events", []string{ScopeRead}, (*API).listEvents},
	{http.MethodGet, "/events/:id", []string{ScopeRead}, (*API).getEvent},
	{http.MethodPost, "/events/:id/replay", []string{ScopeWrite}, (*API).replay},

	{http.MethodGet, "/deliveries", []string{ScopeRead}, (*API).listDeliveries},
	{http.MethodGet, "/deliveries/:id", []string{ScopeRead}, (*API).getDelivery},
	{http.MethodPost, "/deliveries/retry", []string{ScopeWrite}, (*API).retryMany},
	{http.MethodPost, "/deliveries/:id/retry", []string{ScopeWrite}, (*API).retryOne},

	// A what-if run sends and stores nothing, but it evaluates a config
	// with the server's environment: see whatIf.
	{http.MethodPost, "/whatif", []string{ScopeWrite}, (*API).whatIf},

	{http.MethodGet, "/actions", []string{ScopeRead}, (*API).listActions},
	{http.MethodPost, "/actions/:name/pause", []string{ScopeWrite}, (*API).pauseAction},
	{http.MethodPost, "/actions/:name/resume", []string{ScopeWrite}, (*API).resumeAction},

	// Keys are granted, listed and revoked only within the caller's own
	// scopes: see within.
	{http.MethodGet, "/keys", []string{ScopeRead}, (*API).listKeys},
	{http.MethodPost, "/keys", []string{ScopeWrite}, (*API).createKey},
	{http.MethodDelete, "/keys/:id", []string{ScopeWrite}, (*API).revokeKey},
	// The calling key itself, whatever it may do: how a client such as the
	// dashboard learns what to offer.
	{http.MethodGet, "/key", AllScopes, (*API).showCaller},
}

// Allows reports whether a key holding scopes may call the route method
// pattern, pattern as routes declares it ("/deliveries/:id/retry"). The
// dashboard asks it before it offers a change; the API decides all the same.
func Allows(scopes []string, method, pattern string) bool {
	i := slices.IndexFunc(routes, func(r route) bool { return r.method == method && r.path == pattern })
	return i >= 0 && slices.ContainsFunc(routes[i].scopes, func(s string) bool { return slices.Contains(scopes, s) })
}

// Register mounts the API under /api/v1 on r.
func (a *API) Register(r gin.IRouter) {
	g := r.Group("/api/v1")
	for _, rt := range routes {
		handle := rt.handle
		g.Handle(rt.method, rt.path, a.auth(rt.scopes...), a.wellFormedQuery, func(c *gin.Context) { handle(a, c) })
	}
}

// wellFormedQuery refuses a query string that does not parse: the URL
// parser would drop it whole, and the call would be answered as if it had
// none (a listing's first page for a cursor it could not read).
func (a *API) wellFormedQuery(c *gin.Context) {
	if _, err := url.ParseQuery(c.Request.URL.RawQuery); err != nil {
		a.fail(c, errBadRequest("query: "+err.Error()))
	}
}

// auth checks the API key and that it carries one of the scopes.
func (a *API) auth(scopes ...string) gin.HandlerFunc {
	if len(scopes) == 0 || slices.ContainsFunc(scopes, func(s string) bool { return !slices.Contains(AllScopes, s) }) {
		// A route open to any key, or to none, is a mistake in routes.
		panic("admin: a route must declare the scopes that open it, from " + strings.Join(AllScopes, ", "))
	}
	return func(c *gin.Context) {
		h := c.GetHeader("Authorization")
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || !strings.HasPrefix(secret, secretPrefix) {
			c.Header("WWW-Authenticate", `Bearer realm="hookrelay"`)
			a.fail(c, &apiError{http.StatusUnauthorized, "missing API key: send Authorization: Bearer hr_…"})
			return
		}
		key, err := a.o.Store.KeyByHash(c.Request.Context(), HashSecret(secret))
		if errors.Is(err, store.ErrNotFound) || (err == nil && !key.RevokedAt.IsZero()) {
			c.Header("WWW-Authenticate", `Bearer realm="hookrelay", error="invalid_token"`)
			a.fail(c, &apiError{http.StatusUnauthorized, "invalid or revoked API key"})
			return
		}
		if err != nil {
			a.fail(c, err)
			return
		}
		if !slices.ContainsFunc(scopes, func(s string) bool { return slices.Contains(key.Scopes, s) }) {
			a.fail(c, &apiError{http.StatusForbidden, "this API key lacks the " + strings.Join(scopes, " or ") + " scope"})
			return
		}
		// Last use is kept to the minute, which spares a write per request.
		if now := a.o.Now(); now.Sub(key.LastUsedAt) >= touchEvery {
			if err := a.o.Store.TouchKey(c.Request.Context(), key.ID, now); err != nil {
				a.log.WarnContext(c.Request.Context(), "recording API key use failed", "key", key.ID, "error", err)
			}
		}
		c.Set(callerKey, key)
		c.Next()
	}
}

// callerKey is where auth leaves the calling key in the request context.
const callerKey = "key"

// caller is the key that made the request, as auth found it.
func caller(c *gin.Context) store.APIKey {
	k, _ := c.Get(callerKey)
	key, _ := k.(store.APIKey)
	return key
}

// within is the one rule for everything an action grants, creates or acts
// on that carries scopes (today: API keys): never beyond the caller's own.
// A key may create, see and revoke only keys whose every scope it holds
// itself, so only a key with every scope can make another with every
// scope, and no key can take a broader one away from the operator.
func within(caller store.APIKey, scopes []string) error {
	var beyond []string
	for _, s := range scopes {
		if !slices.Contains(caller.Scopes, s) && !slices.Contains(beyond, s) {
			beyond = append(beyond, s)
		}
	}
	if len(beyond) > 0 {
		return &apiError{http.StatusForbidden, "this API key does not hold the " + strings.Join(beyond, ", ") +
			" scope: a key can grant or act on only scopes it holds itself"}
	}
	return nil
}
