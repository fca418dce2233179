package store

import (
	"testing"
	"time"
)

func TestLocalLimiterHoldsTheRate(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLocalLimiter(func() time.Time { return now })
	r := Rate{Count: 50, Per: time.Second}
	if r.Burst() != 5 {
		t.Fatalf("Burst(50/s) = %d, want 5", r.Burst())
	}
	got, wait, err := l.AllowAtMost(t.Context(), "crm", r, 8)
	if err != nil || got != 5 || wait <= 0 || wait > 20*time.Millisecond {
		t.Fatalf("AllowAtMost(8) = %d, %v, %v; want the burst of 5 and a wait of at most 20ms", got, wait, err)
	}
	// Over ten simulated seconds, asking every millisecond, no more than
	// the rate (plus the first burst) is granted.
	total := got
	for range 10_000 {
		now = now.Add(time.Millisecond)
		n, _, _ := l.AllowAtMost(t.Context(), "crm", r, 10)
		total += n
	}
	if total < 500 || total > 505 {
		t.Errorf("granted %d in 10s at 50/s, want 500 to 505", total)
	}
	// Another action has its own bucket; no rate grants everything.
	if n, _, _ := l.AllowAtMost(t.Context(), "erp", r, 3); n != 3 {
		t.Errorf("another action got %d of 3", n)
	}
	if n, _, _ := l.AllowAtMost(t.Context(), "free", Rate{}, 1000); n != 1000 {
		t.Errorf("an unlimited action got %d of 1000", n)
	}
	if b := (Rate{Count: 10, Per: time.Hour}).Burst(); b != 1 {
		t.Errorf("Burst(10/h) = %d, want 1", b)
	}
}
