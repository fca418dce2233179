package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
)

// footprint counts the keys under prefix and sums their MEMORY USAGE.
func footprint(t *testing.T, c *redis.Client, prefix string) (keys int, bytes int64) {
	t.Helper()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		n, err := c.MemoryUsage(ctx, iter.Val()).Result()
		if err != nil && err != redis.Nil {
			t.Fatalf("MEMORY USAGE %s: %v", iter.Val(), err)
		}
		keys++
		bytes += n
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	return keys, bytes
}

// Pruning gives Redis its memory back: the events' hashes, their
// deliveries, attempts and index entries all go; an event still pending
// and its keys stay.
func TestPruneFreesMemory(t *testing.T) {
	c := redistest.Client(t)
	prefix := redistest.Prefix(t)
	s := redisstore.New(c, prefix)
	t.Cleanup(func() { _ = s.Close() })
	ctx := t.Context()
	at := time.Date(2030, time.March, 14, 15, 9, 26, 0, time.UTC)
	body := []byte(`{"pad":"` + strings.Repeat("x", 2048) + `"}`)

	accept := func(i int, actions ...string) store.Accept {
		e := store.Event{ID: store.NewID("evt", at), Hook: fmt.Sprintf("h%d", i%3), ReceivedAt: at,
			IdempotencyKey: fmt.Sprint("k", i), Body: body}
		a := store.Accept{Event: e, KeyTTL: time.Second}
		for _, act := range actions {
			a.Deliveries = append(a.Deliveries, store.Delivery{ID: store.NewID("dlv", at), Rule: "r", Action: act, NextAttemptAt: at})
		}
		if _, err := s.Accept(ctx, a); err != nil {
			t.Fatalf("Accept: %v", err)
		}
		return a
	}
	keep := accept(-1, "stuck")
	keys0, bytes0 := footprint(t, c, prefix)
	for i := range 300 {
		if i%2 == 0 {
			accept(i)
		} else {
			accept(i, "done")
		}
	}
	// Every "done" delivery succeeds after one attempt.
	for {
		b, err := s.Lease(ctx, store.LeaseRequest{Now: at, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "done", N: 100}}})
		if err != nil {
			t.Fatalf("Lease: %v", err)
		}
		if len(b.Leases) == 0 {
			break
		}
		var fs []store.Finish
		for _, l := range b.Leases {
			fs = append(fs, store.Finish{Lease: l, Attempt: store.Attempt{DeliveryID: l.Delivery.ID, N: 1, StartedAt: at, StatusCode: 200},
				Outcome: store.Outcome{Status: store.DeliverySucceeded}})
		}
		if _, err := s.Finish(ctx, fs); err != nil {
			t.Fatalf("Finish: %v", err)
		}
	}
	keys1, bytes1 := footprint(t, c, prefix)

	now := at.Add(time.Hour)
	var pruned store.Pruned
	for {
		got, err := s.Prune(ctx, store.Prune{Now: now, CompletedBefore: now.Add(-time.Minute), FailedBefore: now.Add(-time.Minute),
			Owner: "test", LeaseUntil: now.Add(time.Minute), Limit: 64})
		if err != nil {
			t.Fatalf("Prune: %v", err)
		}
		pruned.Events += got.Events
		pruned.Deliveries += got.Deliveries
		pruned.Attempts += got.Attempts
		if !got.More {
			break
		}
	}
	if want := (store.Pruned{Events: 300, Deliveries: 150, Attempts: 150}); pruned != want {
		t.Errorf("pruned %+v, want %+v", pruned, want)
	}
	// The idempotency keys expire on their own TTL (a second here, plus
	// the store's slack of a minute): check they have one, then delete
	// them as their expiry would.
	idem, err := c.Keys(ctx, prefix+":{p}:idem:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range idem {
		if ttl := c.PTTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("idempotency key %s has no TTL (%v): it would never go", k, ttl)
		}
	}
	if len(idem) > 0 {
		c.Del(ctx, idem...)
	}
	keys2, bytes2 := footprint(t, c, prefix)
	t.Logf("before: %d keys, %d bytes; loaded: %d keys, %d bytes; pruned: %d keys, %d bytes", keys0, bytes0, keys1, bytes1, keys2, bytes2)
	// What stays: the pending event's keys (its idempotency key deleted
	// above) and the pruning lease. Emptied sorted sets may keep a larger
	// encoding than they had when small, so memory drops back to the same
	// order as before the load, not to the byte.
	if keys2 > keys0 {
		t.Errorf("%d keys after pruning, want at most the %d before the load", keys2, keys0)
	}
	if bytes2 > 4*bytes0 || bytes2 > bytes1/50 {
		t.Errorf("memory after pruning = %d bytes, want it back near the %d before the load (loaded: %d)", bytes2, bytes0, bytes1)
	}
	if _, err := s.Event(ctx, keep.Event.ID); err != nil {
		t.Errorf("the pending event: %v, want it kept", err)
	}
}
