package redisstore

import (
	"context"
	"fmt"
	"slices"
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

// runAll runs sc once per call in one pipeline, sent by hash, with the
// commands also adds, if any; a call that finds the script missing (a
// master replaced or its cache flushed) is run again on its own, which
// loads it. A lone call is sent as it is, without a pipeline.
func (s *Store) runAll(ctx context.Context, sc *redis.Script, calls []*scriptCall, also ...func(redis.Pipeliner)) {
	if len(calls) == 1 && len(also) == 0 {
		// One call needs no pipeline: Run loads a missing script itself.
		c := calls[0]
		c.cmd = sc.Run(ctx, s.c, c.keys, c.args...)
		return
	}
	_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range calls {
			c.cmd = sc.EvalSha(ctx, p, c.keys, c.args...)
		}
		for _, f := range also {
			f(p)
		}
		return nil
	})
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			c.cmd = sc.Run(ctx, s.c, c.keys, c.args...)
		}
	}
}

// leaseShare is how many deliveries of an action a partitioned Lease asks
// each partition for in its first round, at least: fewer scripts for a
// small lease, each taking several deliveries.
const leaseShare = 8

// quotaGrant is what gateScript allowed one quota.
type quotaGrant struct {
	allowed int    // deliveries the action may take, over all partitions
	gate    string // leaseScript's gate
	version string // the state's version after a probe's move, "0" without one
	capped  bool   // gateScript holds a placeholder per allowed delivery
	unused  []any  // placeholders no lease took
	tokens  []any  // leases taken under names of their own
}

// busyCheck is how many actions a partitioned Lease must ask for before
// it first looks, in every partition, which of them have anything queued
// or held (busyScript): an idle action costs the gate and settle scripts
// far more than that look, but a look costs a round trip.
const busyCheck = 4

// busyActions is the quotas of r whose actions have anything queued or
// held in some partition.
func (s *Store) busyActions(ctx context.Context, qs []store.ActionQuota) ([]store.ActionQuota, error) {
	calls := make([]*scriptCall, len(s.parts))
	for i, k := range s.parts {
		c := &scriptCall{keys: make([]string, 0, 2*len(qs))}
		for _, q := range qs {
			c.keys = append(c.keys, k.queue(q.Action), k.leases(q.Action))
		}
		calls[i] = c
	}
	s.runAll(ctx, busyScript, calls)
	busy := make([]bool, len(qs))
	for _, c := range calls {
		flags, err := c.cmd.Int64Slice()
		if err != nil {
			return nil, err
		}
		if len(flags) != len(qs) {
			return nil, fmt.Errorf("unexpected busy reply %v", flags)
		}
		for a, f := range flags {
			busy[a] = busy[a] || f == 1
		}
	}
	out := make([]store.ActionQuota, 0, len(qs))
	for a, q := range qs {
		if busy[a] {
			out = append(out, q)
		}
	}
	return out, nil
}

