package main

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed testdata/bench.yaml testdata/rules.yaml
var configFiles embed.FS

// storeNames are the stores hookrelay is measured on, as the report names them.
var storeNames = map[string]string{"sqlite": "SQLite", "redis": "Redis", "cluster": "Redis Cluster"}

// The naive Redis gateway (bench/naive) is measured beside the baseline
// when hookrelay is measured on Redis; its intake result's Store is
// naiveStore.
const (
	naiveStore = "naive"
	naiveLabel = "naive Redis gateway"
)

const (
	hookPath = "/hooks/catch/bench"
	// grace is hookrelay's --grace: a stop waits this long for attempts in flight.
	grace = 5 * time.Second
	// relayOn runs hookrelay with its default number of relay workers.
	relayOn = -1
)

// bench is one run: its temporary folder, binaries, child processes,
// receiver and report.
type bench struct {
	o        options
	progress io.Writer
	tmp      string
	root     string // the module's folder
	bin      struct{ hookrelay, baseline, naive string }
	config   string
	env      []string
	pay      payloads
	kids     children
	recv     *receiver
	redis    *redis.Client
	redisP   *proc
	cluster  string               // the redis+cluster:// URL of the cluster it started
	clusterC *redis.ClusterClient // to empty it between phases
	nlog     int
	rep      *report
}

// run performs every phase and returns the report. The report's Problems
// list lost or duplicated events; an error means the run could not finish.
func run(ctx context.Context, o options, progress io.Writer) (*report, error) {
	b := &bench{o: o, progress: progress, rep: &report{Options: o}}
	defer b.close()
	if err := b.setup(ctx); err != nil {
		return nil, err
	}
	phases := map[string]func(context.Context) error{"intake": b.intake, "sustained": b.sustained, "drain": b.drain, "latency": b.latency, "isolation": b.isolation}
	for _, name := range defaultOptions().Phases {
		if !slices.Contains(o.Phases, name) {
			continue
		}
		if err := phases[name](ctx); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("interrupted: %w", context.Cause(ctx))
			}
			return nil, err
		}
	}
	return b.rep, nil
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (b *bench) setup(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD", "GOVERSION").Output()
	if err != nil {
		return fmt.Errorf("go env: %w", err)
	}
	f := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(f) != 2 || !strings.HasSuffix(f[0], "go.mod") {
		return fmt.Errorf("run the benchmark inside the hookrelay module (go env GOMOD: %q)", f[0])
	}
	b.root = filepath.Dir(f[0])
	b.rep.Machine = machineInfo(ctx, b.root, f[1])

	if b.tmp, err = os.MkdirTemp("", "hookrelay-bench-"); err != nil {
		return err
	}
	for _, d := range []string{"bin", "config", "logs", "data"} {
		if err := os.Mkdir(filepath.Join(b.tmp, d), 0o755); err != nil {
			return err
		}
	}
	b.logf("building hookrelay and the baselines in %s", b.tmp)
	pkgs := []string{"./cmd/hookrelay", "./bench/baseline", "./bench/naive"}
	b.bin.hookrelay = filepath.Join(b.tmp, "bin", "hookrelay")
	if b.o.Hookrelay != "" {
		pkgs = pkgs[1:]
		if b.bin.hookrelay, err = filepath.Abs(b.o.Hookrelay); err != nil {
			return err
		}
		b.rep.Machine.Commit = "binary " + b.o.Hookrelay
	}
	build := exec.CommandContext(ctx, "go", append([]string{"build", "-o", filepath.Join(b.tmp, "bin") + string(filepath.Separator)}, pkgs...)...)
	build.Dir = b.root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	b.bin.baseline = filepath.Join(b.tmp, "bin", "baseline")
	b.bin.naive = filepath.Join(b.tmp, "bin", "naive")

	for _, name := range []string{"bench.yaml", "rules.yaml"} {
		data, err := configFiles.ReadFile("testdata/" + name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(b.tmp, "config", name), data, 0o644); err != nil {
			return err
		}
	}
	b.config = filepath.Join(b.tmp, "config", "bench.yaml")

	if b.recv, err = startReceiver(); err != nil {
		return err
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	secret := hex.EncodeToString(key[:])
	b.pay = payloads{secret: []byte(secret), size: b.o.BodySize}
	// hookrelay reads no HOOKRELAY_* setting but the flags it is given.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOOKRELAY_") {
			b.env = append(b.env, kv)
		}
	}
	b.env = append(b.env, "BENCH_SECRET="+secret, "BENCH_RECEIVER="+b.recv.url)

	if slices.Contains(b.o.Stores, "redis") {
		if err := b.startRedis(ctx); err != nil {
			return err
		}
	}
	if slices.Contains(b.o.Stores, "cluster") {
		if err := b.startCluster(ctx); err != nil {
			return err
		}
	}
	return nil
}

