package relay

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// Queue is what the relay needs from the store.
type Queue interface {
	Lease(ctx context.Context, r store.LeaseRequest) (store.LeaseBatch, error)
	Renew(ctx context.Context, now time.Time, ttl time.Duration, ls []store.Lease) ([]time.Time, error)
	Finish(ctx context.Context, fs []store.Finish) ([]error, error)
	Release(ctx context.Context, at time.Time, ls []store.Lease) error
	Wake(ctx context.Context) <-chan struct{}
	ActionStates(ctx context.Context) ([]store.ActionState, error)
	PutActionState(ctx context.Context, s store.ActionState) (store.ActionState, error)
	QueueStats(ctx context.Context, now time.Time) ([]store.QueueStats, error)
}

// Sender performs one attempt of an action.
type Sender interface {
	Do(ctx context.Context, a *actions.Action, env rules.Env, idempotencyKey string) actions.Result
}

// Metrics records the relay's attempts. The action names given are the
// config's.
type Metrics interface {
	// AttemptStarted reports an attempt that begins; AttemptFinished the
	// same attempt's end, with its result (see Result*) and duration.
	AttemptStarted(action string)
	AttemptFinished(action, result string, d time.Duration)
	// Offered reports n deliveries offered to be taken at their accept
	// (Offer); HandedOff a delivery so taken rather than leased from the
	// queue, whose attempt is reported as any other. The store refused
	// those offered and not handed off.
	Offered(action string, n int)
	HandedOff(action string)
	// OutcomeRecording reports an ended attempt whose outcome is being
	// written to the store (on), and the end of that (off).
	OutcomeRecording(action string, on bool)
	// StoreError reports a failed store operation; StoreCall the time a
	// call to the store took, failed or not: op "lease" or "finish".
	StoreError(op string)
	StoreCall(op string, d time.Duration)
}

// Options tune a Relay.
type Options struct {
	// Metrics, when set, records every attempt.
	Metrics Metrics
	// MaxInFlight caps the attempts in flight in this process across all
	// actions; each action's own concurrency applies within it. Default 1000.
	MaxInFlight int
	// Lease is how long a lease holds before it must be renewed; attempts
	// in flight renew theirs every third of it. Default 30s.
	Lease time.Duration
	// Grace is how long attempts in flight may finish after stop; default 10s.
	Grace time.Duration
	// MaxWait is the longest sleep between looks at the queue; default 1s.
	MaxWait time.Duration
	// MaxBatch caps the deliveries of one action taken in one lease call;
	// default 100.
	MaxBatch int
	// OrphanScan is how often the relay looks for queued deliveries of
	// actions that left the config (they are made dead); default 5s.
	OrphanScan time.Duration
	// Limiter grants attempts under actions' rates; nil: a store.LocalLimiter,
	// right for a store that only this process uses.
	Limiter Limiter
	Logger  *slog.Logger
	Now     func() time.Time
	// Rand returns a number in [0, 1) for retry jitter; nil: math/rand/v2.
	Rand     func() float64
	MaxDepth int // JSON nesting cap when decoding stored payloads; default 64
	// Limits bounds the evaluation of one delivery's templates; nil:
	// rules.DefaultLimits. Read at each attempt, so a reload changes it.
	Limits func() rules.Limits
	// HandsOff, when set, tells at each Offer whether the store would
	// lease an accept's deliveries to its caller now (store.HandOff): the
	// relay offers nothing while it would not, rather than hold slots that
	// the accept cannot use.
	HandsOff func() bool
}

// Relay leases due deliveries action by action and performs them: each
// action has its own concurrency, rate and circuit breaker, so a slow,
// hanging or failing destination uses only its own share.
type Relay struct {
	q       Queue
	send    Sender
	actions func() map[string]*actions.Action
	o       Options
	log     *slog.Logger

	kick chan struct{} // an attempt ended: capacity is free again

	mu      sync.Mutex
	lanes   map[string]*lane     // by action
	held    map[string]*inflight // attempts in flight, by delivery id
	total   int                  // attempts in flight
	states  map[string]store.ActionState
	orphans []string // actions with queued deliveries that are not in the config
	run     *running // while Run leases: where handed-off deliveries start
	// offering: Run leases and some action is drained, so that Offer may
	// reserve a slot; read without mu by every accept.
	offering atomic.Bool
}