func (s *Store) leaseParts(ctx context.Context, r store.LeaseRequest) (store.LeaseBatch, error) {
	// The actions that the last full look found with nothing queued or
	// held in any partition are left out until a wake-up names them or
	// their mark ends (idleActions): each would cost the gate and the
	// settle scripts, and a look in every partition, for nothing.
	clock := time.Now()
	if qs := s.idle.busy(r.Actions, clock); len(qs) < len(r.Actions) {
		if len(qs) == 0 {
			return store.LeaseBatch{}, nil
		}
		r.Actions = qs
	}
	if len(r.Actions) >= busyCheck {
		// An action with nothing queued or held anywhere has nothing to
		// lease, to gate or to report (NextDue); the look, which asked
		// every partition, marks it idle.
		look := s.idle.begin(quotaNames(r.Actions))
		qs, err := s.busyActions(ctx, r.Actions)
		if err != nil {
			return store.LeaseBatch{}, fmt.Errorf("redisstore: lease: %w", err)
		}
		for a, q := range r.Actions {
			if !slices.ContainsFunc(qs, func(b store.ActionQuota) bool { return b.Action == q.Action }) {
				s.idle.mark(look, a, q.Action, clock)
			}
		}
		if len(qs) == 0 {
			return store.LeaseBatch{}, nil
		}
		r.Actions = qs
	}
	now := r.Now.UnixMilli()
	until := leaseEnd(r.Now, r.TTL)
	head := newTokenHead()
	names := quotaNames(r.Actions)
	began := s.idle.begin(names)

	gkeys := make([]string, 0, 2*len(r.Actions))
	gargs := make([]any, 0, 3+4*len(r.Actions))
	gargs = append(gargs, now, until, head+"g")
	for _, q := range r.Actions {
		gkeys = append(gkeys, s.k.actionState(q.Action), s.k.capSet(q.Action))
		gargs = append(gargs, max(q.N, 0), r.Now.Add(q.Probe).UnixMilli(), max(q.Max, 0), recordingArg(q, true))
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
		g.capped = r.Actions[i].Max > 0
	}
	// The first round's leases are named as gateScript named the
	// placeholders it counted, head.."g"..quota.."."..n: a partition asked
	// for s deliveries of a quota from offset o takes the names o+1 to
	// o+s, so when every share is taken the cap sets need nothing more.
	ghead := head + "g"

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
	// leaseCall asks partition i for want(a) of each quota a; offset(a)
	// is the quota's token offset (-1: names of the call's own, under
	// tag).
	leaseCall := func(i int, tag string, want, offset func(a int) int) *scriptCall {
		k := s.parts[i]
		c := &scriptCall{
			keys: make([]string, 0, 3*len(r.Actions)),
			args: make([]any, 0, 4+6*len(r.Actions)),
		}
		h := ghead
		if tag != "" {
			h = head + tag + strconv.Itoa(i) + "."
		}
		c.args = append(c.args, now, until, k.base, h)
		for a, q := range r.Actions {
			c.keys = append(c.keys, k.queue(q.Action), k.leases(q.Action), k.queue(q.Action))
			off := any("")
			if o := offset(a); o >= 0 {
				off = o
			}
			c.args = append(c.args, want(a), 0, 0, grants[a].gate, off, "")
		}
		return c
	}
	// read takes a partition's answer; own says the leases carry names of
	// the call's own, which the cap sets must learn.
	read := func(i int, c *scriptCall, own bool) []int {
		took := make([]int, len(r.Actions))
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
			return took
		}
		nexts[i] = make([]int64, len(per))
		for a, v := range per {
			nexts[i][a], _ = v.(int64)
		}
		for j := 2; j+1 < len(res); j += 2 {
			l, err := decodeLease(s.opener(), res[j], res[j+1])
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
					took[a]++
					if own {
						grants[a].tokens = append(grants[a].tokens, l.Token)
					}
					break
				}
			}
		}
		return took
	}
	// share is partition j's (of `of`) share of n, the remainder going to
	// the first ones.
	share := func(n, j, of int) int {
		if n <= 0 {
			return 0
		}
		sh := n / of
		if j < n%of {
			sh++
		}
		return sh
	}
	order := make([]int, P)
	most := 0
	for j := range P {
		order[j] = (turn + j) % P
	}
	for _, g := range grants {
		most = max(most, g.allowed)
	}
	// Only as many partitions as get leaseShare deliveries each are asked
	// first, from the turn on: a lease costs a few scripts, not one per
	// partition, and the turn takes every partition in its turn. With
	// nothing to take (every action gated), all are asked, for when to
	// look again.
	first := P
	if most > 0 {
		first = min(P, (most+leaseShare-1)/leaseShare)
	}
	run := func(tag string, parts []int, want func(j int, a int) int) {
		calls := make([]*scriptCall, len(parts))
		for j, i := range parts {
			calls[j] = leaseCall(i, tag, func(a int) int { return want(j, a) }, func(int) int { return -1 })
		}
		s.runAll(ctx, leaseScript, calls)
		for j, c := range calls {
			read(parts[j], c, true)
		}
	}
	// The first round, under the placeholders' names.
	offsets := make([][]int, first)
	calls := make([]*scriptCall, first)
	for j := range first {
		offsets[j] = make([]int, len(r.Actions))
		for a := range r.Actions {
			if j > 0 {
				offsets[j][a] = offsets[j-1][a] + share(grants[a].allowed, j-1, first)
			}
		}
		calls[j] = leaseCall(order[j], "", func(a int) int { return share(grants[a].allowed, j, first) },
			func(a int) int { return offsets[j][a] })
	}
	s.runAll(ctx, leaseScript, calls)
	for j, c := range calls {
		took := read(order[j], c, false)
		for a := range r.Actions {
			if !grants[a].capped {
				continue
			}
			for n := offsets[j][a] + took[a] + 1; n <= offsets[j][a]+share(grants[a].allowed, j, first); n++ {
				grants[a].unused = append(grants[a].unused, ghead+strconv.Itoa(a+1)+"."+strconv.Itoa(n))
			}
		}
	}
	short := func() bool {
		for a := range r.Actions {
			if got[a] < grants[a].allowed {
				return true
			}
		}
		return false
	}
	if short() && first < P {
		// The others, asked for what is missing.
		rest := order[first:]
		deficit := make([]int, len(r.Actions))
		for a := range r.Actions {
			deficit[a] = grants[a].allowed - got[a]
		}
		run("s", rest, func(j, a int) int { return share(deficit[a], j, len(rest)) })
	}
	for _, i := range order {
		if !short() {
			break
		}
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
		c := leaseCall(i, "r", want, func(int) int { return -1 })
		s.runAll(ctx, leaseScript, []*scriptCall{c})
		read(i, c, true)
	}

	if err := s.settle(ctx, r, until, grants, got); err != nil && firstErr == nil {
		firstErr = err
	}
	// An action is due again when its earliest partition is, and no
	// earlier than the end of a probe just leased; when some partitions
	// were not asked, something may be due there now. A look that asked
	// every partition marks the actions it found nothing of anywhere as
	// idle.
	asked := 0
	for _, n := range nexts {
		if n != nil {
			asked++
		}
	}
	if s.leaseAsked != nil {
		s.leaseAsked(asked)
	}
	if asked < P && firstErr == nil {
		b.NextDue = r.Now
	}
	if asked == P && firstErr == nil {
		for a := range r.Actions {
			none := grants[a].allowed > 0 && got[a] == 0
			for i := 0; none && i < P; i++ {
				none = nexts[i][a] == 0
			}
			if none {
				s.idle.mark(began, a, names[a], clock)
			}
		}
	}
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

