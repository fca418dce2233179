package admin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/gateway"
	"github.com/hookrelay/hookrelay/redact"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"
)

// Store is what the admin API needs from the store.
type Store interface {
	store.Admin
	Event(ctx context.Context, id string) (store.Event, error)
	Delivery(ctx context.Context, id string) (store.Delivery, error)
	Deliveries(ctx context.Context, eventID string) ([]store.Delivery, error)
	Attempts(ctx context.Context, deliveryID string) ([]store.Attempt, error)

	// The action state every process shares and the queue behind it.
	ActionStates(ctx context.Context) ([]store.ActionState, error)
	PutActionState(ctx context.Context, s store.ActionState) (store.ActionState, error)
	QueueStats(ctx context.Context, now time.Time) ([]store.QueueStats, error)
}

// Options wire the API to the rest of the process.
type Options struct {
	Store   Store
	Config  func() *config.Config // the config in force
	Ingress http.Handler          // the catch-hook handler, which test pings go through
	// Reload re-reads the config and swaps it in; its error (a bad config)
	// leaves the old config serving.
	Reload func(ctx context.Context) (*config.Config, error)
	// ClearCache drops cached OAuth2 tokens and other cached reads.
	ClearCache func()
	// LookupEnv resolves ${VAR} in candidate configs (POST /whatif) as the
	// config in force was resolved; nil resolves nothing.
	LookupEnv func(string) (string, bool)
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
	// Metrics, when set, records every request the API serves.
	Metrics gateway.RequestMetrics
}

// API serves /api/v1.
type API struct {
	o   Options
	log *slog.Logger
}

// New returns the admin API.
func New(o Options) *API {
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &API{o: o, log: log}
}

// touchEvery is how stale a key's last-used time may get.
const touchEvery = time.Minute

// apiError is an error with its status; the one place errors become answers is fail.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errBadRequest(msg string) error { return &apiError{http.StatusBadRequest, msg} }
func errNotFound(msg string) error   { return &apiError{http.StatusNotFound, msg} }

// fail writes err as {"error": …} with the status it maps to.
func (a *API) fail(c *gin.Context, err error) {
	var (
		ae *apiError
		re *seal.RecordError
	)
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, store.ErrNotFound):
		ae = &apiError{http.StatusNotFound, "not found"}
	case errors.Is(err, store.ErrConflict):
		ae = &apiError{http.StatusConflict, err.Error()}
	case errors.As(err, &re):
		// Stored, but sealed with a key this process's ring cannot open:
		// the message names the record and the key id, never a key.
		ae = &apiError{http.StatusInternalServerError, "cannot be read with this process's encryption keys: " + a.red().String(re.Error())}
	default:
		a.log.ErrorContext(c.Request.Context(), "admin request failed", "method", c.Request.Method, "path", c.FullPath(), "error", err)
		ae = &apiError{http.StatusServiceUnavailable, "store unavailable"}
	}
	c.AbortWithStatusJSON(ae.status, gin.H{"error": ae.msg})
}

// red is the Redactor of the config in force: every answer passes
// through it.
func (a *API) red() *redact.Redactor { return a.o.Config().Redactor() }

// Handler returns the API as an http.Handler serving /api/v1.
func (a *API) Handler() http.Handler {
	var mw []gin.HandlerFunc
	if a.o.Metrics != nil {
		mw = append(mw, gateway.Instrument(a.o.Metrics))
	}
	r := gateway.NewRouter(a.log, mw...)
	a.Register(r)
	r.NoRoute(func(c *gin.Context) { a.fail(c, errNotFound("no such endpoint")) })
	return r
}
