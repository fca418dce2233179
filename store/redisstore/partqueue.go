package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/store"
)

// The queue of a partitioned store (partition.go): each partition has its
// own queues and lease sets, so Lease asks every partition in one pipeline,
// after one script in partition 0 has applied what the whole store shares
// (gateScript: pause, breaker, concurrency cap), and Renew, Finish and
// Release send each partition its own leases.

// capSet holds the lease tokens of one action's live leases on a
// partitioned store, scored by lease end (gateScript).
func (k keys) capSet(action string) string { return k.base + "cap:" + action }

// scriptCall is one script run of a pipeline.
type scriptCall struct {
	keys []string
	args []any
	cmd  *redis.Cmd
}

// runAll runs sc once per call in one pipeline, sent by hash; a call that
// finds the script missing (a master replaced or its cache flushed) is run
// again on its own, which loads it.
func (s *Store) runAll(ctx context.Context, sc *redis.Script, calls []*scriptCall) {
	_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range calls {
			c.cmd = sc.EvalSha(ctx, p, c.keys, c.args...)
		}
		return nil
	})
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			c.cmd = sc.Run(ctx, s.c, c.keys, c.args...)
		}
	}
}

// quotaGrant is what gateScript allowed one quota.
type quotaGrant struct {
	allowed int    // deliveries the action may take, over all partitions
	gate    string // leaseScript's gate
	version string // the state's version after a probe's move, "0" without one
	placed  int    // placeholders held in the cap set
	tokens  []string
}

func (s *Store) leaseParts(ctx context.Context, r store.LeaseRequest) (store.LeaseBatch, error) {
	now := r.Now.UnixMilli()
	until := leaseEnd(r.Now, r.TTL)
	head := newTokenHead()

	gkeys := make([]string, 0, 2*len(r.Actions))
	gargs := make([]any, 0, 3+3*len(r.Actions))
	gargs = append(gargs, now, until, head+"g")
	for _, q := range r.Actions {
		gkeys = append(gkeys, s.k.actionState(q.Action), s.k.capSet(q.Action))
		gargs = append(gargs, max(q.N, 0), r.Now.Add(q.Probe).UnixMilli(), max(q.Max, 0))
	}
	res, err := gateScript.Run(ctx, s.c, gkeys, gargs...).Slice()
	if err != nil {
		return store.LeaseBatch{}, fmt.Errorf("redisstore: lease: %w", err)
	}
	if len(res) != len(r.Actions) {
		return store.LeaseBatch{}, fmt.Errorf("redisstore: lease: unexpected gate reply %v", res)
	}
	grants := make([]quotaGrant, len(r.Actions))
	for i, v := range res {
		row, ok := v.([]any)
		if !ok || len(row) != 3 {
			return store.LeaseBatch{}, fmt.Errorf("redisstore: lease: unexpected gate reply %v", v)
		}
		n, _ := row[0].(int64)
		g := &grants[i]
		g.allowed = int(n)
		g.gate = fmt.Sprint(row[1])
		g.version = fmt.Sprint(row[2])
		if r.Actions[i].Max > 0 {
			g.placed = g.allowed
		}
	}

	// First every partition gets an even share of each action's
	// allowance, the remainder going round from a turn that moves with
	// every call; then what is left goes to the partitions that still
	// have deliveries of the action due, one after the other.
	P := len(s.parts)
	turn := int(s.turn.Add(1) % uint64(P))
	nexts := make([][]int64, P) // per partition, per quota: next due
	var b store.LeaseBatch
	var firstErr error
	got := make([]int, len(r.Actions))
	leaseCall := func(i int, tag string, want func(a int) int) *scriptCall {
		k := s.parts[i]
		c := &scriptCall{
			keys: make([]string, 0, 3*len(r.Actions)),
			args: make([]any, 0, 4+4*len(r.Actions)),
		}
		c.args = append(c.args, now, until, k.base, head+tag+strconv.Itoa(i)+".")
		for a, q := range r.Actions {
			c.keys = append(c.keys, k.queue(q.Action), k.leases(q.Action), k.queue(q.Action))
			c.args = append(c.args, want(a), 0, 0, grants[a].gate)
		}
		return c
	}
	read := func(i int, c *scriptCall) {
		res, err := c.cmd.Slice()
		var per []any
		if err == nil {
			per, _ = res[1].([]any)
			if len(res)%2 != 0 || len(per) != len(r.Actions) {
				err = fmt.Errorf("unexpected reply %v", res)
			}
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			nexts[i] = nil
			return
		}
		nexts[i] = make([]int64, len(per))
		for a, v := range per {
			nexts[i][a], _ = v.(int64)
		}
		for j := 2; j+1 < len(res); j += 2 {
			l, err := decodeLease(s.keys, res[j], res[j+1])
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			b.Leases = append(b.Leases, l)
			for a, q := range r.Actions {
				if q.Action == l.Delivery.Action {
					got[a]++
					grants[a].tokens = append(grants[a].tokens, l.Token)
					break
				}
			}
		}
	}
	calls := make([]*scriptCall, P)
	for i := range P {
		calls[i] = leaseCall(i, "", func(a int) int {
			n := grants[a].allowed
			share := n / P
			if (i-turn+P)%P < n%P {
				share++
			}
			return share
		})
	}
	s.runAll(ctx, leaseScript, calls)
	for i, c := range calls {
		read(i, c)
	}
	for k := range P {
		i := (turn + k) % P
		want := func(a int) int {
			if nexts[i] == nil || nexts[i][a] == 0 || nexts[i][a] > now {
				return 0
			}
			return grants[a].allowed - got[a]
		}
		more := false
		for a := range r.Actions {
			more = more || want(a) > 0
		}
		if !more {
			continue
		}
		c := leaseCall(i, "r", want)
		s.runAll(ctx, leaseScript, []*scriptCall{c})
		read(i, c)
	}

	if err := s.settle(ctx, r, until, head+"g", grants); err != nil && firstErr == nil {
		firstErr = err
	}
	// An action is due again when its earliest partition is, and no
	// earlier than the end of a probe just leased.
	for a, q := range r.Actions {
		var t int64
		for i := range P {
			if n := nexts[i]; n != nil && n[a] != 0 && (t == 0 || n[a] < t) {
				t = n[a]
			}
		}
		if t == 0 {
			continue
		}
		if grants[a].version != "0" && got[a] > 0 {
			t = max(t, r.Now.Add(q.Probe).UnixMilli())
		}
		if b.NextDue.IsZero() || t < b.NextDue.UnixMilli() {
			b.NextDue = time.UnixMilli(t).UTC()
		}
	}
	if firstErr != nil {
		// The leases read are held: handing them back lets the caller
		// release them rather than wait for their end.
		return b, fmt.Errorf("redisstore: lease: %w", firstErr)
	}
	return b, nil
}

