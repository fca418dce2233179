package relay_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
	"github.com/hookrelay/hookrelay/store/storetest"
)

// BenchmarkDrain measures the whole relay path — lease, render, HTTP
// request to a local receiver, finish — draining a backlog of b.N
// deliveries of one action, on each store. It reports deliveries/s, and
// the CPU time this process spent per delivery (the relay, the store's
// client side and the receiver), which a machine shared with others
// disturbs less than the rate; on Redis, also Redis's CPU time and its
// scripts' time per delivery.
func BenchmarkDrain(b *testing.B) {
	for _, backend := range []string{"sqlite", "redis"} {
		b.Run(backend, func(b *testing.B) {
			var got atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
			defer srv.Close()
			dir := b.TempDir()
			yaml := "hooks:\n  h:\n    verify: {scheme: none}\n    token: 0123456789abcdef\nactions:\n  call:\n    url: " + srv.URL + "/call\n    body_raw: true\n    concurrency: 64\n    retry: [1s]\n"
			if err := os.WriteFile(dir+"/c.yaml", []byte(yaml), 0o644); err != nil {
				b.Fatal(err)
			}
			cfg, err := config.Load(dir+"/c.yaml", func(string) (string, bool) { return "", false })
			if err != nil {
				b.Fatal(err)
			}
			var st store.Store
			var o relay.Options
			var counters []storetest.ServerCounter
			if backend == "sqlite" {
				s, err := sqlitestore.Open(context.Background(), dir+"/d.db")
				if err != nil {
					b.Fatal(err)
				}
				st = s
			} else {
				s := redisstore.New(redistest.Client(b), redistest.Prefix(b))
				st, o.Limiter = s, s.Limiter()
				counters = []storetest.ServerCounter{
					{Metric: "redis-µs/delivery", Read: func(b *testing.B) float64 { return redistest.CPU(b) * 1e6 }},
					{Metric: "script-µs/delivery", Read: func(b *testing.B) float64 { return redistest.ScriptTime(b) }},
				}
			}
			defer st.Close()
			fill(b, st, b.N)
			before := storetest.ReadCounters(b, counters)
			client := actions.NewClient(actions.ClientOptions{UserAgent: "bench"})
			o.Logger = discard()
			r := relay.New(st, client, func() map[string]*actions.Action { return cfg.Actions }, o)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			b.ResetTimer()
			start := time.Now()
			self0, selfOK := storetest.ProcessCPU()
			go func() { done <- r.Run(ctx) }()
			for got.Load() < int64(b.N) {
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			self1, _ := storetest.ProcessCPU()
			b.StopTimer()
			cancel()
			<-done
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
			if selfOK {
				// The relay, the store's client side and the receiver.
				b.ReportMetric(float64((self1-self0).Microseconds())/float64(b.N), "cpu-µs/delivery")
			}
			storetest.ReportCounters(b, counters, before)
		})
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fill accepts n events of one delivery each, 32 at a time.
func fill(b *testing.B, st store.Store, n int) {
	b.Helper()
	var next atomic.Int64
	var g errgroup.Group
	for range 32 {
		g.Go(func() error {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return nil
				}
				now := time.Now()
				id := strconv.FormatInt(i, 10)
				ev := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now, IdempotencyKey: id,
					Body: []byte(`{"id":"` + id + `","pad":"` + strings.Repeat("x", 1000) + `"}`), Headers: map[string]string{"content-type": "application/json"}}
				d := store.Delivery{ID: store.NewID("dlv", now), Rule: "r", Action: "call", NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}
				if _, err := st.Accept(context.Background(), store.Accept{Event: ev, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}); err != nil {
					return err
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}
