package redistest

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestPrefixKeysAreDeletedAtCleanup(t *testing.T) {
	c := Client(t)
	var prefix string
	t.Run("inner", func(t *testing.T) {
		prefix = Prefix(t)
		if !strings.HasPrefix(prefix, "hrtest:") {
			t.Fatalf("Prefix = %q, want hrtest:...", prefix)
		}
		for _, k := range []string{":a", ":{p}:b", ":{p}:c:d"} {
			if err := c.Set(t.Context(), prefix+k, "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if other := Prefix(t); other == prefix {
			t.Fatalf("two calls returned the same prefix %q", prefix)
		}
	})
	keys, err := c.Keys(t.Context(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("keys left under %s after cleanup: %v", prefix, keys)
	}
}

func TestURL(t *testing.T) {
	u := URL(t)
	if !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") {
		t.Errorf("URL = %q, want a redis URL", u)
	}
}

func TestServer(t *testing.T) {
	u := Server(t)
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET on the test's own server: %v", err)
	}
	if err := c.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.DBSize(t.Context()).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE after FLUSHALL = %d, %v", n, err)
	}
}

// TestReplica: the replica Replica returns has synced: it holds what the
// master held before it started, and the master lists it online.
func TestReplica(t *testing.T) {
	m := Server(t)
	mopt, err := redis.ParseURL(m)
	if err != nil {
		t.Fatal(err)
	}
	master := redis.NewClient(mopt)
	defer master.Close()
	if err := master.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	ropt, err := redis.ParseURL(Replica(t, m))
	if err != nil {
		t.Fatal(err)
	}
	replica := redis.NewClient(ropt)
	defer replica.Close()
	if got, err := replica.Get(t.Context(), "k").Result(); err != nil || got != "v" {
		t.Errorf("GET k on the replica = %q, %v; want the master's \"v\"", got, err)
	}
	if role, err := replica.Do(t.Context(), "ROLE").Slice(); err != nil || len(role) == 0 || role[0] != "slave" {
		t.Errorf("ROLE of the replica = %v, %v", role, err)
	}
}

// TestServerCounters reads the counters the benchmarks report per event:
// a script that runs for a while adds to the scripts' time, and the CPU
// time and memory are read as numbers.
func TestServerCounters(t *testing.T) {
	if cpu := CPU(t); cpu <= 0 {
		t.Fatalf("CPU() = %v, want the server's CPU time so far", cpu)
	}
	if m := Memory(t); m <= 0 {
		t.Fatalf("Memory() = %d, want the server's memory in use", m)
	}
	before := ScriptTime(t)
	// About a millisecond of Lua, timed by Redis whatever else runs.
	if err := Client(t).Eval(context.Background(), "local x = 0 for i = 1, 300000 do x = x + i end return x", nil).Err(); err != nil {
		t.Fatal(err)
	}
	if after := ScriptTime(t); after <= before {
		t.Fatalf("ScriptTime() went from %v to %v µs across a script of about a millisecond", before, after)
	}
}
