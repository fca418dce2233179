package storetest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"
)

// What the suite holds a backend to about sealing at rest (package seal):
//
//   - With keys, an event's headers, query, body and trace are stored
//     sealed: the raw storage never holds them in clear. They read back
//     as accepted, through Event, ListEvents and Lease.
//   - Events stored in clear, or under a key the ring still holds, read
//     back after the ring changes; Reseal rewrites them under the current
//     key, batch by batch, and skips those already under it.
//   - An event sealed with a key the ring lacks, or with other key
//     material under the same id, fails to read with an error naming the
//     key (*seal.UnknownKeyError, seal.ErrOpen), and Reseal fails likewise
//     and rewrites nothing: the right keys read everything afterwards.
//     ListEvents lists it with what is kept in clear and that error
//     (store.Event.Err); Lease leases its deliveries with it
//     (store.Lease.Err), beside the others.

// SealedStore is a store that seals events at rest.
type SealedStore interface {
	store.Store
	store.Admin
	store.Resealer
}

// SealedBackend is one stored data set, opened as often as a test needs.
type SealedBackend struct {
	// Open opens the data set with keys (nil: none). The test closes it.
	Open func(keys *seal.Keys) SealedStore
	// Raw is every byte the data set holds, as a copy of its files or a
	// dump of its keys would show them, read while no store is open.
	Raw func() []byte
	// Stored is each event's stored form by id (its row's columns, its
	// string), read while no store is open.
	Stored func() map[string]string
}

// RunSealing runs the sealing tests. backend returns a new, empty data set
// for the test it is given.
func RunSealing(t *testing.T, backend func(t *testing.T) SealedBackend) {
	t.Run("RotateAndReseal", func(t *testing.T) {
		t.Parallel()
		testRotateAndReseal(t, backend(t))
	})
	t.Run("UnreadableLeases", func(t *testing.T) {
		t.Parallel()
		testUnreadableLeases(t, backend(t))
	})
}

// testUnreadableLeases: a delivery whose event the store cannot open (here
// sealed with a key its ring lacks) is leased with the others, Err naming
// the key, so that it holds up neither the deliveries of its action nor
// those of another leased in the same call; finished as a failed attempt,
// it falls due again.
func testUnreadableLeases(t *testing.T, b SealedBackend) {
	ctx := t.Context()
	accept := func(s SealedStore, n int, action string) store.Delivery {
		e := sealedEvent(n, base.Add(time.Duration(n)*time.Second))
		d := newDelivery(e, "rule", action, e.ReceivedAt)
		e.MatchedRules = []string{"rule"}
		mustAccept(t, s, store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}, false)
		return d
	}
	s := b.Open(ParseKeys(t, KeyEntry(t, "k1")))
	lost := accept(s, 1, "action")
	s.Close()
	s = b.Open(ParseKeys(t, KeyEntry(t, "k2")))
	defer s.Close()
	same, other := accept(s, 2, "action"), accept(s, 3, "other")

	now := base.Add(time.Minute)
	ls := lease(t, s, now, 10, time.Minute, "action", "other").Leases
	if len(ls) != 3 {
		t.Fatalf("leased %v, want %s, %s and %s", leasedIDs(ls), lost.ID, same.ID, other.ID)
	}
	var unreadable store.Lease
	var readable []store.Lease
	for _, l := range ls {
		switch l.Delivery.ID {
		case lost.ID:
			var uk *seal.UnknownKeyError
			if !errors.As(l.Err, &uk) || uk.ID != "k1" {
				t.Errorf("lease of %s: Err %v, want one naming k1", lost.ID, l.Err)
			}
			if l.Token == "" || l.Until.IsZero() || l.Delivery.EventID != lost.EventID || l.Delivery.Action != "action" || l.Event.ID != lost.EventID {
				t.Errorf("unreadable lease = %+v, want its delivery, token, end and event id", l)
			}
			if l.Event.Body != nil || l.Event.Headers != nil {
				t.Errorf("unreadable lease carries event content: %+v", l.Event)
			}
			unreadable = l
		case same.ID, other.ID:
			if l.Err != nil || !bytes.Contains(l.Event.Body, []byte(sealToken)) {
				t.Errorf("lease of %s: Err %v, body %q; want its event read", l.Delivery.ID, l.Err, l.Event.Body)
			}
			readable = append(readable, l)
		default:
			t.Fatalf("leased %s, which was not accepted here", l.Delivery.ID)
		}
	}

	ok := store.Outcome{Status: store.DeliverySucceeded, Reason: store.ReasonSucceeded}
	for _, l := range readable {
		a := store.Attempt{DeliveryID: l.Delivery.ID, N: 1, StartedAt: now, StatusCode: 200, Outcome: ok.Status, Reason: ok.Reason}
		if err := finishOne(ctx, s, l, a, ok); err != nil {
			t.Fatalf("finish of %s: %v", l.Delivery.ID, err)
		}
	}
	next := now.Add(2 * time.Minute)
	o := store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: next, Error: "unreadable", Reason: store.ReasonRetry}
	a := store.Attempt{DeliveryID: lost.ID, N: 1, StartedAt: now, Error: "unreadable", Outcome: o.Status, Reason: o.Reason, NextAttemptAt: next}
	if err := finishOne(ctx, s, unreadable, a, o); err != nil {
		t.Fatalf("finish of the unreadable lease: %v", err)
	}
	if d := mustDelivery(t, s, lost.ID); d.Status != store.DeliveryRetrying || d.Attempts != 1 {
		t.Errorf("after its failed attempt the delivery is %s with %d attempts, want retrying with 1", d.Status, d.Attempts)
	}
	again := lease(t, s, next, 10, time.Minute, "action").Leases
	if len(again) != 1 || again[0].Delivery.ID != lost.ID || again[0].Err == nil {
		t.Errorf("at its next try leased %v, want %s again, unreadable", leasedIDs(again), lost.ID)
	}
}

