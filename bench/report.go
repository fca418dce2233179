package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// report is everything one run measured.
type report struct {
	Options   options
	Machine   machine
	Intake    []intakeResult // the baseline first
	Sustained []sustainedResult
	Drain     []drainResult
	Latency   []latencyResult
	Isolation []latencyResult
	Memory    []memResult
	Redis     []redisLoad
	problems  []string // lost or duplicated events, failed requests, unclean exits
	notes     []string // what the servers logged at WARN or ERROR, slow stops
}

type machine struct {
	Cores  int
	CPU    string
	Kernel string
	Go     string
	Redis  string
	Commit string
	Date   string
}

type intakeResult struct {
	Label  string
	Store  string // "" for the baseline, naiveStore for the naive Redis gateway
	Rounds []float64
	Median float64
	Failed int64 // requests not answered as wanted
	CPU    *requestCPU
	// Handed is the share of the accepted events whose delivery the relay
	// took in its accept (relay on); -1 where there is none to tell.
	Handed float64
	// Keeping is what the relay delivered while the measured rounds
	// accepted (relay on); nil where there is no relay.
	Keeping *keepingUp
}

// keepingUp compares, over an intake's measured rounds with the relay on,
// the events accepted with the deliveries that reached the receiver.
type keepingUp struct {
	Accepted  int64
	Delivered int64
	Time      time.Duration
}

// behind is how many more events were accepted than delivered.
func (k keepingUp) behind() int64 { return k.Accepted - k.Delivered }

// requestCPU is the CPU time that each process spent per request answered
// as wanted, over an intake's measured rounds.
type requestCPU struct {
	Sender time.Duration // the benchmark: sender, and receiver with the relay on
	Server time.Duration // hookrelay or the baseline
	Redis  time.Duration // the Redis servers that hold the store, summed
}

func (c requestCPU) total() time.Duration { return c.Sender + c.Server + c.Redis }

type drainResult struct {
	Store     string
	Backlog   int
	Delivered int
	Complete  bool
	Startup   time.Duration // from the process's start to the first delivery
	Time      time.Duration // from the first delivery to the last
	Lost      int
	DupKeys   int
	DupEvents int
}

func (d drainResult) rate() float64 { return float64(d.Delivered) / d.Time.Seconds() }

type latencyResult struct {
	Store     string
	Sent      int64
	Accepted  int64
	Rate      float64 // events sent per second
	Fast      int     // accepted events for the receiver
	Slow      int64   // accepted events for the destination that never answers
	Hangs     int64   // attempts that reached it
	Delivered int
	Lost      int
	DupKeys   int
	DupEvents int
	P50, P99  time.Duration
	Max       time.Duration
	AnswerP99 time.Duration
	Disk      diskWaits // what the store waited on the disk (SQLite); empty on Redis
	Cost      runCost   // what the run cost the server, Redis and the disk
	HandedOff float64   // deliveries the relay took in their accepts; -1 unknown
}

type memResult struct {
	Process string
	PeakRSS int64
}

func (r *report) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *report) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// Problems are what went wrong: lost or duplicated events, refused or
// unanswered requests, servers that did not stop cleanly.
func (r *report) Problems() []string { return r.problems }

func (r *report) baseline() float64 {
	for _, i := range r.Intake {
		if i.Store == "" {
			return i.Median
		}
	}
	return 0
}

// has reports whether an intake was measured on store.
func (r *report) has(store string) bool {
	for _, i := range r.Intake {
		if i.Store == store {
			return true
		}
	}
	return false
}

// label names the server of an intake as the tables do.
func (i intakeResult) label() string {
	if i.Store == "" || i.Store == naiveStore {
		return i.Label
	}
	return "hookrelay " + i.Label
}

func (r *report) ratio(x float64) string {
	base := r.baseline()
	if base == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", x/base)
}

