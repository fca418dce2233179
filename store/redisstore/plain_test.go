package redisstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

// plainAccepts are events of every kind a batch without a script takes:
// keyed and keyless, ignored, deliveries of several actions and hooks,
// a delivery with the extra fields only one added by hand has.
func plainAccepts(now time.Time) []store.Accept {
	accepts := []store.Accept{
		batchAccept(now, "h", "k1", 1, "a", ""),
		batchAccept(now, "h", "", 2, "a", ""),
		batchAccept(now, "g", "k3", 3, "", ""),
		batchAccept(now, "g", "k4", 4, "b", ""),
		batchAccept(now, "h", "k5", 5, "a", ""),
	}
	at := now.Add(5 * time.Millisecond)
	e := accepts[4].Event
	accepts[4].Deliveries = append(accepts[4].Deliveries,
		store.Delivery{ID: store.NewDeliveryID(e.ID, at), EventID: e.ID, Hook: "h", Rule: "r", Action: "b",
			Status: store.DeliveryPending, NextAttemptAt: at.Add(time.Minute), CreatedAt: at, UpdatedAt: at},
		store.Delivery{ID: store.NewDeliveryID(e.ID, at.Add(time.Millisecond)), EventID: e.ID, Hook: "h", Rule: "r2", Action: "c",
			Status: store.DeliveryPending, NextAttemptAt: at, CreatedAt: at, UpdatedAt: at.Add(time.Second), LastError: "earlier"})
	return accepts
}

// acceptCalls makes the calls of accepts, as Accept hands them to the
// committers, not yet run.
func acceptCalls(t *testing.T, s *Store, accepts []store.Accept) []*acceptCall {
	t.Helper()
	var batch []*acceptCall
	for _, a := range accepts {
		keys, args, h, pack, err := s.acceptArgs(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, &acceptCall{id: a.Event.ID, deliveries: len(a.Deliveries), replicas: a.WaitReplicas,
			keys: keys, args: args, handed: h, pack: pack, done: make(chan struct{})})
	}
	return batch
}

