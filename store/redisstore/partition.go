package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/store"
)

// Partitions: on a Redis Cluster the keyspace is split into partitions, each
// under its own hash tag, so that the data spreads over the cluster's
// masters while each script still touches one slot. An event, its
// idempotency key, its deliveries, their attempts, and the queues, leases
// and listing indexes that hold them live in one partition: accept, lease,
// finish and prune stay single-slot scripts, run partition by partition in
// one pipeline. The partition of an event or delivery is its id's shard
// hint (store.Shard) modulo the number of partitions, and an event with an
// idempotency key gets the key's hint (store.NewEventID), so duplicates
// meet the key where it is kept. What the whole store shares (its
// identity, the number of partitions, API keys, the actions' shared state
// and concurrency, rate limits, the pruning lease) lives in partition 0,
// whose tag {p} is the one every key had before partitions, so a store
// written then is a store of one partition.
//
// The number of partitions is chosen when a store is created (the URL's
// partitions=N; by default one on a single server, defaultClusterPartitions
// on a cluster), kept in the store, and fixed from then on: keys already
// written could not be found under another count.

const (
	// defaultClusterPartitions is how many partitions a new store on a
	// Redis Cluster gets: comfortably more than the masters of a small
	// cluster, so that each holds several and moving slots moves load.
	defaultClusterPartitions = 16
	// clusterSlots is how many hash slots a Redis Cluster has.
	clusterSlots = 16384
)

// partitionTags returns the hash tags of n partitions: "{p}" first, then
// tags whose slots fall one in each of n equal ranges of the cluster's
// slots (skipping the range of "{p}"), so that a cluster whose masters hold
// equal runs of slots, as redis-cli --cluster create makes them, holds
// about as many partitions on each master.
func partitionTags(n int) []string {
	tags := make([]string, n)
	tags[0] = "{p}"
	if n == 1 {
		return tags
	}
	rangeOf := func(tag string) int { return int(keySlot(tag)) * n / clusterSlots }
	taken := rangeOf("p")
	next := 0
	for i := 1; i < n; i++ {
		if next == taken {
			next++
		}
		for k := 0; ; k++ {
			tag := "p" + strconv.Itoa(i) + "." + strconv.Itoa(k)
			if rangeOf(tag) == next {
				tags[i] = "{" + tag + "}"
				break
			}
		}
		next++
	}
	return tags
}

// keySlot is the Redis Cluster slot of a hash tag's content: CRC16
// (XMODEM) modulo 16384.
func keySlot(tag string) uint16 {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % clusterSlots
}

// partitioned reports whether the store has more than one partition.
func (s *Store) partitioned() bool { return len(s.parts) > 1 }

// partOf is the index of the partition that holds the record id.
func (s *Store) partOf(id string) int {
	if len(s.parts) == 1 {
		return 0
	}
	return store.Shard(id) % len(s.parts)
}

// at returns the keys of the partition that holds the record id.
func (s *Store) at(id string) keys { return s.parts[s.partOf(id)] }

// partitionsKey holds the store's number of partitions, in partition 0.
func (k keys) partitions() string { return k.base + "partitions" }

// settlePartitions reads the store's number of partitions, or writes it for
// a new store: want when the URL names one (0: it does not), else one on a
// single server and defaultClusterPartitions on a cluster. A store that has
// data but no count was written before partitions: it has one. A count
// that differs from the stored one stops the store from opening.
func (s *Store) settlePartitions(ctx context.Context, want int) error {
	stored, err := s.c.Get(ctx, s.k.partitions()).Int()
	if errors.Is(err, redis.Nil) {
		n := want
		if n == 0 {
			n = 1
			if _, ok := s.c.(*redis.ClusterClient); ok {
				n = defaultClusterPartitions
			}
		}
		// A store with data from before partitions is one partition.
		old, err := s.c.Exists(ctx, s.k.identity(), s.k.indexes(), s.k.queues(), s.k.legacyDue(), s.k.legacyEvents()).Result()
		if err != nil {
			return err
		}
		switch {
		case old > 0:
			n = 1
		case s.existing:
			return ErrNoStore
		}
		made, err := s.c.SetNX(ctx, s.k.partitions(), n, 0).Result()
		if err != nil {
			return err
		}
		s.created = made && old == 0
		stored, err = s.c.Get(ctx, s.k.partitions()).Int()
		if err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("read the number of partitions: %w", err)
	}
	if stored < 1 || stored > store.Shards {
		return fmt.Errorf("the store's number of partitions (%s) is %d: want 1 to %d", s.k.partitions(), stored, store.Shards)
	}
	if want != 0 && want != stored {
		return fmt.Errorf("partitions=%d, but this store was created with %d: the number of partitions is fixed when a store is created; "+
			"drop partitions= from the URL, or use a new prefix for a store of %d partitions", want, stored, want)
	}
	s.setPartitions(stored)
	return nil
}

// setPartitions makes the store one of n partitions.
func (s *Store) setPartitions(n int) {
	prefix := s.prefix
	s.parts = make([]keys, n)
	for i, tag := range partitionTags(n) {
		s.parts[i] = keys{base: prefix + ":" + tag + ":"}
	}
	s.k = s.parts[0]
}

// Partitions is the store's number of partitions.
func (s *Store) Partitions() int { return len(s.parts) }

// parsePartitions reads the URL's partitions=N (0 when absent).
func parsePartitions(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > store.Shards {
		return 0, fmt.Errorf("partitions=%q: want a number of partitions from 1 to %d", v, store.Shards)
	}
	return n, nil
}

// checkPartition refuses an event whose idempotency key, lanes or
// deliveries a partitioned store would keep in another partition than the
// event: ids in store.EventShard, and deliveries' made by
// store.NewDeliveryID, are where they belong.
func (s *Store) checkPartition(e store.Event, ds []store.Delivery) error {
	p := s.partOf(e.ID)
	if want := store.EventShard(e.Hook, e.IdempotencyKey, ds); want >= 0 && want%len(s.parts) != p {
		return fmt.Errorf("event id %s is not in the shard of its first delivery's lane, or of its idempotency key: want one in store.EventShard", e.ID)
	}
	return checkDeliveryParts(s, p, e.ID, ds)
}

// checkDeliveryParts refuses deliveries of event eventID outside its
// partition p.
func checkDeliveryParts(s *Store, p int, eventID string, ds []store.Delivery) error {
	for _, d := range ds {
		if s.partOf(d.ID) != p {
			return fmt.Errorf("delivery id %s is not in the shard of its event %s: want one that store.NewDeliveryID makes", d.ID, eventID)
		}
	}
	return nil
}
