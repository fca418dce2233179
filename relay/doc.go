// Package relay runs the delivery workers: lease due deliveries, perform
// their action, record the attempt, then ack, reschedule with backoff or mark
// the delivery dead. Delivery is at least once; every request carries the
// delivery id as its Idempotency-Key.
package relay
