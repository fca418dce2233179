// Package retention runs the pruner: every serving process runs one, and
// the store's pruning lease lets one of them work at a time, in batches of
// bounded size and runs of bounded time, removing events older than their
// window with their deliveries and attempts.
package retention