// Markdown is the report: machine, one table per measurement, problems.
func (r *report) Markdown() string {
	var b strings.Builder
	o := r.Options
	m := r.Machine
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("## Machine\n\n")
	p("| | |\n|---|---|\n")
	p("| CPU | %s, %d cores (runtime.NumCPU) |\n", m.CPU, m.Cores)
	if m.Kernel != "" {
		p("| OS | %s |\n", m.Kernel)
	}
	p("| Go | %s |\n", m.Go)
	p("| Redis | %s |\n", m.Redis)
	if bin, ok := strings.CutPrefix(m.Commit, "binary "); ok {
		p("| hookrelay | the binary %s |\n", bin)
	} else if m.Commit != "" {
		p("| hookrelay | commit %s |\n", m.Commit)
	}
	p("| date | %s |\n\n", m.Date)
	p("Every process runs on this one machine and all traffic goes over 127.0.0.1: the\n")
	p("sender and the receiver (both in the benchmark process) share the cores with the\n")
	p("server under test. Absolute figures therefore depend on the machine and on what\n")
	p("else runs on it; the ratios to the baseline, measured in the same run, carry over better.\n\n")

	if len(r.Intake) > 0 {
		p("## Intake\n\n")
		p("Requests per second answered as expected (202 by hookrelay, 200 by the baseline) with\n")
		p("%d connections in a closed loop, each request a %s JSON webhook with a unique id\n", o.Conns, size(o.BodySize))
		p("(a payment provider's event, its ids, amounts and names different in each),\n")
		rounds := fmt.Sprintf("the median of %d rounds of %v", o.Rounds, o.Duration)
		if o.Rounds == 1 {
			rounds = fmt.Sprintf("one round of %v", o.Duration)
		}
		p("signed with HMAC-SHA256; %s after %v of warm-up. The\n", rounds, o.Warmup)
		p("baseline is a bare Gin server that reads the body and answers 200. hookrelay\n")
		p("verifies the signature, evaluates the rules and stores the event and its delivery\n")
		p("before it answers; with the relay on, the same process also delivers every event.\n")
		if r.has(naiveStore) {
			p("The naive Redis gateway (`bench/naive`, on the Redis that hookrelay uses) is about\n")
			p("the least a gateway that keeps webhooks in Redis can do: Gin, the HMAC check, the\n")
			p("body's id read with `encoding/json`, and one pipeline per request of `SET NX` for\n")
			p("the key and `XADD` of the body to a stream; no rules, deliveries or trace.\n")
		}
		p("\n")
		p("| server | req/s | vs baseline | rounds |\n|---|---:|---:|---|\n")
		for _, i := range r.Intake {
			label := i.label()
			rounds := make([]string, len(i.Rounds))
			for k, x := range i.Rounds {
				rounds[k] = num(x)
			}
			p("| %s | %s | %s | %s |\n", label, num(i.Median), r.ratio(i.Median), strings.Join(rounds, " · "))
		}
		p("\n")
		p("### Where the CPU goes\n\n")
		p("CPU time (user and system) per request answered, over the measured rounds: the\n")
		p("benchmark process (the sender, and the receiver with the relay on), the server\n")
		p("under test (`/proc/<pid>/stat`) and Redis (`INFO cpu`, summed over the masters).\n")
		p("With every core busy, the request rate is about the cores divided by the total.\n")
		p("*Handed off* is the share of the accepted events whose delivery the relay took in the\n")
		p("accept that stored it, warm-up included (`hookrelay_deliveries_handed_off_total`).\n\n")
		p("| server | sender | server | Redis | total | handed off |\n|---|---:|---:|---:|---:|---:|\n")
		for _, i := range r.Intake {
			if i.CPU == nil {
				continue
			}
			label := i.label()
			redis := "–"
			if i.Store == "redis" || i.Store == "cluster" || i.Store == naiveStore {
				redis = micros(i.CPU.Redis)
			}
			handed := "–"
			if i.Handed >= 0 {
				handed = fmt.Sprintf("%.1f %%", 100*i.Handed)
			}
			p("| %s | %s | %s | %s | %s | %s |\n", label, micros(i.CPU.Sender), micros(i.CPU.Server), redis, micros(i.CPU.total()), handed)
		}
		p("\n")
		r.keepingUpTable(p)
	}

	r.sustainedTable(p)

	if len(r.Drain) > 0 {
		p("## Relay drain\n\n")
		p("A backlog of %s events accepted with the relay off (`--workers 0`); then hookrelay is\n", num(float64(o.Backlog)))
		p("stopped and started again on the same store with the relay on, and timed from the\n")
		p("first delivery to the last at the receiver (action concurrency 64); *start* is the time\n")
		p("from starting the process to its first delivery.\n\n")
		p("| store | backlog | start | drain time | deliveries/s | vs baseline intake | lost | duplicate keys |\n")
		p("|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, d := range r.Drain {
			t := dur(d.Time)
			if !d.Complete {
				t = "> " + t + " (incomplete)"
			}
			p("| %s | %s | %s | %s | %s | %s | %d | %d |\n", d.Store, num(float64(d.Backlog)), dur(d.Startup), t, num(d.rate()), r.ratio(d.rate()), d.Lost, d.DupKeys)
		}
		p("\n")
	}

	if len(r.Redis) > 0 {
		p("## Redis load\n\n")
		p("CPU time (user and system) that Redis spent per event, from `INFO cpu` before and after\n")
		p("intake with the relay off (every round and the warm-up) and the drain, summed over\n")
		p("the servers that hold the store: the one server, or the cluster's three masters, whose\n")
		p("shares of it show how the load spreads (their replicas, not counted, spend more).\n")
		p("*Accepts, leases, finishes* is the time Redis spent in the calls that change hookrelay's\n")
		p("state, per event (`INFO commandstats`): scripts (`EVALSHA`, `EVAL`) and transactions\n")
		p("(`EXEC`, with the `WATCH` and `MGET` of the idempotency keys before it, which a batch\n")
		p("of new events on one Redis sends instead of a script). At intake with the relay off\n")
		p("these are the accepts; in the drain, the relay's leases and finishes. Redis times a\n")
		p("command by the clock, so with every core busy it includes the time Redis waited for\n")
		p("one, and it can exceed the CPU time. *Per call* is the events (in the drain,\n")
		p("deliveries) that one script call or transaction carried on average.\n\n")
		p("| phase | store | events | Redis CPU per event | accepts, leases, finishes per event | per call | share per server |\n|---|---|---:|---:|---:|---:|---|\n")
		for _, l := range r.Redis {
			p("| %s | %s | %s | %.1f µs | %.1f µs | %.1f | %s |\n", l.Phase, l.Store, num(float64(l.Events)), l.perEvent(),
				l.scriptPerEvent(), l.eventsPerCall(), l.shares())
		}
		p("\n")
	}

	if len(r.Latency) > 0 {
		p("## Latency from sender to receiver\n\n")
		p("[vegeta](https://github.com/tsenart/vegeta) sends %s events per second for %v at a\n", num(float64(o.Rate)), o.LatencyFor)
		p("constant rate (an open loop: a slow answer does not slow the sender) to hookrelay with\n")
		p("the relay on. Each body carries its send time; the receiver takes arrival − send for\n")
		p("the first delivery of each event. *Lost* are events answered 202 that never arrived;\n")
		p("*duplicate keys* are deliveries whose `Idempotency-Key` had arrived before.\n\n")
		latencyTable(&b, r.Latency, nil)
	}

	if len(r.Isolation) > 0 {
		p("## Isolation from a destination that never answers\n\n")
		p("The latency run again, with %.0f %% of the events routed to a second action whose\n", o.SlowShare*100)
		p("destination accepts the connection and never answers (concurrency 16, timeout 5 s,\n")
		p("retried, breaker kept closed). The latency is that of the other action's events;\n")
		p("the ratio compares its p99 with the latency run's on the same store.\n\n")
		latencyTable(&b, r.Isolation, r.Latency)
	}

	if runs := r.constantRuns(); len(runs) > 0 {
		p("## What the constant-rate runs cost\n\n")
		p("The CPU time the server and its Redis (summed over the masters) used from the first\n")
		p("event sent to the last delivery awaited, in cores (CPU seconds a second), and what the\n")
		p("machine's disks wrote over the same time, per event accepted (`/proc/diskstats`: the\n")
		p("WAL, the checkpoints into the database file and anything else written meanwhile).\n")
		p("*Deliveries handed off* are the share of the accepted events whose delivery the relay\n")
		p("took in the accept that stored it, instead of leasing it from the queue\n")
		p("(`hookrelay_deliveries_handed_off_total`, read before the server stopped).\n\n")
		costTable(&b, runs)
	}

	if runs := r.diskRuns(); len(runs) > 0 {
		p("### Waits on the disk\n\n")
		p("What the embedded store waited on the disk in the runs above, from the server's own\n")
		p("`hookrelay_store_write_duration_seconds`, read before it stopped: the flushes of the\n")
		p("write-ahead log, which every write waits for before it is answered, and the writer's\n")
		p("commits (its pages written to the log, and a checkpoint when one is due). Durations\n")
		p("are the bounds of the histogram's buckets. Where the 202 answer p99 is far above the\n")
		p("flushes' p99 and few flushes are slow, the time went elsewhere; where many flushes\n")
		p("are slow, the disk held the answers back.\n\n")
		diskTable(&b, runs)
	}

	if len(r.Memory) > 0 {
		p("## Peak memory\n\n")
		p("Peak resident memory (`VmHWM` in `/proc/<pid>/status`, read before the process is\n")
		p("stopped) of each process the run started.\n\n")
		p("| process | peak RSS |\n|---|---:|\n")
		for _, mr := range r.Memory {
			p("| %s | %s |\n", mr.Process, size(int(mr.PeakRSS)))
		}
		p("\n")
	}

	if len(r.problems) > 0 {
		p("## Problems\n\n")
		for _, s := range r.problems {
			p("- %s\n", s)
		}
		p("\n")
	}
	if len(r.notes) > 0 {
		p("## Notes\n\n")
		for _, s := range r.notes {
			p("- %s\n", s)
		}
		p("\n")
	}
	return b.String()
}

