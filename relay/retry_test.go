package relay

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/store"
)

func TestRetryWaitJitterStaysWithinBounds(t *testing.T) {
	p := Retry{Schedule: []time.Duration{time.Minute, 10 * time.Minute}, Jitter: 0.2}
	for _, r := range []float64{0, 0.25, 0.5, 0.999999} {
		p.Rand = func() float64 { return r }
		for n, step := range p.Schedule {
			got, ok := p.Wait(n + 1)
			lo, hi := time.Duration(float64(step)*0.8), time.Duration(float64(step)*1.2)
			if !ok || got < lo || got > hi {
				t.Errorf("Wait(%d) with rand %v = %v, %t; want within [%v, %v]", n+1, r, got, ok, lo, hi)
			}
		}
	}
	p.Rand = func() float64 { return 0 }
	if got, _ := p.Wait(1); got != 48*time.Second {
		t.Errorf("Wait(1) at the low end = %v, want 48s (20 %% below 1m)", got)
	}
	p.Rand = func() float64 { return 0.5 }
	if got, _ := p.Wait(2); got != 10*time.Minute {
		t.Errorf("Wait(2) in the middle = %v, want the step itself", got)
	}
	// Spread: many draws are not all the same.
	p.Rand = nil
	seen := map[time.Duration]bool{}
	for range 50 {
		d, _ := p.Wait(1)
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("50 jittered waits gave %d distinct values, want them spread", len(seen))
	}
	for _, n := range []int{0, 3} {
		if _, ok := p.Wait(n); ok {
			t.Errorf("Wait(%d) = ok, want no attempt left", n)
		}
	}
}

func TestRetryOutcome(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	p := Retry{Schedule: []time.Duration{time.Minute, time.Hour}, MaxRetryAfter: 24 * time.Hour}
	status := func(code int) actions.Result {
		return actions.Result{StatusCode: code, Err: fmt.Errorf("status %d", code)}
	}
	ra := func(at time.Time, code int) actions.Result {
		return actions.Result{StatusCode: code, Err: &actions.RetryAfterError{At: at, StatusCode: code}}
	}
	cases := []struct {
		name string
		n    int
		res  actions.Result
		want store.Outcome
	}{
		{"success", 1, actions.Result{StatusCode: 204}, store.Outcome{Status: store.DeliverySucceeded}},
		{"first failure waits the first step", 1, status(500), store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: now.Add(time.Minute), Error: "status 500"}},
		{"second failure waits the second step", 2, status(502), store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: now.Add(time.Hour), Error: "status 502"}},
		{"last attempt", 3, status(500), store.Outcome{Status: store.DeliveryDead, Error: "status 500 (after 3 attempts)"}},
		{"410 is final at once", 1, status(410), store.Outcome{Status: store.DeliveryDead, Error: "status 410 (410 Gone: the receiver says this endpoint no longer exists, so it is not retried)"}},
		{"permanent", 1, actions.Result{Err: fmt.Errorf("header: %w", actions.ErrPermanent)}, store.Outcome{Status: store.DeliveryDead, Error: "header: " + actions.ErrPermanent.Error()}},
		{"permanent before sending", 1, actions.Result{Err: &permanentError{"action gone"}}, store.Outcome{Status: store.DeliveryDead, Error: "action gone"}},
		{"expired token, attempts left", 1, actions.Result{Err: &actions.TokenExpiredError{At: now.Add(-time.Minute)}}, store.Outcome{Status: store.DeliveryDead, Error: "token expired at 2026-11-23T11:59:00Z"}},
		{"Retry-After honoured", 1, ra(now.Add(10*time.Minute), http.StatusTooManyRequests), store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: now.Add(10 * time.Minute)}},
		{"Retry-After capped", 1, ra(now.Add(72*time.Hour), http.StatusServiceUnavailable), store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: now.Add(24 * time.Hour)}},
		{"Retry-After in the past uses the schedule", 1, ra(now.Add(-time.Second), 429), store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: now.Add(time.Minute)}},
		{"Retry-After does not extend attempts", 3, ra(now.Add(time.Minute), 429), store.Outcome{Status: store.DeliveryDead}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := p.Outcome(c.n, c.res, now)
			if got.Status != c.want.Status || !got.NextAttemptAt.Equal(c.want.NextAttemptAt) {
				t.Errorf("Outcome = %+v, want %+v", got, c.want)
			}
			if c.want.Error != "" && got.Error != c.want.Error {
				t.Errorf("error = %q, want %q", got.Error, c.want.Error)
			}
		})
	}
}

func TestDestinationFailed(t *testing.T) {
	fail := errors.New("x")
	for _, c := range []struct {
		res  actions.Result
		want bool
	}{
		{actions.Result{StatusCode: 200}, false},
		{actions.Result{Err: fail}, true}, // no answer
		{actions.Result{StatusCode: 500, Err: fail}, true},
		{actions.Result{StatusCode: 503, Err: fail}, true},
		{actions.Result{StatusCode: 429, Err: fail}, true},
		{actions.Result{StatusCode: 408, Err: fail}, true},
		{actions.Result{StatusCode: 400, Err: fail}, false},
		{actions.Result{StatusCode: 404, Err: fail}, false},
		{actions.Result{StatusCode: 410, Err: fail}, false},
		{actions.Result{Err: &permanentError{"refused"}}, false},
		{actions.Result{Err: &actions.TokenExpiredError{At: time.Unix(0, 0)}}, false},
	} {
		if got := destinationFailed(c.res); got != c.want {
			t.Errorf("destinationFailed(status %d, %v) = %t, want %t", c.res.StatusCode, c.res.Err, got, c.want)
		}
	}
}
