package store

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// LocalLimiter grants uses of a named budget (an action's attempts, a
// hook's requests) under its Rate, within one process: a token bucket per
// name. A Redis store has one shared by every process instead.
type LocalLimiter struct {
	now func() time.Time
	mu  sync.Mutex
	by  map[string]*localLimit
}

type localLimit struct {
	r Rate
	l *rate.Limiter
}

// NewLocalLimiter returns a LocalLimiter reading the clock now (nil: time.Now).
func NewLocalLimiter(now func() time.Time) *LocalLimiter {
	if now == nil {
		now = time.Now
	}
	return &LocalLimiter{now: now, by: map[string]*localLimit{}}
}

// AllowAtMost takes up to n uses of name under r now and returns how
// many it granted and, when fewer than n, how long until the next one may
// be granted.
func (ll *LocalLimiter) AllowAtMost(_ context.Context, name string, r Rate, n int) (int, time.Duration, error) {
	if r.IsZero() {
		return n, 0, nil
	}
	ll.mu.Lock()
	defer ll.mu.Unlock()
	e := ll.by[name]
	if e == nil || e.r != r {
		// A new or changed rate (after a reload) starts a new bucket.
		e = &localLimit{r: r, l: rate.NewLimiter(rate.Limit(float64(r.Count)/r.Per.Seconds()), r.Burst())}
		ll.by[name] = e
	}
	now := ll.now()
	tokens := e.l.TokensAt(now)
	k := min(n, int(math.Floor(tokens)))
	if k > 0 {
		e.l.AllowN(now, k)
	}
	if k >= n {
		return k, 0, nil
	}
	missing := 1 - (tokens - float64(max(k, 0)))
	wait := time.Duration(missing / float64(e.l.Limit()) * float64(time.Second))
	return max(k, 0), max(wait, time.Millisecond), nil
}
