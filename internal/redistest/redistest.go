// Package redistest connects hookrelay's tests to a real Redis server and
// gives each test a key prefix of its own that is deleted when it ends.
//
// The server is the one REDIS_URL names, or redis://127.0.0.1:6379/0. When it
// cannot be reached the test is skipped, unless CI=true: then it fails, so
// that a CI run never passes by skipping everything that needs Redis. The
// Redis Cluster is the one REDIS_CLUSTER_URL names (ClusterURL), the same
// way. Server and Cluster start a server or a cluster of the test's own.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redisinfo"
)

// DefaultURL is used when REDIS_URL is not set.
const DefaultURL = "redis://127.0.0.1:6379/0"

// URL returns the URL of the reachable test server, for starting a real
// hookrelay with --store (add "?prefix=" + Prefix(t) to keep its keys apart).
func URL(t testing.TB) string {
	t.Helper()
	_, u := connect(t)
	return u
}

// Client returns a client of the test server, closed when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	c, _ := connect(t)
	return c
}

// Prefix returns a key prefix no other test uses ("hrtest:<random hex>") and
// deletes every key under it when the test ends.
func Prefix(t testing.TB) string {
	t.Helper()
	return prefix(t, Client(t))
}

// prefix returns a new test prefix and deletes its keys from c, one server
// or a cluster, when the test ends.
func prefix(t testing.TB, c redis.UniversalClient) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	prefix := "hrtest:" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		// The test's context is already done when cleanups run. A
		// benchmark may leave millions of keys, which take minutes.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		var err error
		if cc, ok := c.(*redis.ClusterClient); ok {
			err = deleteOnMasters(ctx, cc, prefix)
		} else {
			err = deleteUnder(ctx, c, prefix, unlinkAll(c))
		}
		if err != nil {
			t.Errorf("deleting test keys under %s: %v", prefix, err)
		}
	})
	return prefix
}

// deleteUnder unlinks every key on server c that starts with prefix, in
// batches through unlink. The prefix holds no glob characters, so it can
// be matched as given.
func deleteUnder(ctx context.Context, c redis.Cmdable, prefix string, unlink func(context.Context, []string) error) error {
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := unlink(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return unlink(ctx, batch)
	}
	return nil
}

// unlinkAll unlinks keys with one command.
func unlinkAll(c redis.Cmdable) func(context.Context, []string) error {
	return func(ctx context.Context, keys []string) error { return c.Unlink(ctx, keys...).Err() }
}

func connect(t testing.TB) (*redis.Client, string) {
	t.Helper()
	u := os.Getenv("REDIS_URL")
	if u == "" {
		u = DefaultURL
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("REDIS_URL %q: %v", u, err)
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		if os.Getenv("CI") == "true" {
			t.Fatalf("Redis at %s is unreachable (CI=true, so this fails instead of skipping): %v", opt.Addr, err)
		}
		t.Skipf("Redis at %s is unreachable, skipping (set REDIS_URL to use another server): %v", opt.Addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, u
}

// info returns the fields of a section of the test server's INFO, name to
// value.
func info(t testing.TB, section string) map[string]string {
	t.Helper()
	text, err := Client(t).Info(context.Background(), section).Result()
	if err != nil {
		t.Fatalf("INFO %s: %v", section, err)
	}
	return redisinfo.Fields(text)
}

// CPU returns the CPU time, system and user, that the test server has used
// since it started, in seconds (INFO cpu). The server is shared, so a
// difference counts whatever else it did meanwhile too.
func CPU(t testing.TB) float64 {
	t.Helper()
	cpu, err := redisinfo.CPU(info(t, "cpu"))
	if err != nil {
		t.Fatal(err)
	}
	return cpu
}

// ScriptTime returns the time, in microseconds, that the test server has
// spent in the calls that carry a store's state changes since its
// statistics were last reset: scripts and transactions (redisinfo.State).
// The server is shared, so a difference counts other clients' calls too.
func ScriptTime(t testing.TB) float64 {
	t.Helper()
	_, usec, err := redisinfo.State(info(t, "commandstats"))
	if err != nil {
		t.Fatal(err)
	}
	return float64(usec)
}

// Memory returns the memory the test server uses for data, in bytes (INFO
// memory's used_memory). The server is shared, so a difference counts
// whatever else it stored meanwhile too.
func Memory(t testing.TB) int64 {
	t.Helper()
	v := info(t, "memory")["used_memory"]
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("INFO memory: used_memory:%s: %v", v, err)
	}
	return n
}

// WithPrefix is the store URL rawURL (redis:// or redis+cluster://) with
// the key prefix prefix added to its query.
func WithPrefix(rawURL, prefix string) string {
	sep := "?"
	if strings.Contains(rawURL, "?") {
		sep = "&"
	}
	return rawURL + sep + "prefix=" + prefix
}
