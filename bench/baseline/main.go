// Command baseline is the benchmark's yardstick: a bare Gin server that
// reads each request body and answers 200, nothing else. hookrelay's intake
// rates are reported as ratios to its rate on the same machine in the same
// run.
package main

import (
	"flag"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/bench/yardstick"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()

	r := yardstick.New()
	r.POST("/hooks/catch/:hook", func(c *gin.Context) {
		// Read into memory as a gateway must before it can verify a signature.
		if _, err := io.ReadAll(io.LimitReader(c.Request.Body, 1<<20)); err != nil {
			c.Status(http.StatusBadRequest)
			return
		}
		c.Status(http.StatusOK)
	})
	yardstick.Serve("baseline", *listen, r)
}
