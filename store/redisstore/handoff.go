package redisstore

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"
)

// A relay's offer to take an accept's deliveries (store.HandOff). On a
// store of one partition the accept script leases an offered delivery to
// the caller when leaseScript would lease it at once (enqueueLua): it is
// written leased, into its action's lease set, and never queued. A batch
// of accepts that offers deliveries runs the script, not a transaction
// (plain.go). On a partitioned store, whose actions' states and caps live
// in partition 0, apart from most deliveries, the accept first asks
// partition 0 which offered deliveries their actions let through
// (reserveScript, one round trip), and the accept script, in the event's
// partition, hands those off.

// HandsOff reports whether an accept made now should be offered
// deliveries (store.HandOff). On one partition: unless accepts come in
// batches that a transaction would write (plain.go, accept=transaction),
// which an offer turns into a script: when as many accepts wait or run as
// a transaction takes (minPlainBatch), the next likely joins them. On a
// partitioned store: while fewer than minPlainBatch accepts wait or run,
// as an offer there costs a round trip of its own (reserveScript), which
// a relay busy enough to fall behind its accepts would not repay.
func (s *Store) HandsOff() bool {
	if s.partitioned() {
		return s.accepting.Load() < minPlainBatch
	}
	return s.scriptAccepts.Load() || s.noPlain.Load() || s.accepting.Load() < minPlainBatch
}

// TakeHandOffs tells the store that a relay in this process takes its
// accepts' hand-offs (store.HandOff). Unless the URL chose (accept=), the
// store's batches of accepts then all run the script, which hands off
// under load too, where a transaction would not; with the relay in the
// same process, the script also measured cheaper for the process at full
// load, and no dearer for Redis (docs/intake.md). A partitioned store
// runs the script anyway.
func (s *Store) TakeHandOffs() {
	if !s.acceptChosen && !s.partitioned() {
		s.scriptAccepts.Store(true)
	}
}

// handed is what an accept offered (store.HandOff), and what its answer
// needs to make the leases of the deliveries the script handed off: the
// event and deliveries as Lease would have read them back. hands and
// tokens hold, per delivery, its hand-off argument for enqueueLua and its
// lease's token, both "" for a delivery not offered.
type handed struct {
	hands  []string
	tokens []string
	until  time.Time
	now    int64 // the offer's, in unix milliseconds
	// caps holds, on a partitioned store, each offered delivery's cap on
	// live leases (reserveScript).
	caps []int
	// reserved: partition 0 holds the tokens of hands in the cap sets
	// (reserveScript).
	reserved bool
	keys     *seal.Keys       // the store's (Store.keys)
	id       string           // the event's
	value    string           // the event's stored string
	body     []byte           // the event's body, as it came
	ds       []store.Delivery // the event's deliveries, as stored
}

// offerOf picks the deliveries of ds (new, in the order given) that the
// accept offers to its caller under o: those in no lane whose action has
// a quota with room. It returns nil when it offers none; else what the
// accept offered, the event's parts left for the caller to fill in.
func (s *Store) offerOf(o *store.HandOff, ds []store.Delivery) *handed {
	if o == nil || o.TTL <= 0 {
		return nil
	}
	left := make([]int, len(o.Actions))
	for i, q := range o.Actions {
		left[i] = q.N
	}
	var (
		h    *handed
		head string
		end  int64
	)
	for i, d := range ds {
		q := slices.IndexFunc(o.Actions, func(q store.ActionQuota) bool { return q.Action == d.Action })
		if d.Lane != "" || q < 0 || left[q] <= 0 {
			continue
		}
		left[q]--
		if h == nil {
			end = leaseEnd(o.Now, o.TTL)
			head = newTokenHead() + "h"
			h = &handed{hands: make([]string, len(ds)), tokens: make([]string, len(ds)), until: time.UnixMilli(end).UTC(),
				now: o.Now.UnixMilli()}
			if s.partitioned() {
				h.caps, h.reserved = make([]int, len(ds)), true
			}
		}
		h.tokens[i] = head + strconv.Itoa(i)
		limit, capped := max(o.Actions[q].Max, 0), ""
		if h.reserved {
			h.caps[i], capped = limit, "r"
		} else {
			capped = strconv.Itoa(limit)
		}
		h.hands[i] = strconv.FormatInt(end, 10) + "|" + strconv.FormatInt(h.now, 10) + "|" + capped + "|" + h.tokens[i]
	}
	return h
}

// reserve asks partition 0 which deliveries of h, an offer on a
// partitioned store, their actions let through (reserveScript), and keeps
// those; nil when it keeps none. An error keeps none either: the accept
// then queues every delivery, as without an offer, and the tokens a lost
// reply may have reserved count under their caps until their leases' end.
func (s *Store) reserve(ctx context.Context, h *handed, ds []store.Delivery) *handed {
	keys := make([]string, 0, 2*len(ds))
	args := make([]any, 0, 2+2*len(ds))
	args = append(args, h.now, h.until.UnixMilli())
	at := make([]int, 0, len(ds))
	for i, d := range ds {
		if h.tokens[i] == "" {
			continue
		}
		keys = append(keys, s.k.actionState(d.Action), s.k.capSet(d.Action))
		args = append(args, h.caps[i], h.tokens[i])
		at = append(at, i)
	}
	ok, err := reserveScript.Run(ctx, s.c, keys, args...).Int64Slice()
	if err != nil || len(ok) != len(at) {
		return nil
	}
	kept := false
	for j, i := range at {
		if ok[j] == 1 {
			kept = true
		} else {
			h.hands[i], h.tokens[i] = "", ""
		}
	}
	if !kept {
		return nil
	}
	return h
}

// unreserve gives up the places in the cap sets that reserve took for a
// duplicate's deliveries, which were not stored. It is a courtesy: each
// would stop counting at its lease's end anyway.
func (s *Store) unreserve(ctx context.Context, h *handed) {
	tokens := map[string][]any{}
	for i, t := range h.tokens {
		if t != "" {
			tokens[h.ds[i].Action] = append(tokens[h.ds[i].Action], t)
		}
	}
	_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for action, ts := range tokens {
			p.ZRem(ctx, s.k.capSet(action), ts...)
		}
		return nil
	})
}

// leases are the leases of the deliveries that flags, one letter per
// delivery as the script answered (enqueueLua), says were handed off.
// The event is read from its stored string, but for its body, which is
// the one that was stored: Lease would read the same.
func (h *handed) leases(flags string) []store.Lease {
	if h == nil || len(flags) != len(h.ds) {
		return nil
	}
	var ls []store.Lease
	for i, d := range h.ds {
		if flags[i] != '1' || h.tokens[i] == "" {
			continue
		}
		if ls == nil {
			ls = make([]store.Lease, 0, len(h.ds)-i)
		}
		d.NextAttemptAt, d.CreatedAt, d.UpdatedAt = atMS(d.NextAttemptAt), atMS(d.CreatedAt), atMS(d.UpdatedAt)
		d.LeasedUntil = h.until
		ls = append(ls, store.Lease{Delivery: d, Token: h.tokens[i], Until: h.until})
	}
	if ls == nil {
		return nil
	}
	ev, _, err := decodeEvent(opener{keys: h.keys}, h.id, h.value, false)
	if err == nil {
		ev.Body = h.body
	} else {
		ev = store.Event{ID: h.id}
	}
	for i := range ls {
		ls[i].Event, ls[i].Err = ev, err
	}
	return ls
}

// atMS is t as the store reads it back: unix milliseconds, in UTC.
func atMS(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}
