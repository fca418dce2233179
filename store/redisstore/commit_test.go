package redisstore

import (
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

func TestBatchAfterScriptCacheFlush(t *testing.T) {
	c := redistest.Client(t)
	s := New(c, redistest.Prefix(t))
	defer s.Close()
	if err := c.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	// A pipeline cannot fall back to EVAL by itself: every call of the batch
	// meets NOSCRIPT and must still be stored once.
	now := time.Now()
	var batch []*acceptCall
	for i := range 8 {
		e := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now, IdempotencyKey: strconv.Itoa(i)}
		keys, args, err := s.acceptArgs(store.Accept{Event: e, KeyTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, &acceptCall{id: e.ID, keys: keys, args: args, done: make(chan struct{})})
	}
	s.runBatch(batch)
	for _, call := range batch {
		<-call.done
		if call.err != nil || call.res != (store.Accepted{EventID: call.id}) {
			t.Errorf("Accept(%s) = %+v, %v; want it stored", call.id, call.res, call.err)
		}
		if _, err := s.Event(t.Context(), call.id); err != nil {
			t.Errorf("Event(%s): %v", call.id, err)
		}
	}
}

// TestOpenLoadsScripts: a store opened on a fresh server finds the scripts
// of the hot path already loaded.
func TestOpenLoadsScripts(t *testing.T) {
	u := redistest.Server(t)
	s, err := Open(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var hashes []string
	for _, sc := range []*redis.Script{acceptScript, leaseScript, finishScript, renewScript, releaseScript} {
		hashes = append(hashes, sc.Hash())
	}
	got, err := s.c.ScriptExists(t.Context(), hashes...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range got {
		if !ok {
			t.Errorf("script %d is not loaded after Open", i)
		}
	}
}
