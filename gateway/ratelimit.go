package gateway

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/store"
)

// Limiter grants requests under a hook's rate_limit:. The Redis store's
// limiter is shared by every process on it; store.LocalLimiter serves one
// process.
type Limiter interface {
	// AllowAtMost takes up to n from key's budget under r and returns how
	// many it granted and, when fewer than n, how long until the next.
	AllowAtMost(ctx context.Context, key string, r store.Rate, n int) (int, time.Duration, error)
}

// limitKey is a hook's budget in the limiter, which the relay's actions
// share: no action name holds a ':', so the two never meet.
func limitKey(hook string) string { return "hook:" + hook }

// limit takes one request from the hook's rate_limit: budget. It runs
// after the auth: checks and before the body is read: a request that the
// URL token, the address list or the credentials already refuse spends
// nothing of the sender's budget, and one over the limit costs no more
// than its headers. A request that only a body signature could refuse
// does spend it, as checking that means reading and hashing the body,
// the very cost the limit is there to shed.
//
// When the limiter fails (Redis unreachable) the request goes on, so that
// a blip of the limiter never refuses every sender; if the store is down
// too, Accept answers 503 and the sender retries.
func (g *Gateway) limit(c *gin.Context, hook *config.Hook) error {
	if hook.RateLimit.IsZero() {
		return nil
	}
	ctx := c.Request.Context()
	n, wait, err := g.limiter.AllowAtMost(ctx, limitKey(hook.Name), hook.RateLimit, 1)
	if err != nil {
		if g.metrics != nil {
			g.metrics.StoreError("rate_limit")
		}
		g.log.WarnContext(ctx, "rate limit unavailable, request let through", "hook", hook.Name, "error", err)
		return nil
	}
	if n >= 1 {
		return nil
	}
	c.Header("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
	return fail(http.StatusTooManyRequests, "rate limit exceeded, retry later", nil)
}

// retryAfterSeconds rounds a wait up to whole seconds, at least one: a
// sender that waits that long finds budget again.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
