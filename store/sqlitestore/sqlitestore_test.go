package sqlitestore

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/store"
)

// base is the tests' injected "now".
var base = time.Date(2030, time.March, 14, 15, 9, 26, 535_000_000, time.UTC)

var cmpTimes = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
}

// testEvent returns event n on hook with idempotency key key, received at at,
// and its deliveries (one per action) due at at.
func testEvent(hook, key string, n int, at time.Time, actions ...string) store.Accept {
	e := store.Event{
		ID:             store.NewID("evt", at),
		Hook:           hook,
		ReceivedAt:     at,
		IdempotencyKey: key,
		Headers:        map[string]string{"content-type": "application/json"},
		Query:          map[string]string{},
		Body:           []byte(fmt.Sprintf(`{"n":%d}`, n)),
	}
	a := store.Accept{Event: e, KeyTTL: 24 * time.Hour}
	for i, action := range actions {
		a.Event.MatchedRules = append(a.Event.MatchedRules, "rule")
		a.Deliveries = append(a.Deliveries, store.Delivery{
			ID:            fmt.Sprintf("dlv_%s_%06d_%d", hook, n, i),
			EventID:       e.ID,
			Hook:          hook,
			Rule:          "rule",
			Action:        action,
			Status:        store.DeliveryPending,
			NextAttemptAt: at,
			CreatedAt:     at,
			UpdatedAt:     at,
		})
	}
	return a
}

func mustAccept(t *testing.T, s *Store, a store.Accept) store.Accepted {
	t.Helper()
	got, err := s.Accept(t.Context(), a)
	if err != nil {
		t.Fatalf("Accept(%s): %v", a.Event.ID, err)
	}
	return got
}

// quotas asks for up to n deliveries of each action.
func quotas(n int, actions ...string) []store.ActionQuota {
	qs := make([]store.ActionQuota, len(actions))
	for i, a := range actions {
		qs[i] = store.ActionQuota{Action: a, N: n}
	}
	return qs
}

// mustLease leases up to n due deliveries of each action at now for ttl.
func mustLease(t testing.TB, s *Store, now time.Time, n int, ttl time.Duration, actions ...string) store.LeaseBatch {
	t.Helper()
	b, err := s.Lease(t.Context(), store.LeaseRequest{Now: now, TTL: ttl, Actions: quotas(n, actions...)})
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	return b
}

// finishOne records one finished attempt and returns its item's error; an
// error of the store itself fails the test.
func finishOne(t testing.TB, s *Store, l store.Lease, a store.Attempt, o store.Outcome) error {
	t.Helper()
	errs, err := s.Finish(t.Context(), []store.Finish{{Lease: l, Attempt: a, Outcome: o}})
	if err != nil {
		t.Fatalf("Finish(%s): %v", l.Delivery.ID, err)
	}
	if len(errs) != 1 {
		t.Fatalf("Finish(%s) returned %d errors for one item", l.Delivery.ID, len(errs))
	}
	return errs[0]
}

func mustOpen(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func mustClose(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestOpenCreatesParentDirectories(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var", "lib", "hookrelay", "hookrelay.db")
	s := mustOpen(t, path)
	defer mustClose(t, s)
	mustAccept(t, s, testEvent("orders", "k", 1, base, "crm")) // creates the -wal file
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatalf("database file: %v", err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has permissions %v, want -rw-------", filepath.Base(name), perm)
		}
	}
}

// TestOpenTightensAnExistingFile: a database file, -wal and -shm that
// others can read (made by an older version, copied in, restored from a
// backup) are restricted to their owner when the store opens them.
func TestOpenTightensAnExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hookrelay.db")
	first := mustOpen(t, path)
	mustAccept(t, first, testEvent("orders", "k", 1, base, "crm")) // the -wal and -shm files exist while it is open
	files := []string{path, path + "-wal", path + "-shm"}
	for _, name := range files {
		if err := os.Chmod(name, 0o664); err != nil {
			t.Fatal(err)
		}
	}
	second := mustOpen(t, path)
	for _, name := range files {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has permissions %v after Open, want -rw-------", filepath.Base(name), perm)
		}
	}
	mustClose(t, second)
	mustClose(t, first)

	// A file alone, without -wal and -shm.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range files[1:] {
		if _, err := os.Stat(name); err == nil {
			t.Fatalf("%s still exists after close", name)
		}
	}
	s := mustOpen(t, path)
	defer mustClose(t, s)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("database file after Open: %v %v, want -rw-------", fi.Mode(), err)
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	notSQLite := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(notSQLite, []byte(strings.Repeat("not a database ", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"empty path", ""},
		{"question mark", filepath.Join(dir, "a?b.db")},
		{"parent is a file", filepath.Join(notADir, "hookrelay.db")},
		{"not a database", notSQLite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.Context(), tt.path)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tt.path)
			}
		})
	}
}

