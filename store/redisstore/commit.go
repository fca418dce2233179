package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/store"
)

// Group commit: concurrent Accepts are sent to Redis together, as one
// pipeline of accept scripts, so that under load a round trip and its
// syscalls carry many events instead of one. Each script stays atomic on
// its own; the interface stays one call per event.

const (
	// committers is how many pipelines may be in flight at once.
	committers = 2
	// maxBatch caps the scripts in one pipeline.
	maxBatch = 128
)

var errClosed = errors.New("redisstore: store is closed")

// acceptCall is one Accept waiting for its batch.
type acceptCall struct {
	id         string
	deliveries int // how many deliveries it queues
	keys       []string
	args       []any
	res        store.Accepted
	err        error
	done       chan struct{}
}

func (s *Store) startCommitters() {
	s.calls = make(chan *acceptCall)
	s.quit = make(chan struct{})
	for range committers {
		s.committing.Add(1)
		go s.commit()
	}
}

// commit takes a waiting Accept, then every other one already waiting, and
// runs them as one batch. While a batch is in flight the next one fills up,
// so batches grow with load and a lone Accept is never delayed.
func (s *Store) commit() {
	defer s.committing.Done()
	batch := make([]*acceptCall, 0, maxBatch)
	for {
		select {
		case c := <-s.calls:
			batch = append(batch[:0], c)
		case <-s.quit:
			return
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case c := <-s.calls:
				batch = append(batch, c)
			default:
				break fill
			}
		}
		s.runBatch(batch)
		clear(batch)
	}
}

// runBatch runs the batch's scripts in one pipeline, and wakes the relays
// once for all the deliveries the batch queued. The callers' contexts no
// longer apply here: a call whose caller gave up is still committed or not
// as a whole, and the client's timeouts bound the wait.
func (s *Store) runBatch(batch []*acceptCall) {
	ctx := context.Background()
	cmds := make([]*redis.Cmd, len(batch))
	wake := 0
	_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range batch {
			cmds[i] = acceptScript.EvalSha(ctx, p, c.keys, c.args...)
			wake += c.deliveries
		}
		if wake > 0 {
			// A wake-up is a hint: one that finds a duplicate's
			// deliveries, which were not stored, only costs a look.
			p.Publish(ctx, s.k.wake(), wake)
		}
		return nil
	})
	reloaded := false
	for i, c := range batch {
		res, err := cmds[i].Slice()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// The script cache was flushed: Run loads it again, and the
			// wake-up above came before these deliveries were stored.
			res, err = acceptScript.Run(ctx, s.c, c.keys, c.args...).Slice()
			reloaded = reloaded || c.deliveries > 0
		}
		c.finish(res, err)
	}
	if reloaded {
		_ = s.c.Publish(ctx, s.k.wake(), wake).Err()
	}
}

func (c *acceptCall) finish(res []any, err error) {
	if err != nil {
		c.err = fmt.Errorf("redisstore: accept %s: %w", c.id, err)
	} else {
		c.res, c.err = acceptedOf(c.id, res)
	}
	close(c.done)
}

// submit hands an Accept to the committers and waits for its result.
func (s *Store) submit(ctx context.Context, c *acceptCall) (store.Accepted, error) {
	if err := ctx.Err(); err != nil {
		return store.Accepted{}, err
	}
	select {
	case s.calls <- c:
	case <-s.quit:
		return store.Accepted{}, errClosed
	case <-ctx.Done():
		return store.Accepted{}, ctx.Err()
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		// The script may still run: the event is then stored, and the
		// sender's retry is answered as a duplicate of it.
		return store.Accepted{}, ctx.Err()
	}
}