// clusterScript starts and stops the local Redis Cluster.
func (b *bench) clusterScript() string { return filepath.Join(b.root, "scripts", "redis-cluster.sh") }

// startCluster starts a Redis Cluster of three masters and three replicas
// on loopback (scripts/redis-cluster.sh), stopped by close.
func (b *bench) startCluster(ctx context.Context) error {
	start := exec.CommandContext(ctx, "bash", b.clusterScript(), "start")
	start.Env = append(slices.Clone(b.env), "REDIS_CLUSTER_PORT=")
	var stderr strings.Builder
	start.Stderr = &stderr
	out, err := start.Output()
	if err != nil {
		return fmt.Errorf("the Redis Cluster runs need redis-server and redis-cli on PATH (or run without cluster in -stores): %w\n%s", err, stderr.String())
	}
	b.cluster = strings.TrimSpace(string(out))
	opt, err := redis.ParseClusterURL(strings.Replace(b.cluster, "redis+cluster://", "redis://", 1))
	if err != nil {
		return fmt.Errorf("the cluster script printed %q: %w", b.cluster, err)
	}
	b.clusterC = redis.NewClusterClient(opt)
	if b.rep.Machine.Redis == "" || b.rep.Machine.Redis == "not used" {
		if out, err := exec.CommandContext(ctx, "redis-server", "--version").Output(); err == nil {
			b.rep.Machine.Redis = redisVersion(string(out))
		}
	}
	b.logf("Redis Cluster (3 masters, 3 replicas) at %s", b.cluster)
	return nil
}

func (b *bench) startRedis(ctx context.Context) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("the Redis runs need redis-server on PATH (or run with -stores sqlite): %w", err)
	}
	if out, err := exec.CommandContext(ctx, bin, "--version").Output(); err == nil {
		b.rep.Machine.Redis = redisVersion(string(out))
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	_, port, _ := strings.Cut(addr, ":")
	b.redisP, err = b.kids.start("redis-server", b.logPath("redis-server"), b.env, bin,
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", filepath.Join(b.tmp, "data"))
	if err != nil {
		return err
	}
	b.redis = redis.NewClient(&redis.Options{Addr: addr})
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := b.redis.Ping(pctx).Err()
		cancel()
		if err == nil {
			break
		}
		if b.redisP.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("redis-server on %s did not answer: %v\n%s", addr, err, b.redisP.tail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.logf("redis-server %s listening on %s", b.rep.Machine.Redis, addr)
	return nil
}

// close stops every child and removes the temporary folder.
func (b *bench) close() {
	if b.recv != nil {
		b.recv.releaseHanging()
	}
	b.kids.stopAll()
	if b.redis != nil {
		b.redis.Close()
	}
	if b.clusterC != nil {
		b.clusterC.Close()
		port, _, _ := strings.Cut(strings.TrimPrefix(b.cluster, "redis+cluster://127.0.0.1:"), "?")
		if out, err := exec.Command("bash", b.clusterScript(), "stop", port).CombinedOutput(); err != nil {
			fmt.Fprintln(b.progress, "bench: stopping the Redis Cluster:", err, string(out))
		}
	}
	if b.recv != nil {
		b.recv.close()
	}
	if b.tmp != "" {
		if err := os.RemoveAll(b.tmp); err != nil {
			fmt.Fprintln(b.progress, "bench: removing", b.tmp+":", err)
		}
	}
}

func (b *bench) logPath(name string) string {
	b.nlog++
	return filepath.Join(b.tmp, "logs", fmt.Sprintf("%02d-%s.log", b.nlog, name))
}

// storeURL names a fresh store for one phase of one backend.
func (b *bench) storeURL(store, tag string) string {
	switch store {
	case "redis":
		return fmt.Sprintf("redis://%s/0?prefix=bench-%s", b.redis.Options().Addr, tag)
	case "cluster":
		if b.o.Partitions > 0 {
			return fmt.Sprintf("%s&prefix=bench-%s&partitions=%d", b.cluster, tag, b.o.Partitions)
		}
		return b.cluster + "&prefix=bench-" + tag
	}
	return "sqlite://" + filepath.Join(b.tmp, "data", tag+".db")
}

// dropStore frees what a phase stored, so that the next starts afresh.
func (b *bench) dropStore(ctx context.Context, store, tag string) {
	switch store {
	case "redis":
		_ = b.redis.FlushDB(ctx).Err()
		return
	case "cluster":
		_ = b.clusterC.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.FlushDB(ctx).Err()
		})
		return
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(filepath.Join(b.tmp, "data", tag+".db"+suffix))
	}
}