// keepingUpTable says whether the relay kept up with the intake rounds it
// ran beside.
func (r *report) keepingUpTable(p func(format string, args ...any)) {
	var rows []intakeResult
	for _, i := range r.Intake {
		if i.Keeping != nil && i.Keeping.Time > 0 {
			rows = append(rows, i)
		}
	}
	if len(rows) == 0 {
		return
	}
	p("### Does the relay keep up?\n\n")
	p("With the relay on, the events accepted over the measured rounds against the\n")
	p("deliveries that reached the receiver meanwhile; *behind* is how many more were\n")
	p("accepted than delivered, the backlog the rounds left (a negative count: the relay\n")
	p("caught up with a backlog from the warm-up).\n\n")
	p("| server | accepted/s | delivered/s | behind | behind/s |\n|---|---:|---:|---:|---:|\n")
	for _, i := range rows {
		k := i.Keeping
		secs := k.Time.Seconds()
		p("| %s | %s | %s | %s | %s |\n", i.label(), num(float64(k.Accepted)/secs), num(float64(k.Delivered)/secs),
			num(float64(k.behind())), num(float64(k.behind())/secs))
	}
	p("\n")
}

// sustainedTable says whether the relay keeps level with an intake that
// saturates the machine for the whole sustained run.
func (r *report) sustainedTable(p func(format string, args ...any)) {
	if len(r.Sustained) == 0 {
		return
	}
	o := r.Options
	p("## Sustained intake with the relay on\n\n")
	p("The intake's closed loop (%d connections, the same webhooks) sent to hookrelay with the\n", o.Conns)
	p("relay on for %s without warm-up, every event delivered to the receiver. The events\n", secs(o.SustainFor))
	p("accepted and the deliveries received are read every %s; *behind* is the backlog at\n", secs(o.SustainFor/sustainedSamples))
	p("each reading, accepted less delivered. *Growth* is how fast the backlog grew from the\n")
	p("first reading to the last, per second and as a share of the accepts: about zero when\n")
	p("the relay keeps level. Once the loop ends every accepted event is awaited at the\n")
	p("receiver; *caught up* is how long after the end the last one arrived.\n\n")
	marks := make([]string, sustainedSamples)
	for i := range marks {
		marks[i] = secs(time.Duration(i+1) * o.SustainFor / sustainedSamples)
	}
	p("| store | accepted/s | vs baseline | delivered/s | behind at %s | growth | caught up | lost | duplicate keys |\n", strings.Join(marks, " · "))
	p("|---|---:|---:|---:|---|---:|---:|---:|---:|\n")
	for _, s := range r.Sustained {
		behind := make([]string, len(s.Samples))
		for i, x := range s.Samples {
			behind[i] = num(float64(x.backlog()))
		}
		growth := fmt.Sprintf("%s/s", num(s.growth()))
		if acc := s.rate(); acc > 0 {
			growth += fmt.Sprintf(" (%.0f %%)", 100*s.growth()/acc)
		}
		caught := dur(s.CatchUp)
		if !s.Complete {
			caught = "not in " + dur(o.Timeout)
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %d | %d |\n", s.Store, num(s.rate()), r.ratio(s.rate()), num(s.deliveredRate()),
			strings.Join(behind, " · "), growth, caught, s.Lost, s.DupKeys)
	}
	p("\n")
}

