package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hookrelay/hookrelay/store"
)

// The delivery engine's transitions: per-action leasing, renewal, batch
// finish, release, and the action state that gates leasing (pause and the
// circuit breaker).

var queueTests = []struct {
	name string
	run  func(t *testing.T, s store.Store)
}{
	{"LeaseIsPerAction", testLeasePerAction},
	{"LeaseCapsLiveLeases", testLeaseMax},
	{"LeaseCapSparesLeasesBeingRecorded", testLeaseRecording},
	{"LeaseRefusesBadRequests", testLeaseBadRequest},
	{"RenewKeepsTheLease", testRenew},
	{"FinishBatch", testFinishBatch},
	{"SuccessAfterLostLeaseCounts", testLostLeaseSuccess},
	{"FinishSentAgain", testFinishSentAgain},
	{"ReleaseMakesDueAtOnce", testRelease},
	{"ActionStateCompareAndSet", testActionStateCAS},
	{"PauseGatesLease", testPauseGate},
	{"BreakerGateLeasesOneProbe", testBreakerGate},
	{"QueueStats", testQueueStats},
}

// acceptFor accepts one event on hook "orders" with one delivery per due
// time, all for action, and returns the deliveries.
func acceptFor(t *testing.T, s store.Store, key, action string, dues ...time.Time) []store.Delivery {
	t.Helper()
	e := newEvent("orders", key, base)
	e.MatchedRules = []string{"rule"}
	var ds []store.Delivery
	for i, due := range dues {
		d := newDelivery(e, "rule", action, due)
		d.ID = deliveryID(e, base.Add(time.Duration(i)*time.Millisecond))
		ds = append(ds, d)
	}
	mustAccept(t, s, store.Accept{Event: e, Deliveries: ds, KeyTTL: time.Hour}, false)
	return ds
}

func sortedIDs(ls []store.Lease) []string { return cmpSorted(leasedIDs(ls)) }

func cmpSorted(ids []string) []string { return slices.Sorted(slices.Values(ids)) }

func idsOf(ds []store.Delivery) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return ids
}

func testLeasePerAction(t *testing.T, s store.Store) {
	// A long backlog of "slow", all due before the one "fast" delivery.
	var dues []time.Time
	for i := range 30 {
		dues = append(dues, base.Add(time.Duration(i)*time.Millisecond))
	}
	slow := acceptFor(t, s, "key-slow", "slow", dues...)
	fast := acceptFor(t, s, "key-fast", "fast", base.Add(time.Second))
	now := base.Add(time.Minute)

	b := lease(t, s, now, 5, time.Minute, "slow", "fast")
	want := cmpSorted(append(idsOf(slow[:5]), fast[0].ID))
	if diff := cmp.Diff(want, sortedIDs(b.Leases)); diff != "" {
		t.Fatalf("Lease of 5 per action (-want +got):\n%s", diff)
	}
	for _, l := range b.Leases {
		if l.Event.ID == "" || l.Event.Hook != "orders" {
			t.Errorf("lease of %s carries event %+v, want its event", l.Delivery.ID, l.Event)
		}
	}
	// An action asked for alone gets only its own; one not asked for
	// gets nothing; a quota of 0 leases nothing.
	if ls := mustLease(t, s, now, 10, time.Minute, "fast"); len(ls) != 0 {
		t.Errorf("Lease of fast after its only delivery was leased = %v, want nothing", leasedIDs(ls))
	}
	b, err := s.Lease(t.Context(), store.LeaseRequest{Now: now, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "slow", N: 0}, {Action: "unknown", N: 5}}})
	if err != nil {
		t.Fatalf("Lease with a zero quota: %v", err)
	}
	if len(b.Leases) != 0 {
		t.Errorf("Lease with a zero quota = %v, want nothing", leasedIDs(b.Leases))
	}
	// The earliest due first, within an action.
	ls := mustLease(t, s, now, 3, time.Minute, "slow")
	if diff := cmp.Diff(idsOf(slow[5:8]), leasedIDs(ls), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("second Lease of slow (-want +got):\n%s", diff)
	}
	// NextDue counts only the actions asked for: slow still has due work.
	b = lease(t, s, now, 1, time.Minute, "fast")
	if len(b.Leases) != 0 || !cmp.Equal(now.Add(time.Minute), b.NextDue, cmpOpts) {
		t.Errorf("Lease of fast alone = %v, NextDue %v; want nothing, due when its lease ends (%v)", leasedIDs(b.Leases), b.NextDue, now.Add(time.Minute))
	}
	b = lease(t, s, now, 0, time.Minute, "fast", "slow")
	if !b.NextDue.IsZero() {
		t.Errorf("Lease asking for nothing: NextDue %v, want zero", b.NextDue)
	}
	// Actions that never had a delivery, asked beside the others as a
	// relay asks every action of its config, lease nothing and move
	// nothing: the next of slow comes, and NextDue is its next one's due.
	b = lease(t, s, now, 1, time.Minute, "idle-1", "slow", "idle-2", "idle-3")
	if diff := cmp.Diff(idsOf(slow[8:9]), leasedIDs(b.Leases)); diff != "" {
		t.Errorf("Lease of slow among idle actions (-want +got):\n%s", diff)
	}
	if !cmp.Equal(dues[9], b.NextDue, cmpOpts) {
		t.Errorf("Lease of slow among idle actions: NextDue %v, want the due of its next delivery %v", b.NextDue, dues[9])
	}
	// An action whose only delivery is held, its lease ended, is not
	// idle: the delivery is leased again.
	later := now.Add(2 * time.Minute)
	b = lease(t, s, later, 1, time.Minute, "idle-1", "idle-2", "fast", "idle-3")
	if diff := cmp.Diff(idsOf(fast), leasedIDs(b.Leases)); diff != "" {
		t.Errorf("Lease of fast, its lease ended, among idle actions (-want +got):\n%s", diff)
	}
}