// TestPlainAcceptWritesWhatTheScriptWrites: a batch of new events written
// as a transaction leaves Redis exactly as acceptScript leaves it: the same
// keys, of the same types, holding the same values, the idempotency keys
// with an expiry.
func TestPlainAcceptWritesWhatTheScriptWrites(t *testing.T) {
	c := redistest.Client(t)
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	accepts := plainAccepts(now)

	plain := New(c, redistest.Prefix(t))
	defer plain.Close()
	batch := acceptCalls(t, plain, accepts)
	wake := 0
	for _, call := range batch {
		wake += call.deliveries
	}
	if err := plain.acceptPlain(ctx, c, batch, wake); err != nil {
		t.Fatalf("acceptPlain: %v", err)
	}

	scripted := New(c, redistest.Prefix(t))
	defer scripted.Close()
	scripted.scriptAccepts.Store(true)
	for i, call := range runAccepts(t, scripted, accepts) {
		if call.err != nil || !reflect.DeepEqual(call.res, store.Accepted{EventID: accepts[i].Event.ID}) {
			t.Fatalf("script, event %d: %+v, %v", i, call.res, call.err)
		}
	}

	got, want := dumpKeys(ctx, t, c, plain.prefix), dumpKeys(ctx, t, c, scripted.prefix)
	if len(want) < 20 {
		t.Fatalf("the script wrote %d keys: %v", len(want), want)
	}
	if !slices.Equal(got, want) {
		t.Errorf("the transaction wrote\n%s\nthe script\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// What was written reads back through the store.
	for _, a := range accepts {
		e, err := plain.Event(ctx, a.Event.ID)
		if err != nil || string(e.Body) != string(a.Event.Body) || e.IdempotencyKey != a.Event.IdempotencyKey {
			t.Errorf("Event(%s) = %+v, %v", a.Event.ID, e, err)
		}
		ds, err := plain.Deliveries(ctx, a.Event.ID)
		if err != nil || len(ds) != len(a.Deliveries) {
			t.Errorf("Deliveries(%s) = %d, %v; want %d", a.Event.ID, len(ds), err, len(a.Deliveries))
		}
	}
}

// dumpKeys lists every key under prefix with its type and content, the
// prefix cut off, sorted: what two stores wrote can be compared.
func dumpKeys(ctx context.Context, t *testing.T, c redis.UniversalClient, prefix string) []string {
	t.Helper()
	var out []string
	iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		name := strings.TrimPrefix(k, prefix)
		typ := c.Type(ctx, k).Val()
		var v string
		switch typ {
		case "string":
			v = c.Get(ctx, k).Val()
		case "hash":
			m := c.HGetAll(ctx, k).Val()
			fields := make([]string, 0, len(m))
			for f, x := range m {
				fields = append(fields, f+"="+x)
			}
			slices.Sort(fields)
			v = strings.Join(fields, " ")
		case "zset":
			v = fmt.Sprint(c.ZRangeWithScores(ctx, k, 0, -1).Val())
		case "set":
			m := c.SMembers(ctx, k).Val()
			slices.Sort(m)
			v = strings.Join(m, " ")
		default:
			v = "?"
		}
		ttl := "keeps"
		if d := c.PTTL(ctx, k).Val(); d > 0 {
			ttl = "expires"
		}
		out = append(out, fmt.Sprintf("%s %s %s %q", name, typ, ttl, v))
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestPlainAcceptLeavesToTheScript: a batch with an event that must read
// before it writes is not written as a transaction, nothing of it at all,
// and the script then answers it.
func TestPlainAcceptLeavesToTheScript(t *testing.T) {
	c := redistest.Client(t)
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	held := batchAccept(now, "h", "held", 0, "a", "")
	replicated := batchAccept(now, "h", "r", 7, "a", "")
	replicated.WaitReplicas = 1
	offered := batchAccept(now, "h", "k8", 8, "a", "")
	offered.HandOff = &store.HandOff{Now: now, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "a", N: 1}}}
	// Each batch starts with new events that alone would make a
	// transaction; the last one or two are the case's.
	fresh := func(n int) []store.Accept {
		var out []store.Accept
		for i := range n {
			out = append(out, batchAccept(now, "h", fmt.Sprintf("fresh%d", i), 10+i, "a", ""))
		}
		return out
	}
	cases := []struct {
		name   string
		batch  []store.Accept
		want   []store.Accepted // nil: not run by the script here; leases aside
		leases int              // handed off to the last event's caller
	}{
		{"a key Redis holds", append(fresh(minPlainBatch-1), batchAccept(now, "h", "held", 2, "a", "")),
			[]store.Accepted{{}, {}, {}, {EventID: held.Event.ID, Duplicate: true}}, 0},
		{"a key twice in the batch", append(fresh(minPlainBatch-2), batchAccept(now, "h", "twice", 3, "a", ""), batchAccept(now, "h", "twice", 4, "a", "")),
			[]store.Accepted{{}, {}, {}, {Duplicate: true}}, 0},
		{"a delivery in a lane", append(fresh(minPlainBatch-1), batchAccept(now, "h", "k6", 6, "a", "L")),
			[]store.Accepted{{}, {}, {}, {}}, 0},
		{"replicas waited for", append(fresh(minPlainBatch-1), replicated), nil, 0},
		{"fewer events than a transaction takes", fresh(minPlainBatch - 1), []store.Accepted{{}, {}, {}}, 0},
		{"a delivery offered to its caller", append(fresh(minPlainBatch-1), offered),
			[]store.Accepted{{}, {}, {}, {}}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := New(c, redistest.Prefix(t))
			defer s.Close()
			if _, err := s.Accept(ctx, held); err != nil {
				t.Fatal(err)
			}
			before := dumpKeys(ctx, t, c, s.prefix)
			batch := acceptCalls(t, s, tc.batch)
			if err := s.acceptPlain(ctx, c, batch, 1); !errors.Is(err, errUseScript) {
				t.Fatalf("acceptPlain = %v, want errUseScript", err)
			}
			if after := dumpKeys(ctx, t, c, s.prefix); !slices.Equal(after, before) {
				t.Fatalf("acceptPlain wrote %d keys, want none", len(after)-len(before))
			}
			if tc.want == nil {
				return
			}
			for i, call := range runAccepts(t, s, tc.batch) {
				want := tc.want[i]
				if want.EventID == "" {
					want.EventID = tc.batch[i].Event.ID
					if want.Duplicate {
						want.EventID = tc.batch[i-1].Event.ID
					}
				}
				if i == len(tc.batch)-1 && len(call.res.Leases) != tc.leases {
					t.Errorf("event %d: %d leases handed off, want %d", i, len(call.res.Leases), tc.leases)
				}
				call.res.Leases = nil
				if call.err != nil || !reflect.DeepEqual(call.res, want) {
					t.Errorf("event %d: %+v, %v; want %+v", i, call.res, call.err, want)
				}
			}
		})
	}
}

