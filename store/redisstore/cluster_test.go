package redisstore_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
	"github.com/hookrelay/hookrelay/store/storetest"
)

// The conformance suites again, on the Redis Cluster that REDIS_CLUSTER_URL
// names (scripts/redis-cluster.sh), each store opened from its URL.

func TestClusterConformance(t *testing.T) {
	redistest.ClusterURL(t) // skip or fail once, not in every case
	storetest.Run(t, func(t *testing.T) store.Store { return openCluster(t) })
}

func TestClusterHandOffConformance(t *testing.T) {
	redistest.ClusterURL(t) // skip or fail once, not in every case
	storetest.RunHandOff(t, func(t *testing.T) store.Store { return openCluster(t) })
}

func TestClusterAdminConformance(t *testing.T) {
	redistest.ClusterURL(t) // skip or fail once, not in every case
	storetest.RunAdmin(t, func(t *testing.T) interface {
		store.Store
		store.Admin
	} {
		return openCluster(t)
	})
}

func TestClusterRetentionConformance(t *testing.T) {
	redistest.ClusterURL(t) // skip or fail once, not in every case
	storetest.RunRetention(t, func(t *testing.T) interface {
		store.Store
		store.Admin
		store.Pruner
	} {
		return openCluster(t)
	})
}

// openCluster opens a store on the test cluster under a prefix of the
// test's own.
func openCluster(t *testing.T) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(t.Context(), clusterURL(t, redistest.ClusterPrefix(t)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// clusterURL is the test cluster's URL with prefix.
func clusterURL(t *testing.T, prefix string) string {
	return redistest.WithPrefix(redistest.ClusterURL(t), prefix)
}

func TestClusterOpen(t *testing.T) {
	prefix := redistest.ClusterPrefix(t)
	s, err := redisstore.Open(t.Context(), clusterURL(t, prefix))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	now := time.Now()
	e := store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now}
	d := store.Delivery{ID: store.NewDeliveryID(e.ID, now), EventID: e.ID, Hook: "h", Rule: "r", Action: "a", NextAttemptAt: now}
	wakeCtx, cancel := context.WithCancel(t.Context())
	defer cancel()
	wake := s.Wake(wakeCtx)
	if _, err := s.Accept(t.Context(), store.Accept{Event: e, Deliveries: []store.Delivery{d}}); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	// The event lives under the prefix the URL named, on the cluster, in
	// one of the partitions a new store on a cluster gets.
	if got := s.Partitions(); got != 16 {
		t.Errorf("Partitions = %d, want 16 for a new store on a cluster", got)
	}
	if n := clusterKeys(t, prefix+":{*}:evt:"+e.ID); n != 1 {
		t.Fatalf("event key under %s: %d found, want 1", prefix, n)
	}
	select {
	case <-wake:
	case <-time.After(30 * time.Second):
		t.Fatal("Accept on the cluster woke no relay")
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if _, _, err := s.Limiter().AllowAtMost(t.Context(), "a", store.Rate{Count: 1, Per: time.Second}, 1); err != nil {
		t.Errorf("AllowAtMost: %v", err)
	}
}

// TestClusterOpenOneSeed: one seed that answers is enough to find the
// cluster, even after one that does not.
func TestClusterOpenOneSeed(t *testing.T) {
	opt, err := redis.ParseClusterURL(strings.Replace(redistest.ClusterURL(t), "+cluster", "", 1))
	if err != nil {
		t.Fatal(err)
	}
	u := "redis+cluster://" + closedAddr(t) + "?addr=" + opt.Addrs[len(opt.Addrs)-1] + "&prefix=" + redistest.ClusterPrefix(t)
	s, err := redisstore.Open(t.Context(), u)
	if err != nil {
		t.Fatalf("Open with one live seed: %v", err)
	}
	defer s.Close()
	if err := s.Probe(t.Context(), time.Now()); err != nil {
		t.Errorf("Probe: %v", err)
	}
}

// TestClusterDurability: every master of the test cluster has a replica
// and nothing on disk.
func TestClusterDurability(t *testing.T) {
	s := openCluster(t)
	d, err := s.Durability(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d != (redisstore.Durability{Replicas: 1}) || !d.Persists() {
		t.Errorf("Durability = %+v, want one replica a master and no AOF or RDB", d)
	}
}

// TestOpenClusterRejects: a cluster URL that cannot be used stops Open with
// a message that says why and names no password.
func TestOpenClusterRejects(t *testing.T) {
	a, b := closedAddr(t), closedAddr(t)
	tests := []struct {
		name, url string
		want      []string
	}{
		{"unreachable seeds", "redis+cluster://u:s3cret@" + a + "?addr=" + b, []string{"Redis Cluster seeds " + a + ", " + b, "connection refused"}},
		{"unreachable over TLS", "rediss+cluster://:s3cret@" + a, []string{"Redis Cluster seeds " + a}},
		{"bad addr", "redis+cluster://:s3cret@" + a + "?addr=nohost", []string{"addr", "nohost"}},
		{"unknown option", "redis+cluster://:s3cret@" + a + "?colour=blue", []string{"colour"}},
		{"database", "redis+cluster://:s3cret@" + a + "/2", []string{"only database 0", `"2"`}},
		{"brace in prefix", "redis+cluster://:s3cret@" + a + "?prefix=a{b}", []string{"prefix"}},
		{"malformed", "redis+cluster://u:s3cret@" + a + "/%zz", []string{"malformed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := redisstore.Open(t.Context(), tt.url)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open error = %q, want it to mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Open error = %q names the password", err)
			}
		})
	}
}

// TestOpenClusterOnPlainServer: a seed that is a Redis without cluster
// mode is refused, with Redis's own reason.
func TestOpenClusterOnPlainServer(t *testing.T) {
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = redisstore.Open(t.Context(), "redis+cluster://"+opt.Addr)
	if err == nil || !strings.Contains(err.Error(), "cluster support disabled") {
		t.Errorf("Open of a server without cluster mode: %v, want Redis's refusal", err)
	}
}

// clusterKeys counts the keys that match pattern on every master of the
// test cluster.
func clusterKeys(t *testing.T, pattern string) int {
	t.Helper()
	var mu sync.Mutex
	n := 0
	err := redistest.ClusterClient(t).ForEachMaster(t.Context(), func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			n++
			mu.Unlock()
		}
		return iter.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClusterReplicasOnline: every master holding a partitioned store on
// the test cluster (one replica each) has its replica online, and none
// has two.
func TestClusterReplicasOnline(t *testing.T) {
	s := openCluster(t)
	waitReplicas(t, s, 1)
	if err := s.ReplicasOnline(t.Context(), 2); err == nil || !strings.Contains(err.Error(), "has 1 replica(s) online, 2 needed") {
		t.Errorf("ReplicasOnline(2) on a cluster of one replica per master = %v", err)
	}
}

// TestClusterWakeSubscribesOnEveryMaster: on a cluster, Wake also
// subscribes on every master, so that a wake-up published by a script on
// its partition's node comes straight from that node rather than over the
// cluster bus; those subscriptions end with it.
func TestClusterWakeSubscribesOnEveryMaster(t *testing.T) {
	prefix := redistest.ClusterPrefix(t)
	s, err := redisstore.Open(t.Context(), clusterURL(t, prefix))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	// subscribed is, per master, how many subscribers the store's
	// channels have there.
	subscribed := func() map[string]int64 {
		t.Helper()
		var mu sync.Mutex
		out := map[string]int64{}
		err := redistest.ClusterClient(t).ForEachMaster(t.Context(), func(ctx context.Context, c *redis.Client) error {
			chans, err := c.PubSubChannels(ctx, prefix+"*").Result()
			if err != nil {
				return err
			}
			var n int64
			if len(chans) > 0 {
				counts, err := c.PubSubNumSub(ctx, chans...).Result()
				if err != nil {
					return err
				}
				for _, k := range counts {
					n += k
				}
			}
			mu.Lock()
			out[c.Options().Addr] = n
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	ctx, cancel := context.WithCancel(t.Context())
	wake := s.Wake(ctx)
	got := subscribed()
	if len(got) < 3 {
		t.Fatalf("masters seen = %v, want the test cluster's 3", got)
	}
	total := int64(0)
	for addr, n := range got {
		if n < 1 {
			t.Errorf("master %s: %d subscribers to the store's wake channel, want at least 1", addr, n)
		}
		total += n
	}
	// One on every master, and the cluster client's own on the channel's.
	if want := int64(len(got) + 1); total != want {
		t.Errorf("subscribers over the masters = %d (%v), want %d", total, got, want)
	}
	cancel()
	if _, ok := <-wake; ok {
		// A signal may be pending; the channel closes after it.
		if _, ok := <-wake; ok {
			t.Fatal("Wake's channel still open after its context ended")
		}
	}
	// Redis drops a subscription when it reads the closed connection.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := subscribed()
		total := int64(0)
		for _, n := range left {
			total += n
		}
		if total == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribers left after Wake ended: %v, want none", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