func testLeaseBadRequest(t *testing.T, s store.Store) {
	acceptFor(t, s, "key-1", "action", base)
	for _, r := range []store.LeaseRequest{
		{Now: base, TTL: 0, Actions: quotas(1, "action")},
		{Now: base, TTL: time.Minute, Actions: quotas(1, "action", "action")},
		{Now: base, TTL: time.Minute, Actions: quotas(1, "")},
	} {
		if b, err := s.Lease(t.Context(), r); err == nil {
			t.Errorf("Lease(%+v) = %v, want an error", r, leasedIDs(b.Leases))
		}
	}
	// A refused request leased nothing.
	if ls := mustLease(t, s, base, 1, time.Minute, "action"); len(ls) != 1 {
		t.Errorf("Lease after refused requests = %v, want the one delivery", leasedIDs(ls))
	}
}

func testRenew(t *testing.T, s store.Store) {
	const ttl = 30 * time.Second
	ds := acceptFor(t, s, "key-1", "action", base, base)
	ls := mustLease(t, s, base, 2, ttl, "action")
	if len(ls) != 2 {
		t.Fatalf("Lease = %v, want both", leasedIDs(ls))
	}
	// Renewed just before it ends, a lease holds past its first end.
	at := base.Add(ttl - time.Second)
	ends, err := s.Renew(t.Context(), at, ttl, ls)
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if diff := cmp.Diff([]time.Time{at.Add(ttl), at.Add(ttl)}, ends, cmpOpts); diff != "" {
		t.Fatalf("Renew ends (-want +got):\n%s", diff)
	}
	if got := mustDelivery(t, s, ds[0].ID).LeasedUntil; !cmp.Equal(at.Add(ttl), got, cmpOpts) {
		t.Errorf("LeasedUntil after Renew = %v, want %v", got, at.Add(ttl))
	}
	wantNothingDue(t, s, base.Add(ttl))
	wantNextDue(t, s, at.Add(ttl))

	// One finishes; the other's lease runs out and is taken over. Neither
	// can be renewed any more.
	if err := finishOne(t.Context(), s, ls[0], attemptOf(ls[0], base, 200, ""), store.Outcome{Status: store.DeliverySucceeded}); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	taken := mustLeaseOne(t, s, at.Add(ttl), ttl, ls[1].Delivery.ID)
	ends, err = s.Renew(t.Context(), at.Add(ttl), ttl, ls)
	if err != nil {
		t.Fatalf("Renew of lost leases: %v", err)
	}
	if len(ends) != 2 || !ends[0].IsZero() || !ends[1].IsZero() {
		t.Errorf("Renew of a finished and a taken-over lease = %v, want two zero times", ends)
	}
	// The new holder's lease is untouched by the failed renewal.
	if got := mustDelivery(t, s, taken.Delivery.ID).LeasedUntil; !cmp.Equal(taken.Until, got, cmpOpts) {
		t.Errorf("LeasedUntil after a lost Renew = %v, want the new lease's %v", got, taken.Until)
	}
	if ends, err := s.Renew(t.Context(), at, ttl, nil); err != nil || len(ends) != 0 {
		t.Errorf("Renew of nothing = %v, %v; want nothing", ends, err)
	}
}

func testFinishBatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	ds := acceptFor(t, s, "key-1", "action", base, base, base, base)
	ls := mustLease(t, s, base, 4, time.Minute, "action")
	if len(ls) != 4 {
		t.Fatalf("Lease = %v, want 4", leasedIDs(ls))
	}
	byID := map[string]store.Lease{}
	for _, l := range ls {
		byID[l.Delivery.ID] = l
	}
	ok := store.Outcome{Status: store.DeliverySucceeded}
	retry := store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: base.Add(time.Hour), Error: "HTTP 500"}
	dead := store.Outcome{Status: store.DeliveryDead, Error: "HTTP 410"}
	l0, l1, l2, l3 := byID[ds[0].ID], byID[ds[1].ID], byID[ds[2].ID], byID[ds[3].ID]
	stale := l3
	stale.Token = "not-the-token"
	unknown := l0
	unknown.Delivery.ID = store.NewID("dlv", base)
	noStart := attemptOf(l3, base, 200, "")
	noStart.StartedAt = time.Time{}

	fs := []store.Finish{
		{Lease: l0, Attempt: attemptOf(l0, base, 200, ""), Outcome: ok},
		{Lease: l1, Attempt: attemptOf(l1, base, 500, "HTTP 500"), Outcome: retry},
		{Lease: l2, Attempt: attemptOf(l2, base, 410, "HTTP 410"), Outcome: dead},
		{Lease: stale, Attempt: attemptOf(stale, base, 500, "HTTP 500"), Outcome: retry},
		{Lease: unknown, Attempt: attemptOf(unknown, base, 200, ""), Outcome: ok},
		{Lease: l3, Attempt: noStart, Outcome: ok},
		{Lease: l3, Attempt: attemptOf(l3, base, 200, ""), Outcome: store.Outcome{Status: "leased"}},
	}
	errs, err := s.Finish(ctx, fs)
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if len(errs) != len(fs) {
		t.Fatalf("Finish returned %d errors for %d items", len(errs), len(fs))
	}
	for i, want := range []error{nil, nil, nil, store.ErrLeaseLost, store.ErrNotFound} {
		if !errors.Is(errs[i], want) || (want == nil && errs[i] != nil) {
			t.Errorf("item %d: error %v, want %v", i, errs[i], want)
		}
	}
	for i := 5; i < 7; i++ {
		if errs[i] == nil || errors.Is(errs[i], store.ErrLeaseLost) || errors.Is(errs[i], store.ErrNotFound) {
			t.Errorf("item %d (invalid): error %v, want a validation error", i, errs[i])
		}
	}
	for _, c := range []struct {
		d        store.Delivery
		o        store.Outcome
		final    bool
		attempts int
	}{
		{ds[0], ok, true, 1}, {ds[1], retry, false, 1}, {ds[2], dead, true, 1},
	} {
		if diff := cmp.Diff(finishedAs(c.d, c.attempts, c.o), mustDelivery(t, s, c.d.ID), cmpOpts, ignoreAfterFinish(c.final)); diff != "" {
			t.Errorf("Delivery %s after Finish (-want +got):\n%s", c.d.ID, diff)
		}
	}
	// The stale lease's attempt is recorded; the invalid ones are not; the
	// delivery is still held by its lease.
	if as := mustAttempts(t, s, ds[3].ID); len(as) != 1 || as[0].StatusCode != 500 {
		t.Errorf("Attempts of the delivery finished with a stale token = %+v, want the one attempt", as)
	}
	got := mustDelivery(t, s, ds[3].ID)
	if got.Status != store.DeliveryPending || got.Attempts != 0 || !cmp.Equal(l3.Until, got.LeasedUntil, cmpOpts) {
		t.Errorf("Delivery after a stale Finish = %+v, want pending, 0 attempts, still leased", got)
	}
	if err := finishOne(ctx, s, l3, attemptOf(l3, base, 200, ""), ok); err != nil {
		t.Errorf("Finish with the live lease after a stale one: %v", err)
	}
	if errs, err := s.Finish(ctx, nil); err != nil || len(errs) != 0 {
		t.Errorf("Finish of nothing = %v, %v; want nothing", errs, err)
	}
	wantNextDue(t, s, retry.NextAttemptAt)
}

