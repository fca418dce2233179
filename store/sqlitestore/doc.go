// Package sqlitestore is hookrelay's embedded store, the default one: the
// store.Store contract kept in one SQLite file (modernc.org/sqlite, pure Go),
// so that `hookrelay serve` needs nothing else installed. The file runs in WAL
// mode, and no write is answered before the WAL holding it is flushed to
// the disk, so an acknowledged event survives a crash or a power cut. One
// writer goroutine owns the only write connection and commits concurrent
// writes together (group commit; a batch in which a write fails runs again
// with a savepoint per write, so that it does not undo the others); a
// syncer goroutine beside it flushes the WAL once for every batch committed
// since its last flush and answers their callers, so the writer never waits
// for the disk (synchronous=NORMAL, with the flush FULL would make inside
// each commit made by the store instead). While a flush runs, the writer
// keeps its transaction open and runs the writes that arrive in it, and
// commits when the flush ends: one commit per flush. Reads use a pool of read-only
// connections. An idempotency key is kept on the event that took it, with
// the end of its window, and goes when the event is pruned. The schema
// comes from numbered SQL files embedded in the binary, tracked by PRAGMA
// user_version. A file serves one process: Wake is an in-process
// broadcast. Listings page by id over indexes on hook, action and status;
// admin API keys are read from the file on every call, never cached.
//
// The queue is one index over (action, due time): each action's deliveries
// are a range of it, so a lease takes an action's earliest due deliveries
// with one statement, and every batch of the queue contract (Lease, Renew,
// Finish, Release) is one request to the writer, committed once. Each
// action's pause switch and breaker live in the action_states table, read
// and gated (store.Gate) in the same transaction as the lease.
//
// Retention (Prune) deletes old events in batches, each one request to the
// writer, so intake waits for one batch at most. The file runs with
// auto_vacuum=INCREMENTAL and each batch is followed by an incremental
// vacuum, so freed pages go back to the file system and the file stops
// growing under steady load. A file made before retention is converted once
// at Open by a VACUUM (see incrementalVacuum).
//
// Measured on 2 vCPU (Xeon 2.8 GHz, ext4 on a virtual disk, Go 1.26):
// BenchmarkAccept (storetest.Bench: new idempotency key and one delivery per
// Accept) gives 1 caller 1,700–2,100 accepts/s (one fsync each), 16 callers
// 7,500–10,600, 64 callers 9,700–13,300, with ~150-byte bodies; with the
// ~1 KiB bodies it now sends, 1,700–2,050, 6,400–8,600 and 10,800–11,600
// events/s. BenchmarkDrain (4 actions, leases
// of up to 64, every attempt finished as succeeded) drains a backlog at
// 22,000–24,000 deliveries/s, and 6,500–9,000/s while 32 callers accept the
// same deliveries meanwhile. The writer's time is the limit: its statements,
// the WAL pages each commit writes, and the fsync.
package sqlitestore
