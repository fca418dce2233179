package redisstore

import (
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

// TestHandsOff: a store of one partition takes offers while its accepts
// run as scripts, not while they come in batches that a transaction
// would write; a partitioned store takes none, and an offer made to it
// anyway hands nothing off: the delivery is queued.
func TestHandsOff(t *testing.T) {
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	if !s.HandsOff() {
		t.Error("an idle store of one partition takes no offers")
	}
	s.accepting.Add(minPlainBatch)
	if s.HandsOff() {
		t.Errorf("with %d accepts waiting the store takes offers, which would turn their transaction into a script", minPlainBatch)
	}
	s.scriptAccepts.Store(true)
	if !s.HandsOff() {
		t.Error("a store whose accepts are all scripts takes no offers under load")
	}
	s.accepting.Add(-minPlainBatch)

	p, err := Open(t.Context(), redistest.WithPrefix(redistest.URL(t), redistest.Prefix(t))+"&partitions=4")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.TakeHandOffs(); p.HandsOff() || p.scriptAccepts.Load() {
		t.Error("a partitioned store takes offers, or changed its way of accepting for a relay")
	}
	now := time.Now()
	e := store.Event{ID: store.NewEventID("h", "k1", now), Hook: "h", ReceivedAt: now, IdempotencyKey: "k1", Body: []byte(`{}`)}
	a := store.Accept{Event: e, KeyTTL: time.Hour, Deliveries: []store.Delivery{{ID: store.NewDeliveryID(e.ID, now), EventID: e.ID,
		Hook: "h", Rule: "r", Action: "a", Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}}}
	a.HandOff = &store.HandOff{Now: now, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "a", N: 1}}}
	got, err := p.Accept(t.Context(), a)
	if err != nil || len(got.Leases) != 0 {
		t.Fatalf("Accept on a partitioned store = %+v, %v; want it stored, nothing handed off", got, err)
	}
	b, err := p.Lease(t.Context(), store.LeaseRequest{Now: now, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "a", N: 10}}})
	if err != nil || len(b.Leases) != 1 || b.Leases[0].Delivery.ID != a.Deliveries[0].ID {
		t.Fatalf("Lease = %+v, %v; want the delivery offered, queued", b, err)
	}
}
