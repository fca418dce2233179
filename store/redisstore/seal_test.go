package redisstore

import (
	"context"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"
	"github.com/hookrelay/hookrelay/store/storetest"
)

func TestSealingConformance(t *testing.T) {
	for _, parts := range []string{"1", "4"} {
		t.Run("partitions="+parts, func(t *testing.T) {
			storetest.RunSealing(t, func(t *testing.T) storetest.SealedBackend {
				c := redistest.Client(t)
				prefix := redistest.Prefix(t)
				url := redistest.WithPrefix(redistest.URL(t), prefix) + "&partitions=" + parts
				return storetest.SealedBackend{
					Open: func(keys *seal.Keys) storetest.SealedStore {
						s, err := Open(t.Context(), url, WithKeys(keys))
						if err != nil {
							t.Fatalf("Open: %v", err)
						}
						t.Cleanup(func() { s.Close() })
						return s
					},
					Raw: func() []byte { return redistest.Dump(t, c, prefix) },
					Stored: func() map[string]string {
						out := map[string]string{}
						for _, k := range redistest.Keys(t, c, prefix) {
							if _, id, ok := strings.Cut(k, ":evt:"); ok {
								out[id] = c.Get(context.Background(), k).Val()
							}
						}
						return out
					},
				}
			})
		})
	}
}

// The whole suite again on stores that seal: sealing changes nothing a
// caller sees, and the scripts read sealed events as they read others.
func TestConformanceSealed(t *testing.T) {
	open := func(t *testing.T) *Store {
		s := New(redistest.Client(t), redistest.Prefix(t), WithKeys(storetest.SealKeys(t)))
		t.Cleanup(func() { _ = s.Close() })
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