// server is a running hookrelay or baseline.
type server struct {
	label string
	p     *proc
	url   string
}

// startHookrelay starts hookrelay on storeURL with workers relay workers
// (0: intake only; relayOn: the default) and waits until it answers /readyz.
func (b *bench) startHookrelay(ctx context.Context, label, storeURL string, workers int) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--config", b.config, "--listen", addr, "--store", storeURL,
		"--grace", grace.String(), "--log-level", "warn"}
	if workers >= 0 {
		args = append(args, "--workers", strconv.Itoa(workers))
	}
	p, err := b.kids.start(label, b.logPath(slug(label)), b.env, b.bin.hookrelay, args...)
	if err != nil {
		return nil, err
	}
	s := &server{label: label, p: p, url: "http://" + addr}
	if err := waitHTTP(ctx, p, s.url+"/readyz", 30*time.Second); err != nil {
		_ = p.stop(grace)
		return nil, err
	}
	return s, nil
}

func (b *bench) startBaseline(ctx context.Context) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	const label = "baseline (bare Gin)"
	p, err := b.kids.start(label, b.logPath("baseline"), b.env, b.bin.baseline, "--listen", addr)
	return b.started(ctx, label, addr, p, err)
}

// startNaive starts the naive Redis gateway (bench/naive) on the
// benchmark's redis-server, its keys under prefix.
func (b *bench) startNaive(ctx context.Context, prefix string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := b.kids.start(naiveLabel, b.logPath("naive"), b.env, b.bin.naive,
		"--listen", addr, "--redis", b.redis.Options().Addr, "--prefix", prefix)
	return b.started(ctx, naiveLabel, addr, p, err)
}

// started waits until the yardstick p, started on addr, answers /healthz.
func (b *bench) started(ctx context.Context, label, addr string, p *proc, err error) (*server, error) {
	if err != nil {
		return nil, err
	}
	s := &server{label: label, p: p, url: "http://" + addr}
	if err := waitHTTP(ctx, p, s.url+"/healthz", 30*time.Second); err != nil {
		_ = p.stop(grace)
		return nil, err
	}
	return s, nil
}

// stop records the server's peak memory, stops it and notes anything its
// log or exit says went wrong.
func (b *bench) stop(s *server) {
	rss, err := s.p.peakRSS()
	if err != nil {
		b.rep.problem("%s: peak RSS unreadable: %v", s.label, err)
	}
	b.rep.Memory = append(b.rep.Memory, memResult{Process: s.label, PeakRSS: rss})
	start := time.Now()
	if err := s.p.stop(grace + 10*time.Second); err != nil {
		b.rep.problem("%s: %v\n%s", s.label, err, indent(s.p.tail(10)))
	}
	if d := time.Since(start); d > time.Second {
		b.logf("          %s took %v to stop", s.label, d.Round(time.Millisecond))
		if d > 2*time.Second {
			b.rep.note("%s took %v to stop after SIGTERM (--grace %v)", s.label, d.Round(time.Millisecond), grace)
		}
	}
	// The isolation run's hanging action fails by design, the stores are
	// not sealed (no HOOKRELAY_ENCRYPTION_KEY) and the benchmark's own
	// redis-server keeps nothing on disk, which serve says.
	count, first := s.p.logLines("action=slow", "stored unencrypted", "Redis neither persists its data")
	for _, lv := range []string{"ERROR", "WARN"} {
		if count[lv] > 0 {
			b.rep.note("%s logged %d line(s) at %s, the first: `%s`", s.label, count[lv], lv, clip(first[lv], 300))
		}
	}
}

