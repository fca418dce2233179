package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// Queue is what the relay needs from the store.
type Queue interface {
	Lease(ctx context.Context, now time.Time, n int, ttl time.Duration) ([]store.Lease, error)
	Finish(ctx context.Context, l store.Lease, a store.Attempt, o store.Outcome) error
	NextDue(ctx context.Context) (time.Time, error)
	Wake(ctx context.Context) <-chan struct{}
}

// Sender performs one attempt of an action.
type Sender interface {
	Do(ctx context.Context, a *actions.Action, env rules.Env, idempotencyKey string) actions.Result
}

// Options tune a Relay.
type Options struct {
	Workers  int           // concurrent attempts; default 8
	Lease    time.Duration // how long a worker holds a delivery; default 30s
	Grace    time.Duration // how long in-flight attempts may finish after stop; default 10s
	MaxWait  time.Duration // longest sleep between polls of the due index; default 1s
	Logger   *slog.Logger
	Now      func() time.Time
	MaxDepth int // JSON nesting cap when decoding stored payloads; default 64
}

// Relay leases due deliveries and performs them.
type Relay struct {
	q      Queue
	send   Sender
	config func() *config.Config
	o      Options
	log    *slog.Logger
}

// New returns a relay taking work from q, looking actions up in the config
// that cfg returns at the time of each attempt.
func New(q Queue, send Sender, cfg func() *config.Config, o Options) *Relay {
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.MaxWait <= 0 {
		o.MaxWait = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = 64
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Relay{q: q, send: send, config: cfg, o: o, log: log}
}

// Run leases and performs deliveries until ctx is done. It then stops
// leasing, lets attempts in flight finish within the grace period, cancels
// those still running (their leases expire and another worker takes them
// over) and returns nil.
func (r *Relay) Run(ctx context.Context) error {
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	slots := make(chan struct{}, r.o.Workers)
	for range r.o.Workers {
		slots <- struct{}{}
	}
	var wg sync.WaitGroup
	wake := r.q.Wake(ctx)
	// kick wakes the poller when an attempt finished: a retry may now be
	// due sooner than the poller planned to look.
	kick := make(chan struct{}, 1)

	for ctx.Err() == nil {
		// Wait for at least one free worker.
		select {
		case <-slots:
		case <-ctx.Done():
			continue
		}
		free := 1
	more:
		for free < r.o.Workers {
			select {
			case <-slots:
				free++
			default:
				break more
			}
		}
		leases, err := r.q.Lease(ctx, r.o.Now(), free, r.o.Lease)
		if err != nil && ctx.Err() == nil {
			r.log.Error("lease failed", "error", err)
		}
		for _, l := range leases {
			wg.Add(1)
			go func(l store.Lease) {
				defer wg.Done()
				defer func() {
					slots <- struct{}{}
					select {
					case kick <- struct{}{}:
					default:
					}
				}()
				r.perform(workCtx, l)
			}(l)
		}
		for range free - len(leases) {
			slots <- struct{}{}
		}
		if len(leases) > 0 || ctx.Err() != nil {
			continue
		}
		r.wait(ctx, wake, kick, err != nil)
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.o.Grace):
		r.log.Warn("grace period over, cancelling attempts in flight")
		cancelWork()
		<-done
	}
	return nil
}

// wait sleeps until new work arrives, the earliest delivery falls due, or MaxWait.
func (r *Relay) wait(ctx context.Context, wake, kick <-chan struct{}, failed bool) {
	d := r.o.MaxWait
	if !failed {
		if next, err := r.q.NextDue(ctx); err == nil && !next.IsZero() {
			if until := next.Sub(r.o.Now()); until < d {
				d = max(until, time.Millisecond)
			}
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-kick:
	case <-t.C:
	}
}

// perform runs one attempt of a leased delivery and records its outcome.
func (r *Relay) perform(ctx context.Context, l store.Lease) {
	d := l.Delivery
	n := d.Attempts + 1
	log := r.log.With("hook", d.Hook, "event_id", d.EventID, "delivery_id", d.ID, "action", d.Action, "attempt", n)

	start := r.o.Now()
	attempt := store.Attempt{DeliveryID: d.ID, N: n, StartedAt: start}
	var res actions.Result
	var permanent error

	act, ok := r.config().Actions[d.Action]
	if !ok {
		permanent = fmt.Errorf("action %q is not in the config any more", d.Action)
	} else if body, err := rules.DecodeBody(l.Event.Body, l.Event.Headers["content-type"], r.o.MaxDepth); err != nil {
		permanent = fmt.Errorf("stored payload cannot be decoded: %w", err)
	} else {
		res = r.send.Do(ctx, act, rules.NewEnv(l.Event, body), d.ID)
		if ctx.Err() != nil {
			// Stopped mid-attempt: not the receiver's fault and not counted.
			// The lease expires and another worker performs the delivery.
			log.Warn("attempt abandoned at shutdown")
			return
		}
		attempt.Method, attempt.URL = res.Method, res.URL
		attempt.RequestHeaders = res.RequestHeaders
		attempt.StatusCode = res.StatusCode
		attempt.Duration = res.Duration
		attempt.ResponseBody = res.ResponseBody
	}
	if permanent != nil {
		attempt.Error = permanent.Error()
		attempt.Duration = r.o.Now().Sub(start)
	} else if res.Err != nil {
		attempt.Error = res.Err.Error()
	}

	out := r.outcome(act, n, res.Err, permanent)
	if err := r.q.Finish(context.WithoutCancel(ctx), l, attempt, out); err != nil {
		if errors.Is(err, store.ErrLeaseLost) {
			log.Warn("lease lost before the attempt was recorded; another worker owns the delivery")
			return
		}
		log.Error("recording the attempt failed; the delivery will be attempted again", "error", err)
		return
	}
	switch out.Status {
	case store.DeliverySucceeded:
		log.Info("delivery succeeded", "status", res.StatusCode, "latency", res.Duration)
	case store.DeliveryRetrying:
		log.Warn("attempt failed, will retry", "status", res.StatusCode, "error", out.Error, "next_attempt_at", out.NextAttemptAt)
	case store.DeliveryDead:
		log.Error("delivery dead", "status", res.StatusCode, "error", out.Error)
	}
}

// outcome decides what happens after attempt n.
func (r *Relay) outcome(act *actions.Action, n int, err, permanent error) store.Outcome {
	if permanent != nil {
		return store.Outcome{Status: store.DeliveryDead, Error: permanent.Error()}
	}
	if err == nil {
		return store.Outcome{Status: store.DeliverySucceeded}
	}
	msg := err.Error()
	if errors.Is(err, actions.ErrPermanent) {
		return store.Outcome{Status: store.DeliveryDead, Error: msg}
	}
	wait, ok := Schedule(act.Retry).Next(n)
	if !ok {
		return store.Outcome{Status: store.DeliveryDead, Error: fmt.Sprintf("%s (after %d attempts)", msg, n)}
	}
	now := r.o.Now()
	next := now.Add(wait)
	var ra *actions.RetryAfterError
	if errors.As(err, &ra) && ra.At.After(now) {
		next = ra.At
		if limit := now.Add(maxRetryAfter); next.After(limit) {
			next = limit
		}
	}
	return store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: next, Error: msg}
}
