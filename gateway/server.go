package gateway

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/hookrelay/hookrelay/redact"
)

// Defaults of ServerOptions.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
)

// ServerOptions bound what one connection may cost the server. A zero field
// takes its default.
type ServerOptions struct {
	// ReadHeaderTimeout bounds reading the request line and headers, so that
	// a client trickling them in cannot hold a connection open.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading the whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of the request headers to
	// the end of the answer, storing the event included.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a kept-alive connection waits for its
	// next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps the request line and headers.
	MaxHeaderBytes int
	// Logger receives the server's own errors (broken connections, failed
	// TLS handshakes) at warn level, credentials and catch-URL tokens
	// masked; slog.Default() when nil.
	Logger *slog.Logger
}

// NewServer returns an http.Server for h with every limit of o set. The
// caller sets Addr or passes a listener to Serve.
func NewServer(h http.Handler, o ServerOptions) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(o.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       or(o.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      or(o.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       or(o.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    o.MaxHeaderBytes,
		// net/http's own messages can quote a request; they pass through a
		// redacting handler even when the logger given has none.
		ErrorLog: slog.NewLogLogger(redact.NewHandler(o.Logger.Handler()), slog.LevelWarn),
	}
}