// lane is the relay's view of one action.
type lane struct {
	inflight  int
	rateUntil time.Time // the rate allows nothing before this
	// drained: the last lease took every delivery of the action that was
	// due, with room to spare. Then a new delivery may be handed off at its
	// accept (Offer) without passing older due ones, and an attempt that
	// succeeds frees a slot that nothing queued waits for.
	drained bool
	// recording holds, by delivery id, the tokens of the leases whose
	// attempts have ended and whose outcomes the finisher is recording:
	// the destination is done with them, so a lease does not count them
	// against the action's concurrency (store.ActionQuota.Recording).
	recording map[string]string
}

// running is what attempts started outside Run's loop (Offer) need of it.
type running struct {
	workCtx context.Context
	wg      *sync.WaitGroup
	fin     *finisher
	release func(store.Lease)
}

// inflight is an attempt in flight: its lease, renewed while it runs, and
// how to stop it.
type inflight struct {
	lease  store.Lease
	cancel context.CancelCauseFunc
}

var (
	errShutdown  = errors.New("the relay is stopping")
	errLeaseLost = errors.New("the lease was lost")
)

// New returns a relay taking work from q and looking actions up, at each
// lease and each attempt, in the set that acts returns (the config in
// force).
func New(q Queue, send Sender, acts func() map[string]*actions.Action, o Options) *Relay {
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1000
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
	if o.MaxBatch <= 0 {
		o.MaxBatch = 100
	}
	if o.OrphanScan <= 0 {
		o.OrphanScan = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Limiter == nil {
		o.Limiter = store.NewLocalLimiter(o.Now)
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = 64
	}
	if o.Limits == nil {
		o.Limits = func() rules.Limits { return rules.DefaultLimits }
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Relay{
		q: q, send: send, actions: acts, o: o, log: log,
		kick:   make(chan struct{}, 1),
		lanes:  map[string]*lane{},
		held:   map[string]*inflight{},
		states: map[string]store.ActionState{},
	}
}

// Run leases and performs deliveries until ctx is done. It then stops
// leasing, lets attempts in flight finish within the grace period, cancels
// those still running and releases their leases at once, so that another
// process takes them over without waiting, and returns nil.
func (r *Relay) Run(ctx context.Context) error {
	bg := context.WithoutCancel(ctx)
	workCtx, cancelWork := context.WithCancelCause(bg)
	defer cancelWork(nil)
	renewCtx, stopRenew := context.WithCancel(bg)
	renewDone := make(chan struct{})
	go r.renew(renewCtx, renewDone)
	fin := newFinisher(r)
	go fin.run(bg)

	var (
		wg          sync.WaitGroup
		releaseMu   sync.Mutex
		toRelease   []store.Lease
		lastScan    time.Time
		lastRefresh time.Time
	)
	release := func(l store.Lease) {
		releaseMu.Lock()
		toRelease = append(toRelease, l)
		releaseMu.Unlock()
	}
	wake := r.q.Wake(ctx)
	r.mu.Lock()
	r.run = &running{workCtx: workCtx, wg: &wg, fin: fin, release: release}
	r.mu.Unlock()
	for ctx.Err() == nil {
		now := r.o.Now()
		if now.Sub(lastRefresh) >= r.o.MaxWait {
			r.refreshStates(ctx)
			lastRefresh = now
		}
		if now.Sub(lastScan) >= r.o.OrphanScan {
			r.scanOrphans(ctx, now)
			lastScan = now
		}
		more, next, err := r.leaseOnce(ctx, workCtx, &wg, fin, release)
		if more {
			continue
		}
		r.wait(ctx, &wake, next, err != nil)
	}
	// No hand-off starts from now on; those offered before are counted in
	// wg until their accepts have answered (Offer).
	r.mu.Lock()
	r.run = nil
	r.offering.Store(false)
	r.mu.Unlock()

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.o.Grace):
		r.log.Warn("grace period over: cancelling attempts in flight and releasing their deliveries")
		cancelWork(errShutdown)
		<-done
	}
	fin.close()
	if len(toRelease) > 0 {
		rctx, cancel := context.WithTimeout(bg, 5*time.Second)
		if err := r.q.Release(rctx, r.o.Now(), toRelease); err != nil {
			r.log.Error("releasing abandoned deliveries failed: they fall due when their leases end", "error", err, "deliveries", len(toRelease))
		}
		cancel()
	}
	stopRenew()
	<-renewDone
	return nil
}

