package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// A batch of accepts without a script. On one Redis (not a Cluster), a
// batch whose events are all new is written as one MULTI/EXEC
// transaction of plain commands, guarded by WATCH on the events'
// idempotency keys: the writes acceptScript would make, made the same way,
// without its Lua. Redis turns every argument of a script call into a Lua
// string and every redis.call back into a command, and that work cost as
// much as the commands themselves: for a batch of ten 1 KiB events, about
// 40 µs of Redis's CPU per event with the script against 15–24 µs with
// the same writes in a transaction (docs/intake.md).
//
// The script stays the way for everything that must read before it
// writes, and a batch takes it whole when any of its events needs it, or
// when it is small (minPlainBatch):
//
//   - an idempotency key that Redis holds (a duplicate, or a key whose
//     window has ended), or that two events of the batch share;
//   - a delivery in a lane, whose queueing depends on the lane's state;
//   - a delivery offered to its caller (store.HandOff), whose lease
//     depends on its action's state and live leases (enqueueLua);
//   - an accept that waits for replicas (WAIT after the writes);
//   - a key changed by another client between WATCH and EXEC (EXEC
//     aborts and writes nothing), or an error whose outcome is unknown:
//     the script then finds the keys the transaction may have taken
//     under the same event ids and answers them as stored.
//
// The transaction goes out on a connection of its own, which go-redis
// never retries on another connection, so it runs at most once; a retry,
// if any, is the script's.

// minPlainBatch is the fewest events a batch written as a transaction
// has. A smaller one runs the script: with one event a call, the round
// trip the transaction adds costs Redis what the script's Lua would
// (BenchmarkAccept with one caller: 115 · 133 µs of Redis's CPU per event
// as a transaction, 117 · 140 µs as a script), and the caller about 65 µs
// more.
const minPlainBatch = 4

// errUseScript says that a batch must be run by acceptScript.
var errUseScript = errors.New("redisstore: batch needs the accept script")

// refusesPlain tells whether err says that the server does not take
// transactions from this client at all: an ACL that leaves out WATCH,
// MULTI or EXEC (NOPERM; EXECABORT when a command was refused inside the
// transaction), or a proxy or server without them. The store then stops
// trying (Store.noPlain) and runs the script for every batch.
func refusesPlain(err error) bool {
	for _, prefix := range []string{"NOPERM", "EXECABORT", "unknown command"} {
		if redis.HasErrorPrefix(err, prefix) {
			return true
		}
	}
	return false
}

// acceptPlain writes batch as one transaction on rc and answers each call
// as acceptScript would ({event id, 0}). It returns errUseScript, having
// written nothing, when the batch needs the script; another error when the
// outcome is not known.
func (s *Store) acceptPlain(ctx context.Context, rc *redis.Client, batch []*acceptCall, wake int) error {
	if len(batch) < minPlainBatch {
		return errUseScript
	}
	var watch []string
	seen := make(map[string]bool)
	for _, c := range batch {
		if c.replicas > 0 || c.handed != nil {
			return errUseScript
		}
		if c.args[2] != "0" {
			key := c.keys[0]
			if seen[key] {
				return errUseScript
			}
			seen[key] = true
			watch = append(watch, key)
		}
		for d := eventDeliveries(c); d.next(); {
			if d.lane() != "" {
				return errUseScript
			}
		}
	}
	return rc.Watch(ctx, func(tx *redis.Tx) error {
		if len(watch) > 0 {
			if err := checkNew(ctx, tx, watch); err != nil {
				_ = tx.Unwatch(ctx).Err()
				return err
			}
		}
		if s.beforeExec != nil {
			s.beforeExec()
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			var w gathered
			for _, c := range batch {
				writePlain(ctx, p, c, &w)
			}
			w.flush(ctx, p)
			if wake > 0 {
				p.Publish(ctx, s.k.wake(), wake)
			}
			return nil
		})
		if errors.Is(err, redis.TxFailedErr) {
			return errUseScript
		}
		return err
	})
}

// checkNew watches keys and reads them in one round trip: errUseScript
// when Redis holds any of them.
func checkNew(ctx context.Context, tx *redis.Tx, keys []string) error {
	watch := make([]any, 0, 1+len(keys))
	watch = append(watch, "watch")
	for _, k := range keys {
		watch = append(watch, k)
	}
	var held *redis.SliceCmd
	if _, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, watch...)
		held = p.MGet(ctx, keys...)
		return nil
	}); err != nil {
		return err
	}
	for _, v := range held.Val() {
		if v != nil {
			return errUseScript
		}
	}
	return nil
}