// TestPragmas checks the pragmas on the write connection and on several
// read connections held at once, so that more than one pooled connection is
// looked at.
func TestPragmas(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	type pragmas struct {
		JournalMode string
		Synchronous int
		ForeignKeys int
		BusyTimeout int
		QueryOnly   int
		TempStore   int
	}
	read := func(t *testing.T, c *sql.Conn) pragmas {
		t.Helper()
		var p pragmas
		for _, q := range []struct {
			pragma string
			dest   any
		}{
			{"journal_mode", &p.JournalMode},
			{"synchronous", &p.Synchronous},
			{"foreign_keys", &p.ForeignKeys},
			{"busy_timeout", &p.BusyTimeout},
			{"query_only", &p.QueryOnly},
			{"temp_store", &p.TempStore},
		} {
			if err := c.QueryRowContext(ctx, "PRAGMA "+q.pragma).Scan(q.dest); err != nil {
				t.Fatalf("PRAGMA %s: %v", q.pragma, err)
			}
		}
		return p
	}
	// synchronous=NORMAL (1): the store flushes the WAL itself before it
	// answers a write (sync.go, TestAnsweredAfterTheFlush).
	want := pragmas{JournalMode: "wal", Synchronous: 1, ForeignKeys: 1, BusyTimeout: int(busyTimeout.Milliseconds()), TempStore: 2}

	t.Run("writer", func(t *testing.T) {
		var got pragmas
		err := s.write(ctx, func(w *writeTx) error {
			got = read(t, w.conn)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("write connection pragmas (-want +got):\n%s", diff)
		}
	})
	t.Run("readers", func(t *testing.T) {
		wantRead := want
		wantRead.QueryOnly = 1
		const n = 3
		var conns []*sql.Conn
		for range n {
			c, err := s.rdb.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns = append(conns, c)
		}
		if got := s.rdb.Stats().OpenConnections; got < n {
			t.Fatalf("%d read connections open, want at least %d", got, n)
		}
		for i, c := range conns {
			if diff := cmp.Diff(wantRead, read(t, c)); diff != "" {
				t.Errorf("read connection %d pragmas (-want +got):\n%s", i, diff)
			}
			if _, err := c.ExecContext(ctx, "DELETE FROM events"); err == nil {
				t.Errorf("read connection %d accepted a write", i)
			}
		}
	})
}

func TestMigrationsOnReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hookrelay.db")
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	version := func(t *testing.T, s *Store) int {
		t.Helper()
		var v int
		if err := s.rdb.QueryRowContext(t.Context(), "PRAGMA user_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	s := mustOpen(t, path)
	if got := version(t, s); got != len(ms) {
		t.Fatalf("user_version after the first Open = %d, want %d", got, len(ms))
	}
	a := testEvent("orders", "k", 1, base, "crm")
	mustAccept(t, s, a)
	mustClose(t, s)

	for i := range 2 {
		s := mustOpen(t, path)
		if got := version(t, s); got != len(ms) {
			t.Fatalf("user_version after reopen %d = %d, want %d", i, got, len(ms))
		}
		if _, err := s.Event(t.Context(), a.Event.ID); err != nil {
			t.Fatalf("reopen %d: Event: %v", i, err)
		}
		mustClose(t, s)
	}

	// A file from a newer hookrelay is refused, not misread.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(ms)+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := Open(t.Context(), path); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a newer schema: error = %v, want one naming a newer version", err)
	}
}

func TestLoadMigrations(t *testing.T) {
	file := func(sql string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(sql)} }
	tests := []struct {
		name    string
		fs      fstest.MapFS
		want    []int
		wantErr string
	}{
		{"none", fstest.MapFS{}, nil, ""},
		{"in order", fstest.MapFS{
			"migrations/0002_b.sql": file("B"),
			"migrations/0001_a.sql": file("A"),
			"migrations/0003_c.sql": file("C"),
			"migrations/README":     file("not a migration"),
		}, []int{1, 2, 3}, ""},
		{"gap", fstest.MapFS{"migrations/0001_a.sql": file("A"), "migrations/0003_c.sql": file("C")}, nil, "expected number 2"},
		{"repeat", fstest.MapFS{"migrations/0001_a.sql": file("A"), "migrations/0001_b.sql": file("B")}, nil, "expected number 2"},
		{"starts at two", fstest.MapFS{"migrations/0002_a.sql": file("A")}, nil, "expected number 1"},
		{"no number", fstest.MapFS{"migrations/init.sql": file("A")}, nil, "NNNN_description"},
		{"not a number", fstest.MapFS{"migrations/one_a.sql": file("A")}, nil, "positive number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := loadMigrations(tt.fs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, m := range ms {
				got = append(got, m.version)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("versions (-want +got):\n%s", diff)
			}
		})
	}
}

