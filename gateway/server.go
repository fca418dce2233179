package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
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

// Server is an http.Server that knows which of its connections are
// reading or answering a request, so that a stop tells requests cut short
// from connections that were only waiting.
type Server struct {
	*http.Server
	mu     sync.Mutex
	active map[net.Conn]struct{}
}

// NewServer returns a Server for h with every limit of o set. The caller
// sets Addr or passes a listener to Serve.
func NewServer(h http.Handler, o ServerOptions) *Server {
	s := &Server{Server: newHTTPServer(h, o), active: map[net.Conn]struct{}{}}
	s.ConnState = s.track
	return s
}

func (s *Server) track(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	if st == http.StateActive {
		s.active[c] = struct{}{}
	} else {
		delete(s.active, c)
	}
	s.mu.Unlock()
}

// inFlight is the number of connections reading or answering a request.
func (s *Server) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active)
}

// Shutdown stops the server as http.Server.Shutdown does: it stops
// listening, then waits for the requests in flight to be answered, until
// ctx ends. When ctx ends with none in flight, what is left are
// connections that sent no request, which net/http would wait five seconds
// for: they are closed, and the stop is clean. An error says that requests
// were still in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.Server.Shutdown(ctx)
	if err != nil && ctx.Err() != nil {
		if n := s.inFlight(); n > 0 {
			return fmt.Errorf("%d request(s) still in flight: %w", n, err)
		}
		return s.Close()
	}
	return err
}

func newHTTPServer(h http.Handler, o ServerOptions) *http.Server {
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