// intake measures requests per second at o.Conns connections, closed loop,
// on the baseline and on hookrelay with the relay off and on.
func (b *bench) intake(ctx context.Context) error {
	type target struct {
		label, store string
		workers      int
	}
	targets := []target{{label: "baseline (bare Gin)"}}
	if slices.Contains(b.o.Stores, "redis") {
		targets = append(targets, target{naiveLabel, naiveStore, 0})
	}
	for _, st := range b.o.Stores {
		targets = append(targets,
			target{storeNames[st] + ", relay off", st, 0},
			target{storeNames[st] + ", relay on", st, relayOn})
	}
	for _, t := range targets {
		var s *server
		var err error
		tag := "intake-" + slug(t.label)
		switch t.store {
		case "":
			s, err = b.startBaseline(ctx)
		case naiveStore:
			s, err = b.startNaive(ctx, "bench-"+tag)
		default:
			s, err = b.startHookrelay(ctx, "hookrelay "+t.label+" (intake)", b.storeURL(t.store, tag), t.workers)
		}
		if err != nil {
			return err
		}
		rec := b.recv.reset()
		want := 202
		if t.store == "" {
			want = 200
		}
		c := newClient(b.o.Conns)
		r := intakeResult{Label: t.label, Store: t.store}
		// The naive gateway keeps its keys and stream in the Redis of the
		// Redis store, whose CPU time is read for it.
		redisStore := t.store
		if t.store == naiveStore {
			redisStore = "redis"
		}
		var cpu *redisReading
		if t.workers == 0 && t.store != naiveStore {
			cpu = b.redisUsage(ctx, t.store)
		}
		var accepted int64
		if b.o.Warmup > 0 {
			lr := closedLoop(ctx, c, s.url+hookPath, b.o.Conns, time.Now().Add(b.o.Warmup), 0, b.pay, tag+"-warmup", want, nil)
			accepted += lr.OK
		}
		// The CPU time each process spends per request answered, over the
		// measured rounds only.
		cpu0 := b.readCPU(ctx, s, redisStore)
		var measured int64
		delivered0, start := b.recv.deliveries(rec), time.Now()
		for i := range b.o.Rounds {
			lr := closedLoop(ctx, c, s.url+hookPath, b.o.Conns, time.Now().Add(b.o.Duration), 0, b.pay, fmt.Sprintf("%s-%d", tag, i), want, nil)
			if ctx.Err() != nil {
				b.stop(s)
				return ctx.Err()
			}
			r.Rounds = append(r.Rounds, lr.rate())
			accepted += lr.OK
			measured += lr.OK
			r.Failed += lr.Errors
			for _, n := range lr.Codes {
				r.Failed += n
			}
			if lr.Errors > 0 || len(lr.Codes) > 0 {
				b.rep.problem("intake %s round %d: %d answered %d, %d other statuses (%s), %d without an answer (first: %s)",
					t.label, i+1, lr.OK, want, len(lr.Codes), codesString(lr.Codes), lr.Errors, lr.FirstErr)
			}
			b.logf("intake    %-28s round %d/%d: %8.0f req/s", t.label, i+1, b.o.Rounds, lr.rate())
		}
		if t.workers == relayOn {
			r.Keeping = &keepingUp{Accepted: measured, Delivered: b.recv.deliveries(rec) - delivered0, Time: time.Since(start)}
		}
		c.CloseIdleConnections()
		r.Median = median(r.Rounds)
		r.CPU = b.perRequest(s, cpu0, b.readCPU(ctx, s, redisStore), measured)
		b.noteRedisLoad(ctx, "intake", t.store, cpu, accepted)
		r.Handed = -1
		if t.workers == relayOn {
			if fams, err := scrapeMetrics(ctx, s.url); err != nil {
				b.rep.problem("intake %s: the server's metrics: %v", t.label, err)
			} else if n := counterSum(fams, handedOffMetric); n >= 0 && accepted > 0 {
				r.Handed = n / float64(accepted)
			}
		}
		b.stop(s)
		if redisStore != "" {
			b.dropStore(ctx, redisStore, tag)
		}
		b.rep.Intake = append(b.rep.Intake, r)
	}
	return nil
}