// sealToken is a bearer token that must never be found in raw storage;
// each event carries it followed by its number.
const sealToken = "eyJhbGciOiJIUzI1NiJ9.sealtest-Zq81xW.signature-7Hq2-"

// KeyEntry is a key ring entry "id:<base64 of a fresh key>", as
// HOOKRELAY_ENCRYPTION_KEY holds one.
func KeyEntry(t testing.TB, id string) string {
	t.Helper()
	b := make([]byte, seal.KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return id + ":" + base64.StdEncoding.EncodeToString(b)
}

// ParseKeys is seal.ParseKeys of ring, which must parse.
func ParseKeys(t testing.TB, ring string) *seal.Keys {
	t.Helper()
	k, err := seal.ParseKeys(ring)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sealedEvent is an OrderCloud-style event carrying its token (tokenOf) in
// its body, a header, the query and the trace, its body long enough to be
// compressed.
func sealedEvent(n int, at time.Time) store.Event {
	sealToken := tokenOf(n)
	e := newEvent("ordercloud", fmt.Sprintf("key-%d", n), at)
	e.Headers = map[string]string{"authorization": "Bearer " + sealToken, "content-type": "application/json"}
	e.Query = map[string]string{"access_token": sealToken}
	e.Body = []byte(fmt.Sprintf(`{"Route":"v1/buyers/{buyerID}/users","Verb":"POST","LogID":"log-%d","UserToken":%q,"Request":{"Body":{"Notes":%q}}}`,
		n, sealToken, bytes.Repeat([]byte("a long note that compresses well "), 20)))
	e.Trace = &store.EventTrace{Verify: store.VerifyTrace{Scheme: "ordercloud"}, KeySource: store.KeyFromBody,
		Rules: []store.RuleTrace{{Rule: "r", Result: store.RuleMatched, Fields: []store.FieldTrace{{Field: "body.UserToken", Value: `"` + sealToken + `"`}}}}}
	return e
}

func tokenOf(n int) string { return fmt.Sprintf("%s%d", sealToken, n) }

func testRotateAndReseal(t *testing.T, b SealedBackend) {
	ctx := t.Context()
	k1, k2 := KeyEntry(t, "k1"), KeyEntry(t, "k2")
	var events []store.Event
	accept := func(s SealedStore, n int) {
		e := sealedEvent(n, base.Add(time.Duration(n)*time.Second))
		d := newDelivery(e, "rule", "action", e.ReceivedAt)
		e.MatchedRules = []string{"rule"}
		mustAccept(t, s, store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: time.Hour}, false)
		e.Status = store.EventAccepted
		events = append(events, e)
	}
	ignore := cmpopts.IgnoreFields(store.Event{}, "Duplicates")
	readAll := func(s SealedStore, when string) {
		t.Helper()
		for _, e := range events {
			got, err := s.Event(ctx, e.ID)
			if err != nil {
				t.Fatalf("%s: Event(%s): %v", when, e.ID, err)
			}
			if diff := cmp.Diff(e, got, cmpOpts, ignore); diff != "" {
				t.Fatalf("%s: event %s (-accepted +read):\n%s", when, e.ID, diff)
			}
		}
		list, _, err := s.ListEvents(ctx, store.EventFilter{Limit: 100})
		if err != nil || len(list) != len(events) {
			t.Fatalf("%s: ListEvents = %d events, %v; want %d", when, len(list), err, len(events))
		}
		for _, e := range list {
			if !strings.HasPrefix(e.Headers["authorization"], "Bearer "+sealToken) || !strings.HasPrefix(e.Query["access_token"], sealToken) {
				t.Fatalf("%s: listed event %s headers %v query %v", when, e.ID, e.Headers, e.Query)
			}
		}
	}
	reseal := func(s SealedStore, batch int) (examined, resealed int) {
		t.Helper()
		after := ""
		for calls := 0; ; calls++ {
			r, err := s.Reseal(ctx, after, batch)
			if err != nil {
				t.Fatalf("Reseal(%q, %d): %v", after, batch, err)
			}
			examined += r.Examined
			resealed += r.Resealed
			if r.Next == "" {
				return examined, resealed
			}
			if r.Next <= after || calls > 100 {
				t.Fatalf("Reseal(%q) goes on after %q", after, r.Next)
			}
			after = r.Next
		}
	}

	oldest := func(s SealedStore, want string) {
		t.Helper()
		if got, err := s.OldestEventID(ctx); err != nil || got != want {
			t.Fatalf("OldestEventID = %q, %v; want %q", got, err, want)
		}
	}

	// One event stored before any key was set, two under k1.
	s := b.Open(nil)
	oldest(s, "")
	accept(s, 0)
	oldest(s, events[0].ID)
	s.Close()
	if !bytes.Contains(b.Raw(), []byte(tokenOf(0))) {
		t.Fatal("the event stored without keys is not in the raw storage in clear: the raw dump misses it")
	}
	s = b.Open(ParseKeys(t, k1))
	readAll(s, "clear event, opened with k1")
	accept(s, 1)
	accept(s, 2)
	oldest(s, events[0].ID)
	// What a worker leases is opened too.
	ls := lease(t, s, base.Add(time.Minute), 10, time.Minute).Leases
	if len(ls) != 3 {
		t.Fatalf("leased %d, want 3", len(ls))
	}
	for _, l := range ls {
		if !bytes.Contains(l.Event.Body, []byte(sealToken)) || !strings.HasPrefix(l.Event.Headers["authorization"], "Bearer "+sealToken) {
			t.Fatalf("leased event %s: body %q headers %v", l.Event.ID, l.Event.Body, l.Event.Headers)
		}
	}
	if err := s.Release(ctx, base.Add(time.Minute), ls); err != nil {
		t.Fatal(err)
	}
	s.Close()
	raw := b.Raw()
	for n := 1; n <= 2; n++ {
		if bytes.Contains(raw, []byte(tokenOf(n))) {
			t.Fatalf("the raw storage holds the token of sealed event %d in clear", n)
		}
	}

	// Rotation: k2 seals, k1 still opens.
	s = b.Open(ParseKeys(t, k2+","+k1))
	readAll(s, "opened with k2,k1")
	accept(s, 3)
	if ex, re := reseal(s, 2); ex != len(events) || re != 3 {
		t.Fatalf("reseal examined %d, resealed %d; want %d and 3 (the clear one and two under k1)", ex, re, len(events))
	}
	if ex, re := reseal(s, 3); ex != len(events) || re != 0 {
		t.Fatalf("second reseal examined %d, resealed %d; want %d and 0", ex, re, len(events))
	}
	s.Close()
	if bytes.Contains(b.Raw(), []byte(sealToken)) {
		t.Fatal("after the reseal the raw storage still holds the token in clear")
	}

	// k2 alone reads everything.
	s = b.Open(ParseKeys(t, k2))
	readAll(s, "opened with k2 only")
	s.Close()

	// Without the key, or with other material under its id: reads fail
	// naming the key, and the reseal writes nothing.
	before := b.Stored()
	if len(before) != len(events) {
		t.Fatalf("Stored holds %d events, want %d", len(before), len(events))
	}
	for _, c := range []struct {
		name string
		keys *seal.Keys
		is   func(error) bool
	}{
		{"no keys", nil, func(err error) bool { var uk *seal.UnknownKeyError; return errors.As(err, &uk) && uk.ID == "k2" }},
		{"another key", ParseKeys(t, KeyEntry(t, "k3")), func(err error) bool { var uk *seal.UnknownKeyError; return errors.As(err, &uk) && uk.ID == "k2" }},
		{"wrong k2", ParseKeys(t, KeyEntry(t, "k2")), func(err error) bool { return errors.Is(err, seal.ErrOpen) }},
	} {
		s = b.Open(c.keys)
		_, err := s.Event(ctx, events[1].ID)
		if err == nil || !c.is(err) {
			t.Errorf("%s: Event error %v, want one naming k2", c.name, err)
		}
		// Listed all the same, with what is kept in clear and the error.
		list, _, err := s.ListEvents(ctx, store.EventFilter{Limit: 10})
		if err != nil || len(list) != len(events) {
			t.Errorf("%s: ListEvents = %d events, %v; want the %d stored", c.name, len(list), err, len(events))
		}
		for _, got := range list {
			i := slices.IndexFunc(events, func(e store.Event) bool { return e.ID == got.ID })
			if i < 0 {
				t.Fatalf("%s: listed %s, which was not accepted", c.name, got.ID)
			}
			want := store.Event{ID: got.ID, Hook: events[i].Hook, ReceivedAt: events[i].ReceivedAt, Status: events[i].Status,
				MatchedRules: events[i].MatchedRules, Duplicates: got.Duplicates}
			if diff := cmp.Diff(want, got, cmpOpts, cmpopts.IgnoreFields(store.Event{}, "Err", "IdempotencyKey")); diff != "" {
				t.Errorf("%s: listed unreadable event (-clear parts +listed):\n%s", c.name, diff)
			}
			if got.Err == nil || !c.is(got.Err) {
				t.Errorf("%s: listed event %s Err %v, want one naming k2", c.name, got.ID, got.Err)
			}
		}
		if c.keys != nil {
			if _, err := s.Reseal(ctx, "", 10); err == nil || !c.is(err) {
				t.Errorf("%s: Reseal error %v, want one naming k2", c.name, err)
			}
		}
		s.Close()
		if diff := cmp.Diff(before, b.Stored()); diff != "" {
			t.Fatalf("%s: the stored events changed (-before +after):\n%s", c.name, diff)
		}
	}
	s = b.Open(ParseKeys(t, k2))
	readAll(s, "the right key after the wrong ones")
	s.Close()
}

// SealKeys is a key ring of one fresh key, for running the other suites
// on a store that seals.
func SealKeys(t testing.TB) *seal.Keys {
	t.Helper()
	return KeyRing(t, "suite")
}

// KeyRing is a key ring of one fresh key under id.
func KeyRing(t testing.TB, id string) *seal.Keys {
	t.Helper()
	return ParseKeys(t, KeyEntry(t, id))
}

// RawFiles is every byte of the SQLite database at path and of its -wal
// and -shm files, those that exist: what a copy of the embedded store
// would hold, for a backend's Raw.
func RawFiles(t testing.TB, path string) []byte {
	t.Helper()
	var all []byte
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}
