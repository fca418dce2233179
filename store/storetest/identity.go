package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/store"
)

// identityTests hold a backend to the identity and probe contract that
// readiness relies on.
var identityTests = []struct {
	name string
	run  func(t *testing.T, s store.Store)
}{
	{"IdentityAbsentOnNewStore", testIdentityAbsent},
	{"IdentityReplacedOnlyFromTheOneRead", testIdentityCompareAndSet},
	{"IdentityConcurrentFirstWrites", testIdentityConcurrent},
	{"ProbeWritesWithoutGrowing", testProbe},
}

func testIdentityAbsent(t *testing.T, s store.Store) {
	_, err := s.Identity(t.Context())
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Identity of a new store: err = %v, want ErrNotFound", err)
	}
}

func testIdentityCompareAndSet(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := store.Identity{ID: store.NewID("sid", base), CreatedAt: base, State: store.IdentityNew}
	if err := s.PutIdentity(ctx, "", first); err != nil {
		t.Fatalf("PutIdentity on a new store: %v", err)
	}
	got, err := s.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, got, cmpOpts); diff != "" {
		t.Errorf("Identity (-want +got):\n%s", diff)
	}

	second := store.Identity{ID: store.NewID("sid", base.Add(time.Hour)), CreatedAt: base.Add(time.Hour), State: store.IdentityLost, Previous: first.ID}
	for _, prev := range []string{"", "sid_other"} {
		if err := s.PutIdentity(ctx, prev, second); !errors.Is(err, store.ErrConflict) {
			t.Errorf("PutIdentity from %q while %s is stored: err = %v, want ErrConflict", prev, first.ID, err)
		}
	}
	if got, _ := s.Identity(ctx); got.ID != first.ID {
		t.Fatalf("a refused PutIdentity changed the identity to %+v", got)
	}

	if err := s.PutIdentity(ctx, first.ID, second); err != nil {
		t.Fatalf("PutIdentity from the identity read: %v", err)
	}
	third := store.Identity{ID: store.NewID("sid", base.Add(2*time.Hour)), CreatedAt: base.Add(2 * time.Hour), State: store.IdentityReset}
	if err := s.PutIdentity(ctx, second.ID, third); err != nil {
		t.Fatal(err)
	}
	got, err = s.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Every field is replaced, an empty Previous included.
	if diff := cmp.Diff(third, got, cmpOpts); diff != "" {
		t.Errorf("Identity after two replacements (-want +got):\n%s", diff)
	}
}

// testIdentityConcurrent: processes starting together on a new store each
// try to write the first identity; exactly one succeeds.
func testIdentityConcurrent(t *testing.T, s store.Store) {
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- s.PutIdentity(t.Context(), "", store.Identity{ID: store.NewID("sid", base), CreatedAt: base.Add(time.Duration(i)), State: store.IdentityNew})
		}()
	}
	won := 0
	for range n {
		err := <-errs
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("PutIdentity: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d first identities were written, want 1", won)
	}
}

// testProbe: the probe writes, again and again, and leaves nothing a
// reader of events or deliveries would see.
func testProbe(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i := range 100 {
		if err := s.Probe(ctx, base.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatalf("Probe %d: %v", i, err)
		}
	}
	if _, err := s.Identity(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Identity after probes: err = %v, want ErrNotFound (the probe is not an identity)", err)
	}
	if st, err := s.QueueStats(ctx, base); err != nil || len(st) != 0 {
		t.Errorf("QueueStats after probes = %v, %v; want none", st, err)
	}
}