// cpuReading is the CPU time the processes of an intake have used so far:
// the server under test (err when unreadable), the benchmark itself and
// the store's Redis servers (nil for SQLite), in seconds per address.
type cpuReading struct {
	server time.Duration
	err    error
	self   time.Duration
	redis  *redisReading
}

func (b *bench) readCPU(ctx context.Context, s *server, store string) cpuReading {
	server, err := s.p.cpuTime()
	return cpuReading{server: server, err: err, self: selfCPU(), redis: b.redisUsage(ctx, store)}
}

// perRequest is the CPU time each process spent per request from the
// reading before to the one after, over measured requests; nil when it
// cannot be told.
func (b *bench) perRequest(s *server, before, after cpuReading, measured int64) *requestCPU {
	if err := errors.Join(before.err, after.err); err != nil {
		b.rep.note("%s: CPU time unreadable: %v", s.label, err)
		return nil
	}
	if measured == 0 {
		return nil
	}
	per := func(d time.Duration) time.Duration { return d / time.Duration(measured) }
	c := &requestCPU{Sender: per(after.self - before.self), Server: per(after.server - before.server)}
	if sum, ok := after.redisSince(before); ok {
		c.Redis = per(time.Duration(sum * float64(time.Second)))
	}
	return c
}

// redisSince is the CPU time, in seconds, the store's Redis servers used
// from the reading before to this one, summed over them; ok false for a
// store without Redis, or when either reading has none.
func (r cpuReading) redisSince(before cpuReading) (sum float64, ok bool) {
	if before.redis == nil || r.redis == nil {
		return 0, false
	}
	for addr, x := range r.redis.CPU {
		sum += x - before.redis.CPU[addr]
	}
	return sum, true
}

// runCost is what a constant-rate run cost: the server's and its Redis's
// CPU, in cores (CPU time over the run's length), and the bytes the disks
// wrote per event accepted (-1 when unreadable).
type runCost struct {
	Server, Redis float64 // cores; Redis 0 for SQLite
	DiskPerEvent  float64
	ok            bool
}

// runCost is what the run from the readings before to those after cost,
// over elapsed and accepted events; disk0 and disk1 are diskWritten's.
func (b *bench) runCost(s *server, before, after cpuReading, disk0, disk1 int64, elapsed time.Duration, accepted int64) runCost {
	if err := errors.Join(before.err, after.err); err != nil || elapsed <= 0 {
		b.rep.note("%s: CPU time unreadable: %v", s.label, err)
		return runCost{}
	}
	c := runCost{Server: (after.server - before.server).Seconds() / elapsed.Seconds(), DiskPerEvent: -1, ok: true}
	if sum, ok := after.redisSince(before); ok {
		c.Redis = sum / elapsed.Seconds()
	}
	if disk0 >= 0 && disk1 >= disk0 && accepted > 0 {
		c.DiskPerEvent = float64(disk1-disk0) / float64(accepted)
	}
	return c
}

