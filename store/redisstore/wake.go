package redisstore

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// waker is one Wake subscription.
type waker struct {
	stop context.CancelFunc
	done chan struct{} // closed when its goroutine has ended
}

// shortcutRefresh is how often Wake looks again for masters it has no
// shortcut on (below): a replica that took over after a failover, or a
// master added to the cluster.
var shortcutRefresh = 5 * time.Second

// Wake subscribes to the wake channel that Accept, AddDeliveries,
// RetryDelivery and Release publish on. Signals are coalesced: the
// returned channel holds at most one. It is closed when ctx is done or the
// store is closed. Wake returns once Redis has confirmed the
// subscription (or failed to; go-redis then keeps resubscribing), so an
// Accept that follows it is seen.
//
// On a Redis Cluster the scripts publish on the node of their partition,
// and a message reaches a subscriber on another node over the cluster bus,
// which now and then holds it for some 40 ms. Besides the subscription the
// cluster client keeps (it follows the channel's slot through failovers),
// Wake subscribes on every master, so that a message comes straight from
// the node that published it: on those it knows at the time, then, every
// shortcutRefresh, on those that have become masters since. Those extra
// subscriptions are a shortcut only: one whose node goes away carries
// nothing more (it ends once the cluster client drops the node, and is
// made again if the node comes back as a master), one on a master that
// became a replica still carries what the bus brings it, and the first
// subscription still carries every message.
func (s *Store) Wake(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(ctx)
	w := &waker{stop: cancel, done: make(chan struct{})}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		close(out)
		return out
	}
	s.wakers[w] = struct{}{}
	s.mu.Unlock()

	channel := s.k.wake()
	ps := s.c.Subscribe(ctx, channel)
	_, _ = ps.Receive(ctx)
	msgs := ps.Channel()
	// A message names the actions whose deliveries it announces, which a
	// partitioned store's leases take into account first (idleActions).
	partitioned := s.partitioned()
	signal := func(payload string) {
		if partitioned {
			s.idle.woken(payload)
		}
		select {
		case out <- struct{}{}:
		default:
		}
	}
	var sc *shortcuts
	if cc, ok := s.c.(*redis.ClusterClient); ok {
		sc = &shortcuts{cc: cc, channel: channel, signal: signal, subs: map[string]*redis.PubSub{}}
		sc.add(ctx)
		sc.loop.Add(1)
		go sc.refresh(ctx)
	}
	go func() {
		defer close(w.done)
		defer close(out)
		defer func() {
			cancel()
			_ = ps.Close()
			if sc != nil {
				sc.close()
			}
			s.mu.Lock()
			delete(s.wakers, w)
			s.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				signal(m.Payload)
			}
		}
	}()
	return out
}

// shortcuts are one Wake's subscriptions on the cluster's masters, by
// node address.
type shortcuts struct {
	cc      *redis.ClusterClient
	channel string
	signal  func(payload string)

	mu      sync.Mutex
	subs    map[string]*redis.PubSub
	readers sync.WaitGroup // one per subscription, until its channel closes
	loop    sync.WaitGroup // refresh
}

// add subscribes on every master the cluster client knows that has no
// subscription of these yet. It runs once in Wake, then only in refresh,
// which close waits for: never beside itself or close.
func (sc *shortcuts) add(ctx context.Context) {
	_ = sc.cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		addr := node.Options().Addr
		sc.mu.Lock()
		_, have := sc.subs[addr]
		sc.mu.Unlock()
		if have {
			return nil
		}
		p := node.Subscribe(ctx, sc.channel)
		if _, err := p.Receive(ctx); err != nil {
			_ = p.Close()
			return nil
		}
		sc.mu.Lock()
		sc.subs[addr] = p
		sc.readers.Add(1)
		sc.mu.Unlock()
		go func(m <-chan *redis.Message) {
			defer sc.readers.Done()
			for msg := range m {
				sc.signal(msg.Payload)
			}
			// The node is gone: a master on its address gets a new
			// subscription at the next refresh.
			sc.mu.Lock()
			if sc.subs[addr] == p {
				delete(sc.subs, addr)
			}
			sc.mu.Unlock()
			_ = p.Close()
		}(p.Channel())
		return nil
	})
}

// refresh looks for new masters every shortcutRefresh until ctx is done.
func (sc *shortcuts) refresh(ctx context.Context) {
	defer sc.loop.Done()
	t := time.NewTicker(shortcutRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sc.add(ctx)
		}
	}
}

// close ends every subscription, once refresh has returned (its context
// is done), and waits for their readers.
func (sc *shortcuts) close() {
	sc.loop.Wait()
	sc.mu.Lock()
	subs := sc.subs
	sc.subs = nil
	sc.mu.Unlock()
	for _, p := range subs {
		_ = p.Close()
	}
	sc.readers.Wait()
}
