package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/hookrelay/hookrelay/store"
)

// Limiter holds each action to its rate across every process that shares
// the store: the budget lives in Redis (GCRA, one key per action), and its
// clock is Redis's, so processes whose clocks differ still share one
// budget.
type Limiter struct {
	l *redis_rate.Limiter
	k keys
}

// Limiter returns the store's rate limiter.
func (s *Store) Limiter() *Limiter {
	return &Limiter{l: redis_rate.NewLimiter(s.c), k: s.k}
}

// AllowAtMost takes up to n attempts of action from its budget under r
// and returns how many it took; when fewer than n, retryAfter is how long
// until at least one more may be allowed. A zero rate allows all n.
//
// When fewer than n are left, redis_rate spends the fraction of an
// attempt beyond those it grants as well: a caller that asks again after
// retryAfter, not before, loses little of its rate that way.
func (l *Limiter) AllowAtMost(ctx context.Context, action string, r store.Rate, n int) (allowed int, retryAfter time.Duration, err error) {
	if n <= 0 {
		return 0, 0, nil
	}
	if r.IsZero() {
		return n, 0, nil
	}
	limit := redis_rate.Limit{Rate: r.Count, Burst: r.Burst(), Period: r.Per}
	res, err := l.l.AllowAtMost(ctx, l.k.rateLimit(action), limit, n)
	if err != nil {
		return 0, 0, fmt.Errorf("redisstore: rate limit %s: %w", action, err)
	}
	allowed = min(max(res.Allowed, 0), n)
	if allowed == n {
		return allowed, 0, nil
	}
	retryAfter = res.RetryAfter
	if retryAfter <= 0 {
		// The budget was spent to the last attempt (redis_rate reports
		// no wait then): the next one comes after one emission interval.
		retryAfter = r.Per / time.Duration(r.Count)
	}
	return allowed, max(retryAfter, time.Millisecond), nil
}