// drain accepts a backlog with the relay off, then restarts hookrelay on the
// same store with the relay on and times the delivery of the whole backlog.
func (b *bench) drain(ctx context.Context) error {
	for _, st := range b.o.Stores {
		name := storeNames[st]
		tag := "drain-" + st
		url := b.storeURL(st, tag)
		s, err := b.startHookrelay(ctx, "hookrelay "+name+", relay off (backlog)", url, 0)
		if err != nil {
			return err
		}
		var mu sync.Mutex
		var ids []string
		c := newClient(b.o.Conns)
		b.logf("drain     %-28s accepting %d events with the relay off", name, b.o.Backlog)
		lr := closedLoop(ctx, c, s.url+hookPath, b.o.Conns, time.Now().Add(b.o.Timeout), int64(b.o.Backlog), b.pay, tag, 202, func(n int64) {
			mu.Lock()
			ids = append(ids, eventID(tag, n))
			mu.Unlock()
		})
		c.CloseIdleConnections()
		b.stop(s)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if lr.Errors > 0 || len(lr.Codes) > 0 {
			b.rep.problem("drain %s: %d of %d events accepted; other statuses: %s; %d without an answer (first: %s)",
				name, lr.OK, b.o.Backlog, codesString(lr.Codes), lr.Errors, lr.FirstErr)
		}

		rec := b.recv.reset()
		b.recv.expect(rec, ids)
		cpu := b.redisUsage(ctx, st)
		start := time.Now()
		s, err = b.startHookrelay(ctx, "hookrelay "+name+", relay on (drain)", url, relayOn)
		if err != nil {
			return err
		}
		r := drainResult{Store: name, Backlog: len(ids)}
		r.Complete = b.await(ctx, s, rec, b.o.Timeout)
		b.recv.mu.Lock()
		first, last := rec.firstAt, rec.doneAt
		b.recv.mu.Unlock()
		switch {
		case r.Complete:
			r.Startup, r.Time = first.Sub(start), last.Sub(first)
		case first.IsZero():
			r.Startup, r.Time = time.Since(start), time.Since(start)
		default:
			r.Startup, r.Time = first.Sub(start), time.Since(first)
		}
		b.settle(ctx)
		stats := b.recv.snapshot(rec)
		b.noteRedisLoad(ctx, "drain", st, cpu, int64(stats.Got))
		b.stop(s)
		b.dropStore(ctx, st, tag)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.Delivered = stats.Got
		r.Lost = stats.Expected - stats.Got
		r.DupKeys, r.DupEvents = stats.DupKeys, stats.DupEvents
		b.checkDeliveries("drain "+name, stats, r.Complete, nil)
		b.logf("drain     %-28s %d of %d delivered in %v: %.0f deliveries/s", name, r.Delivered, r.Backlog, r.Time.Round(time.Millisecond), r.rate())
		b.rep.Drain = append(b.rep.Drain, r)
	}
	return nil
}