// leaseOnce asks the store for what each action can take now and starts
// the attempts. more reports that some action may have more due at once;
// next is when the store says the next delivery falls due.
func (r *Relay) leaseOnce(ctx, workCtx context.Context, wg *sync.WaitGroup, fin *finisher, release func(store.Lease)) (more bool, next time.Time, err error) {
	now := r.o.Now()
	acts := r.actions()
	quotas, rated := r.quotas(acts, now)
	if len(quotas) == 0 {
		return false, rated, nil
	}
	// While the lease runs, the actions drained by the last one stay
	// drained: the accepts meanwhile may still be offered their slots
	// (Offer), or each accept that comes during a lease would queue its
	// deliveries and wake the relay for another, on a store whose lease
	// takes a few round trips (a Redis Cluster) one lease after the
	// other. What the offers take is counted when the lease answers.
	// A lease is never abandoned half-way by a stop: what the store hands
	// out is either started or given back at once.
	began := time.Now()
	b, err := r.q.Lease(context.WithoutCancel(ctx), store.LeaseRequest{Now: now, TTL: r.o.Lease, Actions: quotas})
	if r.o.Metrics != nil {
		r.o.Metrics.StoreCall("lease", time.Since(began))
	}
	if err != nil {
		r.setDrained(nil)
		r.storeError("lease")
		r.log.Error("lease failed", "error", err)
		if len(b.Leases) > 0 {
			// What was leased before the failure is handed back with it:
			// given back, due now, rather than held until the leases end.
			if err := r.q.Release(context.WithoutCancel(ctx), now, b.Leases); err != nil {
				r.log.Error("giving back deliveries leased by a failed lease call failed: they fall due when their leases end", "error", err)
			}
		}
		return false, time.Time{}, err
	}
	if ctx.Err() != nil && len(b.Leases) > 0 {
		if err := r.q.Release(context.WithoutCancel(ctx), now, b.Leases); err != nil {
			r.log.Error("giving back deliveries leased at stop failed: they fall due when their leases end", "error", err)
		}
		return false, time.Time{}, nil
	}
	// The room is what is left now, after the offers made while the lease
	// ran; the leases kept take their slots at once, before another offer
	// can (start, reserved).
	r.mu.Lock()
	room := min(len(b.Leases), max(r.o.MaxInFlight-r.total, 0))
	for _, l := range b.Leases[:room] {
		r.lane(l.Delivery.Action).inflight++
		r.total++
	}
	r.mu.Unlock()
	cut := len(b.Leases) > room
	if cut {
		over := b.Leases[room:]
		b.Leases = b.Leases[:room]
		// More came than the process may run at once: give the rest back,
		// due now, for whichever worker has room.
		more = true
		if err := r.q.Release(context.WithoutCancel(ctx), now, over); err != nil {
			r.storeError("release")
			r.log.Error("giving back deliveries over the in-flight cap failed: they fall due when their leases end", "error", err)
		}
	}
	// Each action's leases, one run at a time, without copying them.
	slices.SortStableFunc(b.Leases, func(x, y store.Lease) int { return strings.Compare(x.Delivery.Action, y.Delivery.Action) })
	asked := make(map[string]int, len(quotas))
	// drained: the actions without a rate that take less than they asked.
	drained := make(map[string]bool, len(quotas))
	for _, q := range quotas {
		asked[q.Action] = q.N
		if act := acts[q.Action]; act != nil && act.Rate.IsZero() {
			drained[q.Action] = true
		}
	}
	for ls := b.Leases; len(ls) > 0; {
		name := ls[0].Delivery.Action
		n := 1
		for n < len(ls) && ls[n].Delivery.Action == name {
			n++
		}
		run := ls[:n]
		ls = ls[n:]
		act := acts[name]
		if act != nil && !act.Rate.IsZero() {
			run = r.limit(ctx, act, run, now)
			r.unreserve(name, n-len(run))
		}
		if len(run) >= asked[name] {
			more = true
			delete(drained, name)
		}
		r.noteProbe(name, len(run))
		for i := range run {
			r.start(workCtx, run[i], act, wg, fin, release, true)
		}
	}
	// Only when nothing is left due now has an action that took less than
	// it asked for none waiting.
	if cut || !b.NextDue.IsZero() && !b.NextDue.After(now) {
		drained = nil
	}
	r.setDrained(drained)
	next = b.NextDue
	if !rated.IsZero() && (next.IsZero() || rated.Before(next)) {
		next = rated
	}
	return more, next, nil
}

