package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
	"github.com/hookrelay/hookrelay/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := redisstore.New(redistest.Client(t), redistest.Prefix(t))
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestHandOffConformance(t *testing.T) {
	storetest.RunHandOff(t, func(t *testing.T) store.Store {
		s := redisstore.New(redistest.Client(t), redistest.Prefix(t))
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// TestPartitionedHandOffConformance: on a store of several partitions the
// hand-off is reserved in partition 0 (reserveScript) and made in the
// event's.
func TestPartitionedHandOffConformance(t *testing.T) {
	storetest.RunHandOff(t, func(t *testing.T) store.Store {
		u, _ := storeURL(t)
		s, err := redisstore.Open(t.Context(), u+"&partitions=4")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestAdminConformance(t *testing.T) {
	storetest.RunAdmin(t, func(t *testing.T) interface {
		store.Store
		store.Admin
	} {
		s := redisstore.New(redistest.Client(t), redistest.Prefix(t))
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestRetentionConformance(t *testing.T) {
	storetest.RunRetention(t, func(t *testing.T) interface {
		store.Store
		store.Admin
		store.Pruner
	} {
		s := redisstore.New(redistest.Client(t), redistest.Prefix(t))
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// BenchmarkAccept reports, besides the rate, Redis's CPU time per event
// (INFO cpu) and the time Redis spent running scripts per event (INFO
// commandstats): the accept script, timed by Redis's clock.
func BenchmarkAccept(b *testing.B) {
	storetest.Bench(b, openBench, serverCounters...)
}

// serverCounters are Redis's CPU time (INFO cpu) and the time it spent
// running scripts (INFO commandstats), by Redis's clock.
var serverCounters = []storetest.ServerCounter{
	{Metric: "redis-µs/event", Read: func(b *testing.B) float64 { return redistest.CPU(b) * 1e6 }},
	{Metric: "script-µs/event", Read: func(b *testing.B) float64 { return redistest.ScriptTime(b) }},
}

// BenchmarkMemory reports what a stored event costs Redis's memory
// (storetest.BenchMemory), e.g.
//
//	go test -run '^$' -bench Memory -benchtime 20000x ./store/redisstore/
func BenchmarkMemory(b *testing.B) {
	storetest.BenchMemory(b, openBench, func(b *testing.B) int64 { return redistest.Memory(b) })
}

// BenchmarkMemoryCodecs is BenchmarkMemory on stores that compress bodies
// with S2 and a dictionary trained from the first of them (compress=dict,
// the default of a store opened from a URL), with S2 alone (compress=s2)
// and not at all (compress=off), e.g.
//
//	go test -run '^$' -bench MemoryCodecs -benchtime 20000x ./store/redisstore/
func BenchmarkMemoryCodecs(b *testing.B) {
	for _, c := range []string{"dict", "s2", "off"} {
		b.Run(c, func(b *testing.B) {
			storetest.BenchMemory(b, func(b *testing.B) store.Store {
				s, err := redisstore.Open(b.Context(), redistest.WithPrefix(redistest.URL(b), redistest.Prefix(b))+"&compress="+c)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = s.Close() })
				return s
			}, func(b *testing.B) int64 { return redistest.Memory(b) })
		})
	}
}

// BenchmarkDrain reports, besides the rate, what each delivery's Lease
// and Finish cost Redis (serverCounters).
func BenchmarkDrain(b *testing.B) {
	storetest.BenchDrain(b, openBench, serverCounters...)
}

// BenchmarkIdleActions reports what the actions with nothing due add to
// each Lease, in Redis's script time per call too (INFO cpu would count
// the INFO calls that read the counters around each Lease).
func BenchmarkIdleActions(b *testing.B) {
	storetest.BenchIdleActions(b, openBench, storetest.ServerCounter{Metric: "script-µs/call", Read: serverCounters[1].Read})
}

// BenchmarkListing1M times the admin listings' pages at a million stored
// events (storetest.BenchListing) under a test prefix of their own, which
// is deleted afterwards. Filling Redis takes a few minutes and ~3 GB of
// its memory, so run it on its own, e.g.
//
//	go test -run '^$' -bench 'Listing1M' -benchtime 20x -timeout 30m ./store/redisstore/
//
// HOOKRELAY_LISTING_EVENTS=100000 makes it quicker.
func BenchmarkListing1M(b *testing.B) {
	storetest.BenchListing(b, func(b *testing.B) interface {
		store.Store
		store.Admin
	} {
		s := redisstore.New(redistest.Client(b), redistest.Prefix(b))
		b.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func openBench(b *testing.B) store.Store {
	s := redisstore.New(redistest.Client(b), redistest.Prefix(b))
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// storeURL is the test server's URL naming a prefix of the test's own,
// and the prefix.
func storeURL(t *testing.T) (string, string) {
	prefix := redistest.Prefix(t)
	return redistest.WithPrefix(redistest.URL(t), prefix), prefix
}

func TestOpen(t *testing.T) {
	url, prefix := storeURL(t)
	s, err := redisstore.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()

	now := time.Now()
	e := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now}
	if _, err := s.Accept(t.Context(), store.Accept{Event: e}); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	// The event lives under the prefix the URL named.
	n, err := redistest.Client(t).Exists(t.Context(), prefix+":{p}:evt:"+e.ID).Result()
	if err != nil || n != 1 {
		t.Fatalf("event key under %s: exists = %d, %v", prefix, n, err)
	}
}

// TestOpenCompress: compress= picks how a body that compresses is stored
// (zstd by default, S2, or as it came with off), and each reads back whole.
func TestOpenCompress(t *testing.T) {
	url, prefix := storeURL(t)
	body := []byte(`{"items":"` + strings.Repeat("riesling ", 200) + `"}`)
	for _, tt := range []struct {
		query  string
		packed bool
		flag   string // after the body's length in the stored head
	}{{"", true, "z"}, {"&compress=zstd", true, "z"}, {"&compress=s2", true, "c"}, {"&compress=off", false, ""}} {
		s, err := redisstore.Open(t.Context(), url+tt.query)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		now := time.Now()
		e := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now, Body: body}
		if _, err := s.Accept(t.Context(), store.Accept{Event: e}); err != nil {
			t.Fatalf("Accept: %v", err)
		}
		raw, err := redistest.Client(t).Get(t.Context(), prefix+":{p}:evt:"+e.ID).Result()
		if err != nil {
			t.Fatal(err)
		}
		if packed := len(raw) < len(body); packed != tt.packed {
			t.Errorf("query %q: stored %d bytes for a body of %d: compressed = %v, want %v", tt.query, len(raw), len(body), packed, tt.packed)
		}
		head, _, _ := strings.Cut(raw, "\n")
		if fields := strings.Split(head, "|"); len(fields) < 4 || strings.TrimLeft(fields[2], "0123456789") != tt.flag {
			t.Errorf("query %q: head %q, want the body's length followed by %q", tt.query, head, tt.flag)
		}
		got, err := s.Event(t.Context(), e.ID)
		if err != nil || string(got.Body) != string(body) {
			t.Errorf("query %q: body read back differs (%v)", tt.query, err)
		}
		s.Close()
	}
}

func TestOpenRejects(t *testing.T) {
	tests := []struct {
		name, url, want string
	}{
		{"not redis", "http://127.0.0.1:6379/0", "scheme"},
		{"bad db", "redis://127.0.0.1:6379/x", "database"},
		{"brace in prefix", "redis://127.0.0.1:6379/0?prefix=a{b}", "prefix"},
		{"empty prefix", "redis://127.0.0.1:6379/0?prefix=", "prefix"},
		{"unknown compression", "redis://127.0.0.1:6379/0?compress=gzip", "compress"},
		{"password stays out of errors", "redis://u:s3cret@127.0.0.1:6379/x%zz", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := redisstore.Open(t.Context(), tt.url)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Open error = %q, want it to mention %q and no password", err, tt.want)
			}
		})
	}
}

// closedAddr returns a local address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestUnreachable(t *testing.T) {
	addr := closedAddr(t)
	if _, err := redisstore.Open(t.Context(), "redis://"+addr+"/0"); err == nil {
		t.Error("Open of an unreachable server succeeded")
	}

	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, DialerRetries: 1})
	s := redisstore.New(c, "hr")
	defer c.Close()
	defer s.Close()
	ctx := t.Context()
	now := time.Now()
	e := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now, IdempotencyKey: "k"}
	checks := []struct {
		name string
		call func() error
	}{
		{"Accept", func() error { _, err := s.Accept(ctx, store.Accept{Event: e, KeyTTL: time.Hour}); return err }},
		{"Lease", func() error { _, err := s.Lease(ctx, leaseReq(now, "a")); return err }},
		{"Renew", func() error { _, err := s.Renew(ctx, now, time.Minute, []store.Lease{{Token: "t"}}); return err }},
		{"Finish", func() error { _, err := s.Finish(ctx, []store.Finish{finishOf(now)}); return err }},
		{"Release", func() error { return s.Release(ctx, now, []store.Lease{{Token: "t"}}) }},
		{"ActionStates", func() error { _, err := s.ActionStates(ctx); return err }},
		{"PutActionState", func() error { _, err := s.PutActionState(ctx, store.ActionState{Action: "a"}); return err }},
		{"QueueStats", func() error { _, err := s.QueueStats(ctx, now); return err }},
		{"AllowAtMost", func() error {
			_, _, err := s.Limiter().AllowAtMost(ctx, "a", store.Rate{Count: 1, Per: time.Second}, 1)
			return err
		}},
		{"Ping", func() error { return s.Ping(ctx) }},
		{"Event", func() error { _, err := s.Event(ctx, e.ID); return err }},
	}
	for _, c := range checks {
		err := c.call()
		if err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s against an unreachable server: error = %v, want a connection error", c.name, err)
		}
	}
}

// leaseReq asks for up to 10 deliveries of each action, leased for a minute.
func leaseReq(now time.Time, actions ...string) store.LeaseRequest {
	r := store.LeaseRequest{Now: now, TTL: time.Minute}
	for _, a := range actions {
		r.Actions = append(r.Actions, store.ActionQuota{Action: a, N: 10})
	}
	return r
}

// finishOf is a succeeded finish of an unknown delivery.
func finishOf(now time.Time) store.Finish {
	return store.Finish{
		Lease:   store.Lease{Delivery: store.Delivery{ID: "dlv_missing"}, Token: "t"},
		Attempt: store.Attempt{N: 1, StartedAt: now},
		Outcome: store.Outcome{Status: store.DeliverySucceeded},
	}
}

func TestFinishUnknownDelivery(t *testing.T) {
	s := redisstore.New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	errs, err := s.Finish(t.Context(), []store.Finish{finishOf(time.Now())})
	if err != nil || len(errs) != 1 || !errors.Is(errs[0], store.ErrNotFound) {
		t.Fatalf("Finish of an unknown delivery = %v, %v; want ErrNotFound for it", errs, err)
	}
}

func TestWakeEndsOnClose(t *testing.T) {
	s := redisstore.New(redistest.Client(t), redistest.Prefix(t))
	wake := s.Wake(context.Background())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range wake {
	}
	if _, ok := <-s.Wake(context.Background()); ok {
		t.Error("Wake after Close returned an open channel")
	}
}

func TestAcceptSameEventTwice(t *testing.T) {
	// A client retry of an Accept whose reply was lost finds its own
	// idempotency key: that is the event itself, not a duplicate.
	s := redisstore.New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	now := time.Now()
	e := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now, IdempotencyKey: "k"}
	d := store.Delivery{ID: store.NewID("dlv", now), EventID: e.ID, Hook: "h", Rule: "r", Action: "a", NextAttemptAt: now}
	a := store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}
	for try := range 2 {
		got, err := s.Accept(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, store.Accepted{EventID: e.ID}) {
			t.Fatalf("try %d: Accept = %+v, want the event stored", try, got)
		}
	}
	b, err := s.Lease(t.Context(), leaseReq(now, "a"))
	if err != nil || len(b.Leases) != 1 {
		t.Fatalf("Lease = %d leases, %v; want the one delivery once", len(b.Leases), err)
	}
}

func TestAcceptAfterClose(t *testing.T) {
	s := redisstore.New(redistest.Client(t), redistest.Prefix(t))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	e := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now}
	if _, err := s.Accept(t.Context(), store.Accept{Event: e}); err == nil {
		t.Error("Accept after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestAdminAcrossStores runs two stores on one prefix, as two processes
// would: a key revoked through one is revoked for the other at once, and a
// retry through one wakes the other's relays.
func TestAdminAcrossStores(t *testing.T) {
	ctx := t.Context()
	prefix := redistest.Prefix(t)
	a := redisstore.New(redistest.Client(t), prefix)
	defer a.Close()
	b := redisstore.New(redistest.Client(t), prefix)
	defer b.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)

	k := store.APIKey{ID: store.NewID("key", now), Name: "ops", Prefix: "hr_0123456", Hash: strings.Repeat("a", 64), Scopes: []string{"read"}, CreatedAt: now}
	if err := a.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if got, err := b.KeyByHash(ctx, k.Hash); err != nil || !got.RevokedAt.IsZero() {
		t.Fatalf("KeyByHash through the other store = %+v, %v; want the valid key", got, err)
	}
	if err := a.RevokeKey(ctx, k.ID, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, err := b.KeyByHash(ctx, k.Hash); err != nil || !got.RevokedAt.Equal(now.Add(time.Second)) {
		t.Fatalf("KeyByHash through the other store after a revoke = %+v, %v; want it revoked", got, err)
	}

	e := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now}
	d := store.Delivery{ID: store.NewID("dlv", now), EventID: e.ID, Hook: "h", Rule: "r", Action: "a", NextAttemptAt: now}
	if _, err := a.Accept(ctx, store.Accept{Event: e, Deliveries: []store.Delivery{d}}); err != nil {
		t.Fatal(err)
	}
	b1, err := a.Lease(ctx, leaseReq(now, "a"))
	if err != nil || len(b1.Leases) != 1 {
		t.Fatalf("Lease = %d leases, %v", len(b1.Leases), err)
	}
	errs, err := a.Finish(ctx, []store.Finish{{Lease: b1.Leases[0], Attempt: store.Attempt{N: 1, StartedAt: now},
		Outcome: store.Outcome{Status: store.DeliveryDead}}})
	if err != nil || errs[0] != nil {
		t.Fatal(errs, err)
	}
	wakeCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	wake := b.Wake(wakeCtx)
	if _, err := a.RetryDelivery(ctx, d.ID, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(30 * time.Second):
		t.Fatal("the other store's relays were not woken by a retry")
	}
}

// proxy forwards TCP connections to a Redis server until cut.
type proxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l}
	t.Cleanup(p.cut)
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
			go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
		}
	}()
	return p
}

