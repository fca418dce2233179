package sqlitestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// heldFlush opens a store whose first flush of the WAL waits for release
// (entered is closed when it does), counting the requests of each commit
// and the batches each flush covered.
type heldFlush struct {
	s        *Store
	entered  chan struct{}
	release  func()
	mu       sync.Mutex
	commits  []int // requests per commit
	covered  []int // batches per flush
	nCommits atomic.Int64
}

func openHeldFlush(t *testing.T) *heldFlush {
	t.Helper()
	h := &heldFlush{entered: make(chan struct{})}
	hold := make(chan struct{})
	var first sync.Once
	s, err := open(t.Context(), filepath.Join(t.TempDir(), "hookrelay.db"), func(s *Store) {
		s.syncWAL = func() error {
			first.Do(func() {
				close(h.entered)
				<-hold
			})
			return s.wal.sync()
		}
		s.onCommit = func(n int) {
			h.mu.Lock()
			h.commits = append(h.commits, n)
			h.mu.Unlock()
			h.nCommits.Add(1)
		}
		s.onSync = func(batches int, err error) {
			h.mu.Lock()
			h.covered = append(h.covered, batches)
			h.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
	h.release = sync.OnceFunc(func() { close(hold) })
	t.Cleanup(func() {
		h.release() // before Close, which waits for the syncer
		mustClose(t, s)
	})
	return h
}

func (h *heldFlush) counts() (commits, covered []int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.commits), slices.Clone(h.covered)
}

// TestAnsweredAfterTheFlush holds the syncer's first flush of the WAL and
// checks what the writer does meanwhile: the write waiting for the flush
// is committed (a reader sees it); the writes that arrive while it is held
// run at once, in one open transaction, which commits when the flush ends
// (one commit per flush); none of them is answered before its flush.
func TestAnsweredAfterTheFlush(t *testing.T) {
	h := openHeldFlush(t)
	s := h.s
	const later = 5
	accepts := make([]chan error, 1+later)
	evs := make([]string, 1+later)
	start := func(i int) {
		a := testEvent("orders", fmt.Sprintf("key-%d", i), i, base.Add(time.Duration(i)*time.Millisecond), "crm")
		evs[i] = a.Event.ID
		accepts[i] = make(chan error, 1)
		go func() {
			_, err := s.Accept(t.Context(), a)
			accepts[i] <- err
		}()
	}
	start(0)
	<-h.entered // the first batch is committed and its flush held
	if _, err := s.Event(t.Context(), evs[0]); err != nil {
		t.Fatalf("the event whose flush is held is not committed: %v", err)
	}
	// Each accept is followed by a write that says when it runs: the
	// writer runs them while the flush is held, without committing them.
	ran := make(chan int, 2*later)
	marks := make(chan error, later)
	for i := 1; i <= later; i++ {
		start(i)
		go func() {
			marks <- s.write(t.Context(), func(*writeTx) error {
				ran <- i
				return nil
			})
		}()
		select {
		case <-ran:
		case <-time.After(10 * time.Second):
			t.Fatalf("write %d did not run while a flush was held: the writer waits for the flush", i)
		}
	}
	if n := h.nCommits.Load(); n != 1 {
		t.Fatalf("%d commits while a flush was held, want 1: the writes that arrive meanwhile wait for it in one open transaction", n)
	}
	// A write that changes nothing may have read the writes whose flush
	// is held: it waits for that flush too.
	pinged := make(chan error, 1)
	go func() { pinged <- s.Ping(t.Context()) }()
	time.Sleep(20 * time.Millisecond)
	for i, ch := range accepts {
		select {
		case err := <-ch:
			t.Fatalf("Accept %d answered (%v) before the WAL was flushed", i, err)
		default:
		}
	}
	select {
	case err := <-pinged:
		t.Fatalf("a write that changed nothing was answered (%v) before the flush of the writes before it", err)
	default:
	}
	h.release()
	if err := <-pinged; err != nil {
		t.Fatal(err)
	}
	for i, ch := range accepts {
		if err := <-ch; err != nil {
			t.Fatalf("Accept %d: %v", i, err)
		}
		if _, err := s.Event(t.Context(), evs[i]); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	for range later {
		if err := <-marks; err != nil {
			t.Fatal(err)
		}
	}
	commits, covered := h.counts()
	if want := []int{1, 2*later + 1}; !slices.Equal(commits, want) {
		t.Fatalf("commits held %v requests, want %v: the first accept, then everything that arrived during its flush", commits, want)
	}
	if want := []int{1, 1}; !slices.Equal(covered, want) {
		t.Fatalf("flushes covered %v batches, want %v", covered, want)
	}
}

// TestOpenTransactionBounded: while a flush is held, the writes that
// arrive share a transaction of at most maxBatch requests, which commits
// without waiting for the flush; the rest wait in the next one.
func TestOpenTransactionBounded(t *testing.T) {
	h := openHeldFlush(t)
	s := h.s
	accept := func(i int, errs chan<- error) {
		_, err := s.Accept(t.Context(), testEvent("orders", fmt.Sprintf("key-%d", i), i, base.Add(time.Duration(i)*time.Millisecond), "crm"))
		errs <- err
	}
	first := make(chan error, 1)
	go accept(0, first)
	<-h.entered
	const n = maxBatch + 10
	errs := make(chan error, n)
	for i := 1; i <= n; i++ {
		go accept(i, errs)
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.nCommits.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no transaction committed while a flush was held with more than maxBatch writes waiting")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // a commit too many would show now
	if commits, _ := h.counts(); !slices.Equal(commits, []int{1, maxBatch}) {
		t.Fatalf("commits held %v requests while a flush was held, want [1 %d]", commits, maxBatch)
	}
	select {
	case err := <-errs:
		t.Fatalf("an accept was answered (%v) before its flush", err)
	case err := <-first:
		t.Fatalf("the first accept was answered (%v) before its flush", err)
	default:
	}
	h.release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if commits, _ := h.counts(); !slices.Equal(commits, []int{1, maxBatch, n - maxBatch}) {
		t.Fatalf("commits held %v requests, want [1 %d %d]", commits, maxBatch, n-maxBatch)
	}
}

// TestFailedFlushStopsWrites makes a flush of the WAL fail: the writes it
// covered are answered with the failure, and every later write is refused
// without running, since a later flush could succeed without the pages the
// failed one lost.
func TestFailedFlushStopsWrites(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	mustAccept(t, s, testEvent("orders", "before", 1, base, "crm"))

	// A descriptor that cannot be flushed in place of the WAL's.
	dead, err := os.Create(filepath.Join(t.TempDir(), "dead"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dead.Close(); err != nil {
		t.Fatal(err)
	}
	s.wal.mu.Lock()
	wal := s.wal.f
	s.wal.f = dead
	s.wal.mu.Unlock()
	t.Cleanup(func() {
		s.wal.mu.Lock()
		s.wal.f = wal
		s.wal.mu.Unlock()
	})

	a := testEvent("orders", "during", 2, base.Add(time.Second), "crm")
	if _, err := s.Accept(ctx, a); err == nil || !strings.Contains(err.Error(), "could not be flushed") {
		t.Fatalf("Accept whose flush failed: %v, want the flush's failure", err)
	}
	var ran atomic.Bool
	err = s.write(ctx, func(*writeTx) error { ran.Store(true); return nil })
	if err == nil || !strings.Contains(err.Error(), "no more writes") {
		t.Fatalf("a write after the failed flush: %v, want it refused", err)
	}
	if ran.Load() {
		t.Fatal("a write after the failed flush ran")
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded after a failed flush: the store reports it can take writes")
	}
}

// TestFlushesTheWAL checks that the file the syncer flushes is the WAL
// SQLite writes, still after checkpoints have copied it into the database
// and the log has started over, and after the store is opened again.
func TestFlushesTheWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hookrelay.db")
	for round := range 2 {
		s := mustOpen(t, path)
		// A checkpoint every 100 pages; an event of 4,000 bytes fills one
		// page or more, so the log starts over several times.
		if err := s.write(t.Context(), func(w *writeTx) error {
			_, err := w.conn.ExecContext(bg, "PRAGMA wal_autocheckpoint = 100")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		const events = 500
		pad := strings.Repeat("x", 4000)
		for i := range events {
			n := round*events + i
			a := testEvent("orders", fmt.Sprintf("key-%d", n), n, base.Add(time.Duration(n)*time.Millisecond), "crm")
			a.Event.Body = []byte(`{"pad":"` + pad + `"}`)
			mustAccept(t, s, a)
		}
		onDisk, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		flushed, err := s.wal.f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(onDisk, flushed) {
			t.Fatalf("round %d: the syncer flushes another file than %s-wal", round, path)
		}
		if onDisk.Size() > events*4096/2 {
			t.Fatalf("round %d: the WAL holds %d bytes: it never started over, so this did not test a checkpoint", round, onDisk.Size())
		}
		mustClose(t, s)
	}
}

// TestNoFlushForNothing checks that writes that change nothing (a lease
// that finds nothing due, a ping) cost no flush of the WAL, and that
// writes that change rows, or the file without rows (the vacuum after a
// prune), each get one; the writer starts the writeback of the pages of
// each of the latter, and of nothing else, before its callers are
// answered.
func TestNoFlushForNothing(t *testing.T) {
	var flushes, writebacks atomic.Int64
	s, err := open(t.Context(), filepath.Join(t.TempDir(), "hookrelay.db"), func(s *Store) {
		s.onSync = func(int, error) { flushes.Add(1) }
		s.writeback = func() error {
			writebacks.Add(1)
			return s.wal.startWriteback()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	t.Cleanup(func() {
		if w, f := writebacks.Load(), flushes.Load(); w != f {
			t.Errorf("%d writebacks started for %d flushes, want one each", w, f)
		}
	})
	ctx := t.Context()
	for i := range 3 {
		mustAccept(t, s, testEvent("orders", fmt.Sprintf("key-%d", i), i, base.Add(time.Duration(i)*time.Second), "crm"))
		if w := writebacks.Load(); w != int64(i+1) {
			t.Fatalf("%d writebacks started when accept %d was answered, want %d", w, i+1, i+1)
		}
	}
	if n := flushes.Load(); n != 3 {
		t.Fatalf("%d flushes for 3 accepts one after the other, want 3", n)
	}
	for range 5 {
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		mustLease(t, s, base.Add(-time.Hour), 10, time.Minute, "crm") // nothing due yet
	}
	if n := flushes.Load(); n != 3 {
		t.Fatalf("%d flushes after writes that changed nothing, want still 3", n)
	}
	if b := mustLease(t, s, base.Add(time.Hour), 10, time.Minute, "crm"); len(b.Leases) != 3 {
		t.Fatalf("leased %d deliveries, want 3", len(b.Leases))
	}
	// The lease is answered at its commit (its deliveries' events were on
	// the disk before it); its flush follows.
	for deadline := time.Now().Add(10 * time.Second); flushes.Load() < 4 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := flushes.Load(); n != 4 {
		t.Fatalf("%d flushes after a lease that took deliveries, want 4", n)
	}
	// A prune is two writes: its deletions, then the vacuum that gives
	// their pages back, which changes the file but no row.
	for i := range 3 {
		mustAccept(t, s, testEvent("orders", fmt.Sprintf("ignored-%d", i), 10+i, base.Add(time.Duration(i)*time.Second)))
	}
	if n := flushes.Load(); n != 7 {
		t.Fatalf("%d flushes after 3 more accepts, want 7", n)
	}
	if got := pruneAllOf(t, s, base.Add(48*time.Hour), 24*time.Hour); got.Events != 3 {
		t.Fatalf("pruned %d events, want the 3 ignored ones", got.Events)
	}
	if n := flushes.Load(); n != 9 {
		t.Fatalf("%d flushes after a prune, want 9: one for its deletions, one for its vacuum", n)
	}
}

// TestFailureInOpenTransaction: a write that fails in a transaction held
// open for a flush undoes only itself; the writes that ran in it before,
// rolled back with the transaction, run again and are stored.
func TestFailureInOpenTransaction(t *testing.T) {
	h := openHeldFlush(t)
	s := h.s
	first := make(chan error, 1)
	go func() {
		_, err := s.Accept(t.Context(), testEvent("orders", "first", 0, base, "crm"))
		first <- err
	}()
	<-h.entered
	// An accept runs in the open transaction, then a write fails in it.
	a := testEvent("orders", "before-the-failure", 1, base.Add(time.Millisecond), "crm")
	accepted := make(chan error, 1)
	go func() {
		_, err := s.Accept(t.Context(), a)
		accepted <- err
	}()
	// Writes that look for the accept's event run in the open transaction
	// (their callers wait for the flush, not this test): once one sees it,
	// the accept has run there.
	seen := make(chan int, 100)
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; n != 1; {
		if time.Now().After(deadline) {
			t.Fatal("the accept did not run while the flush was held")
		}
		go func() {
			_ = s.write(t.Context(), func(w *writeTx) error {
				var n int
				err := w.queryRow(`SELECT COUNT(*) FROM events WHERE id = ?`, a.Event.ID).Scan(&n)
				select {
				case seen <- n:
				default: // run again after the failure below, read by no one
				}
				return err
			})
		}()
		n = <-seen
		time.Sleep(time.Millisecond)
	}
	boom := errors.New("boom")
	failed := make(chan error, 1)
	go func() {
		failed <- s.write(t.Context(), func(w *writeTx) error {
			if _, err := w.exec(`UPDATE events SET status = 'failed' WHERE id = ?`, a.Event.ID); err != nil {
				return err
			}
			return boom
		})
	}()
	time.Sleep(20 * time.Millisecond)
	if n := h.nCommits.Load(); n != 1 {
		t.Fatalf("%d commits while the flush was held, want 1", n)
	}
	h.release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-accepted; err != nil {
		t.Fatalf("the accept before the failure: %v", err)
	}
	if err := <-failed; !errors.Is(err, boom) {
		t.Fatalf("the failing write: %v, want its own error", err)
	}
	ev, err := s.Event(t.Context(), a.Event.ID)
	if err != nil {
		t.Fatalf("the accept before the failure is not stored: %v", err)
	}
	if ev.Status == "failed" {
		t.Fatal("the failing write's change was kept")
	}
}

// TestWritebackIsAHint: a writeback that fails changes nothing: the write
// is flushed and answered as ever, and is there when the file is opened
// again.
func TestWritebackIsAHint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hookrelay.db")
	var flushes atomic.Int64
	s, err := open(t.Context(), path, func(s *Store) {
		s.writeback = func() error { return errors.New("no writeback here") }
		s.onSync = func(_ int, err error) {
			if err == nil {
				flushes.Add(1)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	res := mustAccept(t, s, testEvent("orders", "k", 1, base, "crm"))
	if n := flushes.Load(); n != 1 {
		t.Fatalf("%d flushes for an accept whose writeback failed, want 1", n)
	}
	mustClose(t, s)
	s = mustOpen(t, path)
	defer mustClose(t, s)
	if _, err := s.Event(t.Context(), res.EventID); err != nil {
		t.Fatalf("the accept whose writeback failed is not in the file opened again: %v", err)
	}
}

// TestWriteTimes: a flush held for 60 ms shows in the flushes' histogram
// as one slower than 50 ms, and the commit before it in the commits'.
func TestWriteTimes(t *testing.T) {
	h := openHeldFlush(t)
	done := make(chan error, 1)
	go func() {
		_, err := h.s.Accept(t.Context(), testEvent("orders", "key-1", 1, base, "crm"))
		done <- err
	}()
	<-h.entered
	time.Sleep(60 * time.Millisecond)
	h.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	times := map[string]store.Histogram{}
	for _, wt := range h.s.WriteTimes() {
		times[wt.Step] = wt.Histogram
	}
	le := func(bound float64) int { return slices.Index(store.DurationBuckets[:], bound) }
	flush, commit := times["flush"], times["commit"]
	if flush.Count == 0 || flush.Cumulative[le(.05)] == flush.Count {
		t.Errorf("flushes: %d, %d of them under 50 ms; want the held one over it", flush.Count, flush.Cumulative[le(.05)])
	}
	if flush.Sum < .06 {
		t.Errorf("flushes took %v s in all, want at least the 0.06 s of the held one", flush.Sum)
	}
	if commit.Count == 0 {
		t.Error("no commit timed")
	}
}

// TestLeaseAnsweredAtCommit: a lease that takes deliveries whose events
// were on the disk before its transaction is answered at its commit,
// while its flush is still held; one that takes a delivery its own
// transaction queued (an accept, or the end of the delivery before it in
// its lane) is answered only after the flush, like the accept.
func TestLeaseAnsweredAtCommit(t *testing.T) {
	type hold struct{ entered, release chan struct{} }
	var next atomic.Pointer[hold]
	var holds []*hold
	holdNext := func() *hold {
		h := &hold{make(chan struct{}), make(chan struct{})}
		holds = append(holds, h)
		next.Store(h)
		return h
	}
	s, err := open(t.Context(), filepath.Join(t.TempDir(), "hookrelay.db"), func(s *Store) {
		s.syncWAL = func() error {
			if h := next.Swap(nil); h != nil {
				close(h.entered)
				<-h.release
			}
			return s.wal.sync()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, h := range holds {
			select {
			case <-h.release:
			default:
				close(h.release)
			}
		}
		mustClose(t, s)
	}()
	ctx := t.Context()
	type leased struct {
		ids []string
		err error
	}
	lease := func() chan leased {
		ch := make(chan leased, 1)
		go func() {
			b, err := s.Lease(ctx, store.LeaseRequest{Now: base.Add(time.Second), TTL: time.Minute,
				Actions: []store.ActionQuota{{Action: "crm", N: 10}}})
			var ids []string
			for _, l := range b.Leases {
				ids = append(ids, l.Delivery.ID)
			}
			ch <- leased{ids, err}
		}()
		return ch
	}
	// until runs writes that read query, in the writer's open
	// transaction, until one reads 1; it does not wait for their answers,
	// which come after the flush.
	until := func(what, query string, args ...any) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			read := make(chan int, 1)
			go func() {
				_ = s.write(ctx, func(w *writeTx) error {
					var n int
					err := w.queryRow(query, args...).Scan(&n)
					read <- n
					return err
				})
			}()
			select {
			case n := <-read:
				if n == 1 {
					return
				}
			case <-time.After(time.Until(deadline)):
			}
			// Not so many that they fill the transaction (maxBatch).
			time.Sleep(2 * time.Millisecond)
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen by the writer", what)
			}
		}
	}
	accept := func(a store.Accept) chan error {
		ch := make(chan error, 1)
		go func() { _, err := s.Accept(ctx, a); ch <- err }()
		return ch
	}

	old := testEvent("orders", "old", 0, base, "crm")
	mustAccept(t, s, old)
	h := holdNext()
	got := lease()
	<-h.entered // the lease is committed, its flush held
	select {
	case r := <-got:
		if r.err != nil || !slices.Equal(r.ids, []string{old.Deliveries[0].ID}) {
			t.Fatalf("Lease = %v, %v; want %s", r.ids, r.err, old.Deliveries[0].ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a lease of a delivery on the disk before it was not answered before its own flush")
	}
	close(h.release)

	// A transaction in which a delivery is queued, then leased: by an
	// accept, and by the end of the delivery before it in its lane. An
	// accept whose flush is held keeps the transaction open.
	head := testEvent("orders", "head", 3, base, "ord")
	next2 := testEvent("orders", "next", 4, base.Add(time.Millisecond), "ord")
	head.Deliveries[0].Lane, next2.Deliveries[0].Lane = "o-1", "o-1"
	mustAccept(t, s, head)
	mustAccept(t, s, next2)
	b, err := s.Lease(ctx, store.LeaseRequest{Now: base.Add(time.Second), TTL: time.Minute,
		Actions: []store.ActionQuota{{Action: "ord", N: 10}}})
	if err != nil || len(b.Leases) != 1 || b.Leases[0].Delivery.ID != head.Deliveries[0].ID {
		t.Fatalf("Lease(ord) = %+v, %v; want the head of its lane", b.Leases, err)
	}
	headLease := b.Leases[0]
	second := testEvent("orders", "second", 2, base, "crm")
	for i, c := range []struct {
		name  string
		queue func() // queues want in the open transaction
		want  string
	}{
		{"an accept", func() { accept(second) }, second.Deliveries[0].ID},
		{"the end of the one before it in its lane", func() {
			go func() {
				_, _ = s.Finish(ctx, []store.Finish{{Lease: headLease, Attempt: store.Attempt{N: 1, StartedAt: base},
					Outcome: store.Outcome{Status: store.DeliverySucceeded}}})
			}()
		}, next2.Deliveries[0].ID},
	} {
		// A write answered after the flush of every write before it
		// (the lease above was answered at its commit, the writes of
		// until may end in a batch after the one they waited for), so
		// that no hold is taken by their flushes.
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		h = holdNext()
		blocker := accept(testEvent("orders", fmt.Sprintf("blocker-%d", i), 10+i, base, "erp"))
		<-h.entered
		c.queue()
		until(c.name, `SELECT COUNT(*) FROM deliveries WHERE id = ? AND due_at IS NOT NULL`, c.want)
		got := make(chan leased, 1)
		go func() {
			b, err := s.Lease(ctx, store.LeaseRequest{Now: base.Add(time.Second), TTL: time.Minute,
				Actions: []store.ActionQuota{{Action: "crm", N: 10}, {Action: "ord", N: 10}}})
			var ids []string
			for _, l := range b.Leases {
				ids = append(ids, l.Delivery.ID)
			}
			got <- leased{ids, err}
		}()
		until("the lease", `SELECT COUNT(*) FROM deliveries WHERE id = ? AND lease_token != ''`, c.want)
		held := holdNext()
		close(h.release)
		<-held.entered // the transaction is committed, its flush held
		if err := <-blocker; err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		select {
		case r := <-got:
			t.Fatalf("a lease of a delivery queued by %s in its own transaction was answered (%v, %v) before the flush", c.name, r.ids, r.err)
		default:
		}
		close(held.release)
		if r := <-got; r.err != nil || !slices.Equal(r.ids, []string{c.want}) {
			t.Fatalf("Lease = %v, %v; want %s", r.ids, r.err, c.want)
		}
	}
}
