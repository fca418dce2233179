package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// tinyOptions are the smoke tests' options: every phase, with tiny numbers.
func tinyOptions() options {
	return options{
		Duration:   time.Second,
		Rounds:     1,
		Warmup:     200 * time.Millisecond,
		Conns:      16,
		BodySize:   1024,
		Backlog:    500,
		Rate:       100,
		LatencyFor: 2 * time.Second,
		SustainFor: 2 * time.Second,
		SlowShare:  0.1,
		Settle:     200 * time.Millisecond,
		Timeout:    20 * time.Second,
		Stores:     []string{"sqlite", "redis"},
		Phases:     defaultOptions().Phases,
	}
}

// runTiny runs the benchmark with o and fails the test on any problem it
// reports.
func runTiny(t *testing.T, o options) (*report, *logWriter) {
	t.Helper()
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	// The phases take some 20 s; the rest of the bound is for building
	// hookrelay when the build cache is cold.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	progress := &logWriter{t: t}
	rep, err := run(ctx, o, progress)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems() {
		t.Errorf("problem: %s", p)
	}
	return rep, progress
}

// TestSmokeCluster runs intake and drain with tiny numbers on a Redis
// Cluster the benchmark starts itself, and checks that it is stopped
// afterwards.
func TestSmokeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hookrelay, the baseline and a Redis Cluster")
	}
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not on PATH: %v", bin, err)
			}
			t.Skipf("%s is not on PATH: %v", bin, err)
		}
	}
	o := tinyOptions()
	o.Stores, o.Phases = []string{"cluster"}, []string{"intake", "drain"}
	rep, progress := runTiny(t, o)
	if len(rep.Intake) != 3 {
		t.Errorf("%d intake results, want 3 (baseline, relay off and on)", len(rep.Intake))
	}
	if len(rep.Drain) != 1 || !rep.Drain[0].Complete || rep.Drain[0].Lost != 0 || rep.Drain[0].DupKeys != 0 {
		t.Errorf("drain on the cluster: %+v", rep.Drain)
	}
	if !strings.Contains(rep.Markdown(), "Redis Cluster") {
		t.Errorf("the report does not name the cluster:\n%s", rep.Markdown())
	}
	// The Redis load of intake and drain is read from each of the three
	// masters, and every master did some of the work.
	if len(rep.Redis) != 2 {
		t.Fatalf("%d Redis load rows, want intake and drain: %+v", len(rep.Redis), rep.Redis)
	}
	for _, l := range rep.Redis {
		busy := 0
		for _, s := range l.CPU {
			if s > 0 {
				busy++
			}
		}
		if len(l.CPU) != 3 || busy != 3 || l.Events == 0 {
			t.Errorf("Redis load of %s: %d events, CPU per master %v; want events and three busy masters", l.Phase, l.Events, l.CPU)
		}
	}
	if !strings.Contains(rep.Markdown(), "## Redis load") {
		t.Errorf("the report has no Redis load section:\n%s", rep.Markdown())
	}
	// The cluster is gone: the script keeps its state under a folder per
	// base port, removed on stop.
	out := progress.String()
	i := strings.Index(out, "redis+cluster://127.0.0.1:")
	if i < 0 {
		t.Fatalf("the progress log names no cluster:\n%s", out)
	}
	port, _, _ := strings.Cut(out[i+len("redis+cluster://127.0.0.1:"):], "?")
	dir := filepath.Join(os.TempDir(), "hookrelay-redis-cluster-"+port)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the cluster's folder %s is still there (%v): it was not stopped", dir, err)
	}
}

