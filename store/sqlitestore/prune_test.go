package sqlitestore

import (
	"database/sql"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// acceptMany accepts n ignored events received at at, each with a body of
// about 4 KiB, from several callers so that they commit in batches.
func acceptMany(t *testing.T, s *Store, round, n int, at time.Time) {
	t.Helper()
	body := strings.Repeat("x", 4096)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for c := range 16 {
		wg.Go(func() {
			for i := c; i < n; i += 16 {
				a := testEvent("orders", "", round*n+i, at, "")
				a.Event.ID = store.NewID("evt", at)
				a.Event.Body = []byte(body)
				a.Deliveries = nil
				if _, err := s.Accept(t.Context(), a); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Accept: %v", err)
	}
}

func pragma(t *testing.T, s *Store, name string) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&n); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return n
}

func pruneAllOf(t *testing.T, s *Store, now time.Time, window time.Duration) store.Pruned {
	t.Helper()
	var sum store.Pruned
	for {
		got, err := s.Prune(t.Context(), store.Prune{Now: now, CompletedBefore: now.Add(-window), FailedBefore: now.Add(-window),
			Owner: "test", LeaseUntil: now.Add(time.Minute), Limit: 200})
		if err != nil {
			t.Fatalf("Prune: %v", err)
		}
		sum.Events += got.Events
		if !got.More {
			return sum
		}
	}
}

// Under steady load with pruning, the file stops growing: the pages of
// pruned events are given back and reused, never left on a free list.
func TestPruneKeepsTheFileBounded(t *testing.T) {
	s := openTemp(t)
	const perRound = 1500
	acceptMany(t, s, 0, perRound, base)
	full := pragma(t, s, "page_count")

	// Each round: a day's events arrive, and those older than a day go.
	peak := full
	for round := 1; round <= 4; round++ {
		at := base.Add(time.Duration(round) * 24 * time.Hour)
		acceptMany(t, s, round, perRound, at)
		peak = max(peak, pragma(t, s, "page_count"))
		if got := pruneAllOf(t, s, at, time.Hour); got.Events != perRound {
			t.Fatalf("round %d: pruned %d events, want %d", round, got.Events, perRound)
		}
		if free := pragma(t, s, "freelist_count"); free > 0 {
			t.Errorf("round %d: %d pages left on the free list after pruning", round, free)
		}
	}
	// Two rounds' worth at most, with room for the indexes' slack.
	if peak > 5*full/2 {
		t.Errorf("page count grew to %d under steady load; one round's events take %d", peak, full)
	}

	// Everything pruned: the file drops back to a few pages.
	if got := pruneAllOf(t, s, base.Add(30*24*time.Hour), time.Hour); got.Events != perRound {
		t.Fatalf("final prune: %d events, want %d", got.Events, perRound)
	}
	if after := pragma(t, s, "page_count"); after > full/10 {
		t.Errorf("page count after pruning everything = %d, want well below the %d one round took", after, full)
	}
}

// A file made before retention existed (auto_vacuum NONE) is converted once
// at open, its data kept.
func TestOpenConvertsToIncrementalVacuum(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	s := mustOpen(t, path)
	e := testEvent("orders", "k", 1, base)
	mustAccept(t, s, e)
	mustClose(t, s)

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"PRAGMA auto_vacuum = NONE", "VACUUM"} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var mode int
	if err := db.QueryRowContext(t.Context(), "PRAGMA auto_vacuum").Scan(&mode); err != nil || mode != 0 {
		t.Fatalf("auto_vacuum = %d, %v; want the old file at 0", mode, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, path)
	defer mustClose(t, s)
	if got := pragma(t, s, "auto_vacuum"); got != 2 {
		t.Errorf("auto_vacuum after Open = %d, want 2 (incremental)", got)
	}
	if _, err := s.Event(t.Context(), e.Event.ID); err != nil {
		t.Errorf("Event after the conversion: %v", err)
	}
}

// A new file is incremental from the start.
func TestNewFileIsIncrementalVacuum(t *testing.T) {
	s := openTemp(t)
	if got := pragma(t, s, "auto_vacuum"); got != 2 {
		t.Errorf("auto_vacuum = %d, want 2 (incremental)", got)
	}
}
