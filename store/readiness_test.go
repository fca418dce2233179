package store_test

import (
	"bytes"
	"errors"
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

// TestReadinessExpect: with the identity an operator pinned, a store that
// holds none (emptied while no process ran: here a new file at the same
// path) is marked lost at Init, for every process, until AcceptReset; a
// store holding another identity is refused at Init, and one holding the
// pinned identity starts as usual.
func TestReadinessExpect(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	open := func(name string) *sqlitestore.Store {
		s, err := sqlitestore.Open(ctx, filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	initWith := func(s store.IdentityStore, expect string) (*store.Readiness, *bytes.Buffer, error) {
		var log bytes.Buffer
		r := store.NewReadiness(s, store.ReadinessOptions{Logger: slog.New(slog.NewTextHandler(&log, nil)), Expect: expect})
		return r, &log, r.Init(ctx, false)
	}

	first := open("first.db")
	r, _, err := initWith(first, "")
	if err != nil {
		t.Fatal(err)
	}
	pinned := r.Identity().ID
	if got, err := first.Identity(ctx); err != nil || got.ID != pinned {
		t.Fatalf("Identity() = %s, stored %+v, %v; want the same", pinned, got, err)
	}
	// The pinned store starts as usual.
	r, _, err = initWith(first, pinned)
	if err != nil {
		t.Fatalf("Init on the pinned store: %v", err)
	}
	if err := r.Ready(ctx); err != nil {
		t.Fatalf("Ready on the pinned store: %v", err)
	}

	// An empty store in its place lost the data.
	empty := open("empty.db")
	a, alog, err := initWith(empty, pinned)
	if err != nil {
		t.Fatalf("Init on an empty store with an expected identity: %v", err)
	}
	if err := a.Ready(ctx); err == nil || !strings.Contains(err.Error(), "store lost its data") {
		t.Fatalf("Ready on an empty store with an expected identity: %v, want a loss", err)
	}
	if a.Losses() != 1 {
		t.Errorf("Losses = %d, want 1", a.Losses())
	}
	if !strings.Contains(alog.String(), "level=ERROR") || !strings.Contains(alog.String(), "where "+pinned+" was expected") {
		t.Errorf("log:\n%s\nwant an ERROR naming the expected identity", alog)
	}
	marked, err := empty.Identity(ctx)
	if err != nil || marked.State != store.IdentityLost || marked.Previous != pinned {
		t.Fatalf("stored identity = %+v, %v; want a lost marker after %s", marked, err, pinned)
	}
	// Another process with the same pin, or with none, is not ready either.
	for _, expect := range []string{pinned, ""} {
		b, _, err := initWith(empty, expect)
		if err != nil {
			t.Fatalf("Init (expect %q) on the store marked lost: %v", expect, err)
		}
		if err := b.Ready(ctx); err == nil {
			t.Errorf("a process (expect %q) started on the store marked lost is ready", expect)
		}
	}

	// Accepted, the store gets a new identity: a running process adopts it,
	// and a process started with the old pin is refused, naming the new one.
	reset, _, err := store.AcceptReset(ctx, empty, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Ready(ctx); err != nil {
		t.Errorf("Ready after AcceptReset: %v", err)
	}
	_, _, err = initWith(empty, pinned)
	var ue *store.UnexpectedIdentityError
	if !errors.As(err, &ue) || ue.Want != pinned || ue.Got.ID != reset.ID {
		t.Fatalf("Init with the old pin after the reset: %v; want an UnexpectedIdentityError naming %s and %s", err, pinned, reset.ID)
	}
	if after, err := empty.Identity(ctx); err != nil || after.ID != reset.ID {
		t.Errorf("the refused Init changed the identity: %+v, %v", after, err)
	}
	if _, _, err := initWith(empty, reset.ID); err != nil {
		t.Errorf("Init with the new pin: %v", err)
	}

	// Another store altogether is refused, and left as it was.
	other := open("other.db")
	if _, _, err := initWith(other, ""); err != nil {
		t.Fatal(err)
	}
	before, _ := other.Identity(ctx)
	if _, _, err := initWith(other, pinned); !errors.As(err, &ue) || ue.Got.ID != before.ID {
		t.Fatalf("Init on another store: %v; want an UnexpectedIdentityError naming %s", err, before.ID)
	}
	if after, _ := other.Identity(ctx); after != before {
		t.Errorf("the refused Init changed the other store's identity: %+v → %+v", before, after)
	}
}
