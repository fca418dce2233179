package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

func TestShardHints(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	a := store.NewEventID("orders", "key-1", now)
	b := store.NewEventID("orders", "key-1", now.Add(time.Second))
	if a == b || store.Shard(a) != store.Shard(b) {
		t.Fatalf("two arrivals of one key: ids %s, %s with shards %d, %d; want distinct ids in one shard", a, b, store.Shard(a), store.Shard(b))
	}
	if got, want := store.Shard(a), store.KeyShard("orders", "key-1"); got != want {
		t.Fatalf("Shard(%s) = %d, want KeyShard = %d", a, got, want)
	}
	if err := store.CheckEventID(store.Event{ID: a, ReceivedAt: now}); err != nil {
		t.Fatalf("CheckEventID(%s): %v", a, err)
	}
	d := store.NewDeliveryID(a, now)
	if !strings.HasPrefix(d, "dlv_") || store.Shard(d) != store.Shard(a) {
		t.Fatalf("NewDeliveryID(%s) = %s (shard %d), want a dlv_ id in shard %d", a, d, store.Shard(d), store.Shard(a))
	}
	// Keys spread: 4096 keys over 1024 shards leave few shards empty and
	// none holding many.
	counts := make([]int, store.Shards)
	for i := range 4096 {
		counts[store.KeyShard("orders", "key-"+string(rune('a'+i%26))+strings.Repeat("x", i/26))]++
	}
	most, empty := 0, 0
	for _, n := range counts {
		most = max(most, n)
		if n == 0 {
			empty++
		}
	}
	if most > 16 || empty > 100 {
		t.Fatalf("4096 keys over %d shards: the fullest holds %d, %d are empty; want a spread", store.Shards, most, empty)
	}
	if store.KeyShard("a", "bc") == store.KeyShard("ab", "c") && store.KeyShard("x", "yz") == store.KeyShard("xy", "z") {
		t.Fatal("hook and key run together: want them kept apart in the hash")
	}
}
