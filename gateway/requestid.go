package gateway

import (
	"context"
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/store"
)

// RequestIDHeader names the id of a request in its answer; the same id is
// in every log line written while serving it.
const RequestIDHeader = "Hookrelay-Request-Id"

type requestIDKey struct{}

// WithRequestID returns ctx carrying the request id id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id ctx carries, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// requestID gives each request an id, in its context and its answer. A
// request handed on inside the process (a test ping through the ingress)
// keeps the id it has. An id a client sends is not taken: it would let the
// client write into the operators' log.
func requestID(c *gin.Context) {
	id := RequestID(c.Request.Context())
	if id == "" {
		id = store.NewID("req", time.Now())
		c.Request = c.Request.WithContext(WithRequestID(c.Request.Context(), id))
	}
	c.Header(RequestIDHeader, id)
	c.Next()
}

// RequestMetrics records each request a router serves: its route (the
// pattern it matched, "" for none), method, status and duration.
type RequestMetrics interface {
	Request(route, method string, status int, d time.Duration)
}

// Instrument is Gin middleware that reports every request to m.
func Instrument(m RequestMetrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		m.Request(c.FullPath(), c.Request.Method, c.Writer.Status(), time.Since(start))
	}
}

// LogHandler adds the request id of the context a line is logged with as
// the attribute request_id, so that every line written while serving one
// request can be found by the id its sender got in the answer.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(as)}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.Handler.WithGroup(name)}
}
