package redisstore

import (
	"context"
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

	ps := s.c.Subscribe(ctx, s.k.wake())
	_, _ = ps.Receive(ctx)
	msgs := ps.Channel()
	go func() {
		defer close(w.done)
		defer close(out)
		defer func() {
			_ = ps.Close()
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
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}
