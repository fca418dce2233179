package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

var _ store.Store = (*Store)(nil)

// ErrClosed is returned by writes made after Close.
var ErrClosed = errors.New("sqlitestore: store closed")

const (
	// maxBatch bounds how many queued writes share one transaction, so that
	// one commit never holds callers for long.
	maxBatch = 128
	// busyTimeout is how long a connection waits for a lock held by another
	// connection or process before giving up with SQLITE_BUSY.
	busyTimeout = 10 * time.Second
	// syncQueue is how many committed batches may wait for the WAL's flush
	// before the writer waits for the syncer.
	syncQueue = 64
)

// Store is the SQLite backend of store.Store. One writer goroutine owns the
// only write connection and commits concurrent writes together; reads go to
// a separate pool of read-only connections.
type Store struct {
	path  string
	log   *slog.Logger // what the store has to say; slog.Default() unless WithLogger
	wdb   *sql.DB      // one connection, used only by the writer goroutine
	wconn *sql.Conn
	rdb   *sql.DB // read-only pool

	reqs       chan *request
	closing    chan struct{}
	writerDone chan struct{}

	// wal flushes the write-ahead log; the writer hands committed batches
	// to the syncer on synced, which answers them after the flush (sync.go).
	wal        *walSyncer
	syncWAL    func() error // wal.sync; tests hold it or fail it
	writeback  func() error // wal.startWriteback, after each commit that changed the file
	synced     chan synced
	syncerDone chan struct{}
	// unflushed counts the batches handed to the syncer that changed the
	// file and are not flushed yet; the syncer signals flushed after each
	// flush. While some are, the writer keeps its transaction open.
	unflushed atomic.Int64
	flushed   chan struct{}
	// commits and flushes time the writer's COMMITs (the WAL's frames
	// written, and a checkpoint when one is due) and the syncer's flushes
	// of the WAL (WriteTimes).
	commits, flushes store.Durations

	closeOnce sync.Once
	closeErr  error

	wakeMu     sync.Mutex
	wakers     map[chan struct{}]func() bool // channel → stop of its context.AfterFunc
	wakeClosed bool

	// keys seal the events written and open those read; nil: written in
	// clear (seal.go).
	keys *seal.Keys

	// pageSize is the size of a new file's pages (WithPageSize).
	pageSize int

	// onCommit, when set, is called by the writer after each commit with the
	// number of requests it held. Tests use it to see batches form.
	onCommit func(requests int)
	// onSync, when set, is called by the syncer after each flush with the
	// number of committed batches it covered and its error.
	onSync func(batches int, err error)
}

// Option adjusts a Store before its goroutines start.
type Option func(*Store)

// WithPageSize gives the file that Open creates pages of n bytes, a power
// of two from 512 to 65536; 0 leaves DefaultPageSize. A file that holds
// tables already keeps its own pages (SQLite fixes them when it first
// writes the file), and Open logs that it does when n (not 0) differs
// from them.
func WithPageSize(n int) Option {
	return func(s *Store) { s.pageSize = n }
}

// WithKeys seals the events the store writes with keys' current key and
// opens those sealed with any of them (seal.go). Without it, events are
// written in clear and sealed ones cannot be read.
func WithKeys(keys *seal.Keys) Option {
	return func(s *Store) { s.keys = keys }
}

// WithLogger has the store write what it has to say (a page size the
// file does not take) to log instead of slog's default logger.
func WithLogger(log *slog.Logger) Option {
	return func(s *Store) { s.log = log }
}

// Open opens (creating if missing, with parent directories) the SQLite file
// at path and migrates it.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	return open(ctx, path, opts...)
}

