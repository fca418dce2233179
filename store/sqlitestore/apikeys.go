package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// Admin API keys are read from the file on every call, never cached, so
// that a revoked key is refused at once.

// apiKeyColumns and scanAPIKey go together.
const apiKeyColumns = `id, name, prefix, hash, scopes, created_at, last_used_at, revoked_at`

func scanAPIKey(row rowScanner) (store.APIKey, error) {
	var (
		k                      store.APIKey
		scopes                 string
		created, used, revoked int64
	)
	if err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.Hash, &scopes, &created, &used, &revoked); err != nil {
		return store.APIKey{}, err
	}
	if err := decodeJSON(scopes, &k.Scopes); err != nil {
		return store.APIKey{}, fmt.Errorf("api key %s scopes: %w", k.ID, err)
	}
	k.CreatedAt = fromMillis(created)
	k.LastUsedAt = fromMillis(used)
	k.RevokedAt = fromMillis(revoked)
	return k, nil
}

// CreateKey stores k. Its id and the hash of its secret must both be new:
// store.ErrConflict otherwise.
func (s *Store) CreateKey(ctx context.Context, k store.APIKey) error {
	if k.ID == "" || k.Hash == "" {
		return errors.New("sqlitestore: create key: a key needs an id and a hash")
	}
	scopes, err := encodeJSON(k.Scopes)
	if err != nil {
		return fmt.Errorf("sqlitestore: create key %s: %w", k.ID, err)
	}
	err = s.write(ctx, func(w *writeTx) error {
		var idTaken, hashTaken bool
		if err := w.queryRow(`SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = ?), EXISTS (SELECT 1 FROM api_keys WHERE hash = ?)`,
			k.ID, k.Hash).Scan(&idTaken, &hashTaken); err != nil {
			return err
		}
		switch {
		case idTaken:
			return fmt.Errorf("the id is taken: %w", store.ErrConflict)
		case hashTaken:
			return fmt.Errorf("a key with that hash exists: %w", store.ErrConflict)
		}
		_, err := w.exec(`INSERT INTO api_keys (`+apiKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.Name, k.Prefix, k.Hash, scopes, millis(k.CreatedAt), millis(k.LastUsedAt), millis(k.RevokedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: create key %s: %w", k.ID, err)
	}
	return nil
}

// Keys lists every key, revoked ones too, oldest first.
func (s *Store) Keys(ctx context.Context) ([]store.APIKey, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: keys: %w", err)
	}
	ks, err := scanAll(rows, scanAPIKey)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: keys: %w", err)
	}
	return ks, nil
}

// KeyByHash reads the key, revoked or not, whose secret has that hash.
func (s *Store) KeyByHash(ctx context.Context, hash string) (store.APIKey, error) {
	k, err := scanAPIKey(s.rdb.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.APIKey{}, fmt.Errorf("sqlitestore: key by hash: %w", err)
	}
	return k, nil
}

// RevokeKey marks the key revoked at at; a key revoked before keeps its
// first revocation time.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) error {
	err := s.stampKey(ctx, id, at,
		`UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at = 0`)
	if err != nil {
		return fmt.Errorf("sqlitestore: revoke key %s: %w", id, err)
	}
	return nil
}

// TouchKey records that the key was used at at; LastUsedAt only moves
// forward.
func (s *Store) TouchKey(ctx context.Context, id string, at time.Time) error {
	err := s.stampKey(ctx, id, at,
		`UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2 AND (last_used_at = 0 OR last_used_at < ?1)`)
	if err != nil {
		return fmt.Errorf("sqlitestore: touch key %s: %w", id, err)
	}
	return nil
}

// stampKey runs update (time, id); when it changes nothing, the key must
// at least exist.
func (s *Store) stampKey(ctx context.Context, id string, at time.Time, update string) error {
	if at.IsZero() {
		return errors.New("no time given")
	}
	return s.write(ctx, func(w *writeTx) error {
		res, err := w.exec(update, at.UnixMilli(), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		var found bool
		if err := w.queryRow(`SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = ?)`, id).Scan(&found); err != nil {
			return err
		}
		if !found {
			return store.ErrNotFound
		}
		return nil
	})
}
