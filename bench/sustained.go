package main

import (
	"context"
	"sync"
	"time"
)

// sustainedSamples is how many times a sustained run reads the backlog, the
// last at its end.
const sustainedSamples = 6

// sustainedResult is one sustained run: hookrelay with the relay on under
// the intake's closed loop for o.SustainFor, the backlog read as it went,
// then every accepted event awaited at the receiver.
type sustainedResult struct {
	Store    string
	Time     time.Duration // the closed loop's length
	Accepted int64
	Samples  []backlogSample
	Complete bool          // every accepted event arrived
	CatchUp  time.Duration // from the loop's end to the last arrival, when Complete
	Lost     int
	DupKeys  int
}

// backlogSample is what had been accepted and delivered At after the
// loop's start.
type backlogSample struct {
	At                  time.Duration
	Accepted, Delivered int64
}

func (s backlogSample) backlog() int64 { return s.Accepted - s.Delivered }

// growth is how fast the backlog grew from the first sample to the last,
// in events per second: the first reading leaves the start out, when the
// relay has not yet been woken.
func (r sustainedResult) growth() float64 {
	if len(r.Samples) < 2 {
		return 0
	}
	a, z := r.Samples[0], r.Samples[len(r.Samples)-1]
	if z.At <= a.At {
		return 0
	}
	return float64(z.backlog()-a.backlog()) / (z.At - a.At).Seconds()
}

func (r sustainedResult) rate() float64 { return float64(r.Accepted) / r.Time.Seconds() }

func (r sustainedResult) deliveredRate() float64 {
	if len(r.Samples) == 0 {
		return 0
	}
	z := r.Samples[len(r.Samples)-1]
	return float64(z.Delivered) / z.At.Seconds()
}

// sustained sends to hookrelay with the relay on as intake does, in one
// closed loop of o.SustainFor without warm-up, and reads the events
// accepted and the deliveries received sustainedSamples times: whether the
// relay keeps level with an intake that saturates the machine for longer
// than a round. Then it waits for every accepted event to arrive, so that
// the run also counts what was lost or repeated under that load.
func (b *bench) sustained(ctx context.Context) error {
	for _, st := range b.o.Stores {
		name := storeNames[st]
		tag := "sustained-" + st
		s, err := b.startHookrelay(ctx, "hookrelay "+name+", relay on (sustained)", b.storeURL(st, tag), relayOn)
		if err != nil {
			return err
		}
		rec := b.recv.reset()
		var (
			mu  sync.Mutex
			ids []string
		)
		c := newClient(b.o.Conns)
		start := time.Now()
		done := make(chan loopResult, 1)
		go func() {
			done <- closedLoop(ctx, c, s.url+hookPath, b.o.Conns, start.Add(b.o.SustainFor), 0, b.pay, tag, 202, func(n int64) {
				mu.Lock()
				ids = append(ids, eventID(tag, n))
				mu.Unlock()
			})
		}()
		r := sustainedResult{Store: name}
		sample := func() backlogSample {
			mu.Lock()
			acc := int64(len(ids))
			mu.Unlock()
			return backlogSample{At: time.Since(start), Accepted: acc, Delivered: b.recv.deliveries(rec)}
		}
		tick := time.NewTicker(b.o.SustainFor / sustainedSamples)
		var lr loopResult
	loop:
		for {
			select {
			case <-tick.C:
				if len(r.Samples) < sustainedSamples-1 {
					r.Samples = append(r.Samples, sample())
					x := r.Samples[len(r.Samples)-1]
					b.logf("sustained %-28s %6.1fs: %d accepted, %d behind", name, x.At.Seconds(), x.Accepted, x.backlog())
				}
			case lr = <-done:
				break loop
			}
		}
		tick.Stop()
		r.Samples = append(r.Samples, sample())
		end := time.Now()
		c.CloseIdleConnections()
		r.Time, r.Accepted = lr.Elapsed, lr.OK
		if lr.Errors > 0 || len(lr.Codes) > 0 {
			b.rep.problem("sustained %s: %d answered 202, %d other statuses (%s), %d without an answer (first: %s)",
				name, lr.OK, len(lr.Codes), codesString(lr.Codes), lr.Errors, lr.FirstErr)
		}
		b.recv.expect(rec, ids)
		r.Complete = b.await(ctx, s, rec, b.o.Timeout)
		if r.Complete {
			b.recv.mu.Lock()
			r.CatchUp = max(rec.doneAt.Sub(end), 0)
			b.recv.mu.Unlock()
		}
		b.settle(ctx)
		stats := b.recv.snapshot(rec)
		b.stop(s)
		b.dropStore(ctx, st, tag)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.Lost, r.DupKeys = stats.Expected-stats.Got, stats.DupKeys
		b.checkDeliveries("sustained "+name, stats, r.Complete, ids)
		b.logf("sustained %-28s %.0f accepted/s, %.0f delivered/s, backlog growing %.0f/s, caught up %v after the end",
			name, r.rate(), r.deliveredRate(), r.growth(), r.CatchUp.Round(time.Millisecond))
		b.rep.Sustained = append(b.rep.Sustained, r)
	}
	return nil
}
