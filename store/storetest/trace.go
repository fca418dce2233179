package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/store"
)

// What the suite holds a backend to about traces:
//
//   - An event's Trace reads back as accepted (nil as nil); a duplicate's
//     Trace is not stored.
//   - Each duplicate answered for an event is recorded on the original:
//     Duplicates.Count counts them all, Duplicates.Last holds the arrival
//     times (the duplicates' ReceivedAt) of the last
//     store.MaxDuplicateArrivals, oldest first. Recording them changes
//     nothing else of the original: its matched rules, deliveries and body.
//   - An attempt's Outcome, Reason and NextAttemptAt read back as finished.

var traceTests = []struct {
	name string
	run  func(t *testing.T, s store.Store)
}{
	{"EventTraceRoundTrip", testEventTrace},
	{"DuplicateArrivalsOnTheOriginal", testDuplicateArrivals},
	{"AttemptReasonsRoundTrip", testAttemptReasons},
}

func sampleTrace() *store.EventTrace {
	return &store.EventTrace{
		Verify:    store.VerifyTrace{Scheme: "stripe", Secret: 2, Signed: base.Add(-3 * time.Second)},
		KeySource: store.KeyFromBody,
		KeyError:  `body.id: "quoted", a\backslash and a newline` + "\n" + `and ünïcödé`,
		Rules: []store.RuleTrace{
			{Rule: "active-contact-updated", Result: store.RuleNotMatched, Fields: []store.FieldTrace{
				{Field: "body.event", Value: `"CONTACT_UPDATED"`, Wanted: []string{`== "CONTACT_UPDATED"`}},
				{Field: "body.data.status", Value: `"CANCELLED"`, Wanted: []string{`== "ACTIVE"`, `in ["A", "B"]`}},
				{Field: `headers["x-kind"]`, Absent: true},
			}},
			{Rule: "broken", Result: store.RuleError, Error: "body.n + 1: invalid operation", Fields: []store.FieldTrace{
				{Field: "body.n", Error: "not read: the evaluation budget was spent"},
			}},
			{Rule: "all", Result: store.RuleMatched},
		},
	}
}

func testEventTrace(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := newEvent("orders", "key-1", base)
	e.Trace = sampleTrace()
	acceptOne(t, s, e)
	got, err := s.Event(ctx, e.ID)
	if err != nil {
		t.Fatalf("Event: %v", err)
	}
	if diff := cmp.Diff(e.Trace, got.Trace, cmpOpts); diff != "" {
		t.Errorf("trace (-want +got):\n%s", diff)
	}

	// No trace stays none, and a duplicate's trace is not kept.
	plain := newEvent("orders", "key-2", base)
	acceptOne(t, s, plain)
	dup := newEvent("orders", "key-2", base.Add(time.Second))
	dup.Trace = sampleTrace()
	mustAccept(t, s, store.Accept{Event: dup, KeyTTL: time.Hour}, true)
	got, err = s.Event(ctx, plain.ID)
	if err != nil {
		t.Fatalf("Event: %v", err)
	}
	if got.Trace != nil {
		t.Errorf("trace of an event stored without one = %+v, want nil", got.Trace)
	}
}