// testFinishSentAgain: the same Finish sent a second time (a client that
// sends a call again when its answer is late, a caller that retries) is
// answered as the first was and recorded once, for a retry as for a
// success; another attempt's outcome still finds the lease lost, and is
// recorded.
func testFinishSentAgain(t *testing.T, s store.Store) {
	ctx := t.Context()
	const ttl = 30 * time.Second
	d := acceptFor(t, s, "key-1", "action", base)[0]
	l := mustLeaseOne(t, s, base, ttl, d.ID)
	next := base.Add(time.Minute)
	retry := store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: next, Error: "HTTP 503", Reason: store.ReasonRetry}
	a := attemptOf(l, base, 503, "HTTP 503")
	for i := range 2 {
		if err := finishOne(ctx, s, l, a, retry); err != nil {
			t.Fatalf("Finish (retrying), sent %d times: %v, want it answered as the first", i+1, err)
		}
	}
	if got := mustDelivery(t, s, d.ID); got.Attempts != 1 || got.Status != store.DeliveryRetrying || !got.NextAttemptAt.Equal(next) {
		t.Errorf("after the same retry sent twice: %+v, want retrying at %v after 1 attempt", got, next)
	}
	if as := mustAttempts(t, s, d.ID); len(as) != 1 {
		t.Errorf("the same attempt sent twice is recorded %d times, want once", len(as))
	}

	l = mustLeaseOne(t, s, next, ttl, d.ID)
	ok := store.Outcome{Status: store.DeliverySucceeded, Reason: store.ReasonSucceeded}
	a = attemptOf(l, next, 200, "")
	for i := range 2 {
		if err := finishOne(ctx, s, l, a, ok); err != nil {
			t.Fatalf("Finish (succeeded), sent %d times: %v, want it answered as the first", i+1, err)
		}
	}
	other := a
	other.StartedAt = next.Add(time.Second)
	if err := finishOne(ctx, s, l, other, ok); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("Finish of another attempt: %v, want ErrLeaseLost", err)
	}
	if got := mustDelivery(t, s, d.ID); got.Attempts != 2 || got.Status != store.DeliverySucceeded {
		t.Errorf("after the success sent twice and another: %+v, want succeeded after 2 attempts", got)
	}
	if as := mustAttempts(t, s, d.ID); len(as) != 3 {
		t.Errorf("%d attempts recorded, want 3: the retry and the success once each, and the other", len(as))
	}
}

func testLostLeaseSuccess(t *testing.T, s store.Store) {
	ctx := t.Context()
	const ttl = 30 * time.Second
	ds := acceptFor(t, s, "key-1", "action", base)
	d := ds[0]
	slow := mustLeaseOne(t, s, base, ttl, d.ID)
	// The slow attempt outlived its lease; another worker took over.
	other := mustLeaseOne(t, s, base.Add(ttl), ttl, d.ID)

	// The slow attempt's 2xx still ends the delivery.
	ok := store.Outcome{Status: store.DeliverySucceeded}
	late := attemptOf(slow, base, 200, "")
	late.Duration = 40 * time.Second
	if err := finishOne(ctx, s, slow, late, ok); err != nil {
		t.Fatalf("Finish of a 2xx after the lease was lost: %v, want it applied", err)
	}
	if diff := cmp.Diff(finishedAs(d, 1, ok), mustDelivery(t, s, d.ID), cmpOpts, ignoreAfterFinish(true)); diff != "" {
		t.Errorf("Delivery after a late 2xx (-want +got):\n%s", diff)
	}
	// The other worker learns it lost the delivery, and its own outcome
	// changes nothing; a second 2xx is recorded but not counted.
	if ends, err := s.Renew(ctx, base.Add(ttl+time.Second), ttl, []store.Lease{other}); err != nil || len(ends) != 1 || !ends[0].IsZero() {
		t.Errorf("Renew of the other lease = %v, %v; want it lost", ends, err)
	}
	if err := finishOne(ctx, s, other, attemptOf(other, base.Add(ttl), 200, ""), ok); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("Finish of a second 2xx: %v, want ErrLeaseLost", err)
	}
	if got := mustDelivery(t, s, d.ID); got.Attempts != 1 || got.Status != store.DeliverySucceeded {
		t.Errorf("Delivery after a second 2xx = %+v, want succeeded after 1 attempt", got)
	}
	if as := mustAttempts(t, s, d.ID); len(as) != 2 {
		t.Errorf("%d attempts recorded, want 2", len(as))
	}
	wantNothingDue(t, s, base.Add(365*24*time.Hour))

	// A late 2xx also ends a delivery that another attempt made dead.
	d2 := acceptFor(t, s, "key-2", "action", base)[0]
	first := mustLeaseOne(t, s, base, ttl, d2.ID)
	second := mustLeaseOne(t, s, base.Add(ttl), ttl, d2.ID)
	if err := finishOne(ctx, s, second, attemptOf(second, base.Add(ttl), 410, "HTTP 410"), store.Outcome{Status: store.DeliveryDead, Error: "HTTP 410"}); err != nil {
		t.Fatalf("Finish (dead): %v", err)
	}
	if err := finishOne(ctx, s, first, attemptOf(first, base, 200, ""), ok); err != nil {
		t.Fatalf("Finish of a late 2xx on a dead delivery: %v", err)
	}
	if got := mustDelivery(t, s, d2.ID); got.Status != store.DeliverySucceeded || got.Attempts != 2 {
		t.Errorf("Delivery after a late 2xx on a dead one = %+v, want succeeded after 2 attempts", got)
	}
}

