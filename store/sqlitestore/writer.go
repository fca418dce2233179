package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"
)

// writeOp runs inside the writer's transaction. Returning an error rolls back
// the op's own changes only and is handed to its caller; the rest of the
// batch still commits. An op may run more than once before its batch
// commits (see commit): it must set every result it hands back afresh.
type writeOp func(w *writeTx) error

// request is one caller's write waiting for the writer.
type request struct {
	ctx  context.Context
	op   writeOp
	done chan error // buffered: the writer never blocks on a caller that left
}

// writeTx is what an op sees: the write connection inside an open
// transaction, with statements prepared once and kept for the connection's
// life.
type writeTx struct {
	conn  *sql.Conn
	stmts map[string]*sql.Stmt
	// wake is set by an op that enqueued deliveries; Wake channels fire
	// once the batch has committed.
	wake bool
	// pages is set by an op that changes the file without changing rows
	// (an incremental vacuum), so that its batch is flushed although
	// total_changes() did not move.
	pages bool
	// changes is total_changes() after the last commit.
	changes int64
	// queued holds the ids of the deliveries the open transaction has
	// inserted, or made due because the one before them in their lane
	// ended (promote) or by hand (RetryDelivery): what let them go is on
	// the disk only once its commit is flushed.
	queued map[string]struct{}
	// early is set by an op whose caller may be answered at the commit,
	// before the flush, when every batch committed before is flushed: it
	// read nothing that is not on the disk but what it wrote itself (see
	// Lease).
	early bool
}

// bg is the context of every statement the writer runs. Callers' contexts
// are not passed down: the driver interrupts a statement whose context ends,
// and SQLite may then roll back the whole transaction — every other caller's
// write in the batch with it.
var bg = context.Background()

func (w *writeTx) stmt(query string) (*sql.Stmt, error) {
	if st, ok := w.stmts[query]; ok {
		return st, nil
	}
	st, err := w.conn.PrepareContext(bg, query)
	if err != nil {
		return nil, err
	}
	w.stmts[query] = st
	return st, nil
}

func (w *writeTx) exec(query string, args ...any) (sql.Result, error) {
	st, err := w.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(bg, args...)
}

func (w *writeTx) query(query string, args ...any) (*sql.Rows, error) {
	st, err := w.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(bg, args...)
}