func latencyTable(b *strings.Builder, rows, before []latencyResult) {
	iso := before != nil
	if iso {
		fmt.Fprint(b, "| store | sent/s | accepted | to the hanging action | p50 | p99 | p99 vs latency run | max | lost | duplicate keys | attempts that hung |\n")
		fmt.Fprint(b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	} else {
		fmt.Fprint(b, "| store | sent/s | accepted | p50 | p99 | max | 202 answer p99 | lost | duplicate keys |\n")
		fmt.Fprint(b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	}
	for _, l := range rows {
		if iso {
			ratio := "–"
			for _, c := range before {
				if c.Store == l.Store && c.P99 > 0 {
					ratio = fmt.Sprintf("%.2f", float64(l.P99)/float64(c.P99))
				}
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %s |\n", l.Store, num(l.Rate), num(float64(l.Accepted)),
				num(float64(l.Slow)), dur(l.P50), dur(l.P99), ratio, dur(l.Max), l.Lost, l.DupKeys, num(float64(l.Hangs)))
		} else {
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %d | %d |\n", l.Store, num(l.Rate), num(float64(l.Accepted)),
				dur(l.P50), dur(l.P99), dur(l.Max), dur(l.AnswerP99), l.Lost, l.DupKeys)
		}
	}
	fmt.Fprint(b, "\n")
}

// Document is the report as a page of its own (docs/performance.md), with
// the command that reproduces it.
func (r *report) Document(out string) string {
	var b strings.Builder
	b.WriteString("# Performance\n\n")
	b.WriteString("What hookrelay's intake, relay and stores cost, measured against a bare Gin server\n")
	b.WriteString("in the same run on the same machine. This page is the output of the benchmark in\n")
	b.WriteString("[`bench/`](../bench); rerun it rather than edit it.\n\n")
	b.WriteString(r.Markdown())
	b.WriteString("## Where intake started\n\n")
	b.WriteString("Before the accept path was reworked, the same benchmark on a 2-core machine of the same\n")
	b.WriteString("kind answered, against a bare Gin server at 38,500 requests/s: SQLite 0.11× with the\n")
	b.WriteString("relay off and 0.09× with it on, Redis 0.18× and 0.14×. Redis then spent about 110 µs\n")
	b.WriteString("per accepted event in the accept script and held about 3.8 KB per event; SQLite spent a\n")
	b.WriteString("third of its CPU writing each accept's statement sub-journal. What the profiles showed,\n")
	b.WriteString("what changed because of them and the measurements before and after each change are\n")
	b.WriteString("in [intake.md](intake.md).\n\n")
	b.WriteString("## How to reproduce\n\n")
	b.WriteString("From the root of a clone, with Go and `redis-server` on the PATH (nothing else may\n")
	b.WriteString("be running on the machine if the figures are to be compared):\n\n")
	fmt.Fprintf(&b, "```sh\n%s\n```\n\n", r.Options.command(out))
	b.WriteString("It builds hookrelay and the two yardsticks, starts the baseline, the naive Redis gateway,\n")
	b.WriteString("hookrelay on SQLite and on a `redis-server` of its own (`--save \"\" --appendonly no`) on\n")
	b.WriteString("free ports of 127.0.0.1, prints this report\n")
	b.WriteString("and writes it to the file named by `-out`. `go run ./bench -h` lists the settings;\n")
	b.WriteString("a quick look takes a minute:\n\n")
	b.WriteString("```sh\ngo run ./bench -duration 2s -rounds 1 -backlog 2000 -latency-for 5s -sustain-for 10s\n```\n")
	return b.String()
}

// command is the go run line with every setting that differs from the
// default.
func (o options) command(out string) string {
	d := defaultOptions()
	args := []string{"go run ./bench"}
	add := func(differs bool, flag string, v any) {
		if differs {
			args = append(args, fmt.Sprintf("-%s %v", flag, v))
		}
	}
	add(o.Duration != d.Duration, "duration", o.Duration)
	add(o.Rounds != d.Rounds, "rounds", o.Rounds)
	add(o.Warmup != d.Warmup, "warmup", o.Warmup)
	add(o.Conns != d.Conns, "conns", o.Conns)
	add(o.BodySize != d.BodySize, "body", o.BodySize)
	add(o.Backlog != d.Backlog, "backlog", o.Backlog)
	add(o.Rate != d.Rate, "rate", o.Rate)
	add(o.LatencyFor != d.LatencyFor, "latency-for", o.LatencyFor)
	add(o.SustainFor != d.SustainFor, "sustain-for", o.SustainFor)
	add(o.SlowShare != d.SlowShare, "slow-share", o.SlowShare)
	add(o.Settle != d.Settle, "settle", o.Settle)
	add(o.Timeout != d.Timeout, "timeout", o.Timeout)
	add(strings.Join(o.Stores, ",") != strings.Join(d.Stores, ","), "stores", strings.Join(o.Stores, ","))
	add(strings.Join(o.Phases, ",") != strings.Join(d.Phases, ","), "phases", strings.Join(o.Phases, ","))
	add(o.Partitions != d.Partitions, "cluster-partitions", o.Partitions)
	if out != "" {
		args = append(args, "-out "+out)
	}
	return strings.Join(args, " ")
}

// num writes a count or rate with thousands separators.
func num(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "–"
	}
	s := fmt.Sprintf("%.0f", x)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// secs writes a time of a run in seconds, to a tenth when it is not whole.
func secs(d time.Duration) string {
	d = d.Round(100 * time.Millisecond)
	if d%time.Second == 0 {
		return fmt.Sprintf("%.0f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func size(n int) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// micros writes a CPU time per request in microseconds.
func micros(d time.Duration) string {
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}