// TestSmoke runs the whole benchmark with tiny numbers. It proves that every
// phase still produces figures and that nothing was lost or duplicated on
// the way; it asserts no speed.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hookrelay, the baseline and redis-server")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not on PATH: %v", err)
		}
		t.Skipf("redis-server is not on PATH: %v", err)
	}
	o := tinyOptions()
	rep, progress := runTiny(t, o)

	// Everything the run started is gone.
	if dir := progress.tmpDir(); dir == "" {
		t.Error("the progress log names no temporary folder")
	} else if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary folder %s still there (%v)", dir, err)
	}

	if len(rep.Intake) != 6 {
		t.Fatalf("%d intake results, want 6 (baseline, naive Redis gateway, two stores × relay off and on)", len(rep.Intake))
	}
	if !rep.has(naiveStore) || !strings.Contains(rep.Markdown(), "| "+naiveLabel+" |") {
		t.Errorf("the naive Redis gateway was not measured, or not reported:\n%s", rep.Markdown())
	}
	for _, i := range rep.Intake {
		if i.Median <= 0 || len(i.Rounds) != o.Rounds {
			t.Errorf("intake %s: median %v from %d rounds", i.Label, i.Median, len(i.Rounds))
		}
		// Every process works for every request; Redis only for hookrelay
		// on Redis. Tiny rounds read the servers' CPU in ticks of 10 ms,
		// so only zero is out of bounds.
		switch c := i.CPU; {
		case c == nil:
			t.Errorf("intake %s: no CPU time per request", i.Label)
		case c.Sender <= 0 || c.Server <= 0 || (c.Redis > 0) != (i.Store == "redis" || i.Store == naiveStore):
			t.Errorf("intake %s: CPU per request %+v", i.Label, *c)
		}
		// The share handed off is read where a relay runs, and only there.
		if relay := strings.HasSuffix(i.Label, "relay on"); relay && (i.Handed < 0 || i.Handed > 1) || !relay && i.Handed != -1 {
			t.Errorf("intake %s: handed off %v", i.Label, i.Handed)
		}
		// So is what the relay delivered meanwhile, within the rounds' time.
		relay := strings.HasSuffix(i.Label, "relay on")
		switch k := i.Keeping; {
		case relay && k == nil, !relay && k != nil:
			t.Errorf("intake %s: keeping up %+v", i.Label, k)
		case relay && (k.Time < time.Duration(o.Rounds)*o.Duration || k.Accepted <= 0 || k.Delivered <= 0):
			t.Errorf("intake %s: keeping up %+v", i.Label, *k)
		}
	}
	if md := rep.Markdown(); !strings.Contains(md, "### Does the relay keep up?") || !strings.Contains(md, "| hookrelay SQLite, relay on |") {
		t.Errorf("no table of whether the relay keeps up:\n%s", md)
	}
	// Redis ran the accept script for every event of the intake, in
	// batches of one event or more.
	var intakeLoad *redisLoad
	for i, l := range rep.Redis {
		if l.Phase == "intake" {
			intakeLoad = &rep.Redis[i]
		}
	}
	switch l := intakeLoad; {
	case l == nil:
		t.Error("no Redis load for the intake")
	case l.Events <= 0 || l.Scripts.Calls <= 0 || l.Scripts.Calls > l.Events || l.scriptPerEvent() <= 0:
		t.Errorf("intake Redis load: %d events, scripts %+v (%.1f µs per event, of %.1f µs of CPU)", l.Events, l.Scripts, l.scriptPerEvent(), l.perEvent())
	}
	// The sustained run read the backlog sustainedSamples times, the last
	// at the loop's end, and every event it accepted arrived once.
	if len(rep.Sustained) != 2 {
		t.Fatalf("%d sustained results, want 2", len(rep.Sustained))
	}
	for _, s := range rep.Sustained {
		if len(s.Samples) != sustainedSamples || s.Accepted <= 0 || s.Samples[len(s.Samples)-1].Accepted != s.Accepted || s.Time < o.SustainFor {
			t.Errorf("sustained %s: %d accepted in %v, samples %+v", s.Store, s.Accepted, s.Time, s.Samples)
		}
		for i := 1; i < len(s.Samples); i++ {
			if a, z := s.Samples[i-1], s.Samples[i]; z.At <= a.At || z.Accepted < a.Accepted || z.Delivered < a.Delivered {
				t.Errorf("sustained %s: sample %d %+v after %+v", s.Store, i, z, a)
			}
		}
		if !s.Complete || s.Lost != 0 || s.DupKeys != 0 || s.Samples[len(s.Samples)-1].Delivered <= 0 {
			t.Errorf("sustained %s: complete %v, %d lost, %d duplicate keys, samples %+v", s.Store, s.Complete, s.Lost, s.DupKeys, s.Samples)
		}
	}
	if md := rep.Markdown(); !strings.Contains(md, "## Sustained intake with the relay on") || !strings.Contains(md, "| SQLite | ") {
		t.Errorf("no table of the sustained runs:\n%s", md)
	}
	if len(rep.Drain) != 2 {
		t.Fatalf("%d drain results, want 2", len(rep.Drain))
	}
	for _, d := range rep.Drain {
		if !d.Complete || d.Backlog != o.Backlog || d.Delivered != d.Backlog || d.Time <= 0 {
			t.Errorf("drain %s: %d of a backlog of %d delivered in %v (complete %v)", d.Store, d.Delivered, d.Backlog, d.Time, d.Complete)
		}
		if d.Lost != 0 || d.DupKeys != 0 || d.DupEvents != 0 {
			t.Errorf("drain %s: %d lost, %d duplicate keys, %d duplicate events", d.Store, d.Lost, d.DupKeys, d.DupEvents)
		}
	}
	for name, rows := range map[string][]latencyResult{"latency": rep.Latency, "isolation": rep.Isolation} {
		if len(rows) != 2 {
			t.Fatalf("%d %s results, want 2", len(rows), name)
		}
		for _, l := range rows {
			if l.Sent == 0 || l.Accepted != l.Sent || l.Delivered != l.Fast || l.P50 <= 0 || l.P99 < l.P50 {
				t.Errorf("%s %s: sent %d, accepted %d, %d of %d delivered, p50 %v, p99 %v", name, l.Store, l.Sent, l.Accepted, l.Delivered, l.Fast, l.P50, l.P99)
			}
			if l.Lost != 0 || l.DupKeys != 0 || l.DupEvents != 0 {
				t.Errorf("%s %s: %d lost, %d duplicate keys, %d duplicate events", name, l.Store, l.Lost, l.DupKeys, l.DupEvents)
			}
			// SQLite's server gives its flushes and commits, every accept
			// having waited for one; Redis's none.
			if f, c := l.Disk["flush"], l.Disk["commit"]; l.Store == "SQLite" && (f.Count == 0 || c.Count == 0 || f.Sum <= 0) ||
				l.Store != "SQLite" && len(l.Disk) != 0 {
				t.Errorf("%s %s: the store's write times %+v", name, l.Store, l.Disk)
			}
			// Every run costs the server CPU; Redis's only on Redis. The
			// disk is read where the machine has /proc/diskstats.
			if c := l.Cost; !c.ok || c.Server <= 0 || (c.Redis > 0) != (l.Store != "SQLite") {
				t.Errorf("%s %s: cost %+v", name, l.Store, c)
			}
			if diskWritten() >= 0 && l.Store == "SQLite" && l.Cost.DiskPerEvent <= 0 {
				t.Errorf("%s %s: %v bytes written to the disk per event, want some: SQLite flushes every accept", name, l.Store, l.Cost.DiskPerEvent)
			}
			// At 100 events a second the relay is idle when each comes:
			// both stores hand deliveries off.
			if l.HandedOff <= 0 || l.HandedOff > float64(l.Accepted) {
				t.Errorf("%s %s: %v of %d deliveries handed off", name, l.Store, l.HandedOff, l.Accepted)
			}
			if name == "isolation" && (l.Slow == 0 || l.Hangs == 0) {
				t.Errorf("isolation %s: %d events routed to the hanging action, %d attempts reached it", l.Store, l.Slow, l.Hangs)
			}
		}
	}
	if len(rep.Memory) < 11 {
		t.Errorf("peak memory of %d processes, want one per process started", len(rep.Memory))
	}
	for _, m := range rep.Memory {
		if m.PeakRSS <= 0 {
			t.Errorf("%s: peak RSS %d", m.Process, m.PeakRSS)
		}
	}

	doc := rep.Document("docs/performance.md")
	for _, want := range []string{"## Machine", "## Intake", "### Where the CPU goes", "## Relay drain", "## Latency", "## Isolation", "## What the constant-rate runs cost", "### Waits on the disk", "## Peak memory",
		"## Where intake started", "[intake.md](intake.md)", "## How to reproduce", "-out docs/performance.md"} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	t.Logf("report:\n%s", rep.Markdown())
}