func testDuplicateArrivals(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := newEvent("orders", "key-1", base)
	e.MatchedRules = []string{"to-crm", "to-erp"}
	d1 := newDelivery(e, "to-crm", "crm", base)
	d2 := newDelivery(e, "to-erp", "erp", base)
	d2.ID = deliveryID(e, base.Add(time.Millisecond))
	mustAccept(t, s, store.Accept{Event: e, Deliveries: []store.Delivery{d1, d2}, KeyTTL: time.Hour}, false)

	got, err := s.Event(ctx, e.ID)
	if err != nil {
		t.Fatalf("Event: %v", err)
	}
	if got.Duplicates.Count != 0 || len(got.Duplicates.Last) != 0 {
		t.Fatalf("duplicates before any = %+v, want none", got.Duplicates)
	}

	const n = store.MaxDuplicateArrivals + 3
	var arrivals []time.Time
	for i := range n {
		at := base.Add(time.Duration(i+1) * time.Second)
		dup := newEvent("orders", "key-1", at)
		res := mustAccept(t, s, store.Accept{Event: dup, Deliveries: []store.Delivery{newDelivery(dup, "to-crm", "crm", at)}, KeyTTL: time.Hour}, true)
		if res.EventID != e.ID {
			t.Fatalf("duplicate %d answered as a duplicate of %s, want %s", i+1, res.EventID, e.ID)
		}
		if _, err := s.Event(ctx, dup.ID); err == nil {
			t.Errorf("duplicate %s was stored", dup.ID)
		}
		arrivals = append(arrivals, at)
		if i == 0 {
			got, err := s.Event(ctx, e.ID)
			if err != nil {
				t.Fatalf("Event: %v", err)
			}
			want := store.Duplicates{Count: 1, Last: arrivals}
			if diff := cmp.Diff(want, got.Duplicates, cmpOpts); diff != "" {
				t.Errorf("duplicates after one (-want +got):\n%s", diff)
			}
		}
	}

	got, err = s.Event(ctx, e.ID)
	if err != nil {
		t.Fatalf("Event: %v", err)
	}
	want := store.Duplicates{Count: n, Last: arrivals[n-store.MaxDuplicateArrivals:]}
	if diff := cmp.Diff(want, got.Duplicates, cmpOpts); diff != "" {
		t.Errorf("duplicates (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(e.MatchedRules, got.MatchedRules); diff != "" {
		t.Errorf("matched rules changed (-want +got):\n%s", diff)
	}
	if string(got.Body) != string(e.Body) || got.IdempotencyKey != e.IdempotencyKey {
		t.Errorf("event changed: body %q key %q", got.Body, got.IdempotencyKey)
	}
	ds, err := s.Deliveries(ctx, e.ID)
	if err != nil {
		t.Fatalf("Deliveries: %v", err)
	}
	if ids := idsOf(ds); len(ids) != 2 || ids[0] != d1.ID || ids[1] != d2.ID {
		t.Errorf("deliveries = %v, want [%s %s]", ids, d1.ID, d2.ID)
	}
	// Its deliveries are still leased and finished as before.
	ls := mustLease(t, s, base, 10, time.Minute)
	if len(ls) != 2 {
		t.Fatalf("leased %v, want both deliveries", leasedIDs(ls))
	}
	for _, l := range ls {
		if l.Event.ID != e.ID || string(l.Event.Body) != string(e.Body) {
			t.Errorf("lease of %s carries event %s %q", l.Delivery.ID, l.Event.ID, l.Event.Body)
		}
		if err := finishOne(ctx, s, l, attemptOf(l, base, 200, ""), store.Outcome{Status: store.DeliverySucceeded}); err != nil {
			t.Errorf("Finish: %v", err)
		}
	}
}

func testAttemptReasons(t *testing.T, s store.Store) {
	ctx := t.Context()
	d := acceptOne(t, s, newEvent("orders", "key-1", base))
	l := mustLeaseOne(t, s, base, time.Minute, d.ID)
	next := base.Add(90 * time.Second)
	failed := attemptOf(l, base, 500, "receiver answered 500")
	failed.Outcome, failed.Reason, failed.NextAttemptAt = store.DeliveryRetrying, store.ReasonRetry, next
	if err := finishOne(ctx, s, l, failed, store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: next, Error: failed.Error, Reason: store.ReasonRetry}); err != nil {
		t.Fatalf("Finish 1: %v", err)
	}
	l = mustLeaseOne(t, s, next, time.Minute, d.ID)
	gone := attemptOf(l, next, 410, "receiver answered 410")
	gone.Outcome, gone.Reason = store.DeliveryDead, store.ReasonGone
	if err := finishOne(ctx, s, l, gone, store.Outcome{Status: store.DeliveryDead, Error: gone.Error, Reason: store.ReasonGone}); err != nil {
		t.Fatalf("Finish 2: %v", err)
	}
	as := mustAttempts(t, s, d.ID)
	if diff := cmp.Diff([]store.Attempt{failed, gone}, as, cmpOpts); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
}
