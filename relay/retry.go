package relay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/store"
)

// Defaults of a Retry policy.
const (
	// DefaultJitter spreads retries ±20 % around the schedule, so that the
	// deliveries that failed together while a destination was down do not
	// all come back in the same instant once it recovers.
	DefaultJitter = 0.2
	// DefaultMaxRetryAfter bounds how far a receiver's Retry-After may push
	// a delivery.
	DefaultMaxRetryAfter = 24 * time.Hour
)

// Retry decides what follows an attempt: success on a 2xx; dead at once
// on a permanent error or 410 Gone; otherwise the next step of the
// schedule with jitter, or the time a Retry-After named (capped); dead
// when the schedule is used up.
type Retry struct {
	// Schedule is the wait after each failed attempt: attempt n failing
	// waits Schedule[n-1], so k waits allow k+1 attempts.
	Schedule []time.Duration
	// Jitter is the fraction each wait may vary by, both ways.
	Jitter float64
	// MaxRetryAfter caps a Retry-After.
	MaxRetryAfter time.Duration
	// Rand returns a number in [0, 1); nil uses math/rand/v2.
	Rand func() float64
}

// RetryFor is the policy of an action: its schedule with the defaults.
func RetryFor(a *actions.Action) Retry {
	return Retry{Schedule: a.Retry, Jitter: DefaultJitter, MaxRetryAfter: DefaultMaxRetryAfter}
}

// Wait is the wait after attempt n (1-based) failed, jittered, and false
// when no attempt is left. It is never below the step by more than the
// jitter, nor above it.
func (p Retry) Wait(n int) (time.Duration, bool) {
	if n < 1 || n > len(p.Schedule) {
		return 0, false
	}
	step := p.Schedule[n-1]
	if p.Jitter <= 0 || step <= 0 {
		return step, true
	}
	r := p.Rand
	if r == nil {
		r = rand.Float64
	}
	f := 1 + p.Jitter*(2*r()-1)
	return time.Duration(float64(step) * f), true
}

// Outcome is what follows attempt n, answered with res, at now.
func (p Retry) Outcome(n int, res actions.Result, now time.Time) store.Outcome {
	if res.Err == nil {
		return store.Outcome{Status: store.DeliverySucceeded, Reason: store.ReasonSucceeded}
	}
	msg := res.Err.Error()
	if errors.Is(res.Err, actions.ErrPermanent) {
		return store.Outcome{Status: store.DeliveryDead, Error: msg, Reason: store.ReasonPermanent}
	}
	if res.StatusCode == http.StatusGone {
		return store.Outcome{Status: store.DeliveryDead, Error: msg + " (410 Gone: the receiver says this endpoint no longer exists, so it is not retried)", Reason: store.ReasonGone}
	}
	wait, ok := p.Wait(n)
	if !ok {
		return store.Outcome{Status: store.DeliveryDead, Error: fmt.Sprintf("%s (after %d attempts)", msg, n), Reason: store.ReasonLastAttempt}
	}
	next, reason := now.Add(wait), store.ReasonRetry
	var ra *actions.RetryAfterError
	if errors.As(res.Err, &ra) && ra.At.After(now) {
		next, reason = ra.At, store.ReasonRetryAfter
		if limit := now.Add(p.MaxRetryAfter); p.MaxRetryAfter > 0 && next.After(limit) {
			next = limit
		}
	}
	return store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: next, Error: msg, Reason: reason}
}

// destinationFailed reports whether res says the destination itself is
// unwell — no answer, a timeout, 408, 429 or a 5xx — which is what the
// circuit breaker counts. A 4xx about the request, or an error before
// sending, says nothing of the destination's health.
func destinationFailed(res actions.Result) bool {
	if res.Err == nil || errors.Is(res.Err, actions.ErrPermanent) {
		return false
	}
	switch c := res.StatusCode; {
	case c == 0, c >= 500, c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		return true
	}
	return false
}
