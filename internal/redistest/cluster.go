package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterURL returns the redis+cluster:// URL that REDIS_CLUSTER_URL names,
// once the cluster answers with every slot served, for starting a real
// hookrelay with --store (WithPrefix(ClusterURL(t), ClusterPrefix(t))).
// scripts/redis-cluster.sh starts one and prints its URL. When the variable
// is unset or the cluster cannot be reached the test is skipped, unless
// CI=true: then it fails.
func ClusterURL(t testing.TB) string {
	t.Helper()
	_, u := connectCluster(t)
	return u
}

// ClusterClient returns a client of the test cluster, closed when the test
// ends.
func ClusterClient(t testing.TB) *redis.ClusterClient {
	t.Helper()
	c, _ := connectCluster(t)
	return c
}

// ClusterPrefix is Prefix on the test cluster: a key prefix no other test
// uses, every key under it deleted from every master when the test ends.
func ClusterPrefix(t testing.TB) string {
	t.Helper()
	return prefix(t, ClusterClient(t))
}

// deleteOnMasters unlinks every key under prefix on each master of the
// cluster (SCAN walks one server), one command a key: a cluster node
// refuses a command whose keys lie in different slots.
func deleteOnMasters(ctx context.Context, c *redis.ClusterClient, prefix string) error {
	return c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		unlink := func(ctx context.Context, keys []string) error {
			_, err := m.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Unlink(ctx, k)
				}
				return nil
			})
			return err
		}
		if err := deleteUnder(ctx, m, prefix, unlink); err != nil {
			return fmt.Errorf("%s: %w", m.Options().Addr, err)
		}
		return nil
	})
}

// clusterChecked remembers the first check of REDIS_CLUSTER_URL's cluster
// state, so that each test does not wait for it again.
var clusterChecked struct {
	once sync.Once
	err  error
}

func connectCluster(t testing.TB) (*redis.ClusterClient, string) {
	t.Helper()
	u := os.Getenv("REDIS_CLUSTER_URL")
	if u == "" {
		missing(t, "REDIS_CLUSTER_URL is not set (scripts/redis-cluster.sh start prints a URL for it)")
	}
	opt, err := clusterOptions(u)
	if err != nil {
		t.Fatalf("REDIS_CLUSTER_URL %q: %v", u, err)
	}
	c := redis.NewClusterClient(opt)
	clusterChecked.once.Do(func() { clusterChecked.err = waitClusterOK(c) })
	if err := clusterChecked.err; err != nil {
		_ = c.Close()
		missing(t, fmt.Sprintf("Redis Cluster at %s is not usable: %v", strings.Join(opt.Addrs, ", "), err))
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, u
}

// clusterOptions parses a redis+cluster:// or rediss+cluster:// URL with
// go-redis, which reads redis:// and rediss:// only.
func clusterOptions(u string) (*redis.ClusterOptions, error) {
	scheme, rest, _ := strings.Cut(u, "://")
	base, ok := strings.CutSuffix(scheme, "+cluster")
	if !ok {
		return nil, fmt.Errorf("want redis+cluster://host:port?addr=host:port&… or rediss+cluster://…")
	}
	return redis.ParseClusterURL(base + "://" + rest)
}

// waitClusterOK waits a little for every master to answer and report
// cluster_state:ok: a cluster just created may still be settling.
func waitClusterOK(c *redis.ClusterClient) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			info, err := m.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("%s: cluster_state is not ok", m.Options().Addr)
			}
			return nil
		})
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// missing skips the test for want of a server, or fails it under CI=true.
func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true, so this fails instead of skipping)", why)
	}
	t.Skipf("%s, skipping", why)
}

// Cluster starts a Redis Cluster of the test's own, three masters and three
// replicas on free loopback ports (scripts/redis-cluster.sh), stopped when
// the test ends, and returns its redis+cluster:// URL. A test that must do
// what would disturb other tests (kill a master) uses it. Without
// redis-server and redis-cli on PATH the test is skipped, unless CI=true:
// then it fails.
func Cluster(t testing.TB) string {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing(t, bin+" is not on PATH")
		}
	}
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "..", "..", "scripts", "redis-cluster.sh")
	var stderr bytes.Buffer
	start := exec.Command("bash", script, "start")
	// The script chooses free ports itself.
	start.Env, start.Stderr = append(os.Environ(), "REDIS_CLUSTER_PORT="), &stderr
	out, err := start.Output()
	if err != nil {
		t.Fatalf("%s start: %v\n%s", script, err, stderr.String())
	}
	u := strings.TrimSpace(string(out))
	opt, err := clusterOptions(u)
	if err != nil {
		t.Fatalf("%s start printed %q: %v", script, u, err)
	}
	_, base, _ := net.SplitHostPort(opt.Addrs[0])
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "stop", base).CombinedOutput(); err != nil {
			t.Errorf("%s stop %s: %v\n%s", script, base, err, out)
		}
	})
	return u
}
