package redisstore

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// waker is one Wake subscription.
type waker struct {
	stop context.CancelFunc
	done chan struct{} // closed when its goroutine has ended
}

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
// Wake subscribes on every master it knows at the time, so that a
// message comes straight from the node that published it. Those extra
// subscriptions are a shortcut only: one whose node goes away carries
// nothing more (it ends once the cluster client drops the node), and the
// first one still carries every message.
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
	signal := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	var (
		extra     []*redis.PubSub
		shortcuts sync.WaitGroup
	)
	if cc, ok := s.c.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			p := node.Subscribe(ctx, channel)
			if _, err := p.Receive(ctx); err != nil {
				_ = p.Close()
				return nil
			}
			mu.Lock()
			extra = append(extra, p)
			mu.Unlock()
			return nil
		})
		for _, p := range extra {
			shortcuts.Add(1)
			go func(m <-chan *redis.Message) {
				defer shortcuts.Done()
				for range m {
					signal()
				}
			}(p.Channel())
		}
	}
	go func() {
		defer close(w.done)
		defer close(out)
		defer func() {
			_ = ps.Close()
			for _, p := range extra {
				_ = p.Close()
			}
			shortcuts.Wait()
			s.mu.Lock()
			delete(s.wakers, w)
			s.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-msgs:
				if !ok {
					return
				}
				signal()
			}
		}
	}()
	return out
}
