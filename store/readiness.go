package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// IdentityStore is what Readiness needs from a store.
type IdentityStore interface {
	Identity(ctx context.Context) (Identity, error)
	PutIdentity(ctx context.Context, prev string, id Identity) error
	Probe(ctx context.Context, at time.Time) error
}

// DefaultWatchEvery is how often Readiness.Run checks the identity.
const DefaultWatchEvery = time.Second

// ReadinessOptions tune a Readiness; the zero value is usable.
type ReadinessOptions struct {
	Logger *slog.Logger
	Now    func() time.Time // time.Now by default
	// WatchEvery is how often Run checks the identity; DefaultWatchEvery
	// when zero.
	WatchEvery time.Duration
	// OnLoss, when set, is called each time this process notices that the
	// store lost its data (the count Losses returns goes up by one), for
	// a metric.
	OnLoss func()
	// Expect, when set, is the identity the store must hold at Init: the
	// one an operator pinned. A store without an identity then lost its
	// data while no process watched it (a Redis restarted empty, a file
	// replaced by an empty one), and is marked lost instead of taken for
	// a new store; a store with another identity is refused
	// (UnexpectedIdentityError), unless it is the mark of the expected
	// one's loss.
	Expect string
}

// Readiness tells whether one serving process may be trusted with events:
// the store takes a write now, and it still holds what it held when the
// process started. It keeps the identity the process knows; an identity
// that disappears, or is replaced by anything but an operator's
// acknowledgement, means the store lost its data (a Redis restarted empty
// or flushed): every event acknowledged before may be gone. The process
// then stays not ready until an operator accepts the loss (AcceptReset).
type Readiness struct {
	s          IdentityStore
	log        *slog.Logger
	now        func() time.Time
	watchEvery time.Duration
	onLoss     func()
	expect     string

	mu    sync.Mutex
	known Identity // the identity last seen; ID empty before Init
	lost  *Identity
	// lostSince is when this process noticed the loss.
	lostSince time.Time

	losses atomic.Int64
}

// NewReadiness returns the readiness of s. Call Init before Ready or Run.
func NewReadiness(s IdentityStore, o ReadinessOptions) *Readiness {
	r := &Readiness{s: s, log: o.Logger, now: o.Now, watchEvery: o.WatchEvery, onLoss: o.OnLoss, expect: o.Expect}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.watchEvery <= 0 {
		r.watchEvery = DefaultWatchEvery
	}
	return r
}

// Init reads the store's identity at start. A store without one (a new
// store, or one written by a version without identities) gets one, unless
// an identity is expected (ReadinessOptions.Expect): the store then lost
// its data, and is marked so. A store that another process found to have
// lost its data leaves this one not ready too; with accept, the loss is
// accepted instead (AcceptReset), whatever identity was expected.
func (r *Readiness) Init(ctx context.Context, accept bool) error {
	if accept {
		id, prev, err := AcceptReset(ctx, r.s, r.now())
		if err != nil {
			return err
		}
		r.log.Warn("store reset accepted (--accept-store-reset): events acknowledged before it that the store lost are not recovered",
			"identity", id.ID, "replaced", prev.ID, "replaced_state", string(prev.State))
		r.mu.Lock()
		r.known = id
		r.mu.Unlock()
		return nil
	}
	for range 3 {
		id, err := r.s.Identity(ctx)
		wrote := false
		if errors.Is(err, ErrNotFound) {
			// A new store, unless one was expected: then an emptied one.
			id = Identity{ID: NewID("sid", r.now()), CreatedAt: r.now().UTC(), State: IdentityNew}
			if r.expect != "" {
				id.State, id.Previous = IdentityLost, r.expect
			}
			err = r.s.PutIdentity(ctx, "", id)
			if errors.Is(err, ErrConflict) {
				continue // another process wrote one first: read it
			}
			if err != nil {
				return fmt.Errorf("write the store identity: %w", err)
			}
			wrote = true
		} else if err != nil {
			return fmt.Errorf("read the store identity: %w", err)
		}
		if r.expect != "" && id.ID != r.expect && (id.State != IdentityLost || id.Previous != r.expect) {
			return &UnexpectedIdentityError{Want: r.expect, Got: id}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.known = id
		switch {
		case wrote && id.State == IdentityNew:
			r.log.Info("store identity written: the store is new", "identity", id.ID)
		case wrote:
			r.log.Error("store lost its data: it holds no identity, where "+r.expect+" was expected; events acknowledged before may be lost (a Redis restarted without persistence or flushed, or a file replaced, while no process ran?); this process is not ready until an operator runs `hookrelay store reset-ack`",
				"expected_identity", r.expect)
			r.markLost(id)
		case id.State == IdentityLost:
			r.log.Error("store lost its data: another process found its identity gone; events acknowledged before may be lost; this process is not ready until an operator runs `hookrelay store reset-ack`",
				"lost_identity", id.Previous, "noticed_at", id.CreatedAt.UTC().Format(time.RFC3339))
			r.markLost(id)
		}
		return nil
	}
	return errors.New("read the store identity: it kept changing while being read")
}

// Identity is the store identity the process knows: the one read at Init,
// or the last one adopted since.
func (r *Readiness) Identity() Identity {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.known
}

// AcceptReset writes a new identity that records an operator's
// acknowledgement of a loss, in place of whatever identity the store holds
// (none included). Every process sharing the store adopts it at its next
// check and is ready again. It returns the new identity and the one it
// replaced.
func AcceptReset(ctx context.Context, s IdentityStore, now time.Time) (Identity, Identity, error) {
	for range 5 {
		prev, err := s.Identity(ctx)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Identity{}, Identity{}, fmt.Errorf("read the store identity: %w", err)
		}
		id := Identity{ID: NewID("sid", now), CreatedAt: now.UTC(), State: IdentityReset, Previous: prev.ID}
		err = s.PutIdentity(ctx, prev.ID, id)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return Identity{}, Identity{}, fmt.Errorf("write the store identity: %w", err)
		}
		return id, prev, nil
	}
	return Identity{}, Identity{}, errors.New("write the store identity: it kept changing while being replaced")
}

