// Package redisstore is hookrelay's Redis backend: every state transition is
// one Lua script (scripts.go) over hash-tagged keys (keys.go), so it works on
// a single server and on Redis Cluster, and any number of gateway and relay
// processes can share one store. Each action has its own queue, a sorted set
// of delivery ids scored by due time, and its own lease set scored by lease
// end: a delivery whose worker died is taken again from the lease set once
// its lease ends, without a reaper, and one action's backlog never hides
// another's due deliveries. One Lease call serves every action's quota in one
// script, applying the action's shared state (pause, breaker) there; a batch
// of finished attempts is one pipeline. Rate limits are shared through Redis
// too (limiter.go). Concurrent Accepts share pipelines (commit.go). Listings
// page through sorted sets of ids (all, per hook, per action, per status)
// that the same scripts keep, and admin API keys are read from Redis on every
// call, so a revocation holds at once for every process. Retention (Prune)
// walks the events index oldest first, one bounded script per batch, from a
// cursor kept in Redis under a pruning lease, and removes each old final
// event's keys and index entries.
//
// Accept throughput measured with BenchmarkAccept (storetest.Bench: a new
// idempotency key and one delivery per event), go test -bench BenchmarkAccept
// -benchtime 5s, on a 2-vCPU VM shared with a local Redis 7.0 over loopback
// and other jobs, so ±30% between runs:
//
//	callers=1    4,000 –  5,500 accepts/s  (one round trip per event)
//	callers=16  11,000 – 16,000 accepts/s  (without group commit: ~11,000)
//	callers=64  16,000 – 19,000 accepts/s  (without group commit: ~10,000)
//
// Redis spends ~50–60 µs of its single thread on one accept script here,
// which bounds the total. Those figures are of ~150-byte bodies; with the
// ~1 KiB bodies the benchmark now sends: 3,700–4,800, 12,000–14,600 and
// 13,400–16,300 events/s, and redis-µs/event (INFO cpu) 110–150 with one
// caller, ~70 with 16 and ~55 with 64.
//
// BenchmarkDrain (four actions, one lease-and-finish loop per action taking
// 64 at a time, every attempt succeeded), same machine and caveats:
//
//	backlog       15,000 – 25,000 deliveries/s  (the queues filled beforehand)
//	with-accepts   6,000 – 10,000 deliveries/s  (32 callers accepting meanwhile)
//
// A leased delivery costs Redis ~22 µs and a finished one ~17 µs, so with
// accepts on the same server its thread is the limit again.
package redisstore