func open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlitestore: empty path")
	}
	if strings.ContainsRune(path, '?') {
		// The driver takes everything after '?' as connection parameters.
		return nil, fmt.Errorf("sqlitestore: path %q must not contain '?'", path)
	}
	s := &Store{
		path:       path,
		reqs:       make(chan *request),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
		synced:     make(chan synced, syncQueue),
		syncerDone: make(chan struct{}),
		flushed:    make(chan struct{}, 1),
		wakers:     make(map[chan struct{}]func() bool),
	}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	asked := s.pageSize != 0 // the caller chose the size
	if !asked {
		s.pageSize = DefaultPageSize
	}
	if s.pageSize < 512 || s.pageSize > 65536 || s.pageSize&(s.pageSize-1) != 0 {
		return nil, fmt.Errorf("sqlitestore: page size %d: want a power of two from 512 to 65536", s.pageSize)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", diskFull(path, err))
	}
	// Bodies carry customers' data and sometimes bearer tokens: a new file
	// is readable by its owner only, and an existing one (made by an older
	// version, or copied in) is tightened to that, with its -wal and -shm
	// files. SQLite gives -wal and -shm files it creates the database
	// file's permissions.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", diskFull(path, err))
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", diskFull(path, err))
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := ownerOnly(p); err != nil {
			return nil, fmt.Errorf("sqlitestore: %w", err)
		}
	}
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}

	fail := func(err error) (*Store, error) {
		var errs []error
		if s.wal != nil {
			errs = append(errs, s.wal.close())
		}
		if s.wconn != nil {
			errs = append(errs, s.wconn.Close())
		}
		if s.wdb != nil {
			errs = append(errs, s.wdb.Close())
		}
		if s.rdb != nil {
			errs = append(errs, s.rdb.Close())
		}
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, diskFull(path, errors.Join(append([]error{err}, errs...)...)))
	}

	s.wdb, err = sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return fail(err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	if s.wconn, err = s.wdb.Conn(ctx); err != nil {
		return fail(err)
	}
	if size, err := setPageSize(ctx, s.wconn, s.pageSize); err != nil {
		return fail(err)
	} else if size != s.pageSize && asked {
		s.log.Warn("sqlitestore: the file keeps its pages: a page size applies to a new file only",
			"path", path, "page_size", size, "asked", s.pageSize)
	}
	// PRAGMA journal_mode=WAL reports the old mode instead of failing when the
	// file system cannot do WAL (some network file systems); refuse to run
	// with weaker guarantees than documented.
	var mode string
	if err := s.wconn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fail(err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fail(fmt.Errorf("journal_mode is %q, want wal", mode))
	}
	if err := incrementalVacuum(ctx, s.wconn, func() error { return migrate(ctx, s.wconn, ms) }); err != nil {
		return fail(err)
	}
	if s.keys != nil {
		// What a store that seals deletes or rewrites (an event sealed
		// anew, a pruned one) is zeroed in the file, not left behind in
		// free space for a copy of the file to show.
		if _, err := s.wconn.ExecContext(ctx, "PRAGMA secure_delete = ON"); err != nil {
			return fail(err)
		}
	}

	// The migrations above were committed without a flush, as every
	// commit is (sync.go): the first flush makes them durable.
	if s.wal, err = openWAL(path); err != nil {
		return fail(err)
	}
	if err := s.wal.sync(); err != nil {
		return fail(err)
	}
	if s.syncWAL == nil {
		s.syncWAL = s.wal.sync
	}
	if s.writeback == nil {
		s.writeback = s.wal.startWriteback
	}

	s.rdb, err = sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return fail(err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	s.rdb.SetMaxOpenConns(readers)
	s.rdb.SetMaxIdleConns(readers)
	if err := s.rdb.PingContext(ctx); err != nil {
		return fail(err)
	}

	go s.runSyncer()
	go s.runWriter()
	return s, nil
}

// DefaultPageSize is the size of a new file's pages. Every commit writes
// each page it changed to the WAL whole, as a frame of its own, and each
// checkpoint writes it again to the file. With pages of 4 KiB two events
// of about 1.4 KiB (a 1 KiB webhook, its headers and trace) share a page;
// with 2 KiB each takes one, and a saturated writer writes twice the
// frames for them: at full load pages of 4 KiB cost the server about a
// tenth less CPU per event than 2 KiB and take about a tenth more events
// a second. At a moderate rate, where a commit holds one or two events,
// smaller pages write fewer bytes (about a third less at 1,000 events/s
// with 2 KiB): WithPageSize, or page_size in the store's URL, trades one
// for the other (docs/intake.md).
const DefaultPageSize = 4096

// setPageSize gives a new file pages of size bytes and returns the size
// of the file's pages; a file that holds tables already keeps its own.
// SQLite fixes a file's page size when it first writes it, which the
// connection's switch to WAL mode (dsn) has done: a new file that needs
// another size leaves WAL mode, takes it with a VACUUM of nothing, and
// goes back.
func setPageSize(ctx context.Context, conn *sql.Conn, size int) (int, error) {
	var tables, have int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&tables); err != nil {
		return 0, err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&have); err != nil {
		return 0, err
	}
	if tables > 0 || have == size {
		return have, nil
	}
	for _, q := range []string{"PRAGMA journal_mode = DELETE", "PRAGMA page_size = " + strconv.Itoa(size), "VACUUM", "PRAGMA journal_mode = WAL"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("setting the page size of a new file: %s: %w", q, err)
		}
	}
	return size, nil
}

