package sqlitestore

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"
	"github.com/hookrelay/hookrelay/store/storetest"
)

func TestSealingConformance(t *testing.T) {
	storetest.RunSealing(t, func(t *testing.T) storetest.SealedBackend {
		path := filepath.Join(t.TempDir(), "hookrelay.db")
		return storetest.SealedBackend{
			Open: func(keys *seal.Keys) storetest.SealedStore {
				s, err := Open(t.Context(), path, WithKeys(keys))
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			},
			Raw: func() []byte { return storetest.RawFiles(t, path) },
			Stored: func() map[string]string {
				db, err := sql.Open("sqlite", dsn(path, true))
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				rows, err := db.Query(`SELECT id, seal_key || '|' || headers || '|' || query || '|' || quote(body) || '|' || trace FROM events`)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				out := map[string]string{}
				for rows.Next() {
					var id, v string
					if err := rows.Scan(&id, &v); err != nil {
						t.Fatal(err)
					}
					out[id] = v
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				return out
			},
		}
	})
}

// The whole suite again on stores that seal: sealing changes nothing a
// caller sees.
func TestConformanceSealed(t *testing.T) {
	type full interface {
		store.Store
		store.Admin
		store.Pruner
	}
	open := func(t *testing.T) full {
		s, err := Open(t.Context(), filepath.Join(t.TempDir(), "hookrelay.db"), WithKeys(storetest.SealKeys(t)))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
	storetest.RunHandOff(t, func(t *testing.T) store.Store { return open(t) })
	storetest.RunAdmin(t, func(t *testing.T) interface {
		store.Store
		store.Admin
	} {
		return open(t)
	})
	storetest.RunRetention(t, func(t *testing.T) interface {
		store.Store
		store.Admin
		store.Pruner
	} {
		return open(t)
	})
}
