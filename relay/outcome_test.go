package relay

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/store"
)

func TestSchedule(t *testing.T) {
	s := Schedule{time.Minute, 5 * time.Minute}
	for _, c := range []struct {
		attempt int
		want    time.Duration
		ok      bool
	}{{0, 0, false}, {1, time.Minute, true}, {2, 5 * time.Minute, true}, {3, 0, false}} {
		got, ok := s.Next(c.attempt)
		if got != c.want || ok != c.ok {
			t.Errorf("Next(%d) = %v, %t; want %v, %t", c.attempt, got, ok, c.want, c.ok)
		}
	}
}

func TestOutcome(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	r := New(nil, nil, nil, Options{Now: func() time.Time { return now }})
	act := &actions.Action{Name: "a", Retry: []time.Duration{time.Minute, time.Hour}}
	failure := errors.New("status 500")
	cases := []struct {
		name      string
		n         int
		err, perm error
		want      store.Outcome
	}{
		{"success", 1, nil, nil, store.Outcome{Status: store.DeliverySucceeded}},
		{"first failure waits the first step", 1, failure, nil, store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: now.Add(time.Minute), Error: "status 500"}},
		{"second failure waits the second step", 2, failure, nil, store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: now.Add(time.Hour), Error: "status 500"}},
		{"last attempt", 3, failure, nil, store.Outcome{Status: store.DeliveryDead, Error: "status 500 (after 3 attempts)"}},
		{"permanent from the action", 1, fmt.Errorf("header: %w", actions.ErrPermanent), nil, store.Outcome{Status: store.DeliveryDead, Error: "header: " + actions.ErrPermanent.Error()}},
		{"permanent before sending", 1, nil, errors.New("action gone"), store.Outcome{Status: store.DeliveryDead, Error: "action gone"}},
		{"Retry-After honoured", 1, &actions.RetryAfterError{At: now.Add(10 * time.Minute), StatusCode: 429}, nil, store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: now.Add(10 * time.Minute)}},
		{"Retry-After capped", 1, &actions.RetryAfterError{At: now.Add(72 * time.Hour), StatusCode: 503}, nil, store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: now.Add(maxRetryAfter)}},
		{"Retry-After in the past uses the schedule", 1, &actions.RetryAfterError{At: now.Add(-time.Second), StatusCode: 429}, nil, store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: now.Add(time.Minute)}},
		{"Retry-After does not extend attempts", 3, &actions.RetryAfterError{At: now.Add(time.Minute), StatusCode: 429}, nil, store.Outcome{Status: store.DeliveryDead}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := r.outcome(act, c.n, c.err, c.perm)
			if got.Status != c.want.Status || !got.NextAttemptAt.Equal(c.want.NextAttemptAt) {
				t.Errorf("outcome = %+v, want %+v", got, c.want)
			}
			if c.want.Error != "" && got.Error != c.want.Error {
				t.Errorf("error = %q, want %q", got.Error, c.want.Error)
			}
		})
	}
}
