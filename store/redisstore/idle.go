package redisstore

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// idleFor is the longest a partitioned store takes an action for idle
// after a full look found it so (idleActions).
const idleFor = time.Second

// idleActions are, on a partitioned store, the actions that this process's
// last full look (a lease call that asked every partition, or its look at
// which actions are busy) found with nothing queued or held in any
// partition. Lease calls leave them out (leaseParts): each would cost the
// gate and settle scripts, and, always short of what it asked, a look in
// every partition, for nothing. A mark holds for idleFor at most, and goes at once
// when a wake-up names the action (an accept queued a delivery of it, a
// finish let one go in its lane, a lease was given back, a delivery was
// retried by hand or added) or names none (one from an older process). A
// full look marks an action only when no wake-up that would have removed
// the mark came while it ran.
type idleActions struct {
	mu    sync.Mutex
	until map[string]time.Time
	named map[string]uint64 // per action, the wake-ups that named it
	any   uint64            // the wake-ups that named no action
}

// wakePayload is the message that wakes the relays for n deliveries
// queued of the actions named (none: unknown).
func wakePayload(n int, actions []string) string {
	if len(actions) == 0 {
		return strconv.Itoa(n)
	}
	return strconv.Itoa(n) + " " + strings.Join(actions, " ")
}

// queued tells the idle marks of a partitioned store that this process
// queued deliveries of actions (nil: of any action), once they are
// written: the marks go at once, not when the wake-up comes back, and go
// even if it never does.
func (s *Store) queued(actions []string) {
	if s.partitioned() {
		s.idle.forget(actions)
	}
}

// actionsOf returns the actions of xs, each once, in the order first met.
func actionsOf[T any](xs []T, action func(T) string) []string {
	var actions []string
	for _, x := range xs {
		actions = addActions(actions, action(x))
	}
	return actions
}

// addActions appends to actions each of names it does not hold yet.
func addActions(actions []string, names ...string) []string {
	for _, a := range names {
		if !slices.Contains(actions, a) {
			actions = append(actions, a)
		}
	}
	return actions
}

func deliveryAction(d store.Delivery) string { return d.Action }

func leaseAction(l store.Lease) string { return l.Delivery.Action }

// woken takes a wake-up's message (wakePayload) into account.
func (ia *idleActions) woken(payload string) {
	_, names, _ := strings.Cut(payload, " ")
	ia.forget(strings.Fields(names))
}

// forget ends the marks of actions (none named: of every action), and
// keeps a look under way from setting them.
func (ia *idleActions) forget(actions []string) {
	ia.mu.Lock()
	defer ia.mu.Unlock()
	if len(actions) == 0 {
		ia.any++
		clear(ia.until)
		return
	}
	if ia.named == nil {
		ia.named = map[string]uint64{}
	}
	for _, name := range actions {
		ia.named[name]++
		delete(ia.until, name)
	}
}

// look is what a full look began with: the wake-ups counted so far, per
// action of the call and in all.
type look struct {
	any   uint64
	named []uint64
}

// begin notes the wake-ups counted before a lease call of actions.
func (ia *idleActions) begin(actions []string) look {
	ia.mu.Lock()
	defer ia.mu.Unlock()
	l := look{any: ia.any, named: make([]uint64, len(actions))}
	for i, a := range actions {
		l.named[i] = ia.named[a]
	}
	return l
}

// mark takes the i-th action of the call that began with l for idle until
// idleFor after now, unless a wake-up that concerns it came since.
func (ia *idleActions) mark(l look, i int, action string, now time.Time) {
	ia.mu.Lock()
	defer ia.mu.Unlock()
	if ia.any != l.any || ia.named[action] != l.named[i] {
		return
	}
	if ia.until == nil {
		ia.until = map[string]time.Time{}
	}
	ia.until[action] = now.Add(idleFor)
}

// idle reports whether action is taken for idle at now.
func (ia *idleActions) idle(action string, now time.Time) bool {
	ia.mu.Lock()
	defer ia.mu.Unlock()
	return ia.idleLocked(action, now)
}

func (ia *idleActions) idleLocked(action string, now time.Time) bool {
	until, ok := ia.until[action]
	if ok && !now.Before(until) {
		delete(ia.until, action)
		return false
	}
	return ok
}

// busy returns the quotas of qs whose actions are not taken for idle at
// now: qs itself when none is.
func (ia *idleActions) busy(qs []store.ActionQuota, now time.Time) []store.ActionQuota {
	ia.mu.Lock()
	defer ia.mu.Unlock()
	if len(ia.until) == 0 {
		return qs
	}
	var out []store.ActionQuota
	for i, q := range qs {
		switch idle := ia.idleLocked(q.Action, now); {
		case idle && out == nil:
			out = append(make([]store.ActionQuota, 0, len(qs)), qs[:i]...)
		case !idle && out != nil:
			out = append(out, q)
		}
	}
	if out == nil {
		return qs
	}
	return out
}
