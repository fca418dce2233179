package redisstore_test

import (
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
)

// TestMoveToCluster moves a store from one Redis server to a Redis Cluster
// the way the README says, with redis-cli --cluster import, and finds
// everything there: events, deliveries and attempts, the listings, the
// queues, live idempotency keys with their time to live, API keys and the
// store's identity.
func TestMoveToCluster(t *testing.T) {
	ctx := t.Context()
	clusterURL := redistest.ClusterURL(t)
	prefix := redistest.ClusterPrefix(t)
	src := redistest.Server(t)
	old, err := redisstore.Open(ctx, redistest.WithPrefix(src, prefix))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Truncate(time.Millisecond)
	var events []store.Event
	for i := range 30 {
		e := store.Event{ID: store.NewID("evt", at.Add(time.Duration(i)*time.Millisecond)), Hook: "orders",
			ReceivedAt: at.Add(time.Duration(i) * time.Millisecond), IdempotencyKey: "key-" + string(rune('a'+i)),
			Body: []byte(`{"order":` + strings.Repeat("1", i+1) + `}`)}
		d := store.Delivery{ID: store.NewID("dlv", e.ReceivedAt), Rule: "r", Action: "crm", NextAttemptAt: e.ReceivedAt}
		if _, err := old.Accept(ctx, store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	// A third of the deliveries are delivered before the move.
	b, err := old.Lease(ctx, store.LeaseRequest{Now: at.Add(time.Second), TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 10}}})
	if err != nil || len(b.Leases) != 10 {
		t.Fatalf("Lease = %d, %v", len(b.Leases), err)
	}
	var fs []store.Finish
	for _, l := range b.Leases {
		fs = append(fs, store.Finish{Lease: l, Attempt: store.Attempt{N: 1, StartedAt: at, StatusCode: 200},
			Outcome: store.Outcome{Status: store.DeliverySucceeded}})
	}
	if _, err := old.Finish(ctx, fs); err != nil {
		t.Fatal(err)
	}
	key := store.APIKey{ID: "key_1", Name: "ops", Prefix: "hrk_abc", Hash: strings.Repeat("ab", 32), Scopes: []string{"read"}, CreatedAt: at}
	if err := old.CreateKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := old.PutIdentity(ctx, "", store.Identity{ID: "sid_moved", CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	old.Close()

	// The move.
	su, _ := url.Parse(src)
	cu, _ := url.Parse(strings.Replace(clusterURL, "redis+cluster://", "redis://", 1))
	out, err := exec.Command("redis-cli", "--cluster", "import", cu.Host, "--cluster-from", su.Host, "--cluster-copy").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster import: %v\n%s", err, out)
	}

	moved, err := redisstore.Open(ctx, redistest.WithPrefix(clusterURL, prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer moved.Close()
	for _, e := range events {
		got, err := moved.Event(ctx, e.ID)
		if err != nil || string(got.Body) != string(e.Body) || got.IdempotencyKey != e.IdempotencyKey {
			t.Fatalf("Event %s after the move = %+v, %v", e.ID, got, err)
		}
	}
	evs, _, err := moved.ListEvents(ctx, store.EventFilter{Limit: 100})
	if err != nil || len(evs) != len(events) {
		t.Errorf("ListEvents after the move: %d events, %v; want %d", len(evs), err, len(events))
	}
	done, _, err := moved.ListDeliveries(ctx, store.DeliveryFilter{Status: store.DeliverySucceeded, Limit: 100})
	if err != nil || len(done) != 10 {
		t.Errorf("succeeded deliveries after the move: %d, %v; want 10", len(done), err)
	}
	if as, err := moved.Attempts(ctx, done[0].ID); err != nil || len(as) != 1 {
		t.Errorf("attempts after the move: %v, %v", as, err)
	}
	// The queues moved: the 20 left are leased from the cluster.
	b, err = moved.Lease(ctx, store.LeaseRequest{Now: at.Add(2 * time.Second), TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 100}}})
	if err != nil || len(b.Leases) != 20 {
		t.Errorf("Lease after the move = %d, %v; want the 20 not delivered", len(b.Leases), err)
	}
	// Idempotency keys moved with their time to live: a retry is a duplicate.
	retry := events[3]
	retry.ID = store.NewID("evt", at.Add(time.Minute))
	retry.ReceivedAt = at.Add(time.Minute)
	res, err := moved.Accept(ctx, store.Accept{Event: retry, KeyTTL: time.Hour})
	if err != nil || !res.Duplicate || res.EventID != events[3].ID {
		t.Errorf("a sender's retry after the move = %+v, %v; want a duplicate of %s", res, err, events[3].ID)
	}
	opt, _ := redis.ParseClusterURL(cu.String())
	cc := redis.NewClusterClient(opt)
	defer cc.Close()
	keys, err := cc.Keys(ctx, prefix+":{p}:idem:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("idempotency keys on the cluster: %v, %v", keys, err)
	}
	if ttl, err := cc.PTTL(ctx, keys[0]).Result(); err != nil || ttl <= 0 {
		t.Errorf("an idempotency key's time to live after the move = %v, %v", ttl, err)
	}
	if k, err := moved.KeyByHash(ctx, key.Hash); err != nil || k.ID != key.ID {
		t.Errorf("API key after the move = %+v, %v", k, err)
	}
	if id, err := moved.Identity(ctx); err != nil || id.ID != "sid_moved" {
		t.Errorf("store identity after the move = %+v, %v", id, err)
	}
}
