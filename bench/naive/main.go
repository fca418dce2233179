// Command naive is the benchmark's second yardstick: about the least a
// gateway that keeps webhooks in Redis can do. It checks each request's
// HMAC-SHA256 signature (hex, in X-Signature, keyed with BENCH_SECRET),
// takes the body's id as the idempotency key, and sends Redis one
// pipeline per request: SET of the key with NX and an expiry, and XADD of
// the body to a stream. It answers 202, or 200 for a key it has seen.
// No rules, no deliveries, no trace, no batching across requests: what
// hookrelay does beyond this is what its ratio to this server shows.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/bench/yardstick"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	addr := flag.String("redis", "127.0.0.1:6379", "address of the Redis to store in")
	prefix := flag.String("prefix", "naive", "prefix of the keys and of the stream")
	flag.Parse()
	secret := os.Getenv("BENCH_SECRET")
	if secret == "" {
		fmt.Fprintln(os.Stderr, "naive: BENCH_SECRET is not set")
		os.Exit(2)
	}

	rdb := redis.NewClient(&redis.Options{Addr: *addr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := rdb.Ping(ctx).Err()
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "naive: redis:", err)
		os.Exit(1)
	}

	r := yardstick.New()
	r.POST("/hooks/catch/:hook", func(c *gin.Context) {
		body, err := io.ReadAll(io.LimitReader(c.Request.Body, 1<<20))
		if err != nil {
			c.Status(http.StatusBadRequest)
			return
		}
		got, err := hex.DecodeString(c.GetHeader("X-Signature"))
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		if err != nil || !hmac.Equal(got, m.Sum(nil)) {
			c.Status(http.StatusUnauthorized)
			return
		}
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" {
			c.Status(http.StatusBadRequest)
			return
		}
		ctx := c.Request.Context()
		var set *redis.BoolCmd
		_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			set = p.SetNX(ctx, *prefix+":key:"+ev.ID, 1, 24*time.Hour)
			p.XAdd(ctx, &redis.XAddArgs{Stream: *prefix + ":events", Values: []any{"body", body}})
			return nil
		})
		switch {
		case err != nil:
			c.Status(http.StatusServiceUnavailable)
		case !set.Val():
			c.Status(http.StatusOK)
		default:
			c.Status(http.StatusAccepted)
		}
	})
	yardstick.Serve("naive", *listen, r)
}