// queryRow is QueryRow with the statement's preparation error reported by
// Scan like any other.
func (w *writeTx) queryRow(query string, args ...any) rowScanner {
	st, err := w.stmt(query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(bg, args...)
}

type rowScanner interface{ Scan(dest ...any) error }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// write hands op to the writer and waits for the batch holding it to commit.
// If ctx ends first, write returns ctx.Err() and the op may still commit.
func (s *Store) write(ctx context.Context, op writeOp) error {
	r := &request{ctx: ctx, op: op, done: make(chan error, 1)}
	select {
	case s.reqs <- r:
	case <-s.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runWriter is the only goroutine that writes. It takes one request, adds
// whatever other requests are already waiting (callers block on the
// unbuffered channel while a commit is in progress, so under load the next
// batch is ready when the last one ends), and commits them together; the
// syncer then flushes the WAL for them (sync.go).
func (s *Store) runWriter() {
	defer close(s.writerDone)
	w := &writeTx{conn: s.wconn, stmts: make(map[string]*sql.Stmt), queued: make(map[string]struct{})}
	defer func() {
		for _, st := range w.stmts {
			_ = st.Close()
		}
	}()
	batch := make([]*request, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-s.closing:
			return
		case r := <-s.reqs:
			batch = append(batch, r)
		}
		s.commit(w, s.fill(batch, maxBatch))
	}
}

// fill adds to batch the requests already waiting, up to n in all.
func (s *Store) fill(batch []*request, n int) []*request {
	for len(batch) < n {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// txn is the writer's open transaction and the requests handed to it.
type txn struct {
	live    []*request
	results []error // of live, once they have run
	early   []bool  // of live: may be answered at the commit (writeTx.early)
	wake    bool
	// savepoints: each request runs inside a savepoint of its own, since
	// one request of this transaction has failed.
	savepoints bool
}

// commit runs batch in one BEGIN IMMEDIATE … COMMIT transaction and hands
// it to the syncer, which answers every request once the WAL is on the disk
// (sync.go); a batch of which nothing was committed is answered at once.
// Wake channels fire at the commit, before callers are answered, so a
// caller whose Accept returned knows its signal has been sent.
//
// While the WAL is being flushed for batches committed before, the
// transaction stays open and the requests that arrive meanwhile run in it,
// up to maxBatch in all: they could not be answered before the next flush
// anyway, and one commit for them all writes each page they share once,
// where a commit each would write it again every time. The writer keeps
// running their statements while the disk flushes, and commits when the
// flush ends: one commit per flush, whatever the rate.
//
// A request's error undoes its own changes only. The transaction first
// runs without savepoints, which would cost two statements per request:
// when every request succeeds, as nearly all do, nothing needs undoing.
// When one fails, the transaction is rolled back and runs again from its
// first request with each request inside a savepoint of its own, rolled
// back on its error.
func (s *Store) commit(w *writeTx, batch []*request) {
	var t txn
	fail := func(err error) {
		// Fails harmlessly when SQLite has already rolled back.
		_, _ = w.conn.ExecContext(bg, "ROLLBACK")
		for _, r := range t.live {
			r.done <- err
		}
	}
	live := s.admit(batch)
	if len(live) == 0 {
		return
	}
	t.live = slices.Clone(live)
	if err := begin(w); err != nil {
		fail(err)
		return
	}
	if err := s.apply(w, &t, live); err != nil {
		fail(err)
		return
	}
wait:
	for len(t.live) < maxBatch && s.unflushed.Load() > 0 {
		select {
		case r := <-s.reqs:
			more := s.admit(s.fill(append(batch[:0], r), maxBatch-len(t.live)))
			t.live = append(t.live, more...)
			if err := s.apply(w, &t, more); err != nil {
				fail(err)
				return
			}
		case <-s.flushed:
		case <-s.closing:
			// Commit what has run; Close waits for its flush.
			break wait
		}
	}
	start := time.Now()
	if _, err := w.exec("COMMIT"); err != nil {
		fail(err)
		return
	}
	s.commits.Observe(time.Since(start))
	// Rows undone by a savepoint count too: a flush too many, never one
	// too few.
	changed := true
	var n int64
	if err := w.queryRow("SELECT total_changes()").Scan(&n); err == nil {
		changed = n != w.changes || w.pages
		w.changes = n
	}
	if s.onCommit != nil {
		s.onCommit(len(t.live))
	}
	if t.wake {
		s.wake()
	}
	flushedBefore := s.unflushed.Load() == 0 && s.wal.err() == nil
	// Even a batch that changed nothing waits for the flush of the
	// batches before it, which it may have read.
	if changed {
		// A hint only: the flush makes the batch durable, and reports
		// what this could not do.
		_ = s.writeback()
		s.unflushed.Add(1)
	}
	// With every batch before flushed, what the early requests read is on
	// the disk: they are answered now, the rest after this batch's flush.
	if flushedBefore && slices.Contains(t.early, true) {
		reqs, results := t.live[:0], t.results[:0]
		for i, r := range t.live {
			if t.early[i] {
				r.done <- t.results[i]
				continue
			}
			reqs, results = append(reqs, r), append(results, t.results[i])
		}
		t.live, t.results = reqs, results
	}
	s.synced <- synced{reqs: t.live, results: t.results, changed: changed}
}

// admit keeps the requests of batch whose callers still wait, answering the
// others, and every one of them when the WAL could not be flushed. It
// filters batch in place.
func (s *Store) admit(batch []*request) []*request {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err // the caller has gone; do not write on its behalf
			continue
		}
		live = append(live, r)
	}
	if err := s.wal.err(); err != nil {
		for _, r := range live {
			r.done <- err
		}
		return nil
	}
	return live
}

// errRequestFailed says that a request run without savepoints failed: the
// transaction must run again with them.
var errRequestFailed = errors.New("sqlitestore: a request of the batch failed")

// begin opens the writer's transaction.
func begin(w *writeTx) error {
	w.pages = false
	clear(w.queued)
	_, err := w.exec("BEGIN IMMEDIATE")
	return err
}

// apply runs rs, the last requests of t.live, in the open transaction t.
// When one fails without savepoints, it rolls the transaction back and
// runs every request of t again, each in a savepoint. An error means the
// transaction is lost: nothing of it can commit.
func (s *Store) apply(w *writeTx, t *txn, rs []*request) error {
	results, early, wake, err := s.run(w, rs, t.savepoints)
	if errors.Is(err, errRequestFailed) {
		if _, err := w.conn.ExecContext(bg, "ROLLBACK"); err != nil {
			return err
		}
		if err := begin(w); err != nil {
			return err
		}
		t.results, t.early, t.wake, t.savepoints = t.results[:0], t.early[:0], false, true
		results, early, wake, err = s.run(w, t.live, true)
	}
	if err != nil {
		return err
	}
	t.results = append(t.results, results...)
	t.early = append(t.early, early...)
	t.wake = t.wake || wake
	return nil
}

// run runs the requests in the open transaction, each inside a savepoint
// of its own when savepoints is set. It returns each request's result,
// which of them may be answered at the commit (writeTx.early) and whether
// one of them enqueued deliveries; errRequestFailed when, without
// savepoints, one of them failed; another error when the transaction
// itself is gone (SQLite rolls back on some I/O and full-disk errors).
func (s *Store) run(w *writeTx, live []*request, savepoints bool) ([]error, []bool, bool, error) {
	wake := false
	results := make([]error, len(live))
	early := make([]bool, len(live))
	for i, r := range live {
		if savepoints {
			if _, err := w.exec("SAVEPOINT request"); err != nil {
				return nil, nil, false, err
			}
		}
		w.wake, w.early = false, false
		err := r.op(w)
		switch {
		case err != nil && !savepoints:
			return nil, nil, false, errRequestFailed
		case err != nil:
			if _, rbErr := w.exec("ROLLBACK TO request"); rbErr != nil {
				return nil, nil, false, errors.Join(err, rbErr)
			}
		}
		if savepoints {
			if _, err := w.exec("RELEASE request"); err != nil {
				return nil, nil, false, err
			}
		}
		results[i], early[i] = err, err == nil && w.early
		if err == nil && w.wake {
			wake = true
		}
	}
	return results, early, wake, nil
}
