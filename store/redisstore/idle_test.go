package redisstore

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

// TestIdleActionsMarks: a mark holds until idleFor has passed, a wake-up
// that names its action or names none, and is not set by a look during
// which such a wake-up came.
func TestIdleActionsMarks(t *testing.T) {
	var ia idleActions
	now := time.Now()
	l := ia.begin([]string{"a", "b", "c"})
	for i, a := range []string{"a", "b", "c"} {
		ia.mark(l, i, a, now)
	}
	if !ia.idle("a", now) || !ia.idle("c", now.Add(idleFor-time.Millisecond)) {
		t.Fatal("marks just made do not hold")
	}
	if ia.idle("a", now.Add(idleFor)) {
		t.Error("a mark holds idleFor after it was made")
	}
	ia.woken(wakePayload(2, []string{"b"}))
	if ia.idle("b", now) || !ia.idle("c", now) {
		t.Errorf("after a wake-up naming b: b idle %v, c idle %v; want false, true", ia.idle("b", now), ia.idle("c", now))
	}
	ia.woken(wakePayload(1, nil))
	if ia.idle("c", now) {
		t.Error("a wake-up that names no action left c idle")
	}

	// A wake-up while a look runs: the action it names is not marked,
	// the others are; one that names none keeps every mark from being set.
	l = ia.begin([]string{"a", "b"})
	ia.woken("1 a")
	ia.mark(l, 0, "a", now)
	ia.mark(l, 1, "b", now)
	if ia.idle("a", now) || !ia.idle("b", now) {
		t.Errorf("a woken during the look: a idle %v, b idle %v; want false, true", ia.idle("a", now), ia.idle("b", now))
	}
	l = ia.begin([]string{"a"})
	ia.woken("3")
	ia.mark(l, 0, "a", now)
	if ia.idle("a", now) {
		t.Error("a marked by a look during which a wake-up named no action")
	}
	if got := wakePayload(3, []string{"x", "y"}); got != "3 x y" {
		t.Errorf("wakePayload = %q", got)
	}
}