// writePlain queues the writes acceptScript makes for the new event of c
// (whose keys and arguments are acceptScript's), its deliveries in no
// lane: the idempotency key and per delivery its hash; the event, and the
// sorted-set and set members, go to w.
func writePlain(ctx context.Context, p redis.Pipeliner, c *acceptCall, w *gathered) {
	id := c.args[0].(string)
	if end := c.args[2].(string); end != "0" {
		p.Do(ctx, "set", c.keys[0], id+"|"+end, "px", c.args[3])
	}
	for _, n := range eventNames(c.args) {
		w.sadd(c.keys[4], n)
	}
	w.set(c.keys[2], c.args[4])
	w.zadd(c.keys[3], "0", id)
	for d := eventDeliveries(c); d.next(); {
		a := d.args()
		hset := make([]any, 0, 16+len(a)-9)
		hset = append(hset, "hset", d.key(0), "evt", id, "hook", a[5], "rule", a[6], "action", a[2],
			"status", "pending", "due", a[1], "created", a[4])
		hset = append(hset, a[9:]...)
		p.Do(ctx, hset...)
		w.zadd(d.key(1), "0", a[0])
		w.zadd(d.key(2), a[1], a[0])
		w.sadd(c.keys[1], a[2])
	}
}

// deliveries walks the deliveries of an acceptCall, in acceptScript's
// layout: after the event's five keys, five per delivery; after the
// event's arguments, nine per delivery and its extra fields.
type deliveries struct {
	c      *acceptCall
	k, a   int // the current delivery's first key and argument
	nk, na int // where the next one starts
}

func eventDeliveries(c *acceptCall) *deliveries {
	at := namesAt + 1 + c.args[namesAt].(int)
	return &deliveries{c: c, nk: 5, na: at}
}

func (d *deliveries) next() bool {
	if d.na >= len(d.c.args) {
		return false
	}
	d.k, d.a = d.nk, d.na
	d.nk += 5
	d.na += 9 + d.c.args[d.a+8].(int)
	return true
}

func (d *deliveries) key(i int) string { return d.c.keys[d.k+i] }
func (d *deliveries) args() []any      { return d.c.args[d.a:d.na] }
func (d *deliveries) lane() string     { return d.c.args[d.a+3].(string) }

// gathered holds a batch's writes to the same sorted sets and sets, as
// acceptScript gathers them: per key, in the order first met, score/member
// pairs, and members once each; and the batch's events. flush sends one
// ZADD or SADD per key, and one MSET.
type gathered struct {
	mset         []any
	zkeys, skeys []string
	zargs        map[string][]any
	sargs        map[string][]any
	seen         map[string]map[any]bool
}

func (g *gathered) set(key string, value any) {
	if g.mset == nil {
		g.mset = []any{"mset"}
	}
	g.mset = append(g.mset, key, value)
}

func (g *gathered) zadd(key string, score, member any) {
	if g.zargs == nil {
		g.zargs = make(map[string][]any)
	}
	a, ok := g.zargs[key]
	if !ok {
		g.zkeys = append(g.zkeys, key)
		a = []any{"zadd", key}
	}
	g.zargs[key] = append(a, score, member)
}

func (g *gathered) sadd(key string, member any) {
	if g.sargs == nil {
		g.sargs, g.seen = make(map[string][]any), make(map[string]map[any]bool)
	}
	a, ok := g.sargs[key]
	if !ok {
		g.skeys = append(g.skeys, key)
		a = []any{"sadd", key}
		g.seen[key] = make(map[any]bool)
	}
	if g.seen[key][member] {
		return
	}
	g.seen[key][member] = true
	g.sargs[key] = append(a, member)
}

func (g *gathered) flush(ctx context.Context, p redis.Pipeliner) {
	if g.mset != nil {
		p.Do(ctx, g.mset...)
	}
	for _, k := range g.zkeys {
		p.Do(ctx, g.zargs[k]...)
	}
	for _, k := range g.skeys {
		p.Do(ctx, g.sargs[k]...)
	}
}
