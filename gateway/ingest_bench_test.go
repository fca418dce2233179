package gateway_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/gateway"
	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store/redisstore"
	"github.com/hookrelay/hookrelay/store/seal"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

// ingestConfig is the benchmark's hook: a signed 1 KiB JSON webhook, its
// idempotency key in the body, one rule that reads the body and one action.
const ingestConfig = `
hooks:
  bench:
    verify:
      scheme: hmac
      header: X-Signature
      algorithm: sha256
      encoding: hex
      secrets: ["bench-secret-0123456789"]
    idempotency:
      key: body.id
    rules: [rules.yaml]
actions:
  fast:
    url: http://127.0.0.1:9/fast
`

const ingestRules = `
rules:
  - name: fast
    when: body.route != "slow"
    actions: [fast]
`

// ingestConfigFile loads ingestConfig with its rule file beside it.
func ingestConfigFile(b *testing.B) *config.Config {
	dir := b.TempDir()
	for name, text := range map[string]string{"hookrelay.yaml": ingestConfig, "rules.yaml": ingestRules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "hookrelay.yaml"), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// discard is a ResponseWriter that keeps only the status.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }

// paymentData is the rest of a payment provider's webhook, and the
// opening of a note that pads the whole to 1 KiB.
const paymentData = `"data":{"object":{"id":"pi_32nptkhkaepcn","object":"payment_intent","amount":38082,` +
	`"amount_received":38082,"capture_method":"automatic","client_secret":"pi_32nptkhkaepcn_secret_894jmc",` +
	`"created":1795985057,"currency":"eur","customer":"cus_894jmc","description":"invoice weekend order 569077",` +
	`"latest_charge":"ch_32nptkhkaepcn","livemode":false,"metadata":{"order_id":"ORD-569077","club":"vintage"},` +
	`"payment_method":"pm_32nptkhkaepcn","receipt_email":"member894jmc@example.com","shipping":{"address":` +
	`{"city":"Berlin","country":"DE","line1":"Torstrasse 21","postal_code":"41971"},"name":"Member 894jmc"},` +
	`"status":"succeeded"}},"note":"club gold merlot pinot shipped vintage renewal note wine resumed silver ` +
	`requested subscription box partial order shipped gold silver wine bottle weekend tasting cellar `

// BenchmarkIngest measures the intake handler in-process, without the
// network: 64 goroutines send signed 1 KiB webhooks with unique keys
// straight to the handler, which verifies, evaluates and stores each one.
// "gin" is the baseline: a bare Gin handler that reads the body and answers
// 200. Compare the ns/op of each store with the baseline's in the same run,
// and profile with -cpuprofile, e.g.
//
//	go test -run '^$' -bench Ingest -benchtime 5s -cpuprofile cpu.out ./gateway/
func BenchmarkIngest(b *testing.B) {
	if len(paymentData) > 1024-64 {
		b.Fatalf("the payment data takes %d bytes", len(paymentData))
	}
	secret := []byte("bench-secret-0123456789")
	var seq atomic.Int64
	request := func() *http.Request {
		n := seq.Add(1)
		body := make([]byte, 0, 1024)
		body = append(body, `{"id":"evt-`...)
		body = strconv.AppendInt(body, n, 10)
		body = append(body, `","route":"fast","type":"payment_intent.succeeded",`...)
		body = append(body, paymentData...)
		body = append(body, strings.Repeat("x", 1024-len(body)-2)...)
		body = append(body, `"}`...)
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		req, _ := http.NewRequest(http.MethodPost, "/hooks/catch/bench", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Signature", hex.EncodeToString(m.Sum(nil)))
		req.RemoteAddr = "127.0.0.1:40000"
		return req
	}
	run := func(b *testing.B, h http.Handler, want int) {
		b.SetParallelism(32)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			w := &discard{h: http.Header{}}
			for pb.Next() {
				clear(w.h)
				w.code = 0
				h.ServeHTTP(w, request())
				if w.code != want {
					b.Errorf("answer %d, want %d", w.code, want)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	}
	b.Run("gin", func(b *testing.B) {
		gin.SetMode(gin.ReleaseMode)
		r := gin.New()
		r.POST("/hooks/catch/:hook", func(c *gin.Context) {
			if _, err := io.ReadAll(c.Request.Body); err != nil {
				c.Status(http.StatusBadRequest)
				return
			}
			c.Status(http.StatusOK)
		})
		run(b, r, http.StatusOK)
	})
	b.Run("sqlite", func(b *testing.B) {
		g := gateway.New(tempStore(b), ingestConfigFile(b), gateway.Options{})
		run(b, g.Handler(), http.StatusAccepted)
	})
	b.Run("redis", func(b *testing.B) {
		s := redisstore.New(redistest.Client(b), redistest.Prefix(b))
		b.Cleanup(func() { _ = s.Close() })
		g := gateway.New(s, ingestConfigFile(b), gateway.Options{})
		run(b, g.Handler(), http.StatusAccepted)
	})
	// The same, each event sealed at rest (store/seal): compare with the
	// store's unsealed run.
	keys, err := seal.ParseKeys("bench:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, seal.KeySize)))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("sqlite-sealed", func(b *testing.B) {
		st, err := sqlitestore.Open(b.Context(), filepath.Join(b.TempDir(), "gw.db"), sqlitestore.WithKeys(keys))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		g := gateway.New(st, ingestConfigFile(b), gateway.Options{})
		run(b, g.Handler(), http.StatusAccepted)
	})
	b.Run("redis-sealed", func(b *testing.B) {
		s := redisstore.New(redistest.Client(b), redistest.Prefix(b), redisstore.WithKeys(keys))
		b.Cleanup(func() { _ = s.Close() })
		g := gateway.New(s, ingestConfigFile(b), gateway.Options{})
		run(b, g.Handler(), http.StatusAccepted)
	})
}
