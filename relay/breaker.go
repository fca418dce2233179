package relay

import (
	"time"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/store"
)

// verdict is what an attempt says about its destination's health.
type verdict int

const (
	neutral verdict = iota // says nothing (a 4xx about the request, an error before sending)
	healthy                // a 2xx
	failing                // no answer, a timeout, 408, 429 or a 5xx
)

// Breaker decides an action's circuit breaker transitions from the
// verdicts of its attempts. The state itself lives in the store, shared by
// every process; the store enforces its gate when leasing (store.Gate),
// including the move from open to half-open when a probe is leased.
type Breaker struct {
	Failures    int           // consecutive failures that open it
	Cooldown    time.Duration // the first wait while open
	MaxCooldown time.Duration // the wait doubles per failed probe, up to this
}

// BreakerFor is the breaker of an action.
func BreakerFor(a *actions.Action) Breaker {
	return Breaker{Failures: a.Breaker.Failures, Cooldown: a.Breaker.Cooldown, MaxCooldown: a.Breaker.MaxCooldown}
}

// cooldown is the wait after the breaker opened for the opens-th time in a row.
func (b Breaker) cooldown(opens int) time.Duration {
	d := b.Cooldown
	for i := 1; i < opens && d < b.MaxCooldown; i++ {
		d *= 2
	}
	return min(d, max(b.MaxCooldown, b.Cooldown))
}

// Record applies one verdict observed at now to s and reports whether s
// changed. Any 2xx closes the breaker. A failure while closed counts, and
// the Failures-th in a row opens it; a failed probe (half-open) opens it
// again for longer; failures of attempts that were already in flight when
// it opened change nothing.
func (b Breaker) Record(s store.ActionState, v verdict, now time.Time, why string) (store.ActionState, bool) {
	switch v {
	case healthy:
		if closed(s) && s.Failures == 0 && s.Opens == 0 && s.BlockedUntil.IsZero() {
			return s, false
		}
		s.Breaker, s.Failures, s.Opens, s.BlockedUntil, s.LastError = store.BreakerClosed, 0, 0, time.Time{}, ""
		s.ChangedAt = now
		return s, true
	case failing:
		switch {
		case s.Breaker == store.BreakerOpen:
			return s, false
		case s.Breaker == store.BreakerHalfOpen:
			s.Opens++
		default:
			s.Failures++
			s.LastError = why
			if s.Failures < b.Failures {
				return s, true
			}
			s.Opens = 1
		}
		s.Breaker, s.LastError, s.ChangedAt = store.BreakerOpen, why, now
		s.BlockedUntil = now.Add(b.cooldown(s.Opens))
		return s, true
	}
	return s, false
}

func closed(s store.ActionState) bool {
	return s.Breaker == "" || s.Breaker == store.BreakerClosed
}