// TestPlainAcceptRace: another process takes an event's idempotency key
// between the batch's WATCH and its EXEC. The transaction writes nothing,
// the script finds the other event, and the sender is answered with it.
func TestPlainAcceptRace(t *testing.T) {
	c := redistest.Client(t)
	ctx := t.Context()
	prefix := redistest.Prefix(t)
	s, other := New(c, prefix), New(c, prefix)
	defer s.Close()
	defer other.Close()
	now := time.Now().Truncate(time.Millisecond)
	mine, theirs := batchAccept(now, "h", "same", 1, "a", ""), batchAccept(now, "h", "same", 2, "a", "")
	batch := []store.Accept{mine}
	for i := range minPlainBatch - 1 {
		batch = append(batch, batchAccept(now, "h", fmt.Sprintf("k%d", i), 3+i, "a", ""))
	}
	raced := 0
	s.beforeExec = func() {
		raced++
		if _, err := other.Accept(ctx, theirs); err != nil {
			t.Errorf("the other Accept: %v", err)
		}
	}
	calls := runAccepts(t, s, batch)
	if raced != 1 {
		t.Fatalf("the hook between WATCH and EXEC ran %d times, want 1", raced)
	}
	if want := (store.Accepted{EventID: theirs.Event.ID, Duplicate: true}); calls[0].err != nil || !reflect.DeepEqual(calls[0].res, want) {
		t.Errorf("Accept = %+v, %v; want %+v", calls[0].res, calls[0].err, want)
	}
	for i, call := range calls[1:] {
		if want := (store.Accepted{EventID: batch[i+1].Event.ID}); call.err != nil || !reflect.DeepEqual(call.res, want) {
			t.Errorf("event %d of the batch: %+v, %v; want it stored", i+1, call.res, call.err)
		}
	}
	if _, err := s.Event(ctx, mine.Event.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the raced event was stored: %v", err)
	}
	if ds, err := s.Deliveries(ctx, mine.Event.ID); err == nil && len(ds) > 0 {
		t.Errorf("the raced event's deliveries were stored: %v", ds)
	}
}

// TestPlainAcceptRefused: a client whose ACL leaves out WATCH gets every
// batch stored by the script, and the store stops trying transactions
// after the first refusal.
func TestPlainAcceptRefused(t *testing.T) {
	admin := redistest.Client(t)
	ctx := t.Context()
	user := "hrtest-nowatch-" + strings.TrimPrefix(redistest.Prefix(t), "hrtest:")
	if err := admin.Do(ctx, "acl", "setuser", user, "reset", "on", ">pw", "~*", "&*", "+@all", "-watch").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	t.Cleanup(func() { _ = admin.Do(context.Background(), "acl", "deluser", user).Err() })
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	opt.Username, opt.Password = user, "pw"
	c := redis.NewClient(opt)
	defer c.Close()
	s := New(c, redistest.Prefix(t))
	defer s.Close()

	now := time.Now().Truncate(time.Millisecond)
	for round := range 2 {
		var accepts []store.Accept
		for i := range minPlainBatch {
			accepts = append(accepts, batchAccept(now, "h", fmt.Sprintf("k%d.%d", round, i), 10*round+i, "a", ""))
		}
		for i, call := range runAccepts(t, s, accepts) {
			if want := (store.Accepted{EventID: accepts[i].Event.ID}); call.err != nil || !reflect.DeepEqual(call.res, want) {
				t.Errorf("round %d, event %d: %+v, %v; want it stored", round, i, call.res, call.err)
			}
			if _, err := s.Event(ctx, accepts[i].Event.ID); err != nil {
				t.Errorf("round %d, Event(%s): %v", round, accepts[i].Event.ID, err)
			}
		}
		if !s.noPlain.Load() {
			t.Fatalf("round %d: the store still tries transactions after a NOPERM", round)
		}
	}
}

// TestOpenAccept: accept= in the store URL picks how batches of new events
// are written; without it, they are transactions until a relay in the
// process takes hand-offs (TakeHandOffs), then scripts. Anything else is
// refused with what it takes.
func TestOpenAccept(t *testing.T) {
	url := redistest.WithPrefix(redistest.URL(t), redistest.Prefix(t))
	for _, tc := range []struct {
		query                 string
		script, scriptOnRelay bool
	}{{"", false, true}, {"&accept=transaction", false, false}, {"&accept=script", true, true}} {
		s, err := Open(t.Context(), url+tc.query)
		if err != nil {
			t.Fatalf("Open(%q): %v", tc.query, err)
		}
		if s.scriptAccepts.Load() != tc.script {
			t.Errorf("Open(%q): every batch by the script = %v, want %v", tc.query, s.scriptAccepts.Load(), tc.script)
		}
		s.TakeHandOffs()
		if s.scriptAccepts.Load() != tc.scriptOnRelay {
			t.Errorf("Open(%q), with a relay that takes hand-offs: every batch by the script = %v, want %v", tc.query, s.scriptAccepts.Load(), tc.scriptOnRelay)
		}
		_ = s.Close()
	}
	for _, q := range []string{"&accept=lua", "&accept="} {
		if _, err := Open(t.Context(), url+q); err == nil || !strings.Contains(err.Error(), "want transaction or script") {
			t.Errorf("Open with %s: %v, want the values it takes", q, err)
		}
	}
}
