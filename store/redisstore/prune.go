package redisstore

import (
	"context"
	"fmt"
	"slices"

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
	bound := store.IDsBefore("evt", p.Bound())
	if s.partitioned() {
		return s.pruneParts(ctx, p, bound)
	}
	keys := []string{s.k.pruneLease(), s.k.pruneCursor(), s.k.indexes()}
	res, err := pruneScript.Run(ctx, s.c, keys, pruneArgs(p, bound, p.Limit, s.k)...).Int64Slice()
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

func pruneArgs(p store.Prune, bound string, limit int, k keys) []any {
	return []any{p.Now.UnixMilli(), p.Owner, p.LeaseUntil.UnixMilli(),
		p.CompletedBefore.UnixMilli(), p.FailedBefore.UnixMilli(), bound, limit, k.base}
}

// pruneParts prunes a partitioned store under the pruning lease of
// partition 0, each partition from its own cursor (and under its own
// lease, which the holder of the store's takes). A pass goes over every
// partition until each has ended its own pass; a call shares its batch
// among the partitions still in the pass, all in one pipeline, and says
// More until the pass is over.
func (s *Store) pruneParts(ctx context.Context, p store.Prune, bound string) (store.Pruned, error) {
	s.pruning.Lock()
	defer s.pruning.Unlock()
	held, err := pruneLeaseScript.Run(ctx, s.c, []string{s.k.pruneLease()}, p.Now.UnixMilli(), p.Owner, p.LeaseUntil.UnixMilli()).Int64()
	if err != nil {
		return store.Pruned{}, fmt.Errorf("redisstore: prune: %w", err)
	}
	if held == -1 {
		return store.Pruned{Held: true}, nil
	}
	P := len(s.parts)
	if s.pruneDone == nil {
		s.pruneDone = make([]bool, P)
	}
	var active []int
	for k := range P {
		if i := (s.pruneTurn + k) % P; !s.pruneDone[i] {
			active = append(active, i)
		}
	}
	var calls []*scriptCall
	var called []int
	for j, i := range active {
		share := p.Limit / len(active)
		if j < p.Limit%len(active) {
			share++
		}
		if share == 0 {
			continue
		}
		k := s.parts[i]
		calls = append(calls, &scriptCall{keys: []string{k.pruneLease(), k.pruneCursor(), k.indexes()},
			args: pruneArgs(p, bound, share, k)})
		called = append(called, i)
	}
	s.runAll(ctx, pruneScript, calls)
	var out store.Pruned
	for j, c := range calls {
		res, err := c.cmd.Int64Slice()
		if err != nil {
			return out, fmt.Errorf("redisstore: prune: %w", err)
		}
		i := called[j]
		switch {
		case len(res) == 1 && res[0] == -1:
			// An owner whose lease on the store ended while it pruned
			// this partition; it is left until the next pass.
			s.pruneDone[i] = true
		case len(res) == 4:
			out.Events += int(res[0])
			out.Deliveries += int(res[1])
			out.Attempts += int(res[2])
			s.pruneDone[i] = res[3] == 0
		default:
			return out, fmt.Errorf("redisstore: prune: unexpected reply %v", res)
		}
	}
	s.pruneTurn = (s.pruneTurn + len(called)) % P
	out.More = slices.Contains(s.pruneDone, false)
	if !out.More {
		clear(s.pruneDone)
	}
	return out, nil
}