func testRelease(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const ttl = time.Hour
	ds := acceptFor(t, s, "key-1", "action", base, base)
	ls := mustLease(t, s, base, 2, ttl, "action")
	if len(ls) != 2 {
		t.Fatalf("Lease = %v, want both", leasedIDs(ls))
	}
	wake := s.Wake(ctx)
	at := base.Add(time.Second)
	if err := s.Release(ctx, at, ls[:1]); err != nil {
		t.Fatalf("Release: %v", err)
	}
	wantWake(t, wake, "Release")
	got := mustDelivery(t, s, ls[0].Delivery.ID)
	if got.Status != store.DeliveryPending || got.Attempts != 0 || !got.LeasedUntil.IsZero() {
		t.Errorf("Delivery after Release = %+v, want pending, not attempted, not leased", got)
	}
	if as := mustAttempts(t, s, ls[0].Delivery.ID); len(as) != 0 {
		t.Errorf("Release recorded attempts %+v, want none", as)
	}
	// Due at once, long before the lease would have ended.
	again := mustLeaseOne(t, s, at, ttl, ls[0].Delivery.ID)
	if again.Token == ls[0].Token {
		t.Errorf("the lease after Release kept the released token")
	}
	// The released lease is gone: its outcome changes nothing, and a
	// second Release of it does not touch the new holder.
	retry := store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: at, Error: "x"}
	if err := finishOne(ctx, s, ls[0], attemptOf(ls[0], base, 500, "x"), retry); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("Finish of a released lease: %v, want ErrLeaseLost", err)
	}
	if err := s.Release(ctx, at, ls[:1]); err != nil {
		t.Fatalf("Release of a lost lease: %v", err)
	}
	if got := mustDelivery(t, s, again.Delivery.ID); !cmp.Equal(again.Until, got.LeasedUntil, cmpOpts) {
		t.Errorf("LeasedUntil after releasing a stale lease = %v, want the live lease's %v", got.LeasedUntil, again.Until)
	}
	// The other lease was not released.
	wantNothingDue(t, s, at)
	if got := mustDelivery(t, s, ds[1].ID); got.Status != store.DeliveryPending {
		t.Errorf("other delivery %+v", got)
	}
	if err := s.Release(ctx, at, nil); err != nil {
		t.Errorf("Release of nothing: %v", err)
	}
}

