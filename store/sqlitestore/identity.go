package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hookrelay/hookrelay/store"
)

// Identity returns the store's identity, or store.ErrNotFound.
func (s *Store) Identity(ctx context.Context) (store.Identity, error) {
	var id store.Identity
	var at int64
	var state string
	err := s.rdb.QueryRowContext(ctx, `SELECT id, created_at, state, previous FROM store_identity WHERE one = 1`).
		Scan(&id.ID, &at, &state, &id.Previous)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Identity{}, fmt.Errorf("sqlitestore: identity: %w", err)
	}
	id.CreatedAt, id.State = fromMillis(at), store.IdentityState(state)
	return id, nil
}

// PutIdentity stores id if the stored identity is still prev ("": none).
func (s *Store) PutIdentity(ctx context.Context, prev string, id store.Identity) error {
	if id.ID == "" {
		return errors.New("sqlitestore: put identity: empty id")
	}
	err := s.write(ctx, func(w *writeTx) error {
		var cur string
		err := w.queryRow(`SELECT id FROM store_identity WHERE one = 1`).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if cur != prev {
			return fmt.Errorf("the stored identity is %q, not %q: %w", cur, prev, store.ErrConflict)
		}
		_, err = w.exec(`INSERT INTO store_identity (one, id, created_at, state, previous) VALUES (1, ?, ?, ?, ?)
			ON CONFLICT (one) DO UPDATE SET id = excluded.id, created_at = excluded.created_at,
			state = excluded.state, previous = excluded.previous`,
			id.ID, millis(id.CreatedAt), string(id.State), id.Previous)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: put identity: %w", diskFull(s.path, err))
	}
	return nil
}

// Probe overwrites the one probe row through the writer: a real write,
// committed and synced like an event's, that fails when the file system is
// full (store.ErrDiskFull).
func (s *Store) Probe(ctx context.Context, at time.Time) error {
	err := s.write(ctx, func(w *writeTx) error {
		_, err := w.exec(`INSERT INTO probe (one, at) VALUES (1, ?) ON CONFLICT (one) DO UPDATE SET at = excluded.at`, millis(at))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: probe: %w", diskFull(s.path, err))
	}
	return nil
}

// lowSpace is the free space under which an I/O error of SQLite is taken
// for a full disk: a write needs a page or a few.
const lowSpace = 64 << 10

// diskFull marks err with store.ErrDiskFull when it says that the file
// system holding path has no room left. SQLite says so itself for most
// writes (SQLITE_FULL) but reports a failure to grow its shared-memory
// file as a plain I/O error: then the file system's free space decides.
func diskFull(path string, err error) error {
	if err == nil || errors.Is(err, store.ErrDiskFull) {
		return err
	}
	var se *sqlite.Error
	isSQLite := errors.As(err, &se)
	full := (isSQLite && se.Code()&0xff == sqlite3.SQLITE_FULL) || errors.Is(err, syscall.ENOSPC)
	if !full && isSQLite && se.Code()&0xff == sqlite3.SQLITE_IOERR {
		if free, ok := freeSpace(filepath.Dir(path)); ok && free < lowSpace {
			full = true
		}
	}
	if full {
		return fmt.Errorf("%w: %w", store.ErrDiskFull, err)
	}
	return err
}
