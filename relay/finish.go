package relay

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/store"
)

// maxFinishBatch caps the attempts recorded in one store call.
const maxFinishBatch = 256

// finisher records finished attempts in batches: while one batch is with
// the store, the next one fills up, so under load one round trip records
// many attempts and a lone attempt is never held back.
type finisher struct {
	r    *Relay
	in   chan finishItem
	done chan struct{}
	once sync.Once
}

func newFinisher(r *Relay) *finisher {
	return &finisher{r: r, in: make(chan finishItem, maxFinishBatch), done: make(chan struct{})}
}

func (f *finisher) add(it finishItem) { f.in <- it }

// close records what is queued and returns once it is recorded.
func (f *finisher) close() {
	f.once.Do(func() { close(f.in) })
	<-f.done
}

func (f *finisher) run(ctx context.Context) {
	defer close(f.done)
	batch := make([]finishItem, 0, maxFinishBatch)
	for it := range f.in {
		batch = append(batch[:0], it)
	fill:
		for len(batch) < maxFinishBatch {
			select {
			case it, ok := <-f.in:
				if !ok {
					break fill
				}
				batch = append(batch, it)
			default:
				break fill
			}
		}
		f.r.record(ctx, batch)
		clear(batch)
	}
}

// record stores a batch of outcomes. A store that fails is tried again
// with growing waits for about half a minute: meanwhile the leases stay
// held (they are renewed), so no other worker repeats the attempts.
func (r *Relay) record(ctx context.Context, batch []finishItem) {
	fs := make([]store.Finish, len(batch))
	for i, it := range batch {
		fs[i] = it.f
	}
	var errs []error
	wait := 100 * time.Millisecond
	for try := 1; ; try++ {
		var err error
		began := time.Now()
		errs, err = r.q.Finish(ctx, fs)
		if r.o.Metrics != nil {
			r.o.Metrics.StoreCall("finish", time.Since(began))
		}
		if err == nil {
			break
		}
		r.storeError("finish")
		if try == 8 {
			r.log.Error("recording attempts failed: their deliveries will be attempted again", "error", err, "attempts", len(fs))
			errs = nil
			break
		}
		r.log.Warn("recording attempts failed, trying again", "error", err, "attempts", len(fs), "in", wait)
		time.Sleep(wait)
		wait *= 2
	}

	type actionBatch struct {
		act  *actions.Action
		vs   []verdict
		whys []string
	}
	var byAction map[string]*actionBatch
	for i, it := range batch {
		if errs == nil {
			continue
		}
		var err error
		if i < len(errs) {
			err = errs[i]
		}
		r.logOutcome(it, err)
		if it.act == nil || it.verdict == neutral || errors.Is(err, store.ErrNotFound) {
			continue
		}
		if byAction == nil {
			byAction = map[string]*actionBatch{}
		}
		ab := byAction[it.act.Name]
		if ab == nil {
			ab = &actionBatch{act: it.act}
			byAction[it.act.Name] = ab
		}
		ab.vs = append(ab.vs, it.verdict)
		ab.whys = append(ab.whys, it.f.Attempt.Error)
	}
	// The breaker's state is written before the capacity is given back,
	// so that the attempt which opens it is the last one let through.
	for _, ab := range byAction {
		r.breakerRecord(ctx, ab.act, ab.vs, ab.whys)
	}
	for _, it := range batch {
		r.forget(it.f.Lease)
		if it.freed {
			r.setRecording(it.f.Lease, false)
		} else {
			r.free(it.f.Lease, false)
		}
	}
}

func (r *Relay) logOutcome(it finishItem, err error) {
	d, a, o := it.f.Lease.Delivery, it.f.Attempt, it.f.Outcome
	if err == nil && o.Status == store.DeliverySucceeded && !r.log.Enabled(context.Background(), slog.LevelDebug) {
		return // the common case costs nothing
	}
	log := r.log.With("hook", d.Hook, "event_id", d.EventID, "delivery_id", d.ID, "action", d.Action, "attempt", a.N)
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		log.Warn("lease lost before the attempt was recorded; another worker owns the delivery", "status", it.status)
	case err != nil:
		log.Error("recording the attempt failed", "error", err)
	case o.Status == store.DeliverySucceeded:
		// Debug: at thousands of deliveries a second, a line each would
		// cost more than the delivery.
		log.Debug("delivery succeeded", "status", it.status, "latency", a.Duration)
	case o.Status == store.DeliveryRetrying:
		log.Warn("attempt failed, will retry", "status", it.status, "error", o.Error, "next_attempt_at", o.NextAttemptAt)
	case o.Status == store.DeliveryDead:
		log.Error("delivery dead", "status", it.status, "error", o.Error)
	}
}
