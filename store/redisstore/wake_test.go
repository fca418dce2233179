package redisstore

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
)

// TestClusterWakeShortcutFollowsFailover: a replica that takes over from
// a master after Wake subscribed gets a shortcut subscription of its own
// at the next refresh, without a restart; when Wake ends, none is left on
// any node, the master that became a replica included.
func TestClusterWakeShortcutFollowsFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster and waits out a failover")
	}
	clusterURL := redistest.Cluster(t)
	defer func(d time.Duration) { shortcutRefresh = d }(shortcutRefresh)
	shortcutRefresh = 100 * time.Millisecond

	ctx := t.Context()
	s, err := Open(ctx, redistest.WithPrefix(clusterURL, "hrwake"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	channel := s.k.wake()

	opt, err := redis.ParseClusterURL(strings.Replace(clusterURL, "redis+cluster://", "redis://", 1))
	if err != nil {
		t.Fatal(err)
	}
	cc := redis.NewClusterClient(opt)
	defer cc.Close()
	// numsub is how many subscribers the channel has on the node at addr
	// (PUBSUB NUMSUB counts a node's own).
	numsub := func(addr string) int64 {
		t.Helper()
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		n, err := c.PubSubNumSub(ctx, channel).Result()
		if err != nil {
			t.Fatalf("PUBSUB NUMSUB on %s: %v", addr, err)
		}
		return n[channel]
	}
	within := func(d time.Duration, what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("after %v: %s", d, what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	wakeCtx, cancel := context.WithCancel(ctx)
	wake := s.Wake(wakeCtx)

	// A master that does not hold the channel's slot (the cluster client's
	// own subscription follows that one), and its replica.
	home, err := cc.MasterForKey(ctx, channel)
	if err != nil {
		t.Fatal(err)
	}
	var master, replica string
	within(10*time.Second, "no master with a replica besides the channel's "+home.Options().Addr, func() bool {
		shards, err := cc.ClusterShards(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range shards {
			var m, r string
			for _, n := range sh.Nodes {
				addr := net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
				switch {
				case n.Role == "master":
					m = addr
				case n.Health == "online":
					r = addr
				}
			}
			if m != "" && r != "" && m != home.Options().Addr {
				master, replica = m, r
				return true
			}
		}
		return false
	})
	if n := numsub(master); n != 1 {
		t.Fatalf("master %s: %d subscribers before the failover, want Wake's shortcut", master, n)
	}
	if n := numsub(replica); n != 0 {
		t.Fatalf("replica %s: %d subscribers before the failover, want none", replica, n)
	}

	rc := redis.NewClient(&redis.Options{Addr: replica})
	defer rc.Close()
	if err := rc.Do(ctx, "cluster", "failover").Err(); err != nil {
		t.Fatalf("CLUSTER FAILOVER on %s: %v", replica, err)
	}
	within(15*time.Second, replica+" never became a master", func() bool {
		info, err := rc.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "role:master")
	})
	within(10*time.Second, "the new master "+replica+" got no shortcut subscription", func() bool {
		return numsub(replica) == 1
	})

	// Signals still come through.
	if err := cc.Publish(ctx, channel, 1).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no signal after the failover")
	}

	cancel()
	for range wake {
	}
	for _, addr := range []string{master, replica, home.Options().Addr} {
		within(5*time.Second, "subscribers left on "+addr+" after Wake ended", func() bool {
			return numsub(addr) == 0
		})
	}
}
