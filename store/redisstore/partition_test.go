package redisstore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

// TestPartitionTags: partition 0 keeps the tag every key had before
// partitions; the others land one in each equal run of slots, so that the
// masters of a cluster made by redis-cli --cluster create hold about as
// many partitions each.
func TestPartitionTags(t *testing.T) {
	for _, n := range []int{1, 2, 3, 16, 64, store.Shards} {
		tags := partitionTags(n)
		if len(tags) != n || tags[0] != "{p}" {
			t.Fatalf("partitionTags(%d) = %d tags starting %q, want %d starting {p}", n, len(tags), tags[0], n)
		}
		ranges := map[int]string{}
		for _, tag := range tags {
			r := int(keySlot(strings.Trim(tag, "{}"))) * n / clusterSlots
			if other, ok := ranges[r]; ok {
				t.Fatalf("partitionTags(%d): %s and %s share slot range %d", n, other, tag, r)
			}
			ranges[r] = tag
		}
	}
}

// TestKeySlot: the slots computed here are Redis Cluster's own.
func TestKeySlot(t *testing.T) {
	c := redistest.ClusterClient(t)
	for _, tag := range append(partitionTags(16), "p", "", "123456789", "a much longer hash tag than any partition has") {
		want, err := c.ClusterKeySlot(t.Context(), tag).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := keySlot(strings.Trim(tag, "{}")); int64(got) != want {
			t.Errorf("keySlot(%q) = %d, CLUSTER KEYSLOT says %d", tag, got, want)
		}
	}
}

// TestPartitionsAreFixed: the number of partitions is chosen when a store
// is created and kept: a URL that names another stops Open; one that
// names none opens with the stored one; a store written before partitions
// has one.
func TestPartitionsAreFixed(t *testing.T) {
	url := redistest.URL(t)
	prefix := redistest.Prefix(t)
	open := func(query string) (*Store, error) {
		s, err := Open(t.Context(), redistest.WithPrefix(url, prefix)+query)
		if err == nil {
			t.Cleanup(func() { _ = s.Close() })
		}
		return s, err
	}
	s, err := open("")
	if err != nil {
		t.Fatal(err)
	}
	if s.Partitions() != 1 {
		t.Fatalf("a new store on one server has %d partitions, want 1", s.Partitions())
	}

	prefix = redistest.Prefix(t) + "x"
	if s, err = open("&partitions=4"); err != nil || s.Partitions() != 4 {
		t.Fatalf("Open with partitions=4 = %v, %v; want 4 partitions", s, err)
	}
	if s, err = open(""); err != nil || s.Partitions() != 4 {
		t.Fatalf("Open again without partitions= = %v, %v; want the stored 4", s, err)
	}
	_, err = open("&partitions=8")
	if err == nil || !strings.Contains(err.Error(), "partitions=8, but this store was created with 4") {
		t.Fatalf("Open with partitions=8 = %v, want it refused for the stored 4", err)
	}
	for _, bad := range []string{"0", "-1", "x", "1025"} {
		if _, err := open("&partitions=" + bad); err == nil || !strings.Contains(err.Error(), "want a number of partitions from 1 to 1024") {
			t.Errorf("Open with partitions=%s = %v, want it refused", bad, err)
		}
	}

	// A store of an earlier version: data, and no count.
	prefix = redistest.Prefix(t) + "y"
	old := New(redistest.Client(t), prefix)
	defer old.Close()
	now := time.Now()
	if _, err := old.Accept(t.Context(), store.Accept{Event: store.Event{ID: store.NewID("evt", now), Hook: "h", ReceivedAt: now}}); err != nil {
		t.Fatal(err)
	}
	if err := redistest.Client(t).Del(t.Context(), old.k.partitions()).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = open("&partitions=4")
	if err == nil || !strings.Contains(err.Error(), "created with 1") {
		t.Fatalf("Open of a store of one partition with partitions=4 = %v, want it refused", err)
	}
	if s, err = open(""); err != nil || s.Partitions() != 1 {
		t.Fatalf("Open of a store from before partitions = %v, %v; want 1 partition", s, err)
	}
}

// TestPartitionedAcceptRefusesStrayIDs: on a partitioned store, an event
// whose id is not in the shard of its idempotency key, or a delivery not
// in its event's shard, is refused and nothing is stored.
func TestPartitionedAcceptRefusesStrayIDs(t *testing.T) {
	s, err := Open(t.Context(), redistest.WithPrefix(redistest.URL(t), redistest.Prefix(t))+"&partitions=8")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	e := store.Event{ID: store.NewEventID("h", "k", now), Hook: "h", ReceivedAt: now, IdempotencyKey: "k"}
	stray := e
	stray.ID = store.InShard(e.ID, (store.Shard(e.ID)+1)%store.Shards)
	if _, err := s.Accept(t.Context(), store.Accept{Event: stray, KeyTTL: time.Hour}); err == nil || !strings.Contains(err.Error(), "not in the shard of its idempotency key") {
		t.Errorf("Accept of an event outside its key's shard = %v, want it refused", err)
	}
	d := store.Delivery{ID: store.InShard(store.NewID("dlv", now), (store.Shard(e.ID)+1)%store.Shards), Hook: "h", Rule: "r", Action: "a", NextAttemptAt: now}
	if _, err := s.Accept(t.Context(), store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}); err == nil || !strings.Contains(err.Error(), "not in the shard of its event") {
		t.Errorf("Accept of a delivery outside its event's shard = %v, want it refused", err)
	}
	for _, id := range []string{stray.ID, e.ID} {
		if _, err := s.Event(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Event(%s) after the refusals = %v, want ErrNotFound", id, err)
		}
	}
	d.ID = store.NewDeliveryID(e.ID, now)
	if _, err := s.Accept(t.Context(), store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}); err != nil {
		t.Fatalf("Accept with ids in place: %v", err)
	}
	if got, err := s.Delivery(t.Context(), d.ID); err != nil || got.EventID != e.ID {
		t.Errorf("Delivery(%s) = %+v, %v", d.ID, got, err)
	}
}
