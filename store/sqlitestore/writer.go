package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"slices"
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
// syncer then flushes the WAL once for every batch committed meanwhile.
func (s *Store) runWriter() {
	defer close(s.writerDone)
	w := &writeTx{conn: s.wconn, stmts: make(map[string]*sql.Stmt)}
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
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commit(w, batch)
	}
}

// commit runs batch in one BEGIN IMMEDIATE … COMMIT transaction and hands
// it to the syncer, which answers every request once the WAL is on the disk
// (sync.go); a batch of which nothing was committed is answered at once.
// Wake channels fire at the commit, before callers are answered, so a
// caller whose Accept returned knows its signal has been sent.
//
// A request's error undoes its own changes only. The batch first runs
// without savepoints, which would cost two statements per request: when
// every request succeeds, as nearly all do, nothing needs undoing. When one
// fails, the transaction is rolled back and the batch runs again with each
// request inside a savepoint of its own, rolled back on its error (a
// request alone needs none: the rollback of the transaction is its own).
func (s *Store) commit(w *writeTx, batch []*request) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err // the caller has gone; do not write on its behalf
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	if err := s.wal.err(); err != nil {
		for _, r := range live {
			r.done <- err
		}
		return
	}
	results, wake, changed, err := s.run(w, live, false)
	if errors.Is(err, errRequestFailed) {
		results, wake, changed, err = s.run(w, live, true)
	}
	if err != nil {
		for _, r := range live {
			r.done <- err
		}
		return
	}
	if s.onCommit != nil {
		s.onCommit(len(live))
	}
	if wake {
		s.wake()
	}
	// Even a batch that changed nothing waits for the flush of the
	// batches before it, which it may have read.
	s.synced <- synced{reqs: slices.Clone(live), results: results, changed: changed}
}

// errRequestFailed says that a request of a batch run without savepoints
// failed, and the batch was rolled back.
var errRequestFailed = errors.New("sqlitestore: a request of the batch failed")

// run runs the requests in one transaction, each inside a savepoint of its
// own when savepoints is set, and commits it. It returns each request's
// result, whether one of them enqueued deliveries and whether the
// transaction changed the file (so that the WAL needs a flush); an error
// when nothing was committed: errRequestFailed when, without savepoints,
// one of several requests failed.
func (s *Store) run(w *writeTx, live []*request, savepoints bool) ([]error, bool, bool, error) {
	rollback := func(err error) ([]error, bool, bool, error) {
		// Fails harmlessly when SQLite has already rolled back.
		_, _ = w.conn.ExecContext(bg, "ROLLBACK")
		return nil, false, false, err
	}
	// BEGIN and COMMIT are prepared once, as every statement the ops run.
	if _, err := w.exec("BEGIN IMMEDIATE"); err != nil {
		return rollback(err)
	}
	wake := false
	w.pages = false
	results := make([]error, len(live))
	for i, r := range live {
		if savepoints {
			if _, err := w.exec("SAVEPOINT request"); err != nil {
				return rollback(err)
			}
		}
		w.wake = false
		err := r.op(w)
		switch {
		case err != nil && len(live) == 1:
			// The transaction holds this request only.
			rollback(nil)
			return []error{err}, false, false, nil
		case err != nil && !savepoints:
			return rollback(errRequestFailed)
		case err != nil:
			if _, rbErr := w.exec("ROLLBACK TO request"); rbErr != nil {
				// The transaction itself is gone (SQLite rolls back on some
				// I/O and full-disk errors): nothing of the batch survives.
				return rollback(errors.Join(err, rbErr))
			}
		}
		if savepoints {
			if _, err := w.exec("RELEASE request"); err != nil {
				return rollback(err)
			}
		}
		results[i] = err
		if err == nil && w.wake {
			wake = true
		}
	}
	if _, err := w.exec("COMMIT"); err != nil {
		return rollback(err)
	}
	// Rows undone by a savepoint count too: a flush too many, never one
	// too few.
	changed := true
	var n int64
	if err := w.queryRow("SELECT total_changes()").Scan(&n); err == nil {
		changed = n != w.changes || w.pages
		w.changes = n
	}
	return results, wake, changed, nil
}