// TestGroupCommit holds the writer inside a transaction while many Accepts
// queue up, then checks that they all commit in the next single transaction
// and that the two failing among them do not undo the others: one fails at
// its first statement, the other at its last, and nothing of it stays.
// synctest makes "every caller is waiting" observable without sleeping.
func TestGroupCommit(t *testing.T) {
	const callers = 100 // fewer than maxBatch, so they fit one batch
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		var (
			mu      sync.Mutex
			batches []int
		)
		s, err := open(t.Context(), filepath.Join(dir, "hookrelay.db"), func(s *Store) {
			s.onCommit = func(n int) {
				mu.Lock()
				batches = append(batches, n)
				mu.Unlock()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer mustClose(t, s)
		ctx := t.Context()
		// An event the failing Accept below collides with.
		taken := testEvent("orders", "", 0, base, "crm")
		mustAccept(t, s, taken)

		release := make(chan struct{})
		holding := make(chan error, 1)
		go func() {
			holding <- s.write(ctx, func(*writeTx) error { <-release; return nil })
		}()
		synctest.Wait() // the writer is inside the holding op

		errs := make([]error, callers)
		late := testEvent("orders", fmt.Sprintf("key-%d", callers/4), callers/4+1, base, "crm", "erp")
		late.Deliveries[1].ID = taken.Deliveries[0].ID // stored already: its event and key were written before it
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				a := testEvent("orders", fmt.Sprintf("key-%d", i), i+1, base, "crm", "erp")
				switch i {
				case callers / 2:
					a.Event.ID = taken.Event.ID // primary key conflict
					for j := range a.Deliveries {
						a.Deliveries[j].EventID = taken.Event.ID
					}
				case callers / 4:
					a = late
				}
				_, errs[i] = s.Accept(ctx, a)
			})
		}
		synctest.Wait() // every caller is blocked handing its Accept over
		close(release)
		wg.Wait()
		if err := <-holding; err != nil {
			t.Fatalf("holding write: %v", err)
		}

		for i, err := range errs {
			if i == callers/2 || i == callers/4 {
				if err == nil {
					t.Errorf("Accept %d reusing an id succeeded", i)
				}
				continue
			}
			if err != nil {
				t.Errorf("Accept %d: %v", i, err)
			}
		}
		mu.Lock()
		got := append([]int(nil), batches...)
		mu.Unlock()
		if diff := cmp.Diff([]int{1, 1, callers}, got); diff != "" {
			t.Errorf("requests per commit (-want +got):\n%s", diff)
		}
		if _, err := s.Event(ctx, late.Event.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the event of the Accept that failed at its last statement: %v, want %v", err, store.ErrNotFound)
		}
		// Its key was given back with it: the sender's retry is stored.
		retry := testEvent("orders", late.Event.IdempotencyKey, callers+1, base, "crm")
		if got := mustAccept(t, s, retry); got.Duplicate || got.EventID != retry.Event.ID {
			t.Errorf("retry of the failed Accept: %+v, want event %s stored", got, retry.Event.ID)
		}
		b := mustLease(t, s, base, 1000, time.Minute, "crm", "erp")
		if want := 1 + 2*(callers-2) + 1; len(b.Leases) != want {
			t.Errorf("leased %d deliveries, want %d", len(b.Leases), want)
		}
	})
}