// drainedAsk is the most a lease asks for of an action that the lease
// before it left drained (quotas).
const drainedAsk = 8

// quotas is how many due deliveries each action may take now: its
// concurrency less its attempts in flight, within the room left under the
// process's cap, for a rated action about a tenth of a second of its
// rate, and for one the last lease left drained at most drainedAsk.
// Every action is offered the whole room: reserving it action by
// action would let the first ones, due or not, starve the others. rated is
// the earliest time a rated action left out now may take more: the relay
// must look again then, not a whole MaxWait later, or the action would run
// far below its rate.
func (r *Relay) quotas(acts map[string]*actions.Action, now time.Time) (qs []store.ActionQuota, rated time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	room := r.o.MaxInFlight - r.total
	if room <= 0 {
		return nil, time.Time{}
	}
	qs = make([]store.ActionQuota, 0, len(acts)+len(r.orphans))
	for name, a := range acts {
		ln := r.lane(name)
		n := min(a.Concurrency-ln.inflight, r.o.MaxBatch, room)
		if ln.drained {
			// The last lease left the action nothing due, and its
			// deliveries may be handed off at their accepts (Offer): a
			// lease now, woken by another action's deliveries or looking
			// once a MaxWait, most likely finds none of its own. It asks
			// for a few, since a partitioned store holds the room a lease
			// asks for in the action's cap set while the lease runs, and
			// the hand-offs meanwhile would find none. Taking all it
			// asked, the action is asked for the rest at once
			// (leaseOnce: more).
			n = min(n, drainedAsk)
		}
		if !a.Rate.IsZero() {
			if now.Before(ln.rateUntil) {
				if rated.IsZero() || ln.rateUntil.Before(rated) {
					rated = ln.rateUntil
				}
				continue
			}
			n = min(n, a.Rate.Burst())
		}
		if n <= 0 {
			continue
		}
		// Max makes the concurrency hold across every process on the
		// store; the leases being recorded no longer take the
		// destination's. As many as the concurrency are named at most,
		// so that a store slow to record holds the action's leases to
		// twice its concurrency, and the outcomes waiting in memory
		// with them.
		var recording []store.LeaseRef
		if len(ln.recording) > 0 {
			recording = make([]store.LeaseRef, 0, min(len(ln.recording), a.Concurrency))
			for id, token := range ln.recording {
				if len(recording) == a.Concurrency {
					break
				}
				recording = append(recording, store.LeaseRef{DeliveryID: id, Token: token})
			}
		}
		qs = append(qs, store.ActionQuota{Action: name, N: n, Max: a.Concurrency, Recording: recording, Probe: a.Timeout + r.o.Lease})
	}
	for _, name := range r.orphans {
		if _, ok := acts[name]; !ok {
			qs = append(qs, store.ActionQuota{Action: name, N: min(r.o.MaxBatch, room)})
		}
	}
	return qs, rated
}

func (r *Relay) lane(action string) *lane {
	ln := r.lanes[action]
	if ln == nil {
		ln = &lane{}
		r.lanes[action] = ln
	}
	return ln
}