func TestPayloadIsSignedJSONOfTheSize(t *testing.T) {
	p := payloads{secret: []byte("s3cret"), size: 1024}
	sent := time.Unix(1700000000, 123)
	body := p.body("x-42", sent, "slow")
	if len(body) != 1024 {
		t.Errorf("body is %d bytes, want 1024", len(body))
	}
	var ev struct {
		ID    string `json:"id"`
		Sent  int64  `json:"sent"`
		Route string `json:"route"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if ev.ID != "x-42" || ev.Sent != sent.UnixNano() || ev.Route != "slow" {
		t.Errorf("body carries %+v", ev)
	}
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write(body)
	if got, want := p.header(body).Get("X-Signature"), hex.EncodeToString(m.Sum(nil)); got != want {
		t.Errorf("X-Signature %s, want %s", got, want)
	}
	if again := p.body("x-42", sent, "slow"); !bytes.Equal(again, body) {
		t.Errorf("the same id gave another body:\n%s\n%s", body, again)
	}
	// The store compresses bodies: the benchmark's must compress as real
	// webhooks do (the store's memory benchmark's payments to 55-60 %),
	// not as padding would (under 10 %).
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	other := p.body("x-43", sent, "slow")
	if bytes.Equal(other[len(`{"id":"x-43"`):], body[len(`{"id":"x-42"`):]) {
		t.Error("two ids gave the same body but for the id")
	}
	for _, b := range [][]byte{body, other} {
		if r := float64(len(enc.EncodeAll(b, nil))) / float64(len(b)); r < 0.4 || r > 0.8 {
			t.Errorf("body compresses to %.0f %% of its size, want 40-80 %%:\n%s", 100*r, b)
		}
	}
	for _, size := range []int{200, 300, 700, 4096} {
		p := payloads{secret: []byte("s3cret"), size: size}
		b := p.body("x-44", sent, "fast")
		if len(b) != size || !json.Valid(b) {
			t.Errorf("size %d: %d bytes, JSON %v: %s", size, len(b), json.Valid(b), b)
		}
	}
}

func TestSlowEveryRoutesTheShare(t *testing.T) {
	slow := slowEvery(0.1)
	n := 0
	for i := int64(1); i <= 1000; i++ {
		if slow(i) {
			n++
		}
	}
	if n != 100 {
		t.Errorf("%d of 1000 routed, want 100", n)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100} {
		if got := percentile(d, q); got != want {
			t.Errorf("percentile %v = %v, want %v", q, got, want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
}

func TestSustainedGrowthIsTheBacklogsSlope(t *testing.T) {
	r := sustainedResult{Time: 60 * time.Second, Accepted: 60000, Samples: []backlogSample{
		{At: 10 * time.Second, Accepted: 10000, Delivered: 9000},  // 1,000 behind
		{At: 20 * time.Second, Accepted: 20000, Delivered: 18500}, // 1,500
		{At: 60 * time.Second, Accepted: 60000, Delivered: 56000}, // 4,000
	}}
	// (4,000 − 1,000) over the 50 s between the first reading and the last.
	if g := r.growth(); g != 60 {
		t.Errorf("growth %v/s, want 60/s", g)
	}
	if d := r.deliveredRate(); math.Abs(d-56000.0/60) > 1e-9 {
		t.Errorf("delivered %v/s, want %v/s", d, 56000.0/60)
	}
	// A relay that caught up with its backlog has a negative growth.
	r.Samples[2].Delivered = 60000
	if g := r.growth(); g != -20 {
		t.Errorf("growth %v/s, want -20/s", g)
	}
	if g := (sustainedResult{Samples: r.Samples[:1]}).growth(); g != 0 {
		t.Errorf("growth from one reading %v, want 0", g)
	}
}

func TestCommandNamesWhatDiffersFromTheDefaults(t *testing.T) {
	o := defaultOptions()
	if got := o.command("docs/performance.md"); got != "go run ./bench -out docs/performance.md" {
		t.Errorf("default command %q", got)
	}
	o.Duration = 2 * time.Second
	o.SustainFor = 10 * time.Second
	o.Stores = []string{"sqlite"}
	if got, want := o.command(""), "go run ./bench -duration 2s -sustain-for 10s -stores sqlite"; got != want {
		t.Errorf("command %q, want %q", got, want)
	}
}

// logWriter sends the run's progress to the test log and remembers it.
type logWriter struct {
	t  *testing.T
	mu sync.Mutex
	sb strings.Builder
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sb.Write(p)
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (w *logWriter) tmpDir() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, after, ok := strings.Cut(w.sb.String(), "building hookrelay and the baselines in ")
	if !ok {
		return ""
	}
	dir, _, _ := strings.Cut(after, "\n")
	return strings.TrimSpace(dir)
}

// String is everything the run has logged so far.
func (w *logWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sb.String()
}

func TestHistogramQuantiles(t *testing.T) {
	// 100 flushes: 90 at most 1 ms, 9 more at most 10 ms, one over 5 s.
	h := histogram{Count: 100, Sum: 6, Bounds: []float64{.001, .01, .1, 5, math.Inf(1)}, Counts: []uint64{90, 99, 99, 99, 100}}
	for _, c := range []struct {
		got, want string
	}{
		{h.quantile(.5), "≤ 1.00 ms"},
		{h.quantile(.9), "≤ 1.00 ms"},
		{h.quantile(.95), "≤ 10.0 ms"},
		{h.quantile(.99), "≤ 10.0 ms"},
		{h.slowest(), "> 5.00 s"},
		{histogram{}.quantile(.99), "–"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if n := h.over(.01); n != 1 {
		t.Errorf("%d over 10 ms, want 1", n)
	}
	if n := h.over(.001); n != 10 {
		t.Errorf("%d over 1 ms, want 10", n)
	}
}
