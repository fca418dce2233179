package store_test

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

func newReadiness(t *testing.T, s store.IdentityStore, onLoss func()) (*store.Readiness, *bytes.Buffer) {
	t.Helper()
	var log bytes.Buffer
	r := store.NewReadiness(s, store.ReadinessOptions{Logger: slog.New(slog.NewTextHandler(&log, nil)), OnLoss: onLoss})
	if err := r.Init(t.Context(), false); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return r, &log
}

// TestReadinessReplacedIdentity: a fresh identity written over the known
// one (a process that started on an emptied store before anyone noticed)
// is a loss for every process; the operator's acknowledgement ends it.
func TestReadinessReplacedIdentity(t *testing.T) {
	s, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "hookrelay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	var hook atomic.Int64
	a, alog := newReadiness(t, s, func() { hook.Add(1) })
	first, err := s.Identity(ctx)
	if err != nil || first.State != store.IdentityNew {
		t.Fatalf("identity after the first Init = %+v, %v; want a new one", first, err)
	}
	if err := a.Ready(ctx); err != nil {
		t.Fatalf("Ready on a new store: %v", err)
	}

	now := time.Now()
	if err := s.PutIdentity(ctx, first.ID, store.Identity{ID: store.NewID("sid", now), CreatedAt: now, State: store.IdentityNew}); err != nil {
		t.Fatal(err)
	}
	if err := a.Ready(ctx); err == nil || !strings.Contains(err.Error(), "store lost its data") {
		t.Fatalf("Ready after the identity was replaced: %v, want a loss", err)
	}
	if a.Losses() != 1 || hook.Load() != 1 {
		t.Errorf("Losses = %d, OnLoss called %d times; want 1 and 1", a.Losses(), hook.Load())
	}
	if !strings.Contains(alog.String(), "level=ERROR") || !strings.Contains(alog.String(), "events acknowledged before it may be lost") {
		t.Errorf("log:\n%s\nwant an ERROR naming the loss of acknowledged events", alog)
	}
	marked, err := s.Identity(ctx)
	if err != nil || marked.State != store.IdentityLost || marked.Previous != first.ID {
		t.Fatalf("stored identity = %+v, %v; want a lost marker replacing %s", marked, err, first.ID)
	}
	// Checked again, the loss stays and is counted once.
	if err := a.Check(ctx); err == nil || a.Losses() != 1 {
		t.Errorf("second Check: %v, Losses %d; want still lost, counted once", err, a.Losses())
	}

	// A process starting now is not ready either.
	b, _ := newReadiness(t, s, nil)
	if err := b.Ready(ctx); err == nil {
		t.Error("a process started on a store marked lost is ready")
	}

	if _, _, err := store.AcceptReset(ctx, s, time.Now()); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*store.Readiness{"a": a, "b": b} {
		if err := r.Ready(ctx); err != nil {
			t.Errorf("%s after AcceptReset: %v", name, err)
		}
	}
}

// TestReadinessIdentityGone: Redis keys deleted under the store's prefix
// (what FLUSHALL does to it) are noticed by the next check.
func TestReadinessIdentityGone(t *testing.T) {
	c := redistest.Client(t)
	prefix := redistest.Prefix(t)
	s := redisstore.New(c, prefix)
	defer s.Close()
	ctx := t.Context()
	r, _ := newReadiness(t, s, nil)
	if err := r.Check(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys under %s: %v, %v", prefix, keys, err)
	}
	if err := c.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(ctx); err == nil || !strings.Contains(err.Error(), "store lost its data") {
		t.Fatalf("Check after the keys were deleted: %v, want a loss", err)
	}
	id, err := s.Identity(ctx)
	if err != nil || id.State != store.IdentityLost {
		t.Errorf("identity after the loss = %+v, %v; want a lost marker", id, err)
	}
}