func testActionStateCAS(t *testing.T, s store.Store) {
	ctx := t.Context()
	if sts, err := s.ActionStates(ctx); err != nil || len(sts) != 0 {
		t.Fatalf("ActionStates of a new store = %+v, %v; want none", sts, err)
	}
	st := store.ActionState{
		Action: "crm", Breaker: store.BreakerOpen, Failures: 10, Opens: 2,
		BlockedUntil: base.Add(time.Minute), ChangedAt: base, LastError: "HTTP 503",
	}
	got, err := s.PutActionState(ctx, st)
	if err != nil {
		t.Fatalf("PutActionState: %v", err)
	}
	if got.Version <= st.Version {
		t.Errorf("Version after a put = %d, want above %d", got.Version, st.Version)
	}
	want := st
	want.Version = got.Version
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("PutActionState (-want +got):\n%s", diff)
	}
	// A writer that read the old version loses.
	if _, err := s.PutActionState(ctx, store.ActionState{Action: "crm", Paused: true}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutActionState with a stale version: %v, want ErrConflict", err)
	}
	next := got
	next.Paused, next.Breaker, next.Failures, next.BlockedUntil, next.LastError = true, store.BreakerClosed, 0, time.Time{}, ""
	got2, err := s.PutActionState(ctx, next)
	if err != nil {
		t.Fatalf("PutActionState with the current version: %v", err)
	}
	if got2.Version <= got.Version {
		t.Errorf("Version went from %d to %d, want it to grow", got.Version, got2.Version)
	}
	other, err := s.PutActionState(ctx, store.ActionState{Action: "erp", ChangedAt: base})
	if err != nil {
		t.Fatalf("PutActionState of another action: %v", err)
	}
	sts, err := s.ActionStates(ctx)
	if err != nil {
		t.Fatalf("ActionStates: %v", err)
	}
	next.Version = got2.Version
	if diff := cmp.Diff([]store.ActionState{next, other}, sts, cmpOpts, cmpopts.SortSlices(func(a, b store.ActionState) bool { return a.Action < b.Action })); diff != "" {
		t.Errorf("ActionStates (-want +got):\n%s", diff)
	}
}

func putState(t *testing.T, s store.Store, st store.ActionState) store.ActionState {
	t.Helper()
	sts, err := s.ActionStates(t.Context())
	if err != nil {
		t.Fatalf("ActionStates: %v", err)
	}
	for _, cur := range sts {
		if cur.Action == st.Action {
			st.Version = cur.Version
		}
	}
	got, err := s.PutActionState(t.Context(), st)
	if err != nil {
		t.Fatalf("PutActionState(%+v): %v", st, err)
	}
	return got
}

func testPauseGate(t *testing.T, s store.Store) {
	crm := acceptFor(t, s, "key-1", "crm", base, base)
	erp := acceptFor(t, s, "key-2", "erp", base.Add(time.Second))
	putState(t, s, store.ActionState{Action: "crm", Paused: true, ChangedAt: base})

	now := base.Add(time.Minute)
	b := lease(t, s, now, 10, time.Minute, "crm", "erp")
	if diff := cmp.Diff(idsOf(erp), leasedIDs(b.Leases)); diff != "" {
		t.Fatalf("Lease with crm paused (-want +got):\n%s", diff)
	}
	// A paused action's due work does not make anything due.
	b = lease(t, s, now, 10, time.Minute, "crm")
	if len(b.Leases) != 0 || !b.NextDue.IsZero() {
		t.Errorf("Lease of the paused action = %v, NextDue %v; want nothing, zero", leasedIDs(b.Leases), b.NextDue)
	}
	putState(t, s, store.ActionState{Action: "crm", Paused: false, ChangedAt: now})
	ls := mustLease(t, s, now, 10, time.Minute, "crm")
	if diff := cmp.Diff(idsOf(crm), leasedIDs(ls), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("Lease after resume (-want +got):\n%s", diff)
	}
}