// Ready reports whether the process may be trusted with events now: the
// store takes a real write (Probe) and still has the identity the process
// knows. The error says why not, for /readyz.
func (r *Readiness) Ready(ctx context.Context) error {
	if err := r.s.Probe(ctx, r.now()); err != nil {
		if errors.Is(err, ErrDiskFull) {
			return fmt.Errorf("store cannot take a write: disk full (%w)", err)
		}
		return fmt.Errorf("store cannot take a write: %w", err)
	}
	return r.Check(ctx)
}

// Check compares the store's identity with the one the process knows and
// reports a loss, noticed now or before and not yet accepted.
func (r *Readiness) Check(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.known.ID == "" {
		return errors.New("store identity not read yet")
	}
	id, err := r.s.Identity(ctx)
	switch {
	case errors.Is(err, ErrNotFound):
		// The identity is gone: the store lost its data. Mark it, so that a
		// process starting now does not take the empty store for a new one.
		lost := Identity{ID: NewID("sid", r.now()), CreatedAt: r.now().UTC(), State: IdentityLost, Previous: r.known.ID}
		if err := r.s.PutIdentity(ctx, "", lost); err == nil {
			r.notice(lost, "its identity is gone")
			r.known = lost
		} else if r.lost == nil {
			r.notice(lost, "its identity is gone")
		}
	case err != nil:
		return fmt.Errorf("store unavailable: %w", err)
	case id.ID == r.known.ID:
	case id.State == IdentityReset:
		if r.lost != nil {
			r.log.Warn("store reset accepted by an operator: ready again; events it lost are not recovered",
				"identity", id.ID, "lost_noticed_at", r.lostSince.UTC().Format(time.RFC3339))
		} else {
			r.log.Info("store reset accepted by an operator", "identity", id.ID)
		}
		r.known, r.lost = id, nil
	case id.State == IdentityLost:
		// Another process noticed first and marked it.
		r.notice(id, "another process found its identity gone")
		r.known = id
	default:
		// Replaced by a fresh identity: another process started on the
		// emptied store before anyone noticed. Mark it lost for all.
		lost := Identity{ID: NewID("sid", r.now()), CreatedAt: r.now().UTC(), State: IdentityLost, Previous: r.known.ID}
		r.notice(lost, "its identity was replaced by a new one")
		if err := r.s.PutIdentity(ctx, id.ID, lost); err == nil {
			r.known = lost
		} else {
			r.known = id
		}
	}
	if r.lost != nil {
		return fmt.Errorf("store lost its data (noticed at %s): events acknowledged before may be lost; once dealt with, accept it with `hookrelay store reset-ack`",
			r.lostSince.UTC().Format(time.RFC3339))
	}
	return nil
}

// notice records a loss the first time it is seen; the caller holds mu.
func (r *Readiness) notice(marker Identity, why string) {
	if r.lost != nil {
		return
	}
	r.log.Error("store lost its data: "+why+"; events acknowledged before it may be lost (a Redis restarted without persistence, flushed or replaced?); this process is not ready until an operator runs `hookrelay store reset-ack`",
		"identity", r.known.ID, "identity_created", r.known.CreatedAt.UTC().Format(time.RFC3339))
	r.markLost(marker)
}

// markLost latches the lost state and counts it; the caller holds mu.
func (r *Readiness) markLost(marker Identity) {
	if r.lost != nil {
		return
	}
	r.lost = &marker
	r.lostSince = r.now()
	r.losses.Add(1)
	if r.onLoss != nil {
		r.onLoss()
	}
}

// Losses is how many times this process noticed that the store lost its
// data: a counter for metrics (hookrelay_store_identity_lost_total).
func (r *Readiness) Losses() int64 { return r.losses.Load() }

// Run checks the identity every WatchEvery until ctx is done, so that a
// loss is noticed within seconds even when nothing asks /readyz.
func (r *Readiness) Run(ctx context.Context) error {
	t := time.NewTicker(r.watchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, max(r.watchEvery, 2*time.Second))
			err := r.Check(cctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				r.log.Debug("store not ready", "error", err)
			}
		}
	}
}
