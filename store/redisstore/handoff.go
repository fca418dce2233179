package redisstore

import (
	"slices"
	"strconv"
	"time"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"
)

// A relay's offer to take an accept's deliveries (store.HandOff). On a
// store of one partition the accept script leases an offered delivery to
// the caller when leaseScript would lease it at once (enqueueLua): it is
// written leased, into its action's lease set, and never queued. A batch
// of accepts that offers deliveries runs the script, not a transaction
// (plain.go). A partitioned store hands nothing off, as its actions'
// states and caps are kept apart from the deliveries (gateScript).

// HandsOff reports whether an accept made now should be offered
// deliveries (store.HandOff): on one partition, unless accepts come in
// batches that a transaction would write (plain.go, accept=transaction),
// which an offer turns into a script: when as many accepts wait or run as
// a transaction takes (minPlainBatch), the next likely joins them.
func (s *Store) HandsOff() bool {
	if s.partitioned() {
		return false
	}
	return s.scriptAccepts.Load() || s.noPlain.Load() || s.accepting.Load() < minPlainBatch
}

// TakeHandOffs tells the store that a relay in this process takes its
// accepts' hand-offs (store.HandOff). Unless the URL chose (accept=), the
// store's batches of accepts then all run the script, which hands off
// under load too, where a transaction would not; with the relay in the
// same process, the script also measured cheaper for the process at full
// load, and no dearer for Redis (docs/intake.md). A partitioned store
// hands nothing off, and keeps its way.
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
	keys   *seal.Keys       // the store's (Store.keys)
	id     string           // the event's
	value  string           // the event's stored string
	body   []byte           // the event's body, as it came
	ds     []store.Delivery // the event's deliveries, as stored
}

// offerOf picks the deliveries of ds (new, in the order given) that the
// accept offers to its caller under o: those in no lane whose action has
// a quota with room. It returns nil when it offers none; else what the
// accept offered, the event's parts left for the caller to fill in.
func (s *Store) offerOf(o *store.HandOff, ds []store.Delivery) *handed {
	if o == nil || o.TTL <= 0 || s.partitioned() {
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
			h = &handed{hands: make([]string, len(ds)), tokens: make([]string, len(ds)), until: time.UnixMilli(end).UTC()}
		}
		h.tokens[i] = head + strconv.Itoa(i)
		h.hands[i] = strconv.FormatInt(end, 10) + "|" + strconv.FormatInt(o.Now.UnixMilli(), 10) + "|" +
			strconv.Itoa(max(o.Actions[q].Max, 0)) + "|" + h.tokens[i]
	}
	return h
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
	ev, _, err := decodeEvent(h.keys, h.id, h.value, false)
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
