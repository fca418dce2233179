package redisstore

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

// legacyLayout rewrites what s holds into the layout of earlier versions:
// one due index of every queued delivery, scored by its due time or, when
// leased, its lease's end; no per-action queues or lease sets.
func legacyLayout(t *testing.T, s *Store, actions ...string) {
	t.Helper()
	ctx := t.Context()
	for _, a := range actions {
		for _, key := range []string{s.k.queue(a), s.k.leases(a)} {
			zs, err := s.c.ZRangeWithScores(ctx, key, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(zs) > 0 {
				if err := s.c.ZAdd(ctx, s.k.legacyDue(), zs...).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.c.Del(ctx, key).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.c.Del(ctx, s.k.queues()).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeFromDueIndex: a store opened on data of earlier versions moves
// every queued delivery into its action's queue, a leased one into its
// lease set under its token, and drops the due index, so nothing
// acknowledged is stranded. Open does it at once, New on its first Lease.
func TestUpgradeFromDueIndex(t *testing.T) {
	for _, how := range []string{"Open", "New"} {
		t.Run(how, func(t *testing.T) {
			ctx := t.Context()
			c := redistest.Client(t)
			prefix := redistest.Prefix(t)
			old := New(c, prefix)
			defer old.Close()
			// More deliveries than one upgrade chunk holds.
			dues := make([]time.Time, upgradeChunk+100)
			for i := range dues {
				dues[i] = base.Add(time.Duration(i) * time.Millisecond)
			}
			crm := acceptFor(t, old, "crm", dues...)
			acceptFor(t, old, "erp", base, base.Add(time.Hour), base)
			held := leaseOne(t, old, base, "erp") // erp[0] or erp[2], until base+1m
			done := acceptFor(t, old, "ads", base)
			finishOne(t, old, leaseOne(t, old, base, "ads"), base, store.Outcome{Status: store.DeliverySucceeded})
			legacyLayout(t, old, "crm", "erp", "ads")
			// Entries of final and of missing deliveries are dropped.
			for _, id := range []string{done[0].ID, "dlv_gone"} {
				if err := c.ZAdd(ctx, old.k.legacyDue(), redis.Z{Score: float64(base.UnixMilli()), Member: id}).Err(); err != nil {
					t.Fatal(err)
				}
			}

			var s *Store
			if how == "Open" {
				var err error
				if s, err = Open(ctx, redistest.WithPrefix(redistest.URL(t), prefix)); err != nil {
					t.Fatal(err)
				}
				if n, _ := c.Exists(ctx, s.k.legacyDue()).Result(); n != 0 {
					t.Error("Open left the due index of earlier versions")
				}
			} else {
				s = New(c, prefix)
			}
			defer s.Close()

			now := base.Add(30 * time.Second)
			b := lease(t, s, store.LeaseRequest{Now: now, TTL: time.Minute,
				Actions: []store.ActionQuota{{Action: "crm", N: len(crm) + 10}, {Action: "erp", N: 10}, {Action: "ads", N: 10}}})
			if n, _ := c.Exists(ctx, s.k.legacyDue()).Result(); n != 0 {
				t.Error("the due index of earlier versions is still there")
			}
			got := map[string]int{}
			for _, l := range b.Leases {
				got[l.Delivery.Action]++
				if l.Delivery.ID == held.Delivery.ID {
					t.Errorf("%s was leased again while its lease from before the upgrade holds", l.Delivery.ID)
				}
			}
			if got["crm"] != len(crm) || got["erp"] != 1 || got["ads"] != 0 {
				t.Errorf("leased after the upgrade: %v, want all %d of crm and 1 of erp", got, len(crm))
			}
			if !b.NextDue.Equal(base.Add(time.Minute)) {
				t.Errorf("NextDue = %v, want %v: the end of the lease from before", b.NextDue, base.Add(time.Minute))
			}
			members, _ := c.SMembers(ctx, s.k.queues()).Result()
			if len(members) != 2 {
				t.Errorf("queued actions after the upgrade = %v, want crm and erp", members)
			}
			// The worker that held a lease before the upgrade still finishes it.
			errs, err := s.Finish(ctx, []store.Finish{{Lease: held, Attempt: store.Attempt{N: 1, StartedAt: base}, Outcome: store.Outcome{Status: store.DeliverySucceeded}}})
			if err != nil || errs[0] != nil {
				t.Errorf("Finish of a lease held before the upgrade = %v, %v", errs, err)
			}
			stats, err := s.QueueStats(ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range stats {
				if st.Action == "erp" && (st.Due != 0 || st.InFlight != 1 || st.Scheduled != 1) {
					t.Errorf("erp after the upgrade: %+v, want 1 in flight and 1 scheduled", st)
				}
			}
		})
	}
}

// TestUpgradeKeepsNewerEntries: a delivery queued by this version before
// the upgrade ran keeps its place; the stale entry of the due index does
// not move it back.
func TestUpgradeKeepsNewerEntries(t *testing.T) {
	ctx := t.Context()
	c := redistest.Client(t)
	s := New(c, redistest.Prefix(t))
	defer s.Close()
	ds := acceptFor(t, s, "crm", base.Add(time.Hour))
	if err := c.ZAdd(ctx, s.k.legacyDue(), redis.Z{Score: float64(base.UnixMilli()), Member: ds[0].ID}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	if got := score(t, s, s.k.queue("crm"), ds[0].ID); got != base.Add(time.Hour).UnixMilli() {
		t.Errorf("queue score after the upgrade = %d, want the newer %d", got, base.Add(time.Hour).UnixMilli())
	}
}

func TestUpgradeFailsWithoutRedis(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	s := New(c, "hr")
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = s.Lease(ctx, store.LeaseRequest{Now: base, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 1}}})
	if err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Lease without Redis = %v, want a connection error", err)
	}
	if s.isUpgraded.Load() {
		t.Error("a failed upgrade counts as done")
	}
}
