package sqlitestore

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// The write-ahead log is flushed to the disk by the syncer, not by the
// commit. The write connection runs with synchronous=NORMAL: a commit
// writes its frames to the WAL (from then on they survive a crash of the
// process) without waiting for the disk. The writer hands each committed
// batch to the syncer and goes on with the next one; the syncer flushes
// the WAL (the sync synchronous=FULL makes inside every commit) and only
// then answers the batch's callers. Every caller is still answered after
// its write is on the disk, as with FULL, but the writer's transactions no
// longer wait for the disk. While a flush runs, the writer keeps its next
// transaction open and runs in it the writes that arrive (up to maxBatch),
// and commits it when the flush ends (writer.go): one commit per flush,
// whose pages are written to the WAL once for all of them. After each
// commit that changed the file, the writer asks the kernel to start
// writing the WAL's new pages to the disk (writeback_linux.go), so that
// they are on their way while the syncer is woken, and its flush finds
// less left to do.
//
// Every write waits for the flush but a lease that took no delivery its
// own transaction queued (inserted, let go after the one before it in its
// lane, or retried by hand), committed when every batch before it was
// flushed (writeTx.early): a delivery is never sent before its event is
// on the disk (a power cut cannot lose an event that was already
// delivered, whose sender, never answered, would send it again), nor
// before what let it go. Such a lease read nothing it needs on the disk,
// and its own writes need not be there: a power cut ends its attempts
// with the process, and its deliveries fall due again. Answered at the
// commit, it saves its relay a flush, during which the places its
// attempts left would stay empty. Reads on the read
// pool are not held back: for as long as a flush takes, a listing may show
// an event whose sender has not been answered yet, and which a power cut
// in that moment would take back, with the sender's answer.
//
// SQLite itself still flushes the WAL before each checkpoint copies it
// into the database file, the database file after each checkpoint, and
// the WAL's header when the log starts over: NORMAL leaves the file
// consistent at any crash, and the syncer's flush makes what was answered
// durable.

// synced is a committed batch whose callers wait for the WAL's flush.
// A batch that changed nothing (a lease that found nothing due) needs no
// flush of its own, but is answered after the flush of the batches
// committed before it, whose writes it may have read.
type synced struct {
	reqs    []*request
	results []error
	changed bool
}

// walSyncer flushes the WAL file that SQLite writes, through a descriptor
// of its own: a flush on Linux covers the file, whichever descriptor wrote
// it. SQLite keeps the file (and its inode) while the store's write
// connection is open; it truncates it in place at most.
type walSyncer struct {
	f   *os.File
	raw syscall.RawConn // f's descriptor, for startWriteback

	mu     sync.Mutex
	failed error // the first flush that failed: nothing is flushed after it
}

func openWAL(dbPath string) (*walSyncer, error) {
	f, err := os.OpenFile(dbPath+"-wal", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open the write-ahead log to flush it: %w", err)
	}
	raw, err := f.SyscallConn()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open the write-ahead log to flush it: %w", err), f.Close())
	}
	return &walSyncer{f: f, raw: raw}, nil
}

// sync flushes the WAL. After a flush has failed, the kernel may have
// dropped the pages it could not write, and a later flush could report
// success for data that never reached the disk: sync then fails for good,
// and the store takes no more writes until the process opens it anew.
func (w *walSyncer) sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		return w.failed
	}
	if err := w.f.Sync(); err != nil {
		w.failed = fmt.Errorf("sqlitestore: the write-ahead log could not be flushed to the disk, so writes since the last flush may not survive a power loss; the store takes no more writes until hookrelay is restarted: %w", err)
		return w.failed
	}
	return nil
}

// err is the failure that stopped the syncer, or nil.
func (w *walSyncer) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

func (w *walSyncer) close() error { return w.f.Close() }

// runSyncer answers the callers of committed batches once the WAL is on
// the disk: it takes a batch, every other batch already waiting, flushes
// once for them all (not at all when none of them changed anything: the
// flush before covered what they read), and answers each caller with its
// own result (or with the flush's failure). It ends when the writer has
// ended and closed s.synced.
func (s *Store) runSyncer() {
	defer close(s.syncerDone)
	var pending []synced
	for b := range s.synced {
		pending = append(pending[:0], b)
	more:
		for {
			select {
			case b, ok := <-s.synced:
				if !ok {
					break more
				}
				pending = append(pending, b)
			default:
				break more
			}
		}
		// Without a flush of their own, they are answered with the failure
		// of the one before, if it failed.
		err := s.wal.err()
		if changed := countChanged(pending); changed > 0 {
			start := time.Now()
			err = s.syncWAL()
			s.flushes.Observe(time.Since(start))
			s.unflushed.Add(-int64(changed))
			select {
			case s.flushed <- struct{}{}:
			default: // the writer has a signal it has not taken yet
			}
			if s.onSync != nil {
				s.onSync(len(pending), err)
			}
		}
		for _, b := range pending {
			for i, r := range b.reqs {
				if err != nil {
					r.done <- err
				} else {
					r.done <- b.results[i]
				}
			}
		}
		clear(pending)
	}
}

// countChanged is how many of bs changed the file.
func countChanged(bs []synced) int {
	n := 0
	for _, b := range bs {
		if b.changed {
			n++
		}
	}
	return n
}

// WriteTimes implements store.WriteTimer: how long the writer's commits
// and the syncer's flushes of the WAL took. Every write waits for a flush,
// so a slow disk shows in the flushes; a commit is long when SQLite
// checkpoints in it.
func (s *Store) WriteTimes() []store.WriteTime {
	return []store.WriteTime{
		{Step: "commit", Histogram: s.commits.Histogram()},
		{Step: "flush", Histogram: s.flushes.Histogram()},
	}
}
