package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
	replicas   int // how many replicas must hold it (store.Accept.WaitReplicas)
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
// once for all the deliveries the batch queued. When a call asks for
// replicas, the pipeline ends with WAIT, on the connection that wrote, and
// every call of the batch fails with store.ErrNotReplicated unless enough
// replicas acknowledged in time. The callers' contexts no longer apply
// here: a call whose caller gave up is still committed or not as a whole,
// and the client's timeouts bound the wait.
func (s *Store) runBatch(batch []*acceptCall) {
	ctx := context.Background()
	replicas := 0
	for _, c := range batch {
		replicas = max(replicas, c.replicas)
	}
	cc, cluster := s.c.(*redis.ClusterClient)
	if !cluster || replicas == 0 {
		s.runOn(ctx, s.c, batch)
		return
	}
	// WAIT counts the replicas that acknowledged the writes of the
	// connection it is sent on: each master's share of the batch goes to
	// that master directly, with its own WAIT, all masters at once.
	groups := map[string][]*acceptCall{}
	nodes := map[string]*redis.Client{}
	for _, c := range batch {
		node, err := cc.MasterForKey(ctx, c.keys[0])
		if err != nil {
			c.finish(nil, fmt.Errorf("the master of %s: %w", c.keys[0], err))
			continue
		}
		addr := node.Options().Addr
		nodes[addr] = node
		groups[addr] = append(groups[addr], c)
	}
	var wg sync.WaitGroup
	for addr, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runOn(ctx, nodes[addr], g)
		}()
	}
	wg.Wait()
}

// runOn runs a batch through client, a master's own client when the batch
// waits for replicas on a Redis Cluster.
func (s *Store) runOn(ctx context.Context, client redis.UniversalClient, batch []*acceptCall) {
	cmds := make([]*redis.Cmd, len(batch))
	wake, replicas := 0, 0
	for _, c := range batch {
		wake += c.deliveries
		replicas = max(replicas, c.replicas)
	}
	var waited *redis.Cmd
	_, _ = client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range batch {
			cmds[i] = acceptScript.EvalSha(ctx, p, c.keys, c.args...)
		}
		if wake > 0 {
			// A wake-up is a hint: one that finds a duplicate's
			// deliveries, which were not stored, only costs a look.
			p.Publish(ctx, s.k.wake(), wake)
		}
		if replicas > 0 {
			waited = p.Do(ctx, "WAIT", replicas, replicaWait.Milliseconds())
		}
		return nil
	})
	type result struct {
		res []any
		err error
	}
	results := make([]result, len(batch))
	reloaded, failed := false, false
	for i, c := range batch {
		r := &results[i]
		r.res, r.err = cmds[i].Slice()
		if r.err != nil && redis.HasErrorPrefix(r.err, "NOSCRIPT") {
			// The script cache was flushed: Run loads it again, and the
			// wake-up and WAIT above came before these writes.
			r.res, r.err = acceptScript.Run(ctx, client, c.keys, c.args...).Slice()
			reloaded = true
		}
		failed = failed || r.err != nil
	}
	if reloaded {
		if wake > 0 {
			_ = client.Publish(ctx, s.k.wake(), wake).Err()
		}
		if replicas > 0 {
			waited = client.Do(ctx, "WAIT", replicas, replicaWait.Milliseconds())
		}
	}
	if cc, ok := s.c.(*redis.ClusterClient); ok && failed && client != s.c {
		// Sent past the cluster client, a failed batch does not tell it
		// that the slot may have moved: the next batch asks it afresh.
		cc.ReloadState(ctx)
	}
	var notReplicated error
	if replicas > 0 {
		notReplicated = replicated(waited, replicas)
	}
	for i, c := range batch {
		r := results[i]
		if r.err == nil && notReplicated != nil && c.replicas > 0 {
			r.err = notReplicated
		}
		c.finish(r.res, r.err)
	}
}

// replicated reads the answer to WAIT for replicas: nil when enough of them
// acknowledged, else store.ErrNotReplicated saying why.
func replicated(waited *redis.Cmd, replicas int) error {
	n, err := waited.Int64()
	if err != nil {
		return fmt.Errorf("%w: WAIT: %w", store.ErrNotReplicated, err)
	}
	if n < int64(replicas) {
		return fmt.Errorf("%w: %d of %d replicas acknowledged within %v", store.ErrNotReplicated, n, replicas, replicaWait)
	}
	return nil
}

// replicaWait bounds how long an accept waits for replicas.
const replicaWait = time.Second

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
