package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

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
// not allowed (many managed services): then nothing is known.
func (s *Store) Durability(ctx context.Context) (Durability, error) {
	var d Durability
	cfg, err := s.c.ConfigGet(ctx, "save").Result()
	if err != nil {
		return d, fmt.Errorf("redisstore: CONFIG GET save: %w", err)
	}
	d.RDB = strings.TrimSpace(cfg["save"]) != ""
	cfg, err = s.c.ConfigGet(ctx, "appendonly").Result()
	if err != nil {
		return d, fmt.Errorf("redisstore: CONFIG GET appendonly: %w", err)
	}
	d.AOF = strings.EqualFold(cfg["appendonly"], "yes")
	info, err := s.c.Info(ctx, "replication").Result()
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