// TestPartitionedLeaseSparesIdleActions: once a lease call that asked
// every partition found an action with nothing anywhere, the calls after
// it ask only their first partitions for it, until a delivery of it is
// queued (the accept's wake-up names it) or idleFor has passed.
func TestPartitionedLeaseSparesIdleActions(t *testing.T) {
	const P = 8
	prefix := redistest.Prefix(t)
	s := openParts(t, prefix, P)
	var asked int
	s.leaseAsked = func(n int) { asked = n }
	wake := s.Wake(t.Context())
	now := time.Now().Truncate(time.Millisecond)
	accept := func(s *Store, key, action string) store.Delivery {
		t.Helper()
		e := store.Event{ID: store.NewEventID("h", key, now), Hook: "h", ReceivedAt: now, IdempotencyKey: key}
		d := store.Delivery{ID: store.NewDeliveryID(e.ID, now), Rule: "r", Action: action, NextAttemptAt: now}
		if _, err := s.Accept(t.Context(), store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// Enough of busy that every partition has some.
	for i := range 200 {
		accept(s, "busy"+strconv.Itoa(i), "busy")
	}
	drain := func() {
		for {
			select {
			case <-wake:
			case <-time.After(100 * time.Millisecond):
				return
			}
		}
	}
	drain()
	lease := func(s *Store) []store.Lease {
		t.Helper()
		b, err := s.Lease(t.Context(), store.LeaseRequest{Now: now, TTL: time.Minute,
			Actions: []store.ActionQuota{{Action: "busy", N: 1}, {Action: "quiet", N: 8}}})
		if err != nil {
			t.Fatal(err)
		}
		return b.Leases
	}
	count := func(ls []store.Lease, action string) int {
		n := 0
		for _, l := range ls {
			if l.Delivery.Action == action {
				n++
			}
		}
		return n
	}
	// The first call looks for quiet everywhere and finds none.
	if ls := lease(s); count(ls, "busy") != 1 || count(ls, "quiet") != 0 || asked != P {
		t.Fatalf("first lease: %d busy, %d quiet from %d partitions; want 1, 0 from all %d", count(ls, "busy"), count(ls, "quiet"), asked, P)
	}
	// The next ones ask one partition: busy has its one there.
	for range 3 {
		if ls := lease(s); count(ls, "busy") != 1 || asked != 1 {
			t.Fatalf("lease after quiet was found idle: %d busy from %d partitions; want 1 from 1", count(ls, "busy"), asked)
		}
	}
	// A delivery of quiet, in a partition the next call does not ask
	// first: its accept's wake-up names quiet, and the call finds it.
	var d store.Delivery
	for i := 0; ; i++ {
		d = store.Delivery{ID: store.NewDeliveryID(store.NewEventID("h", "q"+strconv.Itoa(i), now), now)}
		if s.partOf(d.ID) != int((s.turn.Load()+1)%P) {
			d = accept(s, "q"+strconv.Itoa(i), "quiet")
			break
		}
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up for the accept")
	}
	ls := lease(s)
	i := slices.IndexFunc(ls, func(l store.Lease) bool { return l.Delivery.ID == d.ID })
	if count(ls, "quiet") != 1 || i < 0 {
		t.Fatalf("lease after quiet's accept woke the relays: %d quiet (want %s), from %d partitions", count(ls, "quiet"), d.ID, asked)
	}
	// Done with, quiet has nothing queued or held again.
	if errs, err := s.Finish(t.Context(), []store.Finish{{Lease: ls[i], Attempt: store.Attempt{N: 1, StartedAt: now},
		Outcome: store.Outcome{Status: store.DeliverySucceeded}}}); err != nil || errs[0] != nil {
		t.Fatalf("Finish: %v, %v", err, errs)
	}

	// Another process, which hears no wake-up, takes quiet for idle after
	// its own full look; a delivery queued since waits until the mark
	// ends, idleFor later at most.
	o := openParts(t, prefix, P)
	o.leaseAsked = func(n int) { asked = n }
	if ls := lease(o); count(ls, "quiet") != 0 || asked != P {
		t.Fatalf("other process's first lease: %d quiet from %d partitions; want 0 from %d", count(ls, "quiet"), asked, P)
	}
	for i := 1000; ; i++ {
		// Not in the partition either of o's next two calls asks first.
		id := store.NewDeliveryID(store.NewEventID("h", "q"+strconv.Itoa(i), now), now)
		if part := o.partOf(id); part != int((o.turn.Load()+1)%P) && part != int((o.turn.Load()+2)%P) {
			d = accept(s, "q"+strconv.Itoa(i), "quiet")
			break
		}
	}
	if ls := lease(o); count(ls, "quiet") != 0 || asked != 1 {
		t.Fatalf("lease by a process that heard no wake-up, within idleFor: %d quiet from %d partitions; want 0 from 1", count(ls, "quiet"), asked)
	}
	time.Sleep(idleFor)
	ls = lease(o)
	if count(ls, "quiet") != 1 || asked != P {
		t.Fatalf("lease idleFor later: %d quiet from %d partitions; want %s from all %d", count(ls, "quiet"), asked, d.ID, P)
	}
	if err := o.Release(t.Context(), now, ls); err != nil {
		t.Fatal(err)
	}

	// A process's own accepts end its marks when they are written, wake-up
	// or not: a third process, subscribed to none, finds its own accept's
	// delivery at once.
	p := openParts(t, prefix, P)
	p.leaseAsked = func(n int) { asked = n }
	for _, l := range lease(p) {
		if errs, err := p.Finish(t.Context(), []store.Finish{{Lease: l, Attempt: store.Attempt{N: 1, StartedAt: now},
			Outcome: store.Outcome{Status: store.DeliverySucceeded}}}); err != nil || errs[0] != nil {
			t.Fatalf("Finish: %v, %v", err, errs)
		}
	}
	if ls := lease(p); count(ls, "quiet") != 0 || asked != P {
		t.Fatalf("third process's full look: %d quiet from %d partitions; want 0 from %d", count(ls, "quiet"), asked, P)
	}
	for i := 2000; ; i++ {
		id := store.NewDeliveryID(store.NewEventID("h", "q"+strconv.Itoa(i), now), now)
		if p.partOf(id) != int((p.turn.Load()+1)%P) {
			d = accept(p, "q"+strconv.Itoa(i), "quiet")
			break
		}
	}
	if ls := lease(p); count(ls, "quiet") != 1 {
		t.Fatalf("lease after the process's own accept of quiet: %d quiet from %d partitions; want %s", count(ls, "quiet"), asked, d.ID)
	}
}

// wakeUps subscribes to s's wake channel and returns what reads the next
// wake-up's message, failing the test when none comes within 5 s.
func wakeUps(t *testing.T, s *Store) func() string {
	t.Helper()
	sub := redistest.Client(t).Subscribe(t.Context(), s.k.wake())
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(t.Context()); err != nil {
		t.Fatal(err)
	}
	return func() string {
		t.Helper()
		select {
		case m := <-sub.Channel():
			return m.Payload
		case <-time.After(5 * time.Second):
			t.Fatal("no wake-up")
			return ""
		}
	}
}

// TestPartitionedWakeNamesQueuedActions: on a partitioned store an
// accept's wake-up names the actions of the deliveries it queued, whether
// the committer sends it or, for a batch that offers hand-offs, the
// script; a delivery handed off wakes no one.
func TestPartitionedWakeNamesQueuedActions(t *testing.T) {
	ctx := t.Context()
	s := openParts(t, redistest.Prefix(t), 4)
	next := wakeUps(t, s)
	now := time.Now()
	accept := func(key string, actions []string, offer *store.HandOff) store.Accepted {
		t.Helper()
		e := store.Event{ID: store.NewEventID("h", key, now), Hook: "h", ReceivedAt: now, IdempotencyKey: key, Body: []byte(`{}`)}
		a := store.Accept{Event: e, KeyTTL: time.Hour, HandOff: offer}
		for i, action := range actions {
			at := now.Add(time.Duration(i))
			a.Deliveries = append(a.Deliveries, store.Delivery{ID: store.NewDeliveryID(e.ID, at), EventID: e.ID, Hook: "h",
				Rule: "r" + strconv.Itoa(i), Action: action, Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now})
		}
		res, err := s.Accept(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	accept("k1", []string{"c", "d", "c"}, nil)
	if got := next(); got != "3 c d" {
		t.Errorf("wake-up of an accept that queued c, d and c: %q, want %q", got, "3 c d")
	}
	res := accept("k2", []string{"a", "b"}, &store.HandOff{Now: now, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "a", N: 1, Max: 4}}})
	if len(res.Leases) != 1 || res.Leases[0].Delivery.Action != "a" {
		t.Fatalf("Accept offering a = %+v; want a's delivery handed off", res)
	}
	if got := next(); got != "1 b" {
		t.Errorf("wake-up of an accept that handed a off and queued b: %q, want %q", got, "1 b")
	}
}

// TestPartitionedWakeUpsNameTheirActions: every wake-up names the actions
// whose deliveries it is for (a lane let go at a finish, a lease given
// back, a retry by hand, deliveries added), and this process's marks of
// other actions outlive its own such writes.
func TestPartitionedWakeUpsNameTheirActions(t *testing.T) {
	ctx := t.Context()
	s := openParts(t, redistest.Prefix(t), 4)
	next := wakeUps(t, s)
	expect := func(what, want string) {
		t.Helper()
		if got := next(); got != want {
			t.Errorf("wake-up of %s: %q, want %q", what, got, want)
		}
	}
	// Marks of two other actions, as a full look leaves them; each write
	// below must leave them.
	markOthers := func() {
		t.Helper()
		l := s.idle.begin([]string{"x", "y"})
		s.idle.mark(l, 0, "x", time.Now())
		s.idle.mark(l, 1, "y", time.Now())
	}
	checkOthers := func(after string) {
		t.Helper()
		if !s.idle.idle("x", time.Now()) || !s.idle.idle("y", time.Now()) {
			t.Errorf("after %s the marks of x and y are gone", after)
		}
	}
	now := time.Now().Truncate(time.Millisecond)
	e := store.Event{ID: store.NewEventID("h", "k", now), Hook: "h", ReceivedAt: now, IdempotencyKey: "k", Body: []byte(`{}`)}
	var ds []store.Delivery
	for i := range 2 {
		at := now.Add(time.Duration(i) * time.Millisecond)
		ds = append(ds, store.Delivery{Hook: "h", Rule: "r" + strconv.Itoa(i),
			Action: "a", Lane: "L", Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: at, UpdatedAt: now})
	}
	// The event, its key and its lane in one shard, as the gateway makes it.
	e.ID = store.InShard(e.ID, store.EventShard("h", "k", ds))
	for i := range ds {
		ds[i].ID, ds[i].EventID = store.NewDeliveryID(e.ID, ds[i].CreatedAt), e.ID
	}
	if _, err := s.Accept(ctx, store.Accept{Event: e, Deliveries: ds, KeyTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	expect("the accept", "2 a")
	lease := func(id string) store.Lease {
		t.Helper()
		b, err := s.Lease(ctx, store.LeaseRequest{Now: time.Now(), TTL: time.Minute, Actions: []store.ActionQuota{{Action: "a", N: 2}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Leases) != 1 || b.Leases[0].Delivery.ID != id {
			t.Fatalf("Lease = %d leases, want %s alone (its lane's head)", len(b.Leases), id)
		}
		return b.Leases[0]
	}
	first := lease(ds[0].ID)
	markOthers()
	f := store.Finish{Lease: first, Attempt: store.Attempt{DeliveryID: first.Delivery.ID, N: 1, StartedAt: now, StatusCode: 200,
		Outcome: store.DeliverySucceeded}, Outcome: store.Outcome{Status: store.DeliverySucceeded, Reason: store.ReasonSucceeded}}
	if errs, err := s.Finish(ctx, []store.Finish{f}); err != nil || errs[0] != nil {
		t.Fatalf("Finish = %v, %v", errs, err)
	}
	expect("a finish that let the lane's next delivery go", "1 a")
	checkOthers("the finish")

	second := lease(ds[1].ID)
	if err := s.Release(ctx, time.Now(), []store.Lease{second}); err != nil {
		t.Fatal(err)
	}
	expect("a lease given back", "1 a")
	checkOthers("the release")

	if _, err := s.RetryDelivery(ctx, ds[1].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	expect("a retry by hand", "1 a")
	checkOthers("the retry")

	added := store.Delivery{ID: store.NewDeliveryID(e.ID, now.Add(time.Second)), Hook: "h", Rule: "r9", Action: "b",
		Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now}
	if err := s.AddDeliveries(ctx, e.ID, []string{"r9"}, []store.Delivery{added}); err != nil {
		t.Fatal(err)
	}
	expect("deliveries added", "1 b")
	checkOthers("the deliveries added")

	// The process's own writes end the marks of the actions they name.
	l := s.idle.begin([]string{"a", "b"})
	s.idle.mark(l, 0, "a", time.Now())
	s.idle.mark(l, 1, "b", time.Now())
	if _, err := s.RetryDelivery(ctx, ds[1].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if s.idle.idle("a", time.Now()) || !s.idle.idle("b", time.Now()) {
		t.Errorf("after a retry of a's delivery: a idle %v, b idle %v; want a's mark gone, b's kept",
			s.idle.idle("a", time.Now()), s.idle.idle("b", time.Now()))
	}
}

// TestPartitionedBusyCheckMarksIdleActions: with so many actions that a
// lease first looks which have anything anywhere (busyCheck), that look
// marks the others idle, and the calls after it leave them out.
func TestPartitionedBusyCheckMarksIdleActions(t *testing.T) {
	const P = 4
	s := openParts(t, redistest.Prefix(t), P)
	now := time.Now().Truncate(time.Millisecond)
	for i := range 20 {
		e := store.Event{ID: store.NewEventID("h", "b"+strconv.Itoa(i), now), Hook: "h", ReceivedAt: now, IdempotencyKey: "b" + strconv.Itoa(i)}
		d := store.Delivery{ID: store.NewDeliveryID(e.ID, now), Rule: "r", Action: "busy", NextAttemptAt: now}
		if _, err := s.Accept(t.Context(), store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	quotas := []store.ActionQuota{{Action: "busy", N: 2}}
	for i := range busyCheck {
		quotas = append(quotas, store.ActionQuota{Action: "idle" + strconv.Itoa(i), N: 8})
	}
	for call := range 2 {
		b, err := s.Lease(t.Context(), store.LeaseRequest{Now: now, TTL: time.Minute, Actions: quotas})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Leases) != 2 {
			t.Fatalf("call %d leased %d, want busy's 2", call+1, len(b.Leases))
		}
		for i := range busyCheck {
			if !s.idle.idle("idle"+strconv.Itoa(i), time.Now()) {
				t.Fatalf("after call %d idle%d is not marked idle", call+1, i)
			}
		}
		if s.idle.idle("busy", time.Now()) {
			t.Fatalf("after call %d busy is marked idle", call+1)
		}
	}
}

// TestIdleActionsBusy: busy keeps the quotas of the actions not marked, in
// their order, and hands back the caller's slice when none is marked.
func TestIdleActionsBusy(t *testing.T) {
	var ia idleActions
	now := time.Now()
	qs := []store.ActionQuota{{Action: "a"}, {Action: "b"}, {Action: "c"}, {Action: "d"}}
	if got := ia.busy(qs, now); &got[0] != &qs[0] || len(got) != 4 {
		t.Fatalf("busy with no marks = %v, want qs itself", got)
	}
	l := ia.begin([]string{"b", "d"})
	ia.mark(l, 0, "b", now)
	ia.mark(l, 1, "d", now)
	got := ia.busy(qs, now)
	if len(got) != 2 || got[0].Action != "a" || got[1].Action != "c" {
		t.Fatalf("busy with b and d marked = %v, want a, c", got)
	}
	if qs[1].Action != "b" || qs[3].Action != "d" {
		t.Fatalf("busy changed the caller's quotas: %v", qs)
	}
	if got := ia.busy(qs, now.Add(idleFor)); len(got) != 4 {
		t.Fatalf("busy once the marks ended = %v, want all four", got)
	}
}
