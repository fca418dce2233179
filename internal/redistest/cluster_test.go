package redistest

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestClusterPrefixKeysAreDeletedAtCleanup(t *testing.T) {
	c := ClusterClient(t)
	var prefix string
	t.Run("inner", func(t *testing.T) {
		prefix = ClusterPrefix(t)
		// Keys in many slots, so on every master.
		for i := range 30 {
			if err := c.Set(t.Context(), prefix+":"+strings.Repeat("k", i+1), "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if n := masterKeys(t, c, prefix); len(n) < 2 {
			t.Fatalf("keys under %s on %d masters, want them spread over several", prefix, len(n))
		}
	})
	if left := masterKeys(t, c, prefix); len(left) != 0 {
		t.Errorf("keys left under %s after cleanup: %v", prefix, left)
	}
}

// masterKeys returns the keys under prefix on each master that holds any.
func masterKeys(t *testing.T, c *redis.ClusterClient, prefix string) map[string][]string {
	var mu sync.Mutex
	out := map[string][]string{}
	err := c.ForEachMaster(t.Context(), func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			mu.Lock()
			out[m.Options().Addr] = keys
			mu.Unlock()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestClusterURL(t *testing.T) {
	u := ClusterURL(t)
	if !strings.HasPrefix(u, "redis+cluster://") && !strings.HasPrefix(u, "rediss+cluster://") {
		t.Errorf("ClusterURL = %q, want a redis+cluster URL", u)
	}
}

func TestClusterMissing(t *testing.T) {
	// Outside CI a missing cluster skips the test; under CI=true it fails it.
	for _, ci := range []string{"", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("REDIS_CLUSTER_URL", "")
			t.Setenv("CI", ci)
			ft := &stopT{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				ClusterURL(ft)
			}()
			<-done
			want := "skipped"
			if ci == "true" {
				want = "failed"
			}
			if ft.how != want {
				t.Errorf("CI=%q: the test %s, want %s: %s", ci, ft.how, want, ft.msg)
			}
		})
	}
}

// stopT records how a helper stops a test instead of stopping it.
type stopT struct {
	testing.TB
	how, msg string
}

func (s *stopT) Fatalf(format string, args ...any) { s.stop("failed", format, args...) }
func (s *stopT) Skipf(format string, args ...any)  { s.stop("skipped", format, args...) }

func (s *stopT) stop(how, format string, args ...any) {
	s.how, s.msg = how, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestCluster(t *testing.T) {
	var addrs []string
	t.Run("own", func(t *testing.T) {
		u := Cluster(t)
		opt, err := clusterOptions(u)
		if err != nil {
			t.Fatal(err)
		}
		addrs = opt.Addrs
		c := redis.NewClusterClient(opt)
		defer c.Close()
		if err := waitClusterOK(c); err != nil {
			t.Fatal(err)
		}
		roles := map[string]int{}
		for _, a := range addrs {
			n := redis.NewClient(&redis.Options{Addr: a})
			role, err := n.Do(t.Context(), "ROLE").Slice()
			n.Close()
			if err != nil {
				t.Fatalf("ROLE on %s: %v", a, err)
			}
			roles[fmt.Sprint(role[0])]++
		}
		if roles["master"] != 3 || roles["slave"] != 3 {
			t.Errorf("roles = %v, want 3 masters and 3 replicas", roles)
		}
		if other := ClusterURL(t); other == u {
			t.Errorf("Cluster returned the shared cluster's URL %s", u)
		}
	})
	// Stopped when the test ended.
	for _, a := range addrs {
		if conn, err := net.Dial("tcp", a); err == nil {
			conn.Close()
			t.Errorf("%s still answers after the test", a)
		}
	}
}
