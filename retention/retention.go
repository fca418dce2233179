package retention

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// Store is what the pruner needs of a store.
type Store interface {
	Prune(ctx context.Context, p store.Prune) (store.Pruned, error)
}

// Windows are the retention windows in force; see config.Retention.
type Windows struct {
	Completed time.Duration // ignored events, and those whose every delivery succeeded
	Failed    time.Duration // events with a dead delivery
}

const (
	// defaultBatch is how many events one store call examines.
	defaultBatch = 500
	// defaultBudget bounds one run: what is left waits for the next.
	defaultBudget = 5 * time.Second
	minInterval   = time.Second
	maxInterval   = time.Minute
)

// Options configure a Pruner. Windows is required; the rest have defaults.
type Options struct {
	// Windows returns the windows in force, read at every run so that a
	// config reload applies.
	Windows func() Windows
	// Every is how often a run starts; zero: a quarter of the shorter
	// window, between a second and a minute.
	Every time.Duration
	// Budget bounds the time of one run (default 5s), Batch the events one
	// store call examines (default 500).
	Budget time.Duration
	Batch  int
	// Owner names this process in the store's pruning lease; default the
	// host name, the process id and a random suffix.
	Owner  string
	Now    func() time.Time // default time.Now
	Logger *slog.Logger
}

// Pruner removes old events from a store, run after run.
type Pruner struct {
	st Store
	o  Options
}

// New returns a pruner of st.
func New(st Store, o Options) *Pruner {
	if o.Budget <= 0 {
		o.Budget = defaultBudget
	}
	if o.Batch <= 0 {
		o.Batch = defaultBatch
	}
	if o.Owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.Owner = host + "/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(b[:])
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Pruner{st: st, o: o}
}

// interval is the time between runs for windows w.
func (p *Pruner) interval(w Windows) time.Duration {
	if p.o.Every > 0 {
		return p.o.Every
	}
	return min(max(min(w.Completed, w.Failed)/4, minInterval), maxInterval)
}

// Run prunes at once and then every interval until ctx ends. A failed run
// is logged and tried again at the next one: old events only cost space
// meanwhile.
func (p *Pruner) Run(ctx context.Context) error {
	for {
		w := p.o.Windows()
		every := p.interval(w)
		got, err := p.RunOnce(ctx, w, every)
		if err != nil && ctx.Err() == nil {
			p.o.Logger.Warn("retention: pruning failed", "err", err)
		}
		pause := every
		if got.More && !got.Held {
			// The run used its budget with work left: go on sooner, still
			// leaving the store as much time for intake.
			pause = min(every, p.o.Budget)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// RunOnce prunes batch after batch until nothing older than the windows
// is left to examine, another process holds the pruning lease, or the run
// has taken its budget. The lease it takes lasts past the next run, so the
// process that holds it keeps it while it runs; another takes over once it
// stops. It logs a line when it pruned something.
func (p *Pruner) RunOnce(ctx context.Context, w Windows, every time.Duration) (store.Pruned, error) {
	start := p.o.Now()
	var sum store.Pruned
	defer func() {
		if sum.Events > 0 {
			p.o.Logger.Info("retention: pruned", "events", sum.Events, "deliveries", sum.Deliveries,
				"attempts", sum.Attempts, "more", sum.More, "took", p.o.Now().Sub(start).Round(time.Millisecond))
		}
	}()
	for {
		now := p.o.Now()
		got, err := p.st.Prune(ctx, store.Prune{
			Now:             now,
			CompletedBefore: now.Add(-w.Completed),
			FailedBefore:    now.Add(-w.Failed),
			Owner:           p.o.Owner,
			LeaseUntil:      now.Add(2*every + p.o.Budget),
			Limit:           p.o.Batch,
		})
		if err != nil {
			return sum, err
		}
		sum.Events += got.Events
		sum.Deliveries += got.Deliveries
		sum.Attempts += got.Attempts
		sum.More, sum.Held = got.More, got.Held
		if !got.More || got.Held || ctx.Err() != nil || p.o.Now().Sub(start) >= p.o.Budget {
			return sum, nil
		}
	}
}
