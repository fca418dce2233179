package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redisinfo"
)

// redisLoad is the CPU time the Redis servers of one store spent in one
// phase: on a cluster, each master's, which shows how the load spreads.
type redisLoad struct {
	Phase  string
	Store  string
	Events int64              // events accepted or delivered in the phase
	CPU    map[string]float64 // seconds, per server address
	// Scripts is the time the servers spent running scripts and
	// transactions (scriptStat), summed: with the relay off, that is the
	// accepts.
	Scripts scriptStat
}

// scriptStat is what INFO commandstats says of the calls that carry
// hookrelay's state changes: scripts (EVALSHA, EVAL) and transactions
// (EXEC, whose time holds that of the commands it ran, and the WATCH and
// MGET of the idempotency keys before it, which an accept without a
// script sends). Calls counts the scripts and EXECs.
type scriptStat struct {
	Calls int64
	Usec  int64
}

func (s scriptStat) minus(o scriptStat) scriptStat {
	return scriptStat{Calls: s.Calls - o.Calls, Usec: s.Usec - o.Usec}
}

// scriptPerEvent is the time the scripts took per event, in microseconds.
func (l redisLoad) scriptPerEvent() float64 {
	return float64(l.Scripts.Usec) / float64(max(l.Events, 1))
}

// eventsPerCall is how many events (in the drain, deliveries) a script
// call or a transaction carried on average.
func (l redisLoad) eventsPerCall() float64 {
	return float64(l.Events) / float64(max(l.Scripts.Calls, 1))
}

// perEvent is the servers' CPU time per event, in microseconds.
func (l redisLoad) perEvent() float64 {
	total := 0.0
	for _, s := range l.CPU {
		total += s
	}
	return total / float64(max(l.Events, 1)) * 1e6
}

// shares lists each server's share of the phase's CPU time, the largest
// first.
func (l redisLoad) shares() string {
	total := 0.0
	for _, s := range l.CPU {
		total += s
	}
	var out []float64
	for _, s := range l.CPU {
		out = append(out, s/max(total, 1e-9)*100)
	}
	slices.Sort(out)
	slices.Reverse(out)
	parts := make([]string, len(out))
	for i, x := range out {
		parts[i] = fmt.Sprintf("%.0f %%", x)
	}
	return strings.Join(parts, " · ")
}

// redisReading is what the Redis servers of a store have used so far: the
// CPU time (user and system, seconds) of each, and their scripts' time.
type redisReading struct {
	CPU     map[string]float64
	Scripts scriptStat
}

// redisUsage reads what each Redis server of store has used: the one
// server, or every master of the cluster; nil for SQLite.
func (b *bench) redisUsage(ctx context.Context, store string) *redisReading {
	out := &redisReading{CPU: map[string]float64{}}
	var mu sync.Mutex
	read := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "cpu", "commandstats").Result()
		if err != nil {
			return err
		}
		cpu, scripts := parseRedisInfo(info)
		mu.Lock()
		out.CPU[c.Options().Addr] = cpu
		out.Scripts.Calls += scripts.Calls
		out.Scripts.Usec += scripts.Usec
		mu.Unlock()
		return nil
	}
	var err error
	switch store {
	case "redis":
		err = read(ctx, b.redis)
	case "cluster":
		err = b.clusterC.ForEachMaster(ctx, read)
	default:
		return nil
	}
	if err != nil {
		b.rep.note("reading the CPU time of the %s servers: %v", storeNames[store], err)
		return nil
	}
	return out
}

// parseRedisInfo reads, from the text of INFO cpu and commandstats, the
// CPU time used (user and system, seconds) and the calls and time of the
// scripts and transactions (scriptStat); what it cannot read counts 0.
func parseRedisInfo(info string) (cpu float64, scripts scriptStat) {
	fields := redisinfo.Fields(info)
	cpu, _ = redisinfo.CPU(fields)
	scripts.Calls, scripts.Usec, _ = redisinfo.State(fields)
	return cpu, scripts
}

// noteRedisLoad records what the Redis servers of store spent between
// before and now for events events.
func (b *bench) noteRedisLoad(ctx context.Context, phase, store string, before *redisReading, events int64) {
	if before == nil {
		return
	}
	after := b.redisUsage(ctx, store)
	if after == nil {
		return
	}
	l := redisLoad{Phase: phase, Store: storeNames[store], Events: events, CPU: map[string]float64{},
		Scripts: after.Scripts.minus(before.Scripts)}
	for addr, s := range after.CPU {
		l.CPU[addr] = s - before.CPU[addr]
	}
	b.logf("redis     %-28s %.1f µs of Redis CPU per event, per server %s; scripts and transactions %.1f µs per event, %.1f per call",
		phase+" "+l.Store, l.perEvent(), l.shares(), l.scriptPerEvent(), l.eventsPerCall())
	b.rep.Redis = append(b.rep.Redis, l)
}