// TestProbeOverwrites: the readiness probe keeps one row however often it
// runs.
func TestProbeOverwrites(t *testing.T) {
	s := openTemp(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 200 {
		if err := s.Probe(t.Context(), now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	var at int64
	if err := s.rdb.QueryRowContext(t.Context(), `SELECT count(*), max(at) FROM probe`).Scan(&n, &at); err != nil {
		t.Fatal(err)
	}
	if want := now.Add(199 * time.Second).UnixMilli(); n != 1 || at != want {
		t.Errorf("probe table holds %d rows, last at %d; want 1 row at %d", n, at, want)
	}
}

// filePragmas reads the page size and journal mode of the file at path on
// a connection of its own.
func filePragmas(t *testing.T, path string) (size int, mode string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow("PRAGMA page_size").Scan(&size); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	return size, mode
}

// A new file gets pages of DefaultPageSize bytes, or of the size
// WithPageSize asks for, in WAL mode, and keeps them when opened again
// with another size asked; a file made with other pages keeps its own, and
// its rows. A size that is not a power of two from 512 to 65536 is refused
// before the file is made.
func TestPageSize(t *testing.T) {
	if DefaultPageSize != 4096 {
		t.Fatalf("DefaultPageSize %d: the cases below expect 4096", DefaultPageSize)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		name       string
		opts       []Option
		want       int
		reopenWith []Option
	}{
		{"default.db", nil, DefaultPageSize, []Option{WithPageSize(2048)}},
		{"asked-2k.db", []Option{WithPageSize(2048)}, 2048, nil},
		{"asked-8k.db", []Option{WithPageSize(8192)}, 8192, []Option{WithPageSize(1024)}},
		{"asked-default.db", []Option{WithPageSize(0)}, DefaultPageSize, nil},
	} {
		path := filepath.Join(dir, c.name)
		s, err := Open(t.Context(), path, c.opts...)
		if err != nil {
			t.Fatal(err)
		}
		a := testEvent("orders", "key-1", 1, base, "crm")
		if _, err := s.Accept(t.Context(), a); err != nil {
			t.Fatal(err)
		}
		mustClose(t, s)
		if size, mode := filePragmas(t, path); size != c.want || mode != "wal" {
			t.Fatalf("%s: page size %d, journal mode %s; want %d, wal", c.name, size, mode, c.want)
		}
		s, err = Open(t.Context(), path, c.reopenWith...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Event(t.Context(), a.Event.ID); err != nil {
			t.Fatalf("%s: the event stored before the file was opened again: %v", c.name, err)
		}
		mustClose(t, s)
		if size, _ := filePragmas(t, path); size != c.want {
			t.Fatalf("%s opened again: page size %d, want %d", c.name, size, c.want)
		}
	}

	old := filepath.Join(dir, "old.db")
	db, err := sql.Open("sqlite", old)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"PRAGMA page_size = 2048", "CREATE TABLE kept (v TEXT)", "INSERT INTO kept VALUES ('made before')"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err := Open(t.Context(), old)
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := s.rdb.QueryRow("SELECT v FROM kept").Scan(&v); err != nil || v != "made before" {
		t.Fatalf("the file's own row: %q, %v", v, err)
	}
	mustClose(t, s)
	if size, mode := filePragmas(t, old); size != 2048 || mode != "wal" {
		t.Fatalf("file made with 2 KiB pages: page size %d, journal mode %s; want 2048, wal", size, mode)
	}

	for _, n := range []int{-4096, 256, 1000, 3072, 131072} {
		path := filepath.Join(dir, fmt.Sprintf("refused-%d.db", n))
		s, err := Open(t.Context(), path, WithPageSize(n))
		if err == nil {
			mustClose(t, s)
			t.Fatalf("page size %d: opened", n)
		}
		if want := fmt.Sprintf("page size %d: want a power of two from 512 to 65536", n); !strings.Contains(err.Error(), want) {
			t.Errorf("page size %d: %v, want %q", n, err, want)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("page size %d refused, but the file was made: %v", n, err)
		}
	}
}
