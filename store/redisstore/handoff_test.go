package redisstore

import (
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

// TestHandsOff: a store of one partition takes offers while its accepts
// run as scripts, not while they come in batches that a transaction
// would write; a partitioned store takes them while fewer accepts than a
// batch wait or run, whose accepts are scripts anyway.
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
	if p.TakeHandOffs(); !p.HandsOff() || p.scriptAccepts.Load() {
		t.Error("an idle partitioned store takes no offers, or changed its way of accepting for a relay")
	}
	p.accepting.Add(minPlainBatch)
	if p.HandsOff() {
		t.Errorf("with %d accepts waiting a partitioned store takes offers, each a round trip more", minPlainBatch)
	}
	p.accepting.Add(-minPlainBatch)
}

// TestReserveOnlyWhatIsHandedOff: on a partitioned store the cap set
// holds the token of each delivery handed off until its lease ends
// (Finish), not those a duplicate reserved: the duplicate's deliveries
// were never stored.
func TestReserveOnlyWhatIsHandedOff(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, redistest.WithPrefix(redistest.URL(t), redistest.Prefix(t))+"&partitions=4")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	offered := func(at time.Time) store.Accept {
		e := store.Event{ID: store.NewEventID("h", "k1", at), Hook: "h", ReceivedAt: at, IdempotencyKey: "k1", Body: []byte(`{}`)}
		return store.Accept{Event: e, KeyTTL: time.Hour, Deliveries: []store.Delivery{{ID: store.NewDeliveryID(e.ID, at), EventID: e.ID,
			Hook: "h", Rule: "r", Action: "a", Status: store.DeliveryPending, NextAttemptAt: at, CreatedAt: at, UpdatedAt: at}},
			HandOff: &store.HandOff{Now: at, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "a", N: 1, Max: 4}}}}
	}
	capped := func() []string {
		t.Helper()
		m, err := s.c.ZRange(ctx, s.k.capSet("a"), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	first, err := s.Accept(ctx, offered(now))
	if err != nil || len(first.Leases) != 1 {
		t.Fatalf("Accept = %+v, %v; want its delivery handed off", first, err)
	}
	if got := capped(); len(got) != 1 || got[0] != first.Leases[0].Token {
		t.Fatalf("cap set %v, want the hand-off's token %s", got, first.Leases[0].Token)
	}
	dup, err := s.Accept(ctx, offered(now.Add(time.Second)))
	if err != nil || !dup.Duplicate || len(dup.Leases) != 0 {
		t.Fatalf("Accept again = %+v, %v; want a duplicate, nothing handed off", dup, err)
	}
	if got := capped(); len(got) != 1 || got[0] != first.Leases[0].Token {
		t.Errorf("after a duplicate the cap set holds %v, want only %s", got, first.Leases[0].Token)
	}
	f := store.Finish{Lease: first.Leases[0], Attempt: store.Attempt{DeliveryID: first.Leases[0].Delivery.ID, N: 1, StartedAt: now, StatusCode: 200,
		Outcome: store.DeliverySucceeded}, Outcome: store.Outcome{Status: store.DeliverySucceeded, Reason: store.ReasonSucceeded}}
	if errs, err := s.Finish(ctx, []store.Finish{f}); err != nil || errs[0] != nil {
		t.Fatalf("Finish = %v, %v", errs, err)
	}
	if got := capped(); len(got) != 0 {
		t.Errorf("after Finish the cap set holds %v, want nothing", got)
	}
}