// limit keeps the leases the action's rate allows now and gives the rest
// back, due when the rate allows more.
func (r *Relay) limit(ctx context.Context, act *actions.Action, ls []store.Lease, now time.Time) []store.Lease {
	allowed, wait, err := r.o.Limiter.AllowAtMost(ctx, act.Name, act.Rate, len(ls))
	if err != nil {
		r.log.Error("rate limiter failed: holding the action's deliveries back", "action", act.Name, "error", err)
		allowed, wait = 0, r.o.MaxWait
	}
	if allowed >= len(ls) {
		return ls
	}
	at := now.Add(wait)
	r.mu.Lock()
	r.lane(act.Name).rateUntil = at
	r.mu.Unlock()
	if err := r.q.Release(context.WithoutCancel(ctx), at, ls[allowed:]); err != nil {
		r.log.Error("giving back deliveries over the rate failed: they fall due when their leases end", "action", act.Name, "error", err)
	}
	return ls[:allowed]
}

// start runs one attempt in its own goroutine; reserved: its slot was
// taken already (Offer).
func (r *Relay) start(workCtx context.Context, l store.Lease, act *actions.Action, wg *sync.WaitGroup, fin *finisher, release func(store.Lease), reserved bool) {
	actx, cancel := context.WithCancelCause(workCtx)
	r.mu.Lock()
	if !reserved {
		r.lane(l.Delivery.Action).inflight++
		r.total++
	}
	r.held[l.Delivery.ID] = &inflight{lease: l, cancel: cancel}
	r.mu.Unlock()
	if r.o.Metrics != nil {
		r.o.Metrics.AttemptStarted(l.Delivery.Action)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel(nil)
		item, ok := r.perform(actx, l, act)
		if r.o.Metrics != nil {
			result, d := ResultAbandoned, time.Duration(0)
			if ok {
				result, d = item.result, item.f.Attempt.Duration
			}
			r.o.Metrics.AttemptFinished(l.Delivery.Action, result, d)
		}
		switch {
		case ok:
			if item.verdict != failing {
				// The destination is done with this attempt: its slot can
				// take the next delivery while the outcome is recorded.
				// A failure keeps its slot until the breaker has seen it.
				r.setRecording(l, true)
				r.free(l, item.f.Outcome.Status == store.DeliverySucceeded)
				item.freed = true
			}
			fin.add(item)
			return
		case errors.Is(context.Cause(actx), errShutdown):
			release(l)
		}
		r.free(l, false)
		r.forget(l)
	}()
}