// settle runs settleScript when a quota needs it: one whose cap set holds
// placeholders, or one moved to half-open for a probe. The placeholders
// are numbered by the quota's position in the gate call, which the script
// reads from its own KEYS: every quota is sent.
func (s *Store) settle(ctx context.Context, r store.LeaseRequest, until int64, head string, grants []quotaGrant) error {
	need := false
	for _, g := range grants {
		need = need || g.placed > 0 || g.version != "0"
	}
	if !need {
		return nil
	}
	keys := make([]string, 0, 2*len(grants))
	args := []any{until, head}
	for a, g := range grants {
		q := r.Actions[a]
		keys = append(keys, s.k.actionState(q.Action), s.k.capSet(q.Action))
		args = append(args, g.placed, g.version, len(g.tokens))
		for _, t := range g.tokens {
			args = append(args, t)
		}
	}
	return settleScript.Run(ctx, s.c, keys, args...).Err()
}

// byPart groups the leases of ls by partition: the index of each lease in
// ls, per partition.
func (s *Store) byPart(ls []store.Lease) map[int][]int {
	out := map[int][]int{}
	for i, l := range ls {
		p := s.partOf(l.Delivery.ID)
		out[p] = append(out[p], i)
	}
	return out
}

// leaseCalls builds one call per partition of the leases ls: the delivery
// hashes as KEYS, head (with the partition's key base where head holds
// baseArg) then each lease's delivery id and token as ARGV.
func (s *Store) leaseCalls(ls []store.Lease, head func(k keys) []any) (map[int][]int, map[int]*scriptCall) {
	groups := s.byPart(ls)
	calls := make(map[int]*scriptCall, len(groups))
	for p, idx := range groups {
		k := s.parts[p]
		c := &scriptCall{keys: make([]string, 0, len(idx))}
		c.args = append(c.args, head(k)...)
		for _, i := range idx {
			id := ls[i].Delivery.ID
			c.keys = append(c.keys, k.delivery(id))
			c.args = append(c.args, id, ls[i].Token)
		}
		calls[p] = c
	}
	return groups, calls
}

func callList(m map[int]*scriptCall) []*scriptCall {
	out := make([]*scriptCall, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	return out
}

func (s *Store) renewParts(ctx context.Context, until int64, ls []store.Lease) ([]time.Time, error) {
	ends := make([]time.Time, len(ls))
	groups, calls := s.leaseCalls(ls, func(k keys) []any { return []any{until, k.base} })
	s.runAll(ctx, renewScript, callList(calls))
	var held []store.Lease
	for p, c := range calls {
		res, err := c.cmd.Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("redisstore: renew: %w", err)
		}
		if len(res) != len(groups[p]) {
			return nil, fmt.Errorf("redisstore: renew: %d answers for %d leases", len(res), len(groups[p]))
		}
		for j, ok := range res {
			if ok == 1 {
				i := groups[p][j]
				ends[i] = time.UnixMilli(until).UTC()
				held = append(held, ls[i])
			}
		}
	}
	// The cap sets count a lease until it ends: they follow the renewal.
	if len(held) > 0 {
		_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, l := range held {
				p.ZAddXX(ctx, s.k.capSet(l.Delivery.Action), redis.Z{Score: float64(until), Member: l.Token})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("redisstore: renew: %w", err)
		}
	}
	return ends, nil
}

func (s *Store) releaseParts(ctx context.Context, now time.Time, ls []store.Lease) error {
	_, calls := s.leaseCalls(ls, func(k keys) []any { return []any{now.UnixMilli(), k.base, s.k.wake()} })
	s.runAll(ctx, releaseScript, callList(calls))
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil {
			return fmt.Errorf("redisstore: release: %w", err)
		}
	}
	return s.uncap(ctx, ls)
}

// uncap takes ended leases out of their actions' cap sets.
func (s *Store) uncap(ctx context.Context, ls []store.Lease) error {
	tokens := map[string][]any{}
	for _, l := range ls {
		if l.Token != "" {
			tokens[l.Delivery.Action] = append(tokens[l.Delivery.Action], l.Token)
		}
	}
	if len(tokens) == 0 {
		return nil
	}
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for action, ts := range tokens {
			p.ZRem(ctx, s.k.capSet(action), ts...)
		}
		return nil
	})
	return err
}
