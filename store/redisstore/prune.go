package redisstore

import (
	"context"
	"fmt"

	"github.com/hookrelay/hookrelay/store"
)

var _ store.Pruner = (*Store)(nil)

// Prune examines one batch of events in one script (pruneScript). Events
// are examined in id order across the events indexes, so by age, and only those received before the
// later of the two windows' ends; a shared cursor in Redis carries each
// batch on from the last, whichever process runs it, so an event that must
// stay (pending, or failed and within its longer window) is looked at once
// per pass rather than at every batch.
func (s *Store) Prune(ctx context.Context, p store.Prune) (store.Pruned, error) {
	if err := p.Check(); err != nil {
		return store.Pruned{}, fmt.Errorf("redisstore: %w", err)
	}
	if err := s.upgraded(ctx); err != nil {
		return store.Pruned{}, err
	}
	bound := p.Bound()
	keys := []string{s.k.pruneLease(), s.k.pruneCursor(), s.k.indexes()}
	res, err := pruneScript.Run(ctx, s.c, keys, p.Now.UnixMilli(), p.Owner, p.LeaseUntil.UnixMilli(),
		p.CompletedBefore.UnixMilli(), p.FailedBefore.UnixMilli(), store.IDsBefore("evt", bound), p.Limit, s.k.base).Int64Slice()
	if err != nil {
		return store.Pruned{}, fmt.Errorf("redisstore: prune: %w", err)
	}
	if len(res) == 1 && res[0] == -1 {
		return store.Pruned{Held: true}, nil
	}
	if len(res) != 4 {
		return store.Pruned{}, fmt.Errorf("redisstore: prune: unexpected reply %v", res)
	}
	return store.Pruned{Events: int(res[0]), Deliveries: int(res[1]), Attempts: int(res[2]), More: res[3] == 1}, nil
}