// free gives an attempt's slot back to its action and wakes the lease
// loop, for which the slot may be waiting: unless the attempt succeeded
// (settled: nothing of it to schedule again), its action is drained and
// the process had room to spare.
func (r *Relay) free(l store.Lease, settled bool) {
	r.mu.Lock()
	full := r.total >= r.o.MaxInFlight
	ln := r.lanes[l.Delivery.Action]
	if ln != nil {
		ln.inflight--
	}
	r.total--
	quiet := settled && !full && ln != nil && ln.drained
	r.mu.Unlock()
	if quiet {
		return
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// setRecording marks l as a lease whose outcome is being recorded, or no
// longer (lane.recording).
func (r *Relay) setRecording(l store.Lease, on bool) {
	r.mu.Lock()
	ln := r.lane(l.Delivery.Action)
	_, was := ln.recording[l.Delivery.ID]
	switch {
	case on && ln.recording == nil:
		ln.recording = map[string]string{l.Delivery.ID: l.Token}
	case on:
		ln.recording[l.Delivery.ID] = l.Token
	default:
		delete(ln.recording, l.Delivery.ID)
	}
	r.mu.Unlock()
	if r.o.Metrics != nil && on != was {
		r.o.Metrics.OutcomeRecording(l.Delivery.Action, on)
	}
}

// unreserve gives back n slots of action taken for leases not started.
func (r *Relay) unreserve(action string, n int) {
	if n <= 0 {
		return
	}
	r.mu.Lock()
	r.lane(action).inflight -= n
	r.total -= n
	r.mu.Unlock()
}

// setDrained marks the actions in drained as drained and every other one
// as not.
func (r *Relay) setDrained(drained map[string]bool) {
	r.mu.Lock()
	for name, ln := range r.lanes {
		ln.drained = drained[name]
	}
	r.offering.Store(r.run != nil && len(drained) > 0)
	r.mu.Unlock()
}

// forget stops renewing the lease of an attempt whose outcome is recorded,
// or will not be.
func (r *Relay) forget(l store.Lease) {
	r.mu.Lock()
	delete(r.held, l.Delivery.ID)
	r.mu.Unlock()
}

// wait sleeps until new work arrives, an attempt ends, the next delivery
// falls due, or MaxWait passes.
//
// A closed wake channel (the store is closing) is not waited on again.
func (r *Relay) wait(ctx context.Context, wake *<-chan struct{}, next time.Time, failed bool) {
	d := r.o.MaxWait
	if !failed && !next.IsZero() {
		if until := next.Sub(r.o.Now()); until < d {
			d = max(until, time.Millisecond)
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case _, ok := <-*wake:
		if !ok {
			*wake = nil
		}
	case <-r.kick:
	case <-t.C:
	}
}

// renew keeps the leases of attempts in flight alive, all in one call,
// every third of the lease; an attempt whose lease turns out lost (another
// worker took the delivery, or it finished elsewhere) is cancelled.
func (r *Relay) renew(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(max(r.o.Lease/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		ins := make([]*inflight, 0, len(r.held))
		ls := make([]store.Lease, 0, len(r.held))
		for _, in := range r.held {
			ins = append(ins, in)
			ls = append(ls, in.lease)
		}
		r.mu.Unlock()
		if len(ls) == 0 {
			continue
		}
		ends, err := r.q.Renew(ctx, r.o.Now(), r.o.Lease, ls)
		if err != nil {
			if ctx.Err() == nil {
				r.storeError("renew")
				r.log.Error("renewing leases failed", "error", err, "leases", len(ls))
			}
			continue
		}
		r.mu.Lock()
		for i, end := range ends {
			if i >= len(ins) {
				break
			}
			if end.IsZero() {
				ins[i].cancel(errLeaseLost)
				continue
			}
			ins[i].lease.Until = end
		}
		r.mu.Unlock()
	}
}

// refreshStates reads the action states every process shares.
func (r *Relay) refreshStates(ctx context.Context) {
	sts, err := r.q.ActionStates(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.storeError("action_states")
			r.log.Error("reading action states failed", "error", err)
		}
		return
	}
	r.mu.Lock()
	for _, s := range sts {
		r.states[s.Action] = s
	}
	r.mu.Unlock()
}

// noteProbe logs the move to half-open when a lease of an action whose
// breaker was open went out: that lease is the probe.
func (r *Relay) noteProbe(action string, n int) {
	if n == 0 {
		return
	}
	r.mu.Lock()
	s, ok := r.states[action]
	probe := ok && s.Breaker == store.BreakerOpen
	if probe {
		s.Breaker = store.BreakerHalfOpen
		r.states[action] = s
	}
	r.mu.Unlock()
	if probe {
		r.log.Info("circuit breaker half-open: sending one probe", "action", action)
	}
}

// scanOrphans finds queued deliveries of actions the config no longer
// has, so that they are leased and made dead rather than kept forever.
func (r *Relay) scanOrphans(ctx context.Context, now time.Time) {
	stats, err := r.q.QueueStats(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			r.storeError("queue_stats")
			r.log.Error("reading queue stats failed", "error", err)
		}
		return
	}
	acts := r.actions()
	var orphans []string
	for _, s := range stats {
		if _, ok := acts[s.Action]; !ok && s.Due > 0 {
			orphans = append(orphans, s.Action)
		}
	}
	r.mu.Lock()
	r.orphans = orphans
	r.mu.Unlock()
}

// breakerRecord applies the verdicts of one batch of an action's attempts
// to its shared state, retrying on a concurrent change.
func (r *Relay) breakerRecord(ctx context.Context, act *actions.Action, vs []verdict, whys []string) {
	b := BreakerFor(act)
	for try := 0; try < 5; try++ {
		r.mu.Lock()
		s, ok := r.states[act.Name]
		r.mu.Unlock()
		if !ok {
			s = store.ActionState{Action: act.Name}
		}
		before := s
		changed := false
		now := r.o.Now()
		for i, v := range vs {
			var c bool
			s, c = b.Record(s, v, now, whys[i])
			changed = changed || c
		}
		if !changed {
			return
		}
		stored, err := r.q.PutActionState(ctx, s)
		if errors.Is(err, store.ErrConflict) {
			r.refreshStates(ctx)
			continue
		}
		if err != nil {
			r.storeError("put_action_state")
			r.log.Error("recording the circuit breaker state failed", "action", act.Name, "error", err)
			return
		}
		r.mu.Lock()
		r.states[act.Name] = stored
		r.mu.Unlock()
		r.logBreaker(before, stored, b)
		return
	}
	r.log.Warn("circuit breaker state not recorded: other processes kept changing it; the next attempts will count again", "action", act.Name)
}

func (r *Relay) logBreaker(before, after store.ActionState, b Breaker) {
	switch {
	case after.Breaker == store.BreakerOpen && before.Breaker == store.BreakerHalfOpen:
		r.log.Warn("circuit breaker probe failed: open again", "action", after.Action, "until", after.BlockedUntil, "cooldown", b.cooldown(after.Opens), "error", after.LastError)
	case after.Breaker == store.BreakerOpen && before.Breaker != store.BreakerOpen:
		r.log.Warn("circuit breaker opened: deliveries wait without attempts", "action", after.Action, "failures", after.Failures, "until", after.BlockedUntil, "error", after.LastError)
	case closed(after) && !closed(before):
		r.log.Info("circuit breaker closed: deliveries flow again", "action", after.Action)
	}
}

func (r *Relay) storeError(op string) {
	if r.o.Metrics != nil {
		r.o.Metrics.StoreError(op)
	}
}

// Offer offers the relay's room to the accept a is about to make
// (store.HandOff): for each of its deliveries in no lane whose action has
// no rate, was drained by the last lease that answered (one running
// meanwhile does not stop it) and has a slot free, the slot is reserved
// and the store may lease the delivery to this process in the accept
// itself. It returns what to call with the accept's answer, which
// starts the leases handed off and frees the slots left unused; nil when
// it offers nothing (the relay is not running, or has no room).
func (r *Relay) Offer(a *store.Accept) func(store.Accepted, error) {
	if len(a.Deliveries) == 0 || !r.offering.Load() || r.o.HandsOff != nil && !r.o.HandsOff() {
		return nil
	}
	acts := r.actions()
	var quotas []store.ActionQuota
	r.mu.Lock()
	run := r.run
	for _, d := range a.Deliveries {
		act := acts[d.Action]
		ln := r.lanes[d.Action]
		if run == nil || d.Lane != "" || act == nil || !act.Rate.IsZero() || ln == nil || !ln.drained ||
			ln.inflight >= act.Concurrency || r.total >= r.o.MaxInFlight {
			continue
		}
		i := slices.IndexFunc(quotas, func(q store.ActionQuota) bool { return q.Action == d.Action })
		if i < 0 {
			quotas = append(quotas, store.ActionQuota{Action: d.Action, Max: act.Concurrency})
			i = len(quotas) - 1
		}
		quotas[i].N++
		ln.inflight++
		r.total++
	}
	if len(quotas) == 0 {
		r.mu.Unlock()
		return nil
	}
	// Run waits for this accept's answer before it ends.
	run.wg.Add(1)
	r.mu.Unlock()
	if r.o.Metrics != nil {
		for _, q := range quotas {
			r.o.Metrics.Offered(q.Action, q.N)
		}
	}
	a.HandOff = &store.HandOff{Now: r.o.Now(), TTL: r.o.Lease, Actions: quotas}
	return func(res store.Accepted, err error) {
		defer run.wg.Done()
		used := make(map[string]int, len(quotas))
		if err == nil && len(res.Leases) > 0 {
			acts := r.actions()
			for _, l := range res.Leases {
				name := l.Delivery.Action
				i := slices.IndexFunc(quotas, func(q store.ActionQuota) bool { return q.Action == name })
				reserved := i >= 0 && used[name] < quotas[i].N
				used[name]++
				if r.o.Metrics != nil {
					r.o.Metrics.HandedOff(name)
				}
				r.start(run.workCtx, l, acts[name], run.wg, run.fin, run.release, reserved)
			}
		}
		r.mu.Lock()
		for _, q := range quotas {
			if n := q.N - used[q.Action]; n > 0 {
				r.lanes[q.Action].inflight -= n
				r.total -= n
			}
		}
		r.mu.Unlock()
	}
}
