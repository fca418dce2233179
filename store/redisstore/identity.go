package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/store"
)

// Identity reads the store's identity, or store.ErrNotFound.
func (s *Store) Identity(ctx context.Context) (store.Identity, error) {
	m, err := s.c.HGetAll(ctx, s.k.identity()).Result()
	if err != nil {
		return store.Identity{}, fmt.Errorf("redisstore: identity: %w", err)
	}
	if len(m) == 0 {
		return store.Identity{}, fmt.Errorf("redisstore: identity: %w", store.ErrNotFound)
	}
	at, err := parseMS(m["created"])
	if err != nil {
		return store.Identity{}, fmt.Errorf("redisstore: identity: %w", err)
	}
	return store.Identity{ID: m["id"], CreatedAt: at, State: store.IdentityState(m["state"]), Previous: m["previous"]}, nil
}

// PutIdentity stores id if the stored identity is still prev ("": none),
// in one script.
func (s *Store) PutIdentity(ctx context.Context, prev string, id store.Identity) error {
	if id.ID == "" {
		return errors.New("redisstore: put identity: empty id")
	}
	ok, err := putIdentityScript.Run(ctx, s.c, []string{s.k.identity()}, prev,
		"id", id.ID, "created", ms(id.CreatedAt), "state", string(id.State), "previous", id.Previous).Int64()
	if err != nil {
		return fmt.Errorf("redisstore: put identity: %w", err)
	}
	if ok == 0 {
		return fmt.Errorf("redisstore: put identity: the stored identity is not %q: %w", prev, store.ErrConflict)
	}
	return nil
}

// Probe overwrites the one probe key: a real write, which Redis refuses
// when it cannot take writes (out of memory under maxmemory, a failing
// snapshot with stop-writes-on-bgsave-error, a read-only replica).
func (s *Store) Probe(ctx context.Context, at time.Time) error {
	if err := s.c.Set(ctx, s.k.probe(), ms(at), 0).Err(); err != nil {
		return fmt.Errorf("redisstore: probe: %w", err)
	}
	return nil
}

// Durability is what Redis says about keeping its data across a restart.
type Durability struct {
	AOF      bool // appendonly yes
	RDB      bool // at least one save point
	Replica  bool // this server replicates another
	Replicas int  // replicas connected to this server
}

// Persists reports whether Redis keeps its data across its own restart
// one way or another: on disk, or on a replica.
func (d Durability) Persists() bool { return d.AOF || d.RDB || d.Replica || d.Replicas > 0 }

// Durability asks Redis how it keeps its data. It fails where CONFIG is
// not allowed (many managed services): then nothing is known. On a Redis
// Cluster it is the weakest of its masters', each holding a share of the
// data.
func (s *Store) Durability(ctx context.Context) (Durability, error) {
	cc, ok := s.c.(*redis.ClusterClient)
	if !ok {
		return durabilityOf(ctx, s.c)
	}
	var (
		mu      sync.Mutex
		weakest *Durability
	)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		d, err := durabilityOf(ctx, m)
		if err != nil {
			return fmt.Errorf("%s: %w", m.Options().Addr, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if weakest == nil {
			weakest = &d
			return nil
		}
		weakest.AOF = weakest.AOF && d.AOF
		weakest.RDB = weakest.RDB && d.RDB
		weakest.Replica = weakest.Replica && d.Replica
		weakest.Replicas = min(weakest.Replicas, d.Replicas)
		return nil
	})
	if err != nil {
		return Durability{}, fmt.Errorf("redisstore: durability of the cluster's masters: %w", err)
	}
	if weakest == nil {
		return Durability{}, errors.New("redisstore: durability: the cluster has no master")
	}
	return *weakest, nil
}

// durabilityOf asks one server how it keeps its data.
func durabilityOf(ctx context.Context, c redis.Cmdable) (Durability, error) {
	var d Durability
	cfg, err := c.ConfigGet(ctx, "save").Result()
	if err != nil {
		return d, fmt.Errorf("redisstore: CONFIG GET save: %w", err)
	}
	d.RDB = strings.TrimSpace(cfg["save"]) != ""
	cfg, err = c.ConfigGet(ctx, "appendonly").Result()
	if err != nil {
		return d, fmt.Errorf("redisstore: CONFIG GET appendonly: %w", err)
	}
	d.AOF = strings.EqualFold(cfg["appendonly"], "yes")
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return d, fmt.Errorf("redisstore: INFO replication: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "role":
			d.Replica = v != "master"
		case "connected_slaves":
			d.Replicas, _ = strconv.Atoi(v)
		}
	}
	return d, nil
}

// ReplicasOnline reports whether every master that holds the store has at
// least n replicas online: connected and past their first sync, the only
// ones Redis's WAIT counts. Under durability: wait an accept is answered
// 503 until a replica holds it, so a master short of replicas refuses
// every event of its partitions; the error names the first such master.
func (s *Store) ReplicasOnline(ctx context.Context, n int) error {
	nodes, err := s.masters(ctx)
	if err != nil {
		return fmt.Errorf("redisstore: the store's masters: %w", err)
	}
	for _, c := range nodes {
		addr := "Redis"
		if o, ok := c.(interface{ Options() *redis.Options }); ok {
			addr = o.Options().Addr
		}
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return fmt.Errorf("redisstore: INFO replication of %s: %w", addr, err)
		}
		if got := onlineReplicas(info); got < n {
			return fmt.Errorf("redisstore: %s has %d replica(s) online, %d needed", addr, got, n)
		}
	}
	return nil
}

// onlineReplicas counts the replicas that INFO replication of a master
// lists as online ("slave0:ip=…,port=…,state=online,…").
func onlineReplicas(info string) int {
	n := 0
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		num, isReplica := strings.CutPrefix(k, "slave")
		if !ok || !isReplica || num == "" || strings.Trim(num, "0123456789") != "" {
			continue
		}
		for _, f := range strings.Split(v, ",") {
			if f == "state=online" {
				n++
			}
		}
	}
	return n
}