func testBreakerGate(t *testing.T, s store.Store) {
	const ttl, probe = 30 * time.Second, 2 * time.Minute
	ds := acceptFor(t, s, "key-1", "crm", base, base, base)
	open := base.Add(time.Minute)
	putState(t, s, store.ActionState{Action: "crm", Breaker: store.BreakerOpen, Failures: 10, Opens: 1, BlockedUntil: open, ChangedAt: base, LastError: "HTTP 503"})
	req := func(now time.Time) store.LeaseBatch {
		t.Helper()
		b, err := s.Lease(t.Context(), store.LeaseRequest{Now: now, TTL: ttl, Actions: []store.ActionQuota{{Action: "crm", N: 10, Probe: probe}}})
		if err != nil {
			t.Fatalf("Lease at %v: %v", now, err)
		}
		return b
	}
	b := req(open.Add(-time.Millisecond))
	if len(b.Leases) != 0 {
		t.Fatalf("Lease while open = %v, want nothing", leasedIDs(b.Leases))
	}
	if !cmp.Equal(open, b.NextDue, cmpOpts) {
		t.Errorf("NextDue while open = %v, want the end of the cool-down %v", b.NextDue, open)
	}
	// The cool-down is over: one probe, however many are due.
	b = req(open)
	if len(b.Leases) != 1 || b.Leases[0].Delivery.ID != ds[0].ID {
		t.Fatalf("Lease after the cool-down = %v, want one probe (%s)", leasedIDs(b.Leases), ds[0].ID)
	}
	sts, err := s.ActionStates(t.Context())
	if err != nil || len(sts) != 1 {
		t.Fatalf("ActionStates = %+v, %v", sts, err)
	}
	if sts[0].Breaker != store.BreakerHalfOpen || !cmp.Equal(open.Add(probe), sts[0].BlockedUntil, cmpOpts) || sts[0].Failures != 10 || sts[0].Opens != 1 {
		t.Errorf("state after the probe was leased = %+v, want half-open, blocked until %v, counts kept", sts[0], open.Add(probe))
	}
	// No second probe while the first may run, even after its lease.
	if b := req(open.Add(ttl)); len(b.Leases) != 0 {
		t.Errorf("Lease while a probe runs = %v, want nothing", leasedIDs(b.Leases))
	}
	// The probe holder vanished: after the hold, one more probe.
	b = req(open.Add(probe))
	if len(b.Leases) != 1 {
		t.Fatalf("Lease after the probe's hold = %v, want one more probe", leasedIDs(b.Leases))
	}
	// Closed again (by the relay, after a successful probe): all flow.
	sts, _ = s.ActionStates(t.Context())
	closed := sts[0]
	closed.Breaker, closed.Failures, closed.Opens, closed.BlockedUntil = store.BreakerClosed, 0, 0, time.Time{}
	if _, err := s.PutActionState(t.Context(), closed); err != nil {
		t.Fatalf("PutActionState (close): %v", err)
	}
	// Three were due at open+probe (the first probe's lease had run out)
	// and one went to the second probe: the other two flow now.
	if b := req(open.Add(probe)); len(b.Leases) != 2 {
		t.Errorf("Lease after close = %v, want the 2 deliveries left", leasedIDs(b.Leases))
	}
	if st, err := s.ActionStates(t.Context()); err != nil || st[0].Breaker != store.BreakerClosed {
		t.Errorf("state after close = %+v, %v; want closed (a lease does not change a closed breaker)", st, err)
	}
}

func testQueueStats(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := base.Add(time.Minute)
	crm := acceptFor(t, s, "key-1", "crm", base, base.Add(time.Second), base.Add(2*time.Second), now.Add(time.Hour))
	erp := acceptFor(t, s, "key-2", "erp", base.Add(3*time.Second), base.Add(4*time.Second))
	other := acceptFor(t, s, "key-3", "other", base)
	ok := store.Outcome{Status: store.DeliverySucceeded}

	// crm: its first delivery in flight, two due, one scheduled.
	if ls := mustLease(t, s, base, 10, time.Hour, "crm"); len(ls) != 1 || ls[0].Delivery.ID != crm[0].ID {
		t.Fatalf("Lease of crm at base = %v, want just %s", leasedIDs(ls), crm[0].ID)
	}
	// erp: one succeeded, one whose lease ran out at base+14s.
	ls := mustLease(t, s, base.Add(4*time.Second), 2, 10*time.Second, "erp")
	if len(ls) != 2 {
		t.Fatalf("Lease of erp = %v, want both", leasedIDs(ls))
	}
	for _, l := range ls {
		if l.Delivery.ID == erp[1].ID {
			if err := finishOne(ctx, s, l, attemptOf(l, base, 200, ""), ok); err != nil {
				t.Fatalf("Finish: %v", err)
			}
		}
	}
	// other: succeeded, so not listed.
	lo := mustLease(t, s, base, 1, time.Minute, "other")
	if len(lo) != 1 || lo[0].Delivery.ID != other[0].ID {
		t.Fatalf("Lease of other = %v", leasedIDs(lo))
	}
	if err := finishOne(ctx, s, lo[0], attemptOf(lo[0], base, 200, ""), ok); err != nil {
		t.Fatalf("Finish: %v", err)
	}

	got, err := s.QueueStats(ctx, now)
	if err != nil {
		t.Fatalf("QueueStats: %v", err)
	}
	want := []store.QueueStats{
		{Action: "crm", Due: 2, InFlight: 1, Scheduled: 1, OldestDue: base.Add(time.Second)},
		{Action: "erp", Due: 1, OldestDue: base.Add(14 * time.Second)},
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("QueueStats (-want +got):\n%s", diff)
	}
}

