package relay

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// finishItem is an attempt ready to be recorded.
type finishItem struct {
	f       store.Finish
	act     *actions.Action // nil when the action left the config
	verdict verdict
	status  int  // the answer's status code, 0 without one
	freed   bool // its slot was given back when the attempt ended
	result  string
}

// The results of attempts, as Metrics.AttemptFinished reports them: success,
// dead (the delivery's last attempt failed, or failed for good), or why an
// attempt that will be retried failed.
const (
	ResultSuccess     = "success"
	ResultDead        = "dead"
	ResultTimeout     = "timeout"      // no answer within the action's timeout
	ResultNetwork     = "network"      // no answer: refused, reset, name not found
	ResultRedirect    = "redirect"     // a 3xx, which is not followed
	ResultThrottled   = "throttled"    // 429
	ResultClientError = "client_error" // another 4xx
	ResultServerError = "server_error" // a 5xx
	ResultAbandoned   = "abandoned"    // stopped at shutdown or when the lease was lost; not recorded
	ResultUnreadable  = "unreadable"   // the stored event could not be read (store.Lease.Err); nothing was sent
)

// Results lists every result, so that a counter can start at zero for each.
var Results = []string{ResultSuccess, ResultDead, ResultTimeout, ResultNetwork, ResultRedirect,
	ResultThrottled, ResultClientError, ResultServerError, ResultAbandoned, ResultUnreadable}

// result names the result of an attempt whose outcome is out.
func result(out store.Outcome, res actions.Result) string {
	switch {
	case out.Status == store.DeliverySucceeded:
		return ResultSuccess
	case out.Status == store.DeliveryDead:
		return ResultDead
	case errors.Is(res.Err, errUnreadable):
		return ResultUnreadable
	case res.StatusCode == http.StatusTooManyRequests:
		return ResultThrottled
	case res.StatusCode >= 500:
		return ResultServerError
	case res.StatusCode >= 400:
		return ResultClientError
	case res.StatusCode >= 300:
		return ResultRedirect
	case errors.Is(res.Err, context.DeadlineExceeded):
		return ResultTimeout
	}
	return ResultNetwork
}

// permanentError is a failure before anything was sent that retrying
// cannot mend.
type permanentError struct{ msg string }

func (e *permanentError) Error() string { return e.msg }
func (e *permanentError) Unwrap() error { return actions.ErrPermanent }

// perform runs one attempt of a leased delivery. It reports false when the
// attempt was stopped before its outcome was known (shutdown, or the lease
// was lost): then nothing is to be recorded.
func (r *Relay) perform(ctx context.Context, l store.Lease, act *actions.Action) (finishItem, bool) {
	d := l.Delivery
	n := d.Attempts + 1
	start := r.o.Now()
	attempt := store.Attempt{DeliveryID: d.ID, N: n, StartedAt: start}
	limits := r.o.Limits()

	var res actions.Result
	if l.Err != nil {
		res.Err = unreadable(l.Err)
	} else if act == nil {
		res.Err = &permanentError{fmt.Sprintf("action %q is not in the config any more", d.Action)}
	} else if body, err := r.decode(act, l.Event, limits); err != nil {
		res.Err = &permanentError{fmt.Sprintf("stored payload cannot be decoded: %v", err)}
	} else {
		// A template over its budget fails to render: a permanent error,
		// and the delivery is dead with the reason.
		res = r.send.Do(ctx, act, rules.NewEnv(l.Event, body).Limit(limits), d.ID)
		if cause := context.Cause(ctx); cause != nil && res.Err != nil {
			// Stopped mid-attempt: not the receiver's doing and not
			// counted. A 2xx that arrived all the same is recorded.
			log := r.log.With("hook", d.Hook, "event_id", d.EventID, "delivery_id", d.ID, "action", d.Action, "attempt", n)
			if errors.Is(cause, errLeaseLost) {
				log.Warn("attempt stopped: its lease was lost, another worker owns the delivery")
			} else {
				log.Warn("attempt abandoned at shutdown; its delivery is released")
			}
			return finishItem{}, false
		}
		attempt.Method, attempt.URL = res.Method, res.URL
		attempt.RequestHeaders = res.RequestHeaders
		attempt.StatusCode = res.StatusCode
		attempt.ResponseBody = res.ResponseBody
		attempt.Trace = res.Trace
	}
	attempt.Duration = res.Duration
	if res.Duration == 0 {
		attempt.Duration = r.o.Now().Sub(start)
	}
	if res.Err != nil {
		attempt.Error = res.Err.Error()
	}

	retry := Retry{}
	if act != nil {
		retry = RetryFor(act)
		retry.Rand = r.o.Rand
	}
	out := retry.Outcome(n, res, start.Add(attempt.Duration))
	attempt.Outcome, attempt.Reason, attempt.NextAttemptAt = out.Status, out.Reason, out.NextAttemptAt
	v := neutral
	switch {
	case l.Err != nil:
		// Nothing was sent: not the destination's doing.
	case res.Err == nil:
		v = healthy
	case destinationFailed(res):
		v = failing
	}
	return finishItem{
		f:       store.Finish{Lease: l, Attempt: attempt, Outcome: out},
		act:     act,
		verdict: v,
		status:  res.StatusCode,
		result:  result(out, res),
	}, true
}

// unreadable is the error of an attempt whose event the store could not
// read (store.Lease.Err), made without sending anything. An event that is
// gone can never be sent: the delivery is dead. One sealed with a key this
// process lacks is retried on the action's schedule: the key may come back
// to the ring, or another process that holds it may take the next try.
func unreadable(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &permanentError{fmt.Sprintf("the event cannot be sent, it is gone from the store: %v", err)}
	}
	return fmt.Errorf("%w: %w", errUnreadable, err)
}

// errUnreadable heads the error of an attempt whose event this process
// could not read (unreadable): its result is ResultUnreadable.
var errUnreadable = errors.New("the stored event cannot be read by this process, nothing was sent")

// decode parses the stored payload for an action that reads it, as far as
// its templates read it; a plain forward of the raw body skips the work.
func (r *Relay) decode(act *actions.Action, ev store.Event, limits rules.Limits) (any, error) {
	if !act.Interpolates() {
		return nil, nil
	}
	return rules.DecodeBodyShaped(ev.Body, ev.Headers["content-type"], r.o.MaxDepth, limits.MaxValues(), act.BodyShape())
}
