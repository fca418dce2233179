// Command baseline is the benchmark's yardstick: a bare Gin server that
// reads each request body and answers 200, nothing else. hookrelay's intake
// rates are reported as ratios to its rate on the same machine in the same
// run.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.POST("/hooks/catch/:hook", func(c *gin.Context) {
		// Read into memory as a gateway must before it can verify a signature.
		if _, err := io.ReadAll(io.LimitReader(c.Request.Body, 1<<20)); err != nil {
			c.Status(http.StatusBadRequest)
			return
		}
		c.Status(http.StatusOK)
	})
	r.GET("/healthz", func(c *gin.Context) { c.Status(http.StatusOK) })

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		srv.Close()
	}()
	fmt.Fprintln(os.Stderr, "baseline listening on", ln.Addr())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}
