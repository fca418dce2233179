package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// writeMetric is the histogram of the store's own writes that hookrelay
// exposes (the embedded store's commits and flushes of its WAL).
const writeMetric = "hookrelay_store_write_duration_seconds"

// histogram is one step's histogram as scraped: cumulative counts at
// ascending upper bounds (seconds), the last +Inf.
type histogram struct {
	Count  uint64
	Sum    float64
	Bounds []float64
	Counts []uint64
}

// diskWaits is what a server's store waited on the disk during a run:
// per step ("commit", "flush"), its histogram. Empty for a store that
// does not time its writes (Redis).
type diskWaits map[string]histogram

// scrapeMetrics reads the server's /metrics.
func scrapeMetrics(ctx context.Context, base string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	return fams, nil
}

// handedOffMetric counts the deliveries that the server's relay took in
// the accepts that stored them, by action.
const handedOffMetric = "hookrelay_deliveries_handed_off_total"

// counterSum is the sum of a counter's samples, -1 when the server does
// not expose it.
func counterSum(fams map[string]*dto.MetricFamily, name string) float64 {
	fam := fams[name]
	if fam == nil {
		return -1
	}
	var n float64
	for _, m := range fam.GetMetric() {
		n += m.GetCounter().GetValue()
	}
	return n
}

// writesOf is the store's write histograms among the server's metrics.
func writesOf(fams map[string]*dto.MetricFamily) diskWaits {
	out := diskWaits{}
	fam := fams[writeMetric]
	if fam == nil {
		return out
	}
	for _, m := range fam.GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		step := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == "step" {
				step = l.GetValue()
			}
		}
		out[step] = histogramOf(h)
	}
	return out
}

func histogramOf(h *dto.Histogram) histogram {
	out := histogram{Count: h.GetSampleCount(), Sum: h.GetSampleSum()}
	for _, b := range h.GetBucket() {
		out.Bounds = append(out.Bounds, b.GetUpperBound())
		out.Counts = append(out.Counts, b.GetCumulativeCount())
	}
	if len(out.Bounds) == 0 || !math.IsInf(out.Bounds[len(out.Bounds)-1], 1) {
		out.Bounds = append(out.Bounds, math.Inf(1))
		out.Counts = append(out.Counts, out.Count)
	}
	return out
}

// quantile is the upper bound of the bucket that holds the q-quantile, as
// "≤ 2.5 ms", or "> 5 s" past the last bound; "–" without observations.
func (h histogram) quantile(q float64) string {
	if h.Count == 0 {
		return "–"
	}
	rank := max(uint64(math.Ceil(q*float64(h.Count))), 1)
	for i, c := range h.Counts {
		if c >= rank {
			return h.bound(i)
		}
	}
	return h.bound(len(h.Counts) - 1)
}

// slowest is the bucket that holds the slowest observation.
func (h histogram) slowest() string { return h.quantile(1) }

func (h histogram) bound(i int) string {
	if math.IsInf(h.Bounds[i], 1) {
		if i == 0 {
			return "–"
		}
		return "> " + dur(seconds(h.Bounds[i-1]))
	}
	return "≤ " + dur(seconds(h.Bounds[i]))
}

// over is how many observations took longer than s seconds (s one of the
// bounds; otherwise those over the next bound below it).
func (h histogram) over(s float64) uint64 {
	under := uint64(0)
	for i, b := range h.Bounds {
		if b <= s {
			under = h.Counts[i]
		}
	}
	return h.Count - under
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// diskTable writes what the stores of the latency and isolation runs
// waited on the disk, for the runs whose store times its writes.
func diskTable(b *strings.Builder, runs []latencyRun) {
	fmt.Fprint(b, "| run | store | flushes | p50 | p99 | over 10 ms | over 100 ms | slowest | commits | commit p99 | commits over 10 ms | slowest commit |\n")
	fmt.Fprint(b, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		f, c := r.Disk["flush"], r.Disk["commit"]
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Phase, r.Store,
			num(float64(f.Count)), f.quantile(.5), f.quantile(.99), num(float64(f.over(.01))), num(float64(f.over(.1))), f.slowest(),
			num(float64(c.Count)), c.quantile(.99), num(float64(c.over(.01))), c.slowest())
	}
	fmt.Fprint(b, "\n")
}

// latencyRun names a latency or isolation run for diskTable.
type latencyRun struct {
	Phase string
	latencyResult
}

// constantRuns are the latency and isolation runs, in that order.
func (r *report) constantRuns() []latencyRun {
	var out []latencyRun
	for _, l := range r.Latency {
		out = append(out, latencyRun{"latency", l})
	}
	for _, l := range r.Isolation {
		out = append(out, latencyRun{"isolation", l})
	}
	return out
}

// diskRuns are the runs whose store timed its writes.
func (r *report) diskRuns() []latencyRun {
	var out []latencyRun
	for _, l := range r.constantRuns() {
		if len(l.Disk) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// costTable writes what each constant-rate run cost.
func costTable(b *strings.Builder, runs []latencyRun) {
	fmt.Fprint(b, "| run | store | server CPU | Redis CPU | disk written per event | deliveries handed off |\n|---|---|---:|---:|---:|---:|\n")
	for _, r := range runs {
		handed := "–"
		if r.HandedOff >= 0 && r.Accepted > 0 {
			handed = fmt.Sprintf("%.1f %%", 100*r.HandedOff/float64(r.Accepted))
		}
		c := r.Cost
		if !c.ok {
			fmt.Fprintf(b, "| %s | %s | – | – | – | %s |\n", r.Phase, r.Store, handed)
			continue
		}
		redis, disk := "–", "–"
		if c.Redis > 0 {
			redis = fmt.Sprintf("%.2f cores", c.Redis)
		}
		if c.DiskPerEvent >= 0 {
			disk = size(int(c.DiskPerEvent))
		}
		fmt.Fprintf(b, "| %s | %s | %.2f cores | %s | %s | %s |\n", r.Phase, r.Store, c.Server, redis, disk, handed)
	}
	fmt.Fprint(b, "\n")
}

// diskWritten is how many bytes the machine's disks have written since it
// started (/proc/diskstats, whole disks only: a partition's writes are its
// disk's too); -1 where that cannot be read.
func diskWritten() int64 {
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return -1
	}
	var n int64
	ok := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// major minor name, then reads (4 fields), then writes completed,
		// merged, sectors written: the tenth field.
		if len(f) < 10 {
			continue
		}
		if _, err := os.Stat(filepath.Join("/sys/block", f[2], "device")); err != nil {
			continue // a partition, or a device of no disk (loop, ram, dm)
		}
		sectors, err := strconv.ParseInt(f[9], 10, 64)
		if err != nil {
			continue
		}
		n += sectors * 512 // sectors of 512 bytes, whatever the disk's own
		ok = true
	}
	if !ok {
		return -1
	}
	return n
}
