package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// redisLoad is the CPU time the Redis servers of one store spent in one
// phase: on a cluster, each master's, which shows how the load spreads.
type redisLoad struct {
	Phase  string
	Store  string
	Events int64              // events accepted or delivered in the phase
	CPU    map[string]float64 // seconds, per server address
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

// redisCPU reads the CPU time (user and system, seconds) that each Redis
// server of store has used: the one server, or every master of the
// cluster; nil for SQLite.
func (b *bench) redisCPU(ctx context.Context, store string) map[string]float64 {
	out := map[string]float64{}
	var mu sync.Mutex
	read := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "cpu").Result()
		if err != nil {
			return err
		}
		s := 0.0
		for _, line := range strings.Split(info, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
				x, _ := strconv.ParseFloat(v, 64)
				s += x
			}
		}
		mu.Lock()
		out[c.Options().Addr] = s
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

// noteRedisLoad records what the Redis servers of store spent between
// before and now for events events.
func (b *bench) noteRedisLoad(ctx context.Context, phase, store string, before map[string]float64, events int64) {
	if before == nil {
		return
	}
	after := b.redisCPU(ctx, store)
	if after == nil {
		return
	}
	l := redisLoad{Phase: phase, Store: storeNames[store], Events: events, CPU: map[string]float64{}}
	for addr, s := range after {
		l.CPU[addr] = s - before[addr]
	}
	b.logf("redis     %-28s %.1f µs of Redis CPU per event, per server %s", phase+" "+l.Store, l.perEvent(), l.shares())
	b.rep.Redis = append(b.rep.Redis, l)
}
