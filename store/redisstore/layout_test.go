package redisstore

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

// writeEarlierLayout stores e and ds as versions before the string layout
// did: the event as a hash, its deliveries' ids in a list, every record in
// the indexes of all records, of its hook, of its action and of its
// status, and each delivery hash holding its own id.
func writeEarlierLayout(t *testing.T, s *Store, e store.Event, ds []store.Delivery) {
	t.Helper()
	ctx := t.Context()
	js := func(v any, empty bool) string {
		if empty {
			return ""
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ekey := s.k.event(e.ID)
	p := s.c.TxPipeline()
	p.HSet(ctx, ekey, "id", e.ID, "hook", e.Hook, "recv", ms(e.ReceivedAt), "ikey", e.IdempotencyKey,
		"hdr", js(e.Headers, len(e.Headers) == 0), "qry", js(e.Query, len(e.Query) == 0), "body", e.Body,
		"status", string(e.Status), "rules", js(e.MatchedRules, len(e.MatchedRules) == 0))
	for _, k := range []string{"idx:evt", "idx:evt:hook:" + e.Hook, "idx:evt:status:" + string(e.Status)} {
		p.ZAdd(ctx, s.k.base+k, redis.Z{Member: e.ID})
	}
	for _, d := range ds {
		p.RPush(ctx, ekey+":dlvs", d.ID)
		fields := append([]any{"id", d.ID}, deliveryFields(d)...)
		p.HSet(ctx, s.k.delivery(d.ID), fields...)
		for _, k := range []string{"idx:dlv", "idx:dlv:hook:" + d.Hook, "idx:dlv:action:" + d.Action, "idx:dlv:status:" + string(d.Status)} {
			p.ZAdd(ctx, s.k.base+k, redis.Z{Member: d.ID})
		}
		if d.Status == store.DeliveryPending || d.Status == store.DeliveryRetrying {
			p.ZAdd(ctx, s.k.queue(d.Action), redis.Z{Score: float64(d.NextAttemptAt.UnixMilli()), Member: d.ID})
			p.SAdd(ctx, s.k.queues(), d.Action)
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeFromEventHashes: a store written in the earlier layout, with
// more events than one upgrade chunk holds, reads back the same after the
// upgrade, record for record, through every reader: Event, Deliveries,
// the listings and their filters, Lease and Prune; and the earlier
// indexes are gone.
func TestUpgradeFromEventHashes(t *testing.T) {
	ctx := t.Context()
	c := redistest.Client(t)
	prefix := redistest.Prefix(t)
	writer := New(c, prefix)
	defer writer.Close()

	var (
		events []store.Event
		dlvs   = map[string][]store.Delivery{}
	)
	statuses := []store.DeliveryStatus{store.DeliveryPending, store.DeliverySucceeded, store.DeliveryDead, store.DeliveryRetrying}
	for i := range upgradeChunk + 40 {
		at := base.Add(time.Duration(i) * time.Second)
		e := store.Event{ID: store.NewID("evt", at), Hook: []string{"orders", "contacts"}[i%2], ReceivedAt: at,
			IdempotencyKey: "key/" + strconv.Itoa(i) + "\"quoted\"", Status: store.EventIgnored,
			Headers: map[string]string{"content-type": "application/json", "x-n": strconv.Itoa(i)},
			Body:    fmt.Appendf(nil, "{\"n\":%d}\n\x00\xff|line\nDfake", i)}
		if i%3 == 0 {
			e.Query = map[string]string{"q": "a b"}
		}
		var ds []store.Delivery
		if i%4 != 3 {
			e.Status = store.EventAccepted
			e.MatchedRules = []string{"r1", "r/2"}
			for j, a := range []string{"crm", "erp"}[:1+i%2] {
				d := store.Delivery{ID: store.NewID("dlv", at), EventID: e.ID, Hook: e.Hook, Rule: "r1", Action: a,
					Status: statuses[(i+j)%4], NextAttemptAt: at, CreatedAt: at, UpdatedAt: at}
				if d.Status != store.DeliveryPending {
					d.Attempts, d.LastError = 1, "HTTP 500"
				}
				if d.Status == store.DeliverySucceeded || d.Status == store.DeliveryDead {
					d.NextAttemptAt = time.Time{}
				}
				ds = append(ds, d)
			}
		}
		writeEarlierLayout(t, writer, e, ds)
		events = append(events, e)
		dlvs[e.ID] = ds
	}

	s, err := Open(ctx, redistest.URL(t)+"?prefix="+prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range []string{"idx:evt", "idx:dlv", "idx:evt:hook:orders", "idx:evt:status:accepted", "idx:dlv:status:dead",
		"idx:dlv:action:crm", "idx:dlv:hook:contacts"} {
		if n, _ := c.Exists(ctx, s.k.base+k).Result(); n != 0 {
			t.Errorf("the earlier index %s is still there", k)
		}
	}
	for _, e := range events {
		got, err := s.Event(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(e, got); diff != "" {
			t.Fatalf("event %s after the upgrade (-want +got):\n%s", e.ID, diff)
		}
		gotDs, err := s.Deliveries(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(dlvs[e.ID], gotDs, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("deliveries of %s after the upgrade (-want +got):\n%s", e.ID, diff)
		}
	}

	// Listings: every filter finds what it did.
	newestFirst := slices.Clone(events)
	slices.Reverse(newestFirst)
	for _, f := range []store.EventFilter{{}, {Hook: "orders"}, {Status: store.EventIgnored}, {Hook: "contacts", Status: store.EventAccepted},
		{Since: base.Add(100 * time.Second), Until: base.Add(200 * time.Second)}} {
		var want []string
		for _, e := range newestFirst {
			if (f.Hook == "" || e.Hook == f.Hook) && (f.Status == "" || e.Status == f.Status) &&
				(f.Since.IsZero() || !e.ReceivedAt.Before(f.Since)) && (f.Until.IsZero() || e.ReceivedAt.Before(f.Until)) {
				want = append(want, e.ID)
			}
		}
		f.Limit = 1000
		got := listedEvents(t, s, f)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListEvents(%+v) after the upgrade (-want +got):\n%s", f, diff)
		}
	}
	for _, f := range []store.DeliveryFilter{{}, {Status: store.DeliveryDead}, {Status: store.DeliveryPending, Action: "crm"},
		{Status: store.DeliveryRetrying}, {Status: store.DeliverySucceeded, Hook: "contacts"}, {Action: "erp"}} {
		var want []string
		for _, e := range newestFirst {
			ds := slices.Clone(dlvs[e.ID])
			slices.SortFunc(ds, func(a, b store.Delivery) int { return strings.Compare(b.ID, a.ID) })
			for _, d := range ds {
				if (f.Hook == "" || d.Hook == f.Hook) && (f.Status == "" || d.Status == f.Status) && (f.Action == "" || d.Action == f.Action) {
					want = append(want, d.ID)
				}
			}
		}
		f.Limit = 1000
		got, _ := listedDeliveries(t, s, f)
		slices.SortFunc(want, func(a, b string) int { return strings.Compare(b, a) })
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListDeliveries(%+v) after the upgrade (-want +got):\n%s", f, diff)
		}
	}

	// The queued deliveries are leased with their events.
	far := base.Add(24 * time.Hour)
	b, err := s.Lease(ctx, store.LeaseRequest{Now: far, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 1000}}})
	if err != nil {
		t.Fatal(err)
	}
	queued := 0
	for _, e := range events {
		for _, d := range dlvs[e.ID] {
			if d.Action == "crm" && (d.Status == store.DeliveryPending || d.Status == store.DeliveryRetrying) {
				queued++
			}
		}
	}
	if len(b.Leases) != queued {
		t.Fatalf("leased %d deliveries, want %d", len(b.Leases), queued)
	}
	for _, l := range b.Leases {
		if l.Event.ID != l.Delivery.EventID || len(l.Event.Body) == 0 {
			t.Fatalf("lease of %s came with event %q and a body of %d bytes", l.Delivery.ID, l.Event.ID, len(l.Event.Body))
		}
	}
}

// deliveryFields is d's hash, minus lease and token, as field/value
// arguments, as earlier versions wrote it: every field, at its zero value
// too.
func deliveryFields(d store.Delivery) []any {
	return []any{"evt", d.EventID, "hook", d.Hook, "rule", d.Rule, "action", d.Action,
		"status", string(d.Status), "due", ms(d.NextAttemptAt), "created", ms(d.CreatedAt),
		"n", d.Attempts, "err", d.LastError, "updated", ms(d.UpdatedAt), "lane", d.Lane}
}

// TestOnlineReplicas counts the replicas INFO replication lists as
// online, and nothing else that starts with "slave".
func TestOnlineReplicas(t *testing.T) {
	master := "# Replication\r\nrole:master\r\nconnected_slaves:3\r\n" +
		"slave0:ip=127.0.0.1,port=30004,state=online,offset=1234,lag=0\r\n" +
		"slave1:ip=127.0.0.1,port=30005,state=wait_bgsave,offset=0,lag=0\r\n" +
		"slave2:ip=127.0.0.1,port=30006,state=online,offset=1234,lag=1\r\n" +
		"master_failover_state:no-failover\r\nmaster_repl_offset:1234\r\n"
	if n := onlineReplicas(master); n != 2 {
		t.Errorf("onlineReplicas(master) = %d, want 2", n)
	}
	replica := "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nslave_repl_offset:1234\r\nslave_read_only:1\r\n" +
		"slave_priority:100\r\nconnected_slaves:0\r\n"
	if n := onlineReplicas(replica); n != 0 {
		t.Errorf("onlineReplicas(replica) = %d, want 0", n)
	}
}
