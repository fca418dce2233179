package redisstore

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

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
					Raw: func() []byte { return DumpKeys(t, c, prefix) },
					Stored: func() map[string]string {
						out := map[string]string{}
						for _, k := range keysUnder(t, c, prefix) {
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

func keysUnder(t *testing.T, c redis.Cmdable, prefix string) []string {
	t.Helper()
	var out []string
	iter := c.Scan(context.Background(), 0, prefix+":*", 1000).Iterator()
	for iter.Next(context.Background()) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// DumpKeys is every key under prefix with its value, as a dump would show
// it: read by type (GET, HGETALL, LRANGE, SMEMBERS, ZRANGE) and as DUMP
// serialises it.
func DumpKeys(t *testing.T, c redis.Cmdable, prefix string) []byte {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, k := range keysUnder(t, c, prefix) {
		b.WriteString(k + "\n")
		switch c.Type(ctx, k).Val() {
		case "string":
			b.WriteString(c.Get(ctx, k).Val())
		case "hash":
			for f, v := range c.HGetAll(ctx, k).Val() {
				b.WriteString(f + "=" + v + "\n")
			}
		case "list":
			b.WriteString(strings.Join(c.LRange(ctx, k, 0, -1).Val(), "\n"))
		case "set":
			b.WriteString(strings.Join(c.SMembers(ctx, k).Val(), "\n"))
		case "zset":
			b.WriteString(strings.Join(c.ZRange(ctx, k, 0, -1).Val(), "\n"))
		}
		b.WriteString("\n" + c.Dump(ctx, k).Val() + "\n")
	}
	return []byte(b.String())
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
