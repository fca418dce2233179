package store

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// CheckFinish is the rule both backends apply to a Finish before storing
// it: the outcome must be succeeded, retrying or dead, and the attempt must
// say when it started (no backend reads the clock). It returns the finish
// with the attempt's DeliveryID filled in and a retry without a time due
// when the attempt ended, and the time the delivery changed: the end of
// the attempt.
func CheckFinish(f Finish) (Finish, time.Time, error) {
	id := f.Lease.Delivery.ID
	switch f.Outcome.Status {
	case DeliverySucceeded, DeliveryRetrying, DeliveryDead:
	default:
		return f, time.Time{}, fmt.Errorf("finish %s: outcome status %q: want succeeded, retrying or dead", id, f.Outcome.Status)
	}
	if f.Attempt.StartedAt.IsZero() {
		return f, time.Time{}, fmt.Errorf("finish %s: the attempt has no start time", id)
	}
	if f.Attempt.DeliveryID == "" {
		f.Attempt.DeliveryID = id
	}
	ended := f.Attempt.StartedAt.Add(f.Attempt.Duration)
	if f.Outcome.Status == DeliveryRetrying && f.Outcome.NextAttemptAt.IsZero() {
		f.Outcome.NextAttemptAt = ended
	}
	return f, ended, nil
}

// ErrBadQuota: a LeaseRequest that no backend can serve.
var ErrBadQuota = errors.New("bad lease request")

// CheckLeaseRequest is the rule both backends apply to a LeaseRequest: a
// positive TTL, named actions, each at most once, and quotas without
// work dropped.
func CheckLeaseRequest(r LeaseRequest) (LeaseRequest, error) {
	if r.TTL <= 0 {
		return r, fmt.Errorf("%w: lease TTL %v: want a positive duration", ErrBadQuota, r.TTL)
	}
	seen := make(map[string]bool, len(r.Actions))
	qs := make([]ActionQuota, 0, len(r.Actions))
	for _, q := range r.Actions {
		if q.Action == "" {
			return r, fmt.Errorf("%w: a quota names no action", ErrBadQuota)
		}
		if seen[q.Action] {
			return r, fmt.Errorf("%w: action %q is asked for twice", ErrBadQuota, q.Action)
		}
		seen[q.Action] = true
		if q.N <= 0 {
			continue
		}
		if q.Probe < r.TTL {
			q.Probe = r.TTL
		}
		if q.Max <= 0 {
			q.Recording = nil
		}
		qs = append(qs, q)
	}
	r.Actions = qs
	return r, nil
}

// Gate is the rule both backends apply, when leasing, to an action's
// stored state s (the zero ActionState when none is stored): how many of
// the n deliveries asked for may be leased at now, and whether leasing one
// of them is a breaker probe, after which the state must become Probing's
// result. A paused action leases none; one whose BlockedUntil lies ahead
// leases none; one whose BlockedUntil has passed leases one probe.
func Gate(s ActionState, now time.Time, n int) (allowed int, probe bool) {
	switch {
	case n <= 0 || s.Paused:
		return 0, false
	case s.BlockedUntil.IsZero():
		return n, false
	case now.Before(s.BlockedUntil):
		return 0, false
	}
	return 1, true
}

// Probing is the state after a probe of s was leased at now: half-open,
// and blocked until the probe may have ended.
func Probing(s ActionState, now time.Time, hold time.Duration) ActionState {
	s.Breaker = BreakerHalfOpen
	s.BlockedUntil = now.Add(hold)
	s.ChangedAt = now
	s.Version++
	return s
}

// Rate is a limit of Count attempts per Per, such as 50/s or 1000/m.
type Rate struct {
	Count int
	Per   time.Duration
	// AtOnce, when above zero, is how many r lets through at once
	// (Burst); zero is a tenth of a second's worth.
	AtOnce int
}

// Burst is how many attempts r lets through at once: AtOnce when set, or
// a tenth of a second's worth, at least one. A whole period's worth would
// let an idle action start that many at once and then keep the rate, so
// that twice the count could arrive within one period; with this burst,
// "50/s" is five every 100 ms and a period sees little more than its
// count.
func (r Rate) Burst() int {
	if r.IsZero() {
		return 1
	}
	if r.AtOnce > 0 {
		return r.AtOnce
	}
	return max(1, int(math.Ceil(float64(r.Count)*float64(100*time.Millisecond)/float64(r.Per))))
}

// IsZero reports whether r sets no limit.
func (r Rate) IsZero() bool { return r.Count <= 0 || r.Per <= 0 }

func (r Rate) String() string {
	if r.IsZero() {
		return "unlimited"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[r.Per]
	if unit == "" {
		return fmt.Sprintf("%d/%v", r.Count, r.Per)
	}
	return fmt.Sprintf("%d/%s", r.Count, unit)
}
