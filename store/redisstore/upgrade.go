package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// upgradeChunk is how many entries of the earlier due index one
// upgradeScript call moves, so that a large backlog never holds Redis for
// long.
const upgradeChunk = 500

// upgrade brings a store written by earlier versions to this layout: it
// moves every entry of the due index they kept into the per-action
// queues, then every event into the string layout with one listing index
// per record (layoutScript), chunk by chunk, until the earlier indexes are
// gone. Each chunk is one script, so nothing is lost between the two
// layouts, and several processes may upgrade at once. Processes of an
// earlier version must not write to the store meanwhile.
func (s *Store) upgrade(ctx context.Context) error {
	if err := s.untilEmpty(ctx, upgradeScript, s.k.legacyDue(), s.k.queues()); err != nil {
		return fmt.Errorf("redisstore: upgrade the due index: %w", err)
	}
	if err := s.untilEmpty(ctx, layoutScript, s.k.legacyEvents(), s.k.indexes()); err != nil {
		return fmt.Errorf("redisstore: upgrade the events: %w", err)
	}
	// What the earlier indexes still hold names records that no event
	// lists: nothing to move.
	old := []string{s.k.legacyDeliveries()}
	for _, st := range []string{"accepted", "ignored"} {
		old = append(old, s.k.legacyEvents()+":status:"+st)
	}
	for _, st := range []string{"pending", "retrying", "succeeded", "dead"} {
		old = append(old, s.k.legacyDeliveries()+":status:"+st)
	}
	if err := s.c.Del(ctx, old...).Err(); err != nil {
		return fmt.Errorf("redisstore: upgrade: remove the earlier indexes: %w", err)
	}
	return nil
}

// untilEmpty runs an upgrade script, which moves a chunk out of the index
// from and answers how much it still holds, until from is empty.
func (s *Store) untilEmpty(ctx context.Context, script *redis.Script, from, to string) error {
	for {
		left, err := script.Run(ctx, s.c, []string{from, to}, s.k.base, upgradeChunk).Int64()
		if err != nil {
			return err
		}
		if left == 0 {
			return nil
		}
	}
}

// upgraded runs upgrade once per store before the queues or listings are
// read: Open does it at once, a store made by New (which cannot fail) on
// its first Lease, QueueStats or listing.
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
