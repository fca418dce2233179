package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
)

// readiness checks at start that the store takes a write and still holds
// its data, warns about a Redis that would lose everything on a restart,
// and returns what /readyz and the identity watcher use from then on.
func readiness(ctx context.Context, st backend, log *slog.Logger, accept bool, expect string) (*store.Readiness, error) {
	if err := st.Probe(ctx, time.Now()); err != nil {
		return nil, fmt.Errorf("the store cannot take a write: %w", err)
	}
	if rs, ok := st.(*redisstore.Store); ok {
		d, err := rs.Durability(ctx)
		switch {
		case err != nil:
			log.Info("cannot tell whether Redis persists its data", "error", err)
		case !d.Persists():
			log.Warn("Redis neither persists its data (no AOF, no RDB snapshots) nor is replicated: when it restarts, every event acknowledged and not yet delivered is lost; turn on appendonly or save points")
		}
	}
	rd := store.NewReadiness(st, store.ReadinessOptions{Logger: log, Expect: expect})
	if err := rd.Init(ctx, accept); err != nil {
		var ue *store.UnexpectedIdentityError
		if errors.As(err, &ue) {
			return nil, fmt.Errorf("%w (--expect-store): either --store names another store, or an operator accepted a loss of the expected one since (hookrelay store reset-ack), which wrote the new identity; then start with --expect-store %s; nothing was changed",
				err, ue.Got.ID)
		}
		return nil, err
	}
	switch id := rd.Identity(); {
	case expect == "":
		log.Info("store identity: start with --expect-store "+id.ID+" so that a store emptied while no process ran is noticed at start", "identity", id.ID)
	case id.ID != expect && id.State == store.IdentityReset:
		log.Warn("the accepted reset wrote a new store identity: start later processes with --expect-store "+id.ID, "identity", id.ID, "expected", expect)
	}
	return rd, nil
}

// plainDiskFull says "disk full" first when that is why the store failed,
// so that an operator reads it at once.
func plainDiskFull(err error) error {
	if errors.Is(err, store.ErrDiskFull) {
		return fmt.Errorf("disk full: the store cannot be written; free space on its file system and start again (%w)", err)
	}
	return err
}
