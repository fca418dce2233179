package redisstore_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
)

// TestAcceptWaitsForReplicas: with WaitReplicas, Accept returns once a
// replica holds the event, and fails with store.ErrNotReplicated when
// none acknowledges in time; the event is then on the master, so the
// sender's retry is a duplicate of it.
func TestAcceptWaitsForReplicas(t *testing.T) {
	ctx := t.Context()
	masterURL := redistest.Server(t)
	mu, _ := url.Parse(masterURL)
	replicaURL := redistest.Server(t, "--replicaof", mu.Hostname(), mu.Port())
	open := func(u string) *redis.Client {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		opt.MaxRetries = -1 // the replica is shut down below
		c := redis.NewClient(opt)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	master, replica := open(masterURL), open(replicaURL)
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := replica.Info(ctx, "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not connect:\n%s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := redisstore.New(master, "hr")
	defer s.Close()
	accept := func(key string, replicas int) (store.Accepted, error) {
		now := time.Now()
		e := store.Event{ID: store.NewID("evt", now), Hook: "orders", ReceivedAt: now, IdempotencyKey: key}
		return s.Accept(ctx, store.Accept{Event: e, KeyTTL: time.Hour, WaitReplicas: replicas})
	}

	t0 := time.Now()
	res, err := accept("k1", 1)
	t.Logf("first accept waiting for a replica: %v", time.Since(t0))
	if err != nil {
		t.Fatalf("Accept waiting for a replica: %v", err)
	}
	// Once Accept returned, the replica has it.
	if n, err := replica.Exists(ctx, "hr:{p}:evt:"+res.EventID).Result(); err != nil || n != 1 {
		t.Fatalf("the replica does not hold the event Accept returned: exists = %d, %v", n, err)
	}

	// A duplicate answered while waiting writes too (it renews the key's
	// time to live), so that the WAIT after it also covers the original it
	// names, which another connection may have written a moment ago;
	// without waiting it writes nothing.
	idem, err := master.Keys(ctx, "hr:{p}:idem:*").Result()
	if err != nil || len(idem) != 1 {
		t.Fatalf("idempotency keys: %v, %v", idem, err)
	}
	for _, tt := range []struct {
		replicas int
		writes   bool
	}{{0, false}, {1, true}} {
		time.Sleep(20 * time.Millisecond)
		before, err := master.PTTL(ctx, idem[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		dup, err := accept("k1", tt.replicas)
		if err != nil || !dup.Duplicate || dup.EventID != res.EventID {
			t.Fatalf("duplicate (waiting for %d) = %+v, %v", tt.replicas, dup, err)
		}
		after, err := master.PTTL(ctx, idem[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		if wrote := after > before; wrote != tt.writes {
			t.Errorf("a duplicate waiting for %d replicas wrote = %v (time to live %v, then %v), want %v", tt.replicas, wrote, before, after, tt.writes)
		}
	}

	// Without a replica, waiting fails in time, and the event is on the master.
	_ = replica.ShutdownNoSave(ctx).Err() // answered by closing the connection
	start := time.Now()
	_, err = accept("k2", 1)
	if !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("Accept waiting for a replica that is gone = %v, want store.ErrNotReplicated", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("Accept waited %v for a replica", waited)
	}
	retry, err := accept("k2", 0)
	if err != nil || !retry.Duplicate {
		t.Errorf("the retry of an event not replicated = %+v, %v; want a duplicate of the stored one", retry, err)
	}
	if _, err := accept("k3", 0); err != nil {
		t.Errorf("Accept without waiting: %v", err)
	}
}
