package retention_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/retention"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

var base = time.Date(2030, time.March, 14, 15, 9, 26, 0, time.UTC)

var windows = retention.Windows{Completed: time.Hour, Failed: 2 * time.Hour}

type fullStore interface {
	store.Store
	store.Admin
	store.Pruner
}

func openSQLite(t *testing.T) fullStore {
	t.Helper()
	s, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "hookrelay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openRedis(t *testing.T) fullStore {
	t.Helper()
	s := redisstore.New(redistest.Client(t), redistest.Prefix(t))
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// acceptIgnored accepts n ignored events received at at.
func acceptIgnored(t *testing.T, s store.Store, n int, at time.Time) {
	t.Helper()
	for i := range n {
		e := store.Event{ID: store.NewID("evt", at), Hook: "orders", ReceivedAt: at, Body: []byte(fmt.Sprint(i))}
		if _, err := s.Accept(t.Context(), store.Accept{Event: e}); err != nil {
			t.Fatalf("Accept: %v", err)
		}
	}
}

func countEvents(t *testing.T, s fullStore) int {
	t.Helper()
	evs, _, err := s.ListEvents(t.Context(), store.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	return len(evs)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestRunOnceBatchesAndLogs(t *testing.T) {
	for name, open := range map[string]func(*testing.T) fullStore{"sqlite": openSQLite, "redis": openRedis} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			acceptIgnored(t, s, 50, base)
			acceptIgnored(t, s, 3, base.Add(90*time.Minute)) // within the window at now
			var log syncBuffer
			p := retention.New(s, retention.Options{Windows: func() retention.Windows { return windows }, Batch: 7,
				Now: func() time.Time { return base.Add(2 * time.Hour) }, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			got, err := p.RunOnce(t.Context(), windows, time.Minute)
			if err != nil {
				t.Fatalf("RunOnce: %v", err)
			}
			if got.Events != 50 || got.More || got.Held {
				t.Errorf("RunOnce = %+v, want 50 events and nothing more", got)
			}
			if n := countEvents(t, s); n != 3 {
				t.Errorf("%d events listed after the run, want 3", n)
			}
			if !strings.Contains(log.String(), "retention: pruned") || !strings.Contains(log.String(), "events=50") {
				t.Errorf("log = %q, want a line saying 50 events were pruned", log.String())
			}
			// A run that prunes nothing logs nothing.
			before := log.String()
			if _, err := p.RunOnce(t.Context(), windows, time.Minute); err != nil {
				t.Fatal(err)
			}
			if log.String() != before {
				t.Errorf("a run that pruned nothing logged %q", strings.TrimPrefix(log.String(), before))
			}
		})
	}
}

// A run stops once it has taken its budget, work left or not.
func TestRunOnceBudget(t *testing.T) {
	s := openSQLite(t)
	acceptIgnored(t, s, 20, base)
	now := base.Add(2 * time.Hour)
	calls := 0
	p := retention.New(s, retention.Options{Windows: func() retention.Windows { return windows }, Batch: 5, Budget: time.Second,
		// Each reading of the clock moves it on by 400ms: the budget runs
		// out after the second batch.
		Now: func() time.Time { calls++; return now.Add(time.Duration(calls) * 400 * time.Millisecond) }})
	got, err := p.RunOnce(t.Context(), windows, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got.Events != 10 || !got.More {
		t.Errorf("RunOnce = %+v, want 10 events and more to do", got)
	}
}

// Two processes on one store: one prunes, the other is held off, and the
// work is done once.
func TestOneOwnerAtATime(t *testing.T) {
	s := openRedis(t)
	acceptIgnored(t, s, 40, base)
	now := func() time.Time { return base.Add(2 * time.Hour) }
	a := retention.New(s, retention.Options{Windows: func() retention.Windows { return windows }, Owner: "a", Batch: 10, Now: now})
	b := retention.New(s, retention.Options{Windows: func() retention.Windows { return windows }, Owner: "b", Batch: 10, Now: now})
	ga, err := a.RunOnce(t.Context(), windows, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	acceptIgnored(t, s, 5, base)
	gb, err := b.RunOnce(t.Context(), windows, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if ga.Events != 40 || !gb.Held || gb.Events != 0 {
		t.Errorf("a pruned %+v, b %+v; want a to prune all 40 and b to be held off", ga, gb)
	}
}

// Run prunes at once and then at every interval, until its context ends.
func TestRun(t *testing.T) {
	s := openSQLite(t)
	var mu sync.Mutex
	now := base
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p := retention.New(s, retention.Options{Windows: func() retention.Windows { return windows }, Every: 10 * time.Millisecond, Now: clock})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	acceptIgnored(t, s, 5, base)
	mu.Lock()
	now = base.Add(2 * time.Hour)
	mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for countEvents(t, s) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not prune the old events")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil once its context ends", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
