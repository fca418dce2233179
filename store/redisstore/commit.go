package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/store"
)

// Group commit: concurrent Accepts are sent to Redis together, as one
// accept script per partition of the batch (one call in all on a single
// Redis), so that under load a round trip, its syscalls and a script call
// carry many events instead of one, and the events' writes to the same
// listing index or queue become one command. The interface stays one call
// per event.

const (
	// committers is how many pipelines may be in flight at once.
	committers = 2
	// maxBatch caps the scripts in one pipeline.
	maxBatch = 128
)

var errClosed = errors.New("redisstore: store is closed")

// valueArg is the place of the event's stored string among an
// acceptCall's args (acceptArgs).
const valueArg = 4

// acceptCall is one Accept waiting for its batch.
type acceptCall struct {
	id         string
	part       int // the event's partition: its keys' slot
	deliveries int // how many deliveries it queues
	replicas   int // how many replicas must hold it (store.Accept.WaitReplicas)
	keys       []string
	args       []any
	handed     *handed // what it offered its caller (store.HandOff); nil: nothing
	res        store.Accepted
	err        error
	done       chan struct{}

	// actions names the actions of its deliveries, each once, on a
	// partitioned store: the wake-up's message (idleActions).
	actions []string

	// pack, when not nil, is the dictionary that the committer compresses
	// the event's body with before sending it (repack): the event's
	// string in args holds its body as it came until then.
	pack *bodyDict
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
// and the client's timeouts bound the wait. The bodies that calls left to
// compress (acceptCall.pack) are compressed first, and how many the
// dictionary did not fit counted (fitted).
func (s *Store) runBatch(batch []*acceptCall) {
	ctx := context.Background()
	packed, missed := 0, 0
	for _, c := range batch {
		if c.pack != nil {
			v, _ := c.args[valueArg].(string)
			var flag string
			c.args[valueArg], flag = repack(v, c.pack)
			c.pack = nil
			packed++
			if flag != "d" {
				missed++
			}
		}
	}
	s.fitted(packed, missed)
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
	type call struct {
		args []any // the whole EVALSHA command
		cmd  *redis.Cmd
	}
	wake, replicas := 0, 0
	var woken []string
	for _, c := range batch {
		wake += c.deliveries
		replicas = max(replicas, c.replicas)
		woken = addActions(woken, c.actions...)
	}
	if rc, ok := s.c.(*redis.Client); ok && client == s.c && !s.scriptAccepts.Load() && !s.noPlain.Load() {
		// On one Redis (not a Cluster's master, which runBatch hands a
		// batch that waits for replicas), a batch of new events needs no
		// script (plain.go).
		// When it does, or when the transaction's outcome is not known, the
		// script runs: it finds what the transaction may have written.
		err := s.acceptPlain(ctx, rc, batch, wake)
		if err == nil {
			for _, c := range batch {
				c.finish([]any{c.id, int64(0), ""}, nil)
			}
			return
		}
		if refusesPlain(err) {
			s.noPlain.Store(true)
		}
	}
	// A batch that offers deliveries to its callers wakes the relays from
	// its scripts, for the deliveries they queued: none when all were
	// handed off.
	channel := ""
	if slices.ContainsFunc(batch, func(c *acceptCall) bool { return c.handed != nil }) {
		channel, wake = s.k.wake(), 0
	}
	groups := byPartition(batch)
	calls := make([]call, len(groups))
	for i, g := range groups {
		calls[i].args = acceptCommand(g, channel)
	}
	var waited *redis.Cmd
	_, _ = client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range calls {
			calls[i].cmd = p.Do(ctx, calls[i].args...)
		}
		if wake > 0 {
			// A wake-up is a hint: one that finds a duplicate's
			// deliveries, which were not stored, only costs a look.
			p.Publish(ctx, s.k.wake(), wakePayload(wake, woken))
		}
		if replicas > 0 {
			waited = p.Do(ctx, "WAIT", replicas, replicaWait.Milliseconds())
		}
		return nil
	})
	results := make([][]any, len(groups))
	errs := make([]error, len(groups))
	reloaded, failed := false, false
	for i, c := range calls {
		results[i], errs[i] = c.cmd.Slice()
		if errs[i] != nil && redis.HasErrorPrefix(errs[i], "NOSCRIPT") {
			// The script cache was flushed: it is loaded again, and the
			// wake-up and WAIT above came before these writes.
			if errs[i] = acceptScript.Load(ctx, client).Err(); errs[i] == nil {
				results[i], errs[i] = client.Do(ctx, c.args...).Slice()
			}
			reloaded = true
		}
		if errs[i] == nil && len(results[i]) != 3*len(groups[i]) {
			errs[i] = fmt.Errorf("unexpected reply of %d values for %d events", len(results[i]), len(groups[i]))
		}
		failed = failed || errs[i] != nil
	}
	if reloaded {
		if wake > 0 {
			_ = client.Publish(ctx, s.k.wake(), wakePayload(wake, woken)).Err()
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
	for i, g := range groups {
		for j, c := range g {
			var res []any
			err := errs[i]
			if err == nil {
				res = results[i][3*j : 3*j+3]
				if notReplicated != nil && c.replicas > 0 {
					err = notReplicated
				}
			}
			c.finish(res, err)
		}
	}
}

// byPartition splits a batch into the calls of each partition, in the
// order the partitions first come, each call keeping the batch's order.
func byPartition(batch []*acceptCall) [][]*acceptCall {
	if len(batch) > 0 && !slices.ContainsFunc(batch, func(c *acceptCall) bool { return c.part != batch[0].part }) {
		return [][]*acceptCall{batch}
	}
	var groups [][]*acceptCall
	at := map[int]int{}
	for _, c := range batch {
		i, ok := at[c.part]
		if !ok {
			i = len(groups)
			at[c.part] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], c)
	}
	return groups
}