// incrementalVacuum runs migrate with the file in auto_vacuum=INCREMENTAL
// mode, so that the pages retention frees can be given back to the file
// system (Prune). A new file takes the mode before its first table; a file
// made before retention existed is converted once, by a VACUUM that
// rewrites it whole: it takes about as long as copying the file, needs as
// much free disk space again, and holds every other connection meanwhile.
func incrementalVacuum(ctx context.Context, conn *sql.Conn, migrate func() error) error {
	if _, err := conn.ExecContext(ctx, "PRAGMA auto_vacuum = INCREMENTAL"); err != nil {
		return err
	}
	if err := migrate(); err != nil {
		return err
	}
	var mode int
	if err := conn.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&mode); err != nil {
		return err
	}
	if mode == 2 {
		return nil
	}
	if _, err := conn.ExecContext(ctx, "VACUUM"); err != nil {
		return fmt.Errorf("converting to auto_vacuum=INCREMENTAL: %w", err)
	}
	return nil
}

// ownerOnly takes every permission of the file at path away from its group
// and others; a missing file is left alone.
func ownerOnly(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("%s is readable by others and cannot be restricted to its owner (chmod 600 it): %w", path, err)
	}
	return nil
}

// dsn builds the connection string. Pragmas go in _pragma parameters, which
// the driver runs on every new connection, so each pooled connection gets
// them, including ones opened long after Open.
//
// synchronous=NORMAL, with the WAL flushed by the store before any write is
// answered: hookrelay answers 2xx only after Accept commits, and some
// senders never retry, so an acknowledged webhook must survive power loss.
// In WAL mode NORMAL does not flush the WAL at commit, so on its own a
// power cut could lose the last committed transactions (the database stays
// consistent, but acknowledged events would vanish). FULL flushes the WAL
// inside every commit, holding the only writer while the disk works; the
// store makes that same flush itself, beside the writer, once for every
// batch committed meanwhile, and answers a write only after it (sync.go).
//
// temp_store=MEMORY: every write of a batch runs in a savepoint, and SQLite
// copies each page a savepoint first changes into a sub-journal, which it
// otherwise spills to a temporary file: a write system call per page, about
// a third of the writer's time under load. The sub-journal only serves to
// undo a failed write inside the open transaction, so memory is enough.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "temp_store(MEMORY)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	}
	return path + "?" + q.Encode()
}

// Close stops the writer (writes already handed to
// it are committed and answered first), ends every Wake channel and closes
// the database.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		<-s.writerDone
		close(s.synced)
		<-s.syncerDone

		s.wakeMu.Lock()
		for ch, stop := range s.wakers {
			stop()
			close(ch)
		}
		clear(s.wakers)
		s.wakeClosed = true
		s.wakeMu.Unlock()

		s.closeErr = errors.Join(s.wal.close(), s.wconn.Close(), s.wdb.Close(), s.rdb.Close())
	})
	return s.closeErr
}

// Ping reports whether the store can take writes now: it runs an empty
// transaction through the writer, which takes the database's write lock.
func (s *Store) Ping(ctx context.Context) error {
	return s.write(ctx, func(*writeTx) error { return nil })
}

// Wake returns a channel that receives after a write of this Store made
// deliveries due: an Accept or AddDeliveries that enqueued some, a
// RetryDelivery, a Release that gave leases back. The file belongs to one
// process, so an in-process broadcast reaches every waiter. The channel holds at most one pending signal and is
// closed when ctx is done or the Store is closed.
func (s *Store) Wake(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	if s.wakeClosed {
		close(ch)
		return ch
	}
	s.wakers[ch] = context.AfterFunc(ctx, func() {
		s.wakeMu.Lock()
		defer s.wakeMu.Unlock()
		if _, ok := s.wakers[ch]; ok {
			delete(s.wakers, ch)
			close(ch)
		}
	})
	return ch
}

func (s *Store) wake() {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	for ch := range s.wakers {
		select {
		case ch <- struct{}{}:
		default: // a signal is already pending; one is enough
		}
	}
}
