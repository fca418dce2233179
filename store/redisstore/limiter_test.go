package redisstore_test

import (
	"context"
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
	// 10 a minute: the budget barely refills while the test runs.
	r := store.Rate{Count: 10, Per: time.Minute}
	got, wait, err := a.AllowAtMost(ctx, "crm", r, 8)
	if err != nil || got != 8 || wait != 0 {
		t.Fatalf("first AllowAtMost(8) = %d, %v, %v; want 8 at once", got, wait, err)
	}
	got, wait, err = b.AllowAtMost(ctx, "crm", r, 8)
	if err != nil || got != 2 {
		t.Fatalf("AllowAtMost(8) through the other store = %d, %v, %v; want the 2 left", got, wait, err)
	}
	if wait <= 0 || wait > 6*time.Second {
		t.Errorf("retry after %v, want within one emission interval (6s)", wait)
	}
	got, wait, err = a.AllowAtMost(ctx, "crm", r, 1)
	if err != nil || got != 0 || wait <= 5*time.Second || wait > 6*time.Second {
		t.Errorf("AllowAtMost(1) with the budget spent = %d, %v, %v; want none, retry after about 6s", got, wait, err)
	}
	// Another action has its own budget.
	if got, _, err := b.AllowAtMost(ctx, "erp", r, 3); err != nil || got != 3 {
		t.Errorf("AllowAtMost of another action = %d, %v; want 3", got, err)
	}
}

func TestLimiterRefills(t *testing.T) {
	ctx := t.Context()
	a, b := limiters(t, "fast")
	r := store.Rate{Count: 50, Per: time.Second}
	if got, _, err := a.AllowAtMost(ctx, "fast", r, 100); err != nil || got != 50 {
		t.Fatalf("AllowAtMost(100) of 50/s = %d, %v; want the burst of 50", got, err)
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