// acceptCommand is the EVALSHA command of acceptScript for calls:
// its keys, then the number of events, the wake channel ("": the caller
// wakes the relays), each event's numbers of keys and arguments, then
// their arguments one event after the other (acceptScript).
// The names of the listing indexes that the events' arguments carry (see
// acceptArgs) go once for the call, with its first event: a batch of one
// hook's events names the same two or three indexes in every event. It is
// sent as it is, without the copy that Script.EvalSha would make.
func acceptCommand(calls []*acceptCall, channel string) []any {
	var names []any
	for _, c := range calls {
		for _, n := range eventNames(c.args) {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	nk, na := 0, 2+2*len(calls)+len(names)
	for _, c := range calls {
		nk += len(c.keys)
		na += len(c.args) - len(eventNames(c.args))
	}
	cmd := make([]any, 0, 3+nk+na)
	cmd = append(cmd, "evalsha", acceptScript.Hash(), nk)
	for _, c := range calls {
		for _, k := range c.keys {
			cmd = append(cmd, k)
		}
	}
	cmd = append(cmd, len(calls), channel)
	for i, c := range calls {
		n := len(c.args) - len(eventNames(c.args))
		if i == 0 {
			n += len(names)
		}
		cmd = append(cmd, len(c.keys), n)
	}
	for i, c := range calls {
		cmd = append(cmd, c.args[:namesAt]...)
		if i == 0 {
			cmd = append(cmd, len(names))
			cmd = append(cmd, names...)
		} else {
			cmd = append(cmd, 0)
		}
		cmd = append(cmd, c.args[namesAt+1+len(eventNames(c.args)):]...)
	}
	return cmd
}

// namesAt is where an event's arguments (acceptArgs) hold the number of
// listing index names that follow it.
const namesAt = 6

// eventNames are the listing index names among an event's arguments.
func eventNames(args []any) []any {
	return args[namesAt+1 : namesAt+1+args[namesAt].(int)]
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
		c.res, c.err = acceptedOf(c.id, res, c.handed)
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
