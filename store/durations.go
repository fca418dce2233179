package store

import (
	"sync/atomic"
	"time"
)

// WriteTimer is a store that times the steps of its writes that wait on
// the disk, for the metrics (hookrelay_store_write_duration_seconds): the
// embedded store times its commits and the flushes of its write-ahead log,
// so that an operator can tell a slow disk from a busy process when
// answers slow down.
type WriteTimer interface {
	WriteTimes() []WriteTime
}

// WriteTime is how long one step of a store's writes took, as a histogram
// over DurationBuckets.
type WriteTime struct {
	Step string // "commit", "flush"
	Histogram
}

// Histogram is a snapshot of Durations: Cumulative[i] observations took at
// most DurationBuckets[i] seconds; Count and Sum (seconds) are over all
// of them, the slower ones too.
type Histogram struct {
	Cumulative []uint64
	Count      uint64
	Sum        float64
}

// DurationBuckets are the upper bounds, in seconds, of the buckets of a
// Durations: from a tenth of a millisecond, which a flush to a fast disk
// takes, to the seconds a stalled disk can hold a write.
var DurationBuckets = [...]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// Durations counts durations into DurationBuckets. Its zero value is
// ready; it is safe for concurrent use and costs a few atomic adds per
// observation, so that a store can time its own writes without a metrics
// library of its own.
type Durations struct {
	counts [len(DurationBuckets) + 1]atomic.Uint64 // per bucket of DurationBuckets, then those slower than the last
	sum    atomic.Int64                            // nanoseconds
}

// Observe counts one duration.
func (d *Durations) Observe(t time.Duration) {
	s := t.Seconds()
	i := 0
	for i < len(DurationBuckets) && s > DurationBuckets[i] {
		i++
	}
	d.counts[i].Add(1)
	d.sum.Add(int64(t))
}

// Histogram is what Durations counted so far. Each count is read on its
// own, so a snapshot taken while others observe may be off by those.
func (d *Durations) Histogram() Histogram {
	h := Histogram{Cumulative: make([]uint64, len(DurationBuckets))}
	for i := range d.counts {
		h.Count += d.counts[i].Load()
		if i < len(DurationBuckets) {
			h.Cumulative[i] = h.Count
		}
	}
	h.Sum = time.Duration(d.sum.Load()).Seconds()
	return h
}