// quotaNames are the actions of qs, in their order.
func quotaNames(qs []store.ActionQuota) []string {
	names := make([]string, len(qs))
	for a, q := range qs {
		names[a] = q.Action
	}
	return names
}

// settle runs settleScript when a quota needs it: one whose cap set holds
// placeholders no lease took, or leases named otherwise, and one moved to
// half-open for a probe that found nothing due. Every quota is sent, in
// the gate call's order.
func (s *Store) settle(ctx context.Context, r store.LeaseRequest, until int64, grants []quotaGrant, got []int) error {
	need := false
	for a, g := range grants {
		need = need || (g.capped && (len(g.unused) > 0 || len(g.tokens) > 0)) || (g.version != "0" && got[a] == 0)
	}
	if !need {
		return nil
	}
	keys := make([]string, 0, 2*len(grants))
	args := []any{until}
	for a, g := range grants {
		q := r.Actions[a]
		keys = append(keys, s.k.actionState(q.Action), s.k.capSet(q.Action))
		probed := 0
		if got[a] > 0 {
			probed = 1
		}
		unused, tokens := g.unused, g.tokens
		if !g.capped {
			unused, tokens = nil, nil
		}
		args = append(args, g.version, probed, len(unused))
		args = append(args, unused...)
		args = append(args, len(tokens))
		args = append(args, tokens...)
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
	s.runAll(ctx, releaseScript, callList(calls), s.uncap(ctx, ls))
	s.queued(actionsOf(ls, leaseAction))
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil {
			return fmt.Errorf("redisstore: release: %w", err)
		}
	}
	return nil
}

// uncap returns the commands that take ended leases out of their
// actions' cap sets, for a pipeline.
func (s *Store) uncap(ctx context.Context, ls []store.Lease) func(redis.Pipeliner) {
	return func(p redis.Pipeliner) {
		tokens := map[string][]any{}
		for _, l := range ls {
			if l.Token != "" {
				tokens[l.Delivery.Action] = append(tokens[l.Delivery.Action], l.Token)
			}
		}
		for action, ts := range tokens {
			p.ZRem(ctx, s.k.capSet(action), ts...)
		}
	}
}