// cut closes the listener and every connection, as a network failure or a
// Redis restart would.
func (p *proxy) cut() {
	_ = p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// TestLostConnection: once the connection to Redis is lost, every call
// returns an error, never a wrong answer such as "not found" or "lease
// lost".
func TestLostConnection(t *testing.T) {
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, opt.Addr)
	opt.Addr, opt.MaxRetries, opt.DialTimeout, opt.DialerRetries = p.l.Addr().String(), -1, time.Second, 1
	c := redis.NewClient(opt)
	defer c.Close()
	s := redisstore.New(c, redistest.Prefix(t))
	defer s.Close()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	e := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now}
	d := store.Delivery{ID: store.NewID("dlv", now), EventID: e.ID, Hook: "h", Rule: "r", Action: "a", NextAttemptAt: now}
	if _, err := s.Accept(ctx, store.Accept{Event: e, Deliveries: []store.Delivery{d}}); err != nil {
		t.Fatal(err)
	}
	b, err := s.Lease(ctx, leaseReq(now, "a"))
	if err != nil || len(b.Leases) != 1 {
		t.Fatalf("Lease = %v, %v", b.Leases, err)
	}
	l := b.Leases[0]

	p.cut()
	e2 := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now}
	checks := []struct {
		name string
		call func() error
	}{
		{"Accept", func() error { _, err := s.Accept(ctx, store.Accept{Event: e2}); return err }},
		{"Lease", func() error { _, err := s.Lease(ctx, leaseReq(now, "a")); return err }},
		{"Renew", func() error { _, err := s.Renew(ctx, now, time.Minute, []store.Lease{l}); return err }},
		{"Finish", func() error {
			errs, err := s.Finish(ctx, []store.Finish{{Lease: l, Attempt: store.Attempt{N: 1, StartedAt: now}, Outcome: store.Outcome{Status: store.DeliverySucceeded}}})
			if errs != nil {
				return fmt.Errorf("per-item errors %v beside the store's", errs)
			}
			return err
		}},
		{"Finish batch", func() error {
			f := store.Finish{Lease: l, Attempt: store.Attempt{N: 1, StartedAt: now}, Outcome: store.Outcome{Status: store.DeliverySucceeded}}
			_, err := s.Finish(ctx, []store.Finish{f, f})
			return err
		}},
		{"Release", func() error { return s.Release(ctx, now, []store.Lease{l}) }},
		{"ActionStates", func() error { _, err := s.ActionStates(ctx); return err }},
		{"PutActionState", func() error { _, err := s.PutActionState(ctx, store.ActionState{Action: "a"}); return err }},
		{"QueueStats", func() error { _, err := s.QueueStats(ctx, now); return err }},
		{"Delivery", func() error { _, err := s.Delivery(ctx, d.ID); return err }},
		{"RetryDelivery", func() error { _, err := s.RetryDelivery(ctx, d.ID, now); return err }},
		{"Ping", func() error { return s.Ping(ctx) }},
		{"AllowAtMost", func() error {
			_, _, err := s.Limiter().AllowAtMost(ctx, "a", store.Rate{Count: 1, Per: time.Second}, 1)
			return err
		}},
	}
	for _, c := range checks {
		err := c.call()
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s after the connection was lost: error = %v, want a connection error", c.name, err)
		}
	}
}

