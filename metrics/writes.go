package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookrelay/hookrelay/store"
)

var writeDesc = prometheus.NewDesc(namespace+"_store_write_duration_seconds",
	"How long the steps of the store's writes took: on the embedded store, the commits of the writer (step=commit) "+
		"and the flushes of the write-ahead log to the disk (step=flush), which every write waits for.",
	[]string{"step"}, nil)

// writesCollector gives the store's own histograms of its writes, read at
// scrape time (store.WriteTimer).
type writesCollector struct{ w store.WriteTimer }

func (c writesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- writeDesc }

func (c writesCollector) Collect(ch chan<- prometheus.Metric) {
	for _, wt := range c.w.WriteTimes() {
		buckets := make(map[float64]uint64, len(store.DurationBuckets))
		for i, le := range store.DurationBuckets {
			buckets[le] = wt.Cumulative[i]
		}
		ch <- prometheus.MustNewConstHistogram(writeDesc, wt.Count, wt.Sum, buckets, wt.Step)
	}
}
