// Command bench measures hookrelay against a bare Gin server on the same
// machine in the same run, and prints a Markdown report:
//
//	go run ./bench                          # the full run (several minutes)
//	go run ./bench -out docs/performance.md # the same, also written to that file
//	go run ./bench -duration 2s -rounds 1 -backlog 2000 -latency-for 5s   # a quick look
//
// It builds hookrelay, starts it as a child process on SQLite and on a
// redis-server of its own, sends signed 1 KiB webhooks to it and to the
// baseline over 127.0.0.1, and receives the relayed deliveries itself. Every
// child process and temporary file is removed when it ends, also on Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	o := defaultOptions()
	flag.DurationVar(&o.Duration, "duration", o.Duration, "length of one intake round")
	flag.IntVar(&o.Rounds, "rounds", o.Rounds, "intake rounds per server; the median is reported")
	flag.DurationVar(&o.Warmup, "warmup", o.Warmup, "load sent to each server before its intake rounds, not measured")
	flag.IntVar(&o.Conns, "conns", o.Conns, "connections of the closed-loop intake sender")
	flag.IntVar(&o.BodySize, "body", o.BodySize, "bytes in each webhook body")
	flag.IntVar(&o.Backlog, "backlog", o.Backlog, "events accepted with the relay off before the drain is timed")
	flag.IntVar(&o.Rate, "rate", o.Rate, "events per second of the constant-rate latency and isolation runs")
	flag.DurationVar(&o.LatencyFor, "latency-for", o.LatencyFor, "length of the latency run and of the isolation run")
	flag.DurationVar(&o.SustainFor, "sustain-for", o.SustainFor, "length of the sustained run: the intake's closed loop with the relay on, the backlog read as it goes")
	flag.Float64Var(&o.SlowShare, "slow-share", o.SlowShare, "share of events the isolation run routes to the action that never answers")
	flag.DurationVar(&o.Settle, "settle", o.Settle, "wait after the last expected delivery, so that late duplicates are counted")
	flag.DurationVar(&o.Timeout, "timeout", o.Timeout, "the longest a backlog may take to be accepted or to be delivered")
	flag.IntVar(&o.Partitions, "cluster-partitions", o.Partitions, "partitions of the stores on the Redis Cluster (0: the store's default)")
	flag.StringVar(&o.Hookrelay, "hookrelay", "", "a hookrelay binary to measure instead of building one from this tree (e.g. one built from another commit, to compare the two)")
	stores := flag.String("stores", strings.Join(o.Stores, ","), "stores to run hookrelay on: sqlite, redis and cluster (a local Redis Cluster it starts, with scripts/redis-cluster.sh)")
	phases := flag.String("phases", strings.Join(o.Phases, ","), "measurements to run: intake (with the baseline the ratios need), sustained, drain, latency, isolation")
	out := flag.String("out", "", "also write the report to this file (e.g. docs/performance.md)")
	flag.Parse()
	o.Stores = strings.Split(*stores, ",")
	o.Phases = strings.Split(*phases, ",")
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	rep, err := run(ctx, o, os.Stderr)
	// A second Ctrl-C only now ends the process at once: run has cleaned up.
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	md := rep.Markdown()
	fmt.Print(md)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(rep.Document(*out)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "bench: report written to %s\n", *out)
	}
	if n := len(rep.Problems()); n > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d problem(s) found, listed at the end of the report\n", n)
		os.Exit(3)
	}
}

// options are the knobs of one run; defaultOptions are those of the
// published figures.
type options struct {
	Duration   time.Duration
	Rounds     int
	Warmup     time.Duration
	Conns      int
	BodySize   int
	Backlog    int
	Rate       int
	LatencyFor time.Duration
	SustainFor time.Duration
	SlowShare  float64
	Settle     time.Duration
	Timeout    time.Duration
	Stores     []string
	Phases     []string
	// Partitions is the partitions= of the stores made on the Redis
	// Cluster; 0 leaves the store's default.
	Partitions int
	// Hookrelay is a hookrelay binary to measure instead of one built
	// from the tree, e.g. one built from another commit.
	Hookrelay string
}

func defaultOptions() options {
	return options{
		Duration:   8 * time.Second,
		Rounds:     3,
		Warmup:     time.Second,
		Conns:      64,
		BodySize:   1024,
		Backlog:    20000,
		Rate:       1000,
		LatencyFor: 60 * time.Second,
		SustainFor: 60 * time.Second,
		SlowShare:  0.1,
		Settle:     time.Second,
		Timeout:    3 * time.Minute,
		Stores:     []string{"sqlite", "redis"},
		Phases:     []string{"intake", "sustained", "drain", "latency", "isolation"},
	}
}

func (o options) check() error {
	switch {
	case o.Duration <= 0 || o.LatencyFor <= 0 || o.SustainFor <= 0 || o.Timeout <= 0:
		return fmt.Errorf("-duration, -latency-for, -sustain-for and -timeout must be positive")
	case o.Warmup < 0 || o.Settle < 0:
		return fmt.Errorf("-warmup and -settle must not be negative")
	case o.Rounds < 1 || o.Conns < 1 || o.Backlog < 1 || o.Rate < 1:
		return fmt.Errorf("-rounds, -conns, -backlog and -rate must be at least 1")
	case o.BodySize < 256:
		return fmt.Errorf("-body must be at least 256 bytes")
	case o.SlowShare <= 0 || o.SlowShare >= 1:
		return fmt.Errorf("-slow-share must be between 0 and 1")
	}
	if len(o.Stores) == 0 {
		return fmt.Errorf("-stores names no store")
	}
	for _, s := range o.Stores {
		if _, ok := storeNames[s]; !ok {
			return fmt.Errorf("-stores: unknown store %q (use sqlite, redis, cluster)", s)
		}
	}
	if len(o.Phases) == 0 {
		return fmt.Errorf("-phases names no measurement")
	}
	for _, p := range o.Phases {
		if !slices.Contains(defaultOptions().Phases, p) {
			return fmt.Errorf("-phases: unknown measurement %q (use intake, sustained, drain, latency, isolation)", p)
		}
	}
	return nil
}