// await waits until every event rec expects has arrived, the server
// exits, or timeout; it reports whether all arrived.
func (b *bench) await(ctx context.Context, s *server, rec *recording, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-rec.done:
		return true
	case <-s.p.done:
		b.rep.problem("%s exited while delivering (%v):\n%s", s.label, s.p.err, indent(s.p.tail(10)))
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (b *bench) settle(ctx context.Context) {
	select {
	case <-time.After(b.o.Settle):
	case <-ctx.Done():
	}
}

// checkDeliveries turns lost and duplicated deliveries into problems,
// naming a few of the lost events.
func (b *bench) checkDeliveries(what string, st recordingStats, complete bool, ids []string) {
	if lost := st.Expected - st.Got; lost > 0 {
		b.rep.problem("%s: %d of %d accepted events never reached the receiver (waited %v)%s", what, lost, st.Expected, b.o.Timeout, missingExamples(st, ids))
	} else if !complete {
		b.rep.problem("%s: not every event arrived in time", what)
	}
	if st.DupKeys > 0 || st.DupEvents > 0 {
		b.rep.problem("%s: %d deliveries repeated an Idempotency-Key, %d repeated an event", what, st.DupKeys, st.DupEvents)
	}
	if st.NoKey > 0 || st.Unreadable > 0 {
		b.rep.problem("%s: %d deliveries without an Idempotency-Key, %d with a body that is not the event's", what, st.NoKey, st.Unreadable)
	}
}

func missingExamples(st recordingStats, ids []string) string {
	var miss []string
	for _, id := range ids {
		if _, ok := st.received[id]; !ok {
			if miss = append(miss, id); len(miss) == 5 {
				break
			}
		}
	}
	if len(miss) == 0 {
		return ""
	}
	return "; for example " + strings.Join(miss, ", ")
}

// latency sends o.Rate events per second for o.LatencyFor to hookrelay with
// the relay on and measures when each reaches the receiver.
func (b *bench) latency(ctx context.Context) error {
	for _, st := range b.o.Stores {
		r, err := b.constantRun(ctx, st, "latency", nil)
		if err != nil {
			return err
		}
		b.rep.Latency = append(b.rep.Latency, r)
	}
	return nil
}

// isolation is the latency run with a share of events routed to an action
// whose destination never answers.
func (b *bench) isolation(ctx context.Context) error {
	for _, st := range b.o.Stores {
		r, err := b.constantRun(ctx, st, "isolation", slowEvery(b.o.SlowShare))
		if err != nil {
			return err
		}
		b.rep.Isolation = append(b.rep.Isolation, r)
	}
	return nil
}

func (b *bench) constantRun(ctx context.Context, st, phase string, isSlow func(int64) bool) (latencyResult, error) {
	name := storeNames[st]
	tag := phase + "-" + st
	if isSlow == nil {
		isSlow = func(int64) bool { return false }
	}
	s, err := b.startHookrelay(ctx, "hookrelay "+name+", relay on ("+phase+")", b.storeURL(st, tag), relayOn)
	if err != nil {
		return latencyResult{}, err
	}
	rec := b.recv.reset()
	b.logf("%-9s %-28s %d events/s for %v", phase, name, b.o.Rate, b.o.LatencyFor)
	// What the run costs the server, its Redis and the disk, from the
	// first event sent to the last delivery awaited.
	cpu0, disk0, started := b.readCPU(ctx, s, st), diskWritten(), time.Now()
	rr := constantRate(ctx, s.url+hookPath, b.o.Rate, b.o.LatencyFor, b.pay, tag, isSlow)
	ids := make([]string, len(rr.fast))
	for i, n := range rr.fast {
		ids[i] = eventID(tag, n)
	}
	b.recv.expect(rec, ids)
	complete := b.await(ctx, s, rec, b.o.Timeout)
	cost := b.runCost(s, cpu0, b.readCPU(ctx, s, st), disk0, diskWritten(), time.Since(started), rr.Accepted)
	b.settle(ctx)
	stats := b.recv.snapshot(rec)
	hangs := b.recv.hangs.Load()
	b.recv.releaseHanging()
	disk, handed := diskWaits{}, -1.0
	if fams, err := scrapeMetrics(ctx, s.url); err != nil {
		b.rep.problem("%s %s: the server's metrics: %v", phase, name, err)
	} else {
		disk, handed = writesOf(fams), counterSum(fams, handedOffMetric)
	}
	b.stop(s)
	b.dropStore(ctx, st, tag)
	if ctx.Err() != nil {
		return latencyResult{}, ctx.Err()
	}
	if rr.Errors > 0 || len(rr.Codes) > 0 {
		b.rep.problem("%s %s: of %d sent, %d accepted; other statuses: %s; %d without an answer (first: %s)",
			phase, name, rr.Sent, rr.Accepted, codesString(rr.Codes), rr.Errors, rr.FirstErr)
	}
	b.checkDeliveries(phase+" "+name, stats, complete, ids)

	lat := make([]time.Duration, 0, len(ids))
	for _, id := range ids {
		if d, ok := stats.received[id]; ok {
			lat = append(lat, d)
		}
	}
	slices.Sort(lat)
	r := latencyResult{
		Store:     name,
		Sent:      rr.Sent,
		Accepted:  rr.Accepted,
		Rate:      float64(rr.Sent) / rr.Elapsed.Seconds(),
		Fast:      len(ids),
		Slow:      rr.slow,
		Hangs:     hangs,
		Delivered: stats.Got,
		Lost:      stats.Expected - stats.Got,
		DupKeys:   stats.DupKeys,
		DupEvents: stats.DupEvents,
		P50:       percentile(lat, 0.50),
		P99:       percentile(lat, 0.99),
		Max:       percentile(lat, 1),
		AnswerP99: rr.answerP99,
		Disk:      disk,
		HandedOff: handed,
		Cost:      cost,
	}
	b.logf("%-9s %-28s p50 %v p99 %v, %d of %d delivered, %d duplicate keys", phase, name,
		r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Delivered, r.Fast, r.DupKeys)
	return r, nil
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// machineInfo describes where the run happened.
func machineInfo(ctx context.Context, root, goVersion string) machine {
	m := machine{
		Cores: runtime.NumCPU(),
		CPU:   "unknown",
		Go:    goVersion + " " + runtime.GOOS + "/" + runtime.GOARCH,
		Date:  time.Now().UTC().Format("2006-01-02 15:04 MST"),
		Redis: "not used",
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			k, v, ok := strings.Cut(line, ":")
			if ok && (strings.TrimSpace(k) == "model name" || strings.TrimSpace(k) == "Model") {
				m.CPU = strings.Join(strings.Fields(v), " ")
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		// The binary is built from the working tree, which may differ.
		if st, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			m.Commit += " with uncommitted changes"
		}
	}
	return m
}

// redisVersion picks v=7.2.4 out of "Redis server v=7.2.4 sha=…".
func redisVersion(out string) string {
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			return v
		}
	}
	return strings.TrimSpace(out)
}
