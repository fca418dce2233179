package sqlitestore

import (
	"path/filepath"
	"testing"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

func TestHandOffConformance(t *testing.T) {
	storetest.RunHandOff(t, func(t *testing.T) store.Store { return openTemp(t) })
}

func TestAdminConformance(t *testing.T) {
	storetest.RunAdmin(t, func(t *testing.T) interface {
		store.Store
		store.Admin
	} {
		return openTemp(t)
	})
}

func BenchmarkAccept(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store { return openTemp(b) })
}

// BenchmarkDrain: Lease and Finish, through the one writer.
func BenchmarkDrain(b *testing.B) {
	storetest.BenchDrain(b, func(b *testing.B) store.Store { return openTemp(b) })
}

func BenchmarkIdleActions(b *testing.B) {
	storetest.BenchIdleActions(b, func(b *testing.B) store.Store { return openTemp(b) })
}

// openTemp opens a store on a fresh file of its own, closed when tb ends.
func openTemp(tb testing.TB) *Store {
	tb.Helper()
	s, err := Open(tb.Context(), filepath.Join(tb.TempDir(), "hookrelay.db"))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestRetentionConformance(t *testing.T) {
	storetest.RunRetention(t, func(t *testing.T) interface {
		store.Store
		store.Admin
		store.Pruner
	} {
		return openTemp(t)
	})
}

// BenchmarkListing1M times the admin listings' pages at a million stored
// events (storetest.BenchListing). Filling the file takes a few minutes,
// so run it on its own, e.g.
//
//	go test -run '^$' -bench 'Listing1M' -benchtime 20x -timeout 30m ./store/sqlitestore/
//
// HOOKRELAY_LISTING_EVENTS=100000 makes it quicker.
func BenchmarkListing1M(b *testing.B) {
	storetest.BenchListing(b, func(b *testing.B) interface {
		store.Store
		store.Admin
	} {
		return openTemp(b)
	})
}
