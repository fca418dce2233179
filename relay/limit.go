package relay

import (
	"context"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// Limiter grants attempts of an action under its rate. A Redis store
// provides one shared by every process; store.LocalLimiter serves one
// process.
type Limiter interface {
	// AllowAtMost takes up to n attempts of action under r now and
	// returns how many it granted and, when fewer than n, how long until
	// the next one may be granted.
	AllowAtMost(ctx context.Context, action string, r store.Rate, n int) (int, time.Duration, error)
}
