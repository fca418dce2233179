// Package relay is the delivery engine: it leases due deliveries action by
// action — each action with its own concurrency, rate and circuit breaker,
// so one destination cannot stall another — performs them, renews their
// leases while the requests run, and records the outcomes in batches:
// succeeded, retrying after a jittered backoff, or dead. While it has room
// and nothing older is due, it also takes new deliveries straight from the
// accepts of its process (Offer), without leasing them from the queue.
// Delivery is at least once; every request carries the delivery id as its
// Idempotency-Key.
package relay
