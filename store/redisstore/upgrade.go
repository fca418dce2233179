package redisstore

import (
	"context"
	"fmt"
)

// upgradeChunk is how many entries of the earlier due index one
// upgradeScript call moves, so that a large backlog never holds Redis for
// long.
const upgradeChunk = 500

// upgrade moves every entry of the due index that earlier versions kept
// into the per-action queues, chunk by chunk, until the index is gone.
// Each chunk is one script, so an entry is never lost between the two
// layouts, and several processes may upgrade at once.
func (s *Store) upgrade(ctx context.Context) error {
	keys := []string{s.k.legacyDue(), s.k.queues()}
	for {
		left, err := upgradeScript.Run(ctx, s.c, keys, s.k.base, upgradeChunk).Int64()
		if err != nil {
			return fmt.Errorf("redisstore: upgrade the due index: %w", err)
		}
		if left == 0 {
			return nil
		}
	}
}

// upgraded runs upgrade once per store before the queues are read: Open
// does it at once, a store made by New (which cannot fail) on its first
// Lease or QueueStats.
func (s *Store) upgraded(ctx context.Context) error {
	if s.isUpgraded.Load() {
		return nil
	}
	s.upgrading.Lock()
	defer s.upgrading.Unlock()
	if s.isUpgraded.Load() {
		return nil
	}
	if err := s.upgrade(ctx); err != nil {
		return err
	}
	s.isUpgraded.Store(true)
	return nil
}
