package store

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestDurations(t *testing.T) {
	var d Durations
	for _, o := range []time.Duration{
		50 * time.Microsecond,  // the first bucket
		100 * time.Microsecond, // on a bound: counted at or under it
		3 * time.Millisecond,   // (2.5 ms, 5 ms]
		3 * time.Millisecond,
		time.Second,      // 1 s, a bound
		10 * time.Second, // slower than the last bucket: in Count only
	} {
		d.Observe(o)
	}
	h := d.Histogram()
	if h.Count != 6 {
		t.Fatalf("Count %d, want 6", h.Count)
	}
	if want := 11.00615; math.Abs(h.Sum-want) > 1e-9 {
		t.Fatalf("Sum %v, want %v", h.Sum, want)
	}
	want := map[float64]uint64{.0001: 2, .00025: 2, .0025: 2, .005: 4, .5: 4, 1: 5, 5: 5}
	for i, le := range DurationBuckets {
		if w, ok := want[le]; ok && h.Cumulative[i] != w {
			t.Errorf("bucket le=%v holds %d, want %d", le, h.Cumulative[i], w)
		}
		if i > 0 && h.Cumulative[i] < h.Cumulative[i-1] {
			t.Errorf("bucket le=%v holds %d, fewer than the one before it (%d): not cumulative", le, h.Cumulative[i], h.Cumulative[i-1])
		}
	}
}

// TestDurationsConcurrent: observations from many goroutines are all
// counted (go test -race checks the rest).
func TestDurationsConcurrent(t *testing.T) {
	var d Durations
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				d.Observe(time.Duration(g*1000+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	if h := d.Histogram(); h.Count != 8000 {
		t.Fatalf("Count %d, want 8000", h.Count)
	}
}
