// Package redisstore is hookrelay's Redis backend: every state transition is
// one Lua script (scripts.go), or one transaction (plain.go), over
// hash-tagged keys (keys.go), so it works on
// a single server and on Redis Cluster, and any number of gateway and relay
// processes can share one store. On a cluster the keyspace is split into
// partitions, each under its own hash tag (partition.go): an event and
// everything about it live in one partition, so each transition stays one
// single-slot script, and a call that concerns every partition (a lease, a
// listing page, queue statistics, a retention batch) sends one script per
// partition in one pipeline.
//
// An event is one string (codec.go): a short head the scripts read (status,
// receipt, lengths, hook), its headers and idempotency key as JSON, its body
// (compressed with zstd, or S2, when that pays, compress.go), then records
// naming its deliveries and matched rules. A delivery is a small hash, its
// attempts a list. An accept is a few commands: the idempotency key is taken with SET
// NX GET, the event and its deliveries written, and each record indexed
// once. Concurrent Accepts are sent together as one script per partition
// (one in all on a single server), which accepts them in order and writes
// their index and queue entries as one command per key; the pipeline ends
// with one wake-up for the relays and, with durability: wait, one WAIT
// (commit.go). On a single server, a batch of four or more new events
// whose deliveries are in no lane skips the script: one MULTI/EXEC of the
// same writes, guarded by WATCH on their idempotency keys, costs Redis
// about a quarter less CPU (plain.go; accept=script in the URL keeps the
// script). Where a relay in the process takes hand-offs, the script runs
// every batch instead (handoff.go): it leases new deliveries to that relay
// in the accept itself, which a transaction cannot. On a partitioned store
// an accept that offers deliveries first reserves them in partition 0,
// where the actions' states and caps are (reserveScript).
//
// Each action has its own queue, a sorted set of delivery ids scored by due
// time, and its own lease set scored by lease end: a delivery whose worker
// died is taken again from the lease set once its lease ends, without a
// reaper, and one action's backlog never hides another's due deliveries. One
// Lease call serves every action's quota in one script, applying the
// action's shared state (pause, breaker) there; a batch of finished attempts
// is one script. Rate limits are shared through Redis too (limiter.go).
//
// Listings merge the sorted sets of ids the filter names, newest first: an
// event is in its hook's index for its status, a delivery in the index of
// its hook and action, a dead delivery also in the dead index; pending and
// retrying deliveries are found in the queues. A time window is a range of
// ids. Admin API keys are read from Redis on every call, so a revocation
// holds at once for every process. Retention (Prune) walks the events
// indexes oldest first, one bounded script per batch, from a cursor kept in
// Redis under a pruning lease, and removes each old final event's keys and
// index entries. A store written by an earlier version is moved to this
// layout when it is opened (upgrade.go).
//
// What an accept, a delivery and a stored event cost Redis, measured with
// this package's benchmarks (BenchmarkAccept, BenchmarkDrain,
// BenchmarkMemory, BenchmarkListing1M), is in docs/intake.md.
package redisstore
