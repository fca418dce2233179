package redisstore

import (
	"errors"
	"slices"
	"strconv"
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
	if _, err := s.Accept(t.Context(), store.Accept{Event: stray, KeyTTL: time.Hour}); err == nil || !strings.Contains(err.Error(), "or of its idempotency key") {
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

// openParts opens a store of n partitions on the test Redis under a prefix
// of the test's own.
func openParts(t *testing.T, prefix string, n int) *Store {
	t.Helper()
	s, err := Open(t.Context(), redistest.WithPrefix(redistest.URL(t), prefix)+"&partitions="+strconv.Itoa(n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestPartitionedListingPages: pages merged from every partition, with a
// scan budget so small that partitions stop early, list every record of
// the filter once, newest first, whatever the page size.
func TestPartitionedListingPages(t *testing.T) {
	s := openParts(t, redistest.Prefix(t), 8)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var want []string
	for i := range 240 {
		at := base.Add(time.Duration(i) * time.Millisecond)
		hook := []string{"orders", "contacts", "stock"}[i%3]
		key := "k" + strconv.Itoa(i)
		e := store.Event{ID: store.NewEventID(hook, key, at), Hook: hook, ReceivedAt: at, IdempotencyKey: key}
		var ds []store.Delivery
		if i%2 == 0 {
			ds = []store.Delivery{{ID: store.NewDeliveryID(e.ID, at), Rule: "r", Action: "crm", NextAttemptAt: at}}
		}
		if _, err := s.Accept(t.Context(), store.Accept{Event: e, Deliveries: ds, KeyTTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if hook == "orders" && len(ds) > 0 {
			want = append(want, e.ID)
		}
	}
	slices.Reverse(want)
	for _, budget := range []int{3, 40, defaultScanBudget} {
		for _, limit := range []int{1, 7, 100} {
			s.scanBudget = budget
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > 1000 {
					t.Fatalf("budget %d, limit %d: no end after 1000 pages", budget, limit)
				}
				evs, next, err := s.ListEvents(t.Context(), store.EventFilter{Hook: "orders", Status: store.EventAccepted, Limit: limit, Cursor: cursor})
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) > limit {
					t.Fatalf("budget %d, limit %d: a page of %d", budget, limit, len(evs))
				}
				for _, e := range evs {
					got = append(got, e.ID)
				}
				if next == "" {
					break
				}
				cursor = next
			}
			if !slices.Equal(got, want) {
				t.Errorf("budget %d, limit %d: listed %d events, want the %d of the filter once each, newest first", budget, limit, len(got), len(want))
			}
		}
	}
}

// TestPartitionedCapAcrossProcesses: an action's cap on live leases holds
// across partitions and across processes, and a finished or released
// lease frees its place at once.
func TestPartitionedCapAcrossProcesses(t *testing.T) {
	prefix := redistest.Prefix(t)
	a, b := openParts(t, prefix, 8), openParts(t, prefix, 8)
	now := time.Now().Truncate(time.Millisecond)
	for i := range 40 {
		key := "k" + strconv.Itoa(i)
		e := store.Event{ID: store.NewEventID("h", key, now), Hook: "h", ReceivedAt: now, IdempotencyKey: key}
		d := store.Delivery{ID: store.NewDeliveryID(e.ID, now), Rule: "r", Action: "crm", NextAttemptAt: now}
		if _, err := a.Accept(t.Context(), store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	lease := func(s *Store, at time.Time) []store.Lease {
		t.Helper()
		got, err := s.Lease(t.Context(), store.LeaseRequest{Now: at, TTL: time.Minute,
			Actions: []store.ActionQuota{{Action: "crm", N: 10, Max: 3}}})
		if err != nil {
			t.Fatal(err)
		}
		return got.Leases
	}
	first, second := lease(a, now), lease(b, now)
	if len(first)+len(second) != 3 {
		t.Fatalf("two processes leased %d and %d with a cap of 3, want 3 in all", len(first), len(second))
	}
	held := append(first, second...)
	// The cap set holds the live leases' tokens, and nothing else: no
	// placeholder outlives the lease call that placed it.
	members, err := redistest.Client(t).ZRange(t.Context(), a.k.capSet("crm"), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	tokens := make([]string, len(held))
	for i, l := range held {
		tokens[i] = l.Token
	}
	slices.Sort(members)
	slices.Sort(tokens)
	if !slices.Equal(members, tokens) {
		t.Errorf("cap set = %v, want the live leases' tokens %v", members, tokens)
	}
	if more := lease(b, now.Add(time.Second)); len(more) != 0 {
		t.Fatalf("leased %d more while 3 are live", len(more))
	}
	errs, err := a.Finish(t.Context(), []store.Finish{{Lease: held[0], Attempt: store.Attempt{N: 1, StartedAt: now},
		Outcome: store.Outcome{Status: store.DeliverySucceeded}}})
	if err != nil || errs[0] != nil {
		t.Fatalf("Finish: %v, %v", err, errs)
	}
	if err := b.Release(t.Context(), now, held[1:2]); err != nil {
		t.Fatal(err)
	}
	if more := lease(b, now.Add(time.Second)); len(more) != 2 {
		t.Fatalf("leased %d after one lease finished and one was released, want 2", len(more))
	}
	// A lease whose worker died stops counting when it ends.
	if more := lease(a, now.Add(2*time.Minute)); len(more) != 3 {
		t.Fatalf("leased %d once every lease had ended, want 3", len(more))
	}
}