// TestProbeOverwrites: the readiness probe keeps one key however often it
// runs.
func TestProbeOverwrites(t *testing.T) {
	c := redistest.Client(t)
	prefix := redistest.Prefix(t)
	s := redisstore.New(c, prefix)
	defer s.Close()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 200 {
		if err := s.Probe(t.Context(), now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := c.Keys(t.Context(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		t.Errorf("keys after 200 probes = %v, want one", keys)
	}
}

// WithExisting opens only a store that is there, and writes nothing to a
// Redis that holds none; Created tells the Open that made a store.
func TestOpenExisting(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	prefix := redistest.Prefix(t)
	url := redistest.WithPrefix(redistest.URL(t), prefix)

	if _, err := redisstore.Open(ctx, url, redisstore.WithExisting()); !errors.Is(err, redisstore.ErrNoStore) {
		t.Fatalf("WithExisting on no store: %v, want ErrNoStore", err)
	}
	if keys := redistest.Keys(t, c, prefix); len(keys) > 0 {
		t.Fatalf("a refused open wrote %v", keys)
	}
	for i, want := range []bool{true, false} {
		s, err := redisstore.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if s.Created() != want {
			t.Errorf("open %d: Created() = %v, want %v", i+1, s.Created(), want)
		}
		s.Close()
	}
	s, err := redisstore.Open(ctx, url, redisstore.WithExisting())
	if err != nil {
		t.Fatalf("WithExisting on the store made: %v", err)
	}
	if s.Created() {
		t.Error("Created() on a store that was there")
	}
	s.Close()
}
