// Package store holds hookrelay's domain types — events, deliveries, attempts
// and their states — and the Store contract that every backend implements.
package store
