package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/redact"
	"github.com/hookrelay/hookrelay/store"
)

// Store is what the gateway needs from the store.
type Store interface {
	Accept(ctx context.Context, a store.Accept) (store.Accepted, error)
	Ping(ctx context.Context) error
}

// Gateway serves the catch-hook endpoints for the config in force.
type Gateway struct {
	store   Store
	ready   func(context.Context) error
	cfg     atomic.Pointer[config.Config]
	log     *requestLog
	now     func() time.Time
	metrics Metrics
	limiter Limiter
	handOff HandOff
}

// HandOff is a relay that may take an event's deliveries in its accept
// (relay.Relay.Offer): Offer sets a.HandOff, and the function it returns,
// when not nil, is called with the accept's answer.
type HandOff interface {
	Offer(a *store.Accept) func(store.Accepted, error)
}

// Metrics records what the gateway sees. Hook names given are the
// config's: a request for an unknown hook is not reported as an event.
type Metrics interface {
	RequestMetrics
	// Event reports one request to a hook with its outcome (accepted,
	// ignored, duplicate, or the refusal) and how long it took to answer.
	Event(hook, outcome string, d time.Duration)
	// StoreError reports a failed store operation.
	StoreError(op string)
}

// Options tune a Gateway; the zero value is usable.
type Options struct {
	Logger  *slog.Logger
	Now     func() time.Time // injected clock; time.Now by default
	Metrics Metrics          // nil: nothing is recorded
	// Ready, when set, decides /readyz: nil when the process may be
	// trusted with events, else why not. By default /readyz pings the
	// store.
	Ready func(context.Context) error
	// Limiter holds hooks to their rate_limit:; nil: one for this process
	// alone (store.LocalLimiter).
	Limiter Limiter
	// RefusalLog bounds the lines about refused requests.
	RefusalLog RefusalLog
	// HandOff, when set, is offered each event's deliveries as it is
	// accepted; nil: the relay leases them from the queue.
	HandOff HandOff
}

// New returns a gateway serving cfg from s.
func New(s Store, cfg *config.Config, o Options) *Gateway {
	g := &Gateway{store: s, ready: o.Ready, now: o.Now, metrics: o.Metrics, limiter: o.Limiter, handOff: o.HandOff}
	if g.ready == nil {
		g.ready = s.Ping
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	g.log = newRequestLog(log, o.RefusalLog)
	if g.now == nil {
		g.now = time.Now
	}
	if g.limiter == nil {
		g.limiter = store.NewLocalLimiter(g.now)
	}
	g.cfg.Store(cfg)
	return g
}

// SetConfig swaps in a new config. Requests already in flight finish on the
// config they started with.
func (g *Gateway) SetConfig(c *config.Config) { g.cfg.Store(c) }

// Config returns the config in force.
func (g *Gateway) Config() *config.Config { return g.cfg.Load() }

// FlushLog writes at once the summaries of refusal lines held back so far
// (see RefusalLog), which would otherwise wait for their period to end: at
// shutdown, so that every refusal is accounted for.
func (g *Gateway) FlushLog() { g.log.flush() }

// NewRouter returns a Gin engine in release mode that gives every request
// an id (RequestIDHeader), runs mw, and logs panics and answers them 500 in
// JSON.
func NewRouter(log *slog.Logger, mw ...gin.HandlerFunc) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(requestID)
	r.Use(mw...)
	r.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, err any) {
		// A catch URL's token is its secret: only its prefix is logged.
		log.ErrorContext(c.Request.Context(), "panic while serving", "path", redact.Path(c.Request.URL.Path), "panic", err)
		c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error"})
	}))
	return r
}

// Handler returns the HTTP handler for every route the gateway serves.
func (g *Gateway) Handler() http.Handler {
	var mw []gin.HandlerFunc
	if g.metrics != nil {
		mw = append(mw, Instrument(g.metrics))
	}
	r := NewRouter(g.log.Logger, mw...)
	r.HandleMethodNotAllowed = false
	// Senders take a redirect for a failure, and nothing would tell the
	// operator why: a catch URL with a trailing slash, or spelt any other
	// way, is answered and logged as one that names no hook.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.Any("/hooks/catch/:hook", g.catch)
	r.Any("/hooks/catch/:hook/:token", g.catch)
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", g.readyz)
	r.NoRoute(func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, "/hooks/catch/") {
			writeError(c, g.log, errHookNotFound)
			return
		}
		c.JSON(http.StatusNotFound, gin.H{"error": "not found"})
	})
	return r
}

// readyz answers 503 with the reason in the body while the process should
// get no traffic: an operator or a load balancer reads it. The reason names
// the store's state, never a secret (credential patterns are masked).
func (g *Gateway) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := g.ready(ctx); err != nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "not ready", "error": redact.Text(err.Error())})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
