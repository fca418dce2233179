// Package yardstick runs the benchmark's reference servers (the bare Gin
// baseline and the naive Redis gateway): each serves its Gin engine on an
// address until SIGTERM or Ctrl-C.
package yardstick

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
)

// New returns a Gin engine in release mode with GET /healthz, which the
// benchmark polls before it sends load.
func New() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/healthz", func(c *gin.Context) { c.Status(http.StatusOK) })
	return r
}

// Serve serves h on listen until SIGTERM or Ctrl-C; it exits the process
// with a message prefixed with name when it cannot.
func Serve(name, listen string, h http.Handler) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		srv.Close()
	}()
	fmt.Fprintln(os.Stderr, name, "listening on", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
