package redisstore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
)

// limiters returns the limiters of two stores on one prefix, as two
// processes would have, and removes the limit's key when the test ends
// (redis_rate keeps it outside the prefix).
func limiters(t *testing.T, actions ...string) (*redisstore.Limiter, *redisstore.Limiter) {
	t.Helper()
	c := redistest.Client(t)
	prefix := redistest.Prefix(t)
	a := redisstore.New(c, prefix)
	b := redisstore.New(redistest.Client(t), prefix)
	t.Cleanup(func() {
		_ = a.Close()
		_ = b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, a := range actions {
			_ = c.Del(ctx, "rate:"+prefix+":{p}:limit:"+a).Err()
		}
	})
	return a.Limiter(), b.Limiter()
}

func TestLimiterSharesBudget(t *testing.T) {
	ctx := t.Context()
	a, b := limiters(t, "crm", "erp")
	// 10 a minute: a burst of one, and nothing refills while the test runs.
	r := store.Rate{Count: 10, Per: time.Minute}
	got, wait, err := a.AllowAtMost(ctx, "crm", r, 5)
	if err != nil || got != 1 || wait <= 5*time.Second || wait > 6*time.Second {
		t.Fatalf("first AllowAtMost(5) of 10/m = %d, %v, %v; want the burst of 1, the next in 6s", got, wait, err)
	}
	got, wait, err = b.AllowAtMost(ctx, "crm", r, 5)
	if err != nil || got != 0 || wait <= 5*time.Second || wait > 6*time.Second {
		t.Fatalf("AllowAtMost(5) through the other store = %d, %v, %v; want none, the next in about 6s", got, wait, err)
	}
	// Another action has its own budget.
	if got, _, err := b.AllowAtMost(ctx, "erp", r, 3); err != nil || got != 1 {
		t.Errorf("AllowAtMost of another action = %d, %v; want its burst of 1", got, err)
	}
}

func TestLimiterRefills(t *testing.T) {
	ctx := t.Context()
	a, b := limiters(t, "fast")
	// 50/s: a burst of 5 (a tenth of a second's worth), one more every 20 ms.
	r := store.Rate{Count: 50, Per: time.Second}
	if got, _, err := a.AllowAtMost(ctx, "fast", r, 100); err != nil || got != 5 {
		t.Fatalf("AllowAtMost(100) of 50/s = %d, %v; want the burst of 5", got, err)
	}
	got, wait, err := b.AllowAtMost(ctx, "fast", r, 1)
	if err != nil || got != 0 || wait <= 0 || wait > 20*time.Millisecond {
		t.Fatalf("AllowAtMost(1) after the burst = %d, %v, %v; want none, retry within 20ms", got, wait, err)
	}
	time.Sleep(wait + 5*time.Millisecond)
	if got, _, err := b.AllowAtMost(ctx, "fast", r, 1); err != nil || got != 1 {
		t.Errorf("AllowAtMost(1) after waiting = %d, %v; want 1", got, err)
	}
}

// TestLimiterKeepsRate: two stores that ask whenever the limiter says one
// more may come get, together, the rate: the burst, then one each
// emission interval.
func TestLimiterKeepsRate(t *testing.T) {
	a, b := limiters(t, "steady")
	r := store.Rate{Count: 50, Per: time.Second}
	var total atomic.Int64
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range []*redisstore.Limiter{a, b} {
		wg.Go(func() {
			for {
				n, wait, err := l.AllowAtMost(ctx, "steady", r, 10)
				if err != nil {
					return
				}
				total.Add(int64(n))
				select {
				case <-ctx.Done():
					return
				case <-time.After(max(wait, time.Millisecond)):
				}
			}
		})
	}
	wg.Wait()
	// The burst of 5 and 50 a second after it.
	if got := total.Load(); got < 45 || got > 56 {
		t.Errorf("granted %d in one second at 50/s, want about 55", got)
	}
}

func TestLimiterUnlimited(t *testing.T) {
	a, _ := limiters(t, "any")
	for _, r := range []store.Rate{{}, {Count: 0, Per: time.Second}, {Count: 5}} {
		if got, wait, err := a.AllowAtMost(t.Context(), "any", r, 7); err != nil || got != 7 || wait != 0 {
			t.Errorf("AllowAtMost under %v = %d, %v, %v; want all 7", r, got, wait, err)
		}
	}
	if got, _, err := a.AllowAtMost(t.Context(), "any", store.Rate{Count: 1, Per: time.Second}, 0); err != nil || got != 0 {
		t.Errorf("AllowAtMost(0) = %d, %v", got, err)
	}
}