// testLeaseRecording: a caller's leases whose attempts have ended and
// whose outcomes it is recording (store.ActionQuota.Recording) do not count
// against the cap while they are live; one finished, one named with a
// token that is not its lease's, or one of another action counts as it
// would anyway.
func testLeaseRecording(t *testing.T, s store.Store) {
	const ttl = time.Minute
	acceptFor(t, s, "key-1", "crm", base, base, base, base, base, base, base)
	acceptFor(t, s, "key-2", "erp", base)
	req := func(n int, recording ...store.Lease) []store.Lease {
		t.Helper()
		refs := make([]store.LeaseRef, len(recording))
		for i, l := range recording {
			refs[i] = store.LeaseRef{DeliveryID: l.Delivery.ID, Token: l.Token}
		}
		b, err := s.Lease(t.Context(), store.LeaseRequest{Now: base, TTL: ttl,
			Actions: []store.ActionQuota{{Action: "crm", N: n, Max: 3, Recording: refs}}})
		if err != nil {
			t.Fatalf("Lease: %v", err)
		}
		return b.Leases
	}
	held := req(3)
	if len(held) != 3 {
		t.Fatalf("Lease under a cap of 3 = %d leases, want 3", len(held))
	}
	if ls := req(3); len(ls) != 0 {
		t.Fatalf("Lease at the cap = %v, want nothing", leasedIDs(ls))
	}
	erp := mustLease(t, s, base, 1, ttl, "erp")
	if len(erp) != 1 {
		t.Fatalf("Lease of erp = %d leases, want 1", len(erp))
	}
	wrong := held[2]
	wrong.Token += "x"
	// Two of the three are being recorded: two more fit. The wrong token
	// and the other action's lease change nothing.
	more := req(3, held[0], held[1], wrong, erp[0])
	if len(more) != 2 {
		t.Fatalf("Lease with two leases being recorded = %d leases, want 2", len(more))
	}
	// held[0]'s outcome is recorded: it is not live, so naming it frees
	// nothing more than its finish did.
	if err := finishOne(t.Context(), s, held[0], attemptOf(held[0], base, 200, ""), store.Outcome{Status: store.DeliverySucceeded}); err != nil {
		t.Fatal(err)
	}
	// Live now: held[1], held[2], more[0], more[1]; held[1] being recorded.
	if ls := req(3, held[0], held[1]); len(ls) != 0 {
		t.Fatalf("Lease with a finished lease named = %v, want nothing", leasedIDs(ls))
	}
	// All four live leases being recorded: the cap allows 3, and 2 are due.
	if ls := req(3, held[1], held[2], more[0], more[1]); len(ls) != 2 {
		t.Fatalf("Lease with every live lease being recorded = %d leases, want the 2 left", len(ls))
	}
}

func testLeaseMax(t *testing.T, s store.Store) {
	const ttl = time.Minute
	acceptFor(t, s, "key-1", "crm", base, base, base, base, base, base)
	req := func(now time.Time, n, maxLive int) []store.Lease {
		t.Helper()
		b, err := s.Lease(t.Context(), store.LeaseRequest{Now: now, TTL: ttl, Actions: []store.ActionQuota{{Action: "crm", N: n, Max: maxLive}}})
		if err != nil {
			t.Fatalf("Lease: %v", err)
		}
		return b.Leases
	}
	// Two workers with room for 3 each share a cap of 4 live leases.
	first := req(base, 3, 4)
	second := req(base, 3, 4)
	if len(first) != 3 || len(second) != 1 {
		t.Fatalf("two Leases under a cap of 4 got %d and %d, want 3 and 1", len(first), len(second))
	}
	if ls := req(base, 3, 4); len(ls) != 0 {
		t.Errorf("Lease at the cap = %v, want nothing", leasedIDs(ls))
	}
	// A finished attempt frees its place; a lease that ended unrenewed
	// is not live any more.
	l := first[0]
	if err := finishOne(t.Context(), s, l, attemptOf(l, base, 200, ""), store.Outcome{Status: store.DeliverySucceeded}); err != nil {
		t.Fatal(err)
	}
	if ls := req(base, 3, 4); len(ls) != 1 {
		t.Errorf("Lease after one finished = %d leases, want 1", len(ls))
	}
	// At ttl every lease given so far has ended: 1 is left due, and the
	// 4 expired leases are due again, so 4 fit under the cap.
	if ls := req(base.Add(ttl), 10, 4); len(ls) != 4 {
		t.Errorf("Lease after the leases ended = %d leases, want 4", len(ls))
	}
	// No cap: everything due.
	if ls := req(base.Add(2*ttl), 10, 0); len(ls) != 5 {
		t.Errorf("Lease without a cap = %d leases, want the 5 left", len(ls))
	}
}
